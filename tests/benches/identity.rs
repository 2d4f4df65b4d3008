//! Identity figures: many Clients against the real OpenID provider (npm `oidc-provider` with
//! dynamic registration, `corbel_e2e::identity::Provider`) and the real `corbel serve` in
//! embedded mode, as a separate process (so its memory is its own, read from /proc).
//!
//! ```sh
//! cargo build --release -p corbel && cargo xtask plugins
//! cargo bench -p corbel-e2e --bench identity
//! ```
//!
//! 1. **N Clients at once** (`CORBEL_BENCH_CLIENTS`, 500), created 16 requests in flight, each
//!    admitted inline by the identity plugin bound as a validating policy, each with a rotation
//!    every `CORBEL_BENCH_EVERY` seconds (90) and an overlap of half that. The clock runs from
//!    the first create until every Client's Secret exists (polled every 250 ms), then until each
//!    Secret has obtained a token (one request per Client, one at a time). Host RSS (VmRSS)
//!    before, at its highest sample, and after.
//! 2. **A rotation of the N Clients**: a consumer passes over every Secret again and again,
//!    reading it and asking for a token with what it holds, until every Client has rotated once
//!    and every overlap has ended; every failed token request is counted.
//!
//! The controller's concurrency: `CORBEL_BENCH_CONCURRENCY` (4, the configuration's default).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use corbel_e2e::identity::{Credentials, Provider, Setup};
use futures::StreamExt as _;
use kube::api::ListParams;
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every Client's Secret, by Client name.
async fn secrets(setup: &Setup) -> BTreeMap<String, Credentials> {
    setup
        .secrets()
        .list(&ListParams::default().labels("identity.corbel.dev/client"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| {
            let client = s.metadata.labels.as_ref().unwrap()["identity.corbel.dev/client"].clone();
            (client, Credentials::of(s))
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clients = env("CORBEL_BENCH_CLIENTS", 500);
    let concurrency = env("CORBEL_BENCH_CONCURRENCY", 4);
    let every = env("CORBEL_BENCH_EVERY", 90) as u64;
    let bench_started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>7.1} s] {what}", bench_started.elapsed().as_secs_f64());

    let provider = Provider::start();
    let setup = Setup::serve_with(
        &provider.issuer,
        "resyncSeconds: 600, blockedRetrySeconds: 2",
        concurrency,
    )
    .await;
    setup
        .provider(json!({"oidc": {"issuer": provider.issuer}}))
        .await;
    setup.wait_for("Realm", "apps", "Ready", "True").await;
    phase("provider, host and realm ready");

    let rss_before = setup.embedded.server.rss_kib();
    let started = Instant::now();
    let names: Vec<String> = (0..clients).map(|i| format!("client-{i:04}")).collect();
    let spec = json!({"realmRef": {"name": "apps"}, "scopes": ["api"],
                      "rotation": {"every": format!("{every}s"), "overlap": format!("{}s", every / 2)}});
    futures::stream::iter(names.iter())
        .for_each_concurrent(16, |name| {
            let (setup, spec) = (&setup, spec.clone());
            async move {
                setup.create_client(name, spec).await.unwrap();
            }
        })
        .await;
    let created = started.elapsed();
    phase(&format!("{clients} Clients created"));
    let mut rss_peak = setup.embedded.server.rss_kib();
    let initial = loop {
        let found = secrets(&setup).await;
        rss_peak = rss_peak.max(setup.embedded.server.rss_kib());
        if found.len() == clients {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {clients} Secrets after 10 minutes\n{}",
            found.len(),
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let all_secrets = started.elapsed();
    phase("every Secret exists");
    let mut first_failures = 0;
    for credentials in initial.values() {
        if credentials.token().0 != 200 {
            first_failures += 1;
        }
    }
    let all_tokens = started.elapsed();
    rss_peak = rss_peak.max(setup.embedded.server.rss_kib());
    phase("every Secret obtained a token");

    // Rotation: pass over every Secret until each Client has rotated and its overlap ended.
    let (mut requests, mut failures, mut passes) = (0usize, Vec::new(), 0usize);
    let rotation_started = Instant::now();
    loop {
        let current = secrets(&setup).await;
        passes += 1;
        for (name, credentials) in &current {
            let (code, body) = credentials.token();
            requests += 1;
            if code != 200 {
                failures.push(format!("{name}: {code} {body}"));
            }
        }
        rss_peak = rss_peak.max(setup.embedded.server.rss_kib());
        let done = current.iter().all(|(name, c)| {
            c.get("client_id") != initial[name].get("client_id")
                && !c.0.contains_key("previous_client_id")
        });
        if done {
            break;
        }
        assert!(
            rotation_started.elapsed() < Duration::from_secs(every * 4 + 300),
            "the rotation never finished\n{}",
            setup.embedded.server.log()
        );
    }
    let rotation = rotation_started.elapsed();
    phase("every Client rotated and its overlap ended");
    let rss_after = setup.embedded.server.rss_kib();

    println!(
        "identity controller, {clients} Clients, controller concurrency {concurrency}, real oidc-provider"
    );
    println!(
        "  create requests done          {:>8.1} s",
        created.as_secs_f64()
    );
    println!(
        "  every Secret exists after     {:>8.1} s",
        all_secrets.as_secs_f64()
    );
    println!(
        "  every Secret obtained a token {:>8.1} s  ({first_failures} failed)",
        all_tokens.as_secs_f64()
    );
    println!(
        "  rotation of all Clients       {:>8.1} s  ({passes} passes, {requests} token requests, {} failed)",
        rotation.as_secs_f64(),
        failures.len()
    );
    println!(
        "  host RSS                      before {} MiB, peak {} MiB, after {} MiB",
        rss_before / 1024,
        rss_peak / 1024,
        rss_after / 1024
    );
    if !failures.is_empty() {
        println!("  failures: {:?}", &failures[..failures.len().min(10)]);
    }
}
