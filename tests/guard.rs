//! The webhook server as the cluster's guard: clients that hold sockets without finishing a
//! request are let go, a flood past the connection cap is refused at once while the held
//! connections are untouched, and a body over the limit gets the 413 `Status`. Each client here is
//! a real slow client on a real socket, against the real binary.
//!
//! The only waits are failsafes: a client reads until the server closes, and a server that never
//! closes fails the test after [`FAILSAFE`] instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use corbel_e2e::{Server, binding, review};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FAILSAFE: Duration = Duration::from_secs(30);

/// Short limits, so that a held socket is let go quickly.
const SHORT: &str =
    "connections:\n  handshakeTimeout: 300ms\n  headerReadTimeout: 300ms\n  idleTimeout: 300ms\n";

async fn start(extra: &str) -> Server {
    let bindings = binding(
        "require-labels",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        "",
    );
    Server::start(&bindings, extra).await
}

fn address(server: &Server) -> String {
    server.base.trim_start_matches("https://").to_owned()
}

/// Reads until the server closes the connection (end of stream or reset); returns what came.
async fn read_until_closed(mut stream: impl AsyncRead + Unpin, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(FAILSAFE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{what}: the server still holds the connection after {FAILSAFE:?}"),
        }
    }
}

/// A TLS client that trusts the server's development CA and offers these ALPN protocols.
async fn tls(server: &Server, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server.dir.path().join("tls/ca.crt")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let socket = TcpStream::connect(address(server)).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), socket)
        .await
        .unwrap()
}

/// The server still answers a new client. A fresh client, not the harness's: the harness may hold
/// a pooled keep-alive connection that the server's 300 ms idle timeout is closing at that very
/// moment, and a request sent on it fails with an unexpected EOF (seen in CI), which says nothing
/// about the server.
async fn healthy(server: &Server) {
    let fresh = corbel_e2e::client_trusting(&server.dir.path().join("tls/ca.crt"));
    let response = fresh
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("a new client is served after the held connections were let go");
    let code = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(code, 200, "the server still serves: {body}");
}

#[tokio::test]
async fn idle_tcp_connections_and_half_sent_tls_hellos_are_released() {
    let server = start(SHORT).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(address(&server)).await.unwrap());
    }
    for _ in 0..20 {
        let mut socket = TcpStream::connect(address(&server)).await.unwrap();
        // A TLS record header announcing a 512-byte ClientHello, and only its first bytes.
        socket
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
            .await
            .unwrap();
        held.push(socket);
    }
    for socket in held {
        let received =
            read_until_closed(socket, "a socket that never finishes its handshake").await;
        assert!(
            received.is_empty() || received[0] == 0x15,
            "nothing but a TLS alert comes back: {received:?}"
        );
    }
    healthy(&server).await;
}

#[tokio::test]
async fn half_sent_headers_are_released() {
    let server = start(SHORT).await;
    let mut stream = tls(&server, &[b"http/1.1"]).await;
    stream
        .write_all(b"POST /validate/require-labels HTTP/1.1\r\nHost: corbel\r\nContent-Ty")
        .await
        .unwrap();
    read_until_closed(stream, "a request whose headers never end").await;
    healthy(&server).await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_a_request() {
    // A header timeout far away, so that the idle timeout is what lets the connection go.
    let server = start("connections:\n  headerReadTimeout: 1h\n  idleTimeout: 300ms\n").await;
    let mut stream = tls(&server, &[b"http/1.1"]).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: corbel\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(stream, "an idle keep-alive connection").await;
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("ok\n"),
        "the request was answered before the connection closed: {text}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_gets_a_goaway_and_is_closed() {
    let server = start("connections:\n  headerReadTimeout: 1h\n  idleTimeout: 300ms\n").await;
    let mut stream = tls(&server, &[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The client preface and an empty SETTINGS frame, then nothing: an idle HTTP/2 client.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let received = read_until_closed(stream, "an idle HTTP/2 connection").await;
    let mut frames = Vec::new();
    let mut rest = &received[..];
    while rest.len() >= 9 {
        let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        frames.push(rest[3]);
        rest = &rest[(9 + length).min(rest.len())..];
    }
    assert!(
        frames.contains(&0x7),
        "the server said GOAWAY before closing (frame types {frames:?})"
    );
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_at_once_and_held_ones_are_untouched() {
    let server = start("connections:\n  max: 2\n  handshakeTimeout: 1h\n").await;
    // The harness's client may hold one pooled connection: with three more, the last is past the
    // cap whatever it holds.
    let mut first = TcpStream::connect(address(&server)).await.unwrap();
    let _second = TcpStream::connect(address(&server)).await.unwrap();
    let refused = TcpStream::connect(address(&server)).await.unwrap();
    read_until_closed(refused, "a connection past the cap").await;
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), first.read(&mut buf))
            .await
            .is_err(),
        "a connection within the cap is left alone, even an idle one (handshakeTimeout: 1h)"
    );
    assert!(
        server.log().contains("connection refused"),
        "the refusal is logged: {}",
        server.log()
    );
    drop((first, _second));
    // Once the held sockets are gone, a new client is served again.
    let fresh = corbel_e2e::client_trusting(&server.dir.path().join("tls/ca.crt"));
    let started = std::time::Instant::now();
    loop {
        match fresh.get(format!("{}/healthz", server.base)).send().await {
            Ok(response) if response.status() == 200 => break,
            other => assert!(
                started.elapsed() < FAILSAFE,
                "a slot came back after the held connections closed: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_four_megabyte_body_gets_the_413_status() {
    let server = start("").await;
    let mut huge = review("configmap-labelled");
    huge["request"]["object"]["data"]["blob"] = json!("x".repeat(4 << 20));
    let response = server
        .client
        .post(format!("{}/validate/require-labels", server.base))
        .json(&huge)
        .send()
        .await
        .expect("the answer arrives: the connection is not dropped");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["reason"], "RequestEntityTooLarge", "{body}");
    assert_eq!(body["code"], 413, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("maxBodySize"),
        "says which setting: {body}"
    );
    // The same connection (pooled by the client) keeps serving.
    let ok = server
        .admit("/validate/require-labels", &review("configmap-labelled"))
        .await;
    assert_eq!(ok["allowed"], true, "{ok}");
}
