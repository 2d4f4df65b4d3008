//! `GET /shadow` and `GET /shadow/{binding}`: what each binding's shadow candidate made of the
//! live requests (counts and the last disagreements, `admission::shadow::Report`), read by
//! `corbel shadow report` (docs/shadow.md).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, status};
use crate::admission::bindings::Entry;

/// Every binding that has a candidate: `{"bindings": {name: report}}`.
pub(super) async fn all(State(state): State<Arc<AppState>>) -> Response {
    let bindings = state.bindings.load();
    let Some(bindings) = bindings.as_ref() else {
        return loading();
    };
    let reports: serde_json::Map<String, serde_json::Value> = bindings
        .entries
        .iter()
        .filter_map(|(name, entry)| match entry {
            Entry::Loaded(b) => {
                let report = b.shadow.as_ref()?.report(b.plugin.name());
                Some((name.clone(), json!(report)))
            }
            Entry::Failed { .. } => None,
        })
        .collect();
    axum::Json(json!({ "bindings": reports })).into_response()
}

/// One binding's report; 404 for an unknown binding or one without a candidate.
pub(super) async fn one(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let bindings = state.bindings.load();
    let Some(bindings) = bindings.as_ref() else {
        return loading();
    };
    match bindings.entries.get(&name) {
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "no binding named {name:?}; the bindings are: {}",
                bindings.names().join(", ")
            ),
        ),
        Some(Entry::Failed { reason, .. }) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "binding {name:?} is not loaded ({reason}), so neither is its shadow candidate"
            ),
        ),
        Some(Entry::Loaded(b)) => match &b.shadow {
            Some(shadow) => axum::Json(shadow.report(b.plugin.name())).into_response(),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "binding {name:?} has no shadow candidate: add `shadow: {{plugin: ...}}` to it (docs/shadow.md)"
                ),
            ),
        },
    }
}

fn loading() -> Response {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "bindings are still loading: retry shortly",
    )
}
