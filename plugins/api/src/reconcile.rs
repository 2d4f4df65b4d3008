//! What a reconcile decides, over a [`Cluster`] (the host's `resources` capability in the
//! component, a map in tests). The API-management kinds own objects of the identity and gateway
//! domains and read back their status; those domains' controllers do the rest.
//!
//! - [`application`]: the identity `Client` named like the Application; Ready once the Client
//!   is, with its client id and Secret.
//! - [`exposure`]: the gateway `Route` named like the exposure; Ready once the Route is, with
//!   its URL, or saying what the Route waits for.
//! - [`subscription`]: finds the exposure by base path, creates the `Approval` (same name), a
//!   gateway `Consumer` for the Application's client id, and while the Approval is Granted a
//!   `ConsumeRoute` on the exposure's Route; otherwise there is none, so Envoy refuses the
//!   Application's tokens on that API.
//! - [`approval`]: the state the decisions lead to ([`crate::approval::state`]).

use corbel_sdk::controller::Status;
use corbel_sdk::{CapabilityError, Object, Outcome, ReconcileError};
use serde_json::{Value, json};

use crate::api::{
    self, ApiExposureSpec, ApiSubscriptionSpec, ApplicationSpec, ApprovalSpec, State,
};
use crate::settings::Settings;

pub const IDENTITY: &str = "identity.corbel.dev/v1alpha1";
pub const GATEWAY: &str = "gateway.corbel.dev/v1alpha1";

/// The objects a reconcile reads and writes. `namespace` `None` is the reconciled object's.
pub trait Cluster {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, CapabilityError>;
    /// Every object of a kind in the reconciled object's namespace.
    fn list(&self, api_version: &str, kind: &str) -> Result<Vec<Value>, CapabilityError>;
    fn create(&self, object: &Value) -> Result<Value, CapabilityError>;
    fn update(&self, object: &Value) -> Result<Value, CapabilityError>;
    /// `false` when it did not exist.
    fn delete(&self, api_version: &str, kind: &str, name: &str) -> Result<bool, CapabilityError>;
}

fn capability(what: &str, e: CapabilityError) -> ReconcileError {
    ReconcileError::transient("CapabilityFailed", format!("failed to {what}: {e}"))
}

/// Creates `desired` or brings the existing object's spec in line (fields the owner does not
/// set, such as defaults, are kept). Returns the object as stored.
fn ensure(cluster: &dyn Cluster, desired: Value) -> Result<Value, ReconcileError> {
    let api_version = desired["apiVersion"].as_str().unwrap_or_default();
    let kind = desired["kind"].as_str().unwrap_or_default();
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let what = format!("{kind} {name}");
    match cluster
        .get(api_version, kind, None, name)
        .map_err(|e| capability(&format!("read {what}"), e))?
    {
        None => cluster
            .create(&desired)
            .map_err(|e| capability(&format!("create {what}"), e)),
        Some(mut existing) => {
            let mut spec = existing["spec"].clone();
            if !spec.is_object() {
                spec = json!({});
            }
            for (key, value) in desired["spec"].as_object().into_iter().flatten() {
                spec[key] = value.clone();
            }
            // A field the owner no longer sets goes.
            if let Some(map) = spec.as_object_mut() {
                map.retain(|k, v| {
                    desired["spec"].get(k).is_some() || !owned_field(kind, k) || v.is_null()
                });
            }
            if spec == existing["spec"] {
                return Ok(existing);
            }
            existing["spec"] = spec;
            cluster
                .update(&existing)
                .map_err(|e| capability(&format!("update {what}"), e))
        }
    }
}

/// The spec fields this controller sets on the objects it owns (others are left alone).
fn owned_field(kind: &str, field: &str) -> bool {
    match kind {
        "Route" => matches!(field, "security" | "traffic"),
        "Client" => field == "scopes",
        _ => false,
    }
}

fn remove(
    cluster: &dyn Cluster,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<bool, ReconcileError> {
    cluster
        .delete(api_version, kind, name)
        .map_err(|e| capability(&format!("delete {kind} {name}"), e))
}

/// The Ready condition of an object: `Some((true, _))`, `Some((false, message))`, or `None`
/// before its controller looked at it.
fn ready(object: &Value) -> Option<(bool, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"] == "True",
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

fn waiting(reason: &str, message: impl Into<String>) -> Outcome {
    Outcome::default().condition("Ready", Status::False, reason, message.into())
}

fn owned_by(object: &Value, owner: &Object) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["uid"].as_str() == Some(owner.uid()))
}

/// An Application: its identity Client.
pub fn application(
    object: &Object,
    cluster: &dyn Cluster,
    settings: &Settings,
) -> Result<Outcome, ReconcileError> {
    let spec: ApplicationSpec = object.spec()?;
    let name = object.name();
    let realm = spec
        .realm_ref
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| settings.realm.clone());
    let mut client_spec = json!({"realmRef": {"name": realm}});
    if !spec.scopes.is_empty() {
        client_spec["scopes"] = json!(spec.scopes);
    }
    let client = ensure(
        cluster,
        json!({"apiVersion": IDENTITY, "kind": "Client", "metadata": {"name": name}, "spec": client_spec}),
    )?;
    let retry = settings.timing().blocked_retry();
    match ready(&client) {
        Some((true, _)) => {}
        Some((false, message)) => {
            return Ok(waiting(
                "ClientNotReady",
                format!("waiting for identity Client {name}: {message}"),
            )
            .requeue_after(retry));
        }
        None => {
            return Ok(waiting(
                "ClientNotReady",
                format!(
                    "waiting for the identity controller to register Client {name} in Realm {realm}"
                ),
            )
            .requeue_after(retry));
        }
    }
    let client_id = client["status"]["clientId"].as_str().unwrap_or_default();
    let secret = client["status"]["secretName"].as_str().unwrap_or_default();
    Ok(Outcome::default()
        .status(json!({"clientId": client_id, "secretName": secret}))
        .condition(
            "Ready",
            Status::True,
            "ClientReady",
            format!("client {client_id}; its credentials are in Secret {secret}"),
        ))
}

/// An ApiExposure: its gateway Route.
pub fn exposure(object: &Object, cluster: &dyn Cluster) -> Result<Outcome, ReconcileError> {
    let spec: ApiExposureSpec = object.spec()?;
    let name = object.name();
    let mut route = json!({
        "gatewayRef": {"name": spec.gateway_ref.name},
        "paths": [spec.base_path],
        "upstreams": spec.upstreams,
    });
    if let Some(security) = &spec.security {
        route["security"] = json!({"issuer": security.issuer});
        if !security.scopes.is_empty() {
            route["security"]["scopes"] = json!(security.scopes);
        }
    }
    if let Some(traffic) = &spec.traffic {
        route["traffic"] = serde_json::to_value(traffic).unwrap_or_default();
    }
    let stored = ensure(
        cluster,
        json!({"apiVersion": GATEWAY, "kind": "Route", "metadata": {"name": name}, "spec": route}),
    )?;
    let status = json!({"route": name});
    Ok(match ready(&stored) {
        Some((true, _)) => {
            let url = stored["status"]["url"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            Outcome::default()
                .status(json!({"route": name, "url": url}))
                .condition(
                    "Ready",
                    Status::True,
                    "RouteReady",
                    format!("served at {url}"),
                )
        }
        Some((false, message)) => waiting(
            "RouteNotReady",
            format!("Route {name} not Ready: {message}"),
        )
        .status(status),
        None => waiting(
            "RouteNotReady",
            format!("waiting for the gateway controller to serve Route {name}"),
        )
        .status(status),
    })
}

/// An Approval: its state.
pub fn approval(object: &Object) -> Result<Outcome, ReconcileError> {
    let spec: ApprovalSpec = object.spec()?;
    let (state, why) = crate::approval::state(&spec);
    let ready = if state == State::Granted {
        Status::True
    } else {
        Status::False
    };
    Ok(Outcome::default()
        .status(json!({"state": state}))
        .condition("Ready", ready, state.as_str(), why))
}

/// An ApiSubscription: its Approval, Consumer and, while Granted, ConsumeRoute.
pub fn subscription(
    object: &Object,
    cluster: &dyn Cluster,
    settings: &Settings,
) -> Result<Outcome, ReconcileError> {
    let spec: ApiSubscriptionSpec = object.spec()?;
    let name = object.name();
    let namespace = object.namespace().unwrap_or("default").to_owned();
    let timing = settings.timing();
    // The Application lives in another namespace, which no watch connects to: look again.
    let resync = timing.resync();
    let retry = timing.blocked_retry();
    let revoke = |cluster: &dyn Cluster| remove(cluster, GATEWAY, "ConsumeRoute", name);

    let exposures = cluster
        .list(api::API_VERSION, "ApiExposure")
        .map_err(|e| capability("list ApiExposures", e))?;
    let found = exposures.iter().find_map(|e| {
        let exposure: ApiExposureSpec = serde_json::from_value(e["spec"].clone()).ok()?;
        (exposure.base_path == spec.base_path).then(|| {
            (
                e["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                exposure,
            )
        })
    });
    let Some((exposure_name, exposure)) = found else {
        revoke(cluster)?;
        return Ok(waiting(
            "ExposureNotFound",
            format!(
                "no ApiExposure in namespace {namespace} serves base path {}",
                spec.base_path
            ),
        )
        .requeue_after(retry));
    };

    // The Approval, created once: decisions are appended by people, never rewritten here.
    let approval = match cluster
        .get(api::API_VERSION, "Approval", None, name)
        .map_err(|e| capability("read the Approval", e))?
    {
        Some(existing) if !owned_by(&existing, object) => {
            revoke(cluster)?;
            return Ok(waiting(
                "ApprovalNotOwned",
                format!("Approval {name} exists and is not this subscription's: delete it or rename the subscription"),
            )
            .requeue_after(retry));
        }
        Some(existing) => existing,
        None => {
            let approval = ApprovalSpec {
                strategy: exposure.approval.strategy,
                deciding_team: settings.team_of(&namespace).to_owned(),
                requester: spec.requester.clone().unwrap_or_default(),
                base_path: spec.base_path.clone(),
                application_ref: spec.application_ref.clone(),
                decisions: Vec::new(),
            };
            cluster
                .create(&json!({
                    "apiVersion": api::API_VERSION, "kind": "Approval",
                    "metadata": {"name": name}, "spec": approval,
                }))
                .map_err(|e| capability("create the Approval", e))?
        }
    };
    let approval_spec: ApprovalSpec =
        serde_json::from_value(approval["spec"].clone()).map_err(|e| {
            ReconcileError::permanent("InvalidApproval", format!("Approval {name}: {e}"))
        })?;
    let (state, why) = crate::approval::state(&approval_spec);

    let app = &spec.application_ref;
    let application = cluster
        .get(
            api::API_VERSION,
            "Application",
            Some(&app.namespace),
            &app.name,
        )
        .map_err(|e| capability("read the Application", e))?;
    let client_id = application
        .as_ref()
        .and_then(|a| a["status"]["clientId"].as_str())
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let Some(client_id) = client_id else {
        revoke(cluster)?;
        remove(cluster, GATEWAY, "Consumer", name)?;
        let message = match application.as_ref().map(ready) {
            None => format!(
                "waiting for Application {}/{} to exist",
                app.namespace, app.name
            ),
            Some(Some((_, m))) if !m.is_empty() => {
                format!(
                    "waiting for Application {}/{}: {m}",
                    app.namespace, app.name
                )
            }
            Some(_) => format!(
                "waiting for Application {}/{} to get its client",
                app.namespace, app.name
            ),
        };
        return Ok(waiting("ApplicationNotReady", message)
            .status(json!({"state": state, "approval": name, "clientId": null}))
            .requeue_after(retry));
    };

    ensure(
        cluster,
        json!({"apiVersion": GATEWAY, "kind": "Consumer", "metadata": {"name": name},
               "spec": {"gatewayRef": {"name": exposure.gateway_ref.name}, "clientId": client_id}}),
    )?;
    let status = json!({"state": state, "approval": name, "clientId": client_id});
    if state != State::Granted {
        revoke(cluster)?;
        return Ok(waiting(state.as_str(), why)
            .status(status)
            .requeue_after(resync));
    }
    ensure(
        cluster,
        json!({"apiVersion": GATEWAY, "kind": "ConsumeRoute", "metadata": {"name": name},
               "spec": {"consumerRef": {"name": name}, "routeRef": {"name": exposure_name}}}),
    )?;
    Ok(Outcome::default()
        .status(status)
        .condition(
            "Ready",
            Status::True,
            "Granted",
            format!(
                "{why}: Application {}/{} (client {client_id}) may call {}",
                app.namespace, app.name, spec.base_path
            ),
        )
        .requeue_after(resync))
}
