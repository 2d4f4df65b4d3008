use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
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

/// One admission request, as the API server sent it, with the objects already parsed.
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
    /// The new object; absent on DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    /// The existing object, on UPDATE and DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
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

    /// The object the request is about: the new object, or on DELETE the old one.
    pub fn subject(&self) -> Option<&Value> {
        self.object.as_ref().or(self.old_object.as_ref())
    }

    /// The new object, deserialized into your own type or a `k8s-openapi` type (feature `k8s`).
    pub fn object_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let object = self
            .object
            .as_ref()
            .ok_or_else(|| Error::new("the request carries no object"))?;
        T::deserialize(object)
            .map_err(|e| Error::new(format!("the object is not a valid {}: {e}", self.kind.kind)))
    }

    /// Labels of [`Request::subject`] (empty when it has none).
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.subject()
            .map(crate::objects::labels)
            .unwrap_or_else(|| EMPTY.clone())
    }

    /// Annotations of [`Request::subject`] (empty when it has none).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.subject()
            .map(crate::objects::annotations)
            .unwrap_or_else(|| EMPTY.clone())
    }

    pub(crate) fn from_wit(request: wit::AdmissionRequest) -> Result<Self, Error> {
        let parse = |what: &str, text: Option<String>| -> Result<Option<Value>, Error> {
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| Error::new(format!("the request's {what} is not JSON: {e}")))
            })
            .transpose()
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
        self.0.object = Some(object);
        self
    }

    pub fn old_object(mut self, object: Value) -> Self {
        self.0.old_object = Some(object);
        self
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
