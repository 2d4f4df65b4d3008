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

/// The controller's manifest. Owned objects reconcile their owner: a Client's, Route's,
/// Approval's or ConsumeRoute's status reaches the Application, exposure or subscription that
/// made it. A subscription's Application is in another namespace, which watches do not cross,
/// so subscriptions look again every `resyncSeconds`; an exposure change reconciles nothing
/// else either (they are found by base path), and is noticed the same way.
pub const MANIFEST: &str = r#"
reconciles:
  - apiVersion: api.corbel.dev/v1alpha1
    kind: Application
    owns:
      - {apiVersion: identity.corbel.dev/v1alpha1, kind: Client}
  - apiVersion: api.corbel.dev/v1alpha1
    kind: ApiExposure
    owns:
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Route}
  - apiVersion: api.corbel.dev/v1alpha1
    kind: ApiSubscription
    owns:
      - {apiVersion: api.corbel.dev/v1alpha1, kind: Approval}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: Consumer}
      - {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute}
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

/// Seconds since the Unix epoch as RFC 3339 UTC (`2026-12-05T06:00:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_writes_utc_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_450_400), "2026-12-05T06:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
