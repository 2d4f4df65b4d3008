//! The identity API, group `identity.corbel.dev`, version `v1alpha1`:
//! [`IdentityProviderSpec`] (how to reach and administer a provider: Keycloak's admin API, or any
//! OpenID provider with dynamic client registration), [`RealmSpec`] (a Keycloak realm, or the
//! provider's issuer itself) and [`ClientSpec`] (a machine-to-machine client whose credentials
//! are delivered as a Secret the Client owns).
//!
//! In the component these are plain serde types. Natively they also derive kube's
//! `CustomResource` and schemars' `JsonSchema`, which is where `deploy/crds/` comes from
//! ([`crate::crd`]); those derives never reach the `.wasm`.

use serde::{Deserialize, Serialize};

#[cfg(not(target_arch = "wasm32"))]
use kube::CustomResource;
#[cfg(not(target_arch = "wasm32"))]
use schemars::JsonSchema;

pub const GROUP: &str = "identity.corbel.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "identity.corbel.dev/v1alpha1";

/// An identity provider and how the controller administers it. Exactly one of `keycloak` and
/// `oidc` is set.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "identity.corbel.dev",
        version = "v1alpha1",
        kind = "IdentityProvider",
        namespaced,
        status = "IdentityProviderStatus",
        doc = "An identity provider (Keycloak, or any OpenID provider with dynamic client registration) and the credentials the controller administers it with.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Issuer", type_ = "string", json_path = ".status.issuer"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderSpec {
    /// A Keycloak server, administered through its admin REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<KeycloakProvider>,
    /// Any OpenID provider with OAuth 2.0 Dynamic Client Registration (RFC 7591) and its
    /// management protocol (RFC 7592).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcProvider>,
}

/// Keycloak: its base URL (without `/auth`, Keycloak 17 and later) and admin credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct KeycloakProvider {
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(regex(pattern = r"^https?://[^?#@]+$"))
    )]
    pub url: String,
    /// The realm the admin credentials belong to; `master` when absent.
    #[serde(default = "default_admin_realm")]
    pub admin_realm: String,
    /// A Secret (same namespace) with `username` and `password` (password grant through
    /// `admin-cli`), or `clientId` and `clientSecret` (client credentials of an admin client).
    pub credentials_secret_ref: LocalRef,
}

fn default_admin_realm() -> String {
    "master".into()
}

/// An OpenID provider found through discovery (`<issuer>/.well-known/openid-configuration`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(regex(pattern = r"^https?://[^?#@]+$"))
    )]
    pub issuer: String,
    /// A Secret (same namespace) holding the initial access token registration asks for, when
    /// the provider asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_access_token_secret_ref: Option<SecretKeyRef>,
}

/// An object of the same namespace, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub struct LocalRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
}

/// One key of a Secret in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
    #[serde(default = "default_token_key")]
    pub key: String,
}

fn default_token_key() -> String {
    "token".into()
}

/// What the controller last saw of a provider. The host writes `conditions` and
/// `observedGeneration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `keycloak` or `oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The issuer as the provider announces it (for Keycloak, its base URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// What the provider supports, as far as clients of this controller care.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports: Option<Supports>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Supports {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Two valid secrets for one client during a rotation (Keycloak: no, one secret per client;
    /// OIDC registration: no). When false a rotation issues a new client beside the old one.
    #[serde(default)]
    pub two_secrets_per_client: bool,
    /// A token lifetime per client (Keycloak: yes; RFC 7591 has no such metadata).
    #[serde(default)]
    pub token_lifetime: bool,
}

/// A realm of a provider: created, kept and deleted with the object in Keycloak; for an `oidc`
/// provider, the issuer itself.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "identity.corbel.dev",
        version = "v1alpha1",
        kind = "Realm",
        namespaced,
        status = "RealmStatus",
        doc = "A realm of an IdentityProvider: a Keycloak realm, or an OpenID provider's issuer.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Issuer", type_ = "string", json_path = ".status.issuer"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RealmSpec {
    /// The IdentityProvider (same namespace). Immutable.
    pub provider_ref: LocalRef,
    /// The realm's name in Keycloak; `metadata.name` when absent. Immutable. Not used for
    /// `oidc` providers, whose only realm is their issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_name: Option<String>,
}

impl RealmSpec {
    pub fn effective_name<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.realm_name.as_deref().unwrap_or(metadata_name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RealmStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A machine-to-machine client (client-credentials grant) in a Realm, its credentials written
/// to a Secret the Client owns: `client_id`, `client_secret`, `token_url`, `issuer` (and
/// `scope` when scopes are asked for).
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "identity.corbel.dev",
        version = "v1alpha1",
        kind = "Client",
        namespaced,
        status = "ClientStatus",
        doc = "A machine-to-machine client of a Realm; its credentials are delivered as a Secret it owns, and rotated with an overlap.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Client ID", type_ = "string", json_path = ".status.clientId"),
        printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClientSpec {
    /// The Realm (same namespace). Immutable.
    pub realm_ref: LocalRef,
    /// Keycloak: the client's `clientId`. OIDC: the `client_name` it is registered with (the
    /// provider assigns the `client_id`). `metadata.name` when absent. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Scopes the client may ask for; also written to the Secret as `scope`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Audiences added to the client's tokens (Keycloak: an audience mapper each). OIDC
    /// providers decide audiences themselves (resource indicators); there it must be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
    /// Access-token lifetime, where the provider supports one per client (Keycloak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1)))]
    pub token_lifetime_seconds: Option<u32>,
    /// Keycloak: take the client secret from this Secret rather than letting Keycloak generate
    /// one. Not with `rotation` (the Secret is then the source of truth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_from: Option<SecretKeyRef>,
    /// The Secret the credentials are written to; `<metadata.name>-credentials` when absent.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Issue a new secret every `every`; the previous one keeps working for `overlap`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

impl ClientSpec {
    pub fn effective_client_id<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.client_id.as_deref().unwrap_or(metadata_name)
    }

    pub fn effective_secret_name(&self, metadata_name: &str) -> String {
        self.secret_name
            .clone()
            .unwrap_or_else(|| format!("{metadata_name}-credentials"))
    }
}

/// Durations such as `90s`, `15m`, `12h`, `30d` (one number and one unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// How often a new secret is issued.
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))
    )]
    pub every: String,
    /// How long the previous secret keeps obtaining tokens after a rotation; shorter than `every`.
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))
    )]
    pub overlap: String,
}

/// Parses `90s`, `15m`, `12h`, `30d` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let unit = text.chars().last().unwrap_or(' ');
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration: one number and a unit s, m, h or d (such as 12h)"
            ));
        }
    };
    let number: u64 = text[..text.len() - 1].parse().map_err(|_| {
        format!("{text:?} is not a duration: one number and a unit s, m, h or d (such as 12h)")
    })?;
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClientStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The client id tokens carry (for OIDC providers, the one the provider assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// When the current secret is replaced by the next rotation (RFC 3339); absent without
    /// rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_expires_at: Option<String>,
    /// During a rotation's overlap: the previous client id (OIDC providers issue a new client
    /// per rotation) and when its secret stops working (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The conditions every plugin's kinds share (one schema for all CRDs).
pub use corbel_sdk::crd::Condition;
