//! The plugin registry: plugins published to and installed from OCI registries, pinned by digest in
//! a lock file, verified (digests always, cosign-format signatures against trusted keys), kept in a
//! content-addressed cache with their compiled artifacts, so that `corbel serve` starts offline.
//!
//! - [`client`]: references, credentials, TLS; push, resolve, pull, signatures over the wire
//! - [`artifact`]: the Wasm OCI artifact layouts (written: CNCF `wasm.config.v0`; read: v0 and v1)
//! - [`signature`]: cosign's keyed signature format, key files
//! - [`cache`]: the cap-std cache of components and compiled artifacts
//! - [`lock`]: `corbel.lock`, reference → digest
//! - [`plugins`]: install, list, remove, and the component a binding's `oci://` reference names

pub mod artifact;
pub mod cache;
pub mod client;
pub mod lock;
pub mod plugins;
pub mod signature;

/// Everything that can go wrong between a registry and the cache. Each message says what was
/// wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{reference:?} is not a valid OCI reference ({why}); write e.g. oci://registry.example:5000/policies/name:v1 or …/name@sha256:<64 hex>"
    )]
    InvalidReference { reference: String, why: String },
    #[error("{0:?} is not a sha256 digest (sha256: and 64 lowercase hex digits)")]
    InvalidDigest(String),
    #[error(
        "registry {registry} refused the credentials ({why}); pass --username and --password-stdin, or log in with `docker login {registry}`"
    )]
    Auth { registry: String, why: String },
    #[error(
        "{reference} was not found in the registry; check the repository and tag (`skopeo list-tags docker://REPOSITORY`)"
    )]
    NotFound { reference: String },
    #[error("registry error for {reference}: {why}")]
    Registry { reference: String, why: String },
    #[error(
        "the {what} does not match its digest: expected {expected}, got {actual}; the registry (or something between it and this host) served different bytes than it advertises, so nothing was stored"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{reference} is not a Corbel plugin: {why}")]
    NotAPlugin { reference: String, why: String },
    #[error(
        "{reference} holds a core WebAssembly module, not a component: Corbel loads components (build for wasm32-wasip2, or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule { reference: String },
    #[error(
        "{reference} ({digest}) is not signed: sign it with `corbel plugin sign {reference} --key KEY` (or cosign), or allow unsigned plugins from this repository with registry.allowUnsigned"
    )]
    Unsigned { reference: String, digest: String },
    #[error(
        "{reference} ({digest}) has signatures, but none verifies: {why}; check registry.trustedKeys"
    )]
    BadSignature {
        reference: String,
        digest: String,
        why: String,
    },
    #[error(
        "no trusted keys are configured, so {reference} cannot be verified; add registry.trustedKeys (PEM public keys, like cosign.pub) or list it in registry.allowUnsigned"
    )]
    NoTrustedKeys { reference: String },
    #[error("key file {path} {why}")]
    Key { path: String, why: String },
    #[error("CA file {path} {why}")]
    Tls { path: String, why: String },
    #[error("docker config {path} {why}")]
    DockerConfig { path: String, why: String },
    #[error(
        "plugin cache {path}: {source}; check its permissions, or delete it (components are pulled again with `corbel plugin install`)"
    )]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lock file {path} {why}")]
    Lock { path: String, why: String },
    #[error(
        "{reference} is not installed: run `corbel plugin install {reference}` (serve never pulls, so it starts without a network)"
    )]
    NotInstalled { reference: String },
    #[error("no installed plugin is named {name:?}; `corbel plugin list` shows the names")]
    UnknownName { name: String },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
