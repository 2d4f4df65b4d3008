//! The ADS protocol over a real gRPC connection (tonic client from `envoy-types`, as Envoy's own
//! messages): first push, ACK, NACK with the changed sources, stale nonces, and silence before
//! the first snapshot.

use std::time::Duration;

use corbel_xds::{AdsServer, Converter, Report, Resource, Snapshot, Snapshots};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn cluster(name: &str, source: &str) -> Resource {
    let any = Converter::new()
        .unwrap()
        .to_any(
            name,
            &json!({"@type": CLUSTER, "name": name, "connect_timeout": "1s"}),
        )
        .unwrap();
    Resource::new(name, vec![source.into()], any)
}

struct Envoy {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

impl Envoy {
    async fn send(&self, version: &str, nonce: &str, error: Option<&str>) {
        self.send_type(CLUSTER, version, nonce, error).await
    }

    async fn send_type(&self, type_url: &str, version: &str, nonce: &str, error: Option<&str>) {
        let request = DiscoveryRequest {
            version_info: version.into(),
            node: Some(Node {
                id: "envoy-1".into(),
                cluster: "shop/public".into(),
                ..Default::default()
            }),
            type_url: type_url.into(),
            response_nonce: nonce.into(),
            error_detail: error.map(|m| Status {
                code: 3,
                message: m.into(),
                details: vec![],
            }),
            ..Default::default()
        };
        self.requests.send(request).await.unwrap();
    }

    async fn next(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), self.responses.next())
            .await
            .expect("a response within 5 s")
            .unwrap()
            .unwrap()
    }

    async fn nothing(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(300), self.responses.next()).await;
        assert!(next.is_err(), "expected no response, got {next:?}");
    }
}

async fn start() -> (Snapshots, mpsc::UnboundedReceiver<Report>, Envoy) {
    let snapshots = Snapshots::default();
    let (reports_tx, reports) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = AdsServer::new(snapshots.clone(), reports_tx).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    let (requests, rx) = mpsc::channel(8);
    let responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (
        snapshots,
        reports,
        Envoy {
            requests,
            responses,
        },
    )
}

#[tokio::test]
async fn serves_acknowledges_and_reports_a_refusal_with_the_changed_sources() {
    let (snapshots, mut reports, mut envoy) = start().await;
    envoy.send("", "", None).await;
    // Nothing published yet: an empty answer would wipe Envoy's configuration.
    envoy.nothing().await;

    let v1 = Snapshot::new(vec![cluster("a", "Route/a@1")]);
    snapshots.set("shop/public", v1.clone());
    let first = envoy.next().await;
    assert_eq!(first.version_info, v1.version);
    assert_eq!(first.resources.len(), 1);
    envoy.send(&v1.version, &first.nonce, None).await;
    let ack = reports.recv().await.unwrap();
    assert_eq!(
        (
            ack.group.as_str(),
            ack.version.as_str(),
            ack.refusal.is_none()
        ),
        ("shop/public", v1.version.as_str(), true)
    );

    let v2 = Snapshot::new(vec![cluster("a", "Route/a@1"), cluster("b", "Route/b@1")]);
    snapshots.set("shop/public", v2.clone());
    let second = envoy.next().await;
    assert_eq!(second.resources.len(), 2);
    // A stale nonce is ignored.
    envoy
        .send(&v1.version, &first.nonce, Some("old news"))
        .await;
    envoy
        .send(&v1.version, &second.nonce, Some("cluster b: invalid"))
        .await;
    let nack = reports.recv().await.unwrap();
    let refusal = nack.refusal.expect("a NACK");
    assert_eq!(nack.version, v2.version);
    assert_eq!(refusal.message, "cluster b: invalid");
    assert_eq!(
        refusal.sources,
        ["Route/b@1"],
        "only what changed since the accepted version"
    );
    envoy.nothing().await;

    // The publisher leaves the refused source out: a new version is pushed.
    snapshots.set("shop/public", v1.clone());
    assert_eq!(envoy.next().await.version_info, v1.version);
}

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

fn listener(name: &str, port: u32) -> Resource {
    let any = Converter::new()
        .unwrap()
        .to_any(
            name,
            &json!({"@type": LISTENER, "name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}),
        )
        .unwrap();
    Resource::new(name, vec![], any)
}

#[tokio::test]
async fn only_the_types_that_changed_are_sent_one_at_a_time_and_acknowledged_whole() {
    let (snapshots, mut reports, mut envoy) = start().await;
    let v1 = Snapshot::new(vec![cluster("a", "Route/a@1"), listener("l", 1)]);
    snapshots.set("shop/public", v1.clone());
    envoy.send_type(CLUSTER, "", "", None).await;
    let clusters = envoy.next().await;
    envoy.send_type(LISTENER, "", "", None).await;
    let listeners = envoy.next().await;
    assert_eq!(
        (clusters.type_url.as_str(), listeners.type_url.as_str()),
        (CLUSTER, LISTENER)
    );
    envoy
        .send_type(CLUSTER, &v1.version, &clusters.nonce, None)
        .await;
    // Accepted for one type only: not acknowledged yet.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        reports.try_recv().is_err(),
        "an acceptance of one type of two"
    );
    envoy
        .send_type(LISTENER, &v1.version, &listeners.nonce, None)
        .await;
    let ack = reports.recv().await.unwrap();
    assert_eq!(
        (ack.version.as_str(), ack.refusal.is_none()),
        (v1.version.as_str(), true)
    );

    // The listener changes, the clusters do not: one response, of listeners.
    let v2 = Snapshot::new(vec![cluster("a", "Route/a@1"), listener("l", 2)]);
    snapshots.set("shop/public", v2.clone());
    let second = envoy.next().await;
    assert_eq!(
        (second.type_url.as_str(), second.version_info.as_str()),
        (LISTENER, v2.version.as_str())
    );
    envoy.nothing().await;

    // While it waits for its answer, more changes are held back, and the last goes with it.
    snapshots.set(
        "shop/public",
        Snapshot::new(vec![cluster("a", "Route/a@1"), listener("l", 3)]),
    );
    let v4 = Snapshot::new(vec![cluster("a", "Route/a@1"), listener("l", 4)]);
    snapshots.set("shop/public", v4.clone());
    envoy.nothing().await;
    envoy
        .send_type(LISTENER, &v2.version, &second.nonce, None)
        .await;
    let ack = reports.recv().await.unwrap();
    assert_eq!(
        ack.version, v2.version,
        "v2 is held whole (its clusters are v1's)"
    );
    let fourth = envoy.next().await;
    assert_eq!(
        (fourth.type_url.as_str(), fourth.version_info.as_str()),
        (LISTENER, v4.version.as_str())
    );
    envoy.nothing().await;
}

#[test]
fn the_same_content_has_the_same_version() {
    let a = Snapshot::new(vec![cluster("a", "x"), cluster("b", "y")]);
    let b = Snapshot::new(vec![cluster("b", "y"), cluster("a", "x")]);
    assert_eq!(a.version, b.version);
    assert_ne!(a.version, Snapshot::new(vec![cluster("a", "x")]).version);
}
