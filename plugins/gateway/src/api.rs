//! The gateway API, group `gateway.corbel.dev`, version `v1alpha1`: a [`GatewaySpec`] (a fleet of
//! gateway instances and how it is driven), [`RouteSpec`] (an API exposed on it), [`ConsumerSpec`]
//! (an application calling it, known by the `client_id` of its tokens) and [`ConsumeRouteSpec`]
//! (the grant of one Consumer on one Route).
//!
//! Field names follow the system Corbel replaces (its Route, Consumer and ConsumeRoute kinds)
//! where they fit. In the component these are plain serde types; natively they also derive kube's
//! `CustomResource` and schemars' `JsonSchema` ([`crate::crd`]), which never reach the `.wasm`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(not(target_arch = "wasm32"))]
use kube::CustomResource;
#[cfg(not(target_arch = "wasm32"))]
use schemars::JsonSchema;

pub const GROUP: &str = "gateway.corbel.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "gateway.corbel.dev/v1alpha1";

/// A fleet of gateway instances and how Corbel drives it.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "gateway.corbel.dev",
        version = "v1alpha1",
        kind = "Gateway",
        namespaced,
        status = "GatewayStatus",
        doc = "A fleet of gateway instances (Envoy driven over xDS, or Kong through its Admin API), its listener and the token issuers it trusts.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Driver", type_ = "string", json_path = ".spec.driver"),
        printcolumn(name = "Routes", type_ = "integer", json_path = ".status.routes"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    #[serde(default)]
    pub driver: Driver,
    #[serde(default)]
    pub listener: Listener,
    /// Host names the gateway answers for; a Route's hostnames must be among them when this is
    /// not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Token issuers Routes may require (machine-to-machine JWTs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<Issuer>,
    /// Upstreams on loopback addresses are refused unless this is set (a development gateway
    /// beside its upstreams); elsewhere they would reach the gateway's own host.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_loopback_upstreams: bool,
    /// The xDS node group (Envoy's `node.cluster`) serving this Gateway; defaults to
    /// `<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
    /// For `driver: kong`: where its Admin API is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kong: Option<Kong>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Corbel serves the instances' configuration over xDS.
    #[default]
    Envoy,
    /// Corbel calls Kong's Admin API.
    Kong,
}

/// Where the gateway instances accept traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    #[serde(default = "default_address")]
    pub address: String,
    #[serde(default = "default_port")]
    pub port: u16,
}

impl Default for Listener {
    fn default() -> Self {
        Listener {
            address: default_address(),
            port: default_port(),
        }
    }
}

fn default_address() -> String {
    "0.0.0.0".into()
}

fn default_port() -> u16 {
    8080
}

/// A token issuer the gateway trusts, named so Routes can require it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Issuer {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
    /// The `iss` claim tokens carry.
    pub issuer: String,
    /// Where the signing keys are published (`jwks_uri` of the issuer's discovery document).
    pub jwks_uri: String,
    /// Accepted `aud` values; empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Kong {
    pub admin_url: String,
    /// A Secret of the Gateway's namespace whose `token` key is sent as `Kong-Admin-Token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalRef>,
}

/// An object of the same namespace, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub struct LocalRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Routes and Consumers in the configuration last published.
    #[serde(default)]
    pub routes: u32,
    #[serde(default)]
    pub consumers: u32,
    /// The configuration version last published, and the one the instances acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_version: Option<String>,
    /// When the configuration was last published (milliseconds since the Unix epoch), and how
    /// long that reconcile took: the next one waits at least as long (see `reconcile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_took_ms: Option<u64>,
    /// A digest of what the configuration last published was translated from: the Gateway's
    /// spec, its Routes, Consumers and ConsumeRoutes, the refusals in force, and its
    /// `XdsSnapshot`s as written. A reconcile that finds the same translates nothing and only
    /// reads the versions the instances acknowledged (see `reconcile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_digest: Option<String>,
    /// Routes left out because Envoy refused a configuration holding them; a Route reads its
    /// own entry for its condition, and is tried again once its generation changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_routes: Vec<RejectedRoute>,
    /// Routes not served because an older Route of the Gateway claims one of their hosts and
    /// paths. Conflicts are found here, where every Route of the Gateway is read; a Route's own
    /// reconcile reads only its entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicting_routes: Vec<RejectedRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RejectedRoute {
    pub name: String,
    pub generation: i64,
    /// Envoy's error detail, or which Route holds the host and path.
    pub message: String,
    /// In `conflictingRoutes`, what only the whole set shows: `PathConflict` (when absent) or
    /// `RouteTableFull` (the Gateway's route table has no room left for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An API exposed on a Gateway.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "gateway.corbel.dev",
        version = "v1alpha1",
        kind = "Route",
        namespaced,
        status = "RouteStatus",
        doc = "An API exposed on a Gateway: where it is matched, where traffic goes, and who may call it how often.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(
            name = "Gateway",
            type_ = "string",
            json_path = ".spec.gatewayRef.name"
        ),
        printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RouteSpec {
    pub gateway_ref: LocalRef,
    /// Host names matched; empty matches any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Path prefixes matched, each starting with `/`.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub paths: Vec<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub upstreams: Vec<Upstream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation: Option<Transformation>,
}

/// Where traffic goes: `http(s)://host[:port]`, without a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    pub url: String,
    /// Share of traffic; give a weight to all upstreams or to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Failover order: 0 takes traffic while healthy, then 1, and so on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Upstream answer timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Retries on connect failures, resets and 5xx answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// Requests allowed per window; any subset, each window no looser than the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_hour: Option<u32>,
}

/// `(window name, seconds, requests)`.
pub type Window = (&'static str, u64, u32);

impl RateLimit {
    /// `(window name, seconds, requests)` for each window given, shortest first.
    pub fn windows(&self) -> Vec<Window> {
        [
            ("second", 1, self.per_second),
            ("minute", 60, self.per_minute),
            ("hour", 3600, self.per_hour),
        ]
        .into_iter()
        .filter_map(|(name, secs, n)| n.map(|n| (name, secs, n)))
        .collect()
    }
}

/// Limits on one upstream; past `consecutiveErrors` 5xx answers an endpoint is ejected for a while.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<u32>,
}

/// Who may call: a token from `issuer` (a name among the Gateway's issuers) carrying `scopes`,
/// of a Consumer holding a ConsumeRoute on this Route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Security {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Client addresses or CIDR ranges allowed (empty: any) and denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_deny: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Transformation {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers_to_add: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub response_headers_to_add: BTreeMap<String, String>,
    /// Replaces the matched path prefix before the request goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_rewrite: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the Route is served, such as `http://api.example:8080/orders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Consumers holding a ConsumeRoute on this Route, sorted by name. A change to a grant
    /// changes this list, which is what reconciles the Gateway serving the Route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<AdmittedConsumer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A Consumer admitted on a Route, with the limit of its grant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AdmittedConsumer {
    pub name: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// An application calling Routes of a Gateway, known by the `client_id` of its tokens.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "gateway.corbel.dev",
        version = "v1alpha1",
        kind = "Consumer",
        namespaced,
        status = "SimpleStatus",
        doc = "An application calling Routes of a Gateway, known by the client_id of its tokens.",
        printcolumn(name = "Client", type_ = "string", json_path = ".spec.clientId"),
        printcolumn(
            name = "Gateway",
            type_ = "string",
            json_path = ".spec.gatewayRef.name"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSpec {
    pub gateway_ref: LocalRef,
    /// The `client_id` claim of the consumer's tokens.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_deny: Vec<String>,
}

/// The grant of one Consumer on one Route, with an optional limit of its own.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "gateway.corbel.dev",
        version = "v1alpha1",
        kind = "ConsumeRoute",
        namespaced,
        status = "SimpleStatus",
        doc = "The grant of one Consumer on one Route, with an optional per-consumer rate limit.",
        printcolumn(
            name = "Consumer",
            type_ = "string",
            json_path = ".spec.consumerRef.name"
        ),
        printcolumn(name = "Route", type_ = "string", json_path = ".spec.routeRef.name"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeRouteSpec {
    pub consumer_ref: LocalRef,
    pub route_ref: LocalRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SimpleStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The conditions every plugin's kinds share (one schema for all CRDs).
pub use corbel_sdk::crd::Condition;

/// The label a ConsumeRoute may carry with the name of its Route (`spec.routeRef.name`): a
/// Route's reconcile then finds its grants by label, without reading every ConsumeRoute of the
/// namespace. Those without the label are still found (read by the does-not-exist selector), so
/// it only makes reconciles cheaper; when present it must name the Route (admission refuses
/// others).
pub const ROUTE_LABEL: &str = "gateway.corbel.dev/route";
