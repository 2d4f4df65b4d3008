//! The HTTPS server. Handlers are thin: check the request, find the binding, call
//! [`admission::answer`], record metrics, answer. Endpoints:
//!
//! | path | answer |
//! | --- | --- |
//! | `POST /validate/{binding}`, `POST /mutate/{binding}` | AdmissionReview v1 |
//! | `GET /healthz` | 200 while the process serves |
//! | `GET /readyz` | 200 when every binding loaded, else 503 with the reasons |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /validate-raw/{binding}`, `POST /mutate-raw/{binding}` | any JSON document, `{"request": <document>}` → `{"response": {...}}` (docs/raw.md) |
//! | `GET /shadow`, `GET /shadow/{binding}` | the shadow candidates' counts and last disagreements (docs/shadow.md) |

mod raw;
mod server;
mod shadow;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::admission::bindings::{BindingSet, Entry, SharedBindings};
use crate::admission::{self, Mode};
use crate::telemetry::Health;

pub use server::serve;

/// What the handlers share: the bindings (owned by admission, swapped whole on reload) and the
/// reports of every room (owned by telemetry). Each room is handed only the part it writes.
pub struct AppState {
    /// Swapped whole when bindings are (re)loaded; a request keeps the set it started with.
    pub bindings: Arc<SharedBindings>,
    pub health: Arc<Health>,
}

impl AppState {
    /// A state whose bindings are still loading (`None`): not ready yet.
    pub fn loading() -> Arc<Self> {
        Arc::new(Self {
            bindings: Arc::new(ArcSwap::from_pointee(None)),
            health: Arc::new(Health::new()),
        })
    }

    pub fn with_bindings(bindings: BindingSet) -> Arc<Self> {
        let state = Self::loading();
        state.bindings.store(Arc::new(Some(bindings)));
        state
    }
}

pub fn router(state: Arc<AppState>, max_body_size: usize) -> Router {
    Router::new()
        .route(
            "/validate/{binding}",
            post(move |state, name, headers, body| {
                webhook(Mode::Validate, max_body_size, state, name, headers, body)
            }),
        )
        .route(
            "/mutate/{binding}",
            post(move |state, name, headers, body| {
                webhook(Mode::Mutate, max_body_size, state, name, headers, body)
            }),
        )
        .route(
            "/validate-raw/{binding}",
            post(move |state, name, headers, body| {
                raw::raw(Mode::Validate, max_body_size, state, name, headers, body)
            }),
        )
        .route(
            "/mutate-raw/{binding}",
            post(move |state, name, headers, body| {
                raw::raw(Mode::Mutate, max_body_size, state, name, headers, body)
            }),
        )
        .route("/shadow", get(shadow::all))
        .route("/shadow/{binding}", get(shadow::one))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { status(StatusCode::NOT_FOUND, "NotFound", "no such endpoint: POST /validate/{binding}, /mutate/{binding}, /validate-raw/{binding} or /mutate-raw/{binding}, GET /healthz, /readyz, /metrics or /shadow") })
        .with_state(state)
}

/// Past the size limit, how much more of a body is read (and dropped) so that the 413 reaches the
/// client, and for how long. An answer sent while unread bytes sit in the socket makes the kernel
/// reset the connection when it closes, and the client loses the answer with it: the API server
/// would log a dropped connection instead of the `Status`. A body bigger still is refused unread.
const DRAIN_LIMIT: usize = 64 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// A webhook's body, or the error answer: 413 past `max` bytes, 400 when reading fails.
async fn read_body(body: Body, headers: &HeaderMap, max: usize) -> Result<Bytes, Response> {
    let too_large = || {
        status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is over the size limit of {max} bytes (maxBodySize)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > max.max(DRAIN_LIMIT)) {
        let mut response = too_large();
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return Err(response);
    }
    let mut body = body.into_data_stream();
    let mut read = Vec::with_capacity(declared.unwrap_or(0).min(max));
    let mut total = 0usize;
    let reading = async {
        while let Some(chunk) = futures::StreamExt::next(&mut body).await {
            let chunk = chunk.map_err(|e| {
                status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("failed to read the request body: {e}"),
                )
            })?;
            total += chunk.len();
            if total <= max {
                read.extend_from_slice(&chunk);
            } else if total > DRAIN_LIMIT {
                break;
            }
        }
        Ok::<_, Response>(())
    };
    match tokio::time::timeout(DRAIN_TIME, reading).await {
        Ok(Ok(())) if total <= max => Ok(Bytes::from(read)),
        Ok(Err(response)) => Err(response),
        Ok(Ok(())) => Err(too_large()),
        Err(_) if total > max => Err(too_large()),
        Err(_) => Err(status(
            StatusCode::REQUEST_TIMEOUT,
            "Timeout",
            format!("the request body did not arrive within {DRAIN_TIME:?}"),
        )),
    }
}

/// An error answer in the shape of a Kubernetes `Status`.
fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn webhook(
    mode: Mode,
    max_body_size: usize,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "content type {content_type:?} is not supported: send an AdmissionReview as application/json"
            ),
        );
    }
    let body = match read_body(body, &headers, max_body_size).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match admission::parse_review(&body) {
        Ok(request) => request,
        Err(e @ admission::ReviewError::Version { .. }) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("{e}: set admissionReviewVersions: [v1] in the webhook configuration"),
            );
        }
        Err(admission::ReviewError::NotAReview(e)) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("the body is not an AdmissionReview: {e}"),
            );
        }
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string()),
    };

    match admit(&state, &name, mode, "", &request).await {
        Ok(response) => (
            [(header::CONTENT_TYPE, "application/json")],
            admission::review_json(response),
        )
            .into_response(),
        Err(refused) => refused,
    }
}

/// Finds the binding a request names and answers with it through the one admission path,
/// recording the metrics: what the AdmissionReview and the raw endpoints do once they have a
/// request. `suffix` is the endpoint's (`""` or `"-raw"`), for the error naming the right one.
async fn admit(
    state: &AppState,
    name: &str,
    mode: Mode,
    suffix: &str,
    request: &admission::Request,
) -> Result<kube_core::admission::AdmissionResponse, Response> {
    let bindings = state.bindings.load();
    let Some(bindings) = bindings.as_ref() else {
        return Err(status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "bindings are still loading: retry shortly",
        ));
    };
    let Some(entry) = bindings.entries.get(name) else {
        return Err(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "no binding named {name:?}; the bindings are: {}",
                bindings.names().join(", ")
            ),
        ));
    };
    if entry.mode() != mode {
        let other = entry.mode().as_str();
        return Err(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("binding {name:?} is a {other} binding: POST /{other}{suffix}/{name}"),
        ));
    }
    let _in_flight = state.health.metrics.start();
    let started = Instant::now();
    let (response, outcome) = admission::answer(name, entry, request).await;
    state
        .health
        .metrics
        .record(name, &outcome, started.elapsed().as_secs_f64());
    Ok(response)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let bindings = state.bindings.load();
    let Some(bindings) = bindings.as_ref() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reason": "bindings are loading"})),
        )
            .into_response();
    };
    let report: serde_json::Map<String, serde_json::Value> = bindings
        .entries
        .iter()
        .map(|(name, entry)| {
            let value = match entry {
                Entry::Loaded(b) => match bindings.errors.get(name) {
                    None => json!({"loaded": true, "plugin": b.plugin.name(), "mode": b.mode, "wit": b.plugin.wit_version()}),
                    Some(e) => json!({"loaded": true, "plugin": b.plugin.name(), "mode": b.mode, "wit": b.plugin.wit_version(), "lastError": e}),
                },
                Entry::Failed { plugin, reason, mode, .. } => json!({"loaded": false, "plugin": plugin, "mode": mode, "error": reason}),
            };
            // A candidate that failed to load is reported, never makes the binding unready.
            let mut value = value;
            if let Entry::Loaded(b) = entry
                && let Some(shadow) = &b.shadow
            {
                value["shadow"] = shadow.readiness();
            }
            (name.clone(), value)
        })
        .collect();
    let controllers = state.health.controllers();
    let controllers_ready = controllers.ready();
    let controllers: serde_json::Map<String, serde_json::Value> = controllers
        .loaded
        .into_iter()
        .map(|(name, result)| {
            let value = match result {
                Ok(kinds) => json!({"loaded": true, "kinds": kinds}),
                Err(e) => json!({"loaded": false, "error": e}),
            };
            (name, value)
        })
        .collect();
    let problems = state.health.problems();
    let ready = bindings.is_ready() && controllers_ready && problems.is_empty();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"ready": ready, "bindings": report, "controllers": controllers});
    if !problems.is_empty() {
        body["problems"] = json!(problems);
    }
    (code, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.health.metrics.encode(),
    )
        .into_response()
}
