//! A binding's configuration: the `bindings` section of `corbel serve`'s configuration file
//! (`corbel::config`), and of a `Plugin` object's spec. [`crate::bindings`] builds a binding from
//! it, in one place.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::{Enforcement, FailurePolicy, Mode};

/// Which writes of the embedded API a binding admits, as in a webhook configuration's `rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookRule {
    /// CREATE, UPDATE, DELETE, CONNECT or *.
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    /// Plural names, `*`, `plural/status`, `*/status` or `*/*`.
    pub resources: Vec<String>,
    /// `*` (default), `Cluster` or `Namespaced`.
    #[serde(default = "star")]
    pub scope: String,
}

fn star() -> String {
    "*".into()
}

impl WebhookRule {
    pub fn matches(
        &self,
        operation: &str,
        group: &str,
        version: &str,
        plural: &str,
        status: bool,
        namespaced: bool,
    ) -> bool {
        let any = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        let resource_ok = self.resources.iter().any(|r| {
            let (res, sub) = r
                .split_once('/')
                .map_or((r.as_str(), None), |(a, b)| (a, Some(b)));
            let res_ok = res == "*" || res == plural;
            match (sub, status) {
                (None, false) => res_ok,
                (Some(s), true) => res_ok && (s == "*" || s == "status"),
                (Some("*"), false) => res_ok,
                _ => false,
            }
        });
        let scope_ok = match self.scope.as_str() {
            "Cluster" => !namespaced,
            "Namespaced" => namespaced,
            _ => true,
        };
        any(&self.operations, operation)
            && any(&self.api_groups, group)
            && any(&self.api_versions, version)
            && resource_ok
            && scope_ok
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingConfig {
    /// Also the endpoint: `POST /validate/{name}` or `POST /mutate/{name}`.
    pub name: String,
    /// The plugin's component file, relative to the configuration file, or an installed OCI
    /// reference `oci://host/repo:tag` (or `@sha256:…`), read from the lock file and cache.
    pub plugin: PathBuf,
    pub mode: Mode,
    /// Settings passed to the plugin, inline.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// Settings from a YAML or JSON file, relative to the configuration file.
    #[serde(default)]
    pub settings_file: Option<PathBuf>,
    #[serde(
        default = "corbel_runtime::Limits::default_timeout",
        with = "humantime_serde"
    )]
    pub timeout: Duration,
    #[serde(
        default = "corbel_runtime::Limits::default_memory",
        deserialize_with = "corbel_runtime::quantity::deserialize"
    )]
    pub memory_limit: usize,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Embedded mode: which writes of the embedded API this binding admits inline.
    #[serde(default)]
    pub rules: Vec<WebhookRule>,
    /// Embedded mode: only objects in namespaces with these labels (a metav1.LabelSelector).
    #[serde(default)]
    pub namespace_selector: Option<serde_json::Value>,
    /// Embedded mode: only objects with these labels (a metav1.LabelSelector).
    #[serde(default)]
    pub object_selector: Option<serde_json::Value>,
    /// What the plugin's denials do: `deny` (default), `warn` (admit with the denial as a
    /// warning) or `audit` (admit, record the verdict, add an audit annotation).
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Denials carry the checks the plugin made and its log lines as warnings ("why denied").
    #[serde(default)]
    pub trace: bool,
    /// Background audit of the objects that already exist (`docs/audit.md`).
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// A candidate version evaluated beside the serving one on live requests (`docs/shadow.md`).
    #[serde(default)]
    pub shadow: Option<ShadowConfig>,
    /// Live requests and their verdicts written as `corbel test` cases (`docs/record-replay.md`).
    #[serde(default)]
    pub record: Option<RecordConfig>,
}

/// A binding's background audit: the objects its `rules` match, evaluated on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// How often the audit runs (it also runs when the binding's plugin or settings change).
    #[serde(default = "AuditConfig::default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// How many objects evaluate at once (default 1): the audit's share of the sandboxes and
    /// cores, kept small so that admission latency does not move.
    #[serde(default = "AuditConfig::default_workers")]
    pub workers: usize,
    /// Objects read per list request (`limit`, then `continue`).
    #[serde(default = "AuditConfig::default_page_size")]
    pub page_size: u32,
    /// The most resources this binding reports on (failures first); the rest are counted as
    /// dropped in the log, the metrics and the `corbel-audit` ClusterReport.
    #[serde(default = "AuditConfig::default_max_reports")]
    pub max_reports: usize,
    /// A result's message is cut to this many bytes in a report.
    #[serde(default = "AuditConfig::default_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl AuditConfig {
    fn default_interval() -> Duration {
        Duration::from_secs(3600)
    }
    fn default_workers() -> usize {
        1
    }
    fn default_page_size() -> u32 {
        500
    }
    fn default_max_reports() -> usize {
        10_000
    }
    fn default_max_message_bytes() -> usize {
        1024
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            interval: Self::default_interval(),
            workers: Self::default_workers(),
            page_size: Self::default_page_size(),
            max_reports: Self::default_max_reports(),
            max_message_bytes: Self::default_max_message_bytes(),
        }
    }
}

/// A candidate plugin version evaluated beside the serving one; its verdicts never reach the caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShadowConfig {
    /// The candidate's component file (relative to the configuration file) or `oci://` reference.
    pub plugin: PathBuf,
    /// The candidate's settings; the binding's own when neither this nor `settingsFile` is set.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    #[serde(default)]
    pub settings_file: Option<PathBuf>,
    /// The share of the host's cores the candidate may use, in (0, 1]: at most
    /// `ceil(cpuShare × cores)` candidate evaluations run at once; requests past that are
    /// skipped (and counted as skipped), never queued. Default 0.5.
    #[serde(default = "ShadowConfig::default_cpu_share")]
    pub cpu_share: f64,
    /// How many of the last disagreements are kept for `GET /shadow` (1 to 10,000; default 100).
    #[serde(default = "ShadowConfig::default_keep")]
    pub keep: usize,
}

impl ShadowConfig {
    fn default_cpu_share() -> f64 {
        0.5
    }

    fn default_keep() -> usize {
        100
    }
}

/// Where a binding records its live requests as `corbel test` cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordConfig {
    /// The folder of cases, relative to the configuration file.
    pub dir: PathBuf,
    /// JSON pointers into the object whose values are replaced by `"REDACTED"` (a Secret's
    /// `data` and `stringData` always are).
    #[serde(default)]
    pub redact: Vec<String>,
    /// The most case files the folder holds (those already there count); requests past it are
    /// counted, logged and not written.
    #[serde(default = "RecordConfig::default_max_cases")]
    pub max_cases: usize,
}

impl RecordConfig {
    fn default_max_cases() -> usize {
        1000
    }
}

impl BindingConfig {
    /// The OCI reference when `plugin` is `oci://…` (resolved through the lock file and cache).
    pub fn oci_reference(&self) -> Option<&str> {
        self.plugin.to_str().filter(|p| p.starts_with("oci://"))
    }

    /// The binding's settings: inline, from its file, or `{}`.
    pub fn settings(&self) -> anyhow::Result<serde_json::Value> {
        if let Some(file) = &self.settings_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("failed to read settings file {}", file.display()))?;
            return serde_yaml_ng::from_str(&text)
                .with_context(|| format!("settings file {} is not YAML or JSON", file.display()));
        }
        Ok(self
            .settings
            .clone()
            .unwrap_or_else(|| serde_json::json!({})))
    }
}
