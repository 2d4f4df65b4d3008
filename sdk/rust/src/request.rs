use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::bindings::corbel::plugin::types as wit_types;
use crate::bindings::exports::corbel::plugin::admission as wit;

/// The operation the API server is admitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub resource: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// One admission request, as the API server sent it.
///
/// The objects arrive as JSON text and are parsed when first asked for: [`Request::labels`] and
/// [`Request::annotations`] read only `metadata` from the text, and [`Request::object_as`] parses
/// straight into your type, so a policy that needs a few fields never builds the whole tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub uid: String,
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new object; absent on DELETE. Read it with [`Request::object`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object: Option<Json>,
    /// The existing object, on UPDATE and DELETE. Read it with [`Request::old_object`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old_object: Option<Json>,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    options: Option<Json>,
}

/// A JSON document of the request: the text as the host sent it, parsed into a [`Value`] on
/// first use. The text was checked to be JSON when the request arrived, so parsing it later
/// cannot fail.
#[derive(Clone)]
struct Json {
    text: Option<String>,
    value: OnceCell<Value>,
}

impl Json {
    /// Checks that `text` is JSON (without building anything) and keeps it for later.
    fn checked(what: &str, text: String) -> Result<Self, Error> {
        serde_json::from_str::<IgnoredAny>(&text)
            .map_err(|e| Error::new(format!("the request's {what} is not JSON: {e}")))?;
        Ok(Self {
            text: Some(text),
            value: OnceCell::new(),
        })
    }

    fn parsed(value: Value) -> Self {
        Self {
            text: None,
            value: OnceCell::from(value),
        }
    }

    fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            let text = self.text.as_deref().unwrap_or("null");
            serde_json::from_str(text).expect("the text was checked to be JSON on arrival")
        })
    }

    /// Deserializes into `T`: from the text when the tree was never built, else from the tree.
    fn to<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        match (self.value.get(), &self.text) {
            (None, Some(text)) => serde_json::from_str(text),
            _ => T::deserialize(self.value()),
        }
    }

    /// `metadata.labels` or `metadata.annotations`, read without building the rest of the tree.
    fn metadata_map<M: OneMap>(
        &self,
        whole: fn(&Value) -> BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        if let (None, Some(text)) = (self.value.get(), &self.text) {
            // A document whose metadata is not shaped as Kubernetes writes it (say, `labels`
            // being a list) is read through the tree below, which tolerates anything.
            if let Ok(head) = serde_json::from_str::<Head<M>>(text) {
                let map = head.metadata.and_then(OneMap::into_map).unwrap_or_default();
                return map
                    .into_iter()
                    .filter_map(|(k, v)| match v {
                        Value::String(s) => Some((k, s)),
                        _ => None,
                    })
                    .collect();
            }
        }
        whole(self.value())
    }
}

impl std::fmt::Debug for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.value.get(), &self.text) {
            (Some(value), _) => value.fmt(f),
            (None, Some(text)) => f.write_str(text),
            (None, None) => f.write_str("null"),
        }
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Json::parsed)
    }
}

/// The top of a Kubernetes object with one map of its `metadata` read: serde skips every other
/// field without allocating.
#[derive(Deserialize)]
#[serde(bound = "M: OneMap")]
struct Head<M> {
    #[serde(default = "Option::default")]
    metadata: Option<M>,
}

trait OneMap: DeserializeOwned {
    fn into_map(self) -> Option<BTreeMap<String, Value>>;
}

#[derive(Deserialize)]
struct Labels {
    #[serde(default)]
    labels: Option<BTreeMap<String, Value>>,
}

impl OneMap for Labels {
    fn into_map(self) -> Option<BTreeMap<String, Value>> {
        self.labels
    }
}

#[derive(Deserialize)]
struct Annotations {
    #[serde(default)]
    annotations: Option<BTreeMap<String, Value>>,
}

impl OneMap for Annotations {
    fn into_map(self) -> Option<BTreeMap<String, Value>> {
        self.annotations
    }
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

impl Request {
    /// Starts a request for tests: `Request::builder(Operation::Create, "Pod").object(json!({...})).build()`.
    pub fn builder(operation: Operation, kind: &str) -> RequestBuilder {
        RequestBuilder::new(operation, kind)
    }

    /// Reads the `request` of an AdmissionReview v1 JSON document, as found in test fixtures.
    pub fn from_review_json(review: &str) -> Result<Self, Error> {
        let mut review: Value = serde_json::from_str(review)?;
        let request = review
            .get_mut("request")
            .map(Value::take)
            .ok_or_else(|| Error::new("the AdmissionReview has no `request`"))?;
        Ok(serde_json::from_value(request)?)
    }

    /// The new object; `None` on DELETE.
    pub fn object(&self) -> Option<&Value> {
        self.object.as_ref().map(Json::value)
    }

    /// The existing object, on UPDATE and DELETE.
    pub fn old_object(&self) -> Option<&Value> {
        self.old_object.as_ref().map(Json::value)
    }

    /// The operation's options (`CreateOptions`, `UpdateOptions`, `DeleteOptions`), when sent.
    pub fn options(&self) -> Option<&Value> {
        self.options.as_ref().map(Json::value)
    }

    /// The object the request is about: the new object, or on DELETE the old one.
    pub fn subject(&self) -> Option<&Value> {
        self.subject_json().map(Json::value)
    }

    fn subject_json(&self) -> Option<&Json> {
        self.object.as_ref().or(self.old_object.as_ref())
    }

    /// The new object, deserialized into your own type or a `k8s-openapi` type (feature `k8s`).
    /// Straight from the request's text: no intermediate [`Value`] is built.
    pub fn object_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let object = self
            .object
            .as_ref()
            .ok_or_else(|| Error::new("the request carries no object"))?;
        object
            .to()
            .map_err(|e| Error::new(format!("the object is not a valid {}: {e}", self.kind.kind)))
    }

    /// Labels of [`Request::subject`] (empty when it has none).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.subject_json()
            .map(|j| j.metadata_map::<Labels>(crate::objects::labels))
            .unwrap_or_else(|| EMPTY.clone())
    }

    /// Annotations of [`Request::subject`] (empty when it has none).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.subject_json()
            .map(|j| j.metadata_map::<Annotations>(crate::objects::annotations))
            .unwrap_or_else(|| EMPTY.clone())
    }

    pub(crate) fn from_wit(request: wit::AdmissionRequest) -> Result<Self, Error> {
        let parse = |what: &str, text: Option<String>| -> Result<Option<Json>, Error> {
            text.map(|t| Json::checked(what, t)).transpose()
        };
        Ok(Self {
            uid: request.uid,
            kind: gvk(request.kind),
            resource: GroupVersionResource {
                group: request.resource.group,
                version: request.resource.version,
                resource: request.resource.resource,
            },
            sub_resource: request.sub_resource,
            operation: match request.operation {
                wit::Operation::Create => Operation::Create,
                wit::Operation::Update => Operation::Update,
                wit::Operation::Delete => Operation::Delete,
                wit::Operation::Connect => Operation::Connect,
            },
            namespace: request.namespace,
            name: request.name,
            object: parse("object", request.object)?,
            old_object: parse("oldObject", request.old_object)?,
            user_info: UserInfo {
                username: request.user_info.username,
                uid: request.user_info.uid,
                groups: request.user_info.groups,
                extra: request
                    .user_info
                    .extra
                    .into_iter()
                    .map(|e| (e.key, e.values))
                    .collect(),
            },
            dry_run: request.dry_run,
            options: parse("options", request.options)?,
        })
    }
}

fn gvk(g: wit_types::GroupVersionKind) -> GroupVersionKind {
    GroupVersionKind {
        group: g.group,
        version: g.version,
        kind: g.kind,
    }
}

/// Builds a [`Request`] for unit tests.
#[derive(Debug, Clone)]
pub struct RequestBuilder(Request);

impl RequestBuilder {
    fn new(operation: Operation, kind: &str) -> Self {
        let (group, version) = group_version_of(kind);
        Self(Request {
            uid: "00000000-0000-0000-0000-000000000000".into(),
            kind: GroupVersionKind {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
            },
            resource: GroupVersionResource {
                group: group.into(),
                version: version.into(),
                resource: format!("{}s", kind.to_lowercase()),
            },
            sub_resource: None,
            operation,
            namespace: None,
            name: None,
            object: None,
            old_object: None,
            user_info: UserInfo::default(),
            dry_run: false,
            options: None,
        })
    }

    pub fn group_version(mut self, group: &str, version: &str) -> Self {
        self.0.kind.group = group.into();
        self.0.kind.version = version.into();
        self.0.resource.group = group.into();
        self.0.resource.version = version.into();
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.namespace = Some(namespace.into());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.0.name = Some(name.into());
        self
    }

    pub fn object(mut self, object: Value) -> Self {
        self.0.object = Some(Json::parsed(object));
        self
    }

    pub fn old_object(mut self, object: Value) -> Self {
        self.0.old_object = Some(Json::parsed(object));
        self
    }

    /// The object as JSON text, kept as text the way a request from the host is: for testing
    /// what a policy reads without building the whole tree.
    pub fn object_json(mut self, text: &str) -> Result<Self, Error> {
        self.0.object = Some(Json::checked("object", text.to_owned())?);
        Ok(self)
    }

    pub fn build(self) -> Request {
        self.0
    }
}

/// The API group and version of the common built-in kinds, so tests need not spell them out.
fn group_version_of(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => ("apps", "v1"),
        "Job" | "CronJob" => ("batch", "v1"),
        _ => ("", "v1"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"team":"a","n":1},"annotations":{"note":"x"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}"#;

    fn from_text(text: &str) -> Request {
        Request::builder(Operation::Create, "Pod")
            .object_json(text)
            .expect("valid JSON")
            .build()
    }

    #[test]
    fn labels_and_annotations_are_read_from_the_text_without_building_the_tree() {
        let request = from_text(POD);
        assert_eq!(
            request.labels(),
            BTreeMap::from([("team".to_owned(), "a".to_owned())])
        );
        assert_eq!(request.annotations()["note"], "x");
        let json = request.object.as_ref().expect("has an object");
        assert!(json.value.get().is_none(), "the tree was built");
        assert_eq!(request.object().expect("has an object")["kind"], "Pod");
        assert!(json.value.get().is_some());
    }

    #[test]
    fn labels_read_from_the_text_match_labels_read_from_the_tree() {
        for text in [
            POD,
            r#"{"metadata":{}}"#,
            r#"{"metadata":null}"#,
            r#"{"kind":"ConfigMap"}"#,
            r#"{"metadata":{"labels":null}}"#,
            r#"{"metadata":{"labels":["not","a","map"]}}"#,
            r#"{"metadata":{"labels":{"a":"1","b":true,"c":{"d":"e"}}}}"#,
            r#"[1,2,3]"#,
        ] {
            let tree = Request::builder(Operation::Create, "Pod")
                .object(serde_json::from_str(text).expect("valid JSON"))
                .build();
            assert_eq!(from_text(text).labels(), tree.labels(), "{text}");
            assert_eq!(from_text(text).annotations(), tree.annotations(), "{text}");
        }
    }

    #[test]
    fn object_as_parses_straight_from_the_text() {
        #[derive(Deserialize)]
        struct Pod {
            spec: Spec,
        }
        #[derive(Deserialize)]
        struct Spec {
            containers: Vec<Value>,
        }
        let request = from_text(POD);
        let pod: Pod = request.object_as().expect("a pod");
        assert_eq!(pod.spec.containers[0]["image"], "nginx");
        let err = request.object_as::<Vec<String>>().unwrap_err();
        assert!(err.to_string().contains("not a valid Pod"), "{err}");
    }

    #[test]
    fn text_that_is_not_json_is_refused_on_arrival() {
        let err = Request::builder(Operation::Create, "Pod")
            .object_json("{\"metadata\": ")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the request's object is not JSON"),
            "{err}"
        );
    }

    #[test]
    fn requests_compare_and_serialize_by_content_not_by_form() {
        let value: Value = serde_json::from_str(POD).expect("valid JSON");
        let tree = Request::builder(Operation::Create, "Pod")
            .object(value.clone())
            .build();
        assert_eq!(from_text(POD), tree);
        let written = serde_json::to_value(from_text(POD)).expect("serializes");
        assert_eq!(written["object"], value);
        assert_eq!(written["operation"], json!("CREATE"));
    }
}
