//! The component's side: the [`Controller`] the SDK exports, and the [`Env`] it builds from what
//! the host provides (the `resources` and `secrets` capabilities, wasi:http).

// Natively (unit tests, `cargo xtask crds`) nothing is exported, so the glue is unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use corbel_sdk::http::{self, HttpError};
use corbel_sdk::{
    CapabilityError, Controller, Error, GroupVersionKind, Object, Outcome, ReconcileError, Request,
    Verdict, export_controller, resources, secrets,
};
use serde_json::Value;

use crate::backend::Transport;
use crate::reconcile::{self, Cluster, Env, Settings};
use crate::{admission, api};

struct Identity;

impl Controller for Identity {
    type Settings = Settings;

    const MANIFEST: &'static str = crate::MANIFEST;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        settings.check()
    }

    fn reconcile(object: &Object, settings: &Settings) -> Result<Outcome, ReconcileError> {
        let env = host_env(settings);
        match kind(object) {
            "Client" => reconcile::client(object, &env),
            "Realm" => reconcile::realm(object, &env),
            "IdentityProvider" => reconcile::provider(object, &env),
            other => Err(unknown_kind(other)),
        }
    }

    fn cleanup(object: &Object, settings: &Settings) -> Result<Outcome, ReconcileError> {
        let env = host_env(settings);
        match kind(object) {
            "Client" => reconcile::client_cleanup(object, &env),
            "Realm" => reconcile::realm_cleanup(object, &env),
            // Nothing in the provider belongs to the IdentityProvider itself.
            "IdentityProvider" => Ok(Outcome::default()),
            other => Err(unknown_kind(other)),
        }
    }

    fn validate(request: &Request, _settings: &Settings) -> Result<Verdict, Error> {
        Ok(admission::validate(request))
    }
}

export_controller!(Identity);

fn kind(object: &Object) -> &str {
    object.0["kind"].as_str().unwrap_or_default()
}

fn unknown_kind(kind: &str) -> ReconcileError {
    ReconcileError::permanent(
        "UnknownKind",
        format!(
            "the identity controller reconciles IdentityProvider, Realm and Client, not {kind:?}"
        ),
    )
}

fn host_env(settings: &Settings) -> Env<'_> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    Env {
        cluster: &HostCluster,
        transport: &WasiHttp,
        now,
        settings,
    }
}

/// The identity kinds and Secrets through the host's `resources` and `secrets` capabilities, in
/// the reconciled object's namespace.
struct HostCluster;

fn identity_kind(kind: &str) -> GroupVersionKind {
    GroupVersionKind {
        group: api::GROUP.into(),
        version: api::VERSION.into(),
        kind: kind.into(),
    }
}

fn secret_kind() -> GroupVersionKind {
    GroupVersionKind {
        group: String::new(),
        version: "v1".into(),
        kind: "Secret".into(),
    }
}

impl Cluster for HostCluster {
    fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError> {
        resources::get(&identity_kind(kind), None, name)
    }

    fn clients(&self) -> Result<Vec<Value>, CapabilityError> {
        resources::list(&identity_kind("Client"), None, None)
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        secrets::get(None, name)
    }

    fn owned_secret(&self, name: &str) -> Result<Option<Value>, CapabilityError> {
        resources::get(&secret_kind(), None, name)
    }

    fn create_secret(&self, secret: &Value) -> Result<Value, CapabilityError> {
        resources::create(secret)
    }

    fn update_secret(&self, secret: &Value) -> Result<Value, CapabilityError> {
        resources::update(secret)
    }

    fn delete_secret(&self, name: &str) -> Result<bool, CapabilityError> {
        resources::delete(&secret_kind(), None, name)
    }
}

/// The drivers' transport inside the component: `wasi:http/outgoing-handler`, which the host
/// limits to the origins the operator granted.
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&self, request: &http::Request) -> Result<http::Response, HttpError> {
        http::send(request)
    }
}
