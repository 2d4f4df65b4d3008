//! A real OCI registry for the registry tests: Debian's `docker-registry` (CNCF distribution v2)
//! on a free loopback port, in a temp dir, with TLS from a CA made here (rcgen) and htpasswd
//! basic auth (bcrypt, `htpasswd -Bbn`); a workspace that runs `corbel plugin …` against it; and
//! a tampering proxy that serves one blob with a byte changed.
//!
//! Install the servers with `cargo xtask test` (or `apt-get install docker-registry apache2-utils skopeo`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, Issuer, KeyPair};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse";

/// A test CA that signs serving certificates for 127.0.0.1.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "corbel registry test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate and key (PEM) for 127.0.0.1 and localhost.
    pub fn serving(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: run `cargo xtask test`, or `apt-get install -y {package}`"
    );
}

/// A running `docker-registry`, killed when dropped.
pub struct TestRegistry {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub address: String,
    pub ca: TestCa,
    /// The CA certificate file, as `--ca-file` and `registry.caFile` take it.
    pub ca_file: PathBuf,
}

impl TestRegistry {
    pub fn start() -> Self {
        require("docker-registry", "docker-registry");
        require("htpasswd", "apache2-utils");
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        let (cert, key) = ca.serving();
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .unwrap();
        assert!(htpasswd.status.success());
        std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n  tls:\n    certificate: {d}/tls.crt\n    key: {d}/tls.key\nauth:\n  htpasswd:\n    realm: corbel-test\n    path: {d}/htpasswd\n"
            ),
        )
        .unwrap();
        let mut registry = Self {
            child: None,
            dir,
            address,
            ca,
            ca_file,
        };
        registry.spawn();
        registry
    }

    fn spawn(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("failed to start docker-registry");
        self.child = Some(child);
        // Ready when it listens (it answers GET /v2/ with 401 from then on). A plain TCP probe
        // keeps this usable from inside an async test.
        let started = Instant::now();
        while std::net::TcpStream::connect(&self.address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not start: {}",
                std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the registry (its data stays): what an offline start looks like.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `oci://127.0.0.1:PORT/{path}`
    pub fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.address)
    }

    /// Pushes a manifest with the given config and layer media types straight over the
    /// distribution API (what other Wasm tools, or a hand-made artifact, would publish).
    pub async fn push_raw(
        &self,
        repository: &str,
        tag: &str,
        config_type: &str,
        layer_type: &str,
        layer: &[u8],
    ) -> String {
        let client = crate::client_trusting(&self.ca_file);
        let base = format!("https://{}/v2/{repository}", self.address);
        let config = br#"{"architecture":"wasm","os":"wasip1"}"#.to_vec();
        let mut descriptors = Vec::new();
        for (media, bytes) in [(config_type, config.clone()), (layer_type, layer.to_vec())] {
            let digest = sha256(&bytes);
            let started = client
                .post(format!("{base}/blobs/uploads/"))
                .basic_auth(USER, Some(PASSWORD))
                .send()
                .await
                .unwrap();
            assert_eq!(started.status().as_u16(), 202);
            let location = started.headers()["location"].to_str().unwrap().to_owned();
            let separator = if location.contains('?') { '&' } else { '?' };
            let location = if location.starts_with("http") {
                location
            } else {
                format!("https://{}{location}", self.address)
            };
            let put = client
                .put(format!("{location}{separator}digest={digest}"))
                .basic_auth(USER, Some(PASSWORD))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(put.status().as_u16(), 201, "{}", put.text().await.unwrap());
            descriptors.push(
                serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len()}),
            );
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptors[0],
            "layers": [descriptors[1]],
        }))
        .unwrap();
        let put = client
            .put(format!("{base}/manifests/{tag}"))
            .basic_auth(USER, Some(PASSWORD))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "{}", put.text().await.unwrap());
        sha256(&manifest)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A folder with a `corbel.yaml` whose `registry` section points at a test registry, a cache,
/// docker credentials, and signing keys; runs `corbel plugin …` there.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// An ECDSA P-256 key pair as cosign uses: PKCS#8 private key and SPKI public key, in PEM files.
pub fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, key.serialize_pem()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    (private, public)
}

impl Workspace {
    /// `registry_yaml` is extra lines of the `registry:` section (trustedKeys, allowUnsigned).
    pub fn new(registry: &TestRegistry, registry_yaml: &str, bindings: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), &registry.ca.pem).unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        let auth = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASSWORD}"),
        );
        std::fs::write(
            dir.path().join("docker/config.json"),
            format!(
                r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
                registry.address
            ),
        )
        .unwrap();
        let workspace = Self { dir };
        workspace.configure(registry_yaml, bindings);
        workspace
    }

    /// Rewrites corbel.yaml with this registry section and these bindings (a YAML list).
    pub fn configure(&self, registry_yaml: &str, bindings: &str) {
        let registry_yaml: String = registry_yaml.lines().map(|l| format!("  {l}\n")).collect();
        let bindings: String = bindings.lines().map(|l| format!("  {l}\n")).collect();
        let text = format!(
            "tls:\n  development:\n    dir: tls\nregistry:\n  cacheDir: cache\n  caFile: ca.crt\n{registry_yaml}bindings:\n{bindings}"
        );
        let tmp = self.path("corbel.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, self.path("corbel.yaml")).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `corbel plugin ARGS --config corbel.yaml` with the workspace's docker config.
    pub fn corbel(&self, args: &[&str]) -> Output {
        self.corbel_with_stdin(args, None)
    }

    pub fn corbel_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new(crate::bin())
            .arg("plugin")
            .args(args)
            .arg("--config")
            .arg(self.path("corbel.yaml"))
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Starts `corbel serve` on this workspace's corbel.yaml and waits until its bindings loaded.
    pub async fn serve(&self) -> crate::Server {
        let dir = tempfile::tempdir().unwrap();
        let address_file = dir.path().join("address");
        let child = Command::new(crate::bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(self.path("corbel.yaml"))
            .arg("--address-file")
            .arg(&address_file)
            .current_dir(self.dir.path())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .expect("failed to start corbel");
        let started = Instant::now();
        let address = loop {
            if let Ok(address) = std::fs::read_to_string(&address_file)
                && !address.is_empty()
            {
                break address;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "corbel did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = crate::client_trusting(&self.path("tls/ca.crt"));
        let server = crate::Server {
            child,
            base: format!("https://{address}"),
            dir,
            client,
        };
        server.wait_loaded().await;
        server
    }

    /// Files under the cache's `blobs/sha256` and `tmp`.
    pub fn cached_files(&self) -> Vec<String> {
        let mut files = Vec::new();
        for sub in ["cache/blobs/sha256", "cache/tmp"] {
            if let Ok(entries) = std::fs::read_dir(self.path(sub)) {
                files.extend(
                    entries
                        .flatten()
                        .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy())),
                );
            }
        }
        files
    }
}

/// Succeeds or panics with the command's standard error; returns standard output, trimmed.
pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Fails, and returns standard error.
pub fn fails(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An HTTPS proxy in front of a registry that forwards everything and changes one byte of the
/// blob with the given digest: a registry serving different bytes than it advertises.
pub struct TamperProxy {
    pub address: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TamperProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TamperProxy {
    pub async fn start(registry: &TestRegistry, tampered_digest: &str) -> Self {
        use http_body_util::{BodyExt, Full};
        use hyper::service::service_fn;
        use rustls_pki_types::pem::PemObject;

        let (cert, key) = registry.ca.serving();
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let upstream = format!("https://{}", registry.address);
        let client = crate::client_trusting(&registry.ca_file);
        let target = format!("/blobs/{tampered_digest}");
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, client, upstream, target) = (
                    acceptor.clone(),
                    client.clone(),
                    upstream.clone(),
                    target.clone(),
                );
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let (client, upstream, target) =
                                (client.clone(), upstream.clone(), target.clone());
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let path = parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str())
                                    .unwrap_or("/");
                                let mut forward = client
                                    .request(parts.method.clone(), format!("{upstream}{path}"));
                                for (name, value) in &parts.headers {
                                    if name != "host" && name != "content-length" {
                                        forward = forward.header(name, value);
                                    }
                                }
                                let response = forward.body(body).send().await.unwrap();
                                let mut builder =
                                    hyper::Response::builder().status(response.status().as_u16());
                                for (name, value) in response.headers() {
                                    if name != "content-length" && name != "transfer-encoding" {
                                        builder = builder.header(name, value);
                                    }
                                }
                                let mut bytes = response.bytes().await.unwrap().to_vec();
                                if parts.method == hyper::Method::GET
                                    && path.ends_with(&target)
                                    && !bytes.is_empty()
                                {
                                    let last = bytes.len() - 1;
                                    bytes[last] ^= 0xff;
                                }
                                Ok::<_, std::convert::Infallible>(
                                    builder.body(Full::new(bytes::Bytes::from(bytes))).unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { address, task }
    }
}

/// Sends SIGHUP to a running server: reload the configuration, hot-swapping bindings.
pub fn hangup(server: &crate::Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Admission requests sent in a loop while a binding is swapped between two versions: v1 is
/// require-labels (denies the unlabelled ConfigMap), v2 pod-security (admits it). Every answer
/// must come from exactly one of them; anything else (a failed request) panics the loop.
pub struct SwapLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub from_v1: Arc<AtomicUsize>,
    pub from_v2: Arc<AtomicUsize>,
}

impl SwapLoad {
    pub fn start(server: Arc<crate::Server>, binding: &str, clients: usize) -> SwapLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let (from_v1, from_v2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let path = format!("/validate/{binding}");
        let tasks = (0..clients)
            .map(|_| {
                let (server, stop, from_v1, from_v2, path) = (
                    server.clone(),
                    stop.clone(),
                    from_v1.clone(),
                    from_v2.clone(),
                    path.clone(),
                );
                tokio::spawn(async move {
                    let request = crate::review("configmap-unlabelled");
                    let mut sent = 0;
                    while !stop.load(Ordering::Relaxed) && sent < 20_000 {
                        sent += 1;
                        let (status, body) = server.post(&path, &request).await;
                        assert_eq!(status, 200, "{body}");
                        let response = &body["response"];
                        match (
                            response["allowed"].as_bool(),
                            response["status"]["message"].as_str(),
                        ) {
                            (Some(false), Some("missing required labels: team")) => {
                                from_v1.fetch_add(1, Ordering::Relaxed)
                            }
                            (Some(true), None) if response.get("warnings").is_none() => {
                                from_v2.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => panic!(
                                "a response from neither version (a failed request?): {response}"
                            ),
                        };
                    }
                })
            })
            .collect();
        SwapLoad {
            stop,
            tasks,
            from_v1,
            from_v2,
        }
    }

    /// Stops the load; returns how many answers came from v1 and v2 (panics if any failed).
    pub async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (
            self.from_v1.load(Ordering::Relaxed),
            self.from_v2.load(Ordering::Relaxed),
        )
    }
}
