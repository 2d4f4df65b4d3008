//! The `Plugin` kind (`corbel.dev/v1alpha1`, cluster-scoped): an admission binding whose plugin
//! comes from an OCI registry, managed through the API like any other object. Every replica
//! reconciles it (each serves webhooks): install (resolve the reference to a digest, verify its
//! signature, pull digest-checked into the cache, compile) off the request path, then swap the
//! binding in atomically. Requests in flight finish on the version they started with; a failed
//! upgrade keeps the previous version serving and says why in `status.lastError`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use corbel_admission::bindings::{BindingSet, SharedBindings};
use corbel_admission::config::BindingConfig;
use corbel_registry::plugins::{Loader, Settings, install};
use corbel_runtime::Runtime;
use corbel_telemetry::Health;

/// The CRD, as committed under `deploy/crds/`.
pub const CRD: &str = include_str!("../../../../deploy/crds/plugins.corbel.dev.yaml");

const FINALIZER: &str = "corbel.dev/plugin-binding";

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("corbel.dev", "v1alpha1", "Plugin"),
        "plugins",
    )
}

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

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Install(String),
    #[error("the Kubernetes API failed: {0}")]
    Api(#[from] kube::Error),
}

struct Context {
    client: kube::Client,
    bindings: Arc<SharedBindings>,
    runtime: Arc<Runtime>,
    settings: Settings,
    /// Installs write the shared lock file: one at a time.
    installing: tokio::sync::Mutex<()>,
}

/// Reconciles `Plugin` objects until `stop` turns true.
pub async fn run(
    client: kube::Client,
    bindings: Arc<SharedBindings>,
    health: Arc<Health>,
    runtime: Arc<Runtime>,
    settings: Settings,
    install_crd: bool,
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
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource());
    // Wait until the kind is served (in Kubernetes mode its CRD is applied by the operator).
    let mut warned = false;
    while let Err(e) = api.list(&kube::api::ListParams::default().limit(1)).await {
        let reason = unserved_reason(&e);
        if reason == Unserved::Forbidden {
            // Missing RBAC is a misconfiguration: readiness says so until it is fixed.
            health.report_problem("plugins", Some(format!("{FORBIDDEN}: {e}")));
        }
        if !warned {
            match reason {
                Unserved::NotServed => {
                    tracing::info!(error = %e, "the Plugin kind is not served (apply deploy/crds/plugins.corbel.dev.yaml to manage bindings through the API)")
                }
                Unserved::Forbidden => tracing::error!(error = %e, "{FORBIDDEN}"),
                Unserved::Other => {
                    tracing::warn!(error = %e, "failed to list Plugins; retrying every 5 s")
                }
            }
            warned = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    health.report_problem("plugins", None);
    let context = Arc::new(Context {
        client,
        bindings,
        runtime,
        settings,
        installing: tokio::sync::Mutex::new(()),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        let _ = tx.send(());
    });
    tracing::info!("managing bindings from Plugin objects");
    Controller::new_with(api, watcher::Config::default(), resource())
        .graceful_shutdown_on(async move {
            let _ = rx.await;
        })
        .run(reconcile, error_policy, context)
        .for_each(|_| std::future::ready(()))
        .await;
}

fn error_policy(_object: Arc<DynamicObject>, _error: &Error, _context: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(10))
}

async fn reconcile(object: Arc<DynamicObject>, context: Arc<Context>) -> Result<Action, Error> {
    let api = Api::<DynamicObject>::all_with(context.client.clone(), &resource());
    finalizer(&api, FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(plugin) => context.apply(&api, &plugin).await,
            finalizer::Event::Cleanup(plugin) => {
                BindingSet::remove_managed(&context.bindings, &plugin.name_any());
                tracing::info!(binding = %plugin.name_any(), "Plugin deleted: binding removed");
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => Error::Api(e),
        other => Error::Install(other.to_string()),
    })
}

/// The binding a Plugin's spec describes: its fields are a binding's (mode, settings, timeout,
/// memoryLimit, failurePolicy), checked by the same rules as the configuration file's.
fn binding(name: &str, spec: &Value, plugin: &str) -> Result<BindingConfig, String> {
    let mut fields = spec.as_object().cloned().unwrap_or_default();
    fields.remove("reference");
    fields.insert("name".into(), name.into());
    fields.insert("plugin".into(), plugin.into());
    fields.entry("mode").or_insert_with(|| "validate".into());
    serde_json::from_value(Value::Object(fields)).map_err(|e| format!("spec is not valid: {e}"))
}

impl Context {
    async fn apply(
        &self,
        api: &Api<DynamicObject>,
        plugin: &DynamicObject,
    ) -> Result<Action, Error> {
        let name = plugin.name_any();
        let spec = &plugin.data["spec"];
        let result = async {
            let reference = spec["reference"]
                .as_str()
                .filter(|r| !r.is_empty())
                .ok_or("spec.reference is required: oci://host/repository:tag or @sha256:digest")?;
            // Checked before any download, so that a bad spec costs nothing.
            binding(&name, spec, reference)?;
            let _one_at_a_time = self.installing.lock().await;
            let installed = install(&self.settings, &self.runtime, reference, Some(&name), false)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let oci = format!(
                "oci://{}",
                installed.entry.reference.trim_start_matches("oci://")
            );
            let config = binding(&name, spec, &oci)?;
            let loader = Arc::new(Loader::open(&self.settings).map_err(|e| e.to_string())?);
            let loaded = BindingSet::upsert(&self.bindings, &self.runtime, &config, loader).await?;
            Ok::<_, String>((
                installed.entry.manifest_digest,
                loaded.plugin.name().to_owned(),
                loaded.plugin.wit_version().to_owned(),
            ))
        }
        .await;
        let previous = &plugin.data["status"];
        let status = match &result {
            Ok((digest, plugin_name, wit)) => json!({
                "phase": "Ready", "resolvedDigest": digest, "loadedDigest": digest,
                "plugin": plugin_name, "wit": wit, "lastError": null,
            }),
            Err(e) => {
                let serving = self.bindings.load().as_ref().as_ref().is_some_and(|set| {
                    set.managed.contains(&name) && set.entries.contains_key(&name)
                });
                json!({
                    "phase": if serving { "Degraded" } else { "Failed" },
                    "loadedDigest": if serving { previous["loadedDigest"].clone() } else { Value::Null },
                    "lastError": e,
                })
            }
        };
        let mut status = status;
        if let Some(generation) = plugin.meta().generation {
            status["observedGeneration"] = generation.into();
        }
        let changed = status
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| &previous[k] != v && !(v.is_null() && previous.get(k).is_none()));
        if changed {
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        }
        match result {
            Ok(_) => Ok(Action::await_change()),
            Err(e) => Err(Error::Install(e)),
        }
    }
}

const FORBIDDEN: &str = "listing Plugins is forbidden: Corbel's service account needs list, watch and patch on plugins.corbel.dev and patch on plugins/status (corbel kubernetes rbac prints the RBAC)";

/// Why listing Plugins failed: a missing CRD is normal (the kind is optional), missing RBAC is a
/// misconfiguration that must not look like one.
#[derive(Debug, PartialEq, Eq)]
enum Unserved {
    NotServed,
    Forbidden,
    Other,
}

fn unserved_reason(error: &kube::Error) -> Unserved {
    match error {
        kube::Error::Api(status) if status.code == 404 => Unserved::NotServed,
        kube::Error::Api(status) if status.code == 403 => Unserved::Forbidden,
        _ => Unserved::Other,
    }
}

#[cfg(test)]
mod unserved_tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn a_forbidden_list_is_told_apart_from_an_unserved_kind() {
        assert_eq!(unserved_reason(&api_error(404)), Unserved::NotServed);
        assert_eq!(unserved_reason(&api_error(403)), Unserved::Forbidden);
        assert_eq!(unserved_reason(&api_error(500)), Unserved::Other);
    }
}
