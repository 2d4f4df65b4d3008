//! Plugins through a real OCI registry: Debian's `docker-registry` on loopback with TLS and
//! htpasswd auth, `corbel plugin …` as a user runs it, `skopeo` as an independent reader, and
//! `corbel serve` starting from the cache with the registry stopped.

use std::sync::Arc;
use std::time::Duration;

use corbel_e2e::registry::{
    PASSWORD, SwapLoad, TamperProxy, TestRegistry, USER, Workspace, fails, hangup, key_pair, ok,
    sha256,
};
use corbel_e2e::{plugin, review};
use serde_json::Value;

const SIGNED: &str = "trustedKeys: [signer.pub]";

/// Pushes a first-party plugin to `path` (e.g. `policies/require-labels:v1`); returns the digest.
fn push(ws: &Workspace, registry: &TestRegistry, file: &str, path: &str) -> String {
    let component = plugin(file);
    ok(&ws.corbel(&[
        "push",
        component.to_str().unwrap(),
        &registry.reference(path),
    ]))
}

fn labels_binding(reference: &str) -> String {
    format!(
        "- name: labels\n  plugin: {reference}\n  mode: validate\n  settings: {{labels: [team]}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_writes_the_cncf_wasm_layout_and_skopeo_reads_it_back() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "", "[]");
    let digest = push(
        &ws,
        &registry,
        "require_labels",
        "policies/require-labels:v1",
    );
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "push prints the digest: {digest}"
    );

    // skopeo wants the CA as a *.crt file in a folder.
    let certs = ws.path("skopeo-certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&registry.ca_file, certs.join("ca.crt")).unwrap();
    let raw = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--creds",
            &format!("{USER}:{PASSWORD}"),
            "--cert-dir",
        ])
        .arg(&certs)
        .arg(format!(
            "docker://{}/policies/require-labels:v1",
            registry.address
        ))
        .output()
        .expect("skopeo is installed (cargo xtask test installs it)");
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        sha256(&raw.stdout),
        digest,
        "the printed digest is the manifest's"
    );
    let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let component = std::fs::read(plugin("require_labels")).unwrap();
    assert_eq!(layers[0]["digest"], sha256(&component));
    assert_eq!(layers[0]["size"], component.len());

    let inspect = ok(&ws.corbel(&[
        "inspect",
        &registry.reference("policies/require-labels:v1"),
        "--json",
    ]));
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["manifestDigest"], digest);
    assert_eq!(inspect["layout"], "WasmV0");
    let exports = inspect["config"]["component"]["exports"].to_string();
    assert!(
        exports.contains("corbel:plugin/admission@0.1.0"),
        "the config names the exports: {inspect}"
    );
    let text = ok(&ws.corbel(&["inspect", &registry.reference("policies/require-labels:v1")]));
    assert!(
        text.contains("exports:\n  corbel:plugin/admission@0.1.0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_by_tag_and_by_digest_and_serves_offline_from_the_cache() {
    let mut registry = TestRegistry::start();
    let ws = Workspace::new(&registry, SIGNED, "[]");
    let (private, _) = key_pair(ws.dir.path(), "signer");
    let digest = push(
        &ws,
        &registry,
        "require_labels",
        "policies/require-labels:v1",
    );
    let tag = registry.reference("policies/require-labels:v1");
    ok(&ws.corbel(&["sign", &tag, "--key", private.to_str().unwrap()]));

    let installed = ws.corbel(&["install", &tag]);
    assert_eq!(ok(&installed), digest, "install prints the resolved digest");
    assert!(
        String::from_utf8_lossy(&installed.stderr).contains("pulled sha256:"),
        "a line per blob when not a terminal"
    );
    let by_digest = registry.reference(&format!("policies/require-labels@{digest}"));
    ok(&ws.corbel(&["install", &by_digest, "--name", "pinned"]));

    let lock: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("corbel.lock")).unwrap()).unwrap();
    let plugins = lock["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 2);
    assert!(
        plugins
            .iter()
            .all(|p| p["manifestDigest"] == digest.as_str())
    );
    assert!(plugins.iter().all(|p| {
        p["signedBy"]
            .as_str()
            .is_some_and(|k| k.starts_with("sha256:"))
    }));
    let list = ok(&ws.corbel(&["list"]));
    assert!(
        list.contains("require-labels") && list.contains("pinned"),
        "{list}"
    );

    // No network from here on: the lock file and the cache are all serve needs.
    registry.stop();
    ws.configure(
        SIGNED,
        &format!(
            "{}- name: pinned\n  plugin: {by_digest}\n  mode: validate\n  settings: {{labels: [team]}}\n",
            labels_binding(&tag)
        ),
    );
    let server = ws.serve().await;
    let response = server
        .admit("/validate/labels", &review("configmap-unlabelled"))
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "missing required labels: team"
    );
    let response = server
        .admit("/validate/pinned", &review("configmap-labelled"))
        .await;
    assert_eq!(response["allowed"], true);
    let log = server.log();
    assert!(
        log.contains("compiled=Cached"),
        "install compiled it, serve reused it: {log}"
    );
    assert!(!log.contains("compiled=Fresh"), "{log}");

    ok(&ws.corbel(&["remove", "pinned"]));
    let list = ok(&ws.corbel(&["list"]));
    assert!(
        !list.contains("pinned") && list.contains("require-labels"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_wrong_credentials_and_says_how_to_give_them() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "", "[]");
    let component = plugin("require_labels");
    let err = fails(&ws.corbel_with_stdin(
        &[
            "push",
            component.to_str().unwrap(),
            &registry.reference("policies/p:v1"),
            "--username",
            USER,
            "--password-stdin",
        ],
        Some("wrong password\n"),
    ));
    assert!(
        err.contains("refused the credentials") && err.contains("--password-stdin"),
        "{err}"
    );
    // The right password on standard input works.
    ok(&ws.corbel_with_stdin(
        &[
            "push",
            component.to_str().unwrap(),
            &registry.reference("policies/p:v1"),
            "--username",
            USER,
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_unsigned_and_wrongly_signed_plugins_unless_the_repository_allows_unsigned() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, SIGNED, "[]");
    let (_, _) = key_pair(ws.dir.path(), "signer");
    let (stranger, _) = key_pair(ws.dir.path(), "stranger");
    push(&ws, &registry, "require_labels", "policies/unsigned:v1");
    push(&ws, &registry, "pod_security", "policies/strange:v1");
    let strange = registry.reference("policies/strange:v1");
    ok(&ws.corbel(&["sign", &strange, "--key", stranger.to_str().unwrap()]));

    let cases = [
        (
            "policies/unsigned:v1",
            SIGNED.to_owned(),
            Err("is not signed"),
        ),
        (
            "policies/strange:v1",
            SIGNED.to_owned(),
            Err("none verifies: it is not signed by any trusted key"),
        ),
        (
            "policies/unsigned:v1",
            String::new(),
            Err("no trusted keys are configured"),
        ),
        (
            "policies/unsigned:v1",
            format!(
                "{SIGNED}\nallowUnsigned: [{}/policies/unsigned]",
                registry.address
            ),
            Ok("unsigned, allowed by registry.allowUnsigned"),
        ),
    ];
    for (path, registry_yaml, expected) in cases {
        ws.configure(&registry_yaml, "[]");
        let output = ws.corbel(&["install", &registry.reference(path)]);
        match expected {
            Err(message) => {
                let err = fails(&output);
                assert!(
                    err.contains(message),
                    "{path} with {registry_yaml:?}: {err}"
                );
            }
            Ok(message) => {
                ok(&output);
                assert!(String::from_utf8_lossy(&output.stderr).contains(message));
            }
        }
    }
    assert_eq!(
        ws.cached_files()
            .iter()
            .filter(|f| f.starts_with("cache/blobs"))
            .count(),
        1,
        "only the allowed plugin was pulled: {:?}",
        ws.cached_files()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_registry_that_serves_other_bytes_and_leaves_nothing_in_the_cache() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "allowUnsigned: [\"*\"]", "[]");
    push(
        &ws,
        &registry,
        "require_labels",
        "policies/require-labels:v1",
    );
    let layer = sha256(&std::fs::read(plugin("require_labels")).unwrap());
    let proxy = TamperProxy::start(&registry, &layer).await;
    ws.configure(
        &format!("allowUnsigned: [{}/policies/*]", proxy.address),
        "[]",
    );
    let reference = format!("oci://{}/policies/require-labels:v1", proxy.address);
    // The proxy is another host name to credentials: log in to it as to the registry.
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    std::fs::write(
        ws.path("docker/config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            proxy.address
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking({
        let args = ["install".to_owned(), reference];
        let path = ws.path("corbel.yaml");
        let docker = ws.path("docker");
        move || {
            std::process::Command::new(corbel_e2e::bin())
                .arg("plugin")
                .args(&args)
                .arg("--config")
                .arg(path)
                .env("DOCKER_CONFIG", docker)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let err = fails(&output);
    assert!(err.contains(&format!("expected {layer}")), "{err}");
    assert!(err.contains("got sha256:"), "{err}");
    assert!(
        ws.cached_files().is_empty(),
        "nothing half-written: {:?}",
        ws.cached_files()
    );
    assert!(!ws.path("corbel.lock").exists(), "nothing locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_a_corrupt_cache_and_rebuilds_it() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "allowUnsigned: [\"*\"]", "[]");
    push(
        &ws,
        &registry,
        "require_labels",
        "policies/require-labels:v1",
    );
    let tag = registry.reference("policies/require-labels:v1");
    ws.configure(
        &format!("allowUnsigned: [{}/policies/*]", registry.address),
        &labels_binding(&tag),
    );
    ok(&ws.corbel(&["install", &tag]));

    // A truncated compiled artifact: detected, dropped, compiled again, never loaded.
    let compiled = walk(&ws.path("cache/compiled"));
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    let bytes = std::fs::read(&compiled[0]).unwrap();
    std::fs::write(&compiled[0], &bytes[..bytes.len() / 3]).unwrap();
    let server = ws.serve().await;
    let log = server.log();
    assert!(
        log.contains("corrupt or truncated") && log.contains("compiled=Fresh"),
        "{log}"
    );
    drop(server);
    assert_eq!(
        std::fs::read(&compiled[0]).unwrap().len(),
        bytes.len(),
        "rebuilt in place"
    );

    // A component whose bytes changed on disk: serve refuses it; install pulls it again.
    let layer = sha256(&std::fs::read(plugin("require_labels")).unwrap());
    let blob = ws.path("cache/blobs/sha256").join(&layer[7..]);
    std::fs::write(&blob, b"\0asm\x0d\0\x01\0 not what was installed").unwrap();
    let server = ws.serve().await;
    let (status, ready) = server.wait_loaded().await;
    assert_eq!(status, 503);
    let error = ready["bindings"]["labels"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("missing from the cache") && error.contains("corbel plugin install"),
        "{error}"
    );
    drop(server);
    let again = ws.corbel(&["install", &tag]);
    ok(&again);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("pulled"),
        "pulled again"
    );
    assert_eq!(sha256(&std::fs::read(&blob).unwrap()), layer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_the_older_wasm_layout_and_refuses_a_core_module_by_name() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "allowUnsigned: [\"*\"]", "[]");
    ws.configure(&format!("allowUnsigned: [{}/*]", registry.address), "[]");
    let component = std::fs::read(plugin("require_labels")).unwrap();
    registry
        .push_raw(
            "older/require-labels",
            "v1",
            "application/vnd.wasm.config.v1+json",
            "application/vnd.wasm.content.layer.v1+wasm",
            &component,
        )
        .await;
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    registry
        .push_raw(
            "older/core",
            "v1",
            "application/vnd.wasm.config.v1+json",
            "application/vnd.wasm.content.layer.v1+wasm",
            &core_module,
        )
        .await;
    let (ws, reference_ok, reference_core) = (
        Arc::new(ws),
        registry.reference("older/require-labels:v1"),
        registry.reference("older/core:v1"),
    );
    let results = tokio::task::spawn_blocking({
        let ws = ws.clone();
        move || {
            (
                ws.corbel(&["install", &reference_ok]),
                ws.corbel(&["install", &reference_core]),
            )
        }
    })
    .await
    .unwrap();
    ok(&results.0);
    let err = fails(&results.1);
    assert!(
        err.contains("core WebAssembly module, not a component")
            && err.contains("Corbel loads components"),
        "{err}"
    );
    assert_eq!(
        ws.cached_files().len(),
        1,
        "the core module is not kept: {:?}",
        ws.cached_files()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swaps_a_binding_under_load_with_no_failed_request() {
    let registry = TestRegistry::start();
    let ws = Workspace::new(&registry, "allowUnsigned: [\"*\"]", "[]");
    ws.configure(&format!("allowUnsigned: [{}/*]", registry.address), "[]");
    // Two versions of one plugin repository: v1 denies the unlabelled ConfigMap (require-labels),
    // v2 admits it (pod-security only looks at pods). Each response says which one answered.
    let v1 = registry.reference("policies/demo:v1");
    let v2 = registry.reference("policies/demo:v2");
    let ws = Arc::new(ws);
    tokio::task::spawn_blocking({
        let (ws, v1, v2, address) = (ws.clone(), v1.clone(), v2.clone(), registry.address.clone());
        move || {
            for (file, path, reference) in [
                ("require_labels", "policies/demo:v1", &v1),
                ("pod_security", "policies/demo:v2", &v2),
            ] {
                let component = plugin(file);
                ok(&ws.corbel(&[
                    "push",
                    component.to_str().unwrap(),
                    &format!("oci://{address}/{path}"),
                ]));
                ok(&ws.corbel(&[
                    "install",
                    reference,
                    "--name",
                    &path.trim_start_matches("policies/").replace(':', "-"),
                ]));
            }
        }
    })
    .await
    .unwrap();
    let version = |reference: &str| {
        if reference == v1 {
            format!(
                "- name: demo\n  plugin: {v1}\n  mode: validate\n  settings: {{labels: [team]}}\n"
            )
        } else {
            format!(
                "- name: demo\n  plugin: {reference}\n  mode: validate\n  settings: {{level: baseline}}\n"
            )
        }
    };
    ws.configure(
        &format!("allowUnsigned: [{}/*]", registry.address),
        &version(&v1),
    );
    let server = Arc::new(ws.serve().await);

    let load = SwapLoad::start(server.clone(), "demo", 4);

    let registry_yaml = format!("allowUnsigned: [{}/*]", registry.address);
    for round in 0..3 {
        for target in [&v2, &v1] {
            ws.configure(&registry_yaml, &version(target));
            hangup(&server);
            wait_for_plugin(&server, if target == &v2 { "demo-v2" } else { "demo-v1" }).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let _ = round;
        }
    }
    // A failed upgrade (a reference that is not installed) keeps the old version serving.
    ws.configure(
        &registry_yaml,
        &version(&registry.reference("policies/demo:v3")),
    );
    hangup(&server);
    let started = std::time::Instant::now();
    loop {
        let (_, ready) = server.wait_loaded().await;
        if let Some(error) = ready["bindings"]["demo"]["lastError"].as_str() {
            assert!(error.contains("not installed"), "{error}");
            assert!(
                ready["bindings"]["demo"]["plugin"]
                    .as_str()
                    .unwrap()
                    .starts_with("demo-v1")
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no lastError: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (v1_count, v2_count) = load.finish().await;
    assert!(
        v1_count > 0 && v2_count > 0,
        "both versions answered: v1 {v1_count}, v2 {v2_count}"
    );
    eprintln!("hot swap under load: {v1_count} answers from v1, {v2_count} from v2, none failed");
}

/// Waits until `/readyz` shows the binding `demo` served by the named plugin.
async fn wait_for_plugin(server: &corbel_e2e::Server, name: &str) {
    let started = std::time::Instant::now();
    loop {
        let (_, ready) = server.wait_loaded().await;
        if ready["bindings"]["demo"]["plugin"]
            .as_str()
            .is_some_and(|p| p.starts_with(name))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} was not swapped in: {ready}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
