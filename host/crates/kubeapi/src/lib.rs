//! The embedded mode's Kubernetes-shaped API: the paths, verbs, discovery and errors of the
//! Kubernetes API server over the embedded [`corbel_store`], so that kubectl and kube-rs (clients
//! and watchers) work against it unchanged. Kinds come from built-ins and CustomResourceDefinitions;
//! writes pass through inline admission with the same `admission::decide` as the webhooks.

pub mod registry;
pub mod schema;
pub mod selectors;
pub mod server;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use self::registry::{CRD_GROUP, Kind, Registry};
use self::selectors::LabelSelector;
use self::server::ApiError;
use corbel_admission::bindings::SharedBindings;
use corbel_admission::config::{BindingConfig, WebhookRule};
use corbel_auth::{
    AuthError, Authenticator, Authorizer, RequestAttributes, UserInfo, forbidden_status,
};
use corbel_store::{ObjectKey, Store, UpdateMode};

pub use server::router;

/// Go's `%q`, as the API server's messages quote strings (close enough: JSON string escaping).
pub(crate) fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A binding that also admits the embedded API's own writes, with its webhook-style rules.
pub struct InlineBinding {
    pub name: String,
    pub rules: Vec<WebhookRule>,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
}

impl InlineBinding {
    pub fn from_config(config: &BindingConfig) -> anyhow::Result<Option<Self>> {
        if config.rules.is_empty() {
            return Ok(None);
        }
        let selector = |s: &Option<Value>, what: &str| -> anyhow::Result<Option<LabelSelector>> {
            s.as_ref()
                .map(|v| {
                    LabelSelector::from_label_selector(v)
                        .map_err(|e| anyhow::anyhow!("binding {:?}: {what}: {e}", config.name))
                })
                .transpose()
        };
        Ok(Some(Self {
            name: config.name.clone(),
            rules: config.rules.clone(),
            namespace_selector: selector(&config.namespace_selector, "namespaceSelector")?,
            object_selector: selector(&config.object_selector, "objectSelector")?,
        }))
    }
}

/// What the API's handlers share.
pub struct KubeApi {
    pub store: Store,
    pub registry: Registry,
    pub authenticator: Authenticator,
    pub authorizer: Authorizer,
    /// The loaded bindings (the webhook server's too), which inline admission uses.
    pub bindings: Arc<SharedBindings>,
    pub inline: Vec<InlineBinding>,
    /// Where inline admission counts its outcomes (the webhooks' metrics), when given.
    pub health: Option<Arc<corbel_telemetry::Health>>,
    /// Held from listing the CRDs to rebuilding the registry from them: two writes' reloads that
    /// interleave would otherwise let the older list win, and a kind just created would vanish
    /// (seen as a 404 on the first object of a CRD created while another CRD was written).
    crd_reload: std::sync::Mutex<()>,
}

impl KubeApi {
    /// Opens the API over `store`: loads the CRDs and makes sure the `default` namespace exists.
    pub async fn new(
        store: Store,
        authenticator: Authenticator,
        authorizer: Authorizer,
        bindings: Arc<SharedBindings>,
        inline: Vec<InlineBinding>,
        health: Option<Arc<corbel_telemetry::Health>>,
    ) -> anyhow::Result<Arc<Self>> {
        let crds = store.list(
            &ObjectKey::prefix(CRD_GROUP, "customresourcedefinitions", None),
            None,
            None,
            &|_| true,
        )?;
        let registry = Registry::new(&crds.items);
        for ns in ["default", "kube-system"] {
            let key = ObjectKey::new("", "namespaces", None, ns);
            if store.get(&key).is_err() {
                store.create(key, json!({"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"}})).await?;
            }
        }
        Ok(Arc::new(Self {
            store,
            registry,
            authenticator,
            authorizer,
            bindings,
            inline,
            health,
            crd_reload: std::sync::Mutex::new(()),
        }))
    }

    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.authenticator
            .authenticate(authorization)
            .await
            .map_err(|e| {
                if matches!(e, AuthError::Unavailable(_)) {
                    tracing::error!(error = %e, "cannot verify a bearer token");
                }
                ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", e.to_string())
            })
    }

    pub(crate) fn authorize(
        &self,
        user: &UserInfo,
        attrs: &RequestAttributes,
    ) -> Result<(), ApiError> {
        self.authorizer.authorize(user, attrs).map_err(|_| {
            // `configmaps is forbidden: User "x" cannot create resource ...`, as the API server says it.
            let status = forbidden_status(user, attrs);
            let message = status["message"].as_str().unwrap_or_default().to_owned();
            ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
        })
    }

    /// After a write: a CRD gets its status conditions and the registry learns its kinds.
    pub(crate) async fn after_write(&self, kind: &Kind, object: Value) -> Value {
        if !(kind.group == CRD_GROUP && kind.plural == "customresourcedefinitions") {
            return object;
        }
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let names = object
            .pointer("/spec/names")
            .cloned()
            .unwrap_or(Value::Null);
        let storage = object
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            })
            .and_then(|v| v.get("name").cloned())
            .unwrap_or(Value::Null);
        let condition = |t: &str, reason: &str| json!({"type": t, "status": "True", "reason": reason, "message": "", "lastTransitionTime": object.pointer("/metadata/creationTimestamp")});
        let status = json!({
            "acceptedNames": names,
            "storedVersions": [storage],
            "conditions": [condition("NamesAccepted", "NoConflicts"), condition("Established", "InitialNamesAccepted")],
        });
        let mut with_status = object.clone();
        with_status["status"] = status;
        let key = ObjectKey::new(CRD_GROUP, "customresourcedefinitions", None, &name);
        let object = match self
            .store
            .update(key, with_status, UpdateMode::Status)
            .await
        {
            Ok(updated) => updated,
            Err(e) => {
                tracing::warn!(crd = %name, error = %e, "failed to write CRD status");
                object
            }
        };
        self.reload_crds();
        object
    }

    /// After a removal: a CRD takes its custom resources with it.
    pub(crate) async fn after_delete(&self, kind: &Kind, object: &Value) {
        if !(kind.group == CRD_GROUP && kind.plural == "customresourcedefinitions") {
            return;
        }
        let group = object
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = object
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Ok(page) =
            self.store
                .list(&ObjectKey::prefix(group, plural, None), None, None, &|_| {
                    true
                })
        {
            for item in page.items {
                let name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
                let _ = self
                    .store
                    .delete(ObjectKey::new(group, plural, ns, name), None)
                    .await;
            }
        }
        self.reload_crds();
    }

    fn reload_crds(&self) {
        let _serialized = self
            .crd_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.store.list(
            &ObjectKey::prefix(CRD_GROUP, "customresourcedefinitions", None),
            None,
            None,
            &|_| true,
        ) {
            Ok(page) => self.registry.rebuild(&page.items),
            Err(e) => tracing::error!(error = %e, "failed to reload CRDs"),
        }
    }

    /// Inline admission: the bindings whose rules match, mutating ones first (each sees the
    /// previous one's changes), then validating ones. A denial is a 403 with the plugin's message.
    /// Returns the object as mutated, when a mutation changed it.
    pub(crate) async fn admit(
        &self,
        target: &server::Target,
        user: &UserInfo,
        operation: &str,
        object: Option<&Value>,
        old: Option<&Value>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        if self.inline.is_empty() {
            return Ok(None);
        }
        let namespace_labels = match target.namespace.as_deref() {
            Some(ns) => self
                .store
                .get(&ObjectKey::new("", "namespaces", None, ns))
                .map(|n| selectors::object_labels(&n))
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let bindings = self.bindings.load();
        let Some(set) = bindings.as_ref() else {
            // While bindings load, only the writes a binding's rules match wait: a CRD or an
            // object no binding looks at goes through, as the API server lets through what no
            // webhook matches (the host's own CRDs are created during this window).
            let matched = self
                .inline
                .iter()
                .any(|inline| inline.matches(target, operation, object.or(old), &namespace_labels));
            if !matched {
                return Ok(None);
            }
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "admission bindings are still loading; retry shortly",
            ));
        };
        let mut current = object.cloned();
        let mut mutated = false;
        for pass in [
            corbel_admission::Mode::Mutate,
            corbel_admission::Mode::Validate,
        ] {
            for inline in &self.inline {
                let Some(entry) = set.entries.get(&inline.name) else {
                    continue;
                };
                if entry.mode() != pass
                    || !inline.matches(
                        target,
                        operation,
                        current.as_ref().or(old),
                        &namespace_labels,
                    )
                {
                    continue;
                }
                let request = request(target, user, operation, current.as_ref(), old, name);
                let started = std::time::Instant::now();
                let (decision, outcome) =
                    corbel_admission::decide(&inline.name, entry, &request).await;
                if let Some(health) = &self.health {
                    let seconds = started.elapsed().as_secs_f64();
                    health.metrics.record(&inline.name, &outcome, seconds);
                }
                // The verdict's patch is applied as it is; the response carries no patch bytes.
                let (mut response, patch) = match decision {
                    corbel_admission::Decision::Verdict(mut verdict) => {
                        let patch = verdict.patch.take();
                        (corbel_admission::respond(&request, verdict), patch)
                    }
                    corbel_admission::Decision::Failed(response)
                    | corbel_admission::Decision::Unenforced(response) => (*response, None),
                };
                // As the API server does, the client sees every binding's warnings, admitted
                // or denied (kubectl prints them).
                server::warnings::add(response.warnings.take().unwrap_or_default());
                if !response.allowed {
                    let message = format!(
                        "admission webhook {:?} denied the request: {}",
                        inline.name, response.result.message
                    );
                    let code = StatusCode::from_u16(response.result.code)
                        .ok()
                        .filter(|c| c.is_client_error() || c.is_server_error())
                        .unwrap_or(StatusCode::FORBIDDEN);
                    return Err(ApiError::new(code, "Forbidden", message));
                }
                if let (Some(patch), Some(obj)) = (patch, current.as_mut()) {
                    json_patch::patch(obj, &patch).map_err(|e| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "InternalError",
                            format!("the patch of binding {:?} does not apply: {e}", inline.name),
                        )
                    })?;
                    mutated = true;
                }
            }
        }
        Ok(if mutated { current } else { None })
    }
}

impl InlineBinding {
    fn matches(
        &self,
        target: &server::Target,
        operation: &str,
        object: Option<&Value>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> bool {
        let rule_matches = self.rules.iter().any(|rule| {
            rule.matches(
                operation,
                &target.kind.group,
                &target.kind.version,
                &target.kind.plural,
                target.status,
                target.kind.namespaced,
            )
        });
        if !rule_matches {
            return false;
        }
        if let Some(selector) = &self.namespace_selector
            && target.kind.namespaced
            && !selector.matches(namespace_labels)
        {
            return false;
        }
        if let Some(selector) = &self.object_selector {
            let object_labels = object.map(selectors::object_labels).unwrap_or_default();
            if !selector.matches(&object_labels) {
                return false;
            }
        }
        true
    }
}

/// The AdmissionRequest for a write of the embedded API, as the API server would send it in an
/// AdmissionReview; the objects as their JSON text ([`corbel_admission::Object`]).
fn request(
    target: &server::Target,
    user: &UserInfo,
    operation: &str,
    object: Option<&Value>,
    old: Option<&Value>,
    name: &str,
) -> corbel_admission::Request {
    use corbel_admission::Object;
    use kube_core::admission::{AdmissionRequest, Operation};
    use kube_core::{GroupVersionKind, GroupVersionResource, TypeMeta};

    let kind = &target.kind;
    let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
    let gvr = GroupVersionResource::gvr(&kind.group, &kind.version, &kind.plural);
    let (operation, options_kind) = match operation {
        "CREATE" => (Operation::Create, "CreateOptions"),
        "UPDATE" => (Operation::Update, "UpdateOptions"),
        _ => (Operation::Delete, "DeleteOptions"),
    };
    let mut request = AdmissionRequest {
        types: TypeMeta {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
        },
        uid: uuid::Uuid::new_v4().to_string(),
        kind: gvk.clone(),
        resource: gvr.clone(),
        sub_resource: target.status.then(|| "status".to_owned()),
        request_kind: Some(gvk),
        request_resource: Some(gvr),
        request_sub_resource: None,
        name: name.to_owned(),
        namespace: target.namespace.clone(),
        operation,
        // k8s-openapi's UserInfo and RawExtension, filled below (this crate does not name them).
        user_info: Default::default(),
        object: object.map(Object::from_value),
        old_object: old.map(Object::from_value),
        dry_run: false,
        options: Some(Default::default()),
    };
    request.user_info.username = Some(user.username.clone());
    request.user_info.uid = Some(user.uid.clone());
    request.user_info.groups = Some(user.groups.clone());
    if let Some(options) = &mut request.options {
        options.0 = json!({"apiVersion": "meta.k8s.io/v1", "kind": options_kind});
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_as_go_quotes_them() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote(""), r#""""#);
    }

    /// A binding's namespace and object selectors pick which writes inline admission sends it,
    /// from the namespace's labels and the object's (or, on delete, the old object's).
    #[test]
    fn inline_bindings_match_by_rule_and_by_namespace_and_object_labels() {
        let binding = InlineBinding {
            name: "b".into(),
            rules: vec![WebhookRule {
                operations: vec!["CREATE".into()],
                api_groups: vec!["".into()],
                api_versions: vec!["v1".into()],
                resources: vec!["configmaps".into()],
                scope: "*".into(),
            }],
            namespace_selector: Some(LabelSelector::parse("env=prod").unwrap()),
            object_selector: Some(LabelSelector::parse("!skip").unwrap()),
        };
        let configmaps = server::Target {
            kind: Arc::new(registry::Kind {
                group: String::new(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
                singular: "configmap".into(),
                short_names: Vec::new(),
                namespaced: true,
                status_subresource: false,
                schema: None,
                columns: Vec::new(),
            }),
            namespace: Some("a".into()),
            name: None,
            status: false,
        };
        let prod = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        let plain = json!({"metadata": {"name": "c"}});
        let skipped = json!({"metadata": {"name": "c", "labels": {"skip": "yes"}}});
        assert!(binding.matches(&configmaps, "CREATE", Some(&plain), &prod));
        assert!(!binding.matches(&configmaps, "UPDATE", Some(&plain), &prod));
        assert!(!binding.matches(&configmaps, "CREATE", Some(&plain), &BTreeMap::new()));
        assert!(!binding.matches(&configmaps, "CREATE", Some(&skipped), &prod));
        assert!(binding.matches(&configmaps, "CREATE", None, &prod));
    }

    /// The request inline admission builds is what the API server would send in its
    /// AdmissionReview for the same write.
    #[test]
    fn inline_admission_request_reads_as_the_api_servers() {
        let target = server::Target {
            kind: Arc::new(registry::Kind {
                group: "example.com".into(),
                version: "v1".into(),
                kind: "Widget".into(),
                plural: "widgets".into(),
                singular: "widget".into(),
                short_names: Vec::new(),
                namespaced: true,
                status_subresource: true,
                schema: None,
                columns: Vec::new(),
            }),
            namespace: Some("team-a".into()),
            name: Some("w1".into()),
            status: true,
        };
        let user = UserInfo {
            username: "alice".into(),
            uid: "u-1".into(),
            groups: vec!["system:authenticated".into()],
            client_id: None,
        };
        let object = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "team-a", "labels": {"team": "a"}}, "spec": {"size": 3}});
        let old = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w1", "namespace": "team-a"}, "spec": {"size": 2}});
        let request = request(&target, &user, "UPDATE", Some(&object), Some(&old), "w1");
        assert!(!request.uid.is_empty());
        let mut got = serde_json::to_value(&request).unwrap();
        got.as_object_mut().unwrap().remove("uid");
        let gvk = json!({"group": "example.com", "version": "v1", "kind": "Widget"});
        // kube-core's GroupVersionResource also writes its `api_version` (the wire has none).
        let gvr = json!({"group": "example.com", "version": "v1", "resource": "widgets",
            "api_version": "example.com/v1"});
        assert_eq!(
            got,
            json!({
                "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
                "subResource": "status", "requestSubResource": null,
                "name": "w1", "namespace": "team-a", "operation": "UPDATE",
                "userInfo": {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]},
                "object": object, "oldObject": old, "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
            })
        );
        // The response to it is an admission.k8s.io/v1 AdmissionReview, as the webhooks answer.
        let review = kube_core::admission::AdmissionResponse::from(&request).into_review();
        assert_eq!(review.types.api_version, "admission.k8s.io/v1");
        assert_eq!(review.types.kind, "AdmissionReview");
    }
}
