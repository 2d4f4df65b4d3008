//! The kinds of a controller plugin: the [`Reconciler`] that calls the plugin in a fresh sandbox
//! with its granted capabilities and turns its outcome into the status (`Ready`/`Processing`/
//! `Blocked` with `observedGeneration`, through [`crate::status`]), Events and the next requeue;
//! a transient error is retried with exponential backoff, a permanent one waits for the object
//! to change. The kinds the manifest says it owns or watches reconcile their owners and
//! dependants. Secrets a manifest's `holdsSecrets` names carry the host's finalizer while an
//! object names them, so that a namespace's deletion leaves the credentials to the cleanups that
//! need them. The loop around it (watch, finalizer, status echo, stop) is [`crate::driver`]'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tokio::sync::watch;

use corbel_runtime::ControllerCallError;
use corbel_runtime::ReconcileCall;
use corbel_runtime::bindings::latest;
use corbel_runtime::capabilities::{CallContext, KindCache, Owner, WatchedKinds};

use crate::config::BackoffConfig;
use crate::driver::{Kind, ReconcileFailure, Reconciler, Wait, object_name, wait_until_served};
use crate::{LoadedController, changes, manifest, status};

/// One kind a controller plugin reconciles.
pub(crate) struct KindController {
    pub(crate) controller: Arc<LoadedController>,
    pub(crate) reconciled: manifest::Reconciled,
    pub(crate) kinds: Arc<KindCache>,
    /// The controller plugin's watches, shared by its kinds: they answer its `list` calls.
    pub(crate) watched: Arc<WatchedKinds>,
    /// The finalizer that holds the Secrets named at the manifest's `holdsSecrets` paths: one
    /// per controller and kind.
    pub(crate) hold_finalizer: String,
    pub(crate) holding: tokio::sync::Mutex<Holding>,
}

/// The Secrets this replica holds, by object uid, and the objects whose cleanup finished (still
/// in the store until their finalizer's removal is seen, but no longer needing anything).
#[derive(Default)]
pub(crate) struct Holding {
    held: HashMap<String, Vec<(String, String)>>,
    cleaned: std::collections::HashSet<String>,
}

impl Reconciler for KindController {
    /// Adds the kinds the manifest owns and watches, each resolved (and waited for) first.
    async fn start(
        &self,
        mut controller: Controller<DynamicObject>,
        kind: &Kind,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Controller<DynamicObject>> {
        let (client, resource, name) = (&kind.client, &kind.resource, &kind.name);
        let reconciled = &self.reconciled;
        // An owned or watched kind the RBAC does not let it list is a readiness problem under
        // `controller/NAME/KIND` until it does, as the reconciled kind's is (issue 18, bug 3).
        let listable = |other: &str, how: &str| Wait {
            unserved_hint: None,
            forbidden: Some((
                format!("controller/{name}/{other}"),
                format!(
                    "listing {other} objects (which controller {name} {how}) is forbidden: \
                     Corbel's service account needs list and watch on the kind (corbel \
                     kubernetes rbac prints the RBAC)"
                ),
            )),
        };
        for owned in &reconciled.owns {
            let (owned_resource, _) = wait_until_served(
                client,
                name,
                &owned.gvk(),
                &listable(&owned.kind, "owns"),
                Some(kind.health()),
                stop,
            )
            .await?;
            if !self.lists(&owned_resource) {
                // Metadata is enough to find the owner (kube's `owns`): a kind the plugin may
                // not list whole (Secrets it writes, say) is neither fetched nor kept.
                controller = controller.owns_with(
                    Api::<DynamicObject>::all_with(client.clone(), &owned_resource),
                    owned_resource,
                    watcher::Config::default(),
                );
                continue;
            }
            // Whole objects: the watch also answers the plugin's lists (`WatchedKinds`).
            let cache = Writer::new(owned_resource.clone());
            let id = self.watched.new_watch();
            self.serve_when_synced(id, &owned_resource, cache.as_reader());
            let (watched, gvk) = (self.watched.clone(), owned.gvk());
            let children = reflector(
                cache,
                watcher(
                    Api::<DynamicObject>::all_with(client.clone(), &owned_resource),
                    watcher::Config::default(),
                )
                .default_backoff(),
            )
            .inspect_ok(move |event| watched.saw(id, &gvk, event))
            .touched_objects();
            controller = controller.owns_stream_with(children, owned_resource);
        }
        for watch in &reconciled.watches {
            let (watched, _) = wait_until_served(
                client,
                name,
                &watch.kind_ref().gvk(),
                &listable(&watch.kind, "watches"),
                Some(kind.health()),
                stop,
            )
            .await?;
            let watched_api = Api::<DynamicObject>::all_with(client.clone(), &watched);
            let cache = self.lists(&watched).then(|| {
                let cache = Writer::new(watched.clone());
                let id = self.watched.new_watch();
                self.serve_when_synced(id, &watched, cache.as_reader());
                let (kinds, gvk) = (self.watched.clone(), watch.kind_ref().gvk());
                let applied =
                    move |event: &watcher::Event<DynamicObject>| kinds.saw(id, &gvk, event);
                (cache, applied)
            });
            let changes = changes::watch(watched_api, watch.status_fields.clone(), cache);
            let parent = resource.clone();
            controller = match (&watch.referenced_by, &watch.parent_field) {
                (Some(path), _) => {
                    let (store, path) = (controller.store(), path.clone());
                    let namespace_field = watch.namespace_field.clone();
                    controller.watches_stream_with(
                        changes,
                        move |other| {
                            let (other_name, other_namespace) =
                                (other.name_any(), other.namespace());
                            store
                                .state()
                                .into_iter()
                                .filter(|o| {
                                    let namespace = match &namespace_field {
                                        Some(field) => field_of(o, field),
                                        None => o.namespace(),
                                    };
                                    namespace == other_namespace
                                        && field_of(o, &path).as_deref()
                                            == Some(other_name.as_str())
                                })
                                .map(|o| ObjectRef::from_obj_with(o.as_ref(), parent.clone()))
                                .collect::<Vec<_>>()
                        },
                        watched,
                    )
                }
                (None, Some(path)) => {
                    let path = path.clone();
                    controller.watches_stream_with(
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
        Some(controller)
    }

    async fn apply(
        &self,
        object: Arc<DynamicObject>,
        kind: &Kind,
    ) -> Result<Action, ReconcileFailure> {
        self.call(kind, ReconcileCall::Reconcile, object).await
    }

    async fn cleanup(
        &self,
        object: Arc<DynamicObject>,
        kind: &Kind,
    ) -> Result<Action, ReconcileFailure> {
        self.call(kind, ReconcileCall::Cleanup, object).await
    }

    fn error_policy(
        &self,
        _object: &DynamicObject,
        error: &ReconcileFailure,
        failures: u32,
    ) -> Action {
        match error {
            ReconcileFailure::Permanent { retry_after, .. } => match retry_after {
                Some(after) => Action::requeue(*after),
                None => Action::await_change(),
            },
            ReconcileFailure::Transient {
                retry_after: Some(after),
                ..
            } => Action::requeue(*after),
            ReconcileFailure::Transient { .. } | ReconcileFailure::Api(_) => {
                Action::requeue(backoff(&self.controller.backoff, failures))
            }
        }
    }
}

impl KindController {
    /// Whether the plugin may list every object of `resource`'s kind, so that its watch is kept
    /// to answer those lists. Not for a kind it may only write (it reads only its children, and
    /// the host would otherwise hold, say, every Secret of the cluster for nothing).
    fn lists(&self, resource: &ApiResource) -> bool {
        self.controller
            .grants
            .may_read_any(&resource.group, &resource.version, &resource.kind)
    }

    /// Lets the plugin's lists of `resource` read `cache` once its first list is complete.
    fn serve_when_synced(&self, watch: u64, resource: &ApiResource, cache: Store<DynamicObject>) {
        let (watched, resource) = (self.watched.clone(), resource.clone());
        tokio::spawn(async move {
            // An error: the watch stopped before it synced (the controller stopped).
            if cache.wait_until_ready().await.is_ok() {
                watched.serve(watch, &resource, cache);
            }
        });
    }

    /// Calls the plugin and applies its outcome: status, events, and what happens next.
    async fn call(
        &self,
        kind: &Kind,
        which: ReconcileCall,
        object: Arc<DynamicObject>,
    ) -> Result<Action, ReconcileFailure> {
        let controller = &self.controller;
        if which == ReconcileCall::Reconcile {
            self.hold_secrets(kind, &object).await;
        }
        let json = serde_json::to_string(object.as_ref()).expect("objects serialize");
        let context = CallContext {
            client: kind.client.clone(),
            grants: controller.grants.clone(),
            owner: Owner {
                api_version: kind.resource.api_version.clone(),
                kind: kind.resource.kind.clone(),
                name: object.name_any(),
                uid: object.uid().unwrap_or_default(),
                namespace: object.namespace(),
            },
            kinds: self.kinds.clone(),
            watched: self.watched.clone(),
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
                    .failed(kind, &object, f.reason, f.message, retry_after, permanent)
                    .await);
            }
            Err(ControllerCallError::Sandbox(e)) => {
                let message = format!("{verb} of plugin {} {e}", controller.plugin.name());
                return Err(self
                    .failed(kind, &object, "PluginFailed".into(), message, None, false)
                    .await);
            }
            Err(ControllerCallError::Load(e)) => {
                return Err(self
                    .failed(
                        kind,
                        &object,
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
                    .failed(kind, &object, "InvalidOutcome".into(), message, None, false)
                    .await);
            }
        };
        if which == ReconcileCall::Reconcile {
            self.write_status(
                kind,
                &object,
                plugin_status.as_ref(),
                &status::Ending::Reconciled,
                &outcome.conditions,
            )
            .await
            .map_err(ReconcileFailure::Api)?;
        }
        for event in &outcome.events {
            let warning = matches!(event.type_, latest::EventType::Warning);
            kind.publish(&object, warning, &event.reason, &event.action, &event.note)
                .await;
        }
        if which == ReconcileCall::Cleanup {
            self.release_secrets(kind, &object).await;
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
            .reconciled
            .holds_secrets
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
    async fn hold_secrets(&self, kind: &Kind, object: &DynamicObject) {
        if self.reconciled.holds_secrets.is_empty() {
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
            if granted && let Err(e) = self.set_hold(kind, namespace, name, true).await {
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
            self.release_if_unused(kind, &secret, &uid).await;
        }
    }

    /// After a cleanup succeeded: lets go of the Secrets no other object of the kind names.
    async fn release_secrets(&self, kind: &Kind, object: &DynamicObject) {
        if self.reconciled.holds_secrets.is_empty() {
            return;
        }
        let uid = object.uid().unwrap_or_default();
        {
            let mut holding = self.holding.lock().await;
            holding.held.remove(&uid);
            let present: std::collections::HashSet<String> =
                kind.store.state().iter().filter_map(|o| o.uid()).collect();
            holding.cleaned.retain(|cleaned| present.contains(cleaned));
            holding.cleaned.insert(uid.clone());
        }
        for secret in self.named_secrets(object) {
            self.release_if_unused(kind, &secret, &uid).await;
        }
    }

    /// Removes the hold on a Secret unless another object (not `uid`, not cleaned up) names it.
    /// One at a time: two cleanups finishing together each see the other as cleaned.
    async fn release_if_unused(
        &self,
        kind: &Kind,
        (namespace, name): &(String, String),
        uid: &str,
    ) {
        let holding = self.holding.lock().await;
        let in_use = kind.store.state().iter().any(|other| {
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
        if let Err(e) = self.set_hold(kind, namespace, name, false).await {
            tracing::warn!(controller = %self.controller.name, secret = %format!("{namespace}/{name}"), error = %e, "failed to let go of the Secret (remove the finalizer {} by hand if it is not retried)", self.hold_finalizer);
        }
    }

    /// Adds (`hold`) or removes this controller's finalizer on a Secret, if it is there.
    async fn set_hold(
        &self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        hold: bool,
    ) -> Result<(), kube::Error> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(kind.client.clone(), namespace);
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
        kind: &Kind,
        object: &DynamicObject,
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
            kind = %kind.resource.kind,
            object = %object_name(object),
            reason, message, permanent,
            "reconcile failed"
        );
        if let Err(e) = self.write_status(kind, object, None, &ending, &[]).await {
            return ReconcileFailure::Api(e);
        }
        kind.publish(object, true, &reason, "Reconcile", &message)
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
        kind: &Kind,
        object: &DynamicObject,
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
        kind.write_status(object, patch).await
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

fn millis(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

/// `initial * 2^(attempt-1)`, capped at `max`.
fn backoff(config: &BackoffConfig, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    config.initial.saturating_mul(factor).min(config.max)
}

#[cfg(test)]
mod tests {
    use super::*;

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
