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

/// A replica whose config is `config` (YAML, top level) in a workspace of `registry`, serving.
async fn replica_in(ws: &Workspace, config: &str) -> corbel_e2e::Server {
    std::fs::write(ws.path("corbel.yaml"), config).unwrap();
    ws.serve().await
}

fn installs(server: &corbel_e2e::Server) -> usize {
    server.log().matches("installing the Plugin").count()
}

/// Issue 18, bug 2: two replicas, one of which cannot reach the registry (it does not trust its
/// certificate). Only the Lease's holder writes the status, so it does not flip between Ready and
/// Failed; a status write does not make anyone install again; the failing replica is not ready
/// and says why; when the Lease changes hands the new holder writes what it installed already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_one_writes_the_status_nobody_reinstalls_and_a_failing_replica_is_not_ready()
 {
    use corbel_e2e::registry::TestCa;
    use k8s_openapi::api::coordination::v1::Lease;

    let registry = TestRegistry::start();
    let good = Workspace::new(&registry, "", "[]");
    let v1 = registry.reference("policies/demo:v1");
    ok(&good.corbel(&["push", plugin("require_labels").to_str().unwrap(), &v1]));
    let election =
        "leaderElection: {namespace: default, leaseDuration: 3s, renewPeriod: 1s, identity:";
    let registry_yaml = format!(
        "registry: {{cacheDir: cache, caFile: ca.crt, allowUnsigned: ['{}/*']}}",
        registry.address
    );

    // The API (embedded) is one replica: it trusts another CA, so every install fails there.
    let bad = Workspace::new(&registry, "", "[]");
    std::fs::write(bad.path("ca.crt"), TestCa::new().pem).unwrap();
    let api = replica_in(
        &bad,
        &format!("tls: {{development: {{dir: tls}}}}\nembedded: {{dataDir: data}}\n{election} api}}\n{registry_yaml}\nbindings: []\n"),
    )
    .await;
    let kubeconfig = bad.path("data/kubeconfig");
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder = || async {
        leases
            .get_opt("corbel-controllers-plugins")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    };
    let started = Instant::now();
    while holder().await.as_deref() != Some("api") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the API's replica never took the Plugin Lease:\n{}",
            api.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other replica, in Kubernetes mode against it, can install; its lock file's folder is
    // not writable (as a ConfigMap's), so installs record into the cache folder.
    let healthy = replica_in(
        &good,
        &format!(
            "tls: {{development: {{dir: tls}}}}\nkubernetes: {{kubeconfig: {}}}\n{election} healthy}}\n{}\nbindings: []\n",
            kubeconfig.display(),
            registry_yaml.replace("cacheDir: cache,", "cacheDir: cache, lockFile: /proc/corbel/corbel.lock,")
        ),
    )
    .await;
    let context = || {
        format!(
            "API replica {}\nhealthy replica {}",
            api.log(),
            healthy.log()
        )
    };

    let plugins_api = plugins(&client);
    let demo = json!({"apiVersion": "corbel.dev/v1alpha1", "kind": "Plugin", "metadata": {"name": "demo"},
        "spec": {"reference": v1, "settings": {"labels": ["team"]}}});
    plugins_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(demo).unwrap(),
        )
        .await
        .unwrap();
    let created = Instant::now();
    // The holder (the API's replica) reports what it saw: Failed.
    let status = wait_status(&client, "demo", |s| s["phase"] == "Failed").await;
    assert!(
        !status["lastError"].as_str().unwrap_or_default().is_empty(),
        "{status}"
    );
    // The healthy replica serves the binding all the same.
    let started = Instant::now();
    loop {
        let (code, body) = healthy
            .post("/validate/demo", &review("configmap-unlabelled"))
            .await;
        if code == 200 {
            assert_eq!(body["response"]["allowed"], false, "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the healthy replica never served the Plugin ({code}):\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The failing replica is not ready, and names the Plugin; the healthy one is.
    let (code, body) = api.get_text("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("plugin/demo") && body.contains("not installed on this replica"),
        "{body}"
    );
    assert_eq!(healthy.get_text("/readyz").await.0, 200);
    assert!(
        healthy
            .log()
            .contains("the lock file's folder is not writable")
            && good.path("cache/corbel.lock").exists(),
        "{}",
        healthy.log()
    );
    assert!(
        api.log().contains("Plugin install failed on this replica"),
        "the failing replica logs why:\n{}",
        api.log()
    );

    // Quiet: nothing rewrites the status, nothing installs again.
    let version = |p: DynamicObject| p.metadata.resource_version.unwrap();
    let before = version(plugins_api.get("demo").await.unwrap());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = version(plugins_api.get("demo").await.unwrap());
    assert_eq!(before, after, "the status keeps changing:\n{}", context());
    assert_eq!(installs(&healthy), 1, "{}", context());
    let retries_due = 1 + created.elapsed().as_secs() as usize / 10;
    assert!(
        installs(&api) <= retries_due,
        "a failure is retried after 10 s, not on every event:\n{}",
        context()
    );

    // The Lease changes hands: the healthy replica writes what it installed, without installing.
    leases
        .patch(
            "corbel-controllers-plugins",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "healthy"}})),
        )
        .await
        .unwrap();
    // Moved by hand, the Lease has two holders until the API's replica's next round (a real
    // handover waits for the old holder to step down): measure from when it has stopped.
    let started = Instant::now();
    while !api.log().contains("another replica holds the Lease now") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the API's replica never stepped down:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = wait_status(&client, "demo", |s| s["phase"] == "Ready").await;
    assert!(
        status["loadedDigest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{status}"
    );
    assert_eq!(status["resolvedDigest"], status["loadedDigest"]);
    let before = version(plugins_api.get("demo").await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = plugins_api.get("demo").await.unwrap();
    let after = version(now.clone());
    assert_eq!(
        before,
        after,
        "the status keeps changing: {}\n{}",
        serde_json::to_string(&now).unwrap(),
        context()
    );
    assert_eq!(installs(&healthy), 1, "{}", context());

    // Deleted, the Plugin's binding goes from every replica, whichever ran the cleanup.
    plugins_api
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    while healthy
        .post("/validate/demo", &review("configmap-unlabelled"))
        .await
        .0
        != 404
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the binding outlived its Plugin:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    while api.get_text("/readyz").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deleted Plugin still keeps the failing replica unready:\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "status written by one replica; installs: healthy 1, failing {}",
        installs(&api)
    );
}
