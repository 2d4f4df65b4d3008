//! The component's side: the [`Controller`] the SDK exports, and the [`Env`] it builds from what
//! the host provides (the `resources` and `secrets` capabilities, wasi:http).

// Natively (unit tests, `cargo xtask crds`) nothing is exported, so the glue is unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::collections::BTreeMap;
use std::time::SystemTime;

use corbel_sdk::{
    CapabilityError, Controller, Error, GroupVersionKind, Object, Outcome, ReconcileError, Request,
    Verdict, export_controller, http, resources, secrets,
};
use serde_json::Value;

use crate::reconcile::{self, Cluster, Env, OriginDenied, Settings};
use crate::s3::{HttpRequest, HttpResponse, Transport, TransportError};
use crate::{admission, api};

struct Storage;

impl Controller for Storage {
    type Settings = Settings;

    const MANIFEST: &'static str = crate::MANIFEST;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        settings.check()
    }

    fn reconcile(object: &Object, settings: &Settings) -> Result<Outcome, ReconcileError> {
        let env = host_env(settings);
        match kind(object) {
            "Bucket" => reconcile::bucket(object, &env),
            "ObjectStore" => reconcile::object_store(object, &env),
            other => Err(unknown_kind(other)),
        }
    }

    fn cleanup(object: &Object, settings: &Settings) -> Result<Outcome, ReconcileError> {
        let env = host_env(settings);
        match kind(object) {
            "Bucket" => reconcile::bucket_cleanup(object, &env),
            "ObjectStore" => reconcile::object_store_cleanup(object, &env),
            other => Err(unknown_kind(other)),
        }
    }

    fn validate(request: &Request, _settings: &Settings) -> Result<Verdict, Error> {
        Ok(admission::validate(request))
    }
}

export_controller!(Storage);

fn kind(object: &Object) -> &str {
    object.0["kind"].as_str().unwrap_or_default()
}

fn unknown_kind(kind: &str) -> ReconcileError {
    ReconcileError::permanent(
        "UnknownKind",
        format!("the storage controller reconciles Bucket and ObjectStore, not {kind:?}"),
    )
}

fn host_env(settings: &Settings) -> Env<'_> {
    Env {
        cluster: &HostCluster,
        transport: &WasiHttp,
        now: SystemTime::now,
        settings,
    }
}

/// ObjectStores and Secrets through the host's `resources` and `secrets` capabilities, in the
/// reconciled object's namespace.
struct HostCluster;

fn object_store_kind() -> GroupVersionKind {
    GroupVersionKind {
        group: api::GROUP.into(),
        version: api::VERSION.into(),
        kind: "ObjectStore".into(),
    }
}

impl Cluster for HostCluster {
    fn object_store(&self, name: &str) -> Result<Option<Value>, CapabilityError> {
        resources::get(&object_store_kind(), None, name)
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        secrets::get(None, name)
    }

    fn buckets(&self) -> Result<Vec<Value>, CapabilityError> {
        let kind = GroupVersionKind {
            kind: "Bucket".into(),
            ..object_store_kind()
        };
        resources::list(&kind, None, None)
    }
}

/// The S3 client's transport inside the component: `wasi:http/outgoing-handler`, which the host
/// limits to the origins the operator granted.
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let what = format!("{} {}", request.method, request.url);
        let mut outgoing = http::Request::new(&request.method, &request.url).body(request.body);
        for (name, value) in &request.headers {
            // wasi:http forbids setting `host`; the URL's authority carries the same value,
            // which is what the signature covers.
            if !name.eq_ignore_ascii_case("host") {
                outgoing = outgoing.header(name, value);
            }
        }
        match http::send(&outgoing) {
            Ok(response) => Ok(HttpResponse {
                status: response.status,
                headers: response.headers,
                body: response.body,
            }),
            Err(http::HttpError::Denied(origin)) => Err(TransportError::with_source(
                format!("{what}: the host refused the origin {origin}"),
                OriginDenied(origin),
            )),
            Err(e) => Err(TransportError::new(format!("{what}: {e}"))),
        }
    }
}
