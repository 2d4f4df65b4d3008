//! Corbel gateway controller: the API-management domain. `Gateway`, `Route`, `Consumer` and
//! `ConsumeRoute` objects (group `gateway.corbel.dev`, [`api`]) are translated into Envoy
//! configuration ([`translate`]) that the host's generic xDS server serves to the Gateway's
//! instances; the same component validates them when bound as a validating policy
//! ([`admission`]).
//!
//! - [`api`]: the kinds, as serde types (and natively as kube `CustomResource`s, [`crd`]).
//! - [`translate`]: kinds in, Envoy resources (proto-JSON) and per-Route results out.
//! - [`reconcile`]: what a reconcile decides, over a [`reconcile::Cluster`].
//! - [`kong`]: `driver: kong`, the same kinds as Kong Admin API entities.
//! - [`MANIFEST`] here; the SDK glue in `component`.

pub mod admission;
pub mod api;
mod component;
#[cfg(not(target_arch = "wasm32"))]
pub mod crd;
pub mod kong;
pub mod reconcile;
pub mod translate;

/// The controller's manifest. The Gateway owns its `XdsSnapshot`s (a head and one per Route; the
/// host's xDS server serves their union, and writes Envoy's ACKs and NACKs into the head's
/// status, which reconciles the Gateway again: that reconcile finds its inputs as it translated
/// them, `reconcile::inputs_digest`, and only reads the versions); a change to a Route or Consumer of a Gateway
/// reconciles the Gateway, which translates again and rewrites the objects that changed. Routes are reconciled for their own status: a ConsumeRoute change reconciles its
/// Route, whose `status.consumers` then changes, which reconciles the Gateway (ConsumeRoutes
/// name no Gateway, so this is their path to it). A Gateway change (its spec, its
/// `rejectedRoutes` or its `conflictingRoutes`) reconciles its Routes. `statusFields` names the status each side reads, so
/// the Gateway's counters and versions, written after each reconcile, reconcile no Route.
pub const MANIFEST: &str = r#"
reconciles:
  - apiVersion: gateway.corbel.dev/v1alpha1
    kind: Gateway
    owns:
      - {apiVersion: xds.corbel.dev/v1alpha1, kind: XdsSnapshot}
    watches:
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Route, parentField: spec.gatewayRef.name, statusFields: [consumers]}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Consumer, parentField: spec.gatewayRef.name, statusFields: []}
  - apiVersion: gateway.corbel.dev/v1alpha1
    kind: Route
    watches:
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Gateway, referencedBy: spec.gatewayRef.name, statusFields: [rejectedRoutes, conflictingRoutes]}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute, parentField: spec.routeRef.name}
capabilities:
  resources:
    read:
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Gateway}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Route}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Consumer}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute}
      - {apiVersion: xds.corbel.dev/v1alpha1, kind: XdsSnapshot}
    write:
      - {apiVersion: xds.corbel.dev/v1alpha1, kind: XdsSnapshot}
  # driver: kong only: Kong's admin token, Kong's Admin API and the issuers' JWKS.
  secrets: true
  http: true
"#;
