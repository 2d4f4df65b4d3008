//! Who is calling, and may they do this?
//!
//! **Authentication** turns an `Authorization: Bearer …` header into a [`UserInfo`]. A token is
//! either listed in the static token file (Kubernetes' format; for bootstrap and development) or is
//! an OAuth 2.0 access token in JWT form, verified against the keys an OpenID provider publishes
//! (see [`OidcConfig`]). There is no anonymous access: a request without a valid token is refused.
//!
//! **Authorization** matches the user against role-based [`Rule`]s from the configuration: subjects
//! (user, group or OAuth client id) × verbs × API groups/resources × namespaces. Nothing is allowed
//! unless a rule allows it.
//!
//! No HTTP here. The API layer passes the header value to [`Authenticator::authenticate`] and
//! answers 401 on an [`AuthError`] (logging the reason; Kubernetes tells the client only
//! "Unauthorized"), then asks [`Authorizer::authorize`] and answers 403 with
//! [`forbidden_status`] when it refuses.

mod oidc;
mod rbac;
mod static_tokens;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine as _;
use serde::Deserialize;

pub use oidc::OidcConfig;
pub use rbac::{
    Authorizer, RequestAttributes, Rule, Subject, VERBS, forbidden_message, forbidden_status,
};

/// The `auth` section of the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthConfig {
    /// A static token file in Kubernetes' format, one CSV record a line:
    /// `token,user,uid,"group1,group2"` (the groups column is optional; `#` starts a comment).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The OpenID provider whose JWT access tokens are accepted.
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
    /// Who may do what. Empty: nobody may do anything.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl AuthConfig {
    /// Checks what can be checked without I/O: the rules' verbs and shapes, the issuer URL.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate()
                .map_err(|e| anyhow::anyhow!("auth rule {} is invalid: {e}", i + 1))?;
        }
        if let Some(oidc) = &self.oidc {
            oidc.validate()?;
        }
        Ok(())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    /// The static file's uid column, or a JWT's `sub` claim.
    pub uid: String,
    /// Always includes [`AUTHENTICATED_GROUP`] once authenticated.
    pub groups: Vec<String>,
    /// The OAuth client a JWT access token was issued to (`client_id`, else `azp`).
    pub client_id: Option<String>,
}

/// The group every authenticated user is in, as in Kubernetes: a rule for "anyone with a valid
/// token" names it.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Why a request is not authenticated. Every variant is a 401 to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header, or an empty token.
    #[error("no bearer token: {0}")]
    Missing(&'static str),
    /// The token was presented and is not acceptable; the reason says why (expired, wrong
    /// audience, wrong issuer, bad signature, unknown key id, malformed, …).
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    /// The token might be fine but cannot be checked now: the OpenID provider's keys could not be
    /// fetched. Worth logging as an error of ours, not the caller's.
    #[error("cannot verify the bearer token: {0}")]
    Unavailable(String),
}

/// Turns `Authorization` header values into users. Cheap to share (`Arc`); safe to call
/// concurrently.
pub struct Authenticator {
    static_tokens: HashMap<String, UserInfo>,
    oidc: Option<oidc::Verifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the tokens.
        f.debug_struct("Authenticator")
            .field("static_tokens", &self.static_tokens.len())
            .field("oidc", &self.oidc.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Reads the static token file, adds the `bootstrap` tokens (the development admin token, say)
    /// and prepares the OpenID provider: its discovery document and keys are fetched now, but a
    /// provider that cannot be reached only logs a warning; the fetch is retried when a token needs
    /// it.
    pub async fn new(
        config: &AuthConfig,
        bootstrap: Vec<(String, UserInfo)>,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let mut static_tokens = match &config.token_file {
            Some(path) => static_tokens::load(path)?,
            None => HashMap::new(),
        };
        for (token, user) in bootstrap {
            anyhow::ensure!(!token.is_empty(), "a bootstrap token is empty");
            if static_tokens.insert(token, user.clone()).is_some() {
                anyhow::bail!(
                    "the bootstrap token for user {:?} is also in the static token file",
                    user.username
                );
            }
        }
        let oidc = match &config.oidc {
            Some(oidc) => {
                let verifier = oidc::Verifier::new(oidc)?;
                verifier.prefetch().await;
                Some(verifier)
            }
            None => None,
        };
        Ok(Self {
            static_tokens,
            oidc,
        })
    }

    /// Authenticates one request from its `Authorization` header value.
    ///
    /// Static tokens are a map lookup. A JWT is verified with cached keys; network I/O happens on
    /// the request path only when the token names a key id not in the cache (at most one fetch per
    /// 10 s, bounded by a 10 s timeout), and a refresh of keys older than an hour runs in the
    /// background.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<UserInfo, AuthError> {
        let header = authorization
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::Missing(
                "the request has no Authorization header",
            ))?;
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ if header.eq_ignore_ascii_case("bearer") => "",
            _ => {
                return Err(AuthError::Missing(
                    "the Authorization header is not of the Bearer scheme",
                ));
            }
        };
        if token.is_empty() {
            return Err(AuthError::Missing("the bearer token is empty"));
        }
        if let Some(user) = self.static_tokens.get(token) {
            return Ok(with_authenticated_group(user.clone()));
        }
        let Some(header) = oidc::jwt_header(token) else {
            return Err(AuthError::Invalid(
                "not a known static token and not a JWT".into(),
            ));
        };
        let Some(oidc) = &self.oidc else {
            return Err(AuthError::Invalid(
                "a JWT, but no OpenID provider is configured".into(),
            ));
        };
        oidc.verify(token, header)
            .await
            .map(with_authenticated_group)
    }
}

fn with_authenticated_group(mut user: UserInfo) -> UserInfo {
    if !user.groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        user.groups.push(AUTHENTICATED_GROUP.to_owned());
    }
    user
}

/// A new secret token: 32 random bytes from the operating system, URL-safe base64 (no padding).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What development mode gives its operator: a token with every permission.
#[derive(Clone)]
pub struct DevelopmentAdmin {
    pub token: String,
    /// Where the token is (readable by its owner only); print this, not the token.
    pub token_file: PathBuf,
    pub user: UserInfo,
    /// Allows `user` everything; add it to the configured rules.
    pub rule: Rule,
}

impl std::fmt::Debug for DevelopmentAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevelopmentAdmin")
            .field("token_file", &self.token_file)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The development admin's user name.
pub const DEVELOPMENT_ADMIN: &str = "corbel:dev-admin";

/// Creates (or reuses, so a restart keeps existing kubeconfigs working) the development admin token
/// in `dir/admin.token`. Pass `(token, user)` to [`Authenticator::new`] as a bootstrap token and
/// `rule` to the [`Authorizer`].
/// The user the host's own controllers act as against the embedded API (with a token made
/// afresh at every start and never written anywhere), allowed everything: what a plugin may do
/// is limited by its grants, not by this identity.
pub fn host_identity() -> (UserInfo, Rule) {
    const HOST: &str = "system:corbel:controller-manager";
    (
        UserInfo {
            username: HOST.to_owned(),
            uid: HOST.to_owned(),
            groups: vec!["system:masters".to_owned()],
            client_id: None,
        },
        Rule {
            subjects: vec![Subject::User(HOST.to_owned())],
            verbs: vec!["*".into()],
            groups: vec!["*".into()],
            resources: vec!["*".into()],
            namespaces: vec!["*".into()],
            resource_names: Vec::new(),
        },
    )
}

pub fn development_admin(dir: &Path) -> anyhow::Result<DevelopmentAdmin> {
    let token_file = dir.join("admin.token");
    let existing = match std::fs::read_to_string(&token_file) {
        Ok(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("failed to read {}", token_file.display()));
        }
    };
    let token = match existing {
        Some(token) => token,
        None => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            let token = generate_token();
            write_private(&token_file, format!("{token}\n").as_bytes())
                .with_context(|| format!("failed to write {}", token_file.display()))?;
            token
        }
    };
    Ok(DevelopmentAdmin {
        token,
        token_file,
        user: UserInfo {
            username: DEVELOPMENT_ADMIN.to_owned(),
            uid: DEVELOPMENT_ADMIN.to_owned(),
            groups: Vec::new(),
            client_id: None,
        },
        rule: Rule {
            subjects: vec![Subject::User(DEVELOPMENT_ADMIN.to_owned())],
            verbs: vec!["*".into()],
            groups: vec!["*".into()],
            resources: vec!["*".into()],
            namespaces: vec!["*".into()],
            resource_names: Vec::new(),
        },
    })
}

/// Writes a file only its owner may read (0600 on Unix): tokens, keys, kubeconfigs.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserInfo {
        UserInfo {
            username: "alice".into(),
            uid: "1".into(),
            groups: vec!["ops".into()],
            client_id: None,
        }
    }

    async fn authenticator() -> Authenticator {
        Authenticator::new(&AuthConfig::default(), vec![("s3cret".into(), alice())])
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_static_token_authenticates_its_user_in_the_authenticated_group() {
        let user = authenticator()
            .await
            .authenticate(Some("Bearer s3cret"))
            .await
            .unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.groups, ["ops", AUTHENTICATED_GROUP]);
        let lower = authenticator()
            .await
            .authenticate(Some("bearer  s3cret "))
            .await;
        assert_eq!(lower.unwrap().username, "alice");
    }

    #[tokio::test]
    async fn requests_without_a_bearer_token_are_refused() {
        let auth = authenticator().await;
        for (header, reason) in [
            (
                None,
                "no bearer token: the request has no Authorization header",
            ),
            (
                Some(""),
                "no bearer token: the request has no Authorization header",
            ),
            (
                Some("Basic YWxpY2U6eA=="),
                "no bearer token: the Authorization header is not of the Bearer scheme",
            ),
            (Some("Bearer"), "no bearer token: the bearer token is empty"),
            (
                Some("Bearer   "),
                "no bearer token: the bearer token is empty",
            ),
        ] {
            let err = auth.authenticate(header).await.unwrap_err();
            assert!(matches!(err, AuthError::Missing(_)), "{header:?}: {err}");
            assert_eq!(err.to_string(), reason, "{header:?}");
        }
    }

    #[tokio::test]
    async fn an_unknown_opaque_token_is_invalid() {
        let err = authenticator()
            .await
            .authenticate(Some("Bearer nope"))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid bearer token: not a known static token and not a JWT"
        );
    }

    #[tokio::test]
    async fn a_jwt_without_a_configured_provider_is_invalid() {
        // {"alg":"RS256","typ":"at+jwt","kid":"k"}.{"sub":"x"}.sig
        let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsifQ.eyJzdWIiOiJ4In0.c2ln";
        let err = authenticator()
            .await
            .authenticate(Some(&format!("Bearer {jwt}")))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid bearer token: a JWT, but no OpenID provider is configured"
        );
    }

    #[tokio::test]
    async fn a_bootstrap_token_may_not_repeat_a_file_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.csv");
        std::fs::write(&file, "s3cret,bob,2\n").unwrap();
        let config = AuthConfig {
            token_file: Some(file),
            ..Default::default()
        };
        let err = Authenticator::new(&config, vec![("s3cret".into(), alice())])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the bootstrap token for user \"alice\" is also in the static token file"
        );
    }

    #[test]
    fn authentication_futures_are_send() {
        fn send<T: Send + Sync>(_: &T) {}
        fn future_send<T: Send>(_: T) {}
        let auth = futures::executor::block_on(authenticator());
        send(&auth);
        future_send(auth.authenticate(Some("Bearer x")));
        future_send(Authenticator::new(&AuthConfig::default(), Vec::new()));
    }

    #[test]
    fn generated_tokens_are_32_random_bytes_in_url_safe_base64() {
        let (a, b) = (generate_token(), generate_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[tokio::test]
    async fn the_development_admin_token_is_kept_across_restarts_and_allowed_everything() {
        let dir = tempfile::tempdir().unwrap();
        let first = development_admin(&dir.path().join("dev")).unwrap();
        let again = development_admin(&dir.path().join("dev")).unwrap();
        assert_eq!(first.token, again.token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&first.token_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let auth = Authenticator::new(
            &AuthConfig::default(),
            vec![(first.token.clone(), first.user.clone())],
        )
        .await
        .unwrap();
        let user = auth
            .authenticate(Some(&format!("Bearer {}", first.token)))
            .await
            .unwrap();
        let attrs = RequestAttributes {
            verb: "deletecollection",
            group: "storage.corbel.dev",
            resource: "buckets",
            subresource: None,
            namespace: None,
            name: None,
        };
        assert_eq!(
            Authorizer::new(vec![first.rule]).authorize(&user, &attrs),
            Ok(())
        );
    }
}
