//! The `Plugin` kind (`corbel.dev/v1alpha1`, cluster-scoped): an admission binding whose plugin
//! comes from an OCI registry, managed through the API like any other object. Every replica
//! reconciles it (each serves webhooks): install (resolve the reference to a digest, verify its
//! signature, pull digest-checked into the cache, compile) off the request path, then swap the
//! binding in atomically. Requests in flight finish on the version they started with; a failed
//! upgrade keeps the previous version serving and says why in `status.lastError`.
//!
//! With several replicas, one writes the status (the holder of the Lease `{leaseName}-plugins`):
//! replicas whose installs disagree would otherwise overwrite each other's status without end,
//! each write waking every replica. A replica installs once per generation of a Plugin (and
//! retries a failure with backoff), never because a status was written; one whose install
//! failed and serves nothing for that Plugin turns its `/readyz` off and logs why at ERROR.
//!
//! The loop is the one every reconciled kind runs through (`crate::driver`): this module is the
//! [`Reconciler`] plugged into it, plus the Lease that decides who writes the status.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use corbel_admission::bindings::{BindingSet, SharedBindings};
use corbel_registry::plugins::{Loader, Settings, install};
use corbel_runtime::Runtime;
use corbel_telemetry::Health;

use crate::config::LeaderElectionConfig;
use crate::driver::{self, Kind, ReconcileFailure, Reconciler};
use api::PluginSpec;

pub mod api;

/// The CRD, as committed under `deploy/crds/` (generated from [`api`] by `cargo xtask crds`).
pub const CRD: &str = include_str!("../../../../deploy/crds/plugins.corbel.dev.yaml");

const FINALIZER: &str = "corbel.dev/plugin-binding";

/// Creates the CRD when the API does not have it (embedded mode installs it itself).
pub async fn ensure_crd(client: &kube::Client) -> Result<(), kube::Error> {
    create_crd_if_missing(client, CRD).await
}

/// Creates a CRD the host owns (committed YAML under `deploy/crds/`) unless the API has it.
pub async fn create_crd_if_missing(client: &kube::Client, yaml: &str) -> Result<(), kube::Error> {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_yaml_ng::from_str(yaml).expect("the committed CRD parses");
    if crds.get_opt(&crd.name_any()).await?.is_some() {
        return Ok(());
    }
    match crds.create(&PostParams::default(), &crd).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The Plugin kind's reconciler: what this replica installed, and whether it writes the status.
struct Plugins {
    bindings: Arc<SharedBindings>,
    runtime: Arc<Runtime>,
    /// The registry settings, with a lock file this replica can write once the kind is served.
    settings: Mutex<Settings>,
    health: Arc<Health>,
    /// Whether this replica writes the Plugins' status: always without leader election (one
    /// replica), else only while it holds the Plugin Lease.
    writes_status: watch::Receiver<bool>,
    writes: Arc<watch::Sender<bool>>,
    leader_election: Option<LeaderElectionConfig>,
    /// The election of the status writer, started once the kind is served.
    election: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// What this replica last did for each Plugin, by name.
    applied: Mutex<HashMap<String, Applied>>,
    /// Installs write the shared lock file: one at a time.
    installing: tokio::sync::Mutex<()>,
    /// The names a relist has listed so far (between its start and its end).
    seen: Mutex<Option<HashSet<String>>>,
}

/// The outcome of this replica's last install of a Plugin: a reconcile of the same generation
/// (its own status write, another replica's, a relist, leadership changing hands) reuses it
/// instead of contacting the registry again. Only a new generation, or the retry of a failure
/// once its backoff is over, installs.
#[derive(Clone)]
struct Applied {
    generation: i64,
    outcome: Result<Installed, String>,
    at: Instant,
    /// Failed installs in a row of this generation: the retry's exponent.
    failures: u32,
}

#[derive(Clone)]
struct Installed {
    digest: String,
    plugin: String,
    wit: String,
}

/// How long after the `failures`-th failed install of one generation it is tried again.
fn retry_delay(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(5));
    (RETRY_FIRST * factor).min(RETRY_MAX)
}

const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Reconciles `Plugin` objects until `stop` turns true. Every replica installs what the Plugins
/// name (each serves webhooks); with leader election, only the replica holding the Lease
/// `{leaseName}-plugins` writes their status, so that replicas that disagree (one cannot reach
/// the registry) do not overwrite each other. A replica whose install failed says so in its own
/// `/readyz` and log.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    bindings: Arc<SharedBindings>,
    health: Arc<Health>,
    runtime: Arc<Runtime>,
    settings: Settings,
    install_crd: bool,
    leader_election: Option<LeaderElectionConfig>,
    mut stop: watch::Receiver<bool>,
) {
    // Managed bindings join the configured ones: wait until those have loaded.
    while bindings.load().is_none() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    if install_crd && let Err(e) = ensure_crd(&client).await {
        tracing::warn!(error = %e, "failed to create the Plugin CRD");
    }
    let (writes, writes_status) = watch::channel(leader_election.is_none());
    let plugins = Arc::new(Plugins {
        bindings,
        runtime,
        settings: Mutex::new(settings),
        health: health.clone(),
        writes_status,
        writes: Arc::new(writes),
        leader_election,
        election: Mutex::default(),
        applied: Mutex::default(),
        installing: tokio::sync::Mutex::new(()),
        seen: Mutex::default(),
    });
    let spec = driver::Spec {
        name: "plugins".into(),
        gvk: GroupVersionKind::gvk("corbel.dev", "v1alpha1", "Plugin"),
        finalizer: FINALIZER.into(),
        concurrency: 0,
        wait: driver::Wait {
            // In Kubernetes mode the operator applies the CRD; the kind is optional.
            unserved_hint: Some(
                "apply deploy/crds/plugins.corbel.dev.yaml to manage bindings through the API",
            ),
            forbidden: Some(("plugins".into(), FORBIDDEN.into())),
        },
    };
    driver::run(plugins.clone(), spec, client, health, stop).await;
    let election = plugins.election.lock().unwrap().take();
    if let Some(election) = election {
        let _ = election.await;
    }
}

impl Reconciler for Plugins {
    /// Starts electing the status writer, and brings every Plugin's status up to date when this
    /// replica starts writing it (from what it installed already: no install).
    async fn start(
        &self,
        controller: Controller<DynamicObject>,
        kind: &Kind,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Controller<DynamicObject>> {
        {
            let mut settings = self.settings.lock().unwrap();
            *settings = with_writable_lock_file(settings.clone());
        }
        if let Some(mut config) = self.leader_election.clone() {
            config.lease_name = format!("{}-plugins", config.lease_name);
            let identity = crate::identity(&config);
            let elector = crate::leader::Elector::new(kind.client.clone(), &config, identity);
            let (health, stop, writes) = (self.health.clone(), stop.clone(), self.writes.clone());
            *self.election.lock().unwrap() = Some(tokio::spawn(async move {
                crate::leader::run(elector, config, &health, stop, move |mut stopped| {
                    let writes = writes.clone();
                    async move {
                        writes.send_replace(true);
                        let _ = stopped.wait_for(|s| *s).await;
                        writes.send_replace(false);
                    }
                })
                .await
            }));
        }
        let (elected_tx, elected_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watching = self.writes_status.clone();
        tokio::spawn(async move {
            while watching.changed().await.is_ok() {
                if *watching.borrow_and_update() && elected_tx.send(()).is_err() {
                    return;
                }
            }
        });
        let elected = futures::stream::unfold(elected_rx, |mut rx| async move {
            rx.recv().await.map(|()| ((), rx))
        });
        Some(controller.reconcile_all_on(elected))
    }

    async fn apply(
        &self,
        plugin: Arc<DynamicObject>,
        kind: &Kind,
    ) -> Result<Action, ReconcileFailure> {
        self.install_or_reuse(kind, &plugin).await
    }

    async fn cleanup(
        &self,
        plugin: Arc<DynamicObject>,
        _kind: &Kind,
    ) -> Result<Action, ReconcileFailure> {
        self.forget(&plugin.name_any());
        Ok(Action::await_change())
    }

    /// A failed install is retried when its backoff is over; a failed status write after 10 s.
    fn error_policy(&self, plugin: &DynamicObject, error: &ReconcileFailure, _: u32) -> Action {
        if matches!(error, ReconcileFailure::Transient { reason, .. } if reason == INSTALL_FAILED)
            && let Some(applied) = self.applied.lock().unwrap().get(&plugin.name_any())
        {
            let due = retry_delay(applied.failures).saturating_sub(applied.at.elapsed());
            return Action::requeue(due.max(Duration::from_millis(100)));
        }
        Action::requeue(Duration::from_secs(10))
    }

    /// Every replica drops a deleted Plugin's binding, including those that never see it being
    /// deleted (another replica's cleanup removed the shared finalizer first, or the deletion
    /// happened while the watch was down): from the watch's deletions and relists.
    fn on_watch_event(&self, event: &watcher::Event<DynamicObject>) {
        let seen = &self.seen;
        match event {
            watcher::Event::Delete(plugin) => self.forget(&plugin.name_any()),
            watcher::Event::Init => *seen.lock().unwrap() = Some(Default::default()),
            watcher::Event::InitApply(plugin) => {
                if let Some(seen) = seen.lock().unwrap().as_mut() {
                    seen.insert(plugin.name_any());
                }
            }
            watcher::Event::InitDone => {
                let Some(present) = seen.lock().unwrap().take() else {
                    return;
                };
                let managed: Vec<String> = self
                    .bindings
                    .load()
                    .as_ref()
                    .as_ref()
                    .map(|set| set.managed.iter().cloned().collect())
                    .unwrap_or_default();
                for name in managed.iter().filter(|name| !present.contains(*name)) {
                    self.forget(name);
                }
            }
            watcher::Event::Apply(_) => {}
        }
    }
}

/// The reason of a failed install, which the error policy retries with its own backoff.
const INSTALL_FAILED: &str = "InstallFailed";

fn install_failed(message: String) -> ReconcileFailure {
    ReconcileFailure::Transient {
        reason: INSTALL_FAILED.into(),
        message,
        retry_after: None,
    }
}

/// The settings with a lock file this replica can write. Its default place is beside the
/// configuration, which in a cluster is a ConfigMap mounted read-only: installs then failed after
/// the plugin had loaded. There the lock file goes into the cache folder (the Plugin objects
/// are the record of what is installed; the lock file only lets `corbel plugin list` see it).
fn with_writable_lock_file(mut settings: Settings) -> Settings {
    let folder = match settings.lock_file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let probe = folder.join(format!(".corbel-write-test-{}", std::process::id()));
    if std::fs::write(&probe, b"").is_ok() {
        let _ = std::fs::remove_file(&probe);
        return settings;
    }
    let fallback = settings.cache_dir.join("corbel.lock");
    tracing::warn!(
        lock_file = %settings.lock_file.display(),
        instead = %fallback.display(),
        "the lock file's folder is not writable (a ConfigMap mounted read-only?): Plugin installs record into the cache folder instead; set registry.lockFile to choose"
    );
    settings.lock_file = fallback;
    settings
}

impl Plugins {
    /// A Plugin is gone (or going): its binding, its outcome and its readiness problem go too.
    fn forget(&self, name: &str) {
        let managed = self
            .bindings
            .load()
            .as_ref()
            .as_ref()
            .is_some_and(|set| set.managed.contains(name));
        BindingSet::remove_managed(&self.bindings, name);
        self.applied.lock().unwrap().remove(name);
        self.health.report_problem(&format!("plugin/{name}"), None);
        if managed {
            tracing::info!(binding = %name, "Plugin deleted: binding removed");
        }
    }

    fn serving(&self, name: &str) -> bool {
        self.bindings
            .load()
            .as_ref()
            .as_ref()
            .is_some_and(|set| set.managed.contains(name) && set.entries.contains_key(name))
    }

    /// Resolves, verifies, pulls and compiles what the spec names, and swaps the binding in.
    async fn install(&self, name: &str, spec: &Value) -> Result<Installed, String> {
        let spec = PluginSpec::parse(spec)?;
        let reference = spec.reference.as_str();
        // Checked before any download, so that a bad spec costs nothing.
        spec.binding(name, reference)?;
        let _one_at_a_time = self.installing.lock().await;
        let settings = self.settings.lock().unwrap().clone();
        tracing::info!(plugin = %name, reference, "installing the Plugin");
        let installed = install(&settings, &self.runtime, reference, Some(name), false)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let oci = format!(
            "oci://{}",
            installed.entry.reference.trim_start_matches("oci://")
        );
        let config = spec.binding(name, &oci)?;
        let loader = Arc::new(Loader::open(&settings).map_err(|e| e.to_string())?);
        let loaded = BindingSet::upsert(&self.bindings, &self.runtime, &config, loader).await?;
        Ok(Installed {
            digest: installed.entry.manifest_digest,
            plugin: loaded.plugin.name().to_owned(),
            wit: loaded.plugin.wit_version().to_owned(),
        })
    }

    /// Installs what a new generation names (or retries a failure whose backoff is over), else
    /// reuses this replica's last outcome; writes the status when this replica writes it.
    async fn install_or_reuse(
        &self,
        kind: &Kind,
        plugin: &DynamicObject,
    ) -> Result<Action, ReconcileFailure> {
        let name = plugin.name_any();
        let spec = &plugin.data["spec"];
        let generation = plugin.meta().generation.unwrap_or(0);
        let known = self.applied.lock().unwrap().get(&name).cloned();
        let reuse = known.filter(|applied| {
            applied.generation == generation
                && match &applied.outcome {
                    Ok(_) => self.serving(&name),
                    Err(_) => applied.at.elapsed() < retry_delay(applied.failures),
                }
        });
        let result = match reuse {
            Some(applied) => applied.outcome,
            None => {
                let result = self.install(&name, spec).await;
                // Deleted while installing: the deletion was handled before the binding
                // existed, so drop it now.
                let current = kind
                    .api_for(plugin)
                    .get_opt(&name)
                    .await
                    .map_err(ReconcileFailure::Api)?;
                if current.and_then(|p| p.uid()) != plugin.uid() {
                    self.forget(&name);
                    return Ok(Action::await_change());
                }
                let mut applied = self.applied.lock().unwrap();
                let failures = match (&result, applied.get(&name)) {
                    (Ok(_), _) => 0,
                    (Err(_), Some(last)) if last.generation == generation => last.failures + 1,
                    (Err(_), _) => 1,
                };
                applied.insert(
                    name.clone(),
                    Applied {
                        generation,
                        outcome: result.clone(),
                        at: Instant::now(),
                        failures,
                    },
                );
                drop(applied);
                self.report(&name, &result);
                result
            }
        };
        if *self.writes_status.borrow() {
            self.write_status(kind, plugin, &result)
                .await
                .map_err(ReconcileFailure::Api)?;
        }
        match result {
            Ok(_) => Ok(Action::await_change()),
            Err(e) => Err(install_failed(e)),
        }
    }

    /// This replica's outcome, in its log and its readiness: a replica that serves nothing for
    /// a Plugin must not look ready (it would answer 404).
    fn report(&self, name: &str, result: &Result<Installed, String>) {
        let problem = match result {
            Ok(installed) => {
                tracing::info!(plugin = %name, digest = %installed.digest, "Plugin installed and serving");
                None
            }
            Err(e) if self.serving(name) => {
                tracing::error!(plugin = %name, error = %e, "Plugin upgrade failed on this replica; the previous version keeps serving");
                None
            }
            Err(e) => {
                tracing::error!(plugin = %name, error = %e, "Plugin install failed on this replica: its binding is not served here");
                Some(format!(
                    "Plugin {name} is not installed on this replica: {e}"
                ))
            }
        };
        self.health
            .report_problem(&format!("plugin/{name}"), problem);
    }

    /// Writes the status when it differs from what the object says (this replica holds the Lease).
    async fn write_status(
        &self,
        kind: &Kind,
        plugin: &DynamicObject,
        result: &Result<Installed, String>,
    ) -> Result<(), kube::Error> {
        let name = plugin.name_any();
        let previous = &plugin.data["status"];
        let mut status = match result {
            Ok(installed) => json!({
                "phase": "Ready", "resolvedDigest": installed.digest, "loadedDigest": installed.digest,
                "plugin": installed.plugin, "wit": installed.wit, "lastError": null,
            }),
            Err(e) => {
                let serving = self.serving(&name);
                json!({
                    "phase": if serving { "Degraded" } else { "Failed" },
                    // What the reference resolves to is not known: not the version serving.
                    "resolvedDigest": null,
                    "loadedDigest": if serving { previous["loadedDigest"].clone() } else { Value::Null },
                    "lastError": e,
                })
            }
        };
        if let Some(generation) = plugin.meta().generation {
            status["observedGeneration"] = generation.into();
        }
        let changed = status
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| &previous[k] != v && !(v.is_null() && previous.get(k).is_none()));
        if changed {
            tracing::info!(plugin = %name, phase = %status["phase"], "writing the Plugin's status");
            kind.write_status(plugin, status).await?;
        }
        Ok(())
    }
}

const FORBIDDEN: &str = "listing Plugins is forbidden: Corbel's service account needs list, watch and patch on plugins.corbel.dev and patch on plugins/status (corbel kubernetes rbac prints the RBAC)";
