//! `POST /validate-raw/{binding}` and `POST /mutate-raw/{binding}`: any JSON document through a
//! binding, in Kubewarden's raw format (docs/raw.md). The handler only reads the body, finds the
//! binding and writes the answer; `admission::raw` turns the document into the request that
//! takes the one admission path (`admission::answer`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, read_body, status};
use crate::admission::{self, Mode};

pub(super) async fn raw(
    mode: Mode,
    max_body_size: usize,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(body, &headers, max_body_size).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match admission::raw::request(&body) {
        Ok(request) => request,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
    };
    let bindings = state.bindings.load();
    let Some(bindings) = bindings.as_ref() else {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "bindings are still loading: retry shortly",
        );
    };
    let Some(entry) = bindings.entries.get(&name) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "no binding named {name:?}; the bindings are: {}",
                bindings.names().join(", ")
            ),
        );
    };
    if entry.mode() != mode {
        let other = entry.mode().as_str();
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("binding {name:?} is a {other} binding: POST /{other}-raw/{name}"),
        );
    }
    let _in_flight = state.health.metrics.start();
    let started = Instant::now();
    let (response, outcome) = admission::answer(&name, entry, &request).await;
    state
        .health
        .metrics
        .record(&name, &outcome, started.elapsed().as_secs_f64());
    axum::Json(admission::raw::response_json(response)).into_response()
}
