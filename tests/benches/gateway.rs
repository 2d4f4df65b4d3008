//! Gateway figures: Corbel driving a real Envoy 1.40 over xDS (`corbel_e2e::envoy`), with the real
//! `corbel serve` in embedded mode as a separate process (its memory read from /proc).
//!
//! ```sh
//! cargo build --release -p corbel && cargo xtask plugins
//! cargo bench -p corbel-e2e --bench gateway
//! ```
//!
//! 1. **N Routes and N ConsumeRoutes at once** (N Consumers first): the clock runs from the first
//!    create (16 in flight) until every Route is `Ready=True` *and* a request to the last Route
//!    succeeds through Envoy. Host RSS before, at its highest sample (after each create and every
//!    250 ms while waiting), and after.
//! 2. **Propagation**: a Route's added header is changed S times; for each, the time from the API
//!    answering the patch to the first request through Envoy that carries the new value (polled
//!    back to back). p50 and p99; and the host's Gateway and Route reconciles meanwhile, from its
//!    `/metrics` (`corbel_reconcile_duration_seconds`: how many a change, how many of them over
//!    51 ms, i.e. whole translations, and their mean duration); and the host's highest RSS since
//!    it started (VmHWM), which the changes' reconciles may raise beyond part 1's peak.
//! 3. **Throughput**, 16 connections for T seconds each, in the same run: the upstream directly,
//!    through Envoy on an open Route, and through Envoy on a Route with JWT (`jwt_authn`), the
//!    consumer ACL (`rbac`) and a rate limit far above the load (`local_ratelimit`), so the
//!    policies' cost shows as a ratio.
//!
//! Environment: `CORBEL_BENCH_ROUTES` (1000), `CORBEL_BENCH_CHANGES` (200),
//! `CORBEL_BENCH_SECONDS` (5).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corbel_e2e::envoy::{Client, Envoy, GROUP, Provider, Setup, Upstream, free_port};
use corbel_e2e::probes::condition;
use futures::StreamExt as _;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The host's reconciles of the gateway controller so far, by kind: (count, seconds in all,
/// count of those that took more than 51.2 ms), from `corbel_reconcile_duration_seconds` on
/// `/metrics`.
async fn reconciles(
    server: &corbel_e2e::Server,
) -> std::collections::BTreeMap<String, (f64, f64, f64)> {
    let text = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut by_kind = std::collections::BTreeMap::<String, (f64, f64, f64)>::new();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        if !labels.contains("plugin=\"gateway\"") {
            continue;
        }
        let Some(kind) = labels
            .split(',')
            .find_map(|l| l.trim_end_matches('}').strip_prefix("kind=\""))
        else {
            continue;
        };
        let entry = by_kind
            .entry(kind.trim_end_matches('"').to_string())
            .or_default();
        let value: f64 = value.parse().unwrap_or_default();
        match name {
            "corbel_reconcile_duration_seconds_count" => {
                entry.0 += value;
                entry.2 += value;
            }
            "corbel_reconcile_duration_seconds_sum" => entry.1 += value,
            // Cumulative: those up to 51.2 ms (2^9 x 0.1 ms) are not slow.
            "corbel_reconcile_duration_seconds_bucket"
                if labels.contains("le=\"0.0512") || labels.contains("le=\"0.05120") =>
            {
                entry.2 -= value;
            }
            _ => {}
        }
    }
    by_kind
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Requests per second from 16 connections for `seconds`.
async fn throughput(url: String, token: Option<String>, seconds: u64) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, token, stop, ok, other) = (
            url.clone(),
            token.clone(),
            stop.clone(),
            ok.clone(),
            other.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = corbel_e2e::envoy::plain_http();
            while !stop.load(Ordering::Relaxed) {
                let mut request = http.get(&url);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                match request.send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    (
        ok.load(Ordering::Relaxed) as f64 / seconds as f64,
        other.load(Ordering::Relaxed),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let routes = env("CORBEL_BENCH_ROUTES", 1000);
    let changes = env("CORBEL_BENCH_CHANGES", 200);
    let seconds = env("CORBEL_BENCH_SECONDS", 5) as u64;
    let upstream = Upstream::start("a").await;
    let provider = Provider::start(&[("app-1", "s1")]);
    let setup = Setup::start(free_port(), None).await;
    let port = free_port();
    setup
        .create(
            "Gateway",
            "public",
            json!({"listener": {"address": "127.0.0.1", "port": port}, "allowLoopbackUpstreams": true,
                   "issuers": [{"name": "oidc", "issuer": provider.issuer, "jwksUri": provider.jwks_uri().await,
                                "audiences": [provider.resource]}]}),
        )
        .await;
    let envoy = Envoy::start(GROUP, setup.xds).await;
    let client = Client::to(port);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = setup.embedded.server.rss_kib();

    // 1. N Routes and N ConsumeRoutes at once.
    let mut peak = idle;
    for i in 0..routes {
        setup
            .consumer(&format!("c{i}"), &format!("client-{i}"))
            .await;
    }
    let started = Instant::now();
    let setup_ref = &setup;
    let url = upstream.url.clone();
    futures::stream::iter(0..routes)
        .map(|i| {
            let url = url.clone();
            async move {
                setup_ref
                    .create(
                        "Route",
                        &format!("r{i}"),
                        json!({"gatewayRef": {"name": "public"}, "paths": [format!("/r{i}")],
                               "upstreams": [{"url": url}]}),
                    )
                    .await;
                setup_ref.grant(&format!("c{i}"), &format!("r{i}")).await;
            }
        })
        .buffer_unordered(16)
        .for_each(|()| {
            peak = peak.max(setup_ref.embedded.server.rss_kib());
            std::future::ready(())
        })
        .await;
    let created = started.elapsed();
    loop {
        let list = setup
            .api("Route")
            .list(&ListParams::default())
            .await
            .unwrap();
        let ready = list
            .items
            .iter()
            .filter(|r| condition(r, "Ready").is_some_and(|c| c["status"] == "True"))
            .count();
        peak = peak.max(setup.embedded.server.rss_kib());
        if ready == routes {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {ready} of {routes} Routes Ready after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_ready = started.elapsed();
    client
        .wait_for(&format!("/r{}", routes - 1), None, 200, &envoy, &setup)
        .await;
    let served = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = setup.embedded.server.rss_kib();
    println!(
        "{routes} Routes + {routes} ConsumeRoutes: created in {:.1} s, all Ready in {:.1} s, served by Envoy in {:.1} s (target < 30 s)",
        created.as_secs_f64(),
        all_ready.as_secs_f64(),
        served.as_secs_f64()
    );
    println!(
        "host RSS: idle {:.1} MiB, peak {:.1} MiB, after {:.1} MiB (target < 200 MiB)",
        mib(idle),
        mib(peak),
        mib(after)
    );

    // 2. Propagation.
    setup
        .create(
            "Route",
            "probe",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/probe"], "upstreams": [{"url": upstream.url}],
                   "transformation": {"requestHeadersToAdd": {"x-added": "v0"}}}),
        )
        .await;
    client.wait_for("/probe", None, 200, &envoy, &setup).await;
    let before = reconciles(&setup.embedded.server).await;
    let mut samples = Vec::new();
    for i in 1..=changes {
        let value = format!("v{i}");
        setup
            .api("Route")
            .patch(
                "probe",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"transformation": {"requestHeadersToAdd": {"x-added": value}}}})),
            )
            .await
            .unwrap();
        let acknowledged = Instant::now();
        loop {
            let (_, body) = client.get("/probe", None).await;
            if body.ends_with(&format!(" {value}")) {
                break;
            }
            assert!(
                acknowledged.elapsed() < Duration::from_secs(30),
                "change {i} never reached Envoy"
            );
        }
        samples.push(acknowledged.elapsed());
    }
    samples.sort();
    println!(
        "propagation over {changes} changes: p50 {:.0} ms, p99 {:.0} ms (target p99 < 1 s)",
        percentile(&samples, 0.5).as_secs_f64() * 1000.0,
        percentile(&samples, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "host RSS at its highest so far, the changes included: {:.1} MiB (VmHWM)",
        mib(setup.embedded.server.peak_rss_kib())
    );
    let after = reconciles(&setup.embedded.server).await;
    for (kind, (count, seconds, slow)) in &after {
        let (count_before, seconds_before, slow_before) =
            before.get(kind).copied().unwrap_or_default();
        let (count, seconds, slow) = (
            count - count_before,
            seconds - seconds_before,
            slow - slow_before,
        );
        println!(
            "  the host's {kind} reconciles meanwhile: {count:.0} ({:.2} a change; {slow:.0} over 51 ms, {:.2} a change), {:.0} ms each on average (corbel_reconcile_duration_seconds)",
            count / changes as f64,
            slow / changes as f64,
            if count > 0.0 {
                seconds * 1000.0 / count
            } else {
                0.0
            }
        );
    }

    // 3. Throughput.
    setup
        .create(
            "Route",
            "secured",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/secured"], "upstreams": [{"url": upstream.url}],
                   "security": {"issuer": "oidc"}, "traffic": {"rateLimit": {"perSecond": 1000000}}}),
        )
        .await;
    setup.consumer("app-1", "app-1").await;
    setup.grant("app-1", "secured").await;
    let token = provider.token("app-1", "s1").await;
    client
        .wait_for("/secured", Some(&token), 200, &envoy, &setup)
        .await;
    let (direct, _) = throughput(format!("{}/probe", upstream.url), None, seconds).await;
    let (open, open_errors) = throughput(format!("{}/probe", client.base), None, seconds).await;
    let (secured, secured_errors) =
        throughput(format!("{}/secured", client.base), Some(token), seconds).await;
    println!(
        "throughput, 16 connections, {seconds} s each: upstream directly {direct:.0} req/s; through Envoy {open:.0} req/s ({:.2}x, {open_errors} errors); with JWT + RBAC + rate limit {secured:.0} req/s ({:.2}x of the open route, {secured_errors} errors)",
        open / direct,
        secured / open
    );
}
