//! The native baseline of `webhook_one_core`: a validating webhook as an operator would write it
//! in Rust without Corbel — axum on hyper, TLS by rustls (ring) through tokio-rustls, kube-rs's
//! typed `AdmissionReview` — doing the same check as the `require-labels` plugin with settings
//! `{"labels": ["team"]}`: the object must carry the label `team`.
//!
//! It serves behind the same TLS setup as `corbel serve` (the same certificate and key files, the
//! ring provider, rustls's safe default protocol versions, ALPN `h2` then `http/1.1`, hyper-util's
//! auto builder, `TCP_NODELAY`) and on the same runtime shape: tokio's multi-threaded runtime with
//! its default worker count, which is one when the process is pinned to one core. The system
//! allocator, as a webhook built from kube-rs's example would have (Corbel's binary uses mimalloc).
//!
//! ```sh
//! native-webhook --listen 127.0.0.1:0 --cert tls.crt --key tls.key --address-file addr
//! ```
//!
//! `POST /validate` takes an AdmissionReview and answers one; `GET /healthz` answers 200.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const REQUIRED: &str = "team";

async fn validate(
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let mut response = AdmissionResponse::from(&request);
    let labelled = request
        .object
        .as_ref()
        .and_then(|o| o.metadata.labels.as_ref())
        .is_some_and(|labels| labels.contains_key(REQUIRED));
    if !labelled {
        response = response.deny(format!("missing required labels: {REQUIRED}"));
    }
    Json(response.into_review())
}

struct Args {
    listen: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
    address_file: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut listen = None;
    let mut cert = None;
    let mut key = None;
    let mut address_file = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--cert" => cert = Some(value.into()),
            "--key" => key = Some(value.into()),
            "--address-file" => address_file = Some(value.into()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let usage = "usage: native-webhook --listen ADDR --cert FILE --key FILE --address-file FILE";
    Ok(Args {
        listen: listen.ok_or(usage)?,
        cert: cert.ok_or(usage)?,
        key: key.ok_or(usage)?,
        address_file: address_file.ok_or(usage)?,
    })
}

fn tls(args: &Args) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(&args.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("failed to read {}: {e}", args.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.key)
        .map_err(|e| format!("failed to read {}: {e}", args.key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = args()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls(&args)?);
    let router = Router::new()
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("failed to listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    std::fs::write(&args.address_file, address.to_string())
        .map_err(|e| format!("failed to write {}: {e}", args.address_file.display()))?;
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (acceptor, router, builder) = (acceptor.clone(), router.clone(), builder.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(socket).await else {
                return;
            };
            let service = TowerToHyperService::new(router);
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}
