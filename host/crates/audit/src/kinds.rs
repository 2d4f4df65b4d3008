//! Which kinds a binding audits: those its webhook-style `rules` admit for CREATE
//! ([`WebhookRule::matches`], the same test inline admission makes), found through the API's
//! discovery so that `*` in a rule means what the API serves. Each kind is audited once, in its
//! preferred version when the rules admit it.

use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};

use corbel_admission::config::WebhookRule;

/// Never audited, whatever the rules say: the reports themselves (a report on a report would
/// make another), and Events and Leases, which are records rather than configuration.
const SKIPPED_GROUPS: &[&str] = &["openreports.io", "events.k8s.io", "coordination.k8s.io"];

/// A kind to audit.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// `group/version/plural`, or `version/plural` for the core group.
pub fn describe(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

/// The kinds `rules` admit for CREATE, in discovery's order.
pub async fn resolve(
    client: &kube::Client,
    rules: &[WebhookRule],
) -> Result<Vec<Kind>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut kinds: Vec<Kind> = Vec::new();
    for group in discovery.groups() {
        if SKIPPED_GROUPS.contains(&group.name()) {
            continue;
        }
        // The preferred version first, so that a kind the rules admit in several versions is
        // audited in that one.
        let preferred = group.preferred_version_or_latest().to_owned();
        let mut versions: Vec<&str> = vec![preferred.as_str()];
        versions.extend(group.versions().filter(|v| *v != preferred));
        for version in versions {
            for (resource, caps) in group.versioned_resources(version) {
                let namespaced = caps.scope == Scope::Namespaced;
                if resource.plural.contains('/')
                    || !caps.supports_operation(verbs::LIST)
                    || (group.name().is_empty() && resource.plural == "events")
                {
                    continue;
                }
                let admitted = rules.iter().any(|rule| {
                    rule.matches(
                        "CREATE",
                        &resource.group,
                        &resource.version,
                        &resource.plural,
                        false,
                        namespaced,
                    )
                });
                let seen = kinds.iter().any(|k| {
                    k.resource.group == resource.group && k.resource.plural == resource.plural
                });
                if admitted && !seen {
                    kinds.push(Kind {
                        resource,
                        namespaced,
                    });
                }
            }
        }
    }
    Ok(kinds)
}
