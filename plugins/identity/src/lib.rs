//! Corbel identity controller: machine-to-machine clients, reconciled from `IdentityProvider`,
//! `Realm` and `Client` objects (group `identity.corbel.dev`, [`api`]) into Keycloak
//! ([`keycloak`], its admin REST API) or any OpenID provider ([`oidc`], discovery and dynamic
//! client registration, RFC 7591/7592). Each Client's credentials are delivered as a Secret the
//! Client owns, and rotated with an overlap ([`reconcile`]). The same component validates the
//! kinds when bound as a validating policy ([`admission`]).
//!
//! - [`backend`]: the HTTP transport and error sorting the drivers share.
//! - [`MANIFEST`] here; the SDK glue and the environment the host provides in `component`.

pub mod admission;
pub mod api;
pub mod backend;
mod component;
#[cfg(not(target_arch = "wasm32"))]
pub mod crd;
pub mod keycloak;
pub mod oidc;
pub mod reconcile;

pub use component::WasiHttp;

/// The controller's manifest: what it reconciles, owns and watches, and the capabilities it
/// asks for. Secrets are written only as children of a Client (the host sets the
/// ownerReference and refuses others); with no read grant for Secrets, `resources` reads only
/// those children. Admin credentials and initial access tokens come through `secrets`.
pub const MANIFEST: &str = r#"
reconciles:
  - apiVersion: identity.corbel.dev/v1alpha1
    kind: Client
    owns: [{apiVersion: v1, kind: Secret}]
    watches:
      # A change to a Realm (its Ready condition, its issuer) reconciles its Clients.
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: Realm, referencedBy: spec.realmRef.name}
  - apiVersion: identity.corbel.dev/v1alpha1
    kind: Realm
    watches:
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: IdentityProvider, referencedBy: spec.providerRef.name}
  - apiVersion: identity.corbel.dev/v1alpha1
    kind: IdentityProvider
capabilities:
  secrets: true
  http: true
  resources:
    read:
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: IdentityProvider}
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: Realm}
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: Client}
    write: [{apiVersion: v1, kind: Secret}]
"#;
