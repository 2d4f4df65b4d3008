//! What a reconcile decides, over a [`Cluster`] (the host's `resources` capability in the
//! component, a map in tests).
//!
//! A **Gateway** reconcile reads every Route, Consumer and ConsumeRoute of its namespace,
//! translates them ([`crate::translate`]) and writes the result as its `XdsSnapshot` child: the
//! host's generic xDS server serves that object to the node group, and writes into its status the
//! version served, the version the instances acknowledged, and what they refused. A refusal names
//! the Routes that changed since the last accepted version; the Gateway keeps them in
//! `status.rejectedRoutes` (so the refusal survives the next, accepted, version) and leaves them
//! out, so the others keep being served and updated.
//!
//! The Gateway's reconcile is the one place that reads all of a Gateway's Routes and translates
//! them; the host runs at most one reconcile of an object at a time and merges the changes that
//! arrive meanwhile into one next run, so a burst of Route changes costs a few translations, not
//! one each. What only the whole set shows, path conflicts, it writes into its status
//! (`conflictingRoutes`, beside Envoy's refusals in `rejectedRoutes`).
//!
//! A **Route** reconcile decides what became of that Route alone, from its Gateway (one read):
//! served at a URL with its admitted consumers (its ConsumeRoutes and their Consumers), or
//! blocked with the reason (missing Gateway, unknown issuer, … from the same checks as the
//! translation; a path conflict or a refusal by Envoy from the Gateway's status). Its cost does
//! not grow with the Gateway's other Routes. It writes nothing but its status.

use std::collections::BTreeMap;

use corbel_sdk::controller::Status;
use corbel_sdk::{CapabilityError, Object, Outcome, ReconcileError};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{self, Driver, GatewayStatus, RejectedRoute};
use crate::kong;
use crate::translate::{self, Inputs, Named, RouteResult};

pub const SNAPSHOT_API_VERSION: &str = "xds.corbel.dev/v1alpha1";
pub const SNAPSHOT_KIND: &str = "XdsSnapshot";

/// The objects a reconcile reads and the snapshot it writes, in the reconciled object's namespace.
pub trait Cluster {
    fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError>;
    fn list(&self, kind: &str) -> Result<Vec<Value>, CapabilityError>;
    /// The objects of a kind matching a label selector (`key=value`, `!key`).
    fn list_labelled(&self, kind: &str, selector: &str) -> Result<Vec<Value>, CapabilityError>;
    fn create(&self, object: &Value) -> Result<Value, CapabilityError>;
    fn update(&self, object: &Value) -> Result<Value, CapabilityError>;
    /// The data of a Secret of the namespace (the Kong admin token).
    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        Err(CapabilityError::Unavailable(format!(
            "Secret {name:?}: no secrets here"
        )))
    }
    /// One HTTP request (Kong's Admin API, an issuer's JWKS): the status and body, or why no
    /// answer came.
    fn http(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), String> {
        let _ = (headers, body);
        Err(format!("{method} {url}: no HTTP here"))
    }
}

/// Kong's Admin API through [`Cluster::http`].
struct KongAdmin<'a> {
    cluster: &'a dyn Cluster,
    url: String,
    headers: Vec<(String, String)>,
}

impl kong::Admin for KongAdmin<'_> {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let mut headers = self.headers.clone();
        let body = body.map(|b| {
            headers.push(("content-type".into(), "application/json".into()));
            b.to_string().into_bytes()
        });
        let (status, answer) =
            self.cluster
                .http(method, &format!("{}{path}", self.url), &headers, body)?;
        Ok((
            status,
            serde_json::from_slice(&answer).unwrap_or(Value::Null),
        ))
    }
}

/// `driver: kong`: sync the Gateway's entities into Kong ([`kong`]). Kong is read again every
/// `KONG_RESYNC` so that what was changed by hand is set back.
fn kong_gateway(
    cluster: &dyn Cluster,
    namespace: &str,
    gateway: Named<api::GatewaySpec>,
    status: &GatewayStatus,
) -> Result<Outcome, ReconcileError> {
    let Some(settings) = gateway.spec.kong.clone() else {
        return Err(ReconcileError::permanent(
            "KongNotConfigured",
            "driver: kong needs spec.kong.adminUrl (and spec.kong.credentialsSecretRef when Kong's Admin API wants a token)",
        ));
    };
    let mut headers = Vec::new();
    if let Some(secret) = &settings.credentials_secret_ref {
        let data = cluster
            .secret(&secret.name)
            .map_err(|e| capability(&format!("read Secret {:?}", secret.name), e))?;
        let token = data.get("token").ok_or_else(|| {
            ReconcileError::permanent(
                "KongCredentialsInvalid",
                format!(
                    "Secret {:?} has no key \"token\" (Kong's admin token)",
                    secret.name
                ),
            )
        })?;
        headers.push((
            "kong-admin-token".to_string(),
            String::from_utf8_lossy(token).trim().to_string(),
        ));
    }
    let name = gateway.name.clone();
    let inputs = inputs(cluster, namespace, gateway, status, None)?;
    let translation = translate::translate(&inputs);
    // The jwt plugin checks tokens against each credential's key: fetch the issuers' keys.
    let mut keys = BTreeMap::new();
    for issuer in &inputs.gateway.spec.issuers {
        let jwks = cluster
            .http("GET", &issuer.jwks_uri, &[], None)
            .map_err(|e| {
                ReconcileError::transient(
                    "JwksUnreachable",
                    format!("failed to read the JWKS of issuer {:?}: {e}", issuer.name),
                )
            })?;
        let document: Value = serde_json::from_slice(&jwks.1).unwrap_or(Value::Null);
        match kong::jwks_pem(&document) {
            Some(pem) => {
                keys.insert(issuer.name.clone(), pem);
            }
            None => {
                return Err(ReconcileError::transient(
                    "JwksInvalid",
                    format!(
                        "the JWKS of issuer {:?} ({}) has no RSA signing key",
                        issuer.name, issuer.jwks_uri
                    ),
                ));
            }
        }
    }
    let wanted = kong::desired(&inputs, &translation.routes, &keys);
    let admin = KongAdmin {
        cluster,
        url: settings.admin_url.trim_end_matches('/').to_string(),
        headers,
    };
    let synced =
        kong::sync(&admin, &kong::owner_tag(namespace, &name), &wanted).map_err(|e| match e {
            kong::KongError::Unreachable(_) => {
                ReconcileError::transient("KongUnreachable", e.to_string())
            }
            kong::KongError::Refused { .. } => {
                ReconcileError::transient("KongRefused", e.to_string())
            }
        })?;
    let served = translation
        .routes
        .values()
        .filter(|r| matches!(r, RouteResult::Served { .. }))
        .count();
    Ok(Outcome::default()
        .status(json!({
            "routes": served,
            "consumers": translation.consumers,
            "conflictingRoutes": conflicting_routes(&inputs, &translation.routes),
            "kong": {"entities": synced.upserted, "deleted": synced.deleted},
        }))
        .condition(
            "Synced",
            Status::True,
            "KongSynced",
            format!(
                "{} entities upserted in Kong, {} it no longer needs deleted",
                synced.upserted, synced.deleted
            ),
        )
        .requeue_after(KONG_RESYNC))
}

/// The Routes blocked by a path conflict, for their own reconciles to read (all others reasons
/// they find themselves).
fn conflicting_routes(
    inputs: &Inputs,
    results: &BTreeMap<String, RouteResult>,
) -> Vec<RejectedRoute> {
    inputs
        .routes
        .iter()
        .filter_map(|r| match results.get(&r.name) {
            Some(RouteResult::Blocked { reason, message })
                if reason == translate::PATH_CONFLICT =>
            {
                Some(RejectedRoute {
                    name: r.name.clone(),
                    generation: r.generation,
                    message: message.clone(),
                })
            }
            _ => None,
        })
        .collect()
}

/// How often Kong is read again to correct drift.
pub const KONG_RESYNC: std::time::Duration = std::time::Duration::from_secs(30);

fn capability(what: &str, e: CapabilityError) -> ReconcileError {
    ReconcileError::transient("CapabilityFailed", format!("failed to {what}: {e}"))
}

fn named<T: DeserializeOwned>(object: &Value) -> Option<Named<T>> {
    let metadata = &object["metadata"];
    Some(Named {
        name: metadata["name"].as_str()?.to_string(),
        created: metadata["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        generation: metadata["generation"].as_i64().unwrap_or(1),
        spec: serde_json::from_value(object.get("spec").cloned().unwrap_or_default()).ok()?,
    })
}

fn all<T: DeserializeOwned>(
    cluster: &dyn Cluster,
    kind: &str,
) -> Result<Vec<Named<T>>, ReconcileError> {
    Ok(cluster
        .list(kind)
        .map_err(|e| capability(&format!("list {kind}s"), e))?
        // Each object is dropped once read: a Gateway's lists are its reconcile's largest data.
        .into_iter()
        // An object whose spec does not parse was admitted before admission was bound; it
        // cannot be served, and the others must not suffer for it.
        .filter_map(|object| named(&object))
        .collect())
}

/// The Gateway's inputs, with what Envoy refused so far.
fn inputs(
    cluster: &dyn Cluster,
    namespace: &str,
    gateway: Named<api::GatewaySpec>,
    status: &GatewayStatus,
    snapshot: Option<&Value>,
) -> Result<Inputs, ReconcileError> {
    let routes: Vec<Named<api::RouteSpec>> = all(cluster, "Route")?
        .into_iter()
        .filter(|r: &Named<api::RouteSpec>| r.spec.gateway_ref.name == gateway.name)
        .collect();
    let consumers = all(cluster, "Consumer")?;
    let grants = all(cluster, "ConsumeRoute")?;
    let mut rejected = BTreeMap::new();
    for r in &status.rejected_routes {
        rejected.insert(translate::source(&r.name, r.generation), r.message.clone());
    }
    if let Some(refusal) = snapshot
        .map(|s| &s["status"]["rejected"])
        .filter(|r| r.is_object())
    {
        let message = refusal["message"].as_str().unwrap_or("refused").to_string();
        for source in refusal["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            rejected.insert(source.to_string(), message.clone());
        }
    }
    // Keep refusals of Routes that still exist at the refused generation.
    rejected.retain(|source, _| {
        routes
            .iter()
            .any(|r| translate::source(&r.name, r.generation) == *source)
    });
    Ok(Inputs {
        namespace: namespace.to_string(),
        gateway,
        routes,
        consumers,
        grants,
        rejected,
    })
}

fn gateway_of(object: &Object) -> Result<Named<api::GatewaySpec>, ReconcileError> {
    named(&object.0).ok_or_else(|| {
        ReconcileError::permanent("InvalidSpec", "the Gateway's spec does not parse")
    })
}

/// Writes the snapshot's new spec. The host's xDS server writes its status (versions, ACKs) at
/// any time, so an update from a read made before the translation often meets a conflict: the
/// snapshot is read again and written again at once (a retry with backoff would hold the change
/// back by a whole reconcile). Not when the new status holds a refusal this translation did not
/// know of: the next reconcile, which that status change starts, leaves the refused Routes out.
fn update_snapshot(
    cluster: &dyn Cluster,
    mut snapshot: Value,
    spec: Value,
) -> Result<Value, ReconcileError> {
    let known_refusal = snapshot["status"]["rejected"].clone();
    snapshot["spec"] = spec;
    let mut attempts = 0;
    loop {
        match cluster.update(&snapshot) {
            Ok(stored) => return Ok(stored),
            Err(CapabilityError::Conflict(_)) if attempts < 3 => {
                attempts += 1;
                let Some(mut fresh) = cluster
                    .get(
                        SNAPSHOT_KIND,
                        snapshot["metadata"]["name"].as_str().unwrap_or_default(),
                    )
                    .map_err(|e| capability("read the XdsSnapshot", e))?
                else {
                    return Err(ReconcileError::transient(
                        "SnapshotGone",
                        "the XdsSnapshot was deleted while it was being updated",
                    ));
                };
                if fresh["status"]["rejected"] != known_refusal {
                    return Err(ReconcileError::transient(
                        "SnapshotRefused",
                        "Envoy refused a configuration while the next was translated; translating again without the refused Routes",
                    ));
                }
                fresh["spec"] = snapshot["spec"].take();
                snapshot = fresh;
            }
            Err(e) => return Err(capability("update the XdsSnapshot", e)),
        }
    }
}

/// The node group a Gateway's instances announce (`node.cluster` in their bootstrap).
pub fn node_group(namespace: &str, name: &str, spec: &api::GatewaySpec) -> String {
    spec.node_group
        .clone()
        .unwrap_or_else(|| format!("{namespace}/{name}"))
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Publications that took less than this are never paced (small Gateways, tests).
const PACE_FROM: u64 = 100;
/// The longest a reconcile waits for its turn, whatever the last publication took.
const PACE_AT_MOST: u64 = 2_000;

/// How long a Gateway reconcile waits before translating again: after a publication that took
/// `took`, the next waits until as long has passed. While Routes change in a burst, the Gateway
/// (and the xDS server, and Envoy) then spend at most about half their time on whole
/// translations, and the Routes' own reconciles get the rest; the changes that arrive meanwhile
/// are merged into the next one. A change after a quiet period is published at once.
pub fn pace(status: &GatewayStatus, now: u64) -> Option<std::time::Duration> {
    let (at, took) = (status.published_at_ms?, status.publish_took_ms?);
    if took < PACE_FROM {
        return None;
    }
    let until = at.saturating_add(took.min(PACE_AT_MOST));
    (now < until).then(|| std::time::Duration::from_millis(until - now))
}

pub fn gateway(object: &Object, cluster: &dyn Cluster) -> Result<Outcome, ReconcileError> {
    let started = now_ms();
    let gateway = gateway_of(object)?;
    let namespace = object.namespace().unwrap_or("default").to_string();
    let status: GatewayStatus = serde_json::from_value(object.status().clone()).unwrap_or_default();
    if gateway.spec.driver == Driver::Kong {
        return kong_gateway(cluster, &namespace, gateway, &status);
    }
    if let Some(wait) = pace(&status, started) {
        // Its status stays as it is (the host keeps the fields not returned); Synced is
        // returned as it was, since conditions are the outcome's.
        let mut outcome = Outcome::default().requeue_after(wait);
        if let Some(synced) = status.conditions.iter().find(|c| c.type_ == "Synced") {
            outcome = outcome.condition(
                "Synced",
                match synced.status.as_str() {
                    "True" => Status::True,
                    "False" => Status::False,
                    _ => Status::Unknown,
                },
                &synced.reason,
                synced.message.clone(),
            );
        }
        return Ok(outcome);
    }
    let existing = cluster
        .get(SNAPSHOT_KIND, &gateway.name)
        .map_err(|e| capability("read the XdsSnapshot", e))?;
    let group = node_group(&namespace, &gateway.name, &gateway.spec);
    let name = gateway.name.clone();
    let inputs = inputs(cluster, &namespace, gateway, &status, existing.as_ref())?;
    let translate::Translation {
        resources,
        routes: results,
        consumers,
    } = translate::translate(&inputs);
    // Moved, not copied: at a thousand Routes the snapshot is megabytes.
    let spec = json!({
        "nodeGroup": group,
        "resources": resources.into_iter().map(|r| json!({
            "typeUrl": r.type_url,
            "name": r.name,
            "sources": r.sources,
            "resource": r.resource,
        })).collect::<Vec<_>>(),
    });
    let mut published = true;
    let mut stored = match existing {
        None => cluster
            .create(&json!({
                "apiVersion": SNAPSHOT_API_VERSION,
                "kind": SNAPSHOT_KIND,
                "metadata": {"name": name},
                "spec": spec,
            }))
            .map_err(|e| capability("create the XdsSnapshot", e))?,
        Some(snapshot) if snapshot["spec"] != spec => update_snapshot(cluster, snapshot, spec)?,
        Some(snapshot) => {
            published = false;
            snapshot
        }
    };
    let snapshot_status = stored["status"].take();
    let rejected_routes: Vec<RejectedRoute> = inputs
        .routes
        .iter()
        .filter_map(|r| {
            inputs
                .rejected
                .get(&translate::source(&r.name, r.generation))
                .map(|message| RejectedRoute {
                    name: r.name.clone(),
                    generation: r.generation,
                    message: message.clone(),
                })
        })
        .collect();
    let served = results
        .values()
        .filter(|r| matches!(r, RouteResult::Served { .. }))
        .count();
    let version = snapshot_status["version"].as_str().map(str::to_string);
    let acknowledged = snapshot_status["acknowledgedVersion"]
        .as_str()
        .map(str::to_string);
    let in_sync = version.is_some() && version == acknowledged;
    let outcome = Outcome::default()
        .status(json!({
            "routes": served,
            "consumers": consumers,
            "configVersion": version,
            "acknowledgedVersion": acknowledged,
            "rejectedRoutes": rejected_routes,
            "conflictingRoutes": conflicting_routes(&inputs, &results),
            "publishedAtMs": if published { Some(now_ms()) } else { status.published_at_ms },
            "publishTookMs": if published { Some(now_ms().saturating_sub(started)) } else { status.publish_took_ms },
        }))
        .condition(
            "Synced",
            if in_sync {
                Status::True
            } else {
                Status::Unknown
            },
            if in_sync { "Acknowledged" } else { "Waiting" },
            if in_sync {
                "the instances acknowledged the configuration last published".to_string()
            } else {
                "no instance has acknowledged the configuration last published yet".to_string()
            },
        );
    Ok(outcome)
}

pub fn route(object: &Object, cluster: &dyn Cluster) -> Result<Outcome, ReconcileError> {
    let spec: api::RouteSpec = object.spec()?;
    let gateway_name = &spec.gateway_ref.name;
    let namespace = object.namespace().unwrap_or("default").to_string();
    let Some(gateway_object) = cluster
        .get("Gateway", gateway_name)
        .map_err(|e| capability("read the Gateway", e))?
    else {
        return Err(ReconcileError::permanent(
            "GatewayNotFound",
            format!(
                "Gateway {gateway_name:?} does not exist in namespace {namespace:?}; create it or fix spec.gatewayRef"
            ),
        ));
    };
    let gateway = gateway_of(&Object(gateway_object.clone()))?;
    let status: GatewayStatus =
        serde_json::from_value(gateway_object["status"].clone()).unwrap_or_default();
    let route = Named {
        name: object.name().to_string(),
        created: String::new(),
        generation: object.generation().unwrap_or(1),
        spec,
    };
    let rejected: BTreeMap<String, String> = status
        .rejected_routes
        .iter()
        .map(|r| (translate::source(&r.name, r.generation), r.message.clone()))
        .collect();
    translate::check_own(&namespace, &gateway, &rejected, &route)
        .map_err(|(reason, message)| ReconcileError::permanent(reason, message))?;
    if let Some(conflict) = status
        .conflicting_routes
        .iter()
        .find(|c| c.name == route.name && c.generation == route.generation)
    {
        return Err(ReconcileError::permanent(
            translate::PATH_CONFLICT,
            conflict.message.clone(),
        ));
    }
    // Its grants: the ConsumeRoutes naming it, held by Consumers of its Gateway. Those labelled
    // with their Route are found by label; those without the label are all read.
    let mut grants: Vec<Named<api::ConsumeRouteSpec>> = Vec::new();
    for selector in [
        format!("{}={}", api::ROUTE_LABEL, route.name),
        format!("!{}", api::ROUTE_LABEL),
    ] {
        grants.extend(
            cluster
                .list_labelled("ConsumeRoute", &selector)
                .map_err(|e| capability("list ConsumeRoutes", e))?
                .into_iter()
                .filter_map(|object| named::<api::ConsumeRouteSpec>(&object))
                .filter(|g| g.spec.route_ref.name == route.name),
        );
    }
    let mut holders = Vec::new();
    for grant in &grants {
        let consumer = cluster
            .get("Consumer", &grant.spec.consumer_ref.name)
            .map_err(|e| capability("read a Consumer", e))?;
        if let Some(consumer) = consumer.as_ref().and_then(named::<api::ConsumerSpec>)
            && consumer.spec.gateway_ref.name == gateway.name
        {
            holders.push((consumer, &grant.spec));
        }
    }
    let holders: Vec<translate::Grant<'_>> = holders.iter().map(|(c, g)| (c, *g)).collect();
    Ok(Outcome::default().status(json!({
        "url": translate::url(&gateway.spec, &route.spec),
        "consumers": translate::admitted(&holders),
    })))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    struct Fake {
        objects: RefCell<BTreeMap<(String, String), Value>>,
        /// The kinds listed, in order.
        listed: RefCell<Vec<String>>,
        /// Updates refused with a conflict before one passes (another writer came first).
        conflicts: std::cell::Cell<u32>,
    }

    impl Fake {
        fn of_kind(&self, kind: &str) -> Vec<Value> {
            self.objects
                .borrow()
                .iter()
                .filter(|((k, _), _)| k == kind)
                .map(|(_, v)| v.clone())
                .collect()
        }

        fn put(&self, object: Value) {
            let key = (
                object["kind"].as_str().unwrap().to_string(),
                object["metadata"]["name"].as_str().unwrap().to_string(),
            );
            self.objects.borrow_mut().insert(key, object);
        }
    }

    impl Cluster for Fake {
        fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError> {
            Ok(self
                .objects
                .borrow()
                .get(&(kind.to_string(), name.to_string()))
                .cloned())
        }
        fn list(&self, kind: &str) -> Result<Vec<Value>, CapabilityError> {
            self.listed.borrow_mut().push(kind.to_string());
            Ok(self.of_kind(kind))
        }
        fn list_labelled(&self, kind: &str, selector: &str) -> Result<Vec<Value>, CapabilityError> {
            self.listed.borrow_mut().push(format!("{kind} {selector}"));
            let label =
                |o: &Value, key: &str| o["metadata"]["labels"][key].as_str().map(String::from);
            Ok(self
                .of_kind(kind)
                .into_iter()
                .filter(|o| match selector.strip_prefix('!') {
                    Some(key) => label(o, key).is_none(),
                    None => {
                        let (key, value) = selector.split_once('=').unwrap();
                        label(o, key).as_deref() == Some(value)
                    }
                })
                .collect())
        }
        fn create(&self, object: &Value) -> Result<Value, CapabilityError> {
            self.put(object.clone());
            Ok(object.clone())
        }
        fn update(&self, object: &Value) -> Result<Value, CapabilityError> {
            if self.conflicts.get() > 0 {
                self.conflicts.set(self.conflicts.get() - 1);
                return Err(CapabilityError::Conflict(
                    "the object has been modified".into(),
                ));
            }
            self.put(object.clone());
            Ok(object.clone())
        }
    }

    fn object(kind: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": "gateway.corbel.dev/v1alpha1", "kind": kind,
               "metadata": {"name": name, "namespace": "shop", "generation": 1}, "spec": spec})
    }

    fn world() -> Fake {
        let fake = Fake::default();
        fake.put(object("Gateway", "public", json!({"listener": {"address": "127.0.0.1", "port": 10000}, "allowLoopbackUpstreams": true})));
        fake.put(object("Route", "orders", json!({"gatewayRef": {"name": "public"}, "paths": ["/orders"], "upstreams": [{"url": "http://127.0.0.1:9000"}]})));
        fake
    }

    #[test]
    fn a_gateway_publishes_its_snapshot_for_its_node_group() {
        let fake = world();
        let gateway = fake.get("Gateway", "public").unwrap().unwrap();
        let outcome = gateway_reconcile(&fake, gateway);
        let snapshot = fake
            .get(SNAPSHOT_KIND, "public")
            .unwrap()
            .expect("a snapshot is written");
        assert_eq!(snapshot["apiVersion"], SNAPSHOT_API_VERSION);
        assert_eq!(snapshot["spec"]["nodeGroup"], "shop/public");
        let types: Vec<&str> = snapshot["spec"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["typeUrl"].as_str().unwrap())
            .collect();
        assert!(
            types.contains(&translate::LISTENER) && types.contains(&translate::CLUSTER),
            "{types:?}"
        );
        assert_eq!(outcome["routes"], 1);
    }

    fn gateway_reconcile(fake: &Fake, gateway: Value) -> Value {
        super::gateway(&Object(gateway), fake)
            .unwrap()
            .status
            .unwrap_or_default()
    }

    #[test]
    fn a_refusal_leaves_the_changed_routes_out_and_is_remembered() {
        let fake = world();
        let gateway_object = fake.get("Gateway", "public").unwrap().unwrap();
        gateway_reconcile(&fake, gateway_object.clone());
        let mut snapshot = fake.get(SNAPSHOT_KIND, "public").unwrap().unwrap();
        snapshot["status"] = json!({"version": "v2", "acknowledgedVersion": "v1",
            "rejected": {"version": "v2", "message": "Proto constraint validation failed", "sources": ["Route/orders@1"]}});
        fake.put(snapshot);
        let status = gateway_reconcile(&fake, gateway_object.clone());
        assert_eq!(status["routes"], 0);
        assert_eq!(
            status["rejectedRoutes"][0]["message"],
            "Proto constraint validation failed"
        );

        // The next version was accepted and the refusal cleared from the snapshot: the Gateway
        // still remembers it, so the Route stays out (else it would be refused again forever).
        let mut snapshot = fake.get(SNAPSHOT_KIND, "public").unwrap().unwrap();
        snapshot["status"] = json!({"version": "v3", "acknowledgedVersion": "v3"});
        fake.put(snapshot);
        let mut gateway_object = gateway_object;
        gateway_object["status"] = status.clone();
        fake.put(gateway_object.clone());
        assert_eq!(
            gateway_reconcile(&fake, gateway_object.clone())["routes"],
            0
        );

        let route = fake.get("Route", "orders").unwrap().unwrap();
        let error = super::route(&Object(route.clone()), &fake).unwrap_err();
        assert_eq!(error.reason(), "RejectedByEnvoy");
        assert!(
            error.message().contains("Proto constraint"),
            "{}",
            error.message()
        );

        // A new generation of the Route is tried again.
        let mut route = route;
        route["metadata"]["generation"] = json!(2);
        fake.put(route);
        assert_eq!(gateway_reconcile(&fake, gateway_object)["routes"], 1);
    }

    #[test]
    fn a_route_of_a_missing_gateway_is_blocked_with_the_reason() {
        let fake = world();
        let route = object(
            "Route",
            "lost",
            json!({"gatewayRef": {"name": "nowhere"}, "paths": ["/x"], "upstreams": [{"url": "http://a.shop"}]}),
        );
        let error = super::route(&Object(route), &fake).unwrap_err();
        assert_eq!(error.reason(), "GatewayNotFound");
        assert!(error.message().contains("\"nowhere\""));
    }

    #[test]
    fn a_served_route_reports_its_url_and_consumers() {
        let fake = world();
        fake.put(object(
            "Consumer",
            "app",
            json!({"gatewayRef": {"name": "public"}, "clientId": "app-1"}),
        ));
        fake.put(object(
            "ConsumeRoute",
            "app-orders",
            json!({"consumerRef": {"name": "app"}, "routeRef": {"name": "orders"}}),
        ));
        // Grants labelled with their Route are found by label, the others too.
        fake.put(object(
            "Consumer",
            "billing",
            json!({"gatewayRef": {"name": "public"}, "clientId": "billing-1"}),
        ));
        let mut labelled = object(
            "ConsumeRoute",
            "billing-orders",
            json!({"consumerRef": {"name": "billing"}, "routeRef": {"name": "orders"}}),
        );
        labelled["metadata"]["labels"] = json!({"gateway.corbel.dev/route": "orders"});
        fake.put(labelled.clone());
        labelled["metadata"]["name"] = json!("billing-other");
        labelled["metadata"]["labels"] = json!({"gateway.corbel.dev/route": "other"});
        labelled["spec"]["routeRef"]["name"] = json!("other");
        fake.put(labelled);
        let route = fake.get("Route", "orders").unwrap().unwrap();
        let outcome = super::route(&Object(route), &fake).unwrap();
        let status = outcome.status.unwrap_or_default();
        assert_eq!(status["url"], "http://127.0.0.1:10000/orders");
        let ids: Vec<&str> = status["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["clientId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["app-1", "billing-1"]);
    }

    #[test]
    fn a_route_reads_its_path_conflict_from_the_gateway_and_lists_no_other_route() {
        let fake = world();
        fake.put(object("Route", "orders-2", json!({"gatewayRef": {"name": "public"}, "paths": ["/orders/"], "upstreams": [{"url": "http://127.0.0.1:9001"}]})));
        let mut gateway_object = fake.get("Gateway", "public").unwrap().unwrap();
        let status = gateway_reconcile(&fake, gateway_object.clone());
        assert_eq!(status["conflictingRoutes"][0]["name"], "orders-2");
        gateway_object["status"] = status;
        fake.put(gateway_object);

        fake.listed.borrow_mut().clear();
        let newer = fake.get("Route", "orders-2").unwrap().unwrap();
        let error = super::route(&Object(newer.clone()), &fake).unwrap_err();
        assert_eq!(error.reason(), "PathConflict");
        assert!(
            error.message().contains("\"orders\""),
            "{}",
            error.message()
        );
        let older = fake.get("Route", "orders").unwrap().unwrap();
        assert!(super::route(&Object(older), &fake).is_ok());
        assert_eq!(
            *fake.listed.borrow(),
            [
                "ConsumeRoute gateway.corbel.dev/route=orders",
                "ConsumeRoute !gateway.corbel.dev/route"
            ],
            "a Route's reconcile reads its Gateway and its grants, not the Gateway's other Routes"
        );

        // Its next generation is tried again (the Gateway decides anew).
        let mut newer = newer;
        newer["metadata"]["generation"] = json!(2);
        assert!(super::route(&Object(newer), &fake).is_ok());
    }

    #[test]
    fn a_gateway_translates_again_only_once_as_long_as_its_last_publication_took() {
        let status = |at: u64, took: u64| GatewayStatus {
            published_at_ms: Some(at),
            publish_took_ms: Some(took),
            ..GatewayStatus::default()
        };
        let ms = std::time::Duration::from_millis;
        assert_eq!(
            pace(&GatewayStatus::default(), 1_000),
            None,
            "never published"
        );
        assert_eq!(pace(&status(1_000, 40), 1_010), None, "a quick publication");
        assert_eq!(pace(&status(1_000, 300), 1_100), Some(ms(200)));
        assert_eq!(
            pace(&status(1_000, 300), 1_300),
            None,
            "a change after a quiet period"
        );
        assert_eq!(
            pace(&status(1_000, 60_000), 1_000),
            Some(ms(2_000)),
            "capped"
        );

        // A paced reconcile reads nothing and keeps the Gateway's status and Synced condition.
        let fake = world();
        let mut gateway = fake.get("Gateway", "public").unwrap().unwrap();
        gateway["status"] = json!({"publishedAtMs": now_ms(), "publishTookMs": 1_000,
            "conditions": [{"type": "Synced", "status": "True", "reason": "Acknowledged", "message": "m"}]});
        let outcome = super::gateway(&Object(gateway), &fake).unwrap();
        assert!(outcome.status.is_none());
        let wait = outcome.requeue_after.expect("a paced reconcile comes back");
        assert!(!wait.is_zero() && wait <= ms(1_000), "{wait:?}");
        assert_eq!(outcome.conditions[0].reason, "Acknowledged");
        assert!(fake.listed.borrow().is_empty());
        assert!(fake.get(SNAPSHOT_KIND, "public").unwrap().is_none());
    }

    #[test]
    fn a_snapshot_written_meanwhile_by_the_xds_server_is_read_again_and_updated_at_once() {
        let fake = world();
        let gateway = fake.get("Gateway", "public").unwrap().unwrap();
        gateway_reconcile(&fake, gateway.clone());
        fake.put(object("Route", "more", json!({"gatewayRef": {"name": "public"}, "paths": ["/more"], "upstreams": [{"url": "http://127.0.0.1:9000"}]})));
        fake.conflicts.set(1);
        assert_eq!(gateway_reconcile(&fake, gateway)["routes"], 2);
        let snapshot = fake.get(SNAPSHOT_KIND, "public").unwrap().unwrap();
        assert!(
            snapshot["spec"]["resources"]
                .to_string()
                .contains("route.more")
        );
    }
}
