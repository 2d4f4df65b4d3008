//! Role-based authorization: rules from the configuration, each granting its subjects some verbs on
//! some resources in some namespaces. Matching follows Kubernetes RBAC (`*` wildcards, `""` for the
//! core group, `*/scale` for a subresource of any resource), with the role and its binding folded
//! into one rule. A request that no rule allows is refused with Kubernetes' wording.

use serde::Deserialize;

use super::UserInfo;

/// The verbs a rule may name (besides `*`).
pub const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Allows `subjects` to do `verbs` on `resources` of the API `groups` in `namespaces`.
///
/// ```yaml
/// - subjects: [{user: alice}, {group: ops}, {clientId: billing}]
///   verbs: [get, list, watch]
///   groups: [storage.corbel.dev]
///   resources: [buckets, buckets/status]
///   namespaces: [shop]        # optional; default ["*"]
///   resourceNames: [b1]       # optional; default any object
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub subjects: Vec<Subject>,
    /// Any of [`VERBS`], or `*`.
    pub verbs: Vec<String>,
    /// API groups: `""` is the core group, `*` any.
    pub groups: Vec<String>,
    /// Plural resource names, `*`, `plural/subresource`, or `*/subresource`. `pods` does not cover
    /// `pods/log`; `*` covers everything.
    pub resources: Vec<String>,
    /// Namespaces; `*` (the default) is any namespace and the cluster scope. A named namespace never
    /// covers cluster-scoped requests, nor requests across all namespaces.
    #[serde(default = "all")]
    pub namespaces: Vec<String>,
    /// Object names, as a Role's `resourceNames`: when given, only requests naming one of them
    /// (get, update, patch, delete of that object) match; a create, list or watch names no
    /// object and does not. Default: any object.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

fn all() -> Vec<String> {
    vec!["*".to_owned()]
}

/// Who a rule is for. YAML: `{user: alice}`, `{group: ops}` or `{clientId: billing}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SubjectMap")]
pub enum Subject {
    User(String),
    Group(String),
    /// The OAuth client an access token was issued to (its `client_id` claim).
    ClientId(String),
}

/// A subject as written: a map with one key. (serde_yaml_ng would otherwise expect an enum as a
/// YAML tag, `!user alice`.)
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubjectMap {
    user: Option<String>,
    group: Option<String>,
    client_id: Option<String>,
}

impl TryFrom<SubjectMap> for Subject {
    type Error = &'static str;

    fn try_from(map: SubjectMap) -> Result<Self, Self::Error> {
        match (map.user, map.group, map.client_id) {
            (Some(user), None, None) => Ok(Subject::User(user)),
            (None, Some(group), None) => Ok(Subject::Group(group)),
            (None, None, Some(id)) => Ok(Subject::ClientId(id)),
            _ => Err("a subject names exactly one of user, group or clientId"),
        }
    }
}

impl Subject {
    fn matches(&self, user: &UserInfo) -> bool {
        match self {
            Subject::User(name) => user.username == *name,
            Subject::Group(group) => user.groups.iter().any(|g| g == group),
            Subject::ClientId(id) => user.client_id.as_deref() == Some(id.as_str()),
        }
    }
}

impl Rule {
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.subjects.is_empty() {
            return Err("it names no subjects".into());
        }
        for (what, list) in [
            ("verbs", &self.verbs),
            ("groups", &self.groups),
            ("resources", &self.resources),
            ("namespaces", &self.namespaces),
        ] {
            if list.is_empty() {
                return Err(format!("its {what} are empty"));
            }
        }
        for verb in &self.verbs {
            if verb != "*" && !VERBS.contains(&verb.as_str()) {
                return Err(format!(
                    "unknown verb {verb:?} (expected one of {} or \"*\")",
                    VERBS.join(", ")
                ));
            }
        }
        for resource in &self.resources {
            let (plural, sub) = match resource.split_once('/') {
                Some((p, s)) => (p, Some(s)),
                None => (resource.as_str(), None),
            };
            if plural.is_empty() || sub.is_some_and(|s| s.is_empty() || s.contains('/')) {
                return Err(format!("malformed resource {resource:?}"));
            }
        }
        if self.resource_names.iter().any(String::is_empty) {
            return Err("a resource name is empty (leave resourceNames out for any object)".into());
        }
        if self.namespaces.iter().any(String::is_empty) {
            return Err(
                "a namespace is empty (use \"*\" for any namespace and the cluster scope)".into(),
            );
        }
        Ok(())
    }

    fn allows(&self, user: &UserInfo, attrs: &RequestAttributes) -> bool {
        self.subjects.iter().any(|s| s.matches(user))
            && self.verbs.iter().any(|v| v == "*" || v == attrs.verb)
            && self.groups.iter().any(|g| g == "*" || g == attrs.group)
            && self.resource_matches(attrs)
            && self
                .namespaces
                .iter()
                .any(|n| n == "*" || attrs.namespace.is_some_and(|ns| ns == n))
            && (self.resource_names.is_empty()
                || attrs
                    .name
                    .is_some_and(|name| self.resource_names.iter().any(|n| n == name)))
    }

    /// Kubernetes' `ResourceMatches`.
    fn resource_matches(&self, attrs: &RequestAttributes) -> bool {
        let combined = match attrs.subresource {
            Some(sub) => format!("{}/{sub}", attrs.resource),
            None => attrs.resource.to_owned(),
        };
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || attrs
                    .subresource
                    .is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
        })
    }
}

/// What a request wants to do, as the API layer resolved it from the path and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestAttributes<'a> {
    /// get, list, watch, create, update, patch, delete or deletecollection.
    pub verb: &'a str,
    /// The API group; `""` for the core group.
    pub group: &'a str,
    /// The plural resource name.
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    /// `None` for cluster-scoped resources and for requests across all namespaces.
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Decides requests by the configured rules.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    rules: Vec<Rule>,
}

impl Authorizer {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    /// `Ok` when some rule allows the request; otherwise the message of Kubernetes' Forbidden
    /// Status, e.g. `buckets.storage.corbel.dev "b1" is forbidden: User "alice" cannot get resource
    /// "buckets" in API group "storage.corbel.dev" in the namespace "shop"`.
    pub fn authorize(&self, user: &UserInfo, attrs: &RequestAttributes) -> Result<(), String> {
        if self.rules.iter().any(|rule| rule.allows(user, attrs)) {
            Ok(())
        } else {
            Err(status_message(user, attrs))
        }
    }
}

/// Kubernetes' wording for a refusal (the apiserver's `forbiddenMessage`):
/// `User "alice" cannot list resource "buckets" in API group "storage.corbel.dev" in the namespace
/// "shop"`, or `… at the cluster scope` without a namespace.
pub fn forbidden_message(user: &UserInfo, attrs: &RequestAttributes) -> String {
    let resource = match attrs.subresource {
        Some(sub) => format!("{}/{sub}", attrs.resource),
        None => attrs.resource.to_owned(),
    };
    let scope = match attrs.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    format!(
        "User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.username, attrs.verb, attrs.group
    )
}

/// `resource.group` (or `resource` for the core group), as Kubernetes' `GroupResource` prints.
fn group_resource(attrs: &RequestAttributes) -> String {
    if attrs.group.is_empty() {
        attrs.resource.to_owned()
    } else {
        format!("{}.{}", attrs.resource, attrs.group)
    }
}

/// The message of Kubernetes' `NewForbidden`: `pods "web" is forbidden: User …`.
fn status_message(user: &UserInfo, attrs: &RequestAttributes) -> String {
    let what = match attrs.name {
        Some(name) => format!("{} {name:?}", group_resource(attrs)),
        None => group_resource(attrs),
    };
    format!("{what} is forbidden: {}", forbidden_message(user, attrs))
}

/// The body of the 403 answer: a `v1` `Status` with reason `Forbidden`, as the Kubernetes API server
/// writes it.
pub fn forbidden_status(user: &UserInfo, attrs: &RequestAttributes) -> serde_json::Value {
    let mut details = serde_json::json!({ "group": attrs.group, "kind": attrs.resource });
    if let Some(name) = attrs.name {
        details["name"] = name.into();
    }
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": status_message(user, attrs),
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str], client_id: Option<&str>) -> UserInfo {
        UserInfo {
            username: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            client_id: client_id.map(str::to_owned),
        }
    }

    fn attrs<'a>(
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
    ) -> RequestAttributes<'a> {
        RequestAttributes {
            verb,
            group,
            resource,
            subresource: None,
            namespace,
            name: None,
        }
    }

    fn rules(yaml: &str) -> Authorizer {
        let rules: Vec<Rule> = serde_yaml_ng::from_str(yaml).unwrap();
        for rule in &rules {
            rule.validate().unwrap();
        }
        Authorizer::new(rules)
    }

    const RULES: &str = r#"
- subjects: [{user: alice}]
  verbs: [get, list, watch]
  groups: [storage.corbel.dev]
  resources: [buckets]
  namespaces: [shop]
- subjects: [{group: ops}]
  verbs: ["*"]
  groups: [""]
  resources: [configmaps, pods/log, "*/scale"]
- subjects: [{clientId: billing}]
  verbs: [create]
  groups: ["*"]
  resources: ["*"]
  namespaces: [billing]
- subjects: [{user: root}]
  verbs: ["*"]
  groups: ["*"]
  resources: ["*"]
"#;

    #[test]
    fn rules_match_like_kubernetes_rbac() {
        let authz = rules(RULES);
        let alice = user("alice", &["dev"], None);
        let ops = user("olga", &["ops", "system:authenticated"], None);
        let billing = user("billing", &[], Some("billing"));
        let root = user("root", &[], None);
        let sub = |mut a: RequestAttributes<'static>, s: &'static str| {
            a.subresource = Some(s);
            a
        };
        let buckets = |verb, ns| attrs(verb, "storage.corbel.dev", "buckets", ns);
        let core = |verb, resource, ns| attrs(verb, "", resource, ns);
        let cases: &[(&UserInfo, RequestAttributes<'static>, bool)] = &[
            // Verbs.
            (&alice, buckets("get", Some("shop")), true),
            (&alice, buckets("watch", Some("shop")), true),
            (&alice, buckets("delete", Some("shop")), false),
            // Namespaces: a named one covers neither another nor the cluster scope.
            (&alice, buckets("list", Some("other")), false),
            (&alice, buckets("list", None), false),
            // Group and resource must both match.
            (&alice, attrs("get", "apps", "buckets", Some("shop")), false),
            (
                &alice,
                buckets("get", Some("shop")).with_resource("tables"),
                false,
            ),
            // Subresources: the plain resource does not cover them.
            (&alice, sub(buckets("get", Some("shop")), "status"), false),
            // "*" verbs, the core group "", default namespaces "*" (incl. cluster scope).
            (&ops, core("delete", "configmaps", Some("any")), true),
            (&ops, core("list", "configmaps", None), true),
            (&ops, attrs("get", "apps", "configmaps", Some("any")), false),
            (&ops, core("get", "pods", Some("any")), false),
            (&ops, sub(core("get", "pods", Some("any")), "log"), true),
            (&ops, sub(core("get", "pods", Some("any")), "exec"), false),
            (
                &ops,
                sub(core("update", "replicationcontrollers", Some("a")), "scale"),
                true,
            ),
            (
                &ops,
                core("update", "replicationcontrollers", Some("a")),
                false,
            ),
            // Client id subjects, "*" groups and resources.
            (&billing, buckets("create", Some("billing")), true),
            (
                &billing,
                sub(core("create", "pods", Some("billing")), "eviction"),
                true,
            ),
            (&billing, buckets("create", Some("shop")), false),
            (&billing, buckets("get", Some("billing")), false),
            (
                &user("billing", &[], None),
                buckets("create", Some("billing")),
                false,
            ),
            (
                &user("x", &[], Some("other")),
                buckets("create", Some("billing")),
                false,
            ),
            // Everything.
            (
                &root,
                sub(buckets("deletecollection", None), "status"),
                true,
            ),
            // No rule for this user at all.
            (
                &user("mallory", &["dev"], None),
                core("get", "configmaps", Some("shop")),
                false,
            ),
        ];
        for (i, (user, attrs, allowed)) in cases.iter().enumerate() {
            assert_eq!(
                authz.authorize(user, attrs).is_ok(),
                *allowed,
                "case {i}: {} {attrs:?}",
                user.username
            );
        }
    }

    impl<'a> RequestAttributes<'a> {
        fn with_resource(mut self, resource: &'a str) -> Self {
            self.resource = resource;
            self
        }
    }

    #[test]
    fn resource_names_match_only_requests_naming_one_of_them() {
        let authorizer = rules(
            "- {subjects: [{user: corbel}], verbs: [get, update, create, list], groups: [coordination.k8s.io], resources: [leases], namespaces: [corbel], resourceNames: [corbel-controllers]}",
        );
        let corbel = user("corbel", &[], None);
        let named = |verb, name| RequestAttributes {
            name,
            ..attrs(verb, "coordination.k8s.io", "leases", Some("corbel"))
        };
        assert!(
            authorizer
                .authorize(&corbel, &named("get", Some("corbel-controllers")))
                .is_ok()
        );
        assert!(
            authorizer
                .authorize(&corbel, &named("update", Some("corbel-controllers")))
                .is_ok()
        );
        assert!(
            authorizer
                .authorize(&corbel, &named("get", Some("other")))
                .is_err()
        );
        // As in Kubernetes: a create or a list names no object, so a rule with names never allows it.
        assert!(
            authorizer
                .authorize(&corbel, &named("create", None))
                .is_err()
        );
        assert!(authorizer.authorize(&corbel, &named("list", None)).is_err());
    }

    #[test]
    fn no_rules_allow_nothing() {
        let authz = Authorizer::new(Vec::new());
        let root = user("root", &["system:masters"], None);
        assert!(
            authz
                .authorize(&root, &attrs("get", "", "pods", Some("a")))
                .is_err()
        );
    }

    #[test]
    fn refusals_use_kubernetes_wording() {
        let alice = user("alice", &[], None);
        let namespaced = attrs("list", "storage.corbel.dev", "buckets", Some("shop"));
        assert_eq!(
            forbidden_message(&alice, &namespaced),
            r#"User "alice" cannot list resource "buckets" in API group "storage.corbel.dev" in the namespace "shop""#
        );
        let cluster = RequestAttributes {
            subresource: Some("status"),
            name: Some("n1"),
            ..attrs("update", "", "nodes", None)
        };
        assert_eq!(
            forbidden_message(&alice, &cluster),
            r#"User "alice" cannot update resource "nodes/status" in API group "" at the cluster scope"#
        );
        let authz = Authorizer::new(Vec::new());
        assert_eq!(
            authz.authorize(&alice, &namespaced).unwrap_err(),
            r#"buckets.storage.corbel.dev is forbidden: User "alice" cannot list resource "buckets" in API group "storage.corbel.dev" in the namespace "shop""#
        );
        assert_eq!(
            authz.authorize(&alice, &cluster).unwrap_err(),
            r#"nodes "n1" is forbidden: User "alice" cannot update resource "nodes/status" in API group "" at the cluster scope"#
        );
        assert_eq!(
            forbidden_status(&alice, &cluster),
            serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": r#"nodes "n1" is forbidden: User "alice" cannot update resource "nodes/status" in API group "" at the cluster scope"#,
                "reason": "Forbidden",
                "details": {"name": "n1", "group": "", "kind": "nodes"},
                "code": 403,
            })
        );
    }

    #[test]
    fn rules_are_checked_when_configured() {
        for (yaml, error) in [
            (
                "{subjects: [], verbs: [get], groups: [''], resources: [pods]}",
                "it names no subjects",
            ),
            (
                "{subjects: [{user: a}], verbs: [read], groups: [''], resources: [pods]}",
                "unknown verb \"read\" (expected one of get, list, watch, create, update, patch, delete, deletecollection or \"*\")",
            ),
            (
                "{subjects: [{user: a}], verbs: [get], groups: [], resources: [pods]}",
                "its groups are empty",
            ),
            (
                "{subjects: [{user: a}], verbs: [get], groups: [''], resources: [pods/]}",
                "malformed resource \"pods/\"",
            ),
            (
                "{subjects: [{user: a}], verbs: [get], groups: [''], resources: [pods], namespaces: ['']}",
                "a namespace is empty (use \"*\" for any namespace and the cluster scope)",
            ),
        ] {
            let rule: Rule = serde_yaml_ng::from_str(yaml).unwrap();
            assert_eq!(rule.validate().unwrap_err(), error, "{yaml}");
        }
        let unknown = serde_yaml_ng::from_str::<Rule>(
            "{subjects: [{role: a}], verbs: [get], groups: [''], resources: [pods]}",
        );
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `role`, expected one of `user`, `group`, `clientId`")
        );
        let two = serde_yaml_ng::from_str::<Rule>(
            "{subjects: [{user: a, group: b}], verbs: [get], groups: [''], resources: [pods]}",
        );
        assert!(
            two.unwrap_err()
                .to_string()
                .contains("a subject names exactly one of user, group or clientId")
        );
        let typo = serde_yaml_ng::from_str::<Rule>(
            "{subjects: [{user: a}], verbs: [get], groups: [''], resource: [pods]}",
        );
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `resource`")
        );
    }
}
