//! Errors as Kubernetes `Status` objects.

#[allow(unused_imports)]
use super::*;

#[derive(Debug)]
pub(crate) struct ApiError {
    code: StatusCode,
    pub(super) reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub(super) fn invalid(kind: &Kind, name: &str, causes: Vec<(String, String, String)>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(_, _, message)| message.clone())
            .collect();
        let message = format!(
            "{} {name:?} is invalid: {}",
            kind.qualified_kind(),
            summary.join(", ")
        );
        // A cause's message does not repeat its field, as in the API server's Status.
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, reason, message)| {
                let message = message
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&message)
                    .to_owned();
                json!({"field": field, "reason": reason, "message": message})
            })
            .collect();
        Self {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message,
            details: Some(
                json!({"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}),
            ),
        }
    }

    pub(super) fn store(kind: &Kind, name: &str, error: StoreError) -> Self {
        let details = json!({"name": name, "group": kind.group, "kind": kind.plural});
        let with = |code, reason, message: String| Self {
            code,
            reason,
            message,
            details: Some(details.clone()),
        };
        match error {
            StoreError::NotFound(_) => with(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {name:?} not found", kind.qualified()),
            ),
            StoreError::AlreadyExists(_) => with(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", kind.qualified()),
            ),
            StoreError::Conflict { reason, .. } => with(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: {reason}",
                    kind.qualified()
                ),
            ),
            StoreError::Gone { requested, oldest } => Self::new(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {requested} ({oldest})"),
            ),
            StoreError::Invalid(message) => {
                with(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
            }
            StoreError::Storage(message) => {
                tracing::error!(error = %message, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "an internal error occurred; the server log has the details",
                )
            }
        }
    }

    pub(super) fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.body())).into_response()
    }
}

pub(super) type ApiResult<T = Response> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::super::testing::{kind, read};
    use super::*;

    #[test]
    fn store_errors_become_the_api_servers_statuses() {
        let widgets = kind("example.com", "Widget", "widgets", true);
        let cases = [
            (
                StoreError::NotFound("k".into()),
                404,
                "NotFound",
                r#"widgets.example.com "w" not found"#,
            ),
            (
                StoreError::AlreadyExists("k".into()),
                409,
                "AlreadyExists",
                r#"widgets.example.com "w" already exists"#,
            ),
            (
                StoreError::Conflict {
                    key: "k".into(),
                    reason: "the object has been modified".into(),
                },
                409,
                "Conflict",
                r#"Operation cannot be fulfilled on widgets.example.com "w": the object has been modified"#,
            ),
            (
                StoreError::Gone {
                    requested: 3,
                    oldest: 10,
                },
                410,
                "Expired",
                "too old resource version: 3 (10)",
            ),
            (
                StoreError::Invalid("metadata.name: bad".into()),
                422,
                "Invalid",
                "metadata.name: bad",
            ),
        ];
        for (error, code, reason, message) in cases {
            let e = ApiError::store(&widgets, "w", error);
            let body = e.body();
            assert_eq!(body["code"], code, "{body}");
            assert_eq!(body["reason"], reason, "{body}");
            assert_eq!(body["message"], message, "{body}");
        }
        // The details name the object, except for an expired resource version.
        let e = ApiError::store(&widgets, "w", StoreError::NotFound("k".into()));
        assert_eq!(
            e.body()["details"],
            json!({"name": "w", "group": "example.com", "kind": "widgets"})
        );
        let gone = ApiError::store(
            &widgets,
            "w",
            StoreError::Gone {
                requested: 1,
                oldest: 2,
            },
        );
        assert!(gone.body().get("details").is_none());
    }

    #[test]
    fn a_storage_failure_is_a_generic_internal_error() {
        let e = ApiError::store(
            &kind("", "ConfigMap", "configmaps", true),
            "c",
            StoreError::Storage("disk /var/lib/secret-path is full".into()),
        );
        let body = e.body();
        assert_eq!(body["code"], 500);
        assert_eq!(body["reason"], "InternalError");
        assert!(!body.to_string().contains("secret-path"), "{body}");
        assert!(body.get("details").is_none());
    }

    #[test]
    fn invalid_lists_each_cause_without_repeating_its_field() {
        let e = ApiError::invalid(
            &kind("example.com", "Widget", "widgets", true),
            "w",
            vec![
                (
                    "spec.size".into(),
                    "FieldValueInvalid".into(),
                    "spec.size: Invalid value: 0: must be positive".into(),
                ),
                (
                    "spec.name".into(),
                    "FieldValueRequired".into(),
                    "spec.name: Required value".into(),
                ),
            ],
        );
        assert_eq!(
            e.body(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": r#"Widget.example.com "w" is invalid: spec.size: Invalid value: 0: must be positive, spec.name: Required value"#,
                "reason": "Invalid", "code": 422,
                "details": {"name": "w", "group": "example.com", "kind": "Widget", "causes": [
                    {"field": "spec.size", "reason": "FieldValueInvalid", "message": "Invalid value: 0: must be positive"},
                    {"field": "spec.name", "reason": "FieldValueRequired", "message": "Required value"},
                ]},
            })
        );
    }

    #[tokio::test]
    async fn an_error_answers_with_its_code_and_a_status_body() {
        let response = ApiError::bad_request("limit \"x\" is not a number").into_response();
        let (code, body) = read(response).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "limit \"x\" is not a number", "reason": "BadRequest", "code": 400})
        );
        let (code, body) = read(ApiError::not_found("nothing here").into_response()).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body["reason"], "NotFound");
    }
}
