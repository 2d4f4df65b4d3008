//! The host's xDS room, wired to the API: it watches `XdsSnapshot` objects
//! (`xds.corbel.dev/v1alpha1`, written by controller plugins through the `resources` capability),
//! serves each to the Envoy instances of its node group with [`corbel_xds`] (ADS over gRPC on the
//! configured `xds.listen` address), and writes back into the object's status what happened:
//!
//! - `version`: the version published (a digest of the content, so a restarted host publishes
//!   the same version for the same objects and Envoy sees no change);
//! - `acknowledgedVersion`: the last version an instance accepted;
//! - `rejected`: `{version, message, sources, node, typeUrl}` when an instance refused a version
//!   (a NACK), or when a resource did not convert; `sources` are the publisher's tags of the
//!   resources changed since the last accepted version, so the publisher can leave them out.
//!
//! The room knows types and versions, never what a route or a token is (docs/xds.md). A snapshot
//! that does not convert is refused whole and the last good one keeps being served; a deleted
//! snapshot object serves an empty configuration to its group (its Gateway is gone).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use corbel_xds::{AdsServer, Converter, Report, Resource, Snapshot, Snapshots};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

/// The CRD, as committed under `deploy/crds/`.
pub const CRD: &str = include_str!("../../deploy/crds/xdssnapshots.xds.corbel.dev.yaml");

/// The field manager of the status the room writes.
const MANAGER: &str = "corbel-xds";

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
        objects: HashMap::new(),
        groups: HashMap::new(),
    };
    Ok(tokio::spawn(room.run(client, install_crd, reports, stop)))
}

/// What the room knows of one snapshot object.
#[derive(Default)]
struct Known {
    group: String,
    /// The version published for it, and the status last written.
    version: String,
    status: Value,
}

struct Room {
    api: Api<DynamicObject>,
    converter: Converter,
    snapshots: Snapshots,
    objects: HashMap<Key, Known>,
    /// Node group → the object that publishes it.
    groups: HashMap<String, Key>,
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
        // Objects seen during a (re)list: those not seen again were deleted meanwhile.
        let mut listing: Option<BTreeSet<Key>> = None;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(Event::Init)) => listing = Some(BTreeSet::new()),
                    Some(Ok(Event::InitApply(object))) => {
                        if let Some(seen) = listing.as_mut() {
                            seen.insert(key(&object));
                        }
                        self.publish(&object).await;
                    }
                    Some(Ok(Event::InitDone)) => {
                        let seen = listing.take().unwrap_or_default();
                        let gone: Vec<Key> = self.objects.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                        for key in gone {
                            self.unpublish(&key);
                        }
                    }
                    Some(Ok(Event::Apply(object))) => self.publish(&object).await,
                    Some(Ok(Event::Delete(object))) => self.unpublish(&key(&object)),
                    Some(Err(e)) => tracing::warn!(error = %e, "watching XdsSnapshots failed; retrying"),
                    None => return,
                },
                Some(report) = reports.recv() => self.report(report).await,
                _ = stopped(&mut stop) => return,
            }
        }
    }

    async fn publish(&mut self, object: &DynamicObject) {
        let key = key(object);
        let spec = &object.data["spec"];
        let group = spec["nodeGroup"].as_str().unwrap_or_default().to_string();
        let status = object.data.get("status").cloned().unwrap_or(Value::Null);
        let known = self.objects.entry(key.clone()).or_default();
        known.status = status;
        if group.is_empty() {
            self.refuse(&key, "spec.nodeGroup is empty: name the node group (node.cluster) of the instances to serve", vec![]).await;
            return;
        }
        if let Some(owner) = self.groups.get(&group)
            && *owner != key
        {
            let message = format!(
                "node group {group:?} is already served from XdsSnapshot {}/{}; give each Gateway its own node group",
                owner.0, owner.1
            );
            self.refuse(&key, &message, vec![]).await;
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
                Ok(any) => resources.push(Resource {
                    name: name.to_string(),
                    sources,
                    any,
                }),
                Err(e) => {
                    self.refuse(&key, &format!("not published: {e}"), sources)
                        .await;
                    return;
                }
            }
        }
        let snapshot = Snapshot::new(resources);
        let version = snapshot.version.clone();
        let known = self.objects.get_mut(&key).expect("inserted above");
        if known.group != group && !known.group.is_empty() {
            // The object moved to another node group: the old one serves nothing now.
            self.groups.remove(&known.group);
            self.snapshots.set(&known.group, Snapshot::new(vec![]));
        }
        known.group = group.clone();
        known.version = version.clone();
        self.groups.insert(group.clone(), key.clone());
        self.snapshots.set(&group, snapshot);
        let mut patch =
            json!({"version": version, "observedGeneration": object.metadata.generation});
        // A conversion refusal of an earlier spec no longer applies.
        if known.status["rejected"]["node"].is_null() && !known.status["rejected"].is_null() {
            patch["rejected"] = Value::Null;
        }
        self.patch_status(&key, patch).await;
    }

    fn unpublish(&mut self, key: &Key) {
        if let Some(known) = self.objects.remove(key)
            && self.groups.get(&known.group) == Some(key)
        {
            self.groups.remove(&known.group);
            tracing::info!(group = %known.group, "xds snapshot object deleted: its node group is served no resources");
            self.snapshots.set(&known.group, Snapshot::new(vec![]));
        }
    }

    /// A snapshot the room cannot publish: the last good one keeps serving.
    async fn refuse(&mut self, key: &Key, message: &str, sources: Vec<String>) {
        tracing::warn!(namespace = %key.0, name = %key.1, message, "xds snapshot refused");
        let patch = json!({"rejected": {"version": "", "message": message, "sources": sources}});
        self.patch_status(key, patch).await;
    }

    async fn report(&mut self, report: Report) {
        let Some(key) = self.groups.get(&report.group).cloned() else {
            return;
        };
        let patch = match report.refusal {
            None => {
                let known = &self.objects[&key];
                let mut patch = json!({"acknowledgedVersion": report.version});
                if !known.status["rejected"].is_null()
                    && known.status["rejected"]["version"] != report.version.as_str()
                {
                    patch["rejected"] = Value::Null;
                }
                patch
            }
            Some(refusal) => json!({"rejected": {
                "version": report.version,
                "message": refusal.message,
                "sources": refusal.sources,
                "node": report.node,
                "typeUrl": report.type_url,
            }}),
        };
        self.patch_status(&key, patch).await;
    }

    /// Merges `patch` into the object's status, unless the status already says so.
    async fn patch_status(&mut self, key: &Key, patch: Value) {
        let Some(known) = self.objects.get_mut(key) else {
            return;
        };
        let mut merged = if known.status.is_object() {
            known.status.clone()
        } else {
            json!({})
        };
        for (field, value) in patch.as_object().expect("patches are objects") {
            if value.is_null() {
                merged.as_object_mut().unwrap().remove(field);
            } else {
                merged[field] = value.clone();
            }
        }
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
