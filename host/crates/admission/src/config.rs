//! A binding's configuration: the `bindings` section of `corbel serve`'s configuration file
//! (`corbel::config`), and of a `Plugin` object's spec. [`crate::bindings`] builds a binding from
//! it, in one place.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::{FailurePolicy, Mode};

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
