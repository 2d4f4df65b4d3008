//! The `Plugin` kind: bindings managed through the API. A real OCI registry (Debian's
//! `docker-registry` with TLS and basic auth) holds two versions of a plugin; `corbel serve` in
//! embedded mode installs whichever a `Plugin` object names, and swaps versions under load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corbel_e2e::registry::{SwapLoad, TestRegistry, Workspace, ok};
use corbel_e2e::{plugin, review};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn plugins(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("corbel.dev", "v1alpha1", "Plugin"),
            "plugins",
        ),
    )
}

/// Waits until the Plugin's status satisfies `done`, and returns it.
async fn wait_status(client: &kube::Client, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        if let Some(plugin) = plugins(client).get_opt(name).await.unwrap()
            && done(&plugin.data["status"])
        {
            return plugin.data["status"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "status never got there: {:?}",
            plugins(client).get_opt(name).await.unwrap().map(|p| p.data)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_object_installs_swaps_versions_under_load_and_keeps_serving_through_a_failed_upgrade()
 {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "", "[]");
    let v1 = registry.reference("policies/demo:v1");
    let v2 = registry.reference("policies/demo:v2");
    for (file, reference) in [("require_labels", &v1), ("pod_security", &v2)] {
        ok(&ws.corbel(&["push", plugin(file).to_str().unwrap(), reference]));
    }
    std::fs::write(
        ws.path("corbel.yaml"),
        format!(
            "tls: {{development: {{dir: tls}}}}\nembedded: {{dataDir: data}}\nregistry: {{cacheDir: cache, caFile: ca.crt, allowUnsigned: ['{}/*']}}\nbindings: []\n",
            registry.address
        ),
    )
    .unwrap();
    let server = Arc::new(ws.serve().await);
    let kubeconfig = kube::config::Kubeconfig::read_from(ws.path("data/kubeconfig")).unwrap();
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();

    // The host serves the Plugin kind itself in embedded mode: create one, and it is installed.
    let demo = json!({"apiVersion": "corbel.dev/v1alpha1", "kind": "Plugin", "metadata": {"name": "demo"},
        "spec": {"reference": v1, "settings": {"labels": ["team"]}}});
    let plugins_api = plugins(&client);
    let started = Instant::now();
    loop {
        match plugins_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(demo.clone()).unwrap(),
            )
            .await
        {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                eprintln!("waiting for the Plugin kind: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the Plugin kind is not served: {e}\n{}", server.log()),
        }
    }
    let status = wait_status(&client, "demo", |s| s["phase"] == "Ready").await;
    let first_digest = status["loadedDigest"].as_str().unwrap().to_owned();
    assert!(first_digest.starts_with("sha256:"), "{status}");
    let (code, body) = server
        .post("/validate/demo", &review("configmap-unlabelled"))
        .await;
    assert_eq!(
        (code, body["response"]["allowed"].as_bool()),
        (200, Some(false)),
        "{body}"
    );

    // Upgrade and downgrade under load: no failed request, every answer from one version.
    let load = SwapLoad::start(server.clone(), "demo", 4);
    for round in 0..3 {
        for (reference, settings) in [
            (&v2, json!({"labels": null, "level": "baseline"})),
            (&v1, json!({"labels": ["team"], "level": null})),
        ] {
            plugins_api
                .patch(
                    "demo",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"reference": reference, "settings": settings}})),
                )
                .await
                .unwrap();
            let generation = plugins_api
                .get("demo")
                .await
                .unwrap()
                .metadata
                .generation
                .unwrap();
            wait_status(&client, "demo", |s| {
                s["observedGeneration"] == generation && s["phase"] == "Ready"
            })
            .await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let _ = round;
    }

    // A failed upgrade (a tag that does not exist) keeps v1 serving and says why.
    plugins_api
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"reference": registry.reference("policies/demo:v3")}})),
        )
        .await
        .unwrap();
    let status = wait_status(&client, "demo", |s| s["phase"] == "Degraded").await;
    assert_eq!(
        status["loadedDigest"],
        first_digest.as_str(),
        "v1 keeps serving: {status}"
    );
    assert!(
        status["lastError"].as_str().unwrap().contains("v3"),
        "{status}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (v1_count, v2_count) = load.finish().await;
    assert!(
        v1_count > 0 && v2_count > 0,
        "both versions answered: v1 {v1_count}, v2 {v2_count}"
    );
    eprintln!(
        "Plugin swaps under load: {v1_count} answers from v1, {v2_count} from v2, none failed"
    );

    // Deleting the Plugin removes its binding.
    plugins_api
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let (code, _) = server
            .post("/validate/demo", &review("configmap-unlabelled"))
            .await;
        if code == 404 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the binding outlived its Plugin"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
