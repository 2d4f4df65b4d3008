//! The `Probe` kind of the `probe-controller` test plugin: its CRD, and small kube-rs helpers
//! shared by the controller tests.

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub fn probes(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &resource("test.corbel.dev", "v1", "Probe", "probes"),
    )
}

/// Creates the `Probe` CRD (tests/data/kube/probes-crd.yaml).
pub async fn create_crd(client: &kube::Client) {
    create_crd_file(client, "tests/data/kube/probes-crd.yaml").await;
}

/// Creates the CustomResourceDefinition in `path` (relative to the workspace root).
pub async fn create_crd_file(client: &kube::Client, path: &str) {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    let text = std::fs::read_to_string(crate::root().join(path)).unwrap();
    let crd: DynamicObject = serde_yaml_ng::from_str(&text).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
}

pub async fn create(client: &kube::Client, name: &str, spec: Value) {
    let probe = json!({"apiVersion": "test.corbel.dev/v1", "kind": "Probe", "metadata": {"name": name}, "spec": spec});
    probes(client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(probe).unwrap(),
        )
        .await
        .unwrap();
}

pub fn condition<'a>(object: &'a DynamicObject, kind: &str) -> Option<&'a Value> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits until every named probe has condition `kind` = `status`; panics with `context()` after
/// `limit`.
pub async fn wait_all(
    client: &kube::Client,
    names: &[String],
    kind: &str,
    status: &str,
    limit: Duration,
    context: impl Fn() -> String,
) {
    let started = Instant::now();
    for name in names {
        loop {
            if let Ok(object) = probes(client).get(name).await
                && condition(&object, kind).is_some_and(|c| c["status"] == status)
            {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "{name} never got {kind}={status} within {limit:?}: {:?}\n{}",
                probes(client).get(name).await.map(|o| o.data),
                context()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
