//! The background audit: bindings that opt in (`audit:` in their configuration) are evaluated
//! against the objects that already exist, and what they find is written as OpenReports reports
//! (docs/audit.md).
//!
//! - [`audit_binding`] lists the kinds a binding's `rules` admit (CREATE), through a
//!   `kube::Client` in pages (`limit`/`continue`; in embedded mode the client calls the embedded
//!   API in process), and evaluates each object as a dry-run CREATE through
//!   [`corbel_admission::decide`], the one admission path, in a pool of `audit.workers` (default
//!   1) so that the audit takes at most that many sandboxes and cores from admission.
//! - [`report`] turns the findings into one report per resource, and keeps the reports in the
//!   API in step: written only when they changed (server-side apply, field manager
//!   `corbel-audit`), deleted when their resource is gone, capped per binding.
//! - [`room`] runs it in `corbel serve`: on each binding's interval and when its plugin or
//!   settings change (a hot swap gives the binding a new `Arc<Binding>`).
//! - `corbel audit` runs [`audit_binding`] once and prints the findings.

pub mod kinds;
pub mod report;
pub mod room;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind, GroupVersionResource, TypeMeta};
use kube_core::admission::{AdmissionRequest, Operation};

use corbel_admission::bindings::Entry;
use corbel_admission::config::{AuditConfig, BindingConfig};
use corbel_telemetry::audit::AuditMetrics;

pub use room::{Room, serve};

/// What the audit says of one resource for one binding: the OpenReports result values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The binding would deny the object.
    Fail,
    /// The binding could not evaluate it (the plugin failed, or the binding is not loaded).
    Error,
    /// Admitted, with warnings.
    Warn,
    Pass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fail => "fail",
            Outcome::Error => "error",
            Outcome::Warn => "warn",
            Outcome::Pass => "pass",
        }
    }
}

/// The resource a finding is about (an OpenReports `scope`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Resource {
    /// `kind namespace/name`, as the table prints it.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// One binding's verdict on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub resource: Resource,
    pub binding: String,
    pub plugin: String,
    pub outcome: Outcome,
    /// The denial's or error's message, or the warnings; cut to `audit.maxMessageBytes`.
    pub message: String,
}

/// One binding's audit run.
#[derive(Debug, Clone)]
pub struct Run {
    pub binding: String,
    /// The kinds audited, `group/version/plural` (or `version/plural`).
    pub kinds: Vec<String>,
    /// The findings kept, failures first, at most `audit.maxReports`.
    pub findings: Vec<Finding>,
    /// Objects evaluated.
    pub audited: usize,
    /// Findings left out by the cap.
    pub dropped: usize,
    pub max_reports: usize,
    /// Counts by outcome, of all objects evaluated (kept or dropped): fail, error, warn, pass.
    pub counts: [usize; 4],
    /// What could not be listed or discovered; a run with problems keeps the previous run's
    /// findings in the background audit.
    pub problems: Vec<String>,
    pub duration: Duration,
    pub finished: SystemTime,
}

impl Run {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.counts[outcome as usize]
    }
}

/// The user the audit's AdmissionRequests name: a policy that looks at the requester sees that
/// this is the audit, not a person.
pub const AUDIT_USER: &str = "system:serviceaccount:corbel:audit";

/// Checks an audit configuration; the message names the field and what to do.
pub fn check(binding: &BindingConfig) -> anyhow::Result<()> {
    let Some(audit) = &binding.audit else {
        return Ok(());
    };
    let name = &binding.name;
    if audit.workers == 0 {
        anyhow::bail!("binding {name:?}: audit.workers must be at least 1");
    }
    if audit.page_size == 0 {
        anyhow::bail!("binding {name:?}: audit.pageSize must be at least 1");
    }
    if audit.max_reports == 0 {
        anyhow::bail!(
            "binding {name:?}: audit.maxReports must be at least 1 (remove `audit:` to turn the audit off)"
        );
    }
    if audit.max_message_bytes < 16 {
        anyhow::bail!("binding {name:?}: audit.maxMessageBytes must be at least 16");
    }
    if audit.interval < Duration::from_secs(1) {
        anyhow::bail!("binding {name:?}: audit.interval must be at least 1s");
    }
    if !binding
        .rules
        .iter()
        .any(|r| r.operations.iter().any(|o| o == "CREATE" || o == "*"))
    {
        anyhow::bail!(
            "binding {name:?}: audit needs `rules` that admit CREATE of some kinds: they say which objects to audit"
        );
    }
    Ok(())
}

/// Audits one binding once: every object of the kinds its rules admit, evaluated through
/// [`corbel_admission::decide`] with `entry` (the binding as the server holds it now).
pub async fn audit_binding(
    client: &kube::Client,
    config: &BindingConfig,
    entry: &Entry,
    metrics: Option<&AuditMetrics>,
) -> Run {
    let started = Instant::now();
    let audit = config.audit.clone().unwrap_or_default();
    let mut run = Run {
        binding: config.name.clone(),
        kinds: Vec::new(),
        findings: Vec::new(),
        audited: 0,
        dropped: 0,
        max_reports: audit.max_reports,
        counts: [0; 4],
        problems: Vec::new(),
        duration: Duration::ZERO,
        finished: SystemTime::now(),
    };
    let plugin = match entry {
        Entry::Loaded(binding) => binding.plugin.name().to_owned(),
        Entry::Failed { plugin, .. } => plugin.clone(),
    };
    let kinds = match kinds::resolve(client, &config.rules).await {
        Ok(kinds) => kinds,
        Err(e) => {
            run.problems.push(format!("discovery failed: {e}"));
            return finish(run, started, &audit);
        }
    };
    run.kinds = kinds.iter().map(|k| kinds::describe(&k.resource)).collect();
    let selectors = match Selectors::new(client, config).await {
        Ok(s) => s,
        Err(e) => {
            run.problems.push(e);
            return finish(run, started, &audit);
        }
    };
    let mut findings = Vec::new();
    for kind in &kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().limit(audit.page_size);
            if let Some(labels) = &selectors.objects {
                params = params.labels(labels);
            }
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e) => {
                    run.problems.push(format!(
                        "listing {} failed: {e}",
                        kinds::describe(&kind.resource)
                    ));
                    break;
                }
            };
            token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
            let objects = page.items.into_iter().filter(|o| {
                !kind.namespaced
                    || selectors.namespaces.as_ref().is_none_or(|allowed| {
                        o.metadata
                            .namespace
                            .as_ref()
                            .is_some_and(|ns| allowed.contains(ns))
                    })
            });
            let evaluated: Vec<Finding> = futures::stream::iter(objects)
                .map(|object| evaluate(config, entry, &plugin, &kind.resource, object, &audit))
                .buffer_unordered(audit.workers.max(1))
                .collect()
                .await;
            for finding in &evaluated {
                if let Some(metrics) = metrics {
                    metrics.record_result(&config.name, finding.outcome.as_str());
                }
            }
            findings.extend(evaluated);
            if token.is_none() {
                break;
            }
        }
    }
    run.audited = findings.len();
    for f in &findings {
        run.counts[f.outcome as usize] += 1;
    }
    findings.sort_by(|a, b| (a.outcome, &a.resource).cmp(&(b.outcome, &b.resource)));
    run.dropped = findings.len().saturating_sub(audit.max_reports);
    findings.truncate(audit.max_reports);
    run.findings = findings;
    finish(run, started, &audit)
}

fn finish(mut run: Run, started: Instant, audit: &AuditConfig) -> Run {
    run.duration = started.elapsed();
    run.finished = SystemTime::now();
    for problem in &run.problems {
        tracing::warn!(binding = %run.binding, problem = %problem, "audit incomplete");
    }
    if run.dropped > 0 {
        tracing::warn!(
            binding = %run.binding,
            dropped = run.dropped,
            max_reports = audit.max_reports,
            "audit found more resources than its cap: {} of {} are not reported (audit.maxReports {}; failures are kept first)",
            run.dropped,
            run.audited,
            audit.max_reports
        );
    }
    tracing::info!(
        binding = %run.binding,
        kinds = ?run.kinds,
        audited = run.audited,
        fail = run.count(Outcome::Fail),
        error = run.count(Outcome::Error),
        warn = run.count(Outcome::Warn),
        pass = run.count(Outcome::Pass),
        elapsed_ms = run.duration.as_millis() as u64,
        "audit run finished"
    );
    run
}

/// The binding's object and namespace selectors, as the list requests need them.
struct Selectors {
    /// `objectSelector` as a label selector string.
    objects: Option<String>,
    /// The namespaces `namespaceSelector` selects (for namespaced kinds).
    namespaces: Option<BTreeSet<String>>,
}

impl Selectors {
    async fn new(client: &kube::Client, config: &BindingConfig) -> Result<Self, String> {
        let objects = config
            .object_selector
            .as_ref()
            .map(|s| selector_string(s).map_err(|e| format!("objectSelector: {e}")))
            .transpose()?;
        let namespaces = match &config.namespace_selector {
            None => None,
            Some(selector) => {
                let labels =
                    selector_string(selector).map_err(|e| format!("namespaceSelector: {e}"))?;
                let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
                let list = api
                    .list(&ListParams::default().labels(&labels))
                    .await
                    .map_err(|e| {
                        format!("listing the namespaces of namespaceSelector failed: {e}")
                    })?;
                Some(
                    list.items
                        .into_iter()
                        .filter_map(|n| n.metadata.name)
                        .collect(),
                )
            }
        };
        Ok(Self {
            objects,
            namespaces,
        })
    }
}

/// A metav1.LabelSelector as the `labelSelector` query parameter writes it.
fn selector_string(selector: &serde_json::Value) -> Result<String, String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let parsed: LabelSelector = serde_json::from_value(selector.clone())
        .map_err(|e| format!("not a label selector: {e}"))?;
    let selector = kube::core::Selector::try_from(parsed).map_err(|e| e.to_string())?;
    Ok(selector.to_string())
}

/// Evaluates one object as a dry-run CREATE of it, through the one admission path.
async fn evaluate(
    config: &BindingConfig,
    entry: &Entry,
    plugin: &str,
    resource: &ApiResource,
    mut object: DynamicObject,
    audit: &AuditConfig,
) -> Finding {
    // List items may come without apiVersion and kind (the API server leaves them out of lists
    // of built-in kinds); a policy reads them, as it would in a real CREATE.
    object.types = Some(TypeMeta {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
    });
    let subject = Resource {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        namespace: object.metadata.namespace.clone(),
        name: object.metadata.name.clone().unwrap_or_default(),
        uid: object.metadata.uid.clone().unwrap_or_default(),
    };
    let request = create_request(resource, object);
    let (decision, outcome) = corbel_admission::decide(&config.name, entry, &request).await;
    let response = decision.respond(&request);
    let (result, message) = if outcome.error.is_some() {
        let message = Some(response.result.message.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| response.warnings.as_ref().and_then(|w| w.first().cloned()))
            .unwrap_or_default();
        (Outcome::Error, message)
    } else if !response.allowed {
        (Outcome::Fail, response.result.message.clone())
    } else if outcome.unenforced.is_some() {
        // The binding's enforcement (warn or audit) admitted a denial: the audit still reports
        // what the policy says. The denial is in the audit annotation or the last warning.
        let message = response
            .audit_annotations
            .get(corbel_admission::AUDIT_ANNOTATION)
            .cloned()
            .or_else(|| response.warnings.as_ref().and_then(|w| w.last().cloned()))
            .unwrap_or_default();
        (Outcome::Fail, message)
    } else if let Some(warnings) = response.warnings.as_ref().filter(|w| !w.is_empty()) {
        (Outcome::Warn, warnings.join("; "))
    } else {
        (Outcome::Pass, String::new())
    };
    // Yield between objects: a long audit never holds a runtime thread for a whole page.
    tokio::task::yield_now().await;
    Finding {
        resource: subject,
        binding: config.name.clone(),
        plugin: plugin.to_owned(),
        outcome: result,
        message: cut(message, audit.max_message_bytes),
    }
}

/// The AdmissionRequest the API server would send to create `object` (dry run).
pub fn create_request(resource: &ApiResource, object: DynamicObject) -> corbel_admission::Request {
    let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
    let gvr = GroupVersionResource::gvr(&resource.group, &resource.version, &resource.plural);
    let mut request = AdmissionRequest {
        types: TypeMeta {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
        },
        uid: uuid::Uuid::new_v4().to_string(),
        kind: gvk.clone(),
        resource: gvr.clone(),
        sub_resource: None,
        request_kind: Some(gvk),
        request_resource: Some(gvr),
        request_sub_resource: None,
        name: object.metadata.name.clone().unwrap_or_default(),
        namespace: object.metadata.namespace.clone(),
        operation: Operation::Create,
        user_info: Default::default(),
        object: Some(
            corbel_admission::Object::from_serialize(&object)
                .expect("a DynamicObject always serializes (string keys only)"),
        ),
        old_object: None,
        dry_run: true,
        options: Some(Default::default()),
    };
    request.user_info.username = Some(AUDIT_USER.to_owned());
    request.user_info.groups = Some(vec!["system:serviceaccounts".into()]);
    if let Some(options) = &mut request.options {
        options.0 = serde_json::json!({"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "dryRun": ["All"]});
    }
    request
}

/// `text` cut to at most `max` bytes on a character boundary, marked with an ellipsis.
pub fn cut(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_long_messages_on_a_character_boundary() {
        assert_eq!(cut("short".into(), 16), "short");
        let cut_text = cut("ééééééééééé".into(), 8);
        assert!(cut_text.len() <= 8, "{cut_text}");
        assert!(cut_text.ends_with('…'));
    }

    #[test]
    fn label_selectors_read_as_query_strings() {
        let s = selector_string(&serde_json::json!({"matchLabels": {"team": "a"}})).unwrap();
        assert_eq!(s, "team=a");
    }

    #[test]
    fn failures_sort_before_passes() {
        assert!(Outcome::Fail < Outcome::Error);
        assert!(Outcome::Warn < Outcome::Pass);
    }
}
