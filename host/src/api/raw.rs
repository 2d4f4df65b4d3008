//! `POST /validate-raw/{binding}` and `POST /mutate-raw/{binding}`: any JSON document through a
//! binding, in Kubewarden's raw format (docs/raw.md). The handler only reads the body, finds the
//! binding and writes the answer; `admission::raw` turns the document into the request that
//! takes the one admission path (`admission::answer`).

use std::sync::Arc;

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
    match super::admit(&state, &name, mode, "-raw", &request).await {
        Ok(response) => axum::Json(admission::raw::response_json(response)).into_response(),
        Err(refused) => refused,
    }
}
