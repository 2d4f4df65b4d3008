//! What the end-to-end tests share: finding the built `corbel` binary and plugin components,
//! starting a server on a free loopback port with a development CA, and an HTTPS client that
//! trusts that CA. Build everything first with `cargo xtask test` (which sets `CORBEL_BIN` and
//! `CORBEL_PLUGINS`), or with `cargo xtask plugins && cargo build --release -p corbel`.

pub mod api;
pub mod envoy;
pub mod garage;
pub mod identity;
pub mod kong;
pub mod probes;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `corbel` binary under test.
pub fn bin() -> PathBuf {
    let path = std::env::var_os("CORBEL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/corbel"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (or `cargo build --release -p corbel`)",
        path.display()
    );
    path
}

/// A built plugin component, by file stem (`require_labels`, `hostile`, ...).
pub fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CORBEL_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/wasm32-wasip2/plugin"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask plugins`",
        path.display()
    );
    path
}

/// An AdmissionReview fixture from `tests/data/reviews/`.
pub fn review(name: &str) -> Value {
    let path = root()
        .join("tests/data/reviews")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A running `corbel serve`, killed when dropped.
pub struct Server {
    pub(crate) child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `corbel serve` with these bindings (a YAML list, paths absolute) and extra top-level
    /// configuration, and waits until it has finished loading them (ready or not).
    pub async fn start(bindings: &str, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("corbel.yaml");
        let indented: String = bindings.lines().map(|l| format!("  {l}\n")).collect();
        std::fs::write(
            &config,
            format!("tls:\n  development:\n    dir: tls\n{extra}\nbindings:\n{indented}"),
        )
        .unwrap();
        let address_file = dir.path().join("address");
        let child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--address-file")
            .arg(&address_file)
            // `CORBEL_TEST_LOG=info,corbel_reconcile=debug` also logs each reconcile and what
            // woke it (docs/gateway.md, Tests).
            .env(
                "RUST_LOG",
                std::env::var("CORBEL_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
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
                "corbel did not start: {}",
                log(dir.path())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = client_trusting(&dir.path().join("tls/ca.crt"));
        let server = Server {
            child,
            base: format!("https://{address}"),
            dir,
            client,
        };
        server.wait_loaded().await;
        server
    }

    /// Waits until the bindings have been loaded, and returns `/readyz`'s status and body.
    pub async fn wait_loaded(&self) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let response = self
                .client
                .get(format!("{}/readyz", self.base))
                .send()
                .await;
            if let Ok(response) = response {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                if body.get("bindings").is_some() {
                    return (status, body);
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "bindings did not load: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        log(self.dir.path())
    }

    /// POSTs a JSON body; returns the status and the body as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// POSTs an AdmissionReview and returns its `response`, checking the envelope on the way.
    pub async fn admit(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, review).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(
            body["response"]["uid"], review["request"]["uid"],
            "the response must carry the request's uid"
        );
        body["response"].clone()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most the server process has held resident since it started (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "corbel did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log(dir: &Path) -> String {
    format!(
        "server log:\n{}",
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    )
}

/// An HTTPS client that trusts only the given CA (PEM).
pub fn client_trusting(ca: &Path) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A YAML binding entry.
pub fn binding(name: &str, plugin_file: &str, mode: &str, settings: &str, more: &str) -> String {
    format!(
        "- name: {name}\n  plugin: {}\n  mode: {mode}\n  settings: {settings}\n{}",
        plugin(plugin_file).display(),
        more.lines().map(|l| format!("  {l}\n")).collect::<String>()
    )
}

/// Applies an AdmissionReview response's base64 JSON Patch to the request's object.
pub fn apply_patch(review: &Value, response: &Value) -> Value {
    use base64::Engine as _;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("patch is base64 text"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut object = review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).unwrap();
    object
}

/// A running `corbel serve` in embedded mode, with its data directory and kubeconfig.
pub struct Embedded {
    pub server: Server,
    pub data: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Embedded {
    /// Starts the embedded mode with these bindings and extra configuration, in a fresh data
    /// directory (or `data`, to restart on an existing store).
    pub async fn start(bindings: &str, extra: &str, data: Option<PathBuf>) -> Embedded {
        let data = data.unwrap_or_else(|| tempfile::tempdir().unwrap().keep());
        let extra = format!("embedded:\n  dataDir: {}\n{extra}", data.display());
        let server = Server::start(bindings, &extra).await;
        let kubeconfig = data.join("kubeconfig");
        Embedded {
            server,
            data,
            kubeconfig,
        }
    }

    /// A kube-rs client configured from the kubeconfig the server wrote.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Runs the real kubectl against the server; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is installed (kubectl version --client)");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The development admin token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Kills the server with SIGKILL: no shutdown, no flush.
    pub fn kill(mut self) -> PathBuf {
        self.server.child.kill().unwrap();
        self.server.child.wait().unwrap();
        self.data.clone()
    }
}
