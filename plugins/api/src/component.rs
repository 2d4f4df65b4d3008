//! The component's side: the [`Controller`] the SDK exports, and the [`Cluster`] it builds from
//! the host's `resources` capability.

// Natively (unit tests, `cargo xtask crds`) nothing is exported, so the glue is unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::time::{SystemTime, UNIX_EPOCH};

use corbel_sdk::{
    CapabilityError, Controller, Error, GroupVersionKind, Object, Outcome, ReconcileError, Request,
    Verdict, export_controller, resources,
};
use serde_json::Value;

use crate::admission;
use crate::reconcile::{self, Cluster};
use crate::settings::Settings;

struct Api;

impl Controller for Api {
    type Settings = Settings;

    const MANIFEST: &'static str = crate::MANIFEST;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        settings.check()
    }

    fn reconcile(object: &Object, settings: &Settings) -> Result<Outcome, ReconcileError> {
        match object.0["kind"].as_str().unwrap_or_default() {
            "Application" => reconcile::application(object, &HostCluster, settings),
            "ApiExposure" => reconcile::exposure(object, &HostCluster),
            "ApiSubscription" => reconcile::subscription(object, &HostCluster, settings),
            "Approval" => reconcile::approval(object),
            other => Err(ReconcileError::permanent(
                "UnknownKind",
                format!(
                    "the api controller reconciles Application, ApiExposure, ApiSubscription and Approval, not {other:?}"
                ),
            )),
        }
    }

    // What the kinds create is owned by them and goes with them (the identity controller
    // removes a deleted Client from its provider, then its Secret).

    fn validate(request: &Request, settings: &Settings) -> Result<Verdict, Error> {
        Ok(admission::validate(request, settings))
    }

    fn mutate(request: &Request, _settings: &Settings) -> Result<Verdict, Error> {
        Ok(admission::mutate(request, &now_rfc3339()))
    }
}

export_controller!(Api);

fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    corbel_sdk::controller::rfc3339(secs)
}

struct HostCluster;

fn gvk(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    }
}

impl Cluster for HostCluster {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, CapabilityError> {
        resources::get(&gvk(api_version, kind), namespace, name)
    }

    fn list(&self, api_version: &str, kind: &str) -> Result<Vec<Value>, CapabilityError> {
        resources::list(&gvk(api_version, kind), None, None)
    }

    fn create(&self, object: &Value) -> Result<Value, CapabilityError> {
        resources::create(object)
    }

    fn update(&self, object: &Value) -> Result<Value, CapabilityError> {
        resources::update(object)
    }

    fn delete(&self, api_version: &str, kind: &str, name: &str) -> Result<bool, CapabilityError> {
        resources::delete(&gvk(api_version, kind), None, name)
    }
}
