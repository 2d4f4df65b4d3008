//! The component's side: the [`Controller`] the SDK exports, and the [`Cluster`] it builds from
//! the host's `resources` capability.

// Natively (unit tests, `cargo xtask crds`) nothing is exported, so the glue is unused there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::collections::BTreeMap;

use corbel_sdk::{
    CapabilityError, Controller, Error, GroupVersionKind, Object, Outcome, ReconcileError, Request,
    Verdict, export_controller, http, resources, secrets,
};
use serde_json::Value;

use crate::reconcile::{self, Cluster};
use crate::{admission, api};

struct Gateway;

impl Controller for Gateway {
    type Settings = serde_json::Value;

    const MANIFEST: &'static str = crate::MANIFEST;

    fn validate_settings(_settings: &Value) -> Result<(), String> {
        Ok(())
    }

    fn reconcile(object: &Object, _settings: &Value) -> Result<Outcome, ReconcileError> {
        match object.0["kind"].as_str().unwrap_or_default() {
            "Gateway" => reconcile::gateway(object, &HostCluster),
            "Route" => reconcile::route(object, &HostCluster),
            other => Err(ReconcileError::permanent(
                "UnknownKind",
                format!("the gateway controller reconciles Gateway and Route, not {other:?}"),
            )),
        }
    }

    fn cleanup(_object: &Object, _settings: &Value) -> Result<Outcome, ReconcileError> {
        // The XdsSnapshot is the Gateway's child and goes with it; a deleted Route changes the
        // Gateway's snapshot through the Route watch.
        Ok(Outcome::default())
    }

    fn validate(request: &Request, _settings: &Value) -> Result<Verdict, Error> {
        Ok(admission::validate(request))
    }
}

export_controller!(Gateway);

struct HostCluster;

fn gvk(kind: &str) -> GroupVersionKind {
    let (group, version) = if kind == reconcile::SNAPSHOT_KIND {
        ("xds.corbel.dev", "v1alpha1")
    } else {
        (api::GROUP, api::VERSION)
    };
    GroupVersionKind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    }
}

impl Cluster for HostCluster {
    fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError> {
        resources::get(&gvk(kind), None, name)
    }

    fn list(&self, kind: &str) -> Result<Vec<String>, CapabilityError> {
        resources::list_json(&gvk(kind), None, None)
    }

    fn list_labelled(&self, kind: &str, selector: &str) -> Result<Vec<String>, CapabilityError> {
        resources::list_json(&gvk(kind), None, Some(selector))
    }

    fn create(&self, object: &Value) -> Result<Value, CapabilityError> {
        resources::create(object)
    }

    fn update(&self, object: &Value) -> Result<Value, CapabilityError> {
        resources::update(object)
    }

    fn delete(&self, kind: &str, name: &str) -> Result<bool, CapabilityError> {
        resources::delete(&gvk(kind), None, name)
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        secrets::get(None, name)
    }

    fn http(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut request = http::Request::new(method, url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        http::send(&request)
            .map(|r| (r.status, r.body))
            .map_err(|e| format!("{method} {url}: {e}"))
    }
}
