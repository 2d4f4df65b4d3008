//! Reconciliation: controller plugins driven by kube-runtime.
//!
//! One kube-runtime [`Controller`] per reconciled kind, over `DynamicObject`, against whatever
//! API the [`kube::Client`] reaches: the embedded API (in process) or a Kubernetes API server.
//! For each object: the host's finalizer is added before the first reconcile; the plugin is
//! called in a fresh sandbox with its granted capabilities; its outcome becomes the status
//! (through the status subresource, with `observedGeneration` and `Ready`/`Processing`/`Blocked`),
//! Events, and the next requeue; a transient error is retried with exponential backoff, a
//! permanent one waits for the object to change. Deleting an object calls `cleanup`, and the
//! finalizer is removed only when it succeeds.
//!
//! The echo of a controller's own status write does not reconcile again (`OwnWrites`); Events
//! go through `events` (a new note is a new Event); Secrets a manifest's `holdsSecrets` names
//! carry the host's finalizer while an object names them, so that a namespace's deletion leaves
//! the credentials to the cleanups that need them.
//!
//! [`leader`] runs all of it only while this replica holds a Lease.

mod changes;
pub mod config;
mod events;
pub mod leader;
pub mod manifest;
pub mod plugin_kind;
mod status;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;

use crate::config::{BackoffConfig, ControllerConfig};
use corbel_registry::plugins::Loader;
use corbel_runtime::bindings::latest;
use corbel_runtime::capabilities::{CallContext, Grants, KindCache, Owner};
use corbel_runtime::{ControllerCallError, Limits, LogContext, Plugin, ReconcileCall, Runtime};
use corbel_telemetry::Health;

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

/// Why one reconcile failed, as the error policy sees it.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileFailure {
    #[error("{reason}: {message}")]
    Transient {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{reason}: {message}")]
    Permanent {
        reason: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the Kubernetes API failed: {0}")]
    Api(#[source] kube::Error),
}

impl ReconcileFailure {
    fn metric(&self) -> &'static str {
        match self {
            ReconcileFailure::Transient { .. } => "transient",
            ReconcileFailure::Permanent { .. } => "permanent",
            ReconcileFailure::Api(_) => "api_error",
        }
    }
}

/// What a controller's reconciles share.
struct Context {
    controller: Arc<LoadedController>,
    client: kube::Client,
    resource: ApiResource,
    namespaced: bool,
    kinds: Arc<KindCache>,
    recorder: events::Recorder,
    finalizer: String,
    /// Failed attempts in a row, by object uid: the backoff's exponent.
    retries: Mutex<HashMap<String, u32>>,
    own_writes: Arc<OwnWrites>,
    /// `holdsSecrets` of the manifest: paths of the object naming Secrets its cleanup needs.
    holds: Vec<String>,
    /// The finalizer that holds those Secrets: one per controller and kind.
    hold_finalizer: String,
    holding: tokio::sync::Mutex<Holding>,
    /// Every object of the kind, as the controller last saw it: who still names a Secret.
    store: kube::runtime::reflector::Store<DynamicObject>,
    state: Arc<Health>,
}

/// The Secrets this replica holds, by object uid, and the objects whose cleanup finished (still
/// in the store until their finalizer's removal is seen, but no longer needing anything).
#[derive(Default)]
struct Holding {
    held: HashMap<String, Vec<(String, String)>>,
    cleaned: std::collections::HashSet<String>,
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

/// Runs every controller until `stop` turns true, then lets reconciles in flight finish.
pub async fn run_all(
    client: kube::Client,
    controllers: Vec<Arc<LoadedController>>,
    state: Arc<Health>,
    stop: watch::Receiver<bool>,
) {
    let kinds = Arc::new(KindCache::default());
    let mut tasks = Vec::new();
    for controller in controllers {
        for reconciled in controller.manifest.reconciles.clone() {
            tasks.push(tokio::spawn(run_kind(
                controller.clone(),
                reconciled,
                client.clone(),
                kinds.clone(),
                state.clone(),
                stop.clone(),
            )));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
}

fn stopped(mut stop: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = stop.wait_for(|stop| *stop).await;
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}

/// Resolves a kind through discovery, waiting (and saying so) while the API does not serve it
/// yet: a CRD may be created after the host starts.
async fn resolve(
    client: &kube::Client,
    gvk: &GroupVersionKind,
    controller: &str,
    stop: &mut watch::Receiver<bool>,
) -> Option<(ApiResource, Scope)> {
    let mut warned = false;
    loop {
        match kube::discovery::pinned_kind(client, gvk).await {
            Ok((resource, capabilities)) => {
                if warned {
                    tracing::info!(controller, kind = %corbel_runtime::capabilities::kind_name(gvk), "the kind is served now");
                }
                return Some((resource, capabilities.scope));
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(controller, kind = %corbel_runtime::capabilities::kind_name(gvk), error = %e, "waiting for the API to serve this kind (is its CRD installed?)");
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|stop| *stop) => return None,
        }
    }
}

async fn run_kind(
    controller: Arc<LoadedController>,
    reconciled: manifest::Reconciled,
    client: kube::Client,
    kinds: Arc<KindCache>,
    state: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    let name = controller.name.clone();
    let Some((resource, scope)) =
        resolve(&client, &reconciled.kind_ref().gvk(), &name, &mut stop).await
    else {
        return;
    };
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    // The objects' own changes, less the status writes of this controller's own reconciles: a
    // write that only records an outcome must not call the plugin again (a second call of every
    // new object, a second Warning Event of every failure).
    let own_writes = Arc::new(OwnWrites::default());
    let writer = kube::runtime::reflector::store::Writer::new(resource.clone());
    let reader = writer.as_reader();
    let filter = own_writes.clone();
    let trigger = kube::runtime::reflector(writer, watcher(api, watcher::Config::default()))
        .applied_objects()
        .try_filter(move |object| std::future::ready(filter.wakes(object)));
    let mut runtime_controller = Controller::for_stream_with(trigger, reader, resource.clone())
        .with_config(controller::Config::default().concurrency(controller.concurrency));
    for owned in &reconciled.owns {
        let Some((owned_resource, _)) = resolve(&client, &owned.gvk(), &name, &mut stop).await
        else {
            return;
        };
        runtime_controller = runtime_controller.owns_with(
            Api::<DynamicObject>::all_with(client.clone(), &owned_resource),
            owned_resource,
            watcher::Config::default(),
        );
    }
    for watch in &reconciled.watches {
        let Some((watched, _)) = resolve(&client, &watch.kind_ref().gvk(), &name, &mut stop).await
        else {
            return;
        };
        let watched_api = Api::<DynamicObject>::all_with(client.clone(), &watched);
        let changes = changes::watch(watched_api, watch.status_fields.clone());
        let parent = resource.clone();
        runtime_controller = match (&watch.referenced_by, &watch.parent_field) {
            (Some(path), _) => {
                let (store, path) = (runtime_controller.store(), path.clone());
                let namespace_field = watch.namespace_field.clone();
                runtime_controller.watches_stream_with(
                    changes,
                    move |other| {
                        let (other_name, other_namespace) = (other.name_any(), other.namespace());
                        store
                            .state()
                            .into_iter()
                            .filter(|o| {
                                let namespace = match &namespace_field {
                                    Some(field) => field_of(o, field),
                                    None => o.namespace(),
                                };
                                namespace == other_namespace
                                    && field_of(o, &path).as_deref() == Some(other_name.as_str())
                            })
                            .map(|o| ObjectRef::from_obj_with(o.as_ref(), parent.clone()))
                            .collect::<Vec<_>>()
                    },
                    watched,
                )
            }
            (None, Some(path)) => {
                let path = path.clone();
                runtime_controller.watches_stream_with(
                    changes,
                    move |other| {
                        field_of(&other, &path).map(|parent_name| {
                            let reference = ObjectRef::new_with(&parent_name, parent.clone());
                            match other.namespace() {
                                Some(namespace) => reference.within(&namespace),
                                None => reference,
                            }
                        })
                    },
                    watched,
                )
            }
            (None, None) => unreachable!("Manifest::parse checks each watch names a field"),
        };
    }
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| hostname());
    let context = Arc::new(Context {
        recorder: events::Recorder::new(client.clone(), format!("corbel-{name}"), identity),
        finalizer: format!("corbel.dev/{name}"),
        controller: controller.clone(),
        client,
        namespaced: scope == Scope::Namespaced,
        resource: resource.clone(),
        kinds,
        retries: Mutex::default(),
        own_writes,
        hold_finalizer: format!("corbel.dev/used-by-{name}.{}", resource.kind.to_lowercase()),
        holds: reconciled.holds_secrets.clone(),
        holding: Default::default(),
        store: runtime_controller.store(),
        state,
    });
    tracing::info!(controller = %name, kind = %resource.kind, concurrency = controller.concurrency, "reconciling");
    // kube-runtime holds its runner until the first list succeeds, and a graceful shutdown waits
    // for that runner: with the list refused (403) a stop would wait out the grace period. Nothing
    // can be in flight before that first list, so such a stop returns at once.
    let reader = runtime_controller.store();
    let mut never_listed = stop.clone();
    let never_listed = async move {
        let _ = never_listed.wait_for(|stop| *stop).await;
        if tokio::time::timeout(Duration::ZERO, reader.wait_until_ready())
            .await
            .is_ok()
        {
            std::future::pending::<()>().await;
        }
    };
    let running = runtime_controller
        .graceful_shutdown_on(stopped(stop))
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            if let Err(e) = result {
                match e {
                    controller::Error::ReconcilerFailed(..) => {} // logged where it happened
                    other => tracing::warn!(controller = %name, error = %other, "controller error"),
                }
            }
            std::future::ready(())
        });
    tokio::select! {
        _ = running => {}
        _ = never_listed => {
            tracing::warn!(controller = %name, kind = %resource.kind, "stopping before the kind could ever be listed (is listing it forbidden?)");
        }
    }
    tracing::info!(controller = %name, kind = %resource.kind, "stopped reconciling");
}

/// The objects as this controller's last status write left them, by uid: a watch event showing
/// exactly that is the echo of the write, not a change to reconcile.
#[derive(Default)]
struct OwnWrites {
    /// The hashes of the object without its status and of its status, as the last write is
    /// expected to leave it (recorded before the write: its watch event can come before the
    /// write's answer) and as the answer says it did.
    written: Mutex<HashMap<String, Vec<(u64, u64)>>>,
}

impl OwnWrites {
    fn hashes(object: &DynamicObject) -> (u64, u64) {
        use std::hash::{Hash, Hasher};
        // Keys in sorted order: an API server's answer need not keep the order of a merge.
        fn feed(value: &Value, hasher: &mut std::collections::hash_map::DefaultHasher) {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    for key in keys {
                        key.hash(hasher);
                        feed(&map[key], hasher);
                    }
                    '}'.hash(hasher);
                }
                Value::Array(items) => {
                    items.iter().for_each(|item| feed(item, hasher));
                    ']'.hash(hasher);
                }
                other => other.to_string().hash(hasher),
            }
        }
        let hash = |value: &Value| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            feed(value, &mut hasher);
            hasher.finish()
        };
        let mut rest = serde_json::to_value(object).unwrap_or_default();
        let status = rest
            .as_object_mut()
            .and_then(|o| o.remove("status"))
            .unwrap_or_default();
        if let Some(metadata) = rest.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("resourceVersion");
            metadata.remove("managedFields");
        }
        (hash(&rest), hash(&status))
    }

    /// Before a merge patch of `status` to `object`: what the object will be.
    fn expect(&self, object: &DynamicObject, status: &Value) {
        let Some(uid) = object.uid() else {
            return;
        };
        let mut expected = object.clone();
        let current = expected.data.as_object_mut().map(|data| {
            data.entry("status")
                .or_insert_with(|| Value::Object(Default::default()))
        });
        if let Some(current) = current {
            json_patch::merge(current, status);
        }
        let hashes = Self::hashes(&expected);
        self.written.lock().unwrap().insert(uid, vec![hashes]);
    }

    /// After the write: what the object is, if not what was expected.
    fn record(&self, written: &DynamicObject) {
        if let Some(uid) = written.uid() {
            let hashes = Self::hashes(written);
            let mut all = self.written.lock().unwrap();
            let known = all.entry(uid).or_default();
            if !known.contains(&hashes) {
                known.push(hashes);
            }
        }
    }

    fn forget(&self, object: &DynamicObject) {
        if let Some(uid) = object.uid() {
            self.written.lock().unwrap().remove(&uid);
        }
    }

    /// Whether a watched version of an object is worth a reconcile: anything but the echo of
    /// this controller's own status write.
    fn wakes(&self, object: &DynamicObject) -> bool {
        let Some(uid) = object.uid() else {
            return true;
        };
        let hashes = Self::hashes(object);
        !self
            .written
            .lock()
            .unwrap()
            .get(&uid)
            .is_some_and(|known| known.contains(&hashes))
    }
}

/// The string at a dotted path of an object (`metadata.*` included).
fn field_of(object: &DynamicObject, path: &str) -> Option<String> {
    if path.starts_with("metadata.") {
        let value = serde_json::to_value(object).ok()?;
        return manifest::field(&value, path).map(str::to_owned);
    }
    manifest::field(&object.data, path).map(str::to_owned)
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

fn millis(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

impl Context {
    fn api_for(&self, object: &DynamicObject) -> Api<DynamicObject> {
        match (self.namespaced, object.namespace()) {
            (true, Some(namespace)) => {
                Api::namespaced_with(self.client.clone(), &namespace, &self.resource)
            }
            _ => Api::all_with(self.client.clone(), &self.resource),
        }
    }

    /// Calls the plugin and applies its outcome: status, events, and what happens next.
    async fn call(
        &self,
        which: ReconcileCall,
        object: Arc<DynamicObject>,
        api: &Api<DynamicObject>,
    ) -> Result<Action, ReconcileFailure> {
        let controller = &self.controller;
        if which == ReconcileCall::Reconcile {
            self.hold_secrets(&object).await;
        }
        let json = serde_json::to_string(object.as_ref()).expect("objects serialize");
        let context = CallContext {
            client: self.client.clone(),
            grants: controller.grants.clone(),
            owner: Owner {
                api_version: self.resource.api_version.clone(),
                kind: self.resource.kind.clone(),
                name: object.name_any(),
                uid: object.uid().unwrap_or_default(),
                namespace: object.namespace(),
            },
            kinds: self.kinds.clone(),
            plugin: controller.name.clone(),
        };
        let result = controller
            .plugin
            .reconcile(
                which,
                &json,
                &controller.settings,
                controller.limits,
                &controller.log,
                context,
            )
            .await;
        let verb = match which {
            ReconcileCall::Reconcile => "reconcile",
            ReconcileCall::Cleanup => "cleanup",
        };
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                let (f, permanent) = match error {
                    latest::ReconcileError::Transient(f) => (f, false),
                    latest::ReconcileError::Permanent(f) => (f, true),
                };
                let retry_after = millis(f.retry_after_ms);
                return Err(self
                    .failed(&object, api, f.reason, f.message, retry_after, permanent)
                    .await);
            }
            Err(ControllerCallError::Sandbox(e)) => {
                let message = format!("{verb} of plugin {} {e}", controller.plugin.name());
                return Err(self
                    .failed(&object, api, "PluginFailed".into(), message, None, false)
                    .await);
            }
            Err(ControllerCallError::Load(e)) => {
                return Err(self
                    .failed(
                        &object,
                        api,
                        "PluginFailed".into(),
                        e.to_string(),
                        None,
                        true,
                    )
                    .await);
            }
        };
        let plugin_status = match outcome.status.as_deref().map(serde_json::from_str::<Value>) {
            None => None,
            Some(Ok(value)) if value.is_object() => Some(value),
            Some(_) => {
                let message =
                    format!("the plugin's {verb} returned a status that is not a JSON object");
                return Err(self
                    .failed(&object, api, "InvalidOutcome".into(), message, None, false)
                    .await);
            }
        };
        if which == ReconcileCall::Reconcile {
            self.write_status(
                &object,
                api,
                plugin_status.as_ref(),
                &status::Ending::Reconciled,
                &outcome.conditions,
            )
            .await
            .map_err(ReconcileFailure::Api)?;
        }
        for event in &outcome.events {
            let warning = matches!(event.type_, latest::EventType::Warning);
            self.publish(&object, warning, &event.reason, &event.action, &event.note)
                .await;
        }
        self.retries
            .lock()
            .unwrap()
            .remove(&object.uid().unwrap_or_default());
        if which == ReconcileCall::Cleanup {
            self.own_writes.forget(&object);
            self.release_secrets(&object).await;
        }
        Ok(match outcome.requeue_after_ms {
            Some(ms) => Action::requeue(Duration::from_millis(ms)),
            None => Action::await_change(),
        })
    }

    /// The Secrets `object` names at its `holdsSecrets` paths, as (namespace, name).
    fn named_secrets(&self, object: &DynamicObject) -> Vec<(String, String)> {
        let Some(namespace) = object.namespace() else {
            return Vec::new();
        };
        let mut named: Vec<(String, String)> = self
            .holds
            .iter()
            .filter_map(|path| field_of(object, path))
            .filter(|name| !name.is_empty())
            .map(|name| (namespace.clone(), name))
            .collect();
        named.sort();
        named.dedup();
        named
    }

    /// Before a reconcile: holds the Secrets the object names (those its grants let the plugin
    /// read; others it could not use anyway), and lets go of those it named before and no
    /// longer does, when no other object names them.
    async fn hold_secrets(&self, object: &DynamicObject) {
        if self.holds.is_empty() {
            return;
        }
        let named = self.named_secrets(object);
        let uid = object.uid().unwrap_or_default();
        for (namespace, name) in &named {
            let granted = self
                .controller
                .grants
                .secrets
                .iter()
                .any(|grant| grant.allows(Some(namespace.as_str()), namespace, name));
            if granted && let Err(e) = self.set_hold(namespace, name, true).await {
                tracing::warn!(controller = %self.controller.name, object = %object_name(object), secret = %format!("{namespace}/{name}"), error = %e, "failed to hold the Secret with a finalizer (RBAC: patch on secrets; corbel kubernetes rbac prints it): deleting its namespace may take it before the cleanups that need it");
            }
        }
        let dropped: Vec<(String, String)> = {
            let mut holding = self.holding.lock().await;
            let previous = holding.held.insert(uid.clone(), named.clone());
            previous
                .unwrap_or_default()
                .into_iter()
                .filter(|secret| !named.contains(secret))
                .collect()
        };
        for secret in dropped {
            self.release_if_unused(&secret, &uid).await;
        }
    }

    /// After a cleanup succeeded: lets go of the Secrets no other object of the kind names.
    async fn release_secrets(&self, object: &DynamicObject) {
        if self.holds.is_empty() {
            return;
        }
        let uid = object.uid().unwrap_or_default();
        {
            let mut holding = self.holding.lock().await;
            holding.held.remove(&uid);
            let present: std::collections::HashSet<String> =
                self.store.state().iter().filter_map(|o| o.uid()).collect();
            holding.cleaned.retain(|cleaned| present.contains(cleaned));
            holding.cleaned.insert(uid.clone());
        }
        for secret in self.named_secrets(object) {
            self.release_if_unused(&secret, &uid).await;
        }
    }

    /// Removes the hold on a Secret unless another object (not `uid`, not cleaned up) names it.
    /// One at a time: two cleanups finishing together each see the other as cleaned.
    async fn release_if_unused(&self, (namespace, name): &(String, String), uid: &str) {
        let holding = self.holding.lock().await;
        let in_use = self.store.state().iter().any(|other| {
            let other_uid = other.uid().unwrap_or_default();
            other_uid != uid
                && !holding.cleaned.contains(&other_uid)
                && self
                    .named_secrets(other)
                    .iter()
                    .any(|(n, s)| n == namespace && s == name)
        });
        if in_use {
            return;
        }
        if let Err(e) = self.set_hold(namespace, name, false).await {
            tracing::warn!(controller = %self.controller.name, secret = %format!("{namespace}/{name}"), error = %e, "failed to let go of the Secret (remove the finalizer {} by hand if it is not retried)", self.hold_finalizer);
        }
    }

    /// Adds (`hold`) or removes this controller's finalizer on a Secret, if it is there.
    async fn set_hold(&self, namespace: &str, name: &str, hold: bool) -> Result<(), kube::Error> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), namespace);
        let Some(secret) = api.get_opt(name).await? else {
            return Ok(());
        };
        let finalizers = secret.metadata.finalizers.clone().unwrap_or_default();
        let at = finalizers.iter().position(|f| *f == self.hold_finalizer);
        let finalizer = &self.hold_finalizer;
        let patch = match (hold, at) {
            (true, Some(_)) | (false, None) => return Ok(()),
            // A Secret being deleted takes no new finalizer (the API server refuses it).
            (true, None) if secret.metadata.deletion_timestamp.is_some() => return Ok(()),
            (true, None) if finalizers.is_empty() => serde_json::json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": secret.metadata.resource_version},
                {"op": "add", "path": "/metadata/finalizers", "value": [finalizer]},
            ]),
            (true, None) => serde_json::json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": secret.metadata.resource_version},
                {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer},
            ]),
            (false, Some(i)) => serde_json::json!([
                {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": finalizer},
                {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
            ]),
        };
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a valid JSON patch");
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => {
                let verb = if hold { "holding" } else { "let go of" };
                tracing::info!(controller = %self.controller.name, secret = %format!("{namespace}/{name}"), finalizer = %self.hold_finalizer, "{verb} the Secret");
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records a failure on the object (status and a Warning event) and returns it.
    async fn failed(
        &self,
        object: &DynamicObject,
        api: &Api<DynamicObject>,
        reason: String,
        message: String,
        retry_after: Option<Duration>,
        permanent: bool,
    ) -> ReconcileFailure {
        let reason = if reason.is_empty() {
            "Failed".to_owned()
        } else {
            reason
        };
        let ending = if permanent {
            status::Ending::Permanent {
                reason: &reason,
                message: &message,
            }
        } else {
            status::Ending::Transient {
                reason: &reason,
                message: &message,
            }
        };
        tracing::warn!(
            controller = %self.controller.name,
            kind = %self.resource.kind,
            object = %object_name(object),
            reason, message, permanent,
            "reconcile failed"
        );
        if let Err(e) = self.write_status(object, api, None, &ending, &[]).await {
            return ReconcileFailure::Api(e);
        }
        self.publish(object, true, &reason, "Reconcile", &message)
            .await;
        if permanent {
            ReconcileFailure::Permanent {
                reason,
                message,
                retry_after,
            }
        } else {
            ReconcileFailure::Transient {
                reason,
                message,
                retry_after,
            }
        }
    }

    /// Writes the status through the status subresource, only when it changes.
    async fn write_status(
        &self,
        object: &DynamicObject,
        api: &Api<DynamicObject>,
        plugin_status: Option<&Value>,
        ending: &status::Ending<'_>,
        conditions: &[latest::Condition],
    ) -> Result<(), kube::Error> {
        let current = object.data.get("status");
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let generation = object.meta().generation;
        let next = status::next(current, plugin_status, ending, conditions, generation, &now);
        if current == Some(&next) {
            return Ok(());
        }
        // A merge patch of the plugin's fields (so that its nulls delete) plus the host's own.
        let mut patch = plugin_status
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        patch["conditions"] = next["conditions"].clone();
        if let Some(generation) = generation {
            patch["observedGeneration"] = generation.into();
        }
        self.own_writes.expect(object, &patch);
        match api
            .patch_status(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": patch})),
            )
            .await
        {
            Ok(written) => {
                self.own_writes.record(&written);
                Ok(())
            }
            // Gone already (its cleanup finished elsewhere): nothing to record.
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn publish(
        &self,
        object: &DynamicObject,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let action = if action.is_empty() {
            "Reconcile"
        } else {
            action
        };
        if let Err(e) = self
            .recorder
            .publish(
                &object.object_ref(&self.resource),
                warning,
                &truncate(reason, 128),
                &truncate(action, 128),
                &truncate(note, 1024),
            )
            .await
        {
            tracing::warn!(controller = %self.controller.name, object = %object_name(object), error = %e, "failed to record an event");
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    corbel_runtime::prefix(text, max).to_owned()
}

fn object_name(object: &DynamicObject) -> String {
    match object.namespace() {
        Some(namespace) => format!("{namespace}/{}", object.name_any()),
        None => object.name_any(),
    }
}

async fn reconcile(
    object: Arc<DynamicObject>,
    context: Arc<Context>,
) -> Result<Action, ReconcileFailure> {
    let controller = &context.controller;
    let metrics = &context.state.metrics;
    let _in_flight = metrics.reconcile_started(&controller.name, &context.resource.kind);
    let started = Instant::now();
    let api = context.api_for(&object);
    let result = finalizer(&api, &context.finalizer, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => {
                context.call(ReconcileCall::Reconcile, object, &api).await
            }
            finalizer::Event::Cleanup(object) => {
                context.call(ReconcileCall::Cleanup, object, &api).await
            }
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
            ReconcileFailure::Api(e)
        }
        other => ReconcileFailure::Transient {
            reason: "FinalizerFailed".into(),
            message: other.to_string(),
            retry_after: None,
        },
    });
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.metric(),
    };
    if let Err(ReconcileFailure::Api(e)) = &result {
        tracing::warn!(controller = %controller.name, kind = %context.resource.kind, error = %e, "a write to the API failed; retrying with backoff");
    }
    metrics.record_reconcile(
        &controller.name,
        &context.resource.kind,
        label,
        started.elapsed().as_secs_f64(),
    );
    result
}

fn error_policy(
    object: Arc<DynamicObject>,
    error: &ReconcileFailure,
    context: Arc<Context>,
) -> Action {
    let uid = object.uid().unwrap_or_default();
    let mut retries = context.retries.lock().unwrap();
    let action = match error {
        ReconcileFailure::Permanent { retry_after, .. } => {
            retries.remove(&uid);
            match retry_after {
                Some(after) => Action::requeue(*after),
                None => Action::await_change(),
            }
        }
        ReconcileFailure::Transient {
            retry_after: Some(after),
            ..
        } => {
            *retries.entry(uid).or_default() += 1;
            Action::requeue(*after)
        }
        ReconcileFailure::Transient { .. } | ReconcileFailure::Api(_) => {
            let attempts = retries.entry(uid).or_default();
            *attempts += 1;
            Action::requeue(backoff(&context.controller.backoff, *attempts))
        }
    };
    context.state.metrics.set_retrying(
        &context.controller.name,
        &context.resource.kind,
        retries.len(),
    );
    action
}

/// `initial * 2^(attempt-1)`, capped at `max`.
fn backoff(config: &BackoffConfig, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    config.initial.saturating_mul(factor).min(config.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_echo_of_an_own_status_write_wakes_nothing_and_any_other_change_does() {
        let before = object(serde_json::json!({
            "apiVersion": "test.corbel.dev/v1", "kind": "Probe",
            "metadata": {"name": "p", "uid": "u1", "resourceVersion": "7", "generation": 2},
            "spec": {"message": "hi"},
            "status": {"echo": "old", "stale": true, "observedGeneration": 1},
        }));
        let own = OwnWrites::default();
        own.expect(
            &before,
            &serde_json::json!({"echo": "new", "stale": null, "observedGeneration": 2}),
        );
        // The watch event may come before the write's answer: the expectation alone holds it,
        // whatever the server's key order, resourceVersion and managedFields.
        let echo = object(serde_json::json!({
            "kind": "Probe", "apiVersion": "test.corbel.dev/v1",
            "status": {"observedGeneration": 2, "echo": "new"},
            "spec": {"message": "hi"},
            "metadata": {"generation": 2, "uid": "u1", "name": "p", "resourceVersion": "8",
                         "managedFields": [{"manager": "corbel"}]},
        }));
        assert!(!own.wakes(&echo));
        let mut other_status = echo.clone();
        other_status.data["status"]["echo"] = "someone else's".into();
        assert!(own.wakes(&other_status));
        let mut other_spec = echo.clone();
        other_spec.data["spec"]["message"] = "changed".into();
        assert!(own.wakes(&other_spec));
        let mut labelled = echo.clone();
        labelled.metadata.labels = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(own.wakes(&labelled));
        // An object never written wakes.
        let mut stranger = echo;
        stranger.metadata.uid = Some("u2".into());
        assert!(own.wakes(&stranger));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
        };
        let delays: Vec<u128> = (1..=6).map(|n| backoff(&config, n).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff(&config, 1000), Duration::from_secs(5));
    }
}
