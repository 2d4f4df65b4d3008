//! The reconcile decisions, apart from how the plugin reaches the cluster and the provider: an
//! [`Env`] gives the lookups and the owned Secret's writes (the host's capabilities in the
//! component, a map in tests), the HTTP transport and the clock.
//!
//! - [`provider`]: discovery (`oidc`) or an admin token (`keycloak`) proves the provider
//!   answers; status records the issuer, its endpoints and what it supports.
//! - [`realm`]: `oidc`: the provider's issuer; `keycloak`: the realm is created when missing.
//!   [`realm_cleanup`] waits while Clients still name the Realm, then deletes a Keycloak realm.
//! - [`client`]: the client exists in the provider, its credentials are in the Secret the Client
//!   owns, and a rotation that is due happens; [`client_cleanup`] removes the client (and any
//!   previous one still in its overlap) from the provider, then the Secret.
//!
//! The Secret is the controller's record as well as the consumer's: besides `client_id`,
//! `client_secret`, `token_url`, `issuer` (and `scope`) it holds when the secret was issued,
//! how to manage the registration (for `oidc`, the registration URI and access token, which RFC
//! 7592 means for the client itself), and during an overlap the previous credentials. The
//! provider learns of a secret before the Secret does, and forgets one only after the Secret
//! moved on, so the Secret never holds a secret the provider does not know.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use corbel_sdk::controller::{Event, Status};
use corbel_sdk::{CapabilityError, Object, Outcome, ReconcileError};
use serde_json::{Map, Value, json};

use crate::admission;
use crate::api::{self, ClientSpec, IdentityProviderSpec, RealmSpec};
use crate::backend::{self, Transport};
use crate::keycloak;
use crate::oidc;

/// The controller's settings (all optional): when to look again.
pub use corbel_sdk::controller::Timing as Settings;

/// The objects a reconcile reads and writes, in the reconciled object's namespace.
pub trait Cluster {
    /// An object of one of the identity kinds (`IdentityProvider`, `Realm`, `Client`).
    fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError>;
    /// Every Client of the namespace.
    fn clients(&self) -> Result<Vec<Value>, CapabilityError>;
    /// A Secret's data, through the `secrets` capability (admin credentials, tokens).
    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError>;
    /// A Secret the reconciled object owns, through `resources` (whole object).
    fn owned_secret(&self, name: &str) -> Result<Option<Value>, CapabilityError>;
    fn create_secret(&self, secret: &Value) -> Result<Value, CapabilityError>;
    fn update_secret(&self, secret: &Value) -> Result<Value, CapabilityError>;
    fn delete_secret(&self, name: &str) -> Result<bool, CapabilityError>;
}

/// Everything a reconcile needs from outside.
pub struct Env<'a> {
    pub cluster: &'a dyn Cluster,
    pub transport: &'a dyn Transport,
    /// Seconds since the Unix epoch, read once per call.
    pub now: u64,
    pub settings: &'a Settings,
}

impl Env<'_> {
    fn blocked(&self, reason: &str, message: impl Into<String>) -> ReconcileError {
        ReconcileError::permanent(reason, message)
            .retry_after(Duration::from_secs(self.settings.blocked_retry_seconds))
    }

    fn resync(&self) -> Duration {
        Duration::from_secs(self.settings.resync_seconds)
    }

    /// Sorts a provider error by what helps.
    fn failure(&self, error: backend::Error) -> ReconcileError {
        use backend::Error as E;
        match error {
            E::Unreachable(m) => ReconcileError::transient("ProviderUnreachable", m),
            E::Server(m) => ReconcileError::transient("ProviderError", m),
            E::Denied { message, .. } => self.blocked("AccessDenied", message),
            E::Auth(m) => self.blocked("CredentialsRefused", m),
            E::Refused(m) => self.blocked("RequestRefused", m),
        }
    }
}

fn is_ready(object: &Value) -> Option<(bool, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"] == "True",
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

fn spec_of<T: serde::de::DeserializeOwned>(
    env: &Env,
    kind: &str,
    name: &str,
    object: &Value,
) -> Result<T, ReconcileError> {
    serde_json::from_value(object["spec"].clone()).map_err(|e| {
        env.blocked(
            &format!("Invalid{kind}"),
            format!("{kind} {name}'s spec does not fit: {e}"),
        )
    })
}

fn secret_text(env: &Env, name: &str, key: &str, what: &str) -> Result<String, ReconcileError> {
    let data = match env.cluster.secret(name) {
        Ok(data) => data,
        Err(CapabilityError::NotFound(_)) => {
            return Err(ReconcileError::transient(
                "SecretNotFound",
                format!("Secret {name} ({what}) does not exist in this namespace"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = data.get(key).ok_or_else(|| {
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        env.blocked(
            "SecretKeyMissing",
            format!("Secret {name} ({what}) has no key {key:?} (its keys: {keys:?})"),
        )
    })?;
    String::from_utf8(bytes.clone())
        .map(|v| v.trim().to_owned())
        .map_err(|_| {
            env.blocked(
                "SecretKeyInvalid",
                format!("Secret {name} key {key:?} ({what}) is not UTF-8 text"),
            )
        })
}

/// A provider's driver, with what it needs to act.
enum Driver {
    Oidc {
        spec: api::OidcProvider,
    },
    Keycloak {
        spec: api::KeycloakProvider,
        admin: keycloak::AdminCredentials,
    },
}

fn driver(env: &Env, name: &str, spec: &IdentityProviderSpec) -> Result<Driver, ReconcileError> {
    match (&spec.oidc, &spec.keycloak) {
        (Some(oidc), None) => Ok(Driver::Oidc { spec: oidc.clone() }),
        (None, Some(kc)) => {
            let secret = &kc.credentials_secret_ref.name;
            let data = match env.cluster.secret(secret) {
                Ok(data) => data,
                Err(CapabilityError::NotFound(_)) => {
                    return Err(ReconcileError::transient(
                        "SecretNotFound",
                        format!(
                            "Secret {secret} (the admin credentials of IdentityProvider {name}) does not exist in this namespace"
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let admin = keycloak::AdminCredentials::from_secret(&data).map_err(|e| {
                env.blocked(
                    "SecretKeyMissing",
                    format!("Secret {secret} (IdentityProvider {name}): {e}"),
                )
            })?;
            Ok(Driver::Keycloak {
                spec: kc.clone(),
                admin,
            })
        }
        _ => Err(ReconcileError::permanent(
            "InvalidSpec",
            format!("IdentityProvider {name}: set exactly one of spec.keycloak and spec.oidc"),
        )),
    }
}

/// Proves the provider answers and records what it offers.
pub fn provider(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let spec: IdentityProviderSpec = object.spec()?;
    admission::check_provider(&spec).map_err(|e| ReconcileError::permanent("InvalidSpec", e))?;
    match driver(env, object.name(), &spec)? {
        Driver::Oidc { spec } => {
            let found = oidc::discover(env.transport, &spec.issuer).map_err(|e| env.failure(e))?;
            let Some(registration) = &found.registration_endpoint else {
                return Err(env.blocked(
                    "RegistrationNotSupported",
                    format!(
                        "{} announces no registration_endpoint: the oidc driver creates clients by dynamic registration (RFC 7591); enable it in the provider",
                        found.issuer
                    ),
                ));
            };
            if !found.grant_types.is_empty()
                && !found.grant_types.iter().any(|g| g == "client_credentials")
            {
                return Err(env.blocked(
                    "ClientCredentialsNotSupported",
                    format!(
                        "{} does not support the client_credentials grant (it supports {:?})",
                        found.issuer, found.grant_types
                    ),
                ));
            }
            Ok(Outcome::default()
                .status(json!({
                    "driver": "oidc",
                    "issuer": found.issuer,
                    "tokenEndpoint": found.token_endpoint,
                    "jwksUri": found.jwks_uri,
                    "registrationEndpoint": registration,
                    "supports": {
                        "grantTypes": found.grant_types,
                        "tokenEndpointAuthMethods": found.token_endpoint_auth_methods,
                        "scopes": found.scopes,
                        "twoSecretsPerClient": false,
                        "tokenLifetime": false,
                    },
                }))
                .condition(
                    "Ready",
                    Status::True,
                    "ProviderReachable",
                    format!(
                        "{} answers discovery and offers dynamic client registration",
                        found.issuer
                    ),
                )
                .requeue_after(env.resync()))
        }
        Driver::Keycloak { spec, admin } => {
            let kc =
                keycloak::Admin::login(env.transport, &spec, &admin).map_err(|e| env.failure(e))?;
            Ok(Outcome::default()
                .status(json!({
                    "driver": "keycloak",
                    "issuer": kc.base(),
                    "supports": {
                        "grantTypes": ["client_credentials"],
                        "tokenEndpointAuthMethods": ["client_secret_basic", "client_secret_post"],
                        "twoSecretsPerClient": false,
                        "tokenLifetime": true,
                    },
                }))
                .condition(
                    "Ready",
                    Status::True,
                    "ProviderReachable",
                    format!("{} takes the admin credentials", kc.base()),
                )
                .requeue_after(env.resync()))
        }
    }
}

/// An object of one of the identity kinds by name, Ready, with its spec; otherwise the error
/// that blocks `who` (`<Kind>NotFound`, `<Kind>NotReady` with the object's own reason).
fn ready<T: serde::de::DeserializeOwned>(
    env: &Env,
    kind: &str,
    name: &str,
    who: &str,
) -> Result<(T, Value), ReconcileError> {
    // The reasons use the short name users know: Provider, Realm.
    let short = kind.trim_start_matches("Identity");
    let object = env.cluster.get(kind, name)?.ok_or_else(|| {
        env.blocked(
            &format!("{short}NotFound"),
            format!("{who}: {kind} {name} does not exist in this namespace"),
        )
    })?;
    let why = match is_ready(&object) {
        Some((true, _)) => None,
        Some((false, message)) => Some(format!("is not Ready: {message}")),
        None => Some("has not been reconciled yet".to_owned()),
    };
    if let Some(why) = why {
        return Err(env.blocked(
            &format!("{short}NotReady"),
            format!("{who}: {kind} {name} {why}"),
        ));
    }
    let spec = spec_of(env, kind, name, &object)?;
    Ok((spec, object))
}

fn ready_provider(
    env: &Env,
    name: &str,
    who: &str,
) -> Result<(IdentityProviderSpec, Value), ReconcileError> {
    ready(env, "IdentityProvider", name, who)
}

/// `oidc`: the issuer's endpoints; `keycloak`: the realm exists.
pub fn realm(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let spec: RealmSpec = object.spec()?;
    let who = format!("Realm {}", object.name());
    let (provider_spec, provider) = ready_provider(env, &spec.provider_ref.name, &who)?;
    match driver(env, &spec.provider_ref.name, &provider_spec)? {
        Driver::Oidc { .. } => {
            let status = &provider["status"];
            Ok(Outcome::default()
                .status(json!({
                    "issuer": status["issuer"],
                    "tokenUrl": status["tokenEndpoint"],
                    "jwksUrl": status["jwksUri"],
                }))
                .condition(
                    "Ready",
                    Status::True,
                    "IssuerReady",
                    format!(
                        "the realm of an OpenID provider is its issuer, {}",
                        status["issuer"].as_str().unwrap_or_default()
                    ),
                ))
        }
        Driver::Keycloak { spec: kc, admin } => {
            let name = spec.effective_name(object.name());
            let session =
                keycloak::Admin::login(env.transport, &kc, &admin).map_err(|e| env.failure(e))?;
            let created = session
                .ensure_realm(env.transport, name)
                .map_err(|e| env.failure(e))?;
            let base = session.base().to_owned();
            let mut outcome = Outcome::default();
            if created {
                outcome = outcome.event(Event::normal(
                    "RealmCreated",
                    "Create",
                    format!("created realm {name} in {base}"),
                ));
            }
            let issuer = format!("{base}/realms/{name}");
            Ok(outcome
                .status(json!({
                    "issuer": issuer,
                    "tokenUrl": format!("{issuer}/protocol/openid-connect/token"),
                    "jwksUrl": format!("{issuer}/protocol/openid-connect/certs"),
                }))
                .condition(
                    "Ready",
                    Status::True,
                    "RealmReady",
                    format!("realm {name} exists in {base}"),
                )
                .requeue_after(env.resync()))
        }
    }
}

/// Waits while Clients name the Realm (their cleanup needs it); then deletes a Keycloak realm.
pub fn realm_cleanup(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let mut waiting: Vec<String> = env
        .cluster
        .clients()?
        .iter()
        .filter(|c| c["spec"]["realmRef"]["name"].as_str() == Some(object.name()))
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    if !waiting.is_empty() {
        waiting.sort();
        return Err(ReconcileError::transient(
            "RealmHasClients",
            format!(
                "Realm {} still has Clients ({}): it is deleted once they are gone (delete them, or they keep the realm)",
                object.name(),
                waiting.join(", ")
            ),
        )
        .retry_after(Duration::from_secs(env.settings.blocked_retry_seconds.min(5))));
    }
    let spec: RealmSpec = match object.spec() {
        Ok(spec) => spec,
        Err(_) => return Ok(Outcome::default()),
    };
    let Some(provider) = env
        .cluster
        .get("IdentityProvider", &spec.provider_ref.name)?
    else {
        return Ok(Outcome::default().event(Event::warning(
            "ProviderGone",
            "Delete",
            format!(
                "IdentityProvider {} no longer exists: nothing was deleted in the provider",
                spec.provider_ref.name
            ),
        )));
    };
    let provider_spec: IdentityProviderSpec =
        spec_of(env, "IdentityProvider", &spec.provider_ref.name, &provider)?;
    match driver(env, &spec.provider_ref.name, &provider_spec)? {
        Driver::Oidc { .. } => Ok(Outcome::default()),
        Driver::Keycloak { spec: kc, admin } => {
            let name = spec.effective_name(object.name());
            let session =
                keycloak::Admin::login(env.transport, &kc, &admin).map_err(|e| env.failure(e))?;
            session
                .delete_realm(env.transport, name)
                .map_err(|e| env.failure(e))?;
            Ok(Outcome::default().event(Event::normal(
                "RealmDeleted",
                "Delete",
                format!("deleted realm {name} in {}", session.base()),
            )))
        }
    }
}

/// One issued credential, as the Secret records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub client_id: String,
    pub client_secret: String,
    /// Seconds since the epoch.
    pub issued_at: u64,
    /// `oidc`: the registration URI; `keycloak`: empty (clients are found by clientId).
    pub handle: String,
    /// `oidc`: the registration access token; `keycloak`: empty.
    pub token: String,
}

/// What the Secret holds: the current credential, and during an overlap the previous one and
/// when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub current: Issued,
    pub previous: Option<(Issued, u64)>,
}

const KEYS: [&str; 5] = [
    "client_id",
    "client_secret",
    "issued_at",
    "registration_client_uri",
    "registration_access_token",
];

fn decode(secret: &Value) -> BTreeMap<String, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let bytes = engine.decode(v.as_str()?).ok()?;
            Some((k.clone(), String::from_utf8(bytes).ok()?))
        })
        .collect()
}

fn issued(data: &BTreeMap<String, String>, prefix: &str) -> Option<Issued> {
    let get = |key: &str| data.get(&format!("{prefix}{key}")).cloned();
    Some(Issued {
        client_id: get(KEYS[0])?,
        client_secret: get(KEYS[1])?,
        issued_at: get(KEYS[2])?.parse().ok()?,
        handle: get(KEYS[3]).unwrap_or_default(),
        token: get(KEYS[4]).unwrap_or_default(),
    })
}

impl Delivered {
    /// What a Secret written by this controller records; `None` when it records nothing usable
    /// (then the client is registered again).
    pub fn read(secret: &Value) -> Option<Delivered> {
        let data = decode(secret);
        let current = issued(&data, "")?;
        let previous = issued(&data, "previous_").and_then(|p| {
            let until = data.get("previous_expires_at")?.parse().ok()?;
            Some((p, until))
        });
        Some(Delivered { current, previous })
    }

    /// The Secret's `data`, base64 as the API wants it.
    fn data(&self, token_url: &str, issuer: &str, scope: &str) -> Map<String, Value> {
        let engine = base64::engine::general_purpose::STANDARD;
        let mut data = BTreeMap::new();
        let mut put = |prefix: &str, issued: &Issued| {
            let values = [
                &issued.client_id,
                &issued.client_secret,
                &issued.issued_at.to_string(),
                &issued.handle,
                &issued.token,
            ];
            for (key, value) in KEYS.iter().zip(values) {
                if !value.is_empty() {
                    data.insert(format!("{prefix}{key}"), value.clone());
                }
            }
        };
        put("", &self.current);
        if let Some((previous, until)) = &self.previous {
            put("previous_", previous);
            data.insert("previous_expires_at".into(), until.to_string());
        }
        data.insert("token_url".into(), token_url.into());
        data.insert("issuer".into(), issuer.into());
        if !scope.is_empty() {
            data.insert("scope".into(), scope.into());
        }
        data.into_iter()
            .map(|(k, v)| (k, Value::String(engine.encode(v))))
            .collect()
    }
}

/// RFC 3339 in UTC for `seconds` since the epoch (the SDK's, shared with the other controllers).
pub use corbel_sdk::controller::rfc3339;

/// The provider side of one Client: issue, check, forget credentials.
struct Side<'a> {
    env: &'a Env<'a>,
    driver: Driver,
    /// `oidc`: the registration endpoint and the initial access token, if any.
    registration_endpoint: String,
    initial_access_token: Option<String>,
    /// `keycloak`: the realm's name.
    realm: String,
    client_id: String,
    spec: &'a ClientSpec,
}

/// What checking the current credential found.
enum Check {
    Fine,
    /// Still valid, but the Secret must record a new registration access token.
    NewToken(String),
    Gone,
}

impl Side<'_> {
    fn metadata(&self) -> oidc::Metadata {
        oidc::Metadata {
            client_name: self.client_id.clone(),
            scope: self.spec.scopes.join(" "),
        }
    }

    fn registration(issued: &Issued) -> oidc::Registration {
        oidc::Registration {
            client_id: issued.client_id.clone(),
            client_secret: issued.client_secret.clone(),
            registration_client_uri: issued.handle.clone(),
            registration_access_token: issued.token.clone(),
        }
    }

    fn keycloak(&self) -> Result<keycloak::Admin, ReconcileError> {
        let Driver::Keycloak { spec, admin } = &self.driver else {
            unreachable!("only called for keycloak")
        };
        keycloak::Admin::login(self.env.transport, spec, admin).map_err(|e| self.env.failure(e))
    }

    fn desired(&self, client_id: &str) -> keycloak::DesiredClient {
        keycloak::DesiredClient {
            client_id: client_id.to_owned(),
            scopes: self.spec.scopes.clone(),
            audience: self.spec.audience.clone(),
            token_lifetime_seconds: self.spec.token_lifetime_seconds,
        }
    }

    /// A fresh credential: a new registration (`oidc`), or a Keycloak client (the first one is
    /// named by the spec, a rotation's next one `<clientId>-<issued_at>`).
    fn issue(&self, rotation: bool) -> Result<Issued, ReconcileError> {
        let now = self.env.now;
        match &self.driver {
            Driver::Oidc { .. } => {
                let r = oidc::register(
                    self.env.transport,
                    &self.registration_endpoint,
                    self.initial_access_token.as_deref(),
                    &self.metadata(),
                )
                .map_err(|e| self.env.failure(e))?;
                Ok(Issued {
                    client_id: r.client_id,
                    client_secret: r.client_secret,
                    issued_at: now,
                    handle: r.registration_client_uri,
                    token: r.registration_access_token,
                })
            }
            Driver::Keycloak { .. } => {
                let id = if rotation {
                    format!("{}-{now}", self.client_id)
                } else {
                    self.client_id.clone()
                };
                let secret = match &self.spec.secret_from {
                    Some(from) => Some(secret_text(
                        self.env,
                        &from.name,
                        &from.key,
                        "spec.secretFrom",
                    )?),
                    None => None,
                };
                let session = self.keycloak()?;
                // Keycloak clients are found again by clientId: the internal id is not kept.
                let (_, secret) = session
                    .ensure_client(self.env.transport, &self.realm, &self.desired(&id), secret)
                    .map_err(|e| self.env.failure(e))?;
                Ok(Issued {
                    client_id: id,
                    client_secret: secret,
                    issued_at: now,
                    handle: String::new(),
                    token: String::new(),
                })
            }
        }
    }

    fn check(&self, issued: &Issued) -> Result<Check, ReconcileError> {
        match &self.driver {
            Driver::Oidc { .. } => {
                let registration = Self::registration(issued);
                let found = oidc::read(self.env.transport, &registration)
                    .map_err(|e| self.env.failure(e))?;
                match found {
                    oidc::Found::Gone => Ok(Check::Gone),
                    oidc::Found::Exists {
                        metadata,
                        registration_access_token,
                    } => {
                        let mut token = registration_access_token;
                        if metadata != self.metadata() {
                            let mut registration = registration;
                            if let Some(t) = &token {
                                registration.registration_access_token = t.clone();
                            }
                            token =
                                oidc::update(self.env.transport, &registration, &self.metadata())
                                    .map_err(|e| self.env.failure(e))?
                                    .or(token);
                        }
                        Ok(token.map_or(Check::Fine, Check::NewToken))
                    }
                }
            }
            Driver::Keycloak { .. } => {
                let session = self.keycloak()?;
                match session
                    .check_client(
                        self.env.transport,
                        &self.realm,
                        &self.desired(&issued.client_id),
                        &issued.client_secret,
                    )
                    .map_err(|e| self.env.failure(e))?
                {
                    true => Ok(Check::Fine),
                    false => Ok(Check::Gone),
                }
            }
        }
    }

    fn forget(&self, issued: &Issued) -> Result<(), ReconcileError> {
        match &self.driver {
            Driver::Oidc { .. } => oidc::delete(self.env.transport, &Self::registration(issued))
                .map_err(|e| self.env.failure(e)),
            Driver::Keycloak { .. } => self
                .keycloak()?
                .delete_client(self.env.transport, &self.realm, &issued.client_id)
                .map_err(|e| self.env.failure(e)),
        }
    }
}

fn secret_kind_object(name: &str, data: Map<String, Value>, client: &Object) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {"identity.corbel.dev/client": client.name()},
        },
        "data": data,
    })
}

/// The owned Secret by name: `Ok(None)` when missing; a Secret by that name the Client does not
/// own blocks it (the controller never overwrites someone else's Secret).
fn owned_secret(env: &Env, name: &str, client: &str) -> Result<Option<Value>, ReconcileError> {
    match env.cluster.owned_secret(name) {
        Ok(found) => Ok(found),
        Err(CapabilityError::AccessDenied(m)) => Err(env.blocked(
            "SecretNameTaken",
            format!(
                "Secret {name} exists and is not owned by Client {client}, so its credentials cannot be written there ({m}): delete it, or set spec.secretName to another name"
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The client exists in the provider, its credentials are in the Secret, and a due rotation
/// happens.
pub fn client(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let spec: ClientSpec = object.spec()?;
    admission::check_client(object.name(), &spec)
        .map_err(|e| ReconcileError::permanent("InvalidSpec", e))?;
    let who = format!("Client {}", object.name());
    let realm_name = &spec.realm_ref.name;
    let (realm_spec, realm): (RealmSpec, Value) = ready(env, "Realm", realm_name, &who)?;
    let (provider_spec, provider) = ready_provider(env, &realm_spec.provider_ref.name, &who)?;
    let driver = driver(env, &realm_spec.provider_ref.name, &provider_spec)?;
    let (registration_endpoint, initial_access_token) = match &driver {
        Driver::Oidc { spec: oidc } => {
            if !spec.audience.is_empty() || spec.token_lifetime_seconds.is_some() {
                return Err(ReconcileError::permanent(
                    "NotSupported",
                    format!(
                        "{who}: an oidc provider decides audiences and token lifetimes itself (RFC 7591 has no metadata for them): remove spec.audience and spec.tokenLifetimeSeconds"
                    ),
                ));
            }
            if spec.secret_from.is_some() {
                return Err(ReconcileError::permanent(
                    "NotSupported",
                    format!(
                        "{who}: an oidc provider generates client secrets itself: remove spec.secretFrom"
                    ),
                ));
            }
            let token = match &oidc.initial_access_token_secret_ref {
                Some(r) => Some(secret_text(
                    env,
                    &r.name,
                    &r.key,
                    "the initial access token for registration",
                )?),
                None => None,
            };
            let endpoint = provider["status"]["registrationEndpoint"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (endpoint, token)
        }
        Driver::Keycloak { .. } => (String::new(), None),
    };
    let issuer = realm["status"]["issuer"].as_str().unwrap_or_default();
    let token_url = realm["status"]["tokenUrl"].as_str().unwrap_or_default();
    let side = Side {
        env,
        driver,
        registration_endpoint,
        initial_access_token,
        realm: realm_spec.effective_name(realm_name).to_owned(),
        client_id: spec.effective_client_id(object.name()).to_owned(),
        spec: &spec,
    };
    let rotation = match &spec.rotation {
        Some(r) => Some((
            api::parse_duration(&r.every)
                .map_err(|e| ReconcileError::permanent("InvalidSpec", e))?,
            api::parse_duration(&r.overlap)
                .map_err(|e| ReconcileError::permanent("InvalidSpec", e))?,
        )),
        None => None,
    };

    let secret_name = spec.effective_secret_name(object.name());
    let existing = owned_secret(env, &secret_name, object.name())?;
    let before = existing.as_ref().and_then(Delivered::read);
    let mut outcome = Outcome::default();
    let mut delivered = match before.clone() {
        None => {
            let issued = side.issue(false)?;
            outcome = outcome.event(Event::normal(
                "ClientCreated",
                "Create",
                format!("created client {} at {issuer}", issued.client_id),
            ));
            Delivered {
                current: issued,
                previous: None,
            }
        }
        Some(mut delivered) => {
            match side.check(&delivered.current)? {
                Check::Fine => {}
                Check::NewToken(token) => delivered.current.token = token,
                Check::Gone => {
                    let gone = delivered.current.client_id.clone();
                    delivered.current = side.issue(delivered.previous.is_some())?;
                    outcome = outcome.event(Event::warning(
                        "ClientRecreated",
                        "Create",
                        format!(
                            "client {gone} was no longer known at {issuer}: created {} and updated Secret {secret_name}",
                            delivered.current.client_id
                        ),
                    ));
                }
            }
            delivered
        }
    };

    // A previous credential whose overlap is over is forgotten by the provider first, then by
    // the Secret: a retry after a failed write deletes again, which is harmless.
    if let Some((previous, until)) = &delivered.previous
        && env.now >= *until
    {
        side.forget(previous)?;
        outcome = outcome.event(Event::normal(
            "PreviousSecretRetired",
            "Delete",
            format!(
                "the overlap of client {} ended: it was deleted at {issuer}",
                previous.client_id
            ),
        ));
        delivered.previous = None;
    }
    if let Some((every, overlap)) = rotation
        && delivered.previous.is_none()
        && env.now >= delivered.current.issued_at.saturating_add(every)
    {
        let next = side.issue(true)?;
        outcome = outcome.event(Event::normal(
            "SecretRotated",
            "Update",
            format!(
                "issued client {} at {issuer}; {} keeps working until {}",
                next.client_id,
                delivered.current.client_id,
                rfc3339(env.now + overlap)
            ),
        ));
        let previous = std::mem::replace(&mut delivered.current, next);
        delivered.previous = Some((previous, env.now + overlap));
    }

    let scope = spec.scopes.join(" ");
    let data = delivered.data(token_url, issuer, &scope);
    match existing {
        None => {
            env.cluster
                .create_secret(&secret_kind_object(&secret_name, data, object))?;
        }
        Some(mut secret) if secret["data"].as_object() != Some(&data) => {
            secret["data"] = Value::Object(data);
            env.cluster.update_secret(&secret)?;
        }
        Some(_) => {}
    }

    // Look again when the overlap ends or the next rotation is due, or at the resync.
    let mut next = env.settings.resync_seconds;
    if let Some((_, until)) = &delivered.previous {
        next = next.min(until.saturating_sub(env.now).max(1));
    } else if let Some((every, _)) = rotation {
        let due = delivered.current.issued_at.saturating_add(every);
        next = next.min(due.saturating_sub(env.now).max(1));
    }
    let expires = rotation.map(|(every, _)| rfc3339(delivered.current.issued_at + every));
    Ok(outcome
        .status(json!({
            "clientId": delivered.current.client_id,
            "issuer": issuer,
            "tokenUrl": token_url,
            "secretName": secret_name,
            "secretExpiresAt": expires,
            "previousClientId": delivered.previous.as_ref().map(|(p, _)| &p.client_id),
            "previousExpiresAt": delivered.previous.as_ref().map(|(_, until)| rfc3339(*until)),
        }))
        .condition(
            "Ready",
            Status::True,
            "CredentialsDelivered",
            format!(
                "the credentials of client {} are in Secret {secret_name}",
                delivered.current.client_id
            ),
        )
        .requeue_after(Duration::from_secs(next)))
}

/// Removes the client (and a previous one still in its overlap) from the provider, then the
/// Secret. `oidc` needs only what the Secret records; `keycloak` needs its provider.
pub fn client_cleanup(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let spec: ClientSpec = match object.spec() {
        Ok(spec) => spec,
        Err(_) => return Ok(Outcome::default()),
    };
    let secret_name = spec.effective_secret_name(object.name());
    let existing = match env.cluster.owned_secret(&secret_name) {
        Ok(found) => found,
        // Not ours: nothing of this Client is there.
        Err(CapabilityError::AccessDenied(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let Some(delivered) = existing.as_ref().and_then(Delivered::read) else {
        return Ok(Outcome::default());
    };
    let mut all = vec![delivered.current.clone()];
    all.extend(delivered.previous.map(|(p, _)| p));
    let mut outcome = Outcome::default();
    let is_oidc = !delivered.current.token.is_empty();
    if is_oidc {
        for issued in &all {
            oidc::delete(env.transport, &Side::registration(issued)).map_err(|e| env.failure(e))?;
        }
    } else {
        let who = format!("Client {}", object.name());
        let realm = env.cluster.get("Realm", &spec.realm_ref.name)?;
        let Some(realm) = realm else {
            return Err(env.blocked(
                "RealmNotFound",
                format!(
                    "{who}: Realm {} is gone, so client {} cannot be deleted in Keycloak: recreate the Realm, or remove the Client's finalizer to let it go",
                    spec.realm_ref.name, delivered.current.client_id
                ),
            ));
        };
        let realm_spec: RealmSpec = spec_of(env, "Realm", &spec.realm_ref.name, &realm)?;
        let provider = env
            .cluster
            .get("IdentityProvider", &realm_spec.provider_ref.name)?
            .ok_or_else(|| {
                env.blocked(
                    "ProviderNotFound",
                    format!(
                        "{who}: IdentityProvider {} is gone, so the client cannot be deleted in Keycloak",
                        realm_spec.provider_ref.name
                    ),
                )
            })?;
        let provider_spec = spec_of(
            env,
            "IdentityProvider",
            &realm_spec.provider_ref.name,
            &provider,
        )?;
        let Driver::Keycloak { spec: kc, admin } =
            driver(env, &realm_spec.provider_ref.name, &provider_spec)?
        else {
            return Ok(Outcome::default());
        };
        let session =
            keycloak::Admin::login(env.transport, &kc, &admin).map_err(|e| env.failure(e))?;
        let realm_name = realm_spec.effective_name(&spec.realm_ref.name);
        for issued in &all {
            session
                .delete_client(env.transport, realm_name, &issued.client_id)
                .map_err(|e| env.failure(e))?;
        }
    }
    for issued in &all {
        outcome = outcome.event(Event::normal(
            "ClientDeleted",
            "Delete",
            format!("deleted client {} in the provider", issued.client_id),
        ));
    }
    env.cluster.delete_secret(&secret_name)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests;
