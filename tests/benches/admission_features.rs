//! What the operator features cost admission (issue 14): the webhook's p99 latency at a fixed
//! open-loop rate over HTTPS, (a) plain, (b) with shadow evaluation, (c) with a background audit
//! running, as ratios to (a) measured in the same run.
//!
//! ```sh
//! cargo xtask plugins && cargo build --release -p corbel
//! CORBEL_BIN=$PWD/target/release/corbel CORBEL_PLUGINS=$PWD/target/wasm32-wasip2/plugin \
//!   cargo bench -p corbel-e2e --bench admission_features
//! ```
//!
//! Every arm posts the same review to a binding of `require-labels` (`{"labels": ["team"]}`):
//! - (a) `plain`: nothing else;
//! - (b) `shadowed`: the same binding with a shadow candidate, `require-labels` with
//!   `{"labels": ["team", "tier"]}`, which disagrees on every request of the bench (the costlier
//!   path: each disagreement is kept), at the default `cpuShare: 0.5`;
//! - (c) `plain` on a second server that also has a binding `audited` with
//!   `audit: {interval: 1s}` (and `enforcement: audit`) over ConfigMaps, of which the bench first
//!   creates `CORBEL_BENCH_OBJECTS` (2,000, half of them without the label): an audit is running
//!   while the requests are answered.
//!
//! Both servers run the embedded mode. An audit, once configured, runs whatever endpoint is
//! called, so (c) has a server of its own; only the measured server runs during an arm (the other
//! is paused with SIGSTOP and resumed with SIGCONT), so the audit's CPU never weighs on (a) or
//! (b). Each round measures the arms in a rotating order.
//!
//! Load: an open loop at `CORBEL_BENCH_RATE` (2,000) req/s over `CORBEL_BENCH_CONNECTIONS` (16)
//! HTTPS keep-alive connections (HTTP/1.1), request `i` due at `start + i/rate` on connection
//! `i % n`; latency counts from the due time when the connection was still busy (no coordinated
//! omission). The review is `tests/data/reviews/configmap-labelled.json`. The load generator runs
//! in this process on the same two cores, alike for every arm.
//!
//! Environment: `CORBEL_BENCH_ROUNDS` (3), `CORBEL_BENCH_SECONDS` (5 per arm per round),
//! `CORBEL_BENCH_RATE`, `CORBEL_BENCH_CONNECTIONS`, `CORBEL_BENCH_OBJECTS`, `CORBEL_BENCH_NO_AUDIT`
//! (set: skip (c)), `CORBEL_BIN`, `CORBEL_PLUGINS`.

use std::process::Command;
use std::time::{Duration, Instant};

use corbel_e2e::{Embedded, Server, binding, client_trusting, plugin, review};
use serde_json::{Value, json};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Samples {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
    }

    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i] as f64 / 1e3
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// One open-loop phase against `url`.
async fn open_loop(
    clients: &[reqwest::Client],
    url: &str,
    body: &bytes::Bytes,
    rate: f64,
    duration: Duration,
) -> Samples {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let n = clients.len() as u64;
    let start = Instant::now() + Duration::from_millis(5);
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(k, client)| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut samples = Samples::default();
                let mut last_done = start;
                let mut i = k as u64;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    let from = if last_done > due {
                        due
                    } else {
                        tokio::time::sleep_until(due.into()).await;
                        Instant::now()
                    };
                    let result = async {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await
                            .map_err(|e| format!("{e:?}"))?;
                        let status = response.status();
                        let text = response.bytes().await.map_err(|e| format!("{e:?}"))?;
                        if status != 200 || !text.windows(14).any(|w| w == b"\"allowed\":true") {
                            return Err(format!("{status}: {}", String::from_utf8_lossy(&text)));
                        }
                        Ok(())
                    }
                    .await;
                    last_done = Instant::now();
                    match result {
                        Ok(()) => samples.latencies.push((last_done - from).as_nanos() as u64),
                        Err(e) => {
                            samples.errors += 1;
                            samples.first_error.get_or_insert(e);
                        }
                    }
                    i += n;
                }
                (samples, last_done)
            })
        })
        .collect();
    let mut all = Samples::default();
    let mut end = start;
    for task in tasks {
        let (samples, done) = task.await.expect("a load task does not panic");
        end = end.max(done);
        all.merge(samples);
    }
    all.elapsed = end - start;
    all
}

/// Pauses (`-STOP`) or resumes (`-CONT`) a server.
fn signal(server: &Server, signal: &str) {
    Command::new("kill")
        .args([signal, &server.pid().to_string()])
        .status()
        .unwrap();
}

#[derive(Clone, Copy, PartialEq)]
enum Arm {
    Plain,
    Shadow,
    Audit,
}

impl Arm {
    fn label(self) -> &'static str {
        match self {
            Arm::Plain => "(a) plain",
            Arm::Shadow => "(b) shadow evaluation",
            Arm::Audit => "(c) background audit running",
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let rounds = env_u64("CORBEL_BENCH_ROUNDS", 3);
    let seconds = env_u64("CORBEL_BENCH_SECONDS", 5);
    let rate = env_u64("CORBEL_BENCH_RATE", 2000) as f64;
    let connections = env_u64("CORBEL_BENCH_CONNECTIONS", 16);
    let objects = env_u64("CORBEL_BENCH_OBJECTS", 2000);
    let with_audit = std::env::var_os("CORBEL_BENCH_NO_AUDIT").is_none();

    let labels = r#"{"labels": ["team"]}"#;
    let candidate = format!(
        "shadow:\n  plugin: {}\n  settings: {{labels: [team, tier]}}",
        plugin("require_labels").display()
    );
    let bindings = binding("plain", "require_labels", "validate", labels, "")
        + &binding("shadowed", "require_labels", "validate", labels, &candidate);
    let first = Embedded::start(&bindings, "", None).await;

    let audited = if with_audit {
        let rules = "enforcement: audit\nrules:\n  - { operations: [CREATE, UPDATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps] }\naudit:\n  interval: 1s";
        let bindings =
            bindings.clone() + &binding("audited", "require_labels", "validate", labels, rules);
        let server = Embedded::start(&bindings, "", None).await;
        let (status, ready) = server.server.wait_loaded().await;
        assert!(
            ready["bindings"]["audited"]["loaded"] == true,
            "the audited binding did not load ({status}): {ready}\n{}",
            server.server.log()
        );
        create_configmaps(&server, objects).await;
        Some(server)
    } else {
        None
    };

    let body: bytes::Bytes = serde_json::to_vec(&review("configmap-labelled"))
        .unwrap()
        .into();
    let ca = |s: &Server| s.dir.path().join("tls/ca.crt");
    let clients = |s: &Server| -> Vec<reqwest::Client> {
        (0..connections).map(|_| client_trusting(&ca(s))).collect()
    };
    let first_clients = clients(&first.server);
    let audit_clients = audited.as_ref().map(|a| clients(&a.server));

    println!(
        "admission p99 at {rate} req/s, open loop over HTTPS ({connections} keep-alive connections), {seconds} s per arm, {rounds} rounds"
    );
    if let Some(a) = &audited {
        signal(&a.server, "-STOP");
    }
    // Warm-up: connections, caches, the sandbox pool.
    let warm = format!("{}/validate/plain", first.server.base);
    let _ = open_loop(&first_clients, &warm, &body, rate, Duration::from_secs(2)).await;

    let mut arms = vec![Arm::Plain, Arm::Shadow];
    if audited.is_some() {
        arms.push(Arm::Audit);
    }
    let mut samples: Vec<Samples> = arms.iter().map(|_| Samples::default()).collect();
    let mut per_round: Vec<Vec<f64>> = arms.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds as usize {
        // Rotate the order so that drift on a shared machine weighs on every arm alike.
        let order: Vec<usize> = (0..arms.len()).map(|k| (k + round) % arms.len()).collect();
        for &i in &order {
            let arm = arms[i];
            let result = match arm {
                Arm::Plain | Arm::Shadow => {
                    let path = if arm == Arm::Plain {
                        "plain"
                    } else {
                        "shadowed"
                    };
                    let url = format!("{}/validate/{path}", first.server.base);
                    open_loop(
                        &first_clients,
                        &url,
                        &body,
                        rate,
                        Duration::from_secs(seconds),
                    )
                    .await
                }
                Arm::Audit => {
                    let a = audited.as_ref().unwrap();
                    signal(&first.server, "-STOP");
                    signal(&a.server, "-CONT");
                    // Let the audit (interval 1s) get going after the pause.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let url = format!("{}/validate/plain", a.server.base);
                    let result = open_loop(
                        audit_clients.as_ref().unwrap(),
                        &url,
                        &body,
                        rate,
                        Duration::from_secs(seconds),
                    )
                    .await;
                    signal(&a.server, "-STOP");
                    signal(&first.server, "-CONT");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    result
                }
            };
            per_round[i].push(result.quantile(0.99));
            samples[i].merge(result);
        }
    }

    println!(
        "\n{:<32} {:>10} {:>10} {:>10} {:>10} {:>8}  p99 per round (ms)",
        "arm", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for (i, arm) in arms.iter().enumerate() {
        let s = &samples[i];
        println!(
            "{:<32} {:>10.0} {:>10.3} {:>10.3} {:>10.3} {:>8}  {}",
            arm.label(),
            s.rate(),
            s.quantile(0.5) / 1e3,
            s.quantile(0.99) / 1e3,
            s.quantile(1.0) / 1e3,
            s.errors,
            per_round[i]
                .iter()
                .map(|v| format!("{:.3}", v / 1e3))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Some(e) = &s.first_error {
            println!("    first error: {e}");
        }
    }
    let base = samples[0].quantile(0.99);
    println!("\np99 ratios to (a), over all rounds:");
    for (i, arm) in arms.iter().enumerate().skip(1) {
        let ratios: Vec<String> = per_round[i]
            .iter()
            .zip(&per_round[0])
            .map(|(x, a)| format!("{:.2}", x / a))
            .collect();
        println!(
            "  {:<30} {:.2}x (per round: {})",
            arm.label(),
            samples[i].quantile(0.99) / base,
            ratios.join(" ")
        );
    }
    if !with_audit {
        println!("  (c) background audit running   not measured (CORBEL_BENCH_NO_AUDIT)");
    }

    let (_, shadow) = first.server.get_text("/shadow/shadowed").await;
    let shadow: Value = serde_json::from_str(&shadow).unwrap_or(Value::Null);
    println!(
        "\nshadow candidate (cpuShare {}, {} at once): {} requests, {} compared, {} skipped, {} errors",
        shadow["cpuShare"],
        shadow["concurrency"],
        shadow["requests"],
        shadow["compared"],
        shadow["skipped"],
        shadow["errors"]
    );
    if let Some(a) = &audited {
        signal(&a.server, "-CONT");
        let (_, metrics) = a.server.get_text("/metrics").await;
        let audit_lines: Vec<&str> = metrics
            .lines()
            .filter(|l| l.starts_with("corbel_audit") && !l.contains("_bucket"))
            .collect();
        println!(
            "audit server's audit metrics:\n  {}",
            audit_lines.join("\n  ")
        );
    }
}

/// Creates `count` ConfigMaps through the embedded API, 32 at a time, half of them without the
/// label the audited binding requires.
async fn create_configmaps(server: &Embedded, count: u64) {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let client = server.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..count {
        let labels = if i % 2 == 0 {
            json!({"team": "a"})
        } else {
            json!({"owner": "b"})
        };
        let object: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("bench-{i}"), "labels": labels},
            "data": {"i": i.to_string()},
        }))
        .unwrap();
        let api = api.clone();
        pending.push(async move { api.create(&PostParams::default(), &object).await });
        if pending.len() >= 32 {
            use futures::StreamExt;
            let created = pending.next().await.unwrap();
            created
                .expect("the audited binding's enforcement is audit: every ConfigMap is admitted");
        }
    }
    use futures::StreamExt;
    while let Some(created) = pending.next().await {
        created.expect("every ConfigMap is admitted");
    }
    println!(
        "created {count} ConfigMaps for the audit in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
