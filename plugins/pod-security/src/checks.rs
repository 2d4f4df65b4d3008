//! The Pod Security Standards checks, one function each, as Kubernetes' Pod Security Admission
//! (`k8s.io/pod-security-admission/policy`, Kubernetes v1.33) defines them. Each check reads the
//! pod (template) metadata and spec as JSON and returns `None` when the pod passes, or the
//! `forbiddenReason` and `forbiddenDetail` PSA reports when it fails.
//!
//! PSA versions its checks by *policy version* (`pod-security.kubernetes.io/enforce-version`):
//! each check has a list of implementations, each from a minimum version on; a policy version
//! runs, of every check, the implementation with the highest minimum version not above it, and
//! skips the checks whose first implementation is newer. [`CHECKS`] is that history, and
//! [`checks_for`] picks from it as PSA's registry does. A check changed *in place* upstream (no new
//! minimum version) is changed for every policy version: the AppArmor field check and its wording
//! (Kubernetes v1.30) and the `image` volumes of `restrictedVolumes` (v1.33) are such changes.
//!
//! PSA runs its checks ordered by check ID: the baseline IDs sorted, then the restricted IDs
//! sorted. At restricted level the baseline checks that the chosen restricted implementations
//! override (`hostPathVolumes`, and from their first versions on `capabilities_baseline` and
//! `seccompProfile_baseline`) do not run.

use std::collections::BTreeSet;

use corbel_sdk::objects::containers;
use serde_json::Value;

/// A failed check: PSA's `forbiddenReason` and `forbiddenDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub detail: String,
}

impl Failure {
    fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// The part of a Pod (or pod template) the checks read: its metadata and its spec. Either may be
/// `Value::Null` when the object has none.
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    pub metadata: &'a Value,
    pub spec: &'a Value,
}

pub type Check = fn(PodView<'_>) -> Option<Failure>;

/// A check with PSA's check ID, the name a trace gives it (`corbel_sdk::check`).
pub type NamedCheck = (&'static str, Check);

/// One implementation of a check: used from policy version `v1.<since>` until the next one.
pub struct Since {
    pub since: u32,
    pub check: Check,
    /// The baseline checks this (restricted) implementation replaces at restricted level.
    pub overrides: &'static [&'static str],
}

/// A check's history, as registered in PSA (`check_<id>.go`, `Versions`).
pub struct VersionedCheck {
    pub id: &'static str,
    pub restricted: bool,
    pub versions: &'static [Since],
}

const fn since(since: u32, check: Check) -> Since {
    Since {
        since,
        check,
        overrides: &[],
    }
}

const fn overriding(since: u32, check: Check, overrides: &'static [&'static str]) -> Since {
    Since {
        since,
        check,
        overrides,
    }
}

const fn baseline(id: &'static str, versions: &'static [Since]) -> VersionedCheck {
    VersionedCheck {
        id,
        restricted: false,
        versions,
    }
}

const fn restricted(id: &'static str, versions: &'static [Since]) -> VersionedCheck {
    VersionedCheck {
        id,
        restricted: true,
        versions,
    }
}

/// Every check with its versions, in PSA's order: the baseline checks sorted by ID, then the
/// restricted ones sorted by ID.
pub const CHECKS: &[VersionedCheck] = &[
    baseline("appArmorProfile", &[since(0, app_armor_profile)]),
    baseline("capabilities_baseline", &[since(0, capabilities_baseline)]),
    baseline("hostNamespaces", &[since(0, host_namespaces)]),
    baseline("hostPathVolumes", &[since(0, host_path_volumes)]),
    baseline("hostPorts", &[since(0, host_ports)]),
    baseline("privileged", &[since(0, privileged)]),
    baseline("procMount", &[since(0, proc_mount)]),
    baseline(
        "seLinuxOptions",
        &[since(0, se_linux_options_1_0), since(31, se_linux_options)],
    ),
    baseline(
        "seccompProfile_baseline",
        &[since(0, seccomp_baseline_1_0), since(19, seccomp_baseline)],
    ),
    baseline(
        "sysctls",
        &[
            since(0, sysctls_1_0),
            since(27, sysctls_1_27),
            since(29, sysctls_1_29),
            since(32, sysctls),
        ],
    ),
    baseline("windowsHostProcess", &[since(0, windows_host_process)]),
    restricted(
        "allowPrivilegeEscalation",
        &[
            since(8, allow_privilege_escalation_1_8),
            since(25, allow_privilege_escalation),
        ],
    ),
    restricted(
        "capabilities_restricted",
        &[
            overriding(22, capabilities_restricted_1_22, &["capabilities_baseline"]),
            overriding(25, capabilities_restricted, &["capabilities_baseline"]),
        ],
    ),
    restricted(
        "restrictedVolumes",
        &[overriding(0, restricted_volumes, &["hostPathVolumes"])],
    ),
    restricted("runAsNonRoot", &[since(0, run_as_non_root)]),
    restricted("runAsUser", &[since(23, run_as_user)]),
    restricted(
        "seccompProfile_restricted",
        &[
            overriding(19, seccomp_restricted_1_19, &["seccompProfile_baseline"]),
            overriding(25, seccomp_restricted, &["seccompProfile_baseline"]),
        ],
    ),
];

/// The checks policy version `v1.<minor>` runs at a level (`u32::MAX` for `latest`), in PSA's
/// order: of each check the newest implementation not newer than the version; at restricted, the
/// baseline checks too, less those the chosen restricted implementations override.
pub fn checks_for(restricted: bool, minor: u32) -> Vec<NamedCheck> {
    let chosen = |c: &VersionedCheck| c.versions.iter().rev().find(|v| v.since <= minor);
    let overridden: Vec<&str> = CHECKS
        .iter()
        .filter(|c| restricted && c.restricted)
        .filter_map(chosen)
        .flat_map(|v| v.overrides.iter().copied())
        .collect();
    CHECKS
        .iter()
        .filter(|c| (restricted || !c.restricted) && !overridden.contains(&c.id))
        .filter_map(|c| chosen(c).map(|v| (c.id, v.check)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading JSON the way Go reads the typed object: an absent field and `null` are the same (a nil
// pointer), and a missing string is "".

/// `object[key]`, with `null` read as absent.
fn field<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// `object[key]` as a string, "" when absent (Go's zero value).
fn string<'a>(object: &'a Value, key: &str) -> &'a str {
    field(object, key).and_then(Value::as_str).unwrap_or("")
}

/// `object[key]` as an optional boolean (a Go `*bool`).
fn boolean(object: &Value, key: &str) -> Option<bool> {
    field(object, key).and_then(Value::as_bool)
}

/// `object[key]` as a list, empty when absent.
fn list<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    field(object, key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The strings of `object[key]`, skipping anything that is not a string.
fn strings<'a>(object: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    list(object, key).iter().filter_map(Value::as_str)
}

fn pod_security_context(spec: &Value) -> Option<&Value> {
    field(spec, "securityContext")
}

fn security_context(container: &Value) -> Option<&Value> {
    field(container, "securityContext")
}

fn name(container: &Value) -> &str {
    string(container, "name")
}

/// `spec.os.name == "windows"`: PSA relaxes some restricted checks for Windows pods from v1.25.
fn is_windows(spec: &Value) -> bool {
    field(spec, "os").is_some_and(|os| string(os, "name") == "windows")
}

// ---------------------------------------------------------------------------------------------
// Message helpers with PSA's wording.

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// `"a", "b", "c"`.
pub(crate) fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    items.join(", ")
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Quotes like Go's `%q` (`strconv.Quote`): backslash escapes for `"`, `\` and control
/// characters, `\xNN` below 0x80, `\uNNNN` and `\UNNNNNNNN` above.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if !go_printable(c) => {
                let code = c as u32;
                if code < 0x80 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint` without Unicode tables: control characters, spaces
/// other than ' ', the common format characters and private-use code points are not printable.
fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF
        | 0xF0000..=0x10FFFF)
}

// ---------------------------------------------------------------------------------------------
// Baseline checks.

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// appArmorProfile: `appArmorProfile.type` of the pod and containers must be `RuntimeDefault` or
/// `Localhost`; the deprecated `container.apparmor.security.beta.kubernetes.io/*` annotations must be
/// empty, `runtime/default` or `localhost/*`.
///
/// One implementation for every policy version, as upstream: Kubernetes v1.30 rewrote PSA's only
/// AppArmor check (`appArmorProfile_1_0`, minimum version v1.0) in place to read the fields too
/// and to say `annotation must not set AppArmor profile type to "key="value""`. The shorter
/// `forbidden AppArmor profiles (key="value")` is what Kubernetes *releases* up to v1.29 said, at
/// any policy version; no policy version of a v1.30+ release says it.
pub fn app_armor_profile(pod: PodView<'_>) -> Option<Failure> {
    fn allowed_type(t: &str) -> bool {
        matches!(t, "RuntimeDefault" | "Localhost")
    }
    fn allowed_annotation(v: &str) -> bool {
        v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")
    }

    let mut bad_setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) =
        pod_security_context(pod.spec).and_then(|sc| field(sc, "appArmorProfile"))
    {
        let t = string(profile, "type");
        if !allowed_type(t) {
            bad_setters.push("pod".to_owned());
            bad_values.insert(t.to_owned());
        }
    }
    let mut bad_containers = Vec::new();
    for (_, c) in containers(pod.spec) {
        if let Some(profile) = security_context(c).and_then(|sc| field(sc, "appArmorProfile")) {
            let t = string(profile, "type");
            if !allowed_type(t) {
                bad_containers.push(name(c));
                bad_values.insert(t.to_owned());
            }
        }
    }
    if !bad_containers.is_empty() {
        bad_setters.push(containers_phrase(&bad_containers));
    }

    let mut bad_annotations: Vec<String> = field(pod.metadata, "annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
        .filter(|(k, v)| k.starts_with(APPARMOR_ANNOTATION_PREFIX) && !allowed_annotation(v))
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect();
    let mut bad_value_list: Vec<String> = bad_values.into_iter().collect();
    if !bad_annotations.is_empty() {
        bad_annotations.sort();
        bad_setters.push(pluralize("annotation", "annotations", bad_annotations.len()).to_owned());
        bad_value_list.extend(bad_annotations);
    }

    if bad_setters.is_empty() {
        return None;
    }
    Some(Failure::new(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_value_list.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            bad_setters.join(" and "),
            join_quote(&bad_value_list)
        ),
    ))
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// capabilities_baseline: `capabilities.add` may only hold the default capabilities.
pub fn capabilities_baseline(pod: PodView<'_>) -> Option<Failure> {
    let mut bad_containers = Vec::new();
    let mut non_default = BTreeSet::new();
    for (_, c) in containers(pod.spec) {
        let Some(caps) = security_context(c).and_then(|sc| field(sc, "capabilities")) else {
            continue;
        };
        let mut valid = true;
        for cap in strings(caps, "add") {
            if !BASELINE_CAPABILITIES.contains(&cap) {
                valid = false;
                non_default.insert(cap);
            }
        }
        if !valid {
            bad_containers.push(name(c));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Some(Failure::new(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad_containers),
            join_quote(non_default)
        ),
    ))
}

/// hostNamespaces: `hostNetwork`, `hostPID` and `hostIPC` must not be true.
pub fn host_namespaces(pod: PodView<'_>) -> Option<Failure> {
    let used: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| boolean(pod.spec, f) == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    if used.is_empty() {
        return None;
    }
    Some(Failure::new("host namespaces", used.join(", ")))
}

/// hostPathVolumes: no `hostPath` volume.
pub fn host_path_volumes(pod: PodView<'_>) -> Option<Failure> {
    let volumes: Vec<&str> = list(pod.spec, "volumes")
        .iter()
        .filter(|v| field(v, "hostPath").is_some())
        .map(|v| string(v, "name"))
        .collect();
    if volumes.is_empty() {
        return None;
    }
    Some(Failure::new(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", volumes.len()),
            join_quote(&volumes)
        ),
    ))
}

/// hostPorts: every container port's `hostPort` must be unset or 0.
pub fn host_ports(pod: PodView<'_>) -> Option<Failure> {
    let mut bad_containers = Vec::new();
    // PSA lists the ports as sorted strings, so "10443" comes before "8080".
    let mut ports = BTreeSet::new();
    for (_, c) in containers(pod.spec) {
        let mut valid = true;
        for port in list(c, "ports") {
            let host_port = field(port, "hostPort").and_then(Value::as_i64).unwrap_or(0);
            if host_port != 0 {
                valid = false;
                ports.insert(host_port.to_string());
            }
        }
        if !valid {
            bad_containers.push(name(c));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    Some(Failure::new(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// privileged: no container sets `privileged: true`.
pub fn privileged(pod: PodView<'_>) -> Option<Failure> {
    let bad: Vec<&str> = containers(pod.spec)
        .filter(|(_, c)| security_context(c).and_then(|sc| boolean(sc, "privileged")) == Some(true))
        .map(|(_, c)| name(c))
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(Failure::new(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    ))
}

/// procMount: `procMount` must be unset or `Default`.
pub fn proc_mount(pod: PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for (_, c) in containers(pod.spec) {
        let Some(proc_mount) = security_context(c).and_then(|sc| field(sc, "procMount")) else {
            continue;
        };
        let value = proc_mount.as_str().unwrap_or("");
        if value != "Default" {
            bad.push(name(c));
            types.insert(value);
        }
    }
    if bad.is_empty() {
        return None;
    }
    Some(Failure::new(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(types)
        ),
    ))
}

/// The SELinux types baseline allows: the first four from v1.0, `container_engine_t` from v1.31.
const SELINUX_TYPES: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// seLinuxOptions (v1.31+): `type` limited to the container types, `user` and `role` unset.
pub fn se_linux_options(pod: PodView<'_>) -> Option<Failure> {
    se_linux_options_with(pod, SELINUX_TYPES)
}

/// seLinuxOptions before v1.31: `container_engine_t` is not one of the allowed types yet.
pub fn se_linux_options_1_0(pod: PodView<'_>) -> Option<Failure> {
    se_linux_options_with(pod, &SELINUX_TYPES[..4])
}

fn se_linux_options_with(pod: PodView<'_>, allowed_types: &[&str]) -> Option<Failure> {
    let mut bad_types = BTreeSet::new();
    let mut set_user = false;
    let mut set_role = false;
    let mut valid = |options: &Value| {
        let mut ok = true;
        let t = string(options, "type");
        if !allowed_types.contains(&t) {
            ok = false;
            bad_types.insert(t.to_owned());
        }
        if !string(options, "user").is_empty() {
            ok = false;
            set_user = true;
        }
        if !string(options, "role").is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };

    let mut bad_setters = Vec::new();
    if let Some(options) = pod_security_context(pod.spec).and_then(|sc| field(sc, "seLinuxOptions"))
        && !valid(options)
    {
        bad_setters.push("pod".to_owned());
    }
    let mut bad_containers = Vec::new();
    for (_, c) in containers(pod.spec) {
        if let Some(options) = security_context(c).and_then(|sc| field(sc, "seLinuxOptions"))
            && !valid(options)
        {
            bad_containers.push(name(c));
        }
    }
    if !bad_containers.is_empty() {
        bad_setters.push(containers_phrase(&bad_containers));
    }
    if bad_setters.is_empty() {
        return None;
    }

    let mut bad_data = Vec::new();
    if !bad_types.is_empty() {
        bad_data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        bad_data.push("user may not be set".to_owned());
    }
    if set_role {
        bad_data.push("role may not be set".to_owned());
    }
    Some(Failure::new(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            bad_setters.join(" and "),
            bad_data.join("; ")
        ),
    ))
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

/// What the pod and its containers set as seccomp profile: who set a type other than
/// `RuntimeDefault` or `Localhost` and which, whether the pod set a valid one, and which
/// containers set none.
struct SeccompScan<'a> {
    bad_setters: Vec<String>,
    bad_values: BTreeSet<&'a str>,
    unset_containers: Vec<&'a str>,
    pod_valid: bool,
}

fn scan_seccomp(spec: &Value) -> SeccompScan<'_> {
    let mut scan = SeccompScan {
        bad_setters: Vec::new(),
        bad_values: BTreeSet::new(),
        unset_containers: Vec::new(),
        pod_valid: false,
    };
    if let Some(profile) = pod_security_context(spec).and_then(|sc| field(sc, "seccompProfile")) {
        let t = string(profile, "type");
        if valid_seccomp(t) {
            scan.pod_valid = true;
        } else {
            scan.bad_setters.push("pod".to_owned());
            scan.bad_values.insert(t);
        }
    }
    let mut bad_containers = Vec::new();
    for (_, c) in containers(spec) {
        match security_context(c).and_then(|sc| field(sc, "seccompProfile")) {
            Some(profile) => {
                let t = string(profile, "type");
                if !valid_seccomp(t) {
                    bad_containers.push(name(c));
                    scan.bad_values.insert(t);
                }
            }
            None => scan.unset_containers.push(name(c)),
        }
    }
    if !bad_containers.is_empty() {
        scan.bad_setters.push(containers_phrase(&bad_containers));
    }
    scan
}

fn seccomp_explicit_failure(scan: &SeccompScan<'_>) -> Option<Failure> {
    if scan.bad_setters.is_empty() {
        return None;
    }
    Some(Failure::new(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            scan.bad_setters.join(" and "),
            join_quote(&scan.bad_values)
        ),
    ))
}

/// seccompProfile_baseline (v1.19+): a seccomp profile, where set, must be `RuntimeDefault` or
/// `Localhost`.
pub fn seccomp_baseline(pod: PodView<'_>) -> Option<Failure> {
    seccomp_explicit_failure(&scan_seccomp(pod.spec))
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// seccompProfile_baseline before v1.19, when seccomp was set by annotations: the pod's
/// `seccomp.security.alpha.kubernetes.io/pod` and, for each container by name,
/// `container.seccomp.security.alpha.kubernetes.io/<name>` must, where present, be
/// `runtime/default`, `docker/default` or `localhost/*` (an empty value is refused too).
pub fn seccomp_baseline_1_0(pod: PodView<'_>) -> Option<Failure> {
    fn allowed(v: &str) -> bool {
        v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
    }
    let annotations = field(pod.metadata, "annotations");
    let value = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);
    let mut forbidden = BTreeSet::new();
    if let Some(v) = value(SECCOMP_POD_ANNOTATION)
        && !allowed(v)
    {
        forbidden.insert(format!("{SECCOMP_POD_ANNOTATION}={}", go_quote(v)));
    }
    for (_, c) in containers(pod.spec) {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", name(c));
        if let Some(v) = value(&key)
            && !allowed(v)
        {
            forbidden.insert(format!("{key}={}", go_quote(v)));
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    Some(Failure::new(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.into_iter().collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// The safe sysctls, in the order they were allowed: the first 5 from v1.0, then 1 more from
/// v1.27, 4 more from v1.29 and 2 more from v1.32.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    // v1.27
    "net.ipv4.ip_local_reserved_ports",
    // v1.29
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    // v1.32
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// sysctls (v1.32+): only the safe sysctls, the forbidden ones listed in the pod's order.
pub fn sysctls(pod: PodView<'_>) -> Option<Failure> {
    sysctls_within(pod, SAFE_SYSCTLS)
}

/// sysctls from v1.0 to v1.26.
pub fn sysctls_1_0(pod: PodView<'_>) -> Option<Failure> {
    sysctls_within(pod, &SAFE_SYSCTLS[..5])
}

/// sysctls from v1.27 to v1.28: `net.ipv4.ip_local_reserved_ports` is safe.
pub fn sysctls_1_27(pod: PodView<'_>) -> Option<Failure> {
    sysctls_within(pod, &SAFE_SYSCTLS[..6])
}

/// sysctls from v1.29 to v1.31: the four TCP keepalive and FIN timeout sysctls are safe.
pub fn sysctls_1_29(pod: PodView<'_>) -> Option<Failure> {
    sysctls_within(pod, &SAFE_SYSCTLS[..10])
}

fn sysctls_within(pod: PodView<'_>, safe: &[&str]) -> Option<Failure> {
    let forbidden: Vec<&str> = pod_security_context(pod.spec)
        .map(|sc| list(sc, "sysctls"))
        .unwrap_or(&[])
        .iter()
        .map(|s| string(s, "name"))
        .filter(|n| !safe.contains(n))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    Some(Failure::new("forbidden sysctls", forbidden.join(", ")))
}

/// windowsHostProcess: neither pod nor container sets `windowsOptions.hostProcess: true`.
pub fn windows_host_process(pod: PodView<'_>) -> Option<Failure> {
    let host_process = |sc: &Value| {
        field(sc, "windowsOptions").and_then(|w| boolean(w, "hostProcess")) == Some(true)
    };
    let mut setters = Vec::new();
    if pod_security_context(pod.spec).is_some_and(host_process) {
        setters.push("pod".to_owned());
    }
    let bad: Vec<&str> = containers(pod.spec)
        .filter(|(_, c)| security_context(c).is_some_and(host_process))
        .map(|(_, c)| name(c))
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    Some(Failure::new(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// Restricted checks.

/// allowPrivilegeEscalation (v1.25+): every container sets `allowPrivilegeEscalation: false`.
/// Windows pods are exempt.
pub fn allow_privilege_escalation(pod: PodView<'_>) -> Option<Failure> {
    if is_windows(pod.spec) {
        return None;
    }
    allow_privilege_escalation_1_8(pod)
}

/// allowPrivilegeEscalation from v1.8 (the field's first version) to v1.24: Windows pods too.
pub fn allow_privilege_escalation_1_8(pod: PodView<'_>) -> Option<Failure> {
    let bad: Vec<&str> = containers(pod.spec)
        .filter(|(_, c)| {
            security_context(c).and_then(|sc| boolean(sc, "allowPrivilegeEscalation"))
                != Some(false)
        })
        .map(|(_, c)| name(c))
        .collect();
    if bad.is_empty() {
        return None;
    }
    Some(Failure::new(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    ))
}

/// capabilities_restricted (v1.25+): every container drops `ALL` and adds nothing but
/// `NET_BIND_SERVICE`. Windows pods are exempt.
pub fn capabilities_restricted(pod: PodView<'_>) -> Option<Failure> {
    if is_windows(pod.spec) {
        return None;
    }
    capabilities_restricted_1_22(pod)
}

/// capabilities_restricted from v1.22 (its first version) to v1.24: Windows pods too.
pub fn capabilities_restricted_1_22(pod: PodView<'_>) -> Option<Failure> {
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden = BTreeSet::new();
    for (_, c) in containers(pod.spec) {
        let Some(caps) = security_context(c).and_then(|sc| field(sc, "capabilities")) else {
            missing_drop_all.push(name(c));
            continue;
        };
        if !strings(caps, "drop").any(|d| d == "ALL") {
            missing_drop_all.push(name(c));
        }
        let mut added_forbidden = false;
        for cap in strings(caps, "add") {
            if cap != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden.insert(cap);
            }
        }
        if added_forbidden {
            adding_forbidden.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding_forbidden),
            join_quote(forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    Some(Failure::new(
        "unrestricted capabilities",
        details.join("; "),
    ))
}

/// Volume sources the restricted level allows.
const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Volume sources the restricted level forbids, in the order PSA names the first one it finds.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

/// restrictedVolumes: volumes limited to the allowed sources.
pub fn restricted_volumes(pod: PodView<'_>) -> Option<Failure> {
    let mut bad_volumes = Vec::new();
    let mut bad_types = BTreeSet::new();
    for volume in list(pod.spec, "volumes") {
        if ALLOWED_VOLUME_SOURCES
            .iter()
            .any(|s| field(volume, s).is_some())
        {
            continue;
        }
        bad_volumes.push(string(volume, "name"));
        let source = RESTRICTED_VOLUME_SOURCES
            .iter()
            .find(|s| field(volume, s).is_some())
            .copied()
            .unwrap_or("unknown");
        bad_types.insert(source);
    }
    if bad_volumes.is_empty() {
        return None;
    }
    Some(Failure::new(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad_volumes.len()),
            join_quote(&bad_volumes),
            pluralize("uses", "use", bad_volumes.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                bad_types.len()
            ),
            join_quote(bad_types)
        ),
    ))
}

/// runAsNonRoot: `runAsNonRoot: true` at pod level or on every container, and never `false`.
pub fn run_as_non_root(pod: PodView<'_>) -> Option<Failure> {
    let mut bad_setters = Vec::new();
    let mut pod_non_root = false;
    match pod_security_context(pod.spec).and_then(|sc| boolean(sc, "runAsNonRoot")) {
        Some(false) => bad_setters.push("pod".to_owned()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for (_, c) in containers(pod.spec) {
        match security_context(c).and_then(|sc| boolean(sc, "runAsNonRoot")) {
            Some(false) => explicitly_bad.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicitly_bad.push(name(c)),
            None => {}
        }
    }
    if !explicitly_bad.is_empty() {
        bad_setters.push(containers_phrase(&explicitly_bad));
    }
    if !bad_setters.is_empty() {
        return Some(Failure::new(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad_setters.join(" and ")
            ),
        ));
    }
    if !implicitly_bad.is_empty() {
        return Some(Failure::new(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicitly_bad)
            ),
        ));
    }
    None
}

/// runAsUser (v1.23+): neither pod nor container sets `runAsUser: 0`.
pub fn run_as_user(pod: PodView<'_>) -> Option<Failure> {
    let root = |sc: &Value| field(sc, "runAsUser").and_then(Value::as_i64) == Some(0);
    let mut bad_setters = Vec::new();
    if pod_security_context(pod.spec).is_some_and(root) {
        bad_setters.push("pod".to_owned());
    }
    let bad: Vec<&str> = containers(pod.spec)
        .filter(|(_, c)| security_context(c).is_some_and(root))
        .map(|(_, c)| name(c))
        .collect();
    if !bad.is_empty() {
        bad_setters.push(containers_phrase(&bad));
    }
    if bad_setters.is_empty() {
        return None;
    }
    Some(Failure::new(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", bad_setters.join(" and ")),
    ))
}

/// seccompProfile_restricted (v1.25+): `seccompProfile.type` `RuntimeDefault` or `Localhost` at
/// pod level or on every container. Windows pods are exempt.
pub fn seccomp_restricted(pod: PodView<'_>) -> Option<Failure> {
    if is_windows(pod.spec) {
        return None;
    }
    seccomp_restricted_1_19(pod)
}

/// seccompProfile_restricted from v1.19 (the field's first version) to v1.24: Windows pods too.
pub fn seccomp_restricted_1_19(pod: PodView<'_>) -> Option<Failure> {
    let scan = scan_seccomp(pod.spec);
    if let Some(failure) = seccomp_explicit_failure(&scan) {
        return Some(failure);
    }
    if scan.pod_valid || scan.unset_containers.is_empty() {
        return None;
    }
    Some(Failure::new(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&scan.unset_containers)
        ),
    ))
}
