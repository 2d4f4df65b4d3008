//! The storage API, group `storage.corbel.dev`, version `v1alpha1`: [`ObjectStoreSpec`] (where a
//! store is and which Secret holds its keys) and [`BucketSpec`] (a bucket on one store, with its
//! lifecycle and CORS rules).
//!
//! In the component these are plain serde types. Natively they also derive kube's
//! `CustomResource` and schemars' `JsonSchema`, which is where `deploy/crds/` comes from
//! ([`crate::crd`]); those derives never reach the `.wasm`.

use serde::{Deserialize, Serialize};

#[cfg(not(target_arch = "wasm32"))]
use kube::CustomResource;
#[cfg(not(target_arch = "wasm32"))]
use schemars::JsonSchema;

pub const GROUP: &str = "storage.corbel.dev";
pub const VERSION: &str = "v1alpha1";

/// An S3-compatible store and the access key the controller uses on it.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "storage.corbel.dev",
        version = "v1alpha1",
        kind = "ObjectStore",
        namespaced,
        status = "ObjectStoreStatus",
        doc = "An S3-compatible object store, and the Secret holding the access key Buckets on it are managed with.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// The S3 endpoint, `http://host:port` or `https://host`, without a path: buckets are
    /// addressed path-style right after it.
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(regex(pattern = r"^https?://[^/?#@]+/?$"))
    )]
    pub endpoint: String,
    /// The region requests are signed for; it must be the store's own (Garage's `s3_region`).
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub region: String,
    pub credentials_secret_ref: SecretKeysRef,
}

/// A Secret in the ObjectStore's namespace, and the keys of its data holding the access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretKeysRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "accessKeyId".into()
}

fn default_secret_access_key_key() -> String {
    "secretAccessKey".into()
}

/// What the controller last saw of an ObjectStore. The host writes `conditions` and
/// `observedGeneration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The endpoint as the controller reached it (normalized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A bucket on an ObjectStore of the same namespace.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(CustomResource, JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    kube(
        group = "storage.corbel.dev",
        version = "v1alpha1",
        kind = "Bucket",
        namespaced,
        status = "BucketStatus",
        doc = "A bucket on an ObjectStore, with its lifecycle and CORS rules.",
        printcolumn(
            name = "Ready",
            type_ = "string",
            json_path = ".status.conditions[?(@.type==\"Ready\")].status"
        ),
        printcolumn(name = "Bucket", type_ = "string", json_path = ".status.bucketName"),
        printcolumn(
            name = "Age",
            type_ = "date",
            json_path = ".metadata.creationTimestamp"
        )
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// The ObjectStore (same namespace) the bucket lives on. Immutable.
    pub object_store_ref: ObjectStoreRef,
    /// The bucket's name on the store; `metadata.name` when absent. Immutable. S3's rules:
    /// 3 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// Objects expire after a number of days, all of them or those under a prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle: Vec<LifecycleRule>,
    /// Which browser origins may use the bucket, and how.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<CorsRule>,
    /// What deleting the Bucket does to the bucket: `Retain` (the default) keeps it and its
    /// objects; `Delete` deletes it, and only once it is empty.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub struct ObjectStoreRef {
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub name: String,
}

/// Objects (under `prefix`, or all of them) expire `expirationDays` after they were written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    /// Unique among the rules; `expire-<n>` (by position) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1, max = 255)))]
    pub id: Option<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 1)))]
    pub expiration_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Browsers from `allowedOrigins` may use `allowedMethods` with `allowedHeaders`, read
/// `exposeHeaders`, and cache the preflight answer for `maxAgeSeconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub allowed_origins: Vec<String>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(length(min = 1)))]
    pub allowed_methods: Vec<CorsMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
}

/// The methods S3 allows in a CORS rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum CorsMethod {
    Get,
    Put,
    Post,
    Delete,
    Head,
}

impl CorsMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CorsMethod::Get => "GET",
            CorsMethod::Put => "PUT",
            CorsMethod::Post => "POST",
            CorsMethod::Delete => "DELETE",
            CorsMethod::Head => "HEAD",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// What the controller last did with a Bucket. The host writes `conditions` and
/// `observedGeneration`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BucketStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The bucket's effective name on the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
    /// The store's endpoint (normalized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The conditions every plugin's kinds share (one schema for all CRDs).
pub use corbel_sdk::crd::Condition;

impl BucketSpec {
    /// The bucket's name on the store: `bucketName`, or the object's name.
    pub fn effective_name<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.bucket_name.as_deref().unwrap_or(metadata_name)
    }
}
