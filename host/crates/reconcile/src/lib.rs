//! Reconciliation: one controller loop ([`driver`]) for every kind the host reconciles.
//!
//! The loop is kube-runtime's `Controller` over `DynamicObject`, against whatever API the
//! [`kube::Client`] reaches: the embedded API (in process) or a Kubernetes API server. It waits
//! until the kind is served, watches and relists it, reconciles one object at a time, keeps the
//! host's finalizer on every object, writes status through the status subresource (whose echo
//! does not reconcile again), publishes Events, counts reconciles in the metrics and stops
//! cleanly. What a reconcile does is a `driver::Reconciler`, and there are two:
//!
//! - `controller`: each kind a controller plugin reconciles. The plugin is called in a fresh
//!   sandbox with its granted capabilities; its outcome becomes the status (with
//!   `observedGeneration` and `Ready`/`Processing`/`Blocked`), Events and the next requeue; a
//!   transient error is retried with exponential backoff, a permanent one waits for the object to
//!   change; deleting an object calls `cleanup`, and the finalizer goes only when it succeeds.
//!   Secrets a manifest's `holdsSecrets` names carry the host's finalizer while an object names
//!   them, so that a namespace's deletion leaves the credentials to the cleanups that need them.
//! - [`plugin_kind`]: the `Plugin` kind, an admission binding installed from an OCI registry.
//!
//! [`leader`] runs the controller plugins only while this replica holds a Lease (the Plugin kind
//! runs on every replica; its status is written by the holder of a second Lease).

mod changes;
pub mod config;
mod controller;
mod driver;
mod events;
pub mod leader;
pub mod manifest;
pub mod plugin_kind;
mod status;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::config::{BackoffConfig, ControllerConfig};
use corbel_registry::plugins::Loader;
use corbel_runtime::capabilities::{Grants, KindCache, WatchedKinds};
use corbel_runtime::{Limits, LogContext, Plugin, Runtime};
use corbel_telemetry::Health;

pub use driver::ReconcileFailure;
pub use manifest::Manifest;

/// A controller plugin, loaded and checked: its manifest read, its grants checked against it,
/// its settings accepted.
pub struct LoadedController {
    pub name: String,
    pub plugin: Plugin,
    pub manifest: Manifest,
    pub grants: Arc<Grants>,
    settings: String,
    limits: Limits,
    concurrency: u16,
    backoff: BackoffConfig,
    log: Arc<LogContext>,
}

/// Loads one controller. The error says what is wrong with the plugin, its manifest, its grants
/// or its settings.
pub async fn load(
    runtime: &Arc<Runtime>,
    config: &ControllerConfig,
    loader: &Arc<Loader>,
) -> Result<LoadedController, String> {
    // Compiling (or reading the compiled artifact from the cache) blocks: off the async threads.
    let plugin = {
        let (runtime, loader, path) = (runtime.clone(), loader.clone(), config.plugin.clone());
        tokio::task::spawn_blocking(move || loader.load(&runtime, &path))
            .await
            .map_err(|e| format!("loading panicked: {e}"))?
            .map_err(|e| format!("{}: {e}", config.plugin.display()))?
    };
    if !plugin.is_controller() {
        return Err(format!(
            "{} is a policy, not a controller (it does not export corbel:plugin/reconciler): bind it under `bindings`",
            config.plugin.display()
        ));
    }
    let log = Arc::new(LogContext {
        binding: config.name.clone(),
        plugin: plugin.name().to_owned(),
    });
    let limits = Limits {
        timeout: config.timeout,
        memory: config.memory_limit,
    };
    let text = plugin
        .manifest(limits, &log)
        .await
        .map_err(|e| format!("calling the plugin's manifest() failed: {e}"))?;
    let manifest = Manifest::parse(&text)?;
    let grants = Grants::check_against(&config.grants, &manifest.capabilities)?;
    let settings = serde_json::to_string(&config.settings()).expect("JSON values serialize");
    match plugin.validate_settings(&settings, limits, &log).await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return Err(format!("the plugin refused its settings: {refusal}")),
        Err(e) => return Err(format!("validate-settings failed: the plugin {e}")),
    }
    Ok(LoadedController {
        name: config.name.clone(),
        plugin,
        manifest,
        grants: Arc::new(grants),
        settings,
        limits,
        concurrency: config.concurrency,
        backoff: config.backoff,
        log,
    })
}

/// Loads every configured controller, reports each in readiness, and runs those that loaded:
/// under leader election when it is configured, otherwise at once. Returns when `shutdown`
/// turns true and the reconciles in flight have finished.
pub async fn serve(
    runtime: Arc<Runtime>,
    configs: Vec<ControllerConfig>,
    client: kube::Client,
    leader_election: Option<crate::config::LeaderElectionConfig>,
    state: Arc<Health>,
    shutdown: watch::Receiver<bool>,
    loader: Arc<Loader>,
) {
    let mut loaded = Vec::new();
    for config in &configs {
        let started = Instant::now();
        match load(&runtime, config, &loader).await {
            Ok(controller) => {
                let kinds: Vec<String> = controller
                    .manifest
                    .reconciles
                    .iter()
                    .map(|r| format!("{} {}", r.api_version, r.kind))
                    .collect();
                tracing::info!(controller = %config.name, plugin = %controller.plugin.name(), kinds = ?kinds, elapsed_ms = started.elapsed().as_millis() as u64, "controller loaded");
                state.report_controller(&config.name, Ok(kinds));
                loaded.push(Arc::new(controller));
            }
            Err(e) => {
                tracing::error!(controller = %config.name, error = %e, "controller failed to load");
                state.report_controller(&config.name, Err(e));
            }
        }
    }
    if loaded.is_empty() {
        return;
    }
    match leader_election {
        None => {
            state.metrics.set_leader("none", true);
            run_all(client, loaded, state, shutdown).await;
        }
        Some(config) => {
            let identity = identity(&config);
            let elector = leader::Elector::new(client.clone(), &config, identity);
            let election_state = state.clone();
            leader::run(elector, config, &election_state, shutdown, move |stop| {
                run_all(client.clone(), loaded.clone(), state.clone(), stop)
            })
            .await;
        }
    }
}

/// Runs every controller until `stop` turns true, then lets reconciles in flight finish: one
/// loop per kind each reconciles.
pub async fn run_all(
    client: kube::Client,
    controllers: Vec<Arc<LoadedController>>,
    state: Arc<Health>,
    stop: watch::Receiver<bool>,
) {
    let kinds = Arc::new(KindCache::default());
    let mut tasks = Vec::new();
    for controller in controllers {
        let watched = Arc::new(WatchedKinds::default());
        for reconciled in controller.manifest.reconciles.clone() {
            let name = controller.name.clone();
            let spec = driver::Spec {
                gvk: reconciled.kind_ref().gvk(),
                finalizer: format!("corbel.dev/{name}"),
                concurrency: controller.concurrency,
                // A controller's own kind must be listable: a refusal (403) is a readiness
                // problem until the RBAC allows it, not only a log line (issue 18, bug 3).
                wait: driver::Wait {
                    unserved_hint: None,
                    forbidden: Some((
                        format!("controller/{name}"),
                        format!(
                            "listing {} objects is forbidden: Corbel's service account needs \
                             list, watch and patch on the kind and patch on its status \
                             (corbel kubernetes rbac prints the RBAC)",
                            reconciled.kind
                        ),
                    )),
                },
                name: name.clone(),
            };
            let reconciler = controller::KindController {
                hold_finalizer: format!(
                    "corbel.dev/used-by-{name}.{}",
                    reconciled.kind.to_lowercase()
                ),
                controller: controller.clone(),
                reconciled,
                kinds: kinds.clone(),
                watched: watched.clone(),
                holding: Default::default(),
            };
            tasks.push(tokio::spawn(driver::run(
                Arc::new(reconciler),
                spec,
                client.clone(),
                state.clone(),
                stop.clone(),
            )));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// This replica's name in a Lease: the configured identity, else `$POD_NAME`, else the host name
/// and process id.
pub(crate) fn identity(config: &crate::config::LeaderElectionConfig) -> String {
    config
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(hostname)
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", name.trim(), std::process::id())
}
