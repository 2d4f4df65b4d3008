//! The background audit's objects per second (docs/audit.md): `CORBEL_BENCH_OBJECTS` ConfigMaps
//! (10,000; one in ten without the `team` label) in the embedded API, audited by `require-labels`.
//!
//! ```sh
//! cargo xtask plugins && cargo build --release -p corbel
//! cargo bench -p corbel-e2e --bench audit
//! ```
//!
//! Measured in one run, against the same store:
//! 1. **list only** (the baseline): the bench lists every ConfigMap in pages of 500 over HTTPS
//!    with kube-rs, evaluating nothing;
//! 2. **background audit**, for each of `CORBEL_BENCH_WORKERS` (`1,2`): `corbel serve` restarted
//!    with the binding's `audit:`; the first run's listing (in process) and evaluation, from
//!    `corbel_audit_last_run_duration_seconds`; then the time until every report is written;
//! 3. **`corbel audit`**: the command's own run over HTTPS, from its summary line, and the whole
//!    command's wall time (plugin load included).
//!
//! Objects per second for each, and the ratio to the list-only baseline.

use std::time::{Duration, Instant};

use corbel_e2e::{Embedded, bin, binding};
use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn metric(embedded: &Embedded, sample: &str) -> f64 {
    let (_, text) = embedded.server.get_text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let objects: usize = env("CORBEL_BENCH_OBJECTS", "10000").parse().unwrap();
    let workers: Vec<usize> = env("CORBEL_BENCH_WORKERS", "1,2")
        .split(',')
        .map(|w| w.trim().parse().unwrap())
        .collect();
    let plain = binding(
        "plain",
        "require_labels",
        "validate",
        "{labels: [team]}",
        "",
    );
    let embedded = Embedded::start(&plain, "", None).await;
    let token = embedded.admin_token();
    let started = Instant::now();
    let server = &embedded.server;
    let created: Vec<u16> = futures::stream::iter(0..objects)
        .map(|i| {
            let (client, token) = (&server.client, &token);
            let mut labels = json!({"app": "bench"});
            if i % 10 != 0 {
                labels["team"] = "a".into();
            }
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:06}"), "labels": labels}, "data": {"k": "v"}});
            async move {
                client
                    .post(format!(
                        "{}/api/v1/namespaces/default/configmaps",
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
    assert!(created.iter().all(|c| *c == 201));
    println!(
        "created {objects} ConfigMaps in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // 1. The baseline: list everything in pages, evaluate nothing.
    let client = embedded.client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
    );
    let started = Instant::now();
    let mut listed = 0;
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(500);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api.list(&params).await.unwrap();
        listed += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    let list_seconds = started.elapsed().as_secs_f64();
    assert_eq!(listed, objects);
    let baseline = objects as f64 / list_seconds;
    let data = embedded.data.clone();
    embedded.server.terminate();

    println!();
    println!("{:<44} {:>12} {:>10}", "", "objects/s", "vs list");
    println!(
        "{:<44} {:>12.0} {:>10}",
        "list only (HTTPS, kube-rs, pages of 500)", baseline, "1.00"
    );

    // 2. The background audit, first run after start.
    for w in &workers {
        let audited = binding(
            "labels",
            "require_labels",
            "validate",
            "{labels: [team]}",
            &format!(
                "rules:\n  - {{ operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps] }}\naudit: {{ interval: 1h, workers: {w} }}"
            ),
        );
        let started = Instant::now();
        let embedded = Embedded::start(&audited, "", Some(data.clone())).await;
        let run = "corbel_audit_runs_total{binding=\"labels\",result=\"ok\"}";
        while metric(&embedded, run).await < 1.0 {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{}",
                embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seconds = metric(
            &embedded,
            "corbel_audit_last_run_duration_seconds{binding=\"labels\"}",
        )
        .await;
        let reports = (objects + 1) as f64;
        while metric(&embedded, "corbel_audit_reports ").await < reports {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{}",
                embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let until_reports = started.elapsed().as_secs_f64();
        let rate = objects as f64 / seconds;
        println!(
            "{:<44} {:>12.0} {:>10.2}",
            format!("background audit, {w} worker(s): list + evaluate"),
            rate,
            rate / baseline
        );
        println!(
            "{:<44} {:>12} {:>10}",
            format!("  start to {} reports written", objects + 1),
            format!("{until_reports:.1}s"),
            ""
        );
        let config = embedded.server.dir.path().join("corbel.yaml");
        if w == workers.last().unwrap() {
            // 3. `corbel audit` against the same server.
            let started = Instant::now();
            let out = std::process::Command::new(bin())
                .args(["audit", "--config"])
                .arg(&config)
                .output()
                .unwrap();
            let wall = started.elapsed().as_secs_f64();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let summary = stdout
                .lines()
                .find(|l| l.starts_with("labels: "))
                .unwrap_or_else(|| panic!("{stdout}"));
            let seconds: f64 = summary
                .split(" in ")
                .nth(1)
                .and_then(|s| s.split('s').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{summary}"));
            let rate = objects as f64 / seconds;
            println!(
                "{:<44} {:>12.0} {:>10.2}",
                "corbel audit (HTTPS, 1 worker)",
                rate,
                rate / baseline
            );
            println!(
                "{:<44} {:>12} {:>10}",
                "  the whole command",
                format!("{wall:.1}s"),
                ""
            );
        }
        embedded.server.terminate();
    }
}
