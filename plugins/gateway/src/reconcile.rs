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
//! (`conflictingRoutes`, beside Envoy's refusals in `rejectedRoutes`). It records a digest of
//! what it translated ([`inputs_digest`]); a reconcile that finds the same inputs (woken by the
//! xDS server's status writes or the echo of its own writes, two or three after every
//! publication) translates and writes nothing and only reads the versions, so that the next
//! Route change never waits behind a whole translation that had nothing to do.
//!
//! A **Route** reconcile decides what became of that Route alone, from its Gateway (one read):
//! served at a URL with its admitted consumers (its ConsumeRoutes and their Consumers), or
//! blocked with the reason (missing Gateway, unknown issuer, … from the same checks as the
//! translation; a path conflict or a refusal by Envoy from the Gateway's status). Its cost does
//! not grow with the Gateway's other Routes. It writes nothing but its status.

use std::collections::BTreeMap;

use corbel_sdk::controller::Status;
use corbel_sdk::{CapabilityError, Object, Outcome, ReconcileError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::api::{self, Driver, GatewayStatus, RejectedRoute};
use crate::kong;
use crate::translate::{self, Inputs, Named, RouteResult};

pub const SNAPSHOT_API_VERSION: &str = "xds.corbel.dev/v1alpha1";
pub const SNAPSHOT_KIND: &str = "XdsSnapshot";

/// The objects a reconcile reads and the snapshot it writes, in the reconciled object's namespace.
pub trait Cluster {
    fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError>;
    /// The objects of a kind, each as JSON text: a reconcile parses only the fields it reads
    /// into its own types (building every object as a `Value` tree was a third of a Gateway
    /// reconcile at 1,000 Routes).
    fn list(&self, kind: &str) -> Result<Vec<String>, CapabilityError>;
    /// The objects of a kind matching a label selector (`key=value`, `!key`), as JSON text.
    fn list_labelled(&self, kind: &str, selector: &str) -> Result<Vec<String>, CapabilityError>;
    fn create(&self, object: &Value) -> Result<Value, CapabilityError>;
    fn update(&self, object: &Value) -> Result<Value, CapabilityError>;
    /// Deletes a child of the reconciled object; `false` when it did not exist.
    fn delete(&self, kind: &str, name: &str) -> Result<bool, CapabilityError>;
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
    let inputs = inputs(cluster, namespace, gateway, status, &[])?;
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

/// The Routes blocked by what only the whole set shows (a path conflict, a full route table),
/// for their own reconciles to read (all other reasons they find themselves).
fn conflicting_routes(
    inputs: &Inputs,
    results: &BTreeMap<String, RouteResult>,
) -> Vec<RejectedRoute> {
    inputs
        .routes
        .iter()
        .filter_map(|r| match results.get(&r.name) {
            Some(RouteResult::Blocked { reason, message })
                if reason == translate::PATH_CONFLICT || reason == translate::ROUTE_TABLE_FULL =>
            {
                Some(RejectedRoute {
                    name: r.name.clone(),
                    generation: r.generation,
                    message: message.clone(),
                    reason: (reason != translate::PATH_CONFLICT).then(|| reason.clone()),
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

/// What a reconcile reads of a listed object: its name, creation time, generation and spec.
#[derive(Deserialize)]
struct Listed<T> {
    metadata: ListedMeta,
    spec: T,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedMeta {
    name: String,
    #[serde(default)]
    creation_timestamp: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
}

impl<T> From<Listed<T>> for Named<T> {
    fn from(Listed { metadata, spec }: Listed<T>) -> Self {
        Named {
            name: metadata.name,
            created: metadata.creation_timestamp.unwrap_or_default(),
            generation: metadata.generation.unwrap_or(1),
            spec,
        }
    }
}

/// A listed object, parsed from its text; `None` when its spec does not parse.
fn named_text<T: DeserializeOwned>(text: &str) -> Option<Named<T>> {
    serde_json::from_str::<Listed<T>>(text)
        .ok()
        .map(Named::from)
}

/// An object read whole (the reconciled one, a Consumer by name), as [`named_text`] reads text.
fn named<T: DeserializeOwned>(object: &Value) -> Option<Named<T>> {
    Listed::<T>::deserialize(object).ok().map(Named::from)
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
        .filter_map(|text| named_text(&text))
        .collect())
}

/// The Gateway's inputs, with what Envoy refused so far.
fn inputs(
    cluster: &dyn Cluster,
    namespace: &str,
    gateway: Named<api::GatewaySpec>,
    status: &GatewayStatus,
    refusals: &[&Value],
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
    for refusal in refusals.iter().filter(|r| r.is_object()) {
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
    let refusals = |s: &Value| {
        (
            s["status"]["rejected"].clone(),
            s["status"]["group"]["rejected"].clone(),
        )
    };
    let known_refusal = refusals(&snapshot);
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
                if refusals(&fresh) != known_refusal {
                    return Err(ReconcileError::transient(
                        "SnapshotRefused",
                        "Envoy refused a configuration while the next was translated; translating again without the refused Routes",
                    ));
                }
                // Read before an earlier reconcile's write of the same spec was seen: nothing
                // left to write.
                if fresh["spec"] == snapshot["spec"]
                    && fresh["metadata"]["labels"] == snapshot["metadata"]["labels"]
                {
                    return Ok(fresh);
                }
                fresh["spec"] = snapshot["spec"].take();
                fresh["metadata"]["labels"] = snapshot["metadata"]["labels"].take();
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

/// The label of a Gateway's `XdsSnapshot`s: its name ([`label_value`]).
pub const GATEWAY_LABEL: &str = "gateway.corbel.dev/gateway";

/// 64-bit FNV-1a: a stable short name for what is too long for a label value or an object
/// name (hand-rolled: ten lines, and the component needs no hashing crate for it).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A name as a label value (at most 63 characters; longer names by their hash).
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        name.to_string()
    } else {
        format!("h{:016x}", fnv(name))
    }
}

/// The `XdsSnapshot` holding one Route's clusters: `<gateway>.route.<route>` (by hashes when
/// longer than an object name may be).
pub fn route_object_name(gateway: &str, route: &str) -> String {
    let name = format!("{gateway}.route.{route}");
    if name.len() <= 253 {
        name
    } else {
        format!("h{:016x}.route.h{:016x}", fnv(gateway), fnv(route))
    }
}

/// The `XdsSnapshot` holding a Gateway's route table.
pub fn routes_object_name(gateway: &str) -> String {
    if gateway.len() + ".routes".len() <= 253 {
        format!("{gateway}.routes")
    } else {
        format!("h{:016x}.routes", fnv(gateway))
    }
}

/// 64-bit FNV-1a over values written as JSON ([`fnv`]'s, without building the text): the
/// Gateway's [`inputs_digest`].
#[derive(Clone)]
pub struct Digest(u64);

impl std::io::Write for Digest {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Digest {
    /// Adds one value, and a separator (so that `1`, `23` and `12`, `3` differ).
    fn add(&mut self, value: &impl serde::Serialize) {
        serde_json::to_writer(&mut *self, value).expect("hashing never fails");
        std::io::Write::write_all(self, b"\n").expect("hashing never fails");
    }

    /// The digest of the inputs with the `XdsSnapshot`s as they are.
    pub fn with(mut self, snapshots: &Written) -> String {
        self.add(snapshots);
        format!("{:016x}", self.0)
    }
}

/// Which version of each of a Gateway's `XdsSnapshot`s exists: name → (uid, generation). A
/// status write changes neither; a spec written by anyone, a deletion or a re-creation does.
pub type Written = BTreeMap<String, (String, i64)>;

/// One of a Gateway's `XdsSnapshot`s as listed: what a reconcile reads of it, with its spec
/// left as the text stored. Nearly every one is unchanged by a reconcile, and comparing its
/// text with the wanted spec's costs no parse ([`Stored::holds`]).
struct Stored {
    text: String,
    meta: StoredMeta,
    /// Where the spec is in `text`.
    spec: std::ops::Range<usize>,
    status: Value,
}

#[derive(Deserialize)]
struct StoredMeta {
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    generation: i64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl Stored {
    fn parse(text: String) -> Option<Stored> {
        #[derive(Deserialize)]
        struct Parts<'a> {
            metadata: StoredMeta,
            #[serde(borrow)]
            spec: Option<&'a RawValue>,
            #[serde(default)]
            status: Value,
        }
        let parts: Parts<'_> = serde_json::from_str(&text).ok()?;
        let spec = match parts.spec {
            // The raw value borrows from `text`: its place there.
            Some(raw) => {
                let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                start..start + raw.get().len()
            }
            None => 0..0,
        };
        let (meta, status) = (parts.metadata, parts.status);
        Some(Stored {
            text,
            meta,
            spec,
            status,
        })
    }

    /// Whether its spec is `wanted`: the same text (the host writes objects as compact JSON
    /// with sorted keys, as [`objects`] does), else the same value (written by another client).
    fn holds(&self, wanted: &Wanted) -> bool {
        let stored = &self.text[self.spec.clone()];
        stored == wanted.text
            || serde_json::from_str::<Value>(stored).is_ok_and(|spec| spec == wanted.spec)
    }
}

/// The spec a reconcile wants for one `XdsSnapshot`, and its text.
pub struct Wanted {
    pub spec: Value,
    pub text: String,
}

fn identity(object: &Value) -> (String, i64) {
    (
        object["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        object["metadata"]["generation"]
            .as_i64()
            .unwrap_or_default(),
    )
}

/// A digest of everything [`translate::translate`] reads (its [`Inputs`]: the Gateway, its
/// Routes, Consumers and ConsumeRoutes, the refusals in force) and of the `XdsSnapshot`s as they
/// are. The translation is a function of its inputs, so a reconcile that finds the digest of the
/// last publication has nothing to translate or write: it was woken by the xDS server writing
/// the versions the instances acknowledged into the head's status, or by the echo of the
/// Gateway's own writes. Any change to an input or a refusal, or an object written, deleted or
/// edited by hand ([`Digest::with`] adds the objects) changes the digest and translates again.
/// 64 bits: a collision needs a crafted input and only delays that input's own change until the
/// next one.
pub fn inputs_digest(inputs: &Inputs) -> Digest {
    let mut digest = Digest(0xcbf2_9ce4_8422_2325);
    digest.add(&inputs.namespace);
    digest.add(&inputs.gateway.name);
    digest.add(&inputs.gateway.spec);
    fn named<T: serde::Serialize>(digest: &mut Digest, all: &[Named<T>]) {
        digest.add(&all.len());
        for object in all {
            digest.add(&object.name);
            digest.add(&object.created);
            digest.add(&object.generation);
            digest.add(&object.spec);
        }
    }
    named(&mut digest, &inputs.routes);
    named(&mut digest, &inputs.consumers);
    named(&mut digest, &inputs.grants);
    digest.add(&inputs.rejected);
    digest
}

/// The Gateway's versions and `Synced` condition from its head's group status (what the xDS
/// server wrote: the version served and the one the instances acknowledged).
fn synced(group: &Value, mut status: Value) -> Outcome {
    let version = group["version"].as_str().map(str::to_string);
    let acknowledged = group["acknowledgedVersion"].as_str().map(str::to_string);
    let in_sync = version.is_some() && version == acknowledged;
    status["configVersion"] = json!(version);
    status["acknowledgedVersion"] = json!(acknowledged);
    Outcome::default().status(status).condition(
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
    )
}

/// The specs of a Gateway's `XdsSnapshot`s by name: the head (named after the Gateway, with
/// the listener and the JWKS clusters; it carries the node group's status), the route table
/// ([`routes_object_name`]) and one per served Route with its clusters. Each is under [`translate::MAX_OBJECT_BYTES`]
/// (the translation blocks the Routes that would not fit); a change of one Route rewrites its
/// own object and the head's route table, never the other Routes' objects.
pub fn objects(
    gateway: &str,
    group: &str,
    resources: Vec<translate::Resource>,
) -> Result<BTreeMap<String, Wanted>, ReconcileError> {
    let mut by_object: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    by_object.insert(gateway.to_string(), Vec::new());
    for r in resources {
        let object = match &r.route {
            Some(route) => route_object_name(gateway, route),
            // The route table in an object of its own: it changes with every Route, and the
            // head, whose status the xDS server writes twice a version, stays small.
            None if r.type_url == translate::ROUTE_CONFIGURATION => routes_object_name(gateway),
            None => gateway.to_string(),
        };
        // Moved, not copied: a route table is hundreds of kilobytes.
        by_object.entry(object).or_default().push(json!({
            "typeUrl": r.type_url,
            "name": r.name,
            "sources": r.sources,
            "resource": r.resource,
        }));
    }
    let mut specs = BTreeMap::new();
    for (name, resources) in by_object {
        let mut spec = json!({"nodeGroup": group, "resources": resources});
        if name == gateway {
            spec["groupStatus"] = json!(true);
        }
        let text = spec.to_string();
        let bytes = text.len();
        if bytes > translate::MAX_OBJECT_BYTES {
            return Err(ReconcileError::permanent(
                "SnapshotTooLarge",
                format!(
                    "XdsSnapshot {name:?} would take {bytes} bytes, more than the {} one object may hold (etcd's request limit is 1.5 MiB); fewer issuers on the Gateway",
                    translate::MAX_OBJECT_BYTES
                ),
            ));
        }
        specs.insert(name, Wanted { spec, text });
    }
    Ok(specs)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Publications that took less than this are never paced. A change that follows a publication
/// (the next edit of the same Route, a rollout of several) would otherwise wait as long as that
/// publication took before its own translation even starts: at 1,000 Routes that doubled the
/// time to Envoy (a translation takes about 0.3 s there). Since the reconciles the xDS server's
/// status writes cause no longer translate ([`inputs_digest`]), only a burst of changes keeps the
/// Gateway translating back to back, and below a second a translation is cheaper than the wait.
const PACE_FROM: u64 = 1_000;
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
    let name = gateway.name.clone();
    let label = label_value(&name);
    // Its objects: the head (named after the Gateway; an older host wrote it without the label)
    // and one per Route.
    let mut existing: BTreeMap<String, Stored> = cluster
        .list_labelled(SNAPSHOT_KIND, &format!("{GATEWAY_LABEL}={label}"))
        .map_err(|e| capability("list the XdsSnapshots", e))?
        .into_iter()
        .filter_map(Stored::parse)
        .map(|o| (o.meta.name.clone(), o))
        .collect();
    if !existing.contains_key(&name)
        && let Some(head) = cluster
            .get(SNAPSHOT_KIND, &name)
            .map_err(|e| capability("read the XdsSnapshot", e))?
            .and_then(|head| Stored::parse(head.to_string()))
    {
        existing.insert(name.clone(), head);
    }
    let group = node_group(&namespace, &name, &gateway.spec);
    let refusals: Vec<&Value> = existing
        .values()
        .flat_map(|o| [&o.status["rejected"], &o.status["group"]["rejected"]])
        .collect();
    let inputs = inputs(cluster, &namespace, gateway, &status, &refusals)?;
    let mut written: Written = existing
        .iter()
        .map(|(name, o)| (name.clone(), (o.meta.uid.clone(), o.meta.generation)))
        .collect();
    let digest = inputs_digest(&inputs);
    if status.inputs_digest.as_deref() == Some(digest.clone().with(&written).as_str()) {
        // Nothing to translate: only the head's status (the versions) is news. Every other
        // field of the Gateway's status stays as the last publication left it.
        let group = existing
            .get(&name)
            .map(|head| head.status["group"].clone())
            .unwrap_or_default();
        return Ok(synced(&group, json!({})));
    }
    let translate::Translation {
        resources,
        routes: results,
        consumers,
    } = translate::translate(&inputs);
    let wanted = objects(&name, &group, resources)?;
    let mut published = false;
    let mut head_status = None;
    // Make before break: the Routes' clusters first, then the head whose route table uses
    // them, then the objects of Routes no longer served.
    let routes_object = routes_object_name(&name);
    let mut order: Vec<(String, Wanted)> = wanted.into_iter().collect();
    order.sort_by_key(|(n, _)| (*n == name, *n == routes_object));
    for (object_name, wanted) in order {
        let stored = match existing.remove(&object_name) {
            None => {
                published = true;
                cluster
                    .create(&json!({
                        "apiVersion": SNAPSHOT_API_VERSION,
                        "kind": SNAPSHOT_KIND,
                        "metadata": {"name": object_name, "labels": {GATEWAY_LABEL: label}},
                        "spec": wanted.spec,
                    }))
                    .map_err(|e| capability("create an XdsSnapshot", e))?
            }
            Some(object)
                if !object.holds(&wanted)
                    || object.meta.labels.get(GATEWAY_LABEL) != Some(&label) =>
            {
                published = true;
                let mut object: Value = serde_json::from_str(&object.text).map_err(|e| {
                    capability(
                        "read the XdsSnapshot",
                        CapabilityError::Invalid(e.to_string()),
                    )
                })?;
                object["metadata"]["labels"][GATEWAY_LABEL] = json!(label);
                update_snapshot(cluster, object, wanted.spec)?
            }
            Some(object) => {
                written.insert(
                    object_name.clone(),
                    (object.meta.uid, object.meta.generation),
                );
                if object_name == name {
                    head_status = Some(object.status);
                }
                continue;
            }
        };
        written.insert(object_name.clone(), identity(&stored));
        if object_name == name {
            head_status = Some(stored["status"].clone());
        }
    }
    for object_name in existing.keys().filter(|n| **n != name) {
        published = true;
        cluster
            .delete(SNAPSHOT_KIND, object_name)
            .map_err(|e| capability("delete an XdsSnapshot", e))?;
        written.remove(object_name);
    }
    let snapshot_status = head_status.unwrap_or_default()["group"].take();
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
                    reason: None,
                })
        })
        .collect();
    let served = results
        .values()
        .filter(|r| matches!(r, RouteResult::Served { .. }))
        .count();
    Ok(synced(
        &snapshot_status,
        json!({
            "routes": served,
            "consumers": consumers,
            "rejectedRoutes": rejected_routes,
            "conflictingRoutes": conflicting_routes(&inputs, &results),
            "publishedAtMs": if published { Some(now_ms()) } else { status.published_at_ms },
            "publishTookMs": if published { Some(now_ms().saturating_sub(started)) } else { status.publish_took_ms },
            "inputsDigest": digest.with(&written),
        }),
    ))
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
            conflict
                .reason
                .as_deref()
                .unwrap_or(translate::PATH_CONFLICT),
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
                .filter_map(|text| named_text::<api::ConsumeRouteSpec>(&text))
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
        fn list(&self, kind: &str) -> Result<Vec<String>, CapabilityError> {
            self.listed.borrow_mut().push(kind.to_string());
            Ok(self.of_kind(kind).iter().map(Value::to_string).collect())
        }
        fn list_labelled(
            &self,
            kind: &str,
            selector: &str,
        ) -> Result<Vec<String>, CapabilityError> {
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
                .map(|o| o.to_string())
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
        fn delete(&self, kind: &str, name: &str) -> Result<bool, CapabilityError> {
            Ok(self
                .objects
                .borrow_mut()
                .remove(&(kind.to_string(), name.to_string()))
                .is_some())
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

    fn types_of(snapshot: &Value) -> Vec<&str> {
        snapshot["spec"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["typeUrl"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_gateway_publishes_a_head_and_an_object_per_route_for_its_node_group() {
        let fake = world();
        let gateway = fake.get("Gateway", "public").unwrap().unwrap();
        let outcome = gateway_reconcile(&fake, gateway.clone());
        let head = fake
            .get(SNAPSHOT_KIND, "public")
            .unwrap()
            .expect("a head is written");
        assert_eq!(head["apiVersion"], SNAPSHOT_API_VERSION);
        assert_eq!(head["spec"]["nodeGroup"], "shop/public");
        assert_eq!(head["spec"]["groupStatus"], true);
        assert_eq!(head["metadata"]["labels"][GATEWAY_LABEL], "public");
        assert_eq!(types_of(&head), [translate::LISTENER]);
        let table = fake
            .get(SNAPSHOT_KIND, "public.routes")
            .unwrap()
            .expect("the route table's object");
        assert_eq!(types_of(&table), [translate::ROUTE_CONFIGURATION]);
        let route = fake
            .get(SNAPSHOT_KIND, "public.route.orders")
            .unwrap()
            .expect("the Route's own object");
        assert_eq!(route["spec"]["nodeGroup"], "shop/public");
        assert!(route["spec"]["groupStatus"].is_null());
        assert_eq!(route["metadata"]["labels"][GATEWAY_LABEL], "public");
        assert_eq!(types_of(&route), [translate::CLUSTER]);
        assert_eq!(outcome["routes"], 1);

        // A Route deleted: its object goes, the head stays.
        fake.delete("Route", "orders").unwrap();
        assert_eq!(gateway_reconcile(&fake, gateway)["routes"], 0);
        assert!(
            fake.get(SNAPSHOT_KIND, "public.route.orders")
                .unwrap()
                .is_none()
        );
        assert!(fake.get(SNAPSHOT_KIND, "public").unwrap().is_some());
    }

    #[test]
    fn a_route_change_rewrites_its_object_and_the_head_only() {
        let fake = world();
        fake.put(object("Route", "catalog", json!({"gatewayRef": {"name": "public"}, "paths": ["/catalog"], "upstreams": [{"url": "http://127.0.0.1:9001"}]})));
        let gateway = fake.get("Gateway", "public").unwrap().unwrap();
        gateway_reconcile(&fake, gateway.clone());
        let before = fake.of_kind(SNAPSHOT_KIND);
        assert_eq!(before.len(), 4);
        let mut route = fake.get("Route", "orders").unwrap().unwrap();
        route["spec"]["upstreams"][0]["url"] = json!("http://127.0.0.1:9002");
        route["metadata"]["generation"] = json!(2);
        fake.put(route);
        gateway_reconcile(&fake, gateway);
        let after = fake.of_kind(SNAPSHOT_KIND);
        let changed: Vec<&str> = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| b != a)
            .map(|(_, a)| a["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(changed, ["public.route.orders", "public.routes"]);
    }

    #[test]
    fn at_5000_routes_every_object_is_under_the_bound() {
        let fake = world();
        let gateway = fake.get("Gateway", "public").unwrap().unwrap();
        let mut gateway_spec = gateway.clone();
        gateway_spec["spec"]["issuers"] = json!([{"name": "corp", "issuer": "https://id.example.com", "jwksUri": "https://id.example.com/jwks", "audiences": ["api"]}]);
        fake.put(gateway_spec.clone());
        fake.delete("Route", "orders").unwrap();
        let table_bytes = |fake: &Fake| {
            translate::json_len(&fake.get(SNAPSHOT_KIND, "public.routes").unwrap().unwrap())
        };
        // As the bench's Routes, half of them secured with a grant each.
        for i in 0..5_000 {
            if i == 1_000 {
                gateway_reconcile(&fake, gateway_spec.clone());
                eprintln!(
                    "1,000 Routes: the route table's object takes {} bytes",
                    table_bytes(&fake)
                );
            }
            let mut spec = json!({"gatewayRef": {"name": "public"}, "paths": [format!("/r{i}")],
                                  "upstreams": [{"url": "http://127.0.0.1:9000"}]});
            if i % 2 == 0 {
                spec["security"] = json!({"issuer": "corp"});
                fake.put(object(
                    "Consumer",
                    &format!("c{i}"),
                    json!({"gatewayRef": {"name": "public"}, "clientId": format!("client-{i}")}),
                ));
                fake.put(object("ConsumeRoute", &format!("g{i}"), json!({"consumerRef": {"name": format!("c{i}")}, "routeRef": {"name": format!("r{i}")}})));
            }
            fake.put(object("Route", &format!("r{i}"), spec));
        }
        let status = gateway_reconcile(&fake, gateway_spec);
        let snapshots = fake.of_kind(SNAPSHOT_KIND);
        let sizes: Vec<(String, usize)> = snapshots
            .iter()
            .map(|s| {
                (
                    s["metadata"]["name"].as_str().unwrap().to_string(),
                    translate::json_len(s),
                )
            })
            .collect();
        let largest = sizes.iter().max_by_key(|(_, n)| *n).unwrap();
        let total: usize = sizes.iter().map(|(_, n)| n).sum();
        eprintln!(
            "5,000 Routes: {} objects, {total} bytes in all, the largest {largest:?}; {} Routes served, {} left out",
            sizes.len(),
            status["routes"],
            status["conflictingRoutes"].as_array().map_or(0, Vec::len)
        );
        for (name, bytes) in &sizes {
            assert!(
                *bytes <= translate::MAX_OBJECT_BYTES,
                "{name}: {bytes} bytes"
            );
        }
        let served = status["routes"].as_u64().unwrap() as usize;
        let full = status["conflictingRoutes"].as_array().unwrap();
        assert_eq!(served + full.len(), 5_000);
        assert_eq!(
            sizes.len(),
            served + 2,
            "a head, the route table and one object per served Route"
        );
        if let Some(first) = full.first() {
            assert_eq!(first["reason"], translate::ROUTE_TABLE_FULL);
            // The Route's own reconcile reads it from the Gateway's status.
            let mut gateway = fake.get("Gateway", "public").unwrap().unwrap();
            gateway["status"] = status.clone();
            fake.put(gateway);
            let route = fake
                .get("Route", first["name"].as_str().unwrap())
                .unwrap()
                .unwrap();
            let error = super::route(&Object(route), &fake).unwrap_err();
            assert_eq!(error.reason(), translate::ROUTE_TABLE_FULL);
        }
    }

    #[test]
    fn a_stored_spec_is_compared_as_text_and_else_as_a_value() {
        let wanted = |spec: Value| Wanted {
            text: spec.to_string(),
            spec,
        };
        let spec =
            json!({"nodeGroup": "default/public", "resources": [{"name": "r", "typeUrl": "t"}]});
        let text = json!({"metadata": {"name": "public", "uid": "u", "generation": 3, "labels": {GATEWAY_LABEL: "public"}},
                          "spec": spec, "status": {"group": {"version": "v1"}}})
        .to_string();
        let stored = Stored::parse(text).unwrap();
        assert_eq!((stored.meta.uid.as_str(), stored.meta.generation), ("u", 3));
        assert_eq!(stored.status["group"]["version"], "v1");
        assert!(stored.holds(&wanted(spec.clone())));
        assert!(!stored.holds(&wanted(
            json!({"nodeGroup": "default/public", "resources": []})
        )));
        // Written by another client: other key order and spacing, the same value.
        let other = r#"{"spec": {"resources": [{"typeUrl": "t", "name": "r"}], "nodeGroup": "default/public"},
                        "metadata": {"name": "public"}}"#;
        let stored = Stored::parse(other.to_string()).unwrap();
        assert_ne!(&stored.text[stored.spec.clone()], spec.to_string());
        assert!(stored.holds(&wanted(spec)));
    }

    fn gateway_reconcile(fake: &Fake, gateway: Value) -> Value {
        super::gateway(&Object(gateway), fake)
            .unwrap()
            .status
            .unwrap_or_default()
    }

    /// Reconciles the Gateway and keeps its status as the host does (the fields returned
    /// replace those of the object's status, the others stay), in the object and the fake.
    fn reconcile_kept(fake: &Fake, gateway: &mut Value) -> Value {
        let returned = gateway_reconcile(fake, gateway.clone());
        if !gateway["status"].is_object() {
            gateway["status"] = json!({});
        }
        for (field, value) in returned.as_object().into_iter().flatten() {
            gateway["status"][field] = value.clone();
        }
        fake.put(gateway.clone());
        gateway["status"].clone()
    }

    #[test]
    fn a_reconcile_whose_inputs_did_not_change_translates_nothing_and_reads_the_versions() {
        let fake = world();
        let mut gateway = fake.get("Gateway", "public").unwrap().unwrap();
        let first = reconcile_kept(&fake, &mut gateway);
        assert_eq!(first["routes"], 1);
        assert!(first["inputsDigest"].is_string());

        // The xDS server wrote the versions into the head's status: read, nothing translated.
        let mut head = fake.get(SNAPSHOT_KIND, "public").unwrap().unwrap();
        head["status"] = json!({"group": {"version": "v1", "acknowledgedVersion": "v1"}});
        fake.put(head);
        let before = fake.of_kind(SNAPSHOT_KIND);
        let outcome = super::gateway(&Object(gateway.clone()), &fake).unwrap();
        let status = outcome.status.clone().unwrap();
        assert!(status.get("routes").is_none(), "{status}");
        assert!(status.get("inputsDigest").is_none(), "{status}");
        assert_eq!(status["acknowledgedVersion"], "v1");
        assert_eq!(outcome.conditions[0].reason, "Acknowledged");
        assert_eq!(fake.of_kind(SNAPSHOT_KIND), before);

        // A Route changed: translated and written again.
        let mut route = fake.get("Route", "orders").unwrap().unwrap();
        route["spec"]["paths"] = json!(["/orders", "/v2/orders"]);
        route["metadata"]["generation"] = json!(2);
        fake.put(route);
        let second = reconcile_kept(&fake, &mut gateway);
        assert_ne!(second["inputsDigest"], first["inputsDigest"]);
        assert!(
            fake.get(SNAPSHOT_KIND, "public.routes").unwrap().unwrap()["spec"]
                .to_string()
                .contains("/v2/orders")
        );

        // An object deleted by hand is written again, though no input changed.
        assert!(fake.delete(SNAPSHOT_KIND, "public.route.orders").unwrap());
        reconcile_kept(&fake, &mut gateway);
        assert!(
            fake.get(SNAPSHOT_KIND, "public.route.orders")
                .unwrap()
                .is_some()
        );
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
            reconcile_kept(&fake, &mut gateway_object)["routes"],
            0,
            "the Route stays out (its inputs are as they were: nothing translated)"
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
        assert_eq!(
            pace(&status(1_000, 300), 1_100),
            None,
            "a publication under a second"
        );
        assert_eq!(pace(&status(1_000, 1_500), 1_100), Some(ms(1_400)));
        assert_eq!(
            pace(&status(1_000, 1_500), 2_600),
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
        gateway["status"] = json!({"publishedAtMs": now_ms(), "publishTookMs": 1_500,
            "conditions": [{"type": "Synced", "status": "True", "reason": "Acknowledged", "message": "m"}]});
        let outcome = super::gateway(&Object(gateway), &fake).unwrap();
        assert!(outcome.status.is_none());
        let wait = outcome.requeue_after.expect("a paced reconcile comes back");
        assert!(!wait.is_zero() && wait <= ms(1_500), "{wait:?}");
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
        let table = fake.get(SNAPSHOT_KIND, "public.routes").unwrap().unwrap();
        assert!(
            table["spec"]["resources"]
                .to_string()
                .contains("route.more")
        );
    }
}
