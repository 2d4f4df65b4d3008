//! The reconcile engine end to end: the real `corbel serve` in embedded mode runs the
//! `probe-controller` test plugin (tests/plugins/probe-controller), and the tests drive it with
//! kube-rs like a user would: finalizers, status and conditions, Events, every capability
//! granted and refused, children and their cascade, each way a reconcile can fail, and cleanup.

use std::time::{Duration, Instant};

use corbel_e2e::probes::{condition, create, probes, resource};
use corbel_e2e::{Embedded, plugin};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn config_maps(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &resource("", "v1", "ConfigMap", "configmaps"),
    )
}

/// A one-route HTTP server on loopback answering `200 hi`, as the backend the probe fetches.
async fn backend() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = vec![0; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
                    )
                    .await;
            });
        }
    });
    port
}

fn controller(grants: &str) -> String {
    format!(
        "controllers:\n  - name: probe\n    plugin: {}\n    settings: {{prefix: '>'}}\n    timeout: 2s\n    memoryLimit: 32Mi\n    backoff: {{initial: 100ms, max: 1s}}\n    grants:\n{grants}\n",
        plugin("probe_controller").display()
    )
}

async fn start(port: u16) -> (Embedded, kube::Client) {
    let grants = format!(
        "      secrets: [{{namespace: default, name: creds}}]\n      resources: {{read: [{{apiVersion: v1, kind: ConfigMap}}], write: [{{apiVersion: v1, kind: ConfigMap}}]}}\n      http: ['http://127.0.0.1:{port}']"
    );
    let embedded = Embedded::start("[]", &controller(&grants), None).await;
    let client = embedded.client().await;
    corbel_e2e::probes::create_crd(&client).await;
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("", "v1", "Secret", "secrets"),
    );
    for (name, token) in [("creds", "s3cr3t"), ("other", "hidden")] {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"token": token}});
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(secret).unwrap(),
            )
            .await
            .unwrap();
    }
    (embedded, client)
}

/// Waits until the probe's condition `kind` has `status`, and returns the object.
async fn wait_for(
    embedded: &Embedded,
    client: &kube::Client,
    name: &str,
    kind: &str,
    status: &str,
) -> DynamicObject {
    let started = Instant::now();
    loop {
        if let Ok(object) = probes(client).get(name).await
            && condition(&object, kind).is_some_and(|c| c["status"] == status)
        {
            return object;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} never got {kind}={status}: {:?}\n{}",
            probes(client).get(name).await.map(|o| o.data),
            embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_gone(client: &kube::Client, api: &Api<DynamicObject>, name: &str) {
    let _ = client;
    let started = Instant::now();
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_probe_is_reconciled_with_its_granted_capabilities_and_cleaned_up_with_its_children() {
    let port = backend().await;
    let (embedded, client) = start(port).await;
    config_maps(&client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"value": "42"}})).unwrap(),
        )
        .await
        .unwrap();
    create(
        &client,
        "full",
        json!({
            "message": "hello",
            "secret": {"name": "creds", "key": "token"},
            "child": true,
            "readConfigMap": "settings",
            "fetch": format!("http://127.0.0.1:{port}/anything"),
        }),
    )
    .await;
    let probe = wait_for(&embedded, &client, "full", "Ready", "True").await;
    let status = &probe.data["status"];
    assert_eq!(status["echo"], ">hello", "settings reach the plugin");
    assert_eq!(status["secret"], "s3cr3t");
    assert_eq!(status["read"], "42");
    assert_eq!(status["child"], "full-child");
    assert_eq!(status["fetch"], "200 hi");
    assert_eq!(
        status["observedGeneration"],
        probe.metadata.generation.unwrap()
    );
    assert_eq!(
        condition(&probe, "Probed").unwrap()["reason"],
        "Done",
        "the plugin's own condition"
    );
    assert_eq!(condition(&probe, "Blocked").unwrap()["status"], "False");
    assert_eq!(
        probe.metadata.finalizers,
        Some(vec!["corbel.dev/probe".to_owned()])
    );

    let child = config_maps(&client).get("full-child").await.unwrap();
    let owner = &child.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Probe", "full")
    );
    assert_eq!(Some(&owner.uid), probe.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));

    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    // Events are published off the reconcile (kube-runtime's recorder): on a loaded machine the
    // child can be seen before its Event is written, so wait for it as for any other write.
    let started = Instant::now();
    loop {
        let listed = events.list(&ListParams::default()).await.unwrap();
        if listed
            .items
            .iter()
            .any(|e| e.data["reason"] == "ChildCreated" && e.data["regarding"]["name"] == "full")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "an Event records the child's creation: {:?}",
            listed.items.iter().map(|e| &e.data).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A spec change is reconciled again: the child follows, the generation is observed.
    probes(&client)
        .patch(
            "full",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"message": "again"}})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let probe = probes(&client).get("full").await.unwrap();
        let child = config_maps(&client).get("full-child").await.unwrap();
        if probe.data["status"]["echo"] == ">again" && child.data["data"]["message"] == "again" {
            assert_eq!(
                probe.data["status"]["observedGeneration"],
                probe.metadata.generation.unwrap()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the change was not reconciled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deleting runs cleanup, removes the finalizer, and the child goes with its owner.
    probes(&client)
        .delete("full", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&client, &probes(&client), "full").await;
    wait_gone(&client, &config_maps(&client), "full-child").await;

    let (_, metrics) = embedded.server.get_text("/metrics").await;
    assert!(
        metrics
            .contains(r#"corbel_reconciles_total{plugin="probe",kind="Probe",result="success"}"#),
        "{metrics}"
    );
    let (code, ready) = embedded.server.get_text("/readyz").await;
    assert_eq!(code, 200, "{ready}");
    assert!(
        ready.contains(r#""kinds":["test.corbel.dev/v1 Probe"]"#),
        "{ready}"
    );
}

#[tokio::test]
async fn capabilities_beyond_the_grants_are_refused_with_the_capability_named() {
    let port = backend().await;
    let (embedded, client) = start(port).await;
    create(
        &client,
        "nosy",
        json!({
            "secret": {"name": "other", "key": "token"},
            "fetch": format!("http://127.0.0.1:{}/", port + 1),
        }),
    )
    .await;
    let probe = wait_for(&embedded, &client, "nosy", "Ready", "True").await;
    let status = &probe.data["status"];
    assert_eq!(
        status["secret"],
        "access denied: secrets: reading default/other is not granted to plugin probe"
    );
    let fetch = status["fetch"].as_str().unwrap();
    assert!(
        fetch.starts_with(&format!(
            "access denied: http to http://127.0.0.1:{}",
            port + 1
        )),
        "{fetch}"
    );
    assert!(
        embedded.server.log().contains("this origin is not granted"),
        "the host logs the refusal"
    );
}

/// The Events about the Probe `name`, as JSON.
async fn events_about(client: &kube::Client, name: &str) -> Vec<serde_json::Value> {
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.data)
        .filter(|e| e["regarding"]["name"] == name)
        .collect()
}

#[tokio::test]
async fn failures_set_conditions_retry_with_backoff_and_block_until_the_object_changes() {
    let port = backend().await;
    let (embedded, client) = start(port).await;
    create(&client, "flaky", json!({"fail": "transient"})).await;
    create(&client, "broken", json!({"fail": "permanent"})).await;
    create(&client, "trap", json!({"fail": "trap"})).await;
    create(&client, "spin", json!({"fail": "loop"})).await;
    create(&client, "hog", json!({"fail": "oom"})).await;

    let flaky = wait_for(&embedded, &client, "flaky", "Processing", "True").await;
    assert_eq!(
        condition(&flaky, "Ready").unwrap()["reason"],
        "ProbeTransient"
    );
    assert_eq!(condition(&flaky, "Blocked").unwrap()["status"], "False");

    let broken = wait_for(&embedded, &client, "broken", "Blocked", "True").await;
    assert_eq!(
        condition(&broken, "Blocked").unwrap()["reason"],
        "ProbePermanent"
    );
    assert_eq!(condition(&broken, "Ready").unwrap()["status"], "False");

    let trap = wait_for(&embedded, &client, "trap", "Processing", "True").await;
    let message = condition(&trap, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(condition(&trap, "Ready").unwrap()["reason"], "PluginFailed");
    assert!(message.contains("trapped"), "{message}");

    let spin = wait_for(&embedded, &client, "spin", "Processing", "True").await;
    let message = condition(&spin, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("timed out after 2s"), "{message}");

    let hog = wait_for(&embedded, &client, "hog", "Processing", "True").await;
    let message = condition(&hog, "Ready").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("memory limit of 32 MiB"), "{message}");

    // Transient failures are retried (backoff 100ms doubling to 1s); permanent ones are not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = embedded.server.get_text("/metrics").await;
    let count = |result: &str| -> f64 {
        let line =
            format!(r#"corbel_reconciles_total{{plugin="probe",kind="Probe",result="{result}"}} "#);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(|v| v.parse().unwrap())
            .unwrap_or(0.0)
    };
    assert!(
        count("transient") >= 9.0,
        "three objects fail transiently, each retried: {metrics}"
    );
    assert!(
        metrics.contains("corbel_reconcile_queue_depth"),
        "{metrics}"
    );
    // A new object is reconciled once: the write of its status does not call the plugin again,
    // so its failure is one Warning Event, not two (issue 18, bug 6).
    assert_eq!(count("permanent"), 1.0, "{metrics}");
    let broken_events = events_about(&client, "broken").await;
    assert_eq!(broken_events.len(), 1, "{broken_events:#?}");
    assert_eq!(broken_events[0]["reason"], "ProbePermanent");
    assert!(broken_events[0]["series"].is_null(), "{broken_events:#?}");

    // Another note under the same reason is a new Event, not a repeat of the first note.
    probes(&client)
        .patch(
            "trap",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"fail": "loop"}})),
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let notes: Vec<String> = events_about(&client, "trap")
            .await
            .iter()
            .filter(|e| e["reason"] == "PluginFailed")
            .filter_map(|e| e["note"].as_str().map(str::to_owned))
            .collect();
        if notes.iter().any(|n| n.contains("trapped"))
            && notes.iter().any(|n| n.contains("timed out after 2s"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the new note never appeared: {notes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A permanent failure waits for a change, then the object recovers.
    probes(&client)
        .patch(
            "broken",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"fail": null, "message": "fixed"}})),
        )
        .await
        .unwrap();
    let fixed = wait_for(&embedded, &client, "broken", "Ready", "True").await;
    assert_eq!(condition(&fixed, "Blocked").unwrap()["status"], "False");
    assert_eq!(fixed.data["status"]["echo"], ">fixed");

    // The host kept serving through all of it.
    let (code, _) = embedded.server.get_text("/healthz").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_failing_cleanup_keeps_the_object_blocked_until_it_succeeds() {
    let port = backend().await;
    let (embedded, client) = start(port).await;
    create(&client, "sticky", json!({"blockCleanup": true})).await;
    wait_for(&embedded, &client, "sticky", "Ready", "True").await;
    probes(&client)
        .delete("sticky", &DeleteParams::default())
        .await
        .unwrap();
    let blocked = wait_for(&embedded, &client, "sticky", "Blocked", "True").await;
    assert_eq!(
        condition(&blocked, "Blocked").unwrap()["reason"],
        "CleanupBlocked"
    );
    assert!(
        blocked.metadata.deletion_timestamp.is_some(),
        "still there, being deleted"
    );
    probes(&client)
        .patch(
            "sticky",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"blockCleanup": false}})),
        )
        .await
        .unwrap();
    wait_gone(&client, &probes(&client), "sticky").await;
}

#[tokio::test]
async fn grants_the_manifest_does_not_request_fail_the_controller_at_load() {
    let grants = "      secrets: [{namespace: default, name: creds}]\n      resources: {read: [{apiVersion: apps/v1, kind: Deployment}]}";
    let embedded = Embedded::start("[]", &controller(grants), None).await;
    let started = Instant::now();
    let body = loop {
        let (code, body) = embedded.server.get_text("/readyz").await;
        if body.contains(r#""probe":{"#) {
            assert_eq!(code, 503);
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        body.contains(
            "grants reading apps/v1 Deployment, which the plugin's manifest does not request"
        ),
        "{body}"
    );
}
