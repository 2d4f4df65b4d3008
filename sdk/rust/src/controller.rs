//! Controllers: reconcile Kubernetes objects into the world outside (an S3 store, a gateway, an
//! identity provider), in a fresh sandbox per call.
//!
//! Implement [`Controller`] and export it with [`export_controller!`](crate::export_controller).
//! The host calls [`Controller::reconcile`] whenever an object of a kind your manifest names (or
//! something it owns or watches) changes, and [`Controller::cleanup`] once it is being deleted.
//! Keep no state between calls: read what you need from the object, from [`crate::secrets`] and
//! [`crate::resources`], and from the backend over [`crate::http`]; record what you did in the
//! status of the [`Outcome`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Request, Verdict};

/// A controller plugin.
pub trait Controller {
    /// The controller's settings, parsed from the JSON the operator configured (`{}` when none).
    type Settings: DeserializeOwned;

    /// The manifest as YAML or JSON: the kinds reconciled, owned and watched, and the
    /// capabilities requested. See `docs/plugins.md`.
    const MANIFEST: &'static str;

    /// Called once at load. Return an error to refuse the settings.
    fn validate_settings(_settings: &Self::Settings) -> Result<(), String> {
        Ok(())
    }

    /// Brings the world in line with `object` (the whole object; use [`Object`]'s helpers).
    fn reconcile(object: &Object, settings: &Self::Settings) -> Result<Outcome, ReconcileError>;

    /// Releases what `object` holds, once it is being deleted. Returning `Ok` lets the object go.
    fn cleanup(_object: &Object, _settings: &Self::Settings) -> Result<Outcome, ReconcileError> {
        Ok(Outcome::default())
    }

    /// Admission for the controller's own kinds, when bound as a validating policy. Allows
    /// everything unless overridden.
    fn validate(_request: &Request, _settings: &Self::Settings) -> Result<Verdict, Error> {
        Ok(Verdict::allow())
    }

    /// Admission for the controller's own kinds, when bound as a mutating policy.
    fn mutate(_request: &Request, _settings: &Self::Settings) -> Result<Verdict, Error> {
        Ok(Verdict::allow())
    }
}

/// The object being reconciled, as JSON, with helpers for the usual fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(pub Value);

impl Object {
    pub fn parse(json: &str) -> Result<Object, ReconcileError> {
        serde_json::from_str(json).map(Object).map_err(|e| {
            ReconcileError::permanent("InvalidObject", format!("the object is not JSON: {e}"))
        })
    }

    pub fn name(&self) -> &str {
        self.0["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.0["metadata"]["namespace"].as_str()
    }

    pub fn uid(&self) -> &str {
        self.0["metadata"]["uid"].as_str().unwrap_or_default()
    }

    pub fn generation(&self) -> Option<i64> {
        self.0["metadata"]["generation"].as_i64()
    }

    /// `status`, or `null`.
    pub fn status(&self) -> &Value {
        &self.0["status"]
    }

    /// `spec` parsed into your type; a spec that does not fit is a permanent error (the object
    /// must change before retrying can help).
    pub fn spec<T: DeserializeOwned>(&self) -> Result<T, ReconcileError> {
        serde_json::from_value(self.0.get("spec").cloned().unwrap_or(Value::Null)).map_err(|e| {
            ReconcileError::permanent("InvalidSpec", format!("spec does not fit: {e}"))
        })
    }
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

/// A status condition; the host adds `lastTransitionTime` and `observedGeneration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: String,
    pub status: Status,
    pub reason: String,
    pub message: String,
}

/// A Kubernetes Event about the reconciled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
}

impl Event {
    pub fn normal(reason: &str, action: &str, note: impl Into<String>) -> Event {
        Event {
            warning: false,
            reason: reason.into(),
            action: action.into(),
            note: note.into(),
        }
    }

    pub fn warning(reason: &str, action: &str, note: impl Into<String>) -> Event {
        Event {
            warning: true,
            ..Event::normal(reason, action, note)
        }
    }
}

/// What a successful call asks the host to do. The default: nothing to record, `Ready=True`,
/// and no requeue until something changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub status: Option<Value>,
    pub conditions: Vec<Condition>,
    pub requeue_after: Option<Duration>,
    pub events: Vec<Event>,
}

impl Outcome {
    /// Fields to merge into the status (a JSON object; `null` fields are removed).
    pub fn status(mut self, status: Value) -> Outcome {
        self.status = Some(status);
        self
    }

    pub fn condition(
        mut self,
        type_: &str,
        status: Status,
        reason: &str,
        message: impl Into<String>,
    ) -> Outcome {
        self.conditions.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        });
        self
    }

    /// Reconcile again after this long even if nothing changes (to notice drift).
    pub fn requeue_after(mut self, after: Duration) -> Outcome {
        self.requeue_after = Some(after);
        self
    }

    pub fn event(mut self, event: Event) -> Outcome {
        self.events.push(event);
        self
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileError {
    /// Retrying may help: the host sets `Ready=False` and retries with backoff.
    Transient {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help until the object changes: the host sets `Blocked=True`.
    Permanent {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl ReconcileError {
    /// `reason` is one CamelCase word, such as `BackendUnreachable`.
    pub fn transient(reason: &str, message: impl Into<String>) -> ReconcileError {
        ReconcileError::Transient {
            reason: reason.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(reason: &str, message: impl Into<String>) -> ReconcileError {
        ReconcileError::Permanent {
            reason: reason.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Transient: retry after this long instead of the host's backoff. Permanent: look again
    /// after this long even if the object does not change.
    pub fn retry_after(self, after: Duration) -> ReconcileError {
        match self {
            ReconcileError::Transient {
                reason, message, ..
            } => ReconcileError::Transient {
                reason,
                message,
                retry_after: Some(after),
            },
            ReconcileError::Permanent {
                reason, message, ..
            } => ReconcileError::Permanent {
                reason,
                message,
                retry_after: Some(after),
            },
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            ReconcileError::Transient { reason, .. } | ReconcileError::Permanent { reason, .. } => {
                reason
            }
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ReconcileError::Transient { message, .. }
            | ReconcileError::Permanent { message, .. } => message,
        }
    }
}

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason(), self.message())
    }
}

impl std::error::Error for ReconcileError {}

/// A refused capability is the operator's business (a missing grant) and retrying will not help;
/// an unavailable API may come back.
impl From<crate::CapabilityError> for ReconcileError {
    fn from(e: crate::CapabilityError) -> Self {
        use crate::CapabilityError::*;
        match &e {
            AccessDenied(_) => ReconcileError::permanent("AccessDenied", e.to_string()),
            Invalid(_) => ReconcileError::permanent("Invalid", e.to_string()),
            NotFound(_) => ReconcileError::transient("NotFound", e.to_string()),
            Conflict(_) => ReconcileError::transient("Conflict", e.to_string()),
            Unavailable(_) => ReconcileError::transient("ApiUnavailable", e.to_string()),
        }
    }
}

/// Exports a [`Controller`] implementation as the component's `corbel:plugin/reconciler` and
/// `corbel:plugin/admission` interfaces. Use it once per plugin crate, at the crate root, with
/// the SDK's `controller` feature on (which makes the component a `controller`, not a `policy`).
#[macro_export]
macro_rules! export_controller {
    ($controller:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __CorbelExportedController = $crate::__private::ControllerAdapter<$controller>;
            $crate::__private::__export_controller_world!(__CorbelExportedController with_types_in $crate::__private::bindings);
        };
    };
}

/// The resync and blocked-retry settings most controllers take (`resyncSeconds`,
/// `blockedRetrySeconds`), with their defaults and check, for a controller's `Settings` type (as
/// is, or as a re-export).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timing {
    /// Look at every object again after this long, to notice a backend that went down or a
    /// change made behind the controller's back.
    #[serde(default = "default_resync")]
    pub resync_seconds: u64,
    /// How soon a blocked object (credentials refused, a dependency not ready) is looked at again
    /// even if it does not change: what it waits on is often outside the object.
    #[serde(default = "default_blocked_retry")]
    pub blocked_retry_seconds: u64,
}

fn default_resync() -> u64 {
    300
}

fn default_blocked_retry() -> u64 {
    30
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            resync_seconds: default_resync(),
            blocked_retry_seconds: default_blocked_retry(),
        }
    }
}

impl Timing {
    /// For `validate-settings`: both at least one second.
    pub fn check(&self) -> Result<(), String> {
        if self.resync_seconds == 0 || self.blocked_retry_seconds == 0 {
            return Err("resyncSeconds and blockedRetrySeconds must be at least 1".into());
        }
        Ok(())
    }

    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds)
    }

    pub fn blocked_retry(&self) -> Duration {
        Duration::from_secs(self.blocked_retry_seconds)
    }
}

/// RFC 3339 in UTC for `seconds` since the Unix epoch (`2026-12-05T06:00:00Z`), for timestamps a
/// controller records in status or in objects it writes (days to civil date: Howard Hinnant's
/// method, so no date crate reaches the component).
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
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

/// Seconds since the Unix epoch of an RFC 3339 time (`2026-12-05T06:00:00Z`, with an optional
/// fraction, ignored, and `Z` or a `±hh:mm` offset), the inverse of [`rfc3339`]; `None` when the
/// text is not one or falls before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return None;
        }
        rest = &fraction[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    // Civil date to days (Howard Hinnant's method, the inverse of the one in `rfc3339`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(seconds).ok()
}

#[cfg(test)]
mod rfc3339_tests {
    #[test]
    fn rfc3339_reads_what_it_writes_and_refuses_what_is_not_a_time() {
        for seconds in [0, 951_782_400, 1_796_450_400, 4_102_444_799] {
            assert_eq!(
                super::parse_rfc3339(&super::rfc3339(seconds)),
                Some(seconds)
            );
        }
        assert_eq!(
            super::parse_rfc3339("2026-12-05T07:00:00.123+01:00"),
            Some(1_796_450_400)
        );
        for bad in [
            "",
            "2026-12-05",
            "2026-13-05T00:00:00Z",
            "2026-12-05T06:00:00",
            "1969-12-31T23:59:59Z",
            "2026-12-05T06:00:00+0100",
        ] {
            assert_eq!(super::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_writes_utc_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_450_400), "2026-12-05T06:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
