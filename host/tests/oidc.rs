//! Authentication and authorization against a real OpenID provider.
//!
//! The provider is npm `oidc-provider` 9.13 (a certified OP), run by `tests/servers/oidc/provider.mjs`
//! with Node: each test starts its own on 127.0.0.1 with a random port (plain HTTP, which the
//! authenticator allows only on loopback) and stops it when done (kill on drop; the script also
//! exits when its stdin closes). It issues client-credentials access tokens as JWTs (RS256, `typ:
//! at+jwt`) for the resource indicator `https://corbel.test`, which becomes their `aud`. The test
//! gives the provider its RSA signing key, so it can also mint tokens the provider's JWKS vouches
//! for (from another issuer, already expired). `cargo xtask test` installs the package with npm.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use corbel::auth::{
    AuthConfig, AuthError, Authenticator, Authorizer, OidcConfig, RequestAttributes, Rule, UserInfo,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const AUDIENCE: &str = "https://corbel.test";

struct Client {
    id: &'static str,
    secret: &'static str,
    ttl: u64,
}

/// The one with a role in the tests' rules.
const ADMIN: Client = Client {
    id: "corbel-admin",
    secret: "admin-secret",
    ttl: 600,
};
/// A client without any role.
const BILLING: Client = Client {
    id: "billing",
    secret: "billing-secret",
    ttl: 600,
};
/// Tokens that expire in 2 s.
const SHORT: Client = Client {
    id: "short-lived",
    secret: "short-secret",
    ttl: 2,
};

/// A running provider; killed on drop.
struct Provider {
    child: Child,
    issuer: String,
    signing_key: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The providers' RSA signing key, PKCS#8 PEM: made once here, since Node 20's synchronous key
/// generation can deadlock.
fn signing_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    })
}

fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/servers/oidc")
}

impl Provider {
    fn start() -> Self {
        Self::start_on(None)
    }

    fn start_on(port: Option<u16>) -> Self {
        let dir = server_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{} has no node_modules/oidc-provider: run `cargo xtask test` (it installs oidc-provider with npm)",
            dir.display()
        );
        let temp = tempfile::tempdir().unwrap();
        let log_file = temp.path().join("provider.log");
        let clients: Vec<Value> = [ADMIN, BILLING, SHORT]
            .iter()
            .map(|c| json!({"id": c.id, "secret": c.secret, "ttl": c.ttl}))
            .collect();
        let config = json!({
            "resource": AUDIENCE,
            "port": port,
            "signingKey": signing_key(),
            "clients": clients,
        });
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("OIDC_PROVIDER_CONFIG", config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_file).unwrap())
            .spawn()
            .expect("node is needed for the OpenID tests");
        // The first line is the issuer; read it on a thread so a stuck start cannot hang the test.
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default();
        let issuer = line.trim().to_owned();
        if !issuer.starts_with("http://127.0.0.1:") {
            let _ = child.kill();
            panic!(
                "the provider did not start: {}",
                std::fs::read_to_string(&log_file).unwrap_or_default()
            );
        }
        Provider {
            child,
            issuer,
            signing_key: signing_key().as_bytes().to_vec(),
            _dir: temp,
        }
    }

    /// A client-credentials access token from the token endpoint (client_secret_basic).
    async fn token(&self, client: &Client) -> String {
        let response = http_client()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client.id, Some(client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "token endpoint: {status} {body}");
        assert_eq!(body["token_type"], "Bearer");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A token signed with the provider's own key (so its JWKS vouches for it), with any claims.
    async fn mint(&self, claims: &Value) -> String {
        let kid = jsonwebtoken::decode_header(self.token(&ADMIN).await)
            .unwrap()
            .kid;
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("at+jwt".into());
        header.kid = kid;
        let key = EncodingKey::from_rsa_pem(&self.signing_key).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn config(&self) -> OidcConfig {
        OidcConfig::new(&self.issuer, AUDIENCE)
    }
}

/// reqwest without a default crypto provider needs its TLS set up, even for plain HTTP.
fn http_client() -> reqwest::Client {
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

/// Fails a test that takes longer than a minute, rather than hanging the suite.
async fn within<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("the test did not finish within 60 s")
}

async fn authenticator(oidc: OidcConfig) -> Authenticator {
    let config = AuthConfig {
        oidc: Some(oidc),
        ..Default::default()
    };
    Authenticator::new(&config, Vec::new()).await.unwrap()
}

async fn authenticate(auth: &Authenticator, token: &str) -> Result<UserInfo, AuthError> {
    auth.authenticate(Some(&format!("Bearer {token}"))).await
}

/// The reason of an `Invalid` error.
fn invalid(result: Result<UserInfo, AuthError>) -> String {
    match result {
        Err(AuthError::Invalid(reason)) => reason,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_client_credentials_token_authenticates_its_client() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(provider.config()).await;
        let token = provider.token(&ADMIN).await;
        let user = authenticate(&auth, &token).await.unwrap();
        assert_eq!(
            user,
            UserInfo {
                username: "corbel-admin".into(),
                uid: "corbel-admin".into(),
                groups: vec!["system:authenticated".into()],
                client_id: Some("corbel-admin".into()),
            }
        );

        let prefixed = authenticator(OidcConfig {
            username_prefix: Some("oidc:".into()),
            ..provider.config()
        })
        .await;
        let user = authenticate(&prefixed, &token).await.unwrap();
        assert_eq!(user.username, "oidc:corbel-admin");
        assert_eq!(user.client_id.as_deref(), Some("corbel-admin"));

        // Groups come from the configured claim, a list or a single string.
        let minted = provider
            .mint(
                &json!({"iss": provider.issuer, "aud": [AUDIENCE, "other"], "exp": now() + 60,
                "sub": "alice", "azp": "console", "groups": ["ops", "dev"]}),
            )
            .await;
        let user = authenticate(&auth, &minted).await.unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.groups, ["ops", "dev", "system:authenticated"]);
        assert_eq!(user.client_id.as_deref(), Some("console"));
    })
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(OidcConfig {
            clock_skew: Duration::ZERO,
            ..provider.config()
        })
        .await;
        let token = provider.token(&SHORT).await;
        authenticate(&auth, &token).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let reason = invalid(authenticate(&auth, &token).await);
        assert!(reason.starts_with("token expired (exp "), "{reason}");

        // With the default leeway of 30 s, a token that expired 2 minutes ago.
        let auth = authenticator(provider.config()).await;
        let stale = provider
            .mint(&json!({"iss": provider.issuer, "aud": AUDIENCE, "exp": now() - 120, "sub": "x"}))
            .await;
        let reason = invalid(authenticate(&auth, &stale).await);
        assert!(reason.starts_with("token expired"), "{reason}");
        let early = provider
            .mint(
                &json!({"iss": provider.issuer, "aud": AUDIENCE, "exp": now() + 600,
                "nbf": now() + 300, "sub": "x"}),
            )
            .await;
        let reason = invalid(authenticate(&auth, &early).await);
        assert!(reason.starts_with("token not valid yet"), "{reason}");
    })
    .await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(OidcConfig::new(&provider.issuer, "https://other.test")).await;
        let token = provider.token(&ADMIN).await;
        assert_eq!(
            invalid(authenticate(&auth, &token).await),
            r#"wrong audience: the token is for "https://corbel.test", not "https://other.test""#
        );
        let no_audience = provider
            .mint(&json!({"iss": provider.issuer, "exp": now() + 60, "sub": "x"}))
            .await;
        let auth = authenticator(provider.config()).await;
        assert_eq!(
            invalid(authenticate(&auth, &no_audience).await),
            r#"the token has no "aud" claim"#
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(provider.config()).await;
        let token = provider
            .mint(
                &json!({"iss": "https://evil.example", "aud": AUDIENCE, "exp": now() + 60, "sub": "x"}),
            )
            .await;
        assert_eq!(
            invalid(authenticate(&auth, &token).await),
            format!(
                r#"wrong issuer: the token is from "https://evil.example", not "{}""#,
                provider.issuer
            )
        );

        // Configured with another name for the same server: discovery says who the issuer really is,
        // and no token is accepted.
        let alias = provider.issuer.replace("127.0.0.1", "localhost");
        let auth = authenticator(OidcConfig::new(&alias, AUDIENCE)).await;
        let err = authenticate(&auth, &provider.token(&ADMIN).await)
            .await
            .unwrap_err();
        let AuthError::Unavailable(reason) = &err else {
            panic!("{err:?}")
        };
        assert!(
            reason.contains(&format!(
                "says its issuer is \"{}\", not \"{alias}\" as configured",
                provider.issuer
            )),
            "{reason}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(provider.config()).await;
        let token = provider.token(&ADMIN).await;
        let parts: Vec<&str> = token.split('.').collect();

        let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        signature[10] ^= 0x55;
        let flipped = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode(&signature)
        );
        assert_eq!(
            invalid(authenticate(&auth, &flipped).await),
            "bad signature"
        );

        // Another subject under the original signature.
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = "root".into();
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let swapped = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            invalid(authenticate(&auth, &swapped).await),
            "bad signature"
        );

        // A shared-secret signature naming the provider's key id (algorithm confusion).
        let mut header = Header::new(Algorithm::HS256);
        header.kid = jsonwebtoken::decode_header(&token).unwrap().kid;
        let hmac = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&provider.signing_key),
        )
        .unwrap();
        assert_eq!(
            invalid(authenticate(&auth, &hmac).await),
            "unsupported signing algorithm HS256 (only public-key signatures are accepted)"
        );

        // Not a JWT at all.
        assert_eq!(
            invalid(authenticate(&auth, "opaque-token").await),
            "not a known static token and not a JWT"
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_signed_with_an_unknown_key_is_refused() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(provider.config()).await;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("not-the-providers".into());
        let claims = json!({"iss": provider.issuer, "aud": AUDIENCE, "exp": now() + 60, "sub": "x"});
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        // The first time the keys are refetched; the second time that is too recent to do again.
        let reason = invalid(authenticate(&auth, &token).await);
        assert_eq!(
            reason,
            r#"unknown key id "not-the-providers" (not in the OpenID provider's keys, just fetched)"#
        );
        let reason = invalid(authenticate(&auth, &token).await);
        assert_eq!(
            reason,
            r#"unknown key id "not-the-providers" (not in the OpenID provider's keys, fetched less than 10 s ago)"#
        );
        // The provider's own tokens still pass.
        authenticate(&auth, &provider.token(&ADMIN).await)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn keys_are_fetched_when_a_token_needs_them_if_the_provider_started_late() {
    within(async {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let issuer = format!("http://127.0.0.1:{port}");
        // Nobody listens yet: startup only warns.
        let auth = authenticator(OidcConfig::new(&issuer, AUDIENCE)).await;
        let provider = Provider::start_on(Some(port));
        assert_eq!(provider.issuer, issuer);
        let user = authenticate(&auth, &provider.token(&ADMIN).await)
            .await
            .unwrap();
        assert_eq!(user.username, "corbel-admin");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_provider_is_reported_as_such() {
    within(async {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let issuer = format!("http://127.0.0.1:{port}");
        let auth = authenticator(OidcConfig::new(&issuer, AUDIENCE)).await;
        // {"alg":"RS256","kid":"k"}.{}.sig
        let err = authenticate(&auth, "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln")
            .await
            .unwrap_err();
        let AuthError::Unavailable(reason) = &err else {
            panic!("{err:?}")
        };
        assert!(
            reason.starts_with(&format!(
                "the OpenID provider's keys could not be fetched: failed to fetch {issuer}/.well-known/openid-configuration"
            )),
            "{reason}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_without_the_needed_role_is_denied() {
    within(async {
        let provider = Provider::start();
        let auth = authenticator(provider.config()).await;
        let rules: Vec<Rule> = serde_yaml_ng::from_str(
            "
    - subjects: [{clientId: corbel-admin}]
      verbs: [get, list, watch]
      groups: [storage.corbel.dev]
      resources: [buckets]
      namespaces: [shop]
    ",
        )
        .unwrap();
        let authz = Authorizer::new(rules);
        let list_buckets = RequestAttributes {
            verb: "list",
            group: "storage.corbel.dev",
            resource: "buckets",
            subresource: None,
            namespace: Some("shop"),
            name: None,
        };

        let admin = authenticate(&auth, &provider.token(&ADMIN).await)
            .await
            .unwrap();
        assert_eq!(authz.authorize(&admin, &list_buckets), Ok(()));
        let delete = RequestAttributes {
            verb: "delete",
            name: Some("b1"),
            ..list_buckets
        };
        assert_eq!(
            authz.authorize(&admin, &delete).unwrap_err(),
            r#"buckets.storage.corbel.dev "b1" is forbidden: User "corbel-admin" cannot delete resource "buckets" in API group "storage.corbel.dev" in the namespace "shop""#
        );

        let billing = authenticate(&auth, &provider.token(&BILLING).await)
            .await
            .unwrap();
        assert_eq!(billing.client_id.as_deref(), Some("billing"));
        assert_eq!(
            authz.authorize(&billing, &list_buckets).unwrap_err(),
            r#"buckets.storage.corbel.dev is forbidden: User "billing" cannot list resource "buckets" in API group "storage.corbel.dev" in the namespace "shop""#
        );
        let status = corbel::auth::forbidden_status(&billing, &list_buckets);
        assert_eq!(status["code"], 403);
        assert_eq!(status["reason"], "Forbidden");
    })
    .await;
}
