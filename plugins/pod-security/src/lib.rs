//! `pod-security`: enforces the Kubernetes Pod Security Standards (`baseline` or `restricted`, at
//! a policy version: `latest` as of Kubernetes v1.33 by default, or `v1.N`) on Pods and on the pod
//! templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs,
//! ReplicationControllers and PodTemplates.
//!
//! The verdict and the denial message follow Kubernetes' own Pod Security Admission:
//! `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app"
//! must set securityContext.allowPrivilegeEscalation=false), ...`, each failed check as
//! `reason (detail)`, in PSA's check order. The checks and their versions are in [`checks`].

pub mod checks;

use corbel_sdk::objects::{pod_metadata, pod_spec, pod_spec_pointer};
use corbel_sdk::{Error, Operation, Policy, Request, Verdict, export_policy};
use serde::Deserialize;
use serde_json::Value;

use crate::checks::{Failure, PodView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `"baseline"` or `"restricted"`.
    #[serde(default)]
    pub level: String,
    /// The policy version, as in the namespace label `pod-security.kubernetes.io/enforce-version`:
    /// `"latest"` (the default) or `"v1.N"`.
    #[serde(default)]
    pub version: String,
}

/// A Pod Security Admission policy version: `latest`, or `v1.N` (the checks as they were
/// defined for Kubernetes v1.N; a version newer than this policy knows is evaluated as `latest`,
/// as PSA does, and still named as given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Latest,
    V1(u32),
}

impl Version {
    /// Parses a version as PSA does: `latest` or `v1.<minor>`, the minor without leading zeros.
    pub fn parse(version: &str) -> Result<Self, String> {
        if version.is_empty() || version == "latest" {
            return Ok(Version::Latest);
        }
        version
            .strip_prefix("v1.")
            .filter(|minor| minor == &"0" || !minor.starts_with('0'))
            .filter(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|minor| minor.parse().ok())
            .map(Version::V1)
            .ok_or_else(|| {
                format!(
                    "`version` {version:?} is not a Pod Security Admission policy version: use \"latest\" or \"v1.N\" such as \"v1.29\" (the namespace label pod-security.kubernetes.io/enforce-version)"
                )
            })
    }

    /// The minor version whose checks apply (`u32::MAX` for `latest`).
    pub fn minor(self) -> u32 {
        match self {
            Version::Latest => u32::MAX,
            Version::V1(minor) => minor,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A Pod Security Standards level this policy enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(level: &str) -> Result<Self, String> {
        match level {
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            "" => Err(
                "`level` is missing: set {\"level\": \"baseline\"} or {\"level\": \"restricted\"}"
                    .into(),
            ),
            "privileged" => Err(
                "`level` \"privileged\" allows everything: bind no policy instead, or use \"baseline\" or \"restricted\""
                    .into(),
            ),
            other => Err(format!(
                "`level` {other:?} is not a Pod Security Standards level: use \"baseline\" or \"restricted\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// Runs the checks of `level` at `version` on a pod (template) and returns the failed ones, in
/// PSA's order. Each is recorded under its PSA check ID (`corbel_sdk::check`), so a traced denial
/// names the checks that failed.
pub fn evaluate(level: Level, version: Version, pod: PodView<'_>) -> Vec<Failure> {
    checks::checks_for(level == Level::Restricted, version.minor())
        .into_iter()
        .filter_map(|(id, check)| {
            let failure = check(pod);
            match &failure {
                None => corbel_sdk::check(id, true, ""),
                Some(f) => corbel_sdk::check(id, false, &reason_and_detail(f)),
            };
            failure
        })
        .collect()
}

/// PSA's `reason (detail)` of one failed check.
fn reason_and_detail(f: &Failure) -> String {
    if f.detail.is_empty() {
        f.reason.clone()
    } else {
        format!("{} ({})", f.reason, f.detail)
    }
}

/// PSA's denial message for failed checks:
/// `violates PodSecurity "<level>:<version>": reason (detail), ...`.
pub fn denial_message(level: Level, version: Version, failures: &[Failure]) -> String {
    let failures: Vec<String> = failures.iter().map(reason_and_detail).collect();
    format!(
        "violates PodSecurity \"{}:{version}\": {}",
        level.as_str(),
        failures.join(", ")
    )
}

/// The one Pod subresource whose requests are checked: it adds containers. Requests for any other
/// subresource (`status`, `binding`, `eviction`, `resize`, ...) are admitted; PSA admits them too,
/// as they cannot change a container image or add a container.
const CHECKED_POD_SUBRESOURCE: &str = "ephemeralcontainers";

pub struct PodSecurity;

impl Policy for PodSecurity {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        Level::parse(&settings.level)?;
        Version::parse(&settings.version).map(|_| ())
    }

    fn validate(request: &Request, settings: &Settings) -> Result<Verdict, Error> {
        let level = Level::parse(&settings.level).map_err(Error::new)?;
        let version = Version::parse(&settings.version).map_err(Error::new)?;
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return Ok(Verdict::allow());
        }
        let kind = request.kind.kind.as_str();
        if pod_spec_pointer(kind).is_none() {
            return Ok(Verdict::allow());
        }
        let is_pod = kind == "Pod";
        match request.sub_resource.as_deref() {
            None | Some("") => {}
            Some(CHECKED_POD_SUBRESOURCE) if is_pod => {}
            Some(_) => return Ok(Verdict::allow()),
        }
        let object = request
            .object()
            .ok_or_else(|| Error::new(format!("the {kind} request carries no object")))?;

        if is_pod && request.operation == Operation::Update {
            // Like PSA: an update that changes nothing the policy depends on (only the images
            // and new ephemeral containers can change) is admitted without evaluation.
            if let Some(old) = request.old_object()
                && !is_significant_pod_update(object, old)
            {
                return Ok(Verdict::allow());
            }
        }

        static NULL: Value = Value::Null;
        let spec = match pod_spec(kind, object) {
            Some(spec) => spec,
            // A Pod without a spec is evaluated as an empty one; a workload without a pod
            // template has nothing to check.
            None if is_pod => &NULL,
            None => return Ok(Verdict::allow()),
        };
        let metadata = pod_metadata(kind, object).unwrap_or(&NULL);
        let failures = evaluate(level, version, PodView { metadata, spec });
        if failures.is_empty() {
            return Ok(Verdict::allow());
        }
        Ok(Verdict::deny(denial_message(level, version, &failures)))
    }
}

/// PSA's `isSignificantPodUpdate`: whether a Pod update can change the verdict. Pod specs are
/// mostly immutable; what may change is the container images, the per-container seccomp
/// annotations, and the list of ephemeral containers.
pub fn is_significant_pod_update(pod: &Value, old_pod: &Value) -> bool {
    fn items<'a>(pod: &'a Value, field: &str) -> &'a [Value] {
        pod.get("spec")
            .and_then(|spec| spec.get(field))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    fn text<'a>(object: &'a Value, key: &str) -> &'a str {
        object.get(key).and_then(Value::as_str).unwrap_or("")
    }
    fn annotation<'a>(pod: &'a Value, key: &str) -> &'a str {
        pod.get("metadata")
            .and_then(|m| m.get("annotations"))
            .map_or("", |a| text(a, key))
    }
    let significant_container = |c: &Value, old: &Value| {
        let key = format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            text(c, "name")
        );
        text(c, "image") != text(old, "image") || annotation(pod, &key) != annotation(old_pod, &key)
    };

    for field in ["containers", "initContainers"] {
        let (new, old) = (items(pod, field), items(old_pod, field));
        if new.len() != old.len()
            || new
                .iter()
                .zip(old)
                .any(|(c, o)| significant_container(c, o))
        {
            return true;
        }
    }
    let old_ephemeral = items(old_pod, "ephemeralContainers");
    items(pod, "ephemeralContainers").iter().any(|c| {
        match old_ephemeral
            .iter()
            .find(|o| text(o, "name") == text(c, "name"))
        {
            None => true, // an ephemeral container was added
            Some(o) => significant_container(c, o),
        }
    })
}

export_policy!(PodSecurity);

#[cfg(test)]
mod tests;
