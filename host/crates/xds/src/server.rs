//! The ADS service (state of the world): one stream per Envoy instance, every type on it.
//!
//! Per stream and type URL the server keeps what it sent (snapshot and nonce), what the instance
//! last accepted, and the names it asked for. A request whose `response_nonce` is not the last
//! one sent is stale and ignored (the xDS protocol's rule); one with the last nonce is an ACK, or
//! a NACK when it carries `error_detail`: the instance keeps its last good configuration and the
//! server sends nothing more for that type until that type's content changes.
//!
//! A type is sent only when its own content changed (each type has its digest): a Route whose
//! added header changed sends the route table, not every cluster again. One response per type is
//! in flight at a time, as go-control-plane does: the next goes with the answer to the last, with
//! whatever changed meanwhile, so a burst of changes costs an instance one response per round
//! trip. A NACK is a [`Report`] at once; an ACK becomes a [`Report`] once every type of the
//! stream holds that version or a later one (a version is acknowledged when the instance has all
//! of it).
//!
//! Nothing is sent before the group's first snapshot is published: an empty response would make
//! Envoy drop every listener, so a restarted host that has not loaded its snapshots yet must stay
//! silent rather than serve nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures_core::Stream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::snapshot::{Snapshot, Snapshots};

/// Order in which types are pushed after a change: clusters before the listeners and routes
/// that use them (make before break).
const PUSH_ORDER: [&str; 4] = [
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
];

/// What an instance said about a version it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub group: String,
    pub node: String,
    /// The type refused; empty for an acceptance (which covers every type).
    pub type_url: String,
    pub version: String,
    /// The version's [`Snapshot::serial`]: later versions have larger serials.
    pub serial: u64,
    /// `None`: accepted. `Some`: refused, with Envoy's message and the sources of the resources
    /// changed since the version it last accepted.
    pub refusal: Option<Refusal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub message: String,
    pub sources: Vec<String>,
}

#[derive(Clone)]
pub struct AdsServer {
    snapshots: Snapshots,
    reports: mpsc::UnboundedSender<Report>,
}

impl AdsServer {
    pub fn new(snapshots: Snapshots, reports: mpsc::UnboundedSender<Report>) -> AdsServer {
        AdsServer { snapshots, reports }
    }

    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<AdsServer> {
        AggregatedDiscoveryServiceServer::new(self)
    }
}

#[derive(Default)]
struct TypeState {
    names: BTreeSet<String>,
    nonce: String,
    sent: Option<Arc<Snapshot>>,
    accepted: Option<Arc<Snapshot>>,
    /// A response awaits its ACK or NACK: nothing more of this type is sent meanwhile (the
    /// latest snapshot goes with the answer), so a burst of changes costs an instance one
    /// response per round trip, not one per change.
    in_flight: bool,
    /// Send even when the type's content did not change (first request, new names).
    force: bool,
    /// The last response sent was refused: not sent again until the type's content changes.
    refused: bool,
}

struct Stream_ {
    group: String,
    node: String,
    types: BTreeMap<String, TypeState>,
    nonces: u64,
    /// The serial of the last version reported as accepted for every type.
    reported: u64,
}

impl Stream_ {
    fn response(&mut self, type_url: &str, snapshot: &Arc<Snapshot>) -> Option<DiscoveryResponse> {
        if snapshot.version.is_empty() {
            return None;
        }
        let state = self.types.get_mut(type_url)?;
        if state.in_flight {
            return None;
        }
        if !state.force
            && let Some(sent) = &state.sent
            && sent.type_version(type_url) == snapshot.type_version(type_url)
        {
            // Nothing of this type changed: the instance holds this version's content already
            // (or refused it, and would again).
            if !state.refused
                && state
                    .accepted
                    .as_ref()
                    .is_some_and(|a| a.serial == sent.serial)
            {
                state.accepted = Some(snapshot.clone());
            }
            state.sent = Some(snapshot.clone());
            return None;
        }
        self.nonces += 1;
        state.nonce = self.nonces.to_string();
        state.sent = Some(snapshot.clone());
        state.in_flight = true;
        state.force = false;
        state.refused = false;
        let resources = snapshot
            .of_type(type_url, &state.names)
            .map(|r| r.any.clone())
            .collect();
        tracing::debug!(group = %self.group, node = %self.node, type_url, version = %snapshot.version, "xds push");
        Some(DiscoveryResponse {
            version_info: snapshot.version.clone(),
            resources,
            type_url: type_url.to_string(),
            nonce: state.nonce.clone(),
            ..Default::default()
        })
    }

    /// The version every type of the stream has accepted, once it is newer than the last one
    /// reported: an instance has acknowledged a version when it holds all of it.
    fn acknowledged(&mut self) -> Option<Report> {
        let mut oldest: Option<&Arc<Snapshot>> = None;
        for state in self.types.values() {
            let accepted = state.accepted.as_ref()?;
            if oldest.is_none_or(|o| accepted.serial < o.serial) {
                oldest = Some(accepted);
            }
        }
        let oldest = oldest?;
        if oldest.serial <= self.reported {
            return None;
        }
        self.reported = oldest.serial;
        Some(Report {
            group: self.group.clone(),
            node: self.node.clone(),
            type_url: String::new(),
            version: oldest.version.clone(),
            serial: oldest.serial,
            refusal: None,
        })
    }

    /// Handles one request; returns a report for a NACK, and whether to (re)send.
    fn request(&mut self, request: DiscoveryRequest) -> (Option<Report>, bool) {
        let state = self.types.entry(request.type_url.clone()).or_default();
        let names: BTreeSet<String> = request.resource_names.into_iter().collect();
        if request.response_nonce.is_empty() {
            // First request for this type on the stream (or after a reconnect).
            state.names = names;
            state.in_flight = false;
            state.force = true;
            return (None, true);
        }
        if request.response_nonce != state.nonce {
            return (None, false);
        }
        state.in_flight = false;
        if state.names != names {
            // New names (such as a new RDS name) need the current resources even at the same version.
            state.force = true;
        }
        state.names = names;
        let Some(sent) = state.sent.clone() else {
            return (None, true);
        };
        let report = match request.error_detail {
            Some(error) => {
                let sources = sent.new_sources(&request.type_url, state.accepted.as_deref());
                state.refused = true;
                tracing::warn!(group = %self.group, node = %self.node, type_url = %request.type_url,
                    version = %sent.version, message = %error.message, "xds NACK");
                Some(Report {
                    group: self.group.clone(),
                    node: self.node.clone(),
                    type_url: request.type_url.clone(),
                    version: sent.version.clone(),
                    serial: sent.serial,
                    refusal: Some(Refusal {
                        message: error.message,
                        sources,
                    }),
                })
            }
            None => {
                state.accepted = Some(sent);
                None
            }
        };
        // The answer frees the type: what changed meanwhile goes now.
        (report, true)
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ResponseStream;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let snapshots = self.snapshots.clone();
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let Some(Ok(first)) = incoming.next().await else {
                return;
            };
            let Some(node) = first.node.clone() else {
                let _ = tx
                    .send(Err(Status::invalid_argument(
                        "the first DiscoveryRequest must carry the node; set node.id and node.cluster (the node group) in the bootstrap",
                    )))
                    .await;
                return;
            };
            let group = node.cluster.clone();
            tracing::info!(group = %group, node = %node.id, "xds stream opened");
            let mut watch = snapshots.subscribe(&group);
            let mut stream = Stream_ {
                group,
                node: node.id,
                types: BTreeMap::new(),
                nonces: 0,
                reported: 0,
            };
            let mut next = Some(first);
            loop {
                if let Some(request) = next.take() {
                    let type_url = request.type_url.clone();
                    let (report, send) = stream.request(request);
                    if let Some(report) = report {
                        let _ = reports.send(report);
                    }
                    if send {
                        let snapshot = watch.borrow().clone();
                        if let Some(response) = stream.response(&type_url, &snapshot)
                            && tx.send(Ok(response)).await.is_err()
                        {
                            break;
                        }
                    }
                    if let Some(report) = stream.acknowledged() {
                        let _ = reports.send(report);
                    }
                }
                tokio::select! {
                    request = incoming.next() => match request {
                        Some(Ok(request)) => next = Some(request),
                        Some(Err(status)) => {
                            tracing::debug!(group = %stream.group, node = %stream.node, %status, "xds stream failed");
                            break;
                        }
                        None => break,
                    },
                    changed = watch.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let snapshot = watch.borrow_and_update().clone();
                        let mut types: Vec<String> = stream.types.keys().cloned().collect();
                        types.sort_by_key(|t| PUSH_ORDER.iter().position(|p| p == t).unwrap_or(PUSH_ORDER.len()));
                        for type_url in types {
                            if let Some(response) = stream.response(&type_url, &snapshot)
                                && tx.send(Ok(response)).await.is_err()
                            {
                                return;
                            }
                        }
                        if let Some(report) = stream.acknowledged() {
                            let _ = reports.send(report);
                        }
                    }
                }
            }
            tracing::info!(group = %stream.group, node = %stream.node, "xds stream closed");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaStream>, Status> {
        Err(Status::unimplemented(
            "Corbel serves state-of-the-world ADS; use api_type: GRPC (not DELTA_GRPC) in the bootstrap",
        ))
    }
}
