//! The configuration of controllers and of leader election: the `controllers` and
//! `leaderElection` sections of `corbel serve`'s configuration file (`corbel::config`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElectionConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where the Lease lives.
    #[serde(default = "default_lease_namespace")]
    pub namespace: String,
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// How long a leader that stopped renewing keeps the Lease: the longest a failover takes.
    #[serde(default = "default_lease_duration", with = "humantime_serde")]
    pub lease_duration: Duration,
    /// How often the leader renews (and a candidate retries).
    #[serde(default = "default_renew_period", with = "humantime_serde")]
    pub renew_period: Duration,
    /// This replica's name in the Lease; default: `$POD_NAME`, else the host name and process id.
    pub identity: Option<String>,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: default_lease_namespace(),
            lease_name: default_lease_name(),
            lease_duration: default_lease_duration(),
            renew_period: default_renew_period(),
            identity: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_lease_namespace() -> String {
    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "default".into())
}
fn default_lease_name() -> String {
    "corbel-controllers".into()
}
fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}
fn default_renew_period() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerConfig {
    /// Names the controller in logs, metrics, events and its finalizer.
    pub name: String,
    /// The plugin's component file, relative to the configuration file, or an installed
    /// `oci://` reference (read from the lock file and cache, like a binding's).
    pub plugin: PathBuf,
    /// Settings passed to every call, inline.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
    /// Reconciles that may run at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u16,
    /// Longest one reconcile may take, capability calls and outbound HTTP included.
    #[serde(default = "default_reconcile_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(
        default = "corbel_runtime::Limits::default_memory",
        deserialize_with = "corbel_runtime::quantity::deserialize"
    )]
    pub memory_limit: usize,
    /// What the plugin may do, checked against what its manifest requests.
    #[serde(default)]
    pub grants: corbel_runtime::capabilities::GrantsConfig,
    /// Retry delays after a transient error: doubling from `initial` up to `max`.
    #[serde(default)]
    pub backoff: BackoffConfig,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackoffConfig {
    #[serde(default = "default_backoff_initial", with = "humantime_serde")]
    pub initial: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
        }
    }
}

fn default_concurrency() -> u16 {
    4
}
fn default_reconcile_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_backoff_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}

impl ControllerConfig {
    pub fn settings(&self) -> serde_json::Value {
        self.settings
            .clone()
            .unwrap_or_else(|| serde_json::json!({}))
    }
}
