//! The background audit (docs/audit.md) through the real binary over the embedded API: 10,000
//! ConfigMaps, one in ten without the `team` label that `require-labels` wants, audited on a
//! short interval. One OpenReports Report per resource with the right result; a second run
//! rewrites nothing; a fixed object's report turns to pass and a deleted object's goes; a binding
//! with a low cap reports the cap; and `corbel audit` prints the table and exits non-zero.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use corbel_e2e::{Embedded, bin, binding};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

const OBJECTS: usize = 10_000;
/// Every tenth ConfigMap lacks the label.
const BAD_EVERY: usize = 10;
const SECRETS: usize = 20;
const SECRET_CAP: usize = 5;

fn name(i: usize) -> String {
    format!("cm-{i:05}")
}

fn reports() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("openreports.io", "v1alpha1", "Report"),
        "reports",
    )
}

fn cluster_reports() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("openreports.io", "v1alpha1", "ClusterReport"),
        "clusterreports",
    )
}

/// Creates the objects through the API, 32 requests at a time.
async fn create_objects(embedded: &Embedded) {
    let token = embedded.admin_token();
    let server = &embedded.server;
    let requests = (0..OBJECTS)
        .map(|i| {
            let mut labels = json!({"app": "demo"});
            if i % BAD_EVERY != 0 {
                labels["team"] = "a".into();
            }
            (
                "configmaps",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name(i), "labels": labels}, "data": {"k": "v"}}),
            )
        })
        .chain((0..SECRETS).map(|i| {
            (
                "secrets",
                json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": format!("secret-{i:02}")}, "data": {}}),
            )
        }));
    let created: Vec<u16> = futures::stream::iter(requests)
        .map(|(plural, body)| {
            let (client, token) = (&server.client, &token);
            async move {
                client
                    .post(format!(
                        "{}/api/v1/namespaces/default/{plural}",
                        server.base
                    ))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        created.iter().all(|c| *c == 201),
        "creates failed: {:?}",
        created
            .iter()
            .filter(|c| **c != 201)
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// A sample's value from `/metrics`, 0 when absent.
async fn metric(embedded: &Embedded, sample: &str) -> f64 {
    let (_, text) = embedded.server.get_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn runs(embedded: &Embedded) -> f64 {
    metric(
        embedded,
        "corbel_audit_runs_total{binding=\"labels\",result=\"ok\"}",
    )
    .await
}

/// Waits until `labels` has finished `count` runs and their reports are written.
async fn wait_runs(embedded: &Embedded, count: f64, reports: f64) {
    let started = Instant::now();
    loop {
        if runs(embedded).await >= count
            && metric(embedded, "corbel_audit_reports ").await == reports
        {
            // The sync follows the run: give it the time to finish its writes.
            tokio::time::sleep(Duration::from_millis(500)).await;
            if metric(embedded, "corbel_audit_reports ").await == reports {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the audit did not finish run {count} with {reports} reports: {}",
            embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every audit report in `default`, by the name of its resource.
async fn report_map(client: &kube::Client) -> BTreeMap<String, DynamicObject> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &reports());
    let list = api.list(&ListParams::default()).await.unwrap();
    let mut map = BTreeMap::new();
    for report in list.items {
        let name = report.data["scope"]["name"].as_str().unwrap().to_owned();
        assert!(
            map.insert(name.clone(), report).is_none(),
            "two reports for {name}"
        );
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audits_ten_thousand_objects_into_one_report_each_capped_and_kept_in_step() {
    // The objects exist before the audit's bindings do: with them, inline admission would refuse
    // the ConfigMaps without a label.
    let plain = binding(
        "plain",
        "require_labels",
        "validate",
        "{labels: [team]}",
        "",
    );
    let embedded = Embedded::start(&plain, "", None).await;
    let started = Instant::now();
    create_objects(&embedded).await;
    eprintln!(
        "created {} objects in {:.1}s",
        OBJECTS + SECRETS,
        started.elapsed().as_secs_f64()
    );
    let data = embedded.data.clone();
    embedded.server.terminate();

    let bindings = [
        binding(
            "labels",
            "require_labels",
            "validate",
            "{labels: [team]}",
            "rules:\n  - { operations: [CREATE, UPDATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps] }\naudit: { interval: 2s, pageSize: 500 }",
        ),
        binding(
            "secret-labels",
            "require_labels",
            "validate",
            "{labels: [team]}",
            &format!(
                "rules:\n  - {{ operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [secrets] }}\naudit: {{ interval: 2s, maxReports: {SECRET_CAP} }}"
            ),
        ),
    ]
    .join("");
    let embedded = Embedded::start(&bindings, "", Some(data)).await;
    let client = embedded.client().await;
    let expected = (OBJECTS + SECRET_CAP + 1) as f64; // the reports, and the summary
    let started = Instant::now();
    wait_runs(&embedded, 1.0, expected).await;
    eprintln!(
        "first audit and its reports in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // One report per resource, with the right result.
    let first = report_map(&client).await;
    let configmaps: Vec<_> = first.iter().filter(|(n, _)| n.starts_with("cm-")).collect();
    assert_eq!(configmaps.len(), OBJECTS);
    for i in 0..OBJECTS {
        let report = &first[&name(i)];
        let result = &report.data["results"][0];
        assert_eq!(result["policy"], "labels");
        assert_eq!(report.data["scope"]["kind"], "ConfigMap");
        if i % BAD_EVERY == 0 {
            assert_eq!(result["result"], "fail", "{}: {report:?}", name(i));
            assert!(
                result["message"].as_str().unwrap().contains("team"),
                "{result}"
            );
            assert_eq!(report.data["summary"]["fail"], 1);
        } else {
            assert_eq!(result["result"], "pass", "{}: {report:?}", name(i));
        }
    }

    // The cap: 5 of the 20 Secrets are reported, and the summary and metrics say so.
    let secrets = first.keys().filter(|n| n.starts_with("secret-")).count();
    assert_eq!(secrets, SECRET_CAP);
    let summary: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_reports());
    let summary = summary.get("corbel-audit").await.unwrap();
    let capped = summary.data["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == "secret-labels")
        .unwrap()
        .clone();
    assert_eq!(capped["properties"]["reportsDropped"], "15", "{capped}");
    assert!(
        capped["message"]
            .as_str()
            .unwrap()
            .contains("15 resources not reported: over the cap of 5"),
        "{capped}"
    );
    assert_eq!(
        metric(
            &embedded,
            "corbel_audit_reports_dropped{binding=\"secret-labels\"}"
        )
        .await,
        15.0
    );
    assert!(embedded.server.log().contains("not reported"));

    // Another run rewrites nothing: every report keeps its resourceVersion.
    let done = runs(&embedded).await;
    wait_runs(&embedded, done + 1.0, expected).await;
    let second = report_map(&client).await;
    assert_eq!(second.len(), first.len());
    let rewritten: Vec<&String> = first
        .iter()
        .filter(|(n, r)| second[*n].metadata.resource_version != r.metadata.resource_version)
        .map(|(n, _)| n)
        .collect();
    assert!(
        rewritten.is_empty(),
        "{} reports rewritten, e.g. {:?}",
        rewritten.len(),
        &rewritten[..rewritten.len().min(3)]
    );

    // A fixed object's report turns to pass; a deleted object's report goes.
    let configmaps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
    );
    configmaps
        .patch(
            &name(0),
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
        )
        .await
        .unwrap();
    configmaps
        .delete(&name(BAD_EVERY), &Default::default())
        .await
        .unwrap();
    let done = runs(&embedded).await;
    // The run in progress may have listed before the change: wait for the one after.
    wait_runs(&embedded, done + 2.0, expected - 1.0).await;
    let third = report_map(&client).await;
    assert_eq!(third[&name(0)].data["results"][0]["result"], "pass");
    assert!(!third.contains_key(&name(BAD_EVERY)));
    assert_eq!(third.len(), first.len() - 1);

    // `corbel audit` against the same API prints the table and fails.
    let config = embedded.server.dir.path().join("corbel.yaml");
    let out = std::process::Command::new(bin())
        .args(["audit", "--binding", "labels", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("RESOURCE"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with(&format!("ConfigMap default/{}", name(20))))
        .unwrap_or_else(|| panic!("no row for {}: {stdout}", name(20)));
    assert!(row.contains("labels") && row.contains("fail"), "{row}");
    assert!(
        !stdout.contains(&format!("default/{} ", name(1))),
        "passing objects are not listed without --all"
    );
    let failing = OBJECTS / BAD_EVERY - 2;
    assert!(
        stdout.contains(&format!("labels: {} objects of v1/configmaps", OBJECTS - 1))
            && stdout.contains(&format!("{failing} fail")),
        "{}",
        stdout.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(
        stderr.contains(&format!("{failing} objects failed the audit")),
        "{stderr}"
    );
}
