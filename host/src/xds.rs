//! The host's xDS room, wired to the API: it watches `XdsSnapshot` objects
//! (`xds.corbel.dev/v1alpha1`, written by controller plugins through the `resources` capability)
//! and serves each node group the **union** of the objects naming it ([`corbel_xds::Publications`])
//! with [`corbel_xds`] (ADS over gRPC on the configured `xds.listen` address). A publisher splits
//! its resources over several objects, each under [`MAX_OBJECT_BYTES`] (etcd refuses requests over
//! 1.5 MiB), so a change rewrites, stores and converts only the objects that changed.
//!
//! What it writes back:
//! - on an object, `status.rejected` `{version: "", message, sources}` when one of its resources
//!   does not convert (the object's last good resources keep serving) or names a resource another
//!   object of the group publishes already (a duplicate is an error, never merged: the object
//!   first in `namespace/name` order serves it);
//! - on the objects with `spec.groupStatus: true` (a publisher's head object), the group's
//!   status: `status.group.version` (a digest of the content served, so a restarted host
//!   publishes the same version for the same objects and Envoy sees no change),
//!   `acknowledgedVersion` (the last version an instance held entirely), and `rejected`
//!   `{version, message, sources, node, typeUrl}` when an instance refused a version (a NACK);
//!   `sources` are the publisher's tags of the resources changed since the version that
//!   instance last accepted, so the publisher can leave them out. Only head objects get status
//!   writes for versions, so a Route change costs a write to the objects that changed and one
//!   or two to the head, not one to every object of the group.
//!
//! The room knows types, names and versions, never what a route or a token is (docs/xds.md).
//! Nothing is served while the objects are being (re)listed, so a restarted host never serves a
//! part of a group; a deleted object's resources leave its group's next version.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use corbel_xds::{AdsServer, Converter, Publication, Publications, Report, Resource, Snapshots};
use futures::FutureExt;
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// The CRD, as committed under `deploy/crds/`: generated from [`corbel_xds::api`] by
/// `cargo xtask crds`.
pub const CRD: &str = include_str!("../../deploy/crds/xdssnapshots.xds.corbel.dev.yaml");

/// The field manager of the status the room writes.
const MANAGER: &str = "corbel-xds";

/// The largest `XdsSnapshot` a publisher should write, in bytes of JSON: well under etcd's
/// default request limit (1.5 MiB, `--max-request-bytes`), so that an object plus its status
/// and metadata always fits. Publishers split their resources over several objects of a node
/// group below this (the gateway plugin: a head object, and one object per Route).
pub const MAX_OBJECT_BYTES: usize = 512 * 1024;

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("xds.corbel.dev", "v1alpha1", "XdsSnapshot"),
        "xdssnapshots",
    )
}

/// `namespace/name` of a snapshot object.
type Key = (String, String);

/// Binds the gRPC listener (an error here stops `serve`: the address is wrong or taken) and
/// starts serving and watching until `stop` turns true.
pub async fn start(
    client: kube::Client,
    listen: SocketAddr,
    install_crd: bool,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen for xDS on {listen} (xds.listen)"))?;
    let local = listener.local_addr()?;
    let converter = Converter::new().context("failed to load the Envoy API descriptors")?;
    let snapshots = Snapshots::default();
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let service = AdsServer::new(snapshots.clone(), reports_tx).into_service();
    let mut server_stop = stop.clone();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            // Envoy keeps its ADS stream for hours; keepalives notice a vanished peer.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move {
                    let _ = server_stop.wait_for(|s| *s).await;
                },
            )
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the xDS server failed");
        }
    });
    tracing::info!(address = %local, "serving xDS (ADS over gRPC, plaintext)");
    let room = Room {
        api: Api::all_with(client.clone(), &resource()),
        converter,
        snapshots,
        publications: Publications::default(),
        objects: HashMap::new(),
        groups: HashMap::new(),
        dirty: BTreeSet::new(),
    };
    Ok(tokio::spawn(room.run(client, install_crd, reports, stop)))
}

/// What the room knows of one snapshot object.
#[derive(Default)]
struct Known {
    group: String,
    /// The generation whose resources are published (a status write changes none).
    generation: Option<i64>,
    /// `spec.groupStatus`: the group's versions and refusals are written here.
    head: bool,
    /// Why its last spec was refused (a resource that does not convert), while it applies.
    refused: Option<Value>,
    /// Its status as last read or written.
    status: Value,
}

/// What the room knows of one node group.
#[derive(Default)]
struct Group {
    /// The serial of the last version an instance refused: an acceptance of an older version
    /// (an instance catching up) does not clear that refusal.
    refused_serial: u64,
}

struct Room {
    api: Api<DynamicObject>,
    converter: Converter,
    snapshots: Snapshots,
    publications: Publications,
    objects: HashMap<Key, Known>,
    groups: HashMap<String, Group>,
    /// Groups whose union changed since it was last published.
    dirty: BTreeSet<String>,
}

/// The key of an object among the publications: `namespace/name`, so the first in order of a
/// group keeps a duplicated resource.
fn publication_key(key: &Key) -> String {
    format!("{}/{}", key.0, key.1)
}

impl Room {
    async fn run(
        mut self,
        client: kube::Client,
        install_crd: bool,
        mut reports: mpsc::UnboundedReceiver<Report>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut warned = false;
        loop {
            // Tried again each round: the API may refuse it for a while (bindings loading: 503).
            if install_crd
                && let Err(e) =
                    crate::reconcile::plugin_kind::create_crd_if_missing(&client, CRD).await
            {
                tracing::debug!(error = %e, "failed to create the XdsSnapshot CRD; retrying");
            }
            let Err(e) = self
                .api
                .list(&kube::api::ListParams::default().limit(1))
                .await
            else {
                break;
            };
            if !warned {
                tracing::warn!(error = %e, "XdsSnapshots cannot be listed yet (apply deploy/crds/xdssnapshots.xds.corbel.dev.yaml; in Kubernetes mode Corbel needs list, watch and patch on xdssnapshots and xdssnapshots/status); retrying every 2 s");
                warned = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = stopped(&mut stop) => return,
            }
        }
        let mut events = watcher::watcher(self.api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        // Objects seen during a (re)list: those not seen again were deleted meanwhile. Nothing
        // is published while it lasts: a group served before all its objects are read would
        // lose the resources of those not read yet.
        let mut listing: Option<BTreeSet<Key>> = None;
        loop {
            tokio::select! {
                event = events.next() => {
                    let mut event = event;
                    // The events already there are handled before publishing: a burst of
                    // object writes becomes one version.
                    for _ in 0..1_000 {
                        match event {
                            Some(Ok(Event::Init)) => listing = Some(BTreeSet::new()),
                            Some(Ok(Event::InitApply(object))) => {
                                if let Some(seen) = listing.as_mut() {
                                    seen.insert(key(&object));
                                }
                                self.apply(&object).await;
                            }
                            Some(Ok(Event::InitDone)) => {
                                let seen = listing.take().unwrap_or_default();
                                let gone: Vec<Key> = self.objects.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                                for key in gone {
                                    self.remove(&key);
                                }
                            }
                            Some(Ok(Event::Apply(object))) => self.apply(&object).await,
                            Some(Ok(Event::Delete(object))) => self.remove(&key(&object)),
                            Some(Err(e)) => tracing::warn!(error = %e, "watching XdsSnapshots failed; retrying"),
                            None => return,
                        }
                        match events.next().now_or_never() {
                            Some(next) => event = next,
                            None => break,
                        }
                    }
                    if listing.is_none() {
                        self.publish().await;
                    }
                },
                Some(report) = reports.recv() => self.report(report).await,
                _ = stopped(&mut stop) => return,
            }
        }
    }

    /// Reads one object: converts its resources when its spec changed.
    async fn apply(&mut self, object: &DynamicObject) {
        let key = key(object);
        let spec = &object.data["spec"];
        let group = spec["nodeGroup"].as_str().unwrap_or_default().to_string();
        let known = self.objects.entry(key.clone()).or_default();
        known.status = object.data.get("status").cloned().unwrap_or(Value::Null);
        known.head = spec["groupStatus"].as_bool().unwrap_or(false);
        let generation = object.metadata.generation;
        if generation.is_some() && known.generation == generation && known.group == group {
            // Its own status write coming back, or a metadata change: nothing to convert.
            return;
        }
        if group.is_empty() {
            let refusal = json!({"version": "", "message": "spec.nodeGroup is empty: name the node group (node.cluster) of the instances to serve", "sources": []});
            self.refuse(&key, refusal).await;
            return;
        }
        let mut resources = Vec::new();
        for item in spec["resources"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default();
            let sources: Vec<String> = item["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            match self.converter.to_any(name, &item["resource"]) {
                Ok(any) => resources.push(std::sync::Arc::new(Resource::new(name, sources, any))),
                Err(e) => {
                    let refusal = json!({"version": "", "message": format!("not published: {e}"), "sources": sources});
                    self.refuse(&key, refusal).await;
                    return;
                }
            }
        }
        let known = self.objects.get_mut(&key).expect("inserted above");
        known.group = group.clone();
        known.generation = generation;
        known.refused = None;
        let changed = self
            .publications
            .set(&publication_key(&key), Publication { group, resources });
        self.dirty.extend(changed);
    }

    /// A spec the room cannot publish: the object's last good resources keep serving.
    async fn refuse(&mut self, key: &Key, refusal: Value) {
        tracing::warn!(namespace = %key.0, name = %key.1, message = %refusal["message"], "xds snapshot refused");
        if let Some(known) = self.objects.get_mut(key) {
            known.refused = Some(refusal.clone());
        }
        self.patch_status(key, json!({"rejected": refusal})).await;
    }

    fn remove(&mut self, key: &Key) {
        self.objects.remove(key);
        if let Some(group) = self.publications.remove(&publication_key(key)) {
            tracing::info!(namespace = %key.0, name = %key.1, group = %group, "xds snapshot object deleted: its resources leave the group");
            self.dirty.insert(group);
        }
    }

    /// Publishes the union of each group that changed, and writes what came of it: duplicates
    /// on the objects that hold them, the version on the group's head objects.
    async fn publish(&mut self) {
        for group in std::mem::take(&mut self.dirty) {
            let union = self.publications.union(&group);
            let snapshot = self.snapshots.set(&group, union.snapshot);
            let by_key: BTreeMap<String, Key> = self
                .objects
                .keys()
                .map(|k| (publication_key(k), k.clone()))
                .collect();
            let mut patches = Vec::new();
            for (publication, key) in &by_key {
                let known = &self.objects[key];
                if known.group != group {
                    continue;
                }
                let rejected = known.refused.clone().or_else(|| {
                    union.duplicates.get(publication).map(|duplicates| {
                        let names: Vec<String> = duplicates
                            .iter()
                            .map(|d| format!("{} {:?} (served from XdsSnapshot {})", d.type_url, d.name, d.served_by))
                            .collect();
                        json!({
                            "version": "",
                            "message": format!("resource names must be unique in node group {group:?}; left out: {}", names.join(", ")),
                            "sources": duplicates.iter().flat_map(|d| d.sources.clone()).collect::<BTreeSet<_>>(),
                        })
                    })
                });
                if known.status["rejected"] != rejected.clone().unwrap_or(Value::Null) {
                    patches.push((key.clone(), json!({"rejected": rejected})));
                }
                if known.head && known.status["group"]["version"] != snapshot.version.as_str() {
                    patches.push((key.clone(), json!({"group": {"version": snapshot.version}})));
                }
            }
            for (key, patch) in patches {
                self.patch_status(&key, patch).await;
            }
        }
    }

    /// The keys of a group's head objects.
    fn heads(&self, group: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, k)| k.head && k.group == group)
            .map(|(key, _)| key.clone())
            .collect()
    }

    async fn report(&mut self, report: Report) {
        let state = self.groups.entry(report.group.clone()).or_default();
        let patch = match report.refusal {
            None => {
                let mut patch = json!({"acknowledgedVersion": report.version});
                if report.serial > state.refused_serial {
                    patch["rejected"] = Value::Null;
                }
                patch
            }
            Some(refusal) => {
                state.refused_serial = state.refused_serial.max(report.serial);
                json!({"rejected": {
                    "version": report.version,
                    "message": refusal.message,
                    "sources": refusal.sources,
                    "node": report.node,
                    "typeUrl": report.type_url,
                }})
            }
        };
        for key in self.heads(&report.group) {
            self.patch_status(&key, json!({"group": patch.clone()}))
                .await;
        }
    }

    /// Merges `patch` (a JSON merge patch, `null` removes) into the object's status, unless the
    /// status already says so.
    async fn patch_status(&mut self, key: &Key, patch: Value) {
        let Some(known) = self.objects.get_mut(key) else {
            return;
        };
        let mut merged = if known.status.is_object() {
            known.status.clone()
        } else {
            json!({})
        };
        merge(&mut merged, &patch);
        if merged == known.status {
            return;
        }
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.api.clone().into_client(), &key.0, &resource());
        match api
            .patch_status(
                &key.1,
                &PatchParams::apply(MANAGER),
                &Patch::Merge(json!({"status": patch})),
            )
            .await
        {
            Ok(_) => known.status = merged,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                tracing::warn!(namespace = %key.0, name = %key.1, error = %e, "failed to write an XdsSnapshot's status")
            }
        }
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().expect("made an object above");
    for (field, value) in fields {
        if value.is_null() {
            object.remove(field);
        } else {
            merge(object.entry(field.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Resolves when `stop` turns true (the guard `wait_for` returns is not `Send`, so it must not
/// live in a `select!` of a spawned task).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn key(object: &DynamicObject) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// An Envoy bootstrap for one node group: ADS from Corbel at `xds`, the admin interface on
/// loopback. `corbel xds bootstrap` prints it, so that starting an instance is one command.
pub fn bootstrap(group: &str, node: &str, xds: SocketAddr, admin_port: u16) -> Value {
    json!({
        "node": {"id": node, "cluster": group},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "corbel_xds"}}],
                "set_node_on_first_message_only": true,
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [{
            "name": "corbel_xds",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "5s"},
                    }},
                },
            },
            "load_assignment": {"cluster_name": "corbel_xds", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": xds.ip().to_string(), "port_value": xds.port()}},
            }}]}]},
        }]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_is_served_with_a_status_subresource() {
        let crd: Value = serde_yaml_ng::from_str(CRD).unwrap();
        assert_eq!(crd["spec"]["group"], "xds.corbel.dev");
        assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
    }

    #[test]
    fn status_patches_merge_nested_fields_and_null_removes() {
        let mut status = json!({"group": {"version": "a", "rejected": {"message": "m"}}, "rejected": {"message": "x"}});
        merge(
            &mut status,
            &json!({"group": {"acknowledgedVersion": "a", "rejected": null}, "rejected": null}),
        );
        assert_eq!(
            status,
            json!({"group": {"version": "a", "acknowledgedVersion": "a"}})
        );
    }

    #[test]
    fn a_bootstrap_names_the_node_group_and_the_xds_address() {
        let bootstrap = bootstrap(
            "shop/public",
            "envoy-1",
            "127.0.0.1:18000".parse().unwrap(),
            9901,
        );
        assert_eq!(bootstrap["node"]["cluster"], "shop/public");
        let address = &bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
            [0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!(address["port_value"], 18000);
        // The bootstrap itself is valid Envoy configuration.
        let converter = Converter::new().unwrap();
        let mut typed = bootstrap.clone();
        typed["@type"] = json!("type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap");
        converter.to_any("bootstrap", &typed).unwrap();
    }
}
