//! OAuth 2.0 access tokens in JWT form, verified against an OpenID provider.
//!
//! The provider's keys are found through OpenID discovery (`{issuer}/.well-known/openid-configuration`
//! → `jwks_uri`) and cached by key id. A token naming an unknown key id triggers a refetch, at most
//! one per [`MIN_REFETCH_INTERVAL`] (so forged key ids cannot make us hammer the provider); keys older
//! than [`MAX_KEY_AGE`] are refreshed in the background, so a key the provider withdrew stops being
//! accepted. Only asymmetric signatures are accepted (RS*, PS*, ES256/384, EdDSA); the header's `typ`
//! is not checked (access tokens say `at+jwt`). Claims checked: `iss` exactly, `aud` contains the
//! configured audience, `exp`, and `nbf` when present, with [`OidcConfig::clock_skew`] of leeway.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{AuthError, UserInfo};

/// The least time between two fetches of the provider's keys caused by unknown key ids.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Keys older than this are refetched in the background.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(60 * 60);
/// Discovery documents and key sets larger than this are refused.
const MAX_DOCUMENT: usize = 1 << 20;

/// Which OpenID provider's access tokens are accepted, and how their claims become a user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL, exactly as tokens carry it in `iss`. It must be `https`, except on a
    /// loopback address (tests), since whoever can answer for it can mint tokens.
    pub issuer: String,
    /// The audience tokens must be issued for (an entry of `aud`), e.g. the resource indicator
    /// `https://corbel.example.com`.
    pub audience: String,
    /// PEM CA certificates to trust for the issuer's HTTPS, instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The claim holding the user name. Client-credentials tokens carry the client id in `sub`.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim holding the groups (a list of strings, or one string); may be absent.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Prepended to user names (e.g. `oidc:`), so they cannot pose as static-file users.
    #[serde(default)]
    pub username_prefix: Option<String>,
    /// Prepended to group names.
    #[serde(default)]
    pub groups_prefix: Option<String>,
    /// Leeway for `exp` and `nbf` against clock differences; default 30 s.
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
}

fn default_username_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_clock_skew() -> Duration {
    Duration::from_secs(30)
}

impl OidcConfig {
    /// A provider with the default claims and leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ca_file: None,
            username_claim: default_username_claim(),
            groups_claim: default_groups_claim(),
            username_prefix: None,
            groups_prefix: None,
            clock_skew: default_clock_skew(),
        }
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        check_url("the OpenID issuer", &self.issuer)?;
        anyhow::ensure!(
            !self.audience.is_empty(),
            "the OpenID audience is empty: name what tokens must be issued for"
        );
        anyhow::ensure!(!self.username_claim.is_empty(), "usernameClaim is empty");
        anyhow::ensure!(!self.groups_claim.is_empty(), "groupsClaim is empty");
        Ok(())
    }
}

/// Refuses anything but https, except plain http to a loopback address.
fn check_url(what: &str, url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed =
        reqwest::Url::parse(url).with_context(|| format!("{what} {url:?} is not a URL"))?;
    anyhow::ensure!(
        secure_transport(&parsed),
        "{what} {url:?} must be an https URL (plain http only on loopback)"
    );
    anyhow::ensure!(
        parsed.query().is_none() && parsed.fragment().is_none(),
        "{what} {url:?} must not have a query or fragment"
    );
    Ok(parsed)
}

/// https, or http to a loopback address (where nobody can be in the middle).
fn secure_transport(url: &reqwest::Url) -> bool {
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

/// The header of `token` when it has the shape of a JWS in compact form; `None` for anything else
/// (an opaque token). The algorithm is not judged here.
pub(super) fn jwt_header(token: &str) -> Option<Result<Header, String>> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let object: Map<String, Value> = serde_json::from_slice(&json).ok()?;
    let alg = object.get("alg")?.as_str()?.to_owned();
    Some(
        jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::Json(_) if alg.parse::<Algorithm>().is_err() => {
                format!("unsupported signing algorithm {alg:?}")
            }
            _ => format!("malformed token header: {e}"),
        }),
    )
}

/// One verification key of the provider.
struct Key {
    decoding: DecodingKey,
    family: AlgorithmFamily,
    /// The algorithm the key is for, when the JWK says.
    algorithm: Option<Algorithm>,
}

#[derive(Default)]
struct KeySet {
    /// Keys by `kid`; keys without one are under "".
    keys: Vec<(String, Arc<Key>)>,
    fetched_at: Option<Instant>,
    /// Bumped on every successful fetch, so a waiter sees that someone else refreshed.
    generation: u64,
}

struct RefreshState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

struct Inner {
    issuer: String,
    audience: String,
    discovery_url: String,
    username_claim: String,
    groups_claim: String,
    username_prefix: String,
    groups_prefix: String,
    leeway: u64,
    http: reqwest::Client,
    keys: ArcSwap<KeySet>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

pub(super) struct Verifier {
    inner: Arc<Inner>,
}

impl Verifier {
    pub(super) fn new(config: &OidcConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("failed to set up TLS for the OpenID provider")?;
        let tls = match &config.ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).with_context(|| {
                    format!("failed to read the OpenID CA file {}", path.display())
                })? {
                    let cert = cert.with_context(|| {
                        format!("the OpenID CA file {} is not valid PEM", path.display())
                    })?;
                    roots.add(cert).with_context(|| {
                        format!(
                            "the OpenID CA file {} has an invalid certificate",
                            path.display()
                        )
                    })?;
                }
                anyhow::ensure!(
                    !roots.is_empty(),
                    "the OpenID CA file {} holds no certificate",
                    path.display()
                );
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => {
                let verifier = rustls_platform_verifier::Verifier::new(provider)
                    .context("failed to load the system's certificate verifier")?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth()
            }
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("corbel/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("more than 5 redirects")
                } else if !secure_transport(attempt.url()) {
                    attempt.error("a redirect to a URL that is neither https nor loopback")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .context("failed to build the HTTP client for the OpenID provider")?;
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                discovery_url: format!(
                    "{}/.well-known/openid-configuration",
                    config.issuer.trim_end_matches('/')
                ),
                username_claim: config.username_claim.clone(),
                groups_claim: config.groups_claim.clone(),
                username_prefix: config.username_prefix.clone().unwrap_or_default(),
                groups_prefix: config.groups_prefix.clone().unwrap_or_default(),
                leeway: config.clock_skew.as_secs(),
                http,
                keys: ArcSwap::default(),
                refresh: tokio::sync::Mutex::new(RefreshState {
                    last_attempt: None,
                    last_error: None,
                }),
            }),
        })
    }

    /// Fetches the keys once at startup. Failure is logged, not fatal (the provider may start
    /// later), and does not count against the refetch limit.
    pub(super) async fn prefetch(&self) {
        let mut state = self.inner.refresh.lock().await;
        match self.inner.fetch().await {
            Ok(()) => {
                tracing::info!(issuer = %self.inner.issuer, "fetched the OpenID provider's keys")
            }
            Err(e) => {
                tracing::warn!(issuer = %self.inner.issuer, error = %format!("{e:#}"),
                    "cannot fetch the OpenID provider's keys yet; will retry when a token needs them");
                state.last_error = Some(format!("{e:#}"));
            }
        }
    }

    pub(super) async fn verify(
        &self,
        token: &str,
        header: Result<Header, String>,
    ) -> Result<UserInfo, AuthError> {
        let header = header.map_err(AuthError::Invalid)?;
        let alg = header.alg;
        if alg.family() == AlgorithmFamily::Hmac {
            return Err(AuthError::Invalid(format!(
                "unsupported signing algorithm {alg:?} (only public-key signatures are accepted)"
            )));
        }
        let kid = header.kid.as_deref();
        let (key, stale) = self.key_for(kid, alg).await?;
        if stale {
            self.refresh_in_background();
        }
        if key.family != alg.family() || key.algorithm.is_some_and(|a| a != alg) {
            return Err(AuthError::Invalid(format!(
                "the key {:?} is not for {alg:?}",
                kid.unwrap_or_default()
            )));
        }
        let inner = &self.inner;
        let mut validation = Validation::new(alg);
        validation.leeway = inner.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&inner.issuer]);
        validation.set_audience(&[&inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| AuthError::Invalid(self.reason(&e, token)))?
            .claims;
        self.user(&claims)
    }

    /// The key a token names, refetching the provider's keys (rate-limited) when it is unknown.
    /// The flag says the cache is old enough for a background refresh.
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<(Arc<Key>, bool), AuthError> {
        let find = |set: &KeySet| match kid {
            Some(kid) => set
                .keys
                .iter()
                .find(|(k, _)| k == kid)
                .map(|(_, key)| key.clone()),
            // No key id: the provider must have exactly one key of the token's family.
            None => {
                let mut fitting = set.keys.iter().filter(|(_, k)| k.family == alg.family());
                match (fitting.next(), fitting.next()) {
                    (Some((_, key)), None) => Some(key.clone()),
                    _ => None,
                }
            }
        };
        let set = self.inner.keys.load_full();
        if let Some(key) = find(&set) {
            let stale = set.fetched_at.is_some_and(|t| t.elapsed() > MAX_KEY_AGE);
            return Ok((key, stale));
        }
        let refetched = self.refetch(set.generation).await?;
        let set = self.inner.keys.load_full();
        if let Some(key) = find(&set) {
            return Ok((key, false));
        }
        let when = if refetched {
            "just fetched".to_owned()
        } else {
            format!("fetched less than {} s ago", MIN_REFETCH_INTERVAL.as_secs())
        };
        Err(AuthError::Invalid(match kid {
            Some(kid) => {
                format!("unknown key id {kid:?} (not in the OpenID provider's keys, {when})")
            }
            None => "the token names no key id and the OpenID provider has no single key for it"
                .to_owned(),
        }))
    }

    /// Refetches the keys unless another caller did since `seen` or the last attempt was too
    /// recent. `Ok(true)` when this call fetched.
    async fn refetch(&self, seen: u64) -> Result<bool, AuthError> {
        let inner = &self.inner;
        let mut state = inner.refresh.lock().await;
        let (generation, never_fetched) = {
            let current = inner.keys.load();
            (current.generation, current.fetched_at.is_none())
        };
        if generation != seen {
            return Ok(false);
        }
        if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL)
        {
            return match (&state.last_error, never_fetched) {
                (Some(error), true) => Err(AuthError::Unavailable(format!(
                    "the OpenID provider's keys could not be fetched: {error}"
                ))),
                _ => Ok(false),
            };
        }
        state.last_attempt = Some(Instant::now());
        match inner.fetch().await {
            Ok(()) => {
                state.last_error = None;
                Ok(true)
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(issuer = %inner.issuer, %error, "failed to fetch the OpenID provider's keys");
                state.last_error = Some(error.clone());
                Err(AuthError::Unavailable(format!(
                    "the OpenID provider's keys could not be fetched: {error}"
                )))
            }
        }
    }

    fn refresh_in_background(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            // Someone is already fetching: nothing to do.
            let Ok(mut state) = inner.refresh.try_lock() else {
                return;
            };
            if state
                .last_attempt
                .is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL)
            {
                return;
            }
            state.last_attempt = Some(Instant::now());
            if let Err(e) = inner.fetch().await {
                tracing::warn!(issuer = %inner.issuer, error = %format!("{e:#}"),
                    "failed to refresh the OpenID provider's keys; keeping the cached ones");
            }
        });
    }

    /// Why jsonwebtoken refused a token, in words an operator can act on. Claim values quoted
    /// here come from a token whose signature was already verified (claims are checked after it).
    fn reason(&self, error: &jsonwebtoken::errors::Error, token: &str) -> String {
        let claim = |name: &str| -> String {
            let payload = token.split('.').nth(1).unwrap_or_default();
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
                .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok())
                .and_then(|claims| claims.get(name).cloned())
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing".into())
        };
        let inner = &self.inner;
        match error.kind() {
            ErrorKind::ExpiredSignature => format!("token expired (exp {})", claim("exp")),
            ErrorKind::ImmatureSignature => format!("token not valid yet (nbf {})", claim("nbf")),
            ErrorKind::InvalidAudience => format!(
                "wrong audience: the token is for {}, not {:?}",
                claim("aud"),
                inner.audience
            ),
            ErrorKind::InvalidIssuer => format!(
                "wrong issuer: the token is from {}, not {:?}",
                claim("iss"),
                inner.issuer
            ),
            ErrorKind::InvalidSignature => "bad signature".into(),
            ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c:?} claim"),
            ErrorKind::InvalidClaimFormat(c) => format!("the token's {c:?} claim is malformed"),
            ErrorKind::InvalidAlgorithm => "the signing algorithm does not fit the key".into(),
            _ => format!("malformed token: {error}"),
        }
    }

    fn user(&self, claims: &Map<String, Value>) -> Result<UserInfo, AuthError> {
        let inner = &self.inner;
        let string = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let username = string(&inner.username_claim).ok_or_else(|| {
            AuthError::Invalid(format!(
                "the token has no {:?} claim (the configured user name claim)",
                inner.username_claim
            ))
        })?;
        let groups = match claims.get(&inner.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(group)) => vec![group.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|g| g.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AuthError::Invalid(format!(
                        "the token's {:?} claim is not a list of strings",
                        inner.groups_claim
                    ))
                })?,
            Some(_) => {
                return Err(AuthError::Invalid(format!(
                    "the token's {:?} claim is not a list of strings",
                    inner.groups_claim
                )));
            }
        };
        Ok(UserInfo {
            username: format!("{}{username}", inner.username_prefix),
            uid: string("sub").unwrap_or_default().to_owned(),
            groups: groups
                .into_iter()
                .map(|g| format!("{}{g}", inner.groups_prefix))
                .collect(),
            client_id: string("client_id")
                .or_else(|| string("azp"))
                .map(str::to_owned),
        })
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct RawKeySet {
    keys: Vec<Value>,
}

impl Inner {
    /// Discovery, then the key set, which replaces the cache (so withdrawn keys go).
    async fn fetch(&self) -> anyhow::Result<()> {
        let discovery: Discovery = serde_json::from_slice(&self.get(&self.discovery_url).await?)
            .with_context(|| {
                format!(
                    "the discovery document at {} is invalid",
                    self.discovery_url
                )
            })?;
        anyhow::ensure!(
            discovery.issuer == self.issuer,
            "the provider at {} says its issuer is {:?}, not {:?} as configured",
            self.discovery_url,
            discovery.issuer,
            self.issuer
        );
        check_url("the provider's jwks_uri", &discovery.jwks_uri)?;
        let raw: RawKeySet = serde_json::from_slice(&self.get(&discovery.jwks_uri).await?)
            .with_context(|| format!("the key set at {} is invalid", discovery.jwks_uri))?;
        let mut keys = Vec::new();
        for value in raw.keys {
            match key_from(value) {
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(jwks_uri = %discovery.jwks_uri, error = %e, "skipping a key")
                }
            }
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "the key set at {} has no usable signing key",
            discovery.jwks_uri
        );
        let generation = self.keys.load().generation + 1;
        self.keys.store(Arc::new(KeySet {
            keys,
            fetched_at: Some(Instant::now()),
            generation,
        }));
        Ok(())
    }

    async fn get(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let mut response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .with_context(|| format!("failed to fetch {url}"))?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "fetching {url} answered {status}");
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("failed to read {url}"))?
        {
            body.extend_from_slice(&chunk);
            anyhow::ensure!(body.len() <= MAX_DOCUMENT, "{url} is larger than 1 MiB");
        }
        Ok(body)
    }
}

/// A signature-verification key from one JWK; `None` for keys that are not for that (encryption
/// keys, shared secrets).
fn key_from(value: Value) -> Result<Option<(String, Arc<Key>)>, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Ok(None);
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => AlgorithmFamily::Ed,
        // Shared secrets, and whatever a later jsonwebtoken adds.
        _ => return Ok(None),
    };
    let algorithm = match jwk.common.key_algorithm {
        None => None,
        Some(alg) => match Algorithm::try_from(alg) {
            Ok(alg) if alg.family() == family => Some(alg),
            _ => return Ok(None),
        },
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(Some((
        jwk.common.key_id.clone().unwrap_or_default(),
        Arc::new(Key {
            decoding,
            family,
            algorithm,
        }),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API layer awaits authentication in axum handlers, whose futures must be `Send`.
    #[test]
    fn authentication_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let verifier = Verifier::new(&OidcConfig::new("http://127.0.0.1:9", "a")).unwrap();
        send(verifier.verify("a.b.c", Err(String::new())));
        send(verifier.refetch(0));
        send(verifier.prefetch());
    }

    #[test]
    fn issuers_must_be_https_except_on_loopback() {
        for ok in [
            "https://id.example.com",
            "https://id.example.com/realms/corbel",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "http://localhost:3000/",
        ] {
            OidcConfig::new(ok, "a").validate().unwrap();
        }
        for (bad, error) in [
            (
                "http://id.example.com",
                "the OpenID issuer \"http://id.example.com\" must be an https URL (plain http only on loopback)",
            ),
            (
                "id.example.com",
                "the OpenID issuer \"id.example.com\" is not a URL",
            ),
            (
                "https://id.example.com/?x=1",
                "the OpenID issuer \"https://id.example.com/?x=1\" must not have a query or fragment",
            ),
        ] {
            let err = OidcConfig::new(bad, "a").validate().unwrap_err();
            assert_eq!(err.to_string(), error);
        }
        let err = OidcConfig::new("https://a", "").validate().unwrap_err();
        assert!(err.to_string().starts_with("the OpenID audience is empty"));
    }

    #[test]
    fn the_config_reads_from_yaml_with_defaults() {
        let config: OidcConfig =
            serde_yaml_ng::from_str("{issuer: 'https://id.example.com', audience: corbel}")
                .unwrap();
        assert_eq!(config, OidcConfig::new("https://id.example.com", "corbel"));
        let config: OidcConfig = serde_yaml_ng::from_str(
            "{issuer: 'https://i', audience: a, usernameClaim: email, groupsClaim: roles, usernamePrefix: 'oidc:', clockSkew: 5s}",
        )
        .unwrap();
        assert_eq!(config.username_claim, "email");
        assert_eq!(config.groups_claim, "roles");
        assert_eq!(config.username_prefix.as_deref(), Some("oidc:"));
        assert_eq!(config.clock_skew, Duration::from_secs(5));
    }

    #[test]
    fn jwt_shapes_are_told_from_opaque_tokens() {
        assert!(jwt_header("opaque").is_none());
        assert!(jwt_header("a.b").is_none());
        assert!(jwt_header("a.b.c.d").is_none());
        assert!(jwt_header("!!!.b.c").is_none());
        // {"alg":"none"}
        let none = jwt_header("eyJhbGciOiJub25lIn0.e30.").unwrap().unwrap_err();
        assert_eq!(none, "unsupported signing algorithm \"none\"");
        // {"alg":"RS256","typ":"at+jwt","kid":"k"}
        let header = jwt_header("eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsifQ.e30.c2ln")
            .unwrap()
            .unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("k"));
    }

    #[test]
    fn encryption_and_symmetric_keys_are_not_used_for_verification() {
        let rsa = serde_json::json!({"kty": "RSA", "kid": "r", "alg": "RS256", "use": "sig",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
            "e": "AQAB"});
        let (kid, key) = key_from(rsa.clone()).unwrap().unwrap();
        assert_eq!(kid, "r");
        assert_eq!(key.family, AlgorithmFamily::Rsa);
        assert_eq!(key.algorithm, Some(Algorithm::RS256));
        let mut enc = rsa.clone();
        enc["use"] = "enc".into();
        assert!(key_from(enc).unwrap().is_none());
        let mut oaep = rsa;
        oaep["alg"] = "RSA-OAEP".into();
        oaep.as_object_mut().unwrap().remove("use");
        assert!(key_from(oaep).unwrap().is_none());
        let secret = serde_json::json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"});
        assert!(key_from(secret).unwrap().is_none());
    }
}
