//! Raw JSON evaluation: any JSON document, not only a Kubernetes object, through a binding, for CI
//! pipelines and callers outside Kubernetes (`POST /validate-raw/{binding}`, docs/raw.md).
//!
//! The body is Kubewarden's raw request, `{"request": <document>}` (with an optional `uid`). The
//! document becomes the `object` of an AdmissionRequest (operation CREATE; its kind taken from the
//! document's `apiVersion` and `kind` when it has them), which then takes the one admission path
//! ([`crate::answer`]): same binding, same failure policy, same enforcement. The answer is
//! `{"response": {"uid", "allowed", "status", "warnings"}}` ([`response_json`]).

use kube_core::admission::AdmissionResponse;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::Request;
use crate::patch::json_type_with_article;

/// Why a raw body cannot be evaluated; the message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RawError(String);

/// The AdmissionRequest for a raw body.
pub fn request(body: &[u8]) -> Result<Request, RawError> {
    let body: Value = serde_json::from_slice(body).map_err(|e| {
        RawError(format!(
            "the body is not JSON ({e}): send {{\"request\": <your JSON document>}}"
        ))
    })?;
    let Value::Object(mut body) = body else {
        return Err(RawError(
            "the body is not a JSON object: send {\"request\": <your JSON document>}".into(),
        ));
    };
    let uid = match body.remove("uid") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(uid)) => uid,
        Some(other) => {
            return Err(RawError(format!("`uid` must be a string, not {other}")));
        }
    };
    let mut document = match body.remove("request") {
        Some(Value::Object(document)) => document,
        None | Some(Value::Null) => {
            return Err(RawError(
                "the body has no `request`: send {\"request\": <your JSON document>}".into(),
            ));
        }
        Some(other) => {
            return Err(RawError(format!(
                "`request` must be a JSON object (the document to evaluate), not {}",
                json_type_with_article(&other)
            )));
        }
    };
    // Policies read labels and names from `metadata`: a document gets an empty one, and one it
    // has must be Kubernetes ObjectMeta (the request's objects are handed over as their text,
    // so nothing else would check it).
    match document.get("metadata") {
        None => {
            document.insert("metadata".into(), json!({}));
        }
        Some(metadata) => {
            if let Err(e) = kube_core::ObjectMeta::deserialize(metadata) {
                return Err(RawError(format!(
                    "the document cannot be evaluated: {e} (a `metadata` member, if any, must be Kubernetes ObjectMeta)"
                )));
            }
        }
    }
    let text = |key: &str| document.get(key).and_then(Value::as_str).unwrap_or("");
    let (group, version) = match text("apiVersion").split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", text("apiVersion")),
    };
    let meta = |key: &str| {
        document
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let request = json!({
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": text("kind")},
        "resource": {"group": group, "version": version, "resource": ""},
        "name": meta("name"),
        "namespace": meta("namespace"),
        "operation": "CREATE",
        "userInfo": {},
        "object": document,
        "dryRun": false,
    });
    serde_json::from_value(request).map_err(|e| {
        RawError(format!(
            "the document cannot be evaluated: {e} (a `metadata` member, if any, must be Kubernetes ObjectMeta)"
        ))
    })
}

/// The raw answer: `{"response": {"uid", "allowed", "status": {...}, "warnings": [...]}}`, with
/// `patchType` and `patch` (base64 JSON Patch) when a mutate binding changed the document, and
/// `auditAnnotations` when an `audit` binding would have denied it.
pub fn response_json(response: AdmissionResponse) -> Value {
    let review = crate::review_json(response);
    let review: Value = serde_json::from_slice(&review).expect("an AdmissionReview is JSON");
    let mut response = review["response"].clone();
    if let Some(fields) = response.as_object_mut() {
        fields.entry("warnings").or_insert_with(|| json!([]));
        fields.entry("status").or_insert_with(|| json!({}));
    }
    json!({ "response": response })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_becomes_the_object_as_it_is() {
        let request =
            request(br#"{"request": {"user": "alice", "action": "delete", "n": [1, 2]}}"#).unwrap();
        let object = serde_json::to_value(request.object.unwrap()).unwrap();
        assert_eq!(object["user"], "alice");
        assert_eq!(object["n"], json!([1, 2]));
        assert_eq!(
            object["metadata"],
            json!({}),
            "policies read labels from metadata"
        );
        assert_eq!(request.uid, "");
    }

    #[test]
    fn a_kubernetes_object_keeps_its_kind_and_name() {
        let request = request(
            br#"{"uid": "u1", "request": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}}"#,
        )
        .unwrap();
        assert_eq!(request.uid, "u1");
        assert_eq!(request.kind.group, "apps");
        assert_eq!(request.kind.kind, "Deployment");
        assert_eq!(request.name, "web");
        assert_eq!(request.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn bad_bodies_say_what_to_send() {
        for (body, says) in [
            (&b"not json"[..], "not JSON"),
            (b"[1]", "not a JSON object"),
            (b"{}", "has no `request`"),
            (
                br#"{"request": 3}"#,
                "must be a JSON object (the document to evaluate), not a number",
            ),
            (br#"{"request": [3]}"#, "not an array"),
            (br#"{"request": {"metadata": 7}}"#, "ObjectMeta"),
        ] {
            let error = request(body).unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
    }
}
