//! API-management figures (docs/api-management.md): many subscriptions through the whole chain —
//! api controller → identity Clients at the real `oidc-provider` → gateway Consumers and
//! ConsumeRoutes → xDS → a real Envoy — with the real `corbel serve` in embedded mode as its own
//! process (its memory read from /proc). The harness is the end-to-end test's
//! (`corbel_e2e::api::World`).
//!
//! ```sh
//! cargo build --release -p corbel && cargo xtask plugins
//! cargo bench -p corbel-e2e --bench api
//! ```
//!
//! `CORBEL_BENCH_APPS` Applications (200) each subscribe to `CORBEL_BENCH_PER_APP` (5) of
//! `CORBEL_BENCH_EXPOSURES` (50) ApiExposures with `Auto` approval, created 16 requests in
//! flight through the API (the subscriptions with a team member's token, as admission wants).
//! The clock runs from the first create until every subscription is Ready (Granted, with its
//! ConsumeRoute), then until every subscription's token passes Envoy on its API (200). Host RSS
//! (VmRSS) before, at its highest sample, and after; reconciles per object from the host's
//! `corbel_reconciles_total`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use corbel_e2e::api::{CONSUMER_NS, PROVIDER_NS, World, api, create, object};
use corbel_e2e::identity::Credentials;
use futures::StreamExt as _;
use kube::api::ListParams;
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const API: &str = "api.corbel.dev";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let apps = env("CORBEL_BENCH_APPS", 200);
    let exposures = env("CORBEL_BENCH_EXPOSURES", 50);
    let per_app = env("CORBEL_BENCH_PER_APP", 5).min(exposures);
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>7.1} s] {what}", started.elapsed().as_secs_f64());

    let world = World::start_with(
        "resyncSeconds: 300, blockedRetrySeconds: 2",
        "resyncSeconds: 300, blockedRetrySeconds: 2",
    )
    .await;
    let admin = world.setup.client.clone();
    let erin = world.as_user("erin").await;
    let rss_before = world.setup.embedded.server.rss_kib();
    let mut rss_peak = rss_before;
    phase("server, provider and Envoy up");

    let clock = Instant::now();
    let exposure_api = api(&admin, PROVIDER_NS, API, "ApiExposure");
    let application_api = api(&admin, CONSUMER_NS, API, "Application");
    let subscription_api = api(&erin, PROVIDER_NS, API, "ApiSubscription");
    let mut writes = Vec::new();
    for e in 0..exposures {
        writes.push((
            exposure_api.clone(),
            object(
                API,
                "ApiExposure",
                &format!("api-{e}"),
                json!({
                    "basePath": format!("/api-{e}"), "gatewayRef": {"name": "public"},
                    "upstreams": [{"url": world.upstream.url}],
                    "security": {"issuer": "oidc"}, "approval": {"strategy": "Auto"},
                }),
            ),
        ));
    }
    // Which exposures app `a` subscribes to: spread evenly.
    let chosen = |a: usize| -> Vec<usize> {
        (0..per_app)
            .map(|k| (a + k * exposures / per_app) % exposures)
            .collect()
    };
    for a in 0..apps {
        writes.push((
            application_api.clone(),
            object(
                API,
                "Application",
                &format!("app-{a}"),
                json!({"scopes": ["api"]}),
            ),
        ));
        for e in chosen(a) {
            writes.push((
                subscription_api.clone(),
                object(
                    API,
                    "ApiSubscription",
                    &format!("app-{a}-api-{e}"),
                    json!({
                        "basePath": format!("/api-{e}"),
                        "applicationRef": {"namespace": CONSUMER_NS, "name": format!("app-{a}")},
                    }),
                ),
            ));
        }
    }
    let total_writes = writes.len();
    futures::stream::iter(writes)
        .map(|(target, body)| async move { create(&target, body).await.unwrap() })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created = clock.elapsed();
    phase(&format!("{total_writes} objects created in {created:?}"));

    let subscriptions = apps * per_app;
    let all_subscriptions = api(&admin, PROVIDER_NS, API, "ApiSubscription");
    loop {
        let list = all_subscriptions
            .list(&ListParams::default())
            .await
            .unwrap();
        let ready = list
            .items
            .iter()
            .filter(|s| {
                s.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        rss_peak = rss_peak.max(world.setup.embedded.server.rss_kib());
        if ready == subscriptions {
            break;
        }
        assert!(
            clock.elapsed() < Duration::from_secs(1800),
            "only {ready} of {subscriptions} subscriptions Ready after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let granted = clock.elapsed();
    phase(&format!(
        "{subscriptions} subscriptions Ready at {granted:?}"
    ));

    // Every application's token on each of its APIs, through Envoy.
    let secrets = api(&admin, CONSUMER_NS, "", "Secret");
    let mut tokens = BTreeMap::new();
    for a in 0..apps {
        let secret = secrets.get(&format!("app-{a}-credentials")).await.unwrap();
        let (code, body) = Credentials::of(&secret).token();
        assert_eq!(code, 200, "app-{a}'s token: {body}");
        tokens.insert(a, body["access_token"].as_str().unwrap().to_owned());
    }
    // Polled without the harness's per-request limit: under load the gateway takes a while.
    let gateways = api(&admin, PROVIDER_NS, "gateway.corbel.dev", "Gateway");
    for a in 0..apps {
        for e in chosen(a) {
            let path = format!("/api-{e}/x");
            loop {
                let (code, body) = world.through.get(&path, Some(&tokens[&a])).await;
                if code == 200 {
                    break;
                }
                if clock.elapsed() > Duration::from_secs(1800) {
                    let gateway = gateways.get("public").await.unwrap();
                    let route = api(&admin, PROVIDER_NS, "gateway.corbel.dev", "Route")
                        .get(&format!("api-{e}"))
                        .await
                        .unwrap();
                    panic!(
                        "app-{a} on {path}: {code} {body} after 30 minutes\nGateway status: {}\nRoute api-{e} conditions: {}",
                        gateway.data["status"], route.data["status"]["conditions"]
                    );
                }
                rss_peak = rss_peak.max(world.setup.embedded.server.rss_kib());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        rss_peak = rss_peak.max(world.setup.embedded.server.rss_kib());
    }
    let passed = clock.elapsed();
    phase(&format!(
        "every subscription's token passes Envoy at {passed:?}"
    ));
    let rss_after = world.setup.embedded.server.rss_kib();

    let (_, metrics) = world.setup.embedded.server.get_text("/metrics").await;
    let mut reconciles: BTreeMap<String, u64> = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("corbel_reconciles_total{"))
    {
        let kind = line
            .split("kind=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *reconciles.entry(kind.to_owned()).or_default() += count as u64;
    }
    let objects: BTreeMap<&str, usize> = BTreeMap::from([
        ("Application", apps),
        ("ApiExposure", exposures),
        ("ApiSubscription", subscriptions),
        ("Approval", subscriptions),
        ("Client", apps),
        ("Route", exposures),
        ("Gateway", 1),
    ]);
    println!(
        "api: {apps} Applications x {per_app} of {exposures} ApiExposures = {subscriptions} subscriptions (Auto)"
    );
    println!("  created ({total_writes} objects, 16 in flight): {created:.1?}");
    println!("  every subscription Ready: {granted:.1?}");
    println!("  every token passes Envoy: {passed:.1?}");
    println!(
        "  host RSS: {} MiB before, {} MiB peak, {} MiB after",
        rss_before / 1024,
        rss_peak / 1024,
        rss_after / 1024
    );
    for (kind, count) in &objects {
        let done = reconciles.get(*kind).copied().unwrap_or_default();
        println!(
            "  reconciles {kind}: {done} ({:.1} per object)",
            done as f64 / *count as f64
        );
    }
}
