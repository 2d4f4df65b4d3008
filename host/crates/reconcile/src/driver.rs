//! The one controller loop: every kind the host reconciles runs through [`run`], the kinds of the
//! controller plugins (`crate::controller`) and the `Plugin` kind (`crate::plugin_kind`) alike.
//! What differs between them is a [`Reconciler`]; the loop owns the rest, so that every kind
//! behaves the same way:
//!
//! - it waits (and says so, once) until the API serves the kind: a CRD may come after the host;
//! - one kube-runtime `Controller` over a reflector of the kind watches and relists, runs one
//!   reconcile per object at a time and merges the changes that arrive meanwhile into the next;
//! - the host's finalizer is on every object before its first reconcile, and goes only when the
//!   reconciler's `cleanup` succeeded;
//! - status writes go through the status subresource, and their echo in the watch wakes nothing
//!   ([`OwnWrites`]): a write that only records an outcome must not reconcile again;
//! - Events go through [`crate::events`];
//! - reconciles, their duration and the objects retrying are counted in `Health`'s metrics, and a
//!   failure's next attempt is the reconciler's to decide, with the failures in a row counted here;
//! - on stop, reconciles in flight finish; a stop before the kind could ever be listed returns at
//!   once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;

use corbel_runtime::capabilities::kind_name;
use corbel_telemetry::Health;

use crate::events;

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

/// What one kind's reconciles do; [`run`] does everything else.
pub(crate) trait Reconciler: Send + Sync + 'static {
    /// Once the kind is served, before the first watch: adds the kind's other triggers to its
    /// controller (kinds it owns or watches, a stream that reconciles everything). `None` when
    /// `stop` turned true first.
    fn start(
        &self,
        controller: Controller<DynamicObject>,
        _kind: &Kind,
        _stop: &mut watch::Receiver<bool>,
    ) -> impl Future<Output = Option<Controller<DynamicObject>>> + Send {
        std::future::ready(Some(controller))
    }

    /// An object that is not being deleted, with the host's finalizer on it.
    fn apply(
        &self,
        object: Arc<DynamicObject>,
        kind: &Kind,
    ) -> impl Future<Output = Result<Action, ReconcileFailure>> + Send;

    /// An object being deleted: the finalizer goes when this succeeds.
    fn cleanup(
        &self,
        object: Arc<DynamicObject>,
        kind: &Kind,
    ) -> impl Future<Output = Result<Action, ReconcileFailure>> + Send;

    /// When a failed reconcile is tried again; `failures` counts this object's failures in a row
    /// (0 after a permanent one, which starts the count again).
    fn error_policy(
        &self,
        object: &DynamicObject,
        error: &ReconcileFailure,
        failures: u32,
    ) -> Action;

    /// Every event of the kind's watch, before anything is filtered out: deletions and relists.
    fn on_watch_event(&self, _event: &watcher::Event<DynamicObject>) {}
}

/// Which kind a loop reconciles, and how.
pub(crate) struct Spec {
    /// The loop's name: the controller's, or `plugins` for the Plugin kind. Logs and metrics
    /// carry it, and Events name `corbel-{name}` as their controller.
    pub name: String,
    pub gvk: GroupVersionKind,
    /// The host's finalizer on every object of the kind.
    pub finalizer: String,
    /// How many objects reconcile at once (0: no limit).
    pub concurrency: u16,
    /// How to wait while the kind is not served.
    pub wait: Wait,
}

/// How [`run`] waits for its kind.
pub(crate) struct Wait {
    /// For an optional kind: said once at INFO while it is not served. Without it the kind is one
    /// a controller needs, and the wait is a WARN.
    pub unserved_hint: Option<&'static str>,
    /// For a kind this replica must be able to list: the loop also waits until it can, and a
    /// refusal (403) is a readiness problem under this key, with this message, until it is fixed.
    /// Without it, a refused list is kube-runtime's to retry (and log) once the loop runs.
    pub forbidden: Option<(String, String)>,
}

/// One kind as the API serves it, and what every reconcile of it shares: the API, status
/// writes, Events, metrics.
pub(crate) struct Kind {
    /// The loop's name (`Spec::name`).
    pub name: String,
    pub client: kube::Client,
    pub resource: ApiResource,
    pub scope: Scope,
    /// Every object of the kind as the watch last saw it.
    pub store: Store<DynamicObject>,
    recorder: events::Recorder,
    own_writes: Arc<OwnWrites>,
    health: Arc<Health>,
}

impl Kind {
    /// Readiness and metrics, for what a reconciler waits on before its loop runs.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// The API of `object`'s namespace (all of the kind's for a cluster-scoped kind).
    pub(crate) fn api_for(&self, object: &DynamicObject) -> Api<DynamicObject> {
        match (self.scope == Scope::Namespaced, object.namespace()) {
            (true, Some(namespace)) => {
                Api::namespaced_with(self.client.clone(), &namespace, &self.resource)
            }
            _ => Api::all_with(self.client.clone(), &self.resource),
        }
    }

    /// Merges `status` into the object's status through the status subresource. Its echo in the
    /// watch wakes nothing; an object gone already is not an error (its cleanup finished elsewhere).
    pub(crate) async fn write_status(
        &self,
        object: &DynamicObject,
        status: Value,
    ) -> Result<(), kube::Error> {
        self.own_writes.expect(object, &status);
        match self
            .api_for(object)
            .patch_status(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
        {
            Ok(written) => {
                self.own_writes.record(&written);
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Publishes an Event about `object` (reason and action cut to 128 bytes, the note to 1 KiB);
    /// a failure is logged, never the reconcile's.
    pub(crate) async fn publish(
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
        let cut = |text: &str, max: usize| corbel_runtime::prefix(text, max).to_owned();
        if let Err(e) = self
            .recorder
            .publish(
                &object.object_ref(&self.resource),
                warning,
                &cut(reason, 128),
                &cut(action, 128),
                &cut(note, 1024),
            )
            .await
        {
            tracing::warn!(controller = %self.name, object = %object_name(object), error = %e, "failed to record an event");
        }
    }
}

/// `namespace/name`, or `name` for a cluster-scoped object.
pub(crate) fn object_name(object: &DynamicObject) -> String {
    match object.namespace() {
        Some(namespace) => format!("{namespace}/{}", object.name_any()),
        None => object.name_any(),
    }
}

struct Context<R> {
    reconciler: Arc<R>,
    kind: Kind,
    finalizer: String,
    /// Failed attempts in a row, by object uid.
    failures: Mutex<HashMap<String, u32>>,
}

/// Reconciles one kind with `reconciler` until `stop` turns true, then lets the reconciles in
/// flight finish.
pub(crate) async fn run<R: Reconciler>(
    reconciler: Arc<R>,
    spec: Spec,
    client: kube::Client,
    health: Arc<Health>,
    mut stop: watch::Receiver<bool>,
) {
    let name = spec.name.clone();
    let Some((resource, scope)) = wait_until_served(
        &client,
        &name,
        &spec.gvk,
        &spec.wait,
        Some(&health),
        &mut stop,
    )
    .await
    else {
        return;
    };
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
    let own_writes = Arc::new(OwnWrites::default());
    let writer = kube::runtime::reflector::store::Writer::new(resource.clone());
    let reader = writer.as_reader();
    let (filter, observer) = (own_writes.clone(), reconciler.clone());
    let trigger = kube::runtime::reflector(writer, watcher(api, watcher::Config::default()))
        .inspect_ok(move |event| observer.on_watch_event(event))
        .applied_objects()
        .try_filter(move |object| std::future::ready(filter.wakes(object)));
    let controller = Controller::for_stream_with(trigger, reader.clone(), resource.clone())
        .with_config(controller::Config::default().concurrency(spec.concurrency));
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| crate::hostname());
    let kind = Kind {
        recorder: events::Recorder::new(client.clone(), format!("corbel-{name}"), identity),
        name: name.clone(),
        client,
        resource: resource.clone(),
        scope,
        store: reader.clone(),
        own_writes,
        health,
    };
    let Some(controller) = reconciler.start(controller, &kind, &mut stop).await else {
        return;
    };
    let context = Arc::new(Context {
        reconciler,
        kind,
        finalizer: spec.finalizer,
        failures: Mutex::default(),
    });
    tracing::info!(controller = %name, kind = %resource.kind, concurrency = spec.concurrency, "reconciling");
    // kube-runtime holds its runner until the first list succeeds, and a graceful shutdown waits
    // for that runner: with the list refused (403) a stop would wait out the grace period. Nothing
    // can be in flight before that first list, so such a stop returns at once.
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
    let running = controller
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

/// Waits until discovery finds the kind (and, with `wait.forbidden`, until it can be listed),
/// trying every 2 s: the loop's own kind, and those a controller owns or watches. `None` when
/// `stop` turned true first.
pub(crate) async fn wait_until_served(
    client: &kube::Client,
    controller: &str,
    gvk: &GroupVersionKind,
    wait: &Wait,
    health: Option<&Health>,
    stop: &mut watch::Receiver<bool>,
) -> Option<(ApiResource, Scope)> {
    let kind = kind_name(gvk);
    let mut warned = false;
    loop {
        let attempt = match kube::discovery::pinned_kind(client, gvk).await {
            Ok((resource, capabilities)) => match &wait.forbidden {
                None => Ok((resource, capabilities.scope)),
                Some(_) => Api::<DynamicObject>::all_with(client.clone(), &resource)
                    .list(&ListParams::default().limit(1))
                    .await
                    .map(|_| (resource, capabilities.scope)),
            },
            Err(e) => Err(e),
        };
        let why = attempt.as_ref().err().map(unserved);
        let forbidden = why == Some(Unserved::Forbidden);
        if let (Some((key, message)), Some(health)) = (&wait.forbidden, health) {
            // A refused list is a misconfiguration: readiness says so until it is fixed.
            let problem = match &attempt {
                Err(e) if forbidden => Some(format!("{message}: {e}")),
                _ => None,
            };
            health.report_problem(key, problem);
        }
        match attempt {
            Ok(served) => {
                if warned {
                    tracing::info!(controller, kind = %kind, "the kind is served now");
                }
                return Some(served);
            }
            Err(e) if !warned => {
                warned = true;
                match (why, &wait.forbidden, wait.unserved_hint) {
                    (Some(Unserved::Forbidden), Some((_, message)), _) => {
                        tracing::error!(controller, kind = %kind, error = %e, "{message}")
                    }
                    (Some(Unserved::NotServed), _, Some(hint)) => {
                        tracing::info!(controller, kind = %kind, error = %e, "the kind is not served ({hint})")
                    }
                    (_, _, Some(_)) => {
                        tracing::warn!(controller, kind = %kind, error = %e, "failed to list the kind; retrying every 2 s")
                    }
                    (_, _, None) => {
                        tracing::warn!(controller, kind = %kind, error = %e, "waiting for the API to serve this kind (is its CRD installed?)")
                    }
                }
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|stop| *stop) => return None,
        }
    }
}

/// Why a kind is not served yet: a missing CRD is normal for an optional kind, a refused list
/// is a misconfiguration that must not look like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unserved {
    NotServed,
    Forbidden,
    Other,
}

fn unserved(error: &kube::Error) -> Unserved {
    match error {
        kube::Error::Discovery(_) => Unserved::NotServed,
        kube::Error::Api(status) if status.code == 404 => Unserved::NotServed,
        kube::Error::Api(status) if status.code == 403 => Unserved::Forbidden,
        _ => Unserved::Other,
    }
}

async fn reconcile<R: Reconciler>(
    object: Arc<DynamicObject>,
    context: Arc<Context<R>>,
) -> Result<Action, ReconcileFailure> {
    let kind = &context.kind;
    let metrics = &kind.health.metrics;
    let _in_flight = metrics.reconcile_started(&kind.name, &kind.resource.kind);
    let started = Instant::now();
    let uid = object.uid().unwrap_or_default();
    // What woke it is kube-runtime's `reconciling object` span around this call (`object.reason`:
    // the object changed, a related object changed, a requeue), printed with this line.
    tracing::debug!(
        controller = %kind.name,
        resource_version = object.resource_version().unwrap_or_default(),
        "reconcile"
    );
    let api = kind.api_for(&object);
    let result = finalizer(&api, &context.finalizer, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => context.reconciler.apply(object, kind).await,
            finalizer::Event::Cleanup(object) => {
                let done = context.reconciler.cleanup(object.clone(), kind).await;
                if done.is_ok() {
                    kind.own_writes.forget(&object);
                }
                done
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
        Ok(_) => {
            let mut failures = context.failures.lock().unwrap();
            if failures.remove(&uid).is_some() {
                metrics.set_retrying(&kind.name, &kind.resource.kind, failures.len());
            }
            "success"
        }
        Err(e) => e.metric(),
    };
    if let Err(ReconcileFailure::Api(e)) = &result {
        tracing::warn!(controller = %kind.name, kind = %kind.resource.kind, error = %e, "a write to the API failed; retrying with backoff");
    }
    metrics.record_reconcile(
        &kind.name,
        &kind.resource.kind,
        label,
        started.elapsed().as_secs_f64(),
    );
    result
}

fn error_policy<R: Reconciler>(
    object: Arc<DynamicObject>,
    error: &ReconcileFailure,
    context: Arc<Context<R>>,
) -> Action {
    let uid = object.uid().unwrap_or_default();
    let failures = {
        let mut failures = context.failures.lock().unwrap();
        let count = match error {
            ReconcileFailure::Permanent { .. } => {
                failures.remove(&uid);
                0
            }
            _ => {
                let count = failures.entry(uid).or_default();
                *count += 1;
                *count
            }
        };
        let kind = &context.kind;
        kind.health
            .metrics
            .set_retrying(&kind.name, &kind.resource.kind, failures.len());
        count
    };
    context.reconciler.error_policy(&object, error, failures)
}

/// The objects as this loop's last status write left them, by uid: a watch event showing
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
    /// this loop's own status write.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn a_forbidden_list_is_told_apart_from_an_unserved_kind() {
        assert_eq!(unserved(&api_error(404)), Unserved::NotServed);
        assert_eq!(unserved(&api_error(403)), Unserved::Forbidden);
        assert_eq!(unserved(&api_error(500)), Unserved::Other);
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
}
