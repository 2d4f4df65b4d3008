//! Corbel API management: `Application`, `ApiExposure`, `ApiSubscription` and `Approval`
//! (group `api.corbel.dev`, [`api`]), composed from the identity and gateway domains through
//! the objects it creates: an Application owns an identity `Client` (its credentials Secret
//! comes with it), an ApiExposure a gateway `Route`, an ApiSubscription its `Approval`, a
//! gateway `Consumer` and, while Granted, a `ConsumeRoute` ([`reconcile`]). The identity and
//! gateway controllers take it from there: registration at the OpenID provider, Envoy over xDS.
//!
//! Who subscribes and who decides is admission's part ([`admission`]): the request's user is
//! the requester or the decider, and [`approval`] says what decisions a person may add and what
//! they add up to. Docs: `docs/api-management.md`.

pub mod admission;
pub mod api;
pub mod approval;
mod component;
#[cfg(not(target_arch = "wasm32"))]
pub mod crd;
pub mod reconcile;
pub mod settings;

/// The controller's manifest. Owned objects reconcile their owner: a Client's, Approval's or
/// ConsumeRoute's status reaches the Application or subscription that made it, and a Route's
/// conditions and URL the exposure of the same name. A subscription watches its Application in
/// the consumer team's namespace (`namespaceField`), so the Application's client id, readiness and
/// deletion reach it at once; an exposure change reconciles no subscription (they are found by
/// base path), and is noticed at the next `resyncSeconds`.
pub const MANIFEST: &str = r#"
reconciles:
  - apiVersion: api.corbel.dev/v1alpha1
    kind: Application
    owns:
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: Client}
  - apiVersion: api.corbel.dev/v1alpha1
    kind: ApiExposure
    # Its Route (same name, owned) is watched rather than listed under owns, so that only what
    # the exposure reads of it (conditions, url) reconciles it, not every grant's change to the
    # Route's consumers.
    watches:
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Route, parentField: metadata.name, statusFields: [conditions, url]}
  - apiVersion: api.corbel.dev/v1alpha1
    kind: ApiSubscription
    owns:
      - {apiVersion: api.corbel.dev/v1alpha1, kind: Approval}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Consumer}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute}
    watches:
      - {apiVersion: api.corbel.dev/v1alpha1, kind: Application, referencedBy: spec.applicationRef.name,
         namespaceField: spec.applicationRef.namespace, statusFields: [conditions, clientId]}
  - apiVersion: api.corbel.dev/v1alpha1
    kind: Approval
capabilities:
  resources:
    read:
      - {apiVersion: api.corbel.dev/v1alpha1, kind: Application}
      - {apiVersion: api.corbel.dev/v1alpha1, kind: ApiExposure}
    write:
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: Client}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Route}
      - {apiVersion: api.corbel.dev/v1alpha1, kind: Approval}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Consumer}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute}
"#;
