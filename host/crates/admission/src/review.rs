//! Reading an AdmissionReview: the request with its objects kept as the JSON text they came in.
//!
//! kube's `AdmissionReview<DynamicObject>` is the obvious type to parse a review into, and the
//! webhook did, but on the request path it costs more than everything Corbel does with the
//! request outside the sandbox (issue 17, `docs/benchmarks.md`, the one-core bench): its `TypeMeta`
//! is `#[serde(flatten)]`, so serde first buffers the *whole* review as a tree of `Content`
//! values and parses that a second time; `DynamicObject` flattens again (its `data`), building a
//! `BTreeMap` tree of the object; and the guest then needs the object as JSON text, so it was
//! serialised back. About 10 % of the server's CPU in a profile of a 3.2 KB Pod review went to
//! that, and none of it is needed: a plugin reads the object as text.
//!
//! So [`parse_review`] reads the envelope with a struct of its own (no flatten) into kube's
//! `AdmissionRequest`, with each object an [`Object`]: its JSON exactly as received (a
//! `RawValue`, validated as JSON, not parsed into a tree), its metadata parsed on first use. kube's
//! request type stays: its field names, defaults and `Operation` are the API server's.

use std::borrow::Cow;
use std::sync::OnceLock;

use kube_core::admission::AdmissionRequest;
use kube_core::{ApiResource, DynamicResourceScope, ObjectMeta, Resource, TypeMeta};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The AdmissionReview version Corbel reads.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An object of an admission request (`object`, `oldObject`): its JSON text as it came, parsed
/// only when something asks for its metadata or its value.
#[derive(Debug)]
pub struct Object {
    json: Box<RawValue>,
    meta: OnceLock<ObjectMeta>,
    /// Set by [`Resource::meta_mut`]: the metadata was changed, so the JSON text is rebuilt.
    edited: bool,
}

impl Object {
    /// The object's JSON, as received (or rebuilt, once its metadata was changed).
    pub fn json(&self) -> Cow<'_, str> {
        if !self.edited {
            return Cow::Borrowed(self.json.get());
        }
        let mut value = self.value();
        value["metadata"] = serde_json::to_value(self.meta()).unwrap_or_default();
        Cow::Owned(value.to_string())
    }

    /// The object as a JSON tree (a parse; the request path never needs it).
    pub fn value(&self) -> serde_json::Value {
        let value: serde_json::Value = serde_json::from_str(self.json.get())
            .expect("an Object's text was validated as JSON when it was read");
        if !self.edited {
            return value;
        }
        let mut value = value;
        value["metadata"] = serde_json::to_value(self.meta()).unwrap_or_default();
        value
    }

    /// An object from a JSON tree (what the embedded API holds).
    pub fn from_value(value: &serde_json::Value) -> Self {
        Self::from_serialize(value).expect("a serde_json::Value always serializes")
    }

    /// An object from anything that serializes as one (a `DynamicObject` the audit listed).
    pub fn from_serialize<T: Serialize + ?Sized>(object: &T) -> serde_json::Result<Self> {
        Ok(Self::from_raw(serde_json::value::to_raw_value(object)?))
    }

    fn from_raw(json: Box<RawValue>) -> Self {
        Self {
            json,
            meta: OnceLock::new(),
            edited: false,
        }
    }
}

impl Clone for Object {
    fn clone(&self) -> Self {
        let json = if self.edited {
            RawValue::from_string(self.json().into_owned()).expect("an Object's text is JSON")
        } else {
            self.json.clone()
        };
        let meta = OnceLock::new();
        if let Some(m) = self.meta.get() {
            let _ = meta.set(m.clone());
        }
        Self {
            json,
            meta,
            edited: false,
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.edited {
            return self.value().serialize(serializer);
        }
        self.json.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        if !json.get().starts_with('{') {
            return Err(D::Error::custom(format_args!(
                "an object must be a JSON object, not `{}`",
                json.get().chars().take(40).collect::<String>()
            )));
        }
        Ok(Self::from_raw(json))
    }
}

impl Resource for Object {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    /// The object's metadata, parsed on the first call (empty when it has none or it is not
    /// Kubernetes ObjectMeta).
    fn meta(&self) -> &ObjectMeta {
        self.meta.get_or_init(|| {
            #[derive(Deserialize)]
            struct Only {
                #[serde(default)]
                metadata: ObjectMeta,
            }
            serde_json::from_str::<Only>(self.json.get())
                .map(|o| o.metadata)
                .unwrap_or_default()
        })
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.meta();
        self.edited = true;
        self.meta.get_mut().expect("parsed just above")
    }
}

/// Why a body is not an AdmissionReview Corbel can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not an AdmissionReview: {0}")]
    NotAReview(#[source] serde_json::Error),
    #[error(
        "expected apiVersion {API_VERSION} and kind AdmissionReview, got {api_version:?} {kind:?}"
    )]
    Version { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Reads an AdmissionReview v1 and returns its request (see the module doc for why not kube's
/// `AdmissionReview` type). Unknown fields are ignored, as the API server's decoder does.
pub fn parse_review(body: &[u8]) -> Result<crate::Request, ReviewError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Review {
        api_version: String,
        kind: String,
        #[serde(default)]
        request: Option<AdmissionRequest<Object>>,
    }
    let review: Review = serde_json::from_slice(body).map_err(ReviewError::NotAReview)?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(ReviewError::Version {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    let mut request = review.request.ok_or(ReviewError::NoRequest)?;
    request.types = TypeMeta {
        api_version: review.api_version,
        kind: review.kind,
    };
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(request: serde_json::Value) -> Vec<u8> {
        json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "request": request})
            .to_string()
            .into_bytes()
    }

    fn request(object: &str) -> String {
        format!(
            r#"{{"uid": "u1", "kind": {{"group": "", "version": "v1", "kind": "Pod"}},
            "resource": {{"group": "", "version": "v1", "resource": "pods"}},
            "name": "p", "operation": "CREATE", "userInfo": {{}}, "object": {object}}}"#
        )
    }

    #[test]
    fn keeps_the_object_as_it_came() {
        let object =
            r#"{"metadata": {"name": "p", "labels": {"team": "a"}}, "spec": {"z": 1, "a": [2]}}"#;
        let body = format!(
            r#"{{"apiVersion": "{API_VERSION}", "kind": "AdmissionReview", "request": {}}}"#,
            request(object)
        );
        let request = parse_review(body.as_bytes()).unwrap();
        assert_eq!(request.types.kind, "AdmissionReview");
        let parsed = request.object.as_ref().unwrap();
        // Byte for byte: key order and spacing as received, nothing re-serialised.
        assert_eq!(parsed.json(), object);
        assert_eq!(parsed.meta().labels.as_ref().unwrap()["team"], "a");
        assert_eq!(parsed.value()["spec"]["a"][0], 2);
        assert!(request.old_object.is_none());
    }

    #[test]
    fn an_edited_metadata_is_written_back() {
        let mut object =
            Object::from_value(&json!({"metadata": {"name": "p"}, "data": {"k": "v"}}));
        object.meta_mut().name = Some("q".into());
        let value: serde_json::Value = serde_json::from_str(&object.json()).unwrap();
        assert_eq!(value["metadata"]["name"], "q");
        assert_eq!(value["data"]["k"], "v");
        assert_eq!(serde_json::to_value(&object).unwrap(), value);
        assert_eq!(object.clone().json(), object.json());
    }

    #[test]
    fn reads_from_a_json_tree_too() {
        // `serde_json::from_value` (corbel test reads cases as YAML, then converts).
        let request: AdmissionRequest<Object> =
            serde_json::from_str(&request(r#"{"metadata": {"name": "p"}}"#)).unwrap();
        let tree = serde_json::to_value(&request).unwrap();
        let again: AdmissionRequest<Object> = serde_json::from_value(tree).unwrap();
        assert_eq!(again.object.unwrap().meta().name.as_deref(), Some("p"));
    }

    #[test]
    fn bad_reviews_say_what_is_wrong() {
        let cases: [(&[u8], &str); 5] = [
            (b"{nope", "not an AdmissionReview"),
            (
                br#"{"hello": 1}"#,
                "not an AdmissionReview: missing field `apiVersion`",
            ),
            (
                br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}"#,
                "expected apiVersion admission.k8s.io/v1",
            ),
            (
                br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#,
                "no request",
            ),
            (
                &review(serde_json::from_str(&request("[1]")).unwrap()),
                "an object must be a JSON object",
            ),
        ];
        for (body, says) in cases {
            let error = parse_review(body).unwrap_err().to_string();
            assert!(error.contains(says), "{error:?} should say {says:?}");
        }
    }
}
