//! The identity tests' harness (tests/identity.rs, benches/identity.rs): npm `oidc-provider` with
//! dynamic registration on loopback, a consumer reading a Client's Secret and asking for tokens,
//! `corbel serve` with the identity controller, and the Keycloak contract fake served over HTTP.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use identity::keycloak::fake::FakeKeycloak;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::probes::{condition, create_crd_file, resource};
use crate::{Embedded, binding, plugin};

/// How long the controller may take to get somewhere (a first reconcile waits for discovery).
pub const WITHIN: Duration = Duration::from_secs(60);
/// The provider's one resource indicator: the `aud` of every access token.
pub const AUDIENCE: &str = "https://api.corbel.test";

/// npm `oidc-provider` on a random loopback port; killed when dropped.
pub struct Provider {
    child: Child,
    pub issuer: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    pub fn start() -> Provider {
        Provider::start_on(None)
    }

    /// On `port` (to come back where a stopped one was), or a random free one.
    pub fn start_on(port: Option<u16>) -> Provider {
        Provider::start_with(port, json!([]))
    }

    /// With these client-credentials `clients` besides the registered ones (`[{"id", "secret",
    /// "groups"}]`: API users whose tokens carry a `groups` claim).
    pub fn start_with(port: Option<u16>, clients: Value) -> Provider {
        let dir = crate::root().join("tests/servers/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules/oidc-provider: run `cargo xtask test` (it installs oidc-provider with npm)",
            dir.display()
        );
        let temp = tempfile::tempdir().unwrap();
        let log = temp.path().join("provider.log");
        let config = json!({"resource": AUDIENCE, "registration": true, "scopes": ["api", "read"],
                            "port": port, "clients": clients});
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("OIDC_PROVIDER_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("node is needed for the identity tests");
        // The first line is the issuer; read it on a thread so a stuck start cannot hang the test.
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
            .to_owned();
        if !issuer.starts_with("http://127.0.0.1:") {
            let _ = child.kill();
            panic!(
                "the provider did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Provider {
            child,
            issuer,
            log,
            _dir: temp,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.issuer.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// Plain HTTP to the provider; every status is an answer.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// What a consumer finds in the Secret: everything it needs to obtain a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    pub fn of(secret: &DynamicObject) -> Credentials {
        let engine = base64::engine::general_purpose::STANDARD;
        Credentials(
            secret.data["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let bytes = engine.decode(v.as_str().unwrap()).unwrap();
                    (k.clone(), String::from_utf8(bytes).unwrap())
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("the Secret has no {key}: {:?}", self.0.keys()))
    }

    /// A client-credentials token request with `client_id` and `client_secret` (basic auth,
    /// form-encoded as RFC 6749 §2.3.1 asks) and the scope: the status, and the body.
    pub fn token_with(&self, client_id: &str, client_secret: &str) -> (u16, Value) {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form(client_id),
            form(client_secret)
        ));
        let body = format!(
            "grant_type=client_credentials&scope={}",
            form(self.0.get("scope").map(String::as_str).unwrap_or_default())
        );
        let mut response = agent()
            .post(self.get("token_url"))
            .header("authorization", &format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send(body.as_str())
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, body)
    }

    pub fn token(&self) -> (u16, Value) {
        self.token_with(self.get("client_id"), self.get("client_secret"))
    }
}

pub fn form(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GET `url`, as JSON.
pub fn get_json(url: &str) -> Value {
    let text = agent()
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The claims of an access token, verified against the provider's JWKS (signature, issuer,
/// audience, expiry).
pub fn verified_claims(issuer: &str, token: &str) -> Value {
    let discovery = get_json(&format!("{issuer}/.well-known/openid-configuration"));
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(get_json(discovery["jwks_uri"].as_str().unwrap())).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the token's key is in the provider's JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

/// `corbel serve` in embedded mode with the identity controller and policy, the CRDs from
/// `deploy/crds/`, an IdentityProvider `idp` for the provider and a Realm `apps` of it.
pub struct Setup {
    pub embedded: Embedded,
    pub client: kube::Client,
}

pub const POLICY_RULES: &str = "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [identity.corbel.dev], apiVersions: [v1alpha1], resources: [identityproviders, realms, clients]}";

pub fn identity_kind(kind: &str) -> String {
    format!("{{apiVersion: identity.corbel.dev/v1alpha1, kind: {kind}}}")
}

impl Setup {
    pub async fn start(provider: &Provider) -> Setup {
        let setup = Setup::serve(&provider.issuer).await;
        setup
            .provider(json!({"oidc": {"issuer": provider.issuer}}))
            .await;
        setup
    }

    /// The server, with HTTP granted to `origin` only, and the CRDs.
    pub async fn serve(origin: &str) -> Setup {
        Setup::serve_with(origin, "resyncSeconds: 1, blockedRetrySeconds: 1", 4).await
    }

    /// The server with these controller settings and concurrency.
    pub async fn serve_with(origin: &str, settings: &str, concurrency: usize) -> Setup {
        let bindings = binding("identity", "identity", "validate", "{}", POLICY_RULES);
        let controllers = format!(
            "controllers:\n  - name: identity\n    plugin: {}\n    concurrency: {concurrency}\n    settings: {{{settings}}}\n    timeout: 10s\n    backoff: {{initial: 200ms, max: 1s}}\n    grants:\n      secrets: [{{namespace: '@self'}}]\n      http: ['{}']\n      resources: {{read: [{}, {}, {}], write: [{{apiVersion: v1, kind: Secret}}]}}\n",
            plugin("identity").display(),
            origin,
            identity_kind("IdentityProvider"),
            identity_kind("Realm"),
            identity_kind("Client"),
        );
        let embedded = Embedded::start(&bindings, &controllers, None).await;
        let client = embedded.client().await;
        for kind in ["identityproviders", "realms", "clients"] {
            create_crd_file(
                &client,
                &format!("deploy/crds/{kind}.identity.corbel.dev.yaml"),
            )
            .await;
        }
        Setup { embedded, client }
    }

    /// An IdentityProvider `idp` with this spec, and a Realm `apps` of it.
    pub async fn provider(&self, spec: Value) {
        self.create(
            &self.api("IdentityProvider"),
            json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": "IdentityProvider",
                   "metadata": {"name": "idp"}, "spec": spec}),
        )
        .await
        .unwrap();
        self.create(
            &self.api("Realm"),
            json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": "Realm",
                   "metadata": {"name": "apps"}, "spec": {"providerRef": {"name": "idp"}}}),
        )
        .await
        .unwrap();
    }

    pub fn api(&self, kind: &str) -> Api<DynamicObject> {
        let plural = format!("{}s", kind.to_lowercase());
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("identity.corbel.dev", "v1alpha1", kind, &plural),
        )
    }

    pub fn secrets(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("", "v1", "Secret", "secrets"),
        )
    }

    pub async fn create(
        &self,
        api: &Api<DynamicObject>,
        object: Value,
    ) -> Result<DynamicObject, kube::Error> {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
    }

    pub async fn create_client(
        &self,
        name: &str,
        spec: Value,
    ) -> Result<DynamicObject, kube::Error> {
        self.create(
            &self.api("Client"),
            json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": "Client",
                   "metadata": {"name": name}, "spec": spec}),
        )
        .await
    }

    /// Waits until the Client `name` is Ready; returns it.
    pub async fn ready_client(&self, name: &str, provider: &Provider) -> DynamicObject {
        let started = Instant::now();
        loop {
            if let Ok(object) = self.api("Client").get(name).await
                && condition(&object, "Ready").is_some_and(|c| c["status"] == "True")
            {
                return object;
            }
            assert!(
                started.elapsed() < WITHIN,
                "Client {name} never got Ready: {:?}\n{}\n{}",
                self.api("Client").get(name).await.map(|o| o.data),
                self.embedded.server.log(),
                provider.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `kind` `name` has condition `type_` = `status`; returns it.
    pub async fn wait_for(
        &self,
        kind: &str,
        name: &str,
        type_: &str,
        status: &str,
    ) -> DynamicObject {
        let started = Instant::now();
        loop {
            if let Ok(object) = self.api(kind).get(name).await
                && condition(&object, type_).is_some_and(|c| c["status"] == status)
            {
                return object;
            }
            assert!(
                started.elapsed() < WITHIN,
                "{kind} {name} never got {type_}={status}: {:?}\n{}",
                self.api(kind).get(name).await.map(|o| o.data),
                self.embedded.server.log(),
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn credentials(&self, secret: &str) -> Credentials {
        Credentials::of(&self.secrets().get(secret).await.unwrap())
    }
}

/// Polls `check` every 100 ms until it holds.
pub async fn eventually<F, Fut>(what: &str, setup: &Setup, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < WITHIN,
            "{what} never happened\n{}",
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves the Keycloak contract fake (`identity::keycloak::fake`, not Keycloak itself) over HTTP
/// on a random loopback port; returns its base URL.
pub async fn serve_keycloak(fake: std::sync::Arc<FakeKeycloak>) -> String {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let url = base.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (fake, base) = (fake.clone(), base.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (fake, base) = (fake.clone(), base.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            let mut asked = identity::keycloak::fake::Request::new(
                                parts.method.as_str(),
                                &format!("{base}{}", parts.uri),
                            )
                            .body(body);
                            for (name, value) in &parts.headers {
                                asked = asked.header(name.as_str(), value.to_str().unwrap_or(""));
                            }
                            let answer = fake.handle(&asked);
                            let mut response = hyper::Response::builder().status(answer.status);
                            for (name, value) in &answer.headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, hyper::Error>(
                                response
                                    .body(http_body_util::Full::new(bytes::Bytes::from(
                                        answer.body,
                                    )))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}
