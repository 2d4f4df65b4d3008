//! Corbel storage controller: reconciles `ObjectStore` and `Bucket` objects (group
//! `storage.corbel.dev`, [`api`]) into buckets on an S3-compatible store, and validates them
//! when the same component is bound as a validating policy ([`admission`]).
//!
//! - [`api`]: the kinds, as serde types (and natively as kube `CustomResource`s, [`crd`]).
//! - [`reconcile`]: what a reconcile and a cleanup decide, over an [`reconcile::Env`].
//! - [`s3`]: the S3 client (SigV4) over a [`s3::Transport`].
//! - [`MANIFEST`] here; the SDK glue and the environment the host provides (capabilities,
//!   wasi:http through [`WasiHttp`]) in `component`.

pub mod admission;
pub mod api;
mod component;
#[cfg(not(target_arch = "wasm32"))]
pub mod crd;
pub mod reconcile;
pub mod s3;

pub use component::WasiHttp;

/// The controller's manifest: what it reconciles and watches, and the capabilities it asks for.
pub const MANIFEST: &str = r#"
reconciles:
  - apiVersion: storage.corbel.dev/v1alpha1
    kind: Bucket
    watches:
      # A change to an ObjectStore (its spec, or its Ready condition) reconciles its Buckets.
      - {apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore, referencedBy: spec.objectStoreRef.name}
  - apiVersion: storage.corbel.dev/v1alpha1
    kind: ObjectStore
    # Its credentials outlive it: deleting the namespace cannot take them before the cleanups
    # of its Buckets (which wait for, and need, them) have run.
    holdsSecrets: [spec.credentialsSecretRef.name]
capabilities:
  secrets: true
  http: true
  resources:
    read:
      - {apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore}
      # An ObjectStore's cleanup waits while Buckets name it.
      - {apiVersion: storage.corbel.dev/v1alpha1, kind: Bucket}
"#;
