//! The HTTP side of the embedded API: paths and verbs as Kubernetes', so kubectl and kube-rs work
//! against it unchanged. Handlers parse the path, authenticate and authorize, then call the store.

mod discovery;
mod errors;
mod routes;
#[cfg(test)]
mod testing;
mod verbs;
pub(crate) mod warnings;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use super::KubeApi;
use super::registry::{CRD_GROUP, Kind};
use super::selectors::{FieldSelector, LabelSelector, object_labels};
use corbel_auth::{RequestAttributes, UserInfo};
use corbel_store::{Deleted, EventType, ObjectKey, StoreError, UpdateMode};

/// The Kubernetes version the API presents itself as (discovery, `kubectl version`).
const MINOR: &str = "33";

pub fn router(api: Arc<KubeApi>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/apis", get(group_list))
        .route("/api/{*rest}", any(core))
        .route("/apis/{*rest}", any(apis))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*group_version}", get(openapi_group_version))
        .layer(axum::middleware::from_fn(
            |request: axum::extract::Request, next: axum::middleware::Next| {
                warnings::collecting(next.run(request))
            },
        ))
        .with_state(api)
}

pub(crate) use self::errors::*;
pub(crate) use self::routes::*;
#[allow(unused_imports)]
use self::{discovery::*, verbs::*, watch::*};
