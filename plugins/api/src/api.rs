//! The API-management kinds, group `api.corbel.dev`, version `v1alpha1`:
//!
//! - [`ApplicationSpec`]: a consumer team's application; it gets an identity `Client` (and so a
//!   Secret with its credentials) in its own namespace.
//! - [`ApiExposureSpec`]: a provider team's API on a Gateway of its namespace, with the approval
//!   strategy for subscriptions; it becomes a gateway `Route`.
//! - [`ApiSubscriptionSpec`]: an Application's request for an exposure's base path, made in the
//!   exposure's namespace; it gets an [`ApprovalSpec`], a gateway `Consumer` for the
//!   Application's client id and, once the approval is Granted, a `ConsumeRoute`.
//! - [`ApprovalSpec`]: the decisions taken on a subscription (who, when, why); its state follows
//!   from them and the strategy ([`crate::approval`]).
//!
//! In the component these are plain serde types; natively they also derive kube's
//! `CustomResource` and schemars' `JsonSchema` ([`crate::crd`]), which never reach the `.wasm`.

use serde::{Deserialize, Serialize};

#[cfg(not(target_arch = "wasm32"))]
use kube::CustomResource;
#[cfg(not(target_arch = "wasm32"))]
use schemars::JsonSchema;

pub const GROUP: &str = "api.corbel.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "api.corbel.dev/v1alpha1";

/// A consumer team's application: an identity Client (credentials in a Secret) it owns.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "api.corbel.dev",
        version = "v1alpha1",
        kind = "Application",
        namespaced,
        status = "ApplicationStatus",
        doc = "A consumer team's application: it gets an identity Client, whose Secret holds the credentials its tokens are obtained with.",
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
pub struct ApplicationSpec {
    /// The identity Realm (same namespace) the Client is registered in; the controller's
    /// `realm` setting (default `default`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_ref: Option<LocalRef>,
    /// Scopes the application's client may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The client id the application's tokens carry (what gateway Consumers name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The Secret with the credentials (`client_id`, `client_secret`, `token_url`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A provider team's API, exposed on a Gateway of the same namespace.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "api.corbel.dev",
        version = "v1alpha1",
        kind = "ApiExposure",
        namespaced,
        status = "ApiExposureStatus",
        doc = "A provider team's API on a Gateway: base path, upstreams, security, traffic, and how subscriptions are approved. It becomes a gateway Route.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Base path", type_ = "string", json_path = ".spec.basePath"),
        printcolumn(
            name = "Approval",
            type_ = "string",
            json_path = ".spec.approval.strategy"
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
pub struct ApiExposureSpec {
    /// The path prefix the API is served under, such as `/orders`; subscriptions name it.
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(regex(pattern = r"^/[A-Za-z0-9._~/-]*$"))
    )]
    pub base_path: String,
    /// The Gateway (same namespace) serving the API.
    pub gateway_ref: LocalRef,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub upstreams: Vec<Upstream>,
    /// Who may call: tokens of an issuer the Gateway trusts, with these scopes, of subscribed
    /// applications. Without it the API is open to anyone and subscriptions change nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    #[serde(default)]
    pub approval: ApprovalPolicy,
}

/// Where traffic goes: `http(s)://host[:port]`, without a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// A name among the Gateway's `issuers`.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// Requests allowed per window, for the whole API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Upstream answer timeout, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    #[serde(default)]
    pub strategy: Strategy,
    /// How long a grant lasts, in seconds: after that the Approval is `Expired` (its
    /// ConsumeRoute removed) until a member grants it again. Unset: until revoked. Copied into
    /// each Approval when it is created; not for `Auto`, which has no decision to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1)))]
    pub grant_valid_seconds: Option<u64>,
}

/// How a subscription is approved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub enum Strategy {
    /// Granted at once (a member of the provider team may still suspend it).
    Auto,
    /// One decision by a member of the provider team, not the requester.
    #[default]
    Simple,
    /// Two decisions by two different members of the provider team, neither the requester.
    FourEyes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiExposureStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where the API is served (the Route's URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The Route it became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// An Application's request for an exposure's base path, in the exposure's namespace.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "api.corbel.dev",
        version = "v1alpha1",
        kind = "ApiSubscription",
        namespaced,
        status = "ApiSubscriptionStatus",
        doc = "An Application's request for an exposure's base path, made in the exposure's namespace. It gets an Approval and, once that is Granted, a ConsumeRoute for the Application's Consumer.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Base path", type_ = "string", json_path = ".spec.basePath"),
        printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
        printcolumn(
            name = "Application",
            type_ = "string",
            json_path = ".spec.applicationRef.name"
        ),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApiSubscriptionSpec {
    /// The base path of an ApiExposure of this namespace.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub base_path: String,
    /// The subscribing Application, in its team's namespace. Immutable.
    pub application_ref: NamespacedRef,
    /// Who asked: set from the request's user at creation (the mutating binding does it; the
    /// validating one refuses any other name). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApiSubscriptionStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Approval's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// The Approval (same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The Application's client id, as its Consumer names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The decisions on one subscription. Created by the controller; a decision is an update that
/// appends to `spec.decisions`, which only the deciding team's members may make.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "api.corbel.dev",
        version = "v1alpha1",
        kind = "Approval",
        namespaced,
        status = "ApprovalStatus",
        doc = "The decisions on one ApiSubscription (who, when, why) and the state they lead to under the exposure's strategy.",
        printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
        printcolumn(name = "Strategy", type_ = "string", json_path = ".spec.strategy"),
        printcolumn(name = "Team", type_ = "string", json_path = ".spec.decidingTeam"),
        printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalSpec {
    pub strategy: Strategy,
    /// The group whose members decide (the provider team).
    pub deciding_team: String,
    /// Who asked for the subscription; they may not grant it.
    #[serde(default)]
    pub requester: String,
    pub base_path: String,
    pub application_ref: NamespacedRef,
    /// Oldest first. Append one per update; earlier ones never change.
    #[serde(default)]
    pub decisions: Vec<Decision>,
    /// How long a grant lasts (the exposure's `approval.grantValidSeconds` when this was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_valid_seconds: Option<u64>,
}

/// One person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub decision: Verdict,
    /// Who decided: the request's user (filled in by the mutating binding when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When (RFC 3339; filled in by the mutating binding when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub enum Verdict {
    Grant,
    Reject,
    /// Revokes a grant; a later Grant (two, for FourEyes) restores it.
    Suspend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub enum State {
    Pending,
    Granted,
    Rejected,
    Suspended,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Granted => "Granted",
            State::Rejected => "Rejected",
            State::Suspended => "Suspended",
            State::Expired => "Expired",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// An object of the same namespace, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub struct LocalRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
}

/// An object by namespace and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub struct NamespacedRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub namespace: String,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
}

/// The conditions every plugin's kinds share (one schema for all CRDs).
pub use corbel_sdk::crd::Condition;
