//! The configuration file of `corbel serve` (YAML or JSON). Field names are camelCase like
//! Kubernetes'; unknown fields are errors, so a typo never silently falls back to a default.
//!
//! ```yaml
//! listen: 127.0.0.1:8443
//! tls:
//!   development: { dir: .corbel/dev-tls }   # or: certFile: tls.crt, keyFile: tls.key
//! bindings:
//!   - name: require-labels
//!     plugin: plugins/require_labels.wasm    # relative to this file
//!     mode: validate
//!     settings: { labels: [team] }
//!     timeout: 2s
//!     memoryLimit: 64Mi
//!     failurePolicy: Fail
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

pub use crate::admission::config::{BindingConfig, WebhookRule};
pub use crate::reconcile::config::{BackoffConfig, ControllerConfig, LeaderElectionConfig};
pub use crate::runtime::quantity::parse_quantity;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTPS server.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    /// Largest request body accepted; larger ones get 413. Kubernetes' own limit is 3 MiB.
    #[serde(
        default = "default_max_body",
        deserialize_with = "crate::runtime::quantity::deserialize"
    )]
    pub max_body_size: usize,
    /// Sandboxes that may run at once, across all bindings.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// How long shutdown waits for requests in flight.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
    /// What one client may hold of the server: a webhook that runs out of sockets stops every
    /// write of the cluster under `failurePolicy: Fail`.
    #[serde(default)]
    pub connections: ConnectionLimits,
    #[serde(default)]
    pub bindings: Vec<BindingConfig>,
    /// The embedded mode: a Kubernetes-shaped API over an embedded store, served beside the webhooks.
    #[serde(default)]
    pub embedded: Option<EmbeddedConfig>,
    /// Who may use the embedded API (bearer tokens, OpenID Connect, role-based rules).
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// Plugins from OCI registries: cache, lock file, CA, trusted signing keys (docs/registry.md).
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Controller plugins: each reconciles the kinds its manifest names, with the capabilities
    /// granted here.
    #[serde(default)]
    pub controllers: Vec<ControllerConfig>,
    /// Kubernetes mode: the API server the controllers work against. Absent: the embedded API
    /// when `embedded` is set, else the in-cluster configuration or `$KUBECONFIG`.
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// Run the controllers only while holding a Lease, so that several replicas share the work
    /// with one leader. On by default in Kubernetes mode, off in embedded mode.
    #[serde(default)]
    pub leader_election: Option<LeaderElectionConfig>,
    /// Serve the `XdsSnapshot`s controller plugins publish to Envoy over ADS (docs/xds.md).
    #[serde(default)]
    pub xds: Option<XdsConfig>,
}

/// The xDS server (`xds:`): plaintext gRPC, so bind it to loopback or a private network.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct XdsConfig {
    /// Address of the ADS gRPC server, such as 127.0.0.1:18000.
    pub listen: SocketAddr,
}

/// Timeouts and a cap on the HTTPS server's connections (`connections:`). The defaults are far
/// above what an API server needs (it sends its headers right after the handshake and keeps a few
/// HTTP/2 connections) and far below the process's file limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Connections served at once; one more is closed as soon as it is accepted.
    #[serde(default = "default_max_connections")]
    pub max: usize,
    /// From accept to the end of the TLS handshake.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// HTTP/1.1: from the first byte a connection may send to the end of a request's headers.
    /// Hyper runs this timer while a keep-alive connection waits for its next request too.
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2 with GOAWAY).
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max: default_max_connections(),
            handshake_timeout: default_handshake_timeout(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

fn default_max_connections() -> usize {
    1024
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubernetesConfig {
    /// A kubeconfig file; default: in-cluster, then `$KUBECONFIG`, then `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; default: its current context.
    pub context: Option<String>,
}

/// Where installed plugins live and whom to trust for them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryConfig {
    /// The component and compiled-artifact cache; default `$XDG_CACHE_HOME/corbel` (`~/.cache/corbel`).
    pub cache_dir: Option<PathBuf>,
    /// The lock file; default `corbel.lock` beside the configuration file.
    pub lock_file: Option<PathBuf>,
    /// A PEM CA certificate trusted for registries, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM public keys (cosign.pub) whose signatures `corbel plugin install` accepts.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// Repositories (`host/path`, or `host/prefix/*`) whose plugins may be installed unsigned.
    #[serde(default)]
    pub allow_unsigned: Vec<String>,
}

impl RegistryConfig {
    /// The settings `serve` installs with (for `Plugin` objects): credentials from the docker
    /// config, no command-line flags.
    pub fn settings(&self) -> crate::registry::plugins::Settings {
        crate::registry::plugins::Settings {
            cache_dir: self.cache_dir(),
            lock_file: self
                .lock_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("corbel.lock")),
            trusted_keys: self.trusted_keys.clone(),
            allow_unsigned: self.allow_unsigned.clone(),
            options: crate::registry::client::Options {
                ca_files: self.ca_file.iter().cloned().collect(),
                credentials: None,
            },
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("."))
                        .join(".cache")
                })
                .join("corbel")
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Where the store lives; default `$XDG_DATA_HOME/corbel` (`~/.local/share/corbel`).
    pub data_dir: Option<PathBuf>,
    /// Where to write a kubeconfig for kubectl and kube-rs; default `{dataDir}/kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// Create an admin token (`{dataDir}/admin.token`) that may do everything, and put it in the
    /// kubeconfig. On by default; turn it off when tokens come from `auth` only.
    #[serde(default = "yes")]
    pub development_admin: bool,
}

fn yes() -> bool {
    true
}

impl EmbeddedConfig {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let base = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("HOME")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("."))
                        .join(".local/share")
                });
            base.join("corbel")
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; reloaded when the file changes.
    pub cert_file: Option<PathBuf>,
    /// PEM private key; reloaded when the file changes.
    pub key_file: Option<PathBuf>,
    /// Development mode: a CA and serving certificate created (once) in a directory.
    pub development: Option<DevTlsConfig>,
    /// How often the certificate files are checked for changes.
    #[serde(default = "default_reload", with = "humantime_serde")]
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevTlsConfig {
    /// Where `ca.crt` (paste it into `caBundle`), `tls.crt` and `tls.key` are written.
    pub dir: PathBuf,
    /// Names and addresses the serving certificate is valid for.
    #[serde(default = "default_hosts")]
    pub hosts: Vec<String>,
}

fn default_listen() -> SocketAddr {
    ([127, 0, 0, 1], 8443).into()
}
fn default_max_body() -> usize {
    3 << 20
}
fn default_max_instances() -> u32 {
    crate::runtime::RuntimeConfig::default().max_instances
}
fn default_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_reload() -> Duration {
    Duration::from_secs(5)
}
fn default_hosts() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into()]
}
impl Config {
    /// Reads and checks a configuration file; relative paths in it are made relative to its folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the configuration file {}", path.display()))?;
        let mut config: Config = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.check()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        self.tls.cert_file.as_mut().map(fix);
        self.tls.key_file.as_mut().map(fix);
        if let Some(dev) = &mut self.tls.development {
            fix(&mut dev.dir);
        }
        if let Some(embedded) = &mut self.embedded {
            embedded.data_dir.as_mut().map(fix);
            embedded.kubeconfig.as_mut().map(fix);
        }
        self.auth.token_file.as_mut().map(fix);
        if let Some(oidc) = &mut self.auth.oidc {
            oidc.ca_file.as_mut().map(fix);
        }
        self.registry.cache_dir.as_mut().map(fix);
        self.registry.ca_file.as_mut().map(fix);
        self.registry.trusted_keys.iter_mut().for_each(fix);
        self.registry.lock_file = Some(match self.registry.lock_file.take() {
            Some(mut lock) => {
                fix(&mut lock);
                lock
            }
            None => base.join("corbel.lock"),
        });
        for binding in &mut self.bindings {
            // `oci://` references are not paths.
            if binding.oci_reference().is_none() {
                fix(&mut binding.plugin);
            }
            binding.settings_file.as_mut().map(fix);
            if let Some(shadow) = &mut binding.shadow {
                if !shadow.plugin.to_string_lossy().starts_with("oci://") {
                    fix(&mut shadow.plugin);
                }
                shadow.settings_file.as_mut().map(fix);
            }
            if let Some(record) = &mut binding.record {
                fix(&mut record.dir);
            }
        }
        for controller in &mut self.controllers {
            if !controller.plugin.to_string_lossy().starts_with("oci://") {
                fix(&mut controller.plugin);
            }
        }
        if let Some(kubernetes) = &mut self.kubernetes {
            kubernetes.kubeconfig.as_mut().map(fix);
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        match (
            &self.tls.cert_file,
            &self.tls.key_file,
            &self.tls.development,
        ) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            _ => bail!(
                "tls: give either certFile and keyFile, or development (for a generated CA), not both"
            ),
        }
        let limits = &self.connections;
        if limits.max == 0
            || [
                limits.handshake_timeout,
                limits.header_read_timeout,
                limits.idle_timeout,
            ]
            .contains(&Duration::ZERO)
        {
            bail!(
                "connections: max and every timeout must be more than zero (they guard the server against clients that hold sockets)"
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.bindings {
            let valid = !b.name.is_empty()
                && b.name.len() <= 63
                && b.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !b.name.starts_with('-')
                && !b.name.ends_with('-');
            if !valid {
                bail!(
                    "binding name {:?} is not valid: use 1-63 lowercase letters, digits and '-' (it becomes the URL path)",
                    b.name
                );
            }
            if !seen.insert(&b.name) {
                bail!(
                    "binding name {:?} is used twice: each binding needs its own name (its endpoint)",
                    b.name
                );
            }
            if b.settings.is_some() && b.settings_file.is_some() {
                bail!(
                    "binding {:?}: give settings or settingsFile, not both",
                    b.name
                );
            }
            if b.timeout.is_zero() {
                bail!("binding {:?}: timeout must be more than zero", b.name);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.controllers {
            let valid = !c.name.is_empty()
                && c.name.len() <= 63
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
            if !valid {
                bail!(
                    "controller name {:?} is not valid: use 1-63 lowercase letters, digits and '-' (it names the finalizer)",
                    c.name
                );
            }
            if !seen.insert(&c.name) {
                bail!("controller name {:?} is used twice", c.name);
            }
            if c.concurrency == 0 {
                bail!("controller {:?}: concurrency must be at least 1", c.name);
            }
            if c.timeout.is_zero() {
                bail!("controller {:?}: timeout must be more than zero", c.name);
            }
            if c.backoff.initial.is_zero() || c.backoff.max < c.backoff.initial {
                bail!("controller {:?}: backoff needs 0 < initial <= max", c.name);
            }
        }
        if self.kubernetes.is_some() && self.embedded.is_some() {
            bail!(
                "give `embedded` (controllers use the embedded API) or `kubernetes` (they use an API server), not both"
            );
        }
        if let Some(le) = &self.leader_election
            && le.enabled
            && (le.renew_period.is_zero() || le.renew_period * 2 > le.lease_duration)
        {
            bail!(
                "leaderElection: renewPeriod must be more than zero and at most half of leaseDuration, so a leader renews at least twice before its Lease runs out"
            );
        }
        Ok(())
    }

    /// Bindings whose `rules` or selectors Corbel does not apply itself: without `embedded`, the
    /// API server decides what it sends from the webhook configuration registered there, so
    /// these fields only feed `corbel kubernetes webhooks`. A warning each, for the start's log.
    pub fn rules_not_applied(&self) -> Vec<&str> {
        if self.embedded.is_some() {
            return Vec::new();
        }
        self.bindings
            .iter()
            .filter(|b| {
                !b.rules.is_empty() || b.namespace_selector.is_some() || b.object_selector.is_some()
            })
            .map(|b| b.name.as_str())
            .collect()
    }

    /// The leader election to use, if any: as configured, else on in Kubernetes mode.
    pub fn leader_election(&self) -> Option<LeaderElectionConfig> {
        match &self.leader_election {
            Some(le) if le.enabled => Some(le.clone()),
            Some(_) => None,
            None if self.embedded.is_none() => Some(LeaderElectionConfig::default()),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::FailurePolicy;

    fn parse(yaml: &str) -> anyhow::Result<Config> {
        let mut config: Config = serde_yaml_ng::from_str(yaml)?;
        config.resolve_paths(Path::new("/etc/corbel"));
        config.check()?;
        Ok(config)
    }

    #[test]
    fn reads_a_binding_with_defaults_and_relative_paths() {
        let config = parse(
            "tls: {development: {dir: tls}}\nbindings:\n- name: labels\n  plugin: p.wasm\n  mode: validate\n  settings: {labels: [team]}\n",
        )
        .unwrap();
        let b = &config.bindings[0];
        assert_eq!(b.plugin, Path::new("/etc/corbel/p.wasm"));
        assert_eq!(
            (b.timeout, b.memory_limit, b.failure_policy),
            (Duration::from_secs(2), 64 << 20, FailurePolicy::Fail)
        );
        assert_eq!(
            b.settings().unwrap(),
            serde_json::json!({"labels": ["team"]})
        );
        assert_eq!(config.max_body_size, 3 << 20);
        assert_eq!(
            config.tls.development.as_ref().unwrap().dir,
            Path::new("/etc/corbel/tls")
        );
    }

    #[test]
    fn names_bindings_whose_rules_corbel_does_not_apply_outside_embedded_mode() {
        let bindings = "bindings:\n\
            - {name: ruled, plugin: p.wasm, mode: validate, rules: [{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}]}\n\
            - {name: selected, plugin: p.wasm, mode: validate, objectSelector: {matchLabels: {a: b}}}\n\
            - {name: plain, plugin: p.wasm, mode: validate}\n";
        let kubernetes = parse(&format!(
            "tls: {{development: {{dir: tls}}}}\nkubernetes: {{}}\n{bindings}"
        ))
        .unwrap();
        assert_eq!(kubernetes.rules_not_applied(), ["ruled", "selected"]);
        let embedded = parse(&format!(
            "tls: {{development: {{dir: tls}}}}\nembedded: {{}}\n{bindings}"
        ))
        .unwrap();
        assert!(embedded.rules_not_applied().is_empty());
    }

    #[test]
    fn refuses_unknown_fields_and_duplicate_names() {
        let typo = parse(
            "tls: {development: {dir: t}}\nbindings:\n- {name: a, plugin: p, mode: validate, timout: 1s}\n",
        );
        assert!(format!("{:#}", typo.unwrap_err()).contains("timout"));
        let twice = parse(
            "tls: {development: {dir: t}}\nbindings:\n- {name: a, plugin: p, mode: validate}\n- {name: a, plugin: q, mode: mutate}\n",
        );
        assert!(twice.unwrap_err().to_string().contains("used twice"));
        let bad_name = parse(
            "tls: {development: {dir: t}}\nbindings:\n- {name: A/b, plugin: p, mode: validate}\n",
        );
        assert!(bad_name.unwrap_err().to_string().contains("not valid"));
    }

    #[test]
    fn needs_exactly_one_kind_of_tls() {
        assert!(
            parse("tls: {}\n")
                .unwrap_err()
                .to_string()
                .contains("certFile")
        );
        assert!(parse("tls: {certFile: a, keyFile: b, development: {dir: t}}\n").is_err());
        assert!(parse("tls: {certFile: a, keyFile: b}\n").is_ok());
    }

    #[test]
    fn keeps_oci_references_as_they_are_and_puts_the_lock_file_beside_the_config() {
        let config = parse(
            "tls: {development: {dir: t}}\nregistry: {cacheDir: cache, trustedKeys: [k.pub]}\nbindings:\n- {name: a, plugin: 'oci://reg:5000/p:v1', mode: validate}\n",
        )
        .unwrap();
        assert_eq!(
            config.bindings[0].oci_reference(),
            Some("oci://reg:5000/p:v1")
        );
        assert_eq!(
            config.registry.lock_file.as_deref(),
            Some(Path::new("/etc/corbel/corbel.lock"))
        );
        assert_eq!(config.registry.cache_dir(), Path::new("/etc/corbel/cache"));
        assert_eq!(
            config.registry.trusted_keys,
            [Path::new("/etc/corbel/k.pub")]
        );
    }
}
