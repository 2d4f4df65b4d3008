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
/// The label a gateway Route's reconcile selects its grants by (the gateway plugin's `ROUTE_LABEL`).
pub const ROUTE_LABEL: &str = "gateway.corbel.dev/route";

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
            // Labels the owner sets are kept set (others' labels are left alone).
            let missing: Vec<(&String, &Value)> = desired["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, value)| {
                    existing["metadata"]["labels"].get(key.as_str()) != Some(value)
                })
                .collect();
            let labels_changed = !missing.is_empty();
            if labels_changed && !existing["metadata"]["labels"].is_object() {
                existing["metadata"]["labels"] = json!({});
            }
            for (key, value) in missing {
                existing["metadata"]["labels"][key] = value.clone();
            }
            if spec == existing["spec"] && !labels_changed {
                return Ok(existing);
            }
            existing["spec"] = spec;
            cluster
                .update(&existing)
                .map_err(|e| capability(&format!("update {what}"), e))
        }
    }
}

/// The time from now until `at` (seconds since the Unix epoch), and at least a second.
fn until(at: u64) -> std::time::Duration {
    std::time::Duration::from_secs(at.saturating_sub(crate::approval::now()).max(1))
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
    let (state, why, expires) = crate::approval::state_at(&spec, crate::approval::now());
    let ready = if state == State::Granted {
        Status::True
    } else {
        Status::False
    };
    let outcome = Outcome::default()
        .status(json!({"state": state}))
        .condition("Ready", ready, state.as_str(), why);
    Ok(match expires {
        Some(at) => outcome.requeue_after(until(at)),
        None => outcome,
    })
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
                grant_valid_seconds: exposure.approval.grant_valid_seconds,
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
    let (state, why, expires) = crate::approval::state_at(&approval_spec, crate::approval::now());
    // A grant that expires before the next resync is looked at again when it does.
    let resync = expires.map_or(resync, |at| resync.min(until(at)));

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
        // The Route's label lets the Route's reconcile find its grants by selector instead of
        // reading every grant of the namespace (docs/gateway.md, "How the work is split").
        json!({"apiVersion": GATEWAY, "kind": "ConsumeRoute",
               "metadata": {"name": name, "labels": {ROUTE_LABEL: exposure_name}},
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    /// Objects by (namespace, kind, name); what is created in the reconciled object's namespace
    /// is owned by it, as the host does.
    struct Fake {
        namespace: String,
        owner_uid: String,
        objects: RefCell<BTreeMap<(String, String, String), Value>>,
    }

    impl Fake {
        fn new(namespace: &str, owner_uid: &str) -> Fake {
            Fake {
                namespace: namespace.into(),
                owner_uid: owner_uid.into(),
                objects: RefCell::default(),
            }
        }

        fn put(&self, namespace: &str, object: Value) {
            let key = (
                namespace.to_owned(),
                object["kind"].as_str().unwrap().to_owned(),
                object["metadata"]["name"].as_str().unwrap().to_owned(),
            );
            self.objects.borrow_mut().insert(key, object);
        }

        fn find(&self, kind: &str, name: &str) -> Option<Value> {
            self.get("", kind, None, name).unwrap()
        }
    }

    impl Cluster for Fake {
        fn get(
            &self,
            _api_version: &str,
            kind: &str,
            namespace: Option<&str>,
            name: &str,
        ) -> Result<Option<Value>, CapabilityError> {
            let namespace = namespace.unwrap_or(&self.namespace).to_owned();
            Ok(self
                .objects
                .borrow()
                .get(&(namespace, kind.to_owned(), name.to_owned()))
                .cloned())
        }
        fn list(&self, _api_version: &str, kind: &str) -> Result<Vec<Value>, CapabilityError> {
            Ok(self
                .objects
                .borrow()
                .iter()
                .filter(|((ns, k, _), _)| *ns == self.namespace && k == kind)
                .map(|(_, v)| v.clone())
                .collect())
        }
        fn create(&self, object: &Value) -> Result<Value, CapabilityError> {
            let mut object = object.clone();
            object["metadata"]["ownerReferences"] = json!([{"uid": self.owner_uid}]);
            self.put(&self.namespace.clone(), object.clone());
            Ok(object)
        }
        fn update(&self, object: &Value) -> Result<Value, CapabilityError> {
            self.put(&self.namespace.clone(), object.clone());
            Ok(object.clone())
        }
        fn delete(
            &self,
            _api_version: &str,
            kind: &str,
            name: &str,
        ) -> Result<bool, CapabilityError> {
            Ok(self
                .objects
                .borrow_mut()
                .remove(&(self.namespace.clone(), kind.to_owned(), name.to_owned()))
                .is_some())
        }
    }

    fn subscription_object() -> Object {
        Object(
            json!({"apiVersion": api::API_VERSION, "kind": "ApiSubscription",
            "metadata": {"name": "checkout-orders", "namespace": "orders", "uid": "sub-1"},
            "spec": {"basePath": "/orders", "requester": "erin",
                     "applicationRef": {"namespace": "shop", "name": "checkout"}}}),
        )
    }

    fn world(strategy: &str) -> Fake {
        let fake = Fake::new("orders", "sub-1");
        fake.put("orders", json!({"apiVersion": api::API_VERSION, "kind": "ApiExposure",
            "metadata": {"name": "orders-api"},
            "spec": {"basePath": "/orders", "gatewayRef": {"name": "public"},
                     "upstreams": [{"url": "http://orders:8080"}], "approval": {"strategy": strategy}}}));
        fake.put(
            "shop",
            json!({"apiVersion": api::API_VERSION, "kind": "Application",
            "metadata": {"name": "checkout"}, "status": {"clientId": "c-123"}}),
        );
        fake
    }

    fn reason(outcome: &Outcome) -> (String, String) {
        let ready = outcome.conditions.iter().find(|c| c.type_ == "Ready");
        ready
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or(("Reconciled".into(), String::new()))
    }

    #[test]
    fn a_pending_subscription_has_an_approval_and_a_consumer_but_no_grant() {
        let fake = world("Simple");
        let outcome = subscription(&subscription_object(), &fake, &Settings::default()).unwrap();
        assert_eq!(
            reason(&outcome),
            (
                "Pending".into(),
                "waiting for approval by team orders".into()
            )
        );
        let approval = fake.find("Approval", "checkout-orders").unwrap();
        assert_eq!(approval["spec"]["decidingTeam"], "orders");
        assert_eq!(approval["spec"]["requester"], "erin");
        assert_eq!(approval["spec"]["decisions"], json!([]));
        let consumer = fake.find("Consumer", "checkout-orders").unwrap();
        assert_eq!(consumer["spec"]["clientId"], "c-123");
        assert!(fake.find("ConsumeRoute", "checkout-orders").is_none());
    }

    #[test]
    fn a_grant_makes_the_consume_route_and_a_suspension_takes_it_away() {
        let fake = world("Simple");
        let object = subscription_object();
        subscription(&object, &fake, &Settings::default()).unwrap();
        let mut approval = fake.find("Approval", "checkout-orders").unwrap();
        approval["spec"]["decisions"] = json!([{"decision": "Grant", "by": "alice"}]);
        fake.put("orders", approval.clone());
        let outcome = subscription(&object, &fake, &Settings::default()).unwrap();
        assert_eq!(outcome.status.as_ref().unwrap()["state"], "Granted");
        let grant = fake.find("ConsumeRoute", "checkout-orders").unwrap();
        assert_eq!(grant["spec"]["routeRef"]["name"], "orders-api");
        assert_eq!(grant["spec"]["consumerRef"]["name"], "checkout-orders");
        assert_eq!(
            grant["metadata"]["labels"][ROUTE_LABEL], "orders-api",
            "the grant carries its Route's label, for the Route's selector"
        );

        approval["spec"]["decisions"] = json!([{"decision": "Grant", "by": "alice"}, {"decision": "Suspend", "by": "bob", "reason": "audit"}]);
        fake.put("orders", approval);
        let outcome = subscription(&object, &fake, &Settings::default()).unwrap();
        assert_eq!(
            reason(&outcome),
            ("Suspended".into(), "suspended by bob: audit".into())
        );
        assert!(fake.find("ConsumeRoute", "checkout-orders").is_none());
    }

    #[test]
    fn auto_grants_at_once_and_a_missing_application_revokes() {
        let fake = world("Auto");
        let object = subscription_object();
        subscription(&object, &fake, &Settings::default()).unwrap();
        assert!(fake.find("ConsumeRoute", "checkout-orders").is_some());
        fake.objects
            .borrow_mut()
            .remove(&("shop".into(), "Application".into(), "checkout".into()));
        let outcome = subscription(&object, &fake, &Settings::default()).unwrap();
        assert_eq!(
            reason(&outcome),
            (
                "ApplicationNotReady".into(),
                "waiting for Application shop/checkout to exist".into()
            )
        );
        assert!(fake.find("ConsumeRoute", "checkout-orders").is_none());
        assert!(fake.find("Consumer", "checkout-orders").is_none());
    }

    #[test]
    fn a_subscription_to_an_unknown_base_path_says_so() {
        let fake = world("Auto");
        let mut object = subscription_object();
        object.0["spec"]["basePath"] = json!("/payments");
        let outcome = subscription(&object, &fake, &Settings::default()).unwrap();
        assert_eq!(
            reason(&outcome),
            (
                "ExposureNotFound".into(),
                "no ApiExposure in namespace orders serves base path /payments".into()
            )
        );
    }

    #[test]
    fn an_exposure_becomes_a_route_and_reports_what_the_route_waits_for() {
        let fake = Fake::new("orders", "exp-1");
        let object = Object(
            json!({"apiVersion": api::API_VERSION, "kind": "ApiExposure",
            "metadata": {"name": "orders-api", "namespace": "orders", "uid": "exp-1"},
            "spec": {"basePath": "/orders", "gatewayRef": {"name": "public"},
                     "upstreams": [{"url": "http://orders:8080"}], "security": {"issuer": "oidc"}}}),
        );
        let outcome = exposure(&object, &fake).unwrap();
        assert_eq!(reason(&outcome).0, "RouteNotReady");
        let mut route = fake.find("Route", "orders-api").unwrap();
        assert_eq!(route["spec"]["paths"], json!(["/orders"]));
        assert_eq!(route["spec"]["security"]["issuer"], "oidc");
        route["status"] = json!({"conditions": [{"type": "Ready", "status": "False",
            "message": "Gateway \"public\" does not exist in namespace \"orders\""}]});
        fake.put("orders", route);
        let outcome = exposure(&object, &fake).unwrap();
        assert_eq!(
            reason(&outcome).1,
            "Route orders-api not Ready: Gateway \"public\" does not exist in namespace \"orders\""
        );
    }

    #[test]
    fn an_application_gets_a_client_and_reports_its_credentials() {
        let fake = Fake::new("shop", "app-1");
        let object = Object(
            json!({"apiVersion": api::API_VERSION, "kind": "Application",
            "metadata": {"name": "checkout", "namespace": "shop", "uid": "app-1"},
            "spec": {"scopes": ["api"]}}),
        );
        let outcome = application(&object, &fake, &Settings::default()).unwrap();
        assert_eq!(reason(&outcome).0, "ClientNotReady");
        let mut client = fake.find("Client", "checkout").unwrap();
        assert_eq!(
            client["spec"],
            json!({"realmRef": {"name": "default"}, "scopes": ["api"]})
        );
        client["status"] = json!({"clientId": "c-123", "secretName": "checkout-credentials",
            "conditions": [{"type": "Ready", "status": "True"}]});
        fake.put("shop", client);
        let outcome = application(&object, &fake, &Settings::default()).unwrap();
        assert_eq!(
            outcome.status.unwrap(),
            json!({"clientId": "c-123", "secretName": "checkout-credentials"})
        );
    }
}
