//! Errors as Kubernetes `Status` objects.

#[allow(unused_imports)]
use super::*;

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
