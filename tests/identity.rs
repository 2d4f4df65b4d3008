//! The identity controller end to end, against a real OpenID provider (npm `oidc-provider`
//! 9.13, with dynamic registration and its management enabled: tests/servers/oidc/provider.mjs)
//! and the real `corbel serve` in embedded mode. The server runs
//! `target/wasm32-wasip2/plugin/identity.wasm` as the `identity` controller (grants: Secrets of
//! the reconciled object's namespace to read, Secrets to write as children, the identity kinds
//! to read, HTTP to this provider only) and as an inline validating policy for its kinds. The
//! tests act as a consumer would: read the Secret the controller wrote and ask the provider for
//! a client-credentials token with nothing else, then check the token against the provider's
//! JWKS.
//!
//! Needs node and `tests/servers/oidc/node_modules` (`cargo xtask test` installs them), the
//! plugin (`cargo xtask plugins`) and the host (`cargo build --release -p corbel`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use corbel_e2e::probes::{condition, create_crd_file, resource};
use corbel_e2e::{Embedded, binding, plugin};
use identity::keycloak::fake::FakeKeycloak;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

/// How long the controller may take to get somewhere (a first reconcile waits for discovery).
const WITHIN: Duration = Duration::from_secs(60);
/// The provider's one resource indicator: the `aud` of every access token.
const AUDIENCE: &str = "https://api.corbel.test";

/// npm `oidc-provider` on a random loopback port; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
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
    fn start() -> Provider {
        Provider::start_on(None)
    }

    /// On `port` (to come back where a stopped one was), or a random free one.
    fn start_on(port: Option<u16>) -> Provider {
        let dir = corbel_e2e::root().join("tests/servers/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules/oidc-provider: run `cargo xtask test` (it installs oidc-provider with npm)",
            dir.display()
        );
        let temp = tempfile::tempdir().unwrap();
        let log = temp.path().join("provider.log");
        let config = json!({"resource": AUDIENCE, "registration": true, "scopes": ["api", "read"],
                            "port": port});
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.issuer.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// Plain HTTP to the provider; every status is an answer.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// What a consumer finds in the Secret: everything it needs to obtain a token.
#[derive(Debug, Clone, PartialEq)]
struct Credentials(BTreeMap<String, String>);

impl Credentials {
    fn of(secret: &DynamicObject) -> Credentials {
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

    fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("the Secret has no {key}: {:?}", self.0.keys()))
    }

    /// A client-credentials token request with `client_id` and `client_secret` (basic auth,
    /// form-encoded as RFC 6749 §2.3.1 asks) and the scope: the status, and the body.
    fn token_with(&self, client_id: &str, client_secret: &str) -> (u16, Value) {
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

    fn token(&self) -> (u16, Value) {
        self.token_with(self.get("client_id"), self.get("client_secret"))
    }
}

fn form(text: &str) -> String {
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
fn get_json(url: &str) -> Value {
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
fn verified_claims(issuer: &str, token: &str) -> Value {
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
struct Setup {
    embedded: Embedded,
    client: kube::Client,
}

const POLICY_RULES: &str = "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [identity.corbel.dev], apiVersions: [v1alpha1], resources: [identityproviders, realms, clients]}";

fn identity_kind(kind: &str) -> String {
    format!("{{apiVersion: identity.corbel.dev/v1alpha1, kind: {kind}}}")
}

impl Setup {
    async fn start(provider: &Provider) -> Setup {
        let setup = Setup::serve(&provider.issuer).await;
        setup
            .provider(json!({"oidc": {"issuer": provider.issuer}}))
            .await;
        setup
    }

    /// The server, with HTTP granted to `origin` only, and the CRDs.
    async fn serve(origin: &str) -> Setup {
        let bindings = binding("identity", "identity", "validate", "{}", POLICY_RULES);
        let controllers = format!(
            "controllers:\n  - name: identity\n    plugin: {}\n    settings: {{resyncSeconds: 1, blockedRetrySeconds: 1}}\n    timeout: 10s\n    backoff: {{initial: 200ms, max: 1s}}\n    grants:\n      secrets: [{{namespace: '@self'}}]\n      http: ['{}']\n      resources: {{read: [{}, {}, {}], write: [{{apiVersion: v1, kind: Secret}}]}}\n",
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
    async fn provider(&self, spec: Value) {
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

    fn api(&self, kind: &str) -> Api<DynamicObject> {
        let plural = format!("{}s", kind.to_lowercase());
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("identity.corbel.dev", "v1alpha1", kind, &plural),
        )
    }

    fn secrets(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("", "v1", "Secret", "secrets"),
        )
    }

    async fn create(
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

    async fn create_client(&self, name: &str, spec: Value) -> Result<DynamicObject, kube::Error> {
        self.create(
            &self.api("Client"),
            json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": "Client",
                   "metadata": {"name": name}, "spec": spec}),
        )
        .await
    }

    /// Waits until the Client `name` is Ready; returns it.
    async fn ready_client(&self, name: &str, provider: &Provider) -> DynamicObject {
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
    async fn wait_for(&self, kind: &str, name: &str, type_: &str, status: &str) -> DynamicObject {
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

    async fn credentials(&self, secret: &str) -> Credentials {
        Credentials::of(&self.secrets().get(secret).await.unwrap())
    }
}

/// Polls `check` every 100 ms until it holds.
async fn eventually<F, Fut>(what: &str, setup: &Setup, mut check: F)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_a_secret_that_obtains_tokens_and_deleting_it_revokes_both() {
    let provider = Provider::start();
    let setup = Setup::start(&provider).await;

    setup
        .create_client(
            "billing",
            json!({"realmRef": {"name": "apps"}, "scopes": ["api"]}),
        )
        .await
        .unwrap();
    let client = setup.ready_client("billing", &provider).await;
    let status = &client.data["status"];
    assert_eq!(status["secretName"], "billing-credentials");
    assert_eq!(status["issuer"], provider.issuer);

    let secret = setup.secrets().get("billing-credentials").await.unwrap();
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Client", "billing")
    );
    let credentials = Credentials::of(&secret);
    assert_eq!(credentials.get("issuer"), provider.issuer);
    assert_eq!(
        credentials.get("token_url"),
        format!("{}/token", provider.issuer)
    );
    assert_eq!(
        credentials.get("client_id"),
        status["clientId"].as_str().unwrap()
    );

    // A consumer with nothing but the Secret obtains a token the provider's JWKS vouches for.
    let (code, body) = credentials.token();
    assert_eq!(code, 200, "{body}\n{}", provider.log());
    let claims = verified_claims(&provider.issuer, body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], credentials.get("client_id"));
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "api");

    // Deleting the Client removes it from the provider and its Secret.
    setup
        .api("Client")
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Client and its Secret going away", &setup, || async {
        setup
            .api("Client")
            .get_opt("billing")
            .await
            .unwrap()
            .is_none()
            && setup
                .secrets()
                .get_opt("billing-credentials")
                .await
                .unwrap()
                .is_none()
    })
    .await;
    let (code, body) = credentials.token();
    assert_eq!(
        code, 401,
        "the deleted client's secret still obtains tokens: {body}"
    );
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_a_bad_client_id_an_overlong_overlap_and_a_changed_realm() {
    let provider = Provider::start();
    let setup = Setup::start(&provider).await;
    for (spec, why) in [
        (
            json!({"realmRef": {"name": "apps"}, "clientId": "has space"}),
            "client id",
        ),
        (
            json!({"realmRef": {"name": "apps"}, "rotation": {"every": "1h", "overlap": "2h"}}),
            "shorter than",
        ),
    ] {
        match setup.create_client("bad", spec).await {
            Err(kube::Error::Api(status)) => assert!(status.message.contains(why), "{status:?}"),
            other => panic!("expected a refusal naming {why:?}, got {other:?}"),
        }
    }
    setup
        .create_client("fine", json!({"realmRef": {"name": "apps"}}))
        .await
        .unwrap();
    let changed = setup
        .api("Client")
        .patch(
            "fine",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"realmRef": {"name": "other"}}})),
        )
        .await;
    match changed {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("spec.realmRef is immutable"),
                "{status:?}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_overlaps_so_that_no_token_request_fails() {
    let provider = Provider::start();
    let setup = Setup::start(&provider).await;
    setup
        .create_client(
            "rotating",
            json!({"realmRef": {"name": "apps"}, "scopes": ["api"],
                   "rotation": {"every": "4s", "overlap": "3s"}}),
        )
        .await
        .unwrap();
    setup.ready_client("rotating", &provider).await;
    let first = setup.credentials("rotating-credentials").await;

    // A consumer that reads the Secret before each request, through two rotations: every
    // request succeeds.
    let (mut requests, mut failures, mut seen) = (0, Vec::new(), vec![first.clone()]);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let current = setup.credentials("rotating-credentials").await;
        let (code, body) = current.token();
        requests += 1;
        if code != 200 {
            failures.push(format!("{}: {code} {body}", current.get("client_id")));
        }
        if seen.last().unwrap().get("client_id") != current.get("client_id") {
            seen.push(current);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} token requests failed: {failures:?}",
        failures.len()
    );
    assert!(
        seen.len() >= 2,
        "no rotation happened in 10 s: {:?}\n{}",
        seen,
        setup.embedded.server.log()
    );

    // During the overlap both secrets obtain tokens; after it only the new one does. (Caught
    // with a second of the overlap left: at its very end the provider forgets the previous
    // client a moment before the Secret does.)
    let started = Instant::now();
    let during = loop {
        let c = setup.credentials("rotating-credentials").await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if c.0
            .get("previous_expires_at")
            .and_then(|t| t.parse::<u64>().ok())
            > Some(now + 1)
        {
            break c;
        }
        assert!(
            started.elapsed() < WITHIN,
            "no overlap seen\n{}",
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (old_id, old_secret) = (
        during.get("previous_client_id"),
        during.get("previous_client_secret"),
    );
    assert_eq!(
        during.token_with(old_id, old_secret).0,
        200,
        "the previous secret during the overlap"
    );
    assert_eq!(during.token().0, 200, "the new secret during the overlap");
    eventually("the end of the overlap", &setup, || async {
        let c = setup.credentials("rotating-credentials").await;
        c.get("client_id") != during.get("client_id") || !c.0.contains_key("previous_client_id")
    })
    .await;
    let (code, body) = during.token_with(old_id, old_secret);
    assert_eq!(code, 401, "the previous secret after the overlap: {body}");
    assert_eq!(during.token().0, 200, "the new secret after the overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_goes_away_is_reported_and_its_clients_come_back_with_it() {
    let provider = Provider::start();
    let port = provider.port();
    let setup = Setup::start(&provider).await;
    setup
        .create_client(
            "billing",
            json!({"realmRef": {"name": "apps"}, "scopes": ["api"]}),
        )
        .await
        .unwrap();
    setup.ready_client("billing", &provider).await;
    let before = setup.credentials("billing-credentials").await;

    // Down: the provider is not Ready, and says why.
    drop(provider);
    eventually(
        "the IdentityProvider reporting the provider unreachable",
        &setup,
        || async {
            let idp = setup.api("IdentityProvider").get("idp").await.unwrap();
            condition(&idp, "Ready")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "ProviderUnreachable")
        },
    )
    .await;

    // Back, on the same issuer but with its memory wiped (as if every client had been deleted
    // by hand): the client is registered again and the Secret updated.
    let provider = Provider::start_on(Some(port));
    let started = Instant::now();
    let after = loop {
        let current = setup.credentials("billing-credentials").await;
        if current.get("client_id") != before.get("client_id") {
            break current;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the client was never registered again\n{}\n{}",
            setup.embedded.server.log(),
            provider.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (code, body) = after.token();
    assert_eq!(code, 200, "{body}");
    assert_eq!(before.token().0, 401, "the forgotten client's secret");
}

/// Serves the Keycloak contract fake (`identity::keycloak::fake`, not Keycloak itself) over HTTP
/// on a random loopback port; returns its base URL.
async fn serve_keycloak(fake: std::sync::Arc<FakeKeycloak>) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keycloak_driver_creates_service_account_clients_and_recovers_from_wrong_admin_credentials()
 {
    let keycloak = std::sync::Arc::new(FakeKeycloak::new("s3cret"));
    let url = serve_keycloak(keycloak.clone()).await;
    let setup = Setup::serve(&url).await;
    // Wrong admin credentials first: Blocked until the Secret changes.
    setup
        .create(
            &setup.secrets(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kc-admin"},
                   "stringData": {"username": "admin", "password": "wrong"}}),
        )
        .await
        .unwrap();
    setup
        .provider(json!({"keycloak": {"url": url, "credentialsSecretRef": {"name": "kc-admin"}}}))
        .await;
    let blocked = setup
        .wait_for("IdentityProvider", "idp", "Blocked", "True")
        .await;
    assert_eq!(
        condition(&blocked, "Ready").unwrap()["reason"],
        "CredentialsRefused"
    );
    setup
        .secrets()
        .patch(
            "kc-admin",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"password": "s3cret"}})),
        )
        .await
        .unwrap();
    setup
        .wait_for("IdentityProvider", "idp", "Ready", "True")
        .await;
    let realm = setup.wait_for("Realm", "apps", "Ready", "True").await;
    assert!(keycloak.has_realm("apps"));
    assert_eq!(realm.data["status"]["issuer"], format!("{url}/realms/apps"));

    setup
        .create_client(
            "billing",
            json!({"realmRef": {"name": "apps"}, "audience": ["https://api.corbel.test"],
                   "tokenLifetimeSeconds": 120}),
        )
        .await
        .unwrap();
    setup.wait_for("Client", "billing", "Ready", "True").await;
    let credentials = setup.credentials("billing-credentials").await;
    assert_eq!(credentials.get("client_id"), "billing");
    assert_eq!(
        credentials.get("token_url"),
        format!("{url}/realms/apps/protocol/openid-connect/token")
    );
    let (code, body) = credentials.token();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["expires_in"], 120);
    let stored = &keycloak.clients("apps")["billing"];
    assert_eq!(stored["serviceAccountsEnabled"], true);
    assert_eq!(
        stored["protocolMappers"][0]["protocolMapper"],
        "oidc-audience-mapper"
    );

    // Deleted by hand: created again, and the Secret follows.
    keycloak.clear_clients("apps");
    let started = Instant::now();
    while credentials.token().0 == 200
        || setup.credentials("billing-credentials").await.token().0 != 200
    {
        assert!(
            started.elapsed() < WITHIN,
            "never recreated\n{}",
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Deleting the Client deletes it in Keycloak, and its Secret.
    let last = setup.credentials("billing-credentials").await;
    setup
        .api("Client")
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Client and its Secret going away", &setup, || async {
        setup
            .api("Client")
            .get_opt("billing")
            .await
            .unwrap()
            .is_none()
            && setup
                .secrets()
                .get_opt("billing-credentials")
                .await
                .unwrap()
                .is_none()
    })
    .await;
    assert!(keycloak.clients("apps").is_empty());
    let (code, body) = last.token();
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}
