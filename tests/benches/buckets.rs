//! Storage figures: what the storage controller costs at scale and per reconcile, against a real
//! Garage (one node on loopback, `corbel_e2e::garage`) and the real `corbel serve` in embedded
//! mode, as a separate process (so its memory is its own, read from /proc).
//!
//! ```sh
//! cargo build --release -p corbel && cargo xtask plugins
//! cargo bench -p corbel-e2e --bench buckets
//! ```
//!
//! 1. **1,000 Buckets at once**: the Buckets are created (16 requests in flight, each admitted
//!    inline by the storage plugin bound as a validating policy); the clock runs from the first
//!    create until every Bucket has `Ready=True` (polled every 250 ms). Host RSS (VmRSS) before,
//!    at its highest sample during, and after.
//! 2. **Reconcile overhead**, one reconcile at a time (an annotation change on a Ready object, then
//!    waiting until the reconcile counter moves), mean of `corbel_reconcile_duration_seconds`:
//!    - a no-op reconcile (the `probe-controller` test plugin, empty spec, status unchanged): the
//!      sandbox (instantiate + call) and the engine around it, no I/O;
//!    - a steady Bucket reconcile: the sandbox, reading the ObjectStore and the Secret through
//!      the host, and HEAD bucket + GET lifecycle + GET CORS over wasi:http;
//!    - the backend alone: the same three S3 requests from the same S3 client natively
//!      (blocking ureq, one connection per request as wasi:http uses), and a native
//!      CreateBucket round trip.
//!
//! Environment: `CORBEL_BENCH_BUCKETS` (1000), `CORBEL_BENCH_CONCURRENCY` (the controller's
//! concurrency, 4 = the configuration's default), `CORBEL_BENCH_SAMPLES` (200).

use std::time::{Duration, Instant, SystemTime};

use corbel_e2e::garage::{Garage, UreqTransport};
use corbel_e2e::probes::{condition, create_crd_file, resource};
use corbel_e2e::{Embedded, binding, plugin};
use futures::StreamExt as _;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use storage::s3::{Client, Credentials};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A sample of a metric line, by its exact name and labels.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct Histogram {
    sum: f64,
    count: f64,
}

async fn histogram(embedded: &Embedded, plugin: &str, kind: &str) -> Histogram {
    let (_, text) = embedded.server.get_text("/metrics").await;
    let labels = format!("{{plugin=\"{plugin}\",kind=\"{kind}\"}}");
    Histogram {
        sum: metric(
            &text,
            &format!("corbel_reconcile_duration_seconds_sum{labels}"),
        ),
        count: metric(
            &text,
            &format!("corbel_reconcile_duration_seconds_count{labels}"),
        ),
    }
}

/// Changes an annotation on each object in turn, waiting for its reconcile to finish, and
/// returns each reconcile's time in ms (from the host's histogram: one reconcile per change).
async fn one_at_a_time(
    embedded: &Embedded,
    api: &Api<DynamicObject>,
    names: &[String],
    plugin: &str,
    kind: &str,
    tag: &str,
) -> Vec<f64> {
    let mut times = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let before = histogram(embedded, plugin, kind).await;
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"bench": format!("{tag}-{i}")}}})),
        )
        .await
        .unwrap();
        let started = Instant::now();
        let after = loop {
            let now = histogram(embedded, plugin, kind).await;
            if now.count > before.count {
                break now;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} was not reconciled\n{}",
                embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(after.count, before.count + 1.0, "one reconcile per change");
        times.push((after.sum - before.sum) * 1000.0);
    }
    times
}

/// Mean and median, in ms.
fn stats(samples: &[f64]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted.iter().sum::<f64>() / sorted.len() as f64,
        sorted[sorted.len() / 2],
    )
}

/// HEAD bucket + GET lifecycle + GET CORS, natively: a steady reconcile's S3 requests without
/// the sandbox, in ms.
async fn native_steady(s3: Client, name: String) -> f64 {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        assert!(
            s3.head_bucket(&UreqTransport::per_request(), SystemTime::now(), &name)
                .unwrap()
        );
        s3.get_lifecycle(&UreqTransport::per_request(), SystemTime::now(), &name)
            .unwrap();
        s3.get_cors(&UreqTransport::per_request(), SystemTime::now(), &name)
            .unwrap();
        started.elapsed().as_secs_f64() * 1000.0
    })
    .await
    .unwrap()
}

fn mean_ms(samples: &[Duration]) -> f64 {
    samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let buckets = env("CORBEL_BENCH_BUCKETS", 1000);
    let concurrency = env("CORBEL_BENCH_CONCURRENCY", 4);
    let samples = env("CORBEL_BENCH_SAMPLES", 200).min(buckets);

    let bench_started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>7.1} s] {what}", bench_started.elapsed().as_secs_f64());
    let garage = Garage::start();
    phase("garage started");
    let bindings = binding(
        "storage",
        "storage",
        "validate",
        "{}",
        "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [storage.corbel.dev], apiVersions: [v1alpha1], resources: [buckets, objectstores]}",
    );
    let controllers = format!(
        "controllers:\n  - name: storage\n    plugin: {}\n    concurrency: {concurrency}\n    settings: {{resyncSeconds: 3600}}\n    grants:\n      secrets: [{{namespace: '@self'}}]\n      http: ['{}']\n      resources: {{read: [{{apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore}}, {{apiVersion: storage.corbel.dev/v1alpha1, kind: Bucket}}]}}\n  - name: probe\n    plugin: {}\n",
        plugin("storage").display(),
        garage.endpoint(),
        plugin("probe_controller").display(),
    );
    let embedded = Embedded::start(&bindings, &controllers, None).await;
    let client = embedded.client().await;
    let namespaced = |group: &str, kind: &str, plural: &str| -> Api<DynamicObject> {
        let version = match group {
            "" | "test.corbel.dev" => "v1",
            _ => "v1alpha1",
        };
        Api::namespaced_with(
            client.clone(),
            "default",
            &resource(group, version, kind, plural),
        )
    };
    for kind in ["objectstores", "buckets"] {
        create_crd_file(
            &client,
            &format!("deploy/crds/{kind}.storage.corbel.dev.yaml"),
        )
        .await;
    }
    corbel_e2e::probes::create_crd(&client).await;
    let create = |api: Api<DynamicObject>, object: serde_json::Value| async move {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
        .unwrap()
    };
    create(
        namespaced("", "Secret", "secrets"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "garage-keys"},
               "stringData": {"accessKeyId": garage.access_key_id, "secretAccessKey": garage.secret_access_key}}),
    )
    .await;
    let stores = namespaced("storage.corbel.dev", "ObjectStore", "objectstores");
    create(
        stores.clone(),
        json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "ObjectStore", "metadata": {"name": "garage"},
               "spec": {"endpoint": garage.endpoint(), "region": garage.region,
                        "credentialsSecretRef": {"name": "garage-keys"}}}),
    )
    .await;
    let started = Instant::now();
    while !stores
        .get("garage")
        .await
        .ok()
        .and_then(|s| condition(&s, "Ready").cloned())
        .is_some_and(|c| c["status"] == "True")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the ObjectStore never got Ready\n{}",
            embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_idle = embedded.server.rss_kib();
    phase("the ObjectStore is Ready");

    // 1. Many Buckets at once.
    let bucket_api = namespaced("storage.corbel.dev", "Bucket", "buckets");
    let names: Vec<String> = (0..buckets).map(|i| format!("bench-{i:04}")).collect();
    let started = Instant::now();
    let creator = bucket_api.clone();
    let creating = futures::stream::iter(names.clone())
        .map(move |name| {
            let api = creator.clone();
            async move {
                let bucket = json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "Bucket",
                                    "metadata": {"name": name},
                                    "spec": {"objectStoreRef": {"name": "garage"},
                                             "lifecycle": [{"expirationDays": 30}]}});
                api.create(
                    &PostParams::default(),
                    &serde_json::from_value(bucket).unwrap(),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>();
    let mut rss_peak = rss_idle;
    let mut creating = tokio::spawn(creating);
    let mut created_after = None;
    let all_ready = loop {
        tokio::select! {
            result = &mut creating, if created_after.is_none() => {
                result.unwrap();
                created_after = Some(started.elapsed());
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                rss_peak = rss_peak.max(embedded.server.rss_kib());
                let list = bucket_api.list(&ListParams::default()).await.unwrap();
                let ready = list
                    .items
                    .iter()
                    .filter(|b| condition(b, "Ready").is_some_and(|c| c["status"] == "True"))
                    .count();
                if ready == buckets {
                    break started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(900),
                    "only {ready} of {buckets} Ready after 15 minutes\n{}",
                    embedded.server.log()
                );
            }
        }
    };
    let created_after = created_after.unwrap_or(all_ready);
    let burst = histogram(&embedded, "storage", "Bucket").await;
    let rss_after = embedded.server.rss_kib();
    let (_, text) = embedded.server.get_text("/metrics").await;
    let failures = metric(
        &text,
        "corbel_reconciles_total{plugin=\"storage\",kind=\"Bucket\",result=\"transient\"}",
    );

    phase("every Bucket is Ready");
    // 2. Reconcile overhead, one at a time.
    let probes = namespaced("test.corbel.dev", "Probe", "probes");
    create(
        probes.clone(),
        json!({"apiVersion": "test.corbel.dev/v1", "kind": "Probe", "metadata": {"name": "noop"}, "spec": {}}),
    )
    .await;
    let started = Instant::now();
    while histogram(&embedded, "probe", "Probe").await.count < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the probe was never reconciled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let noop_names = vec!["noop".to_owned(); samples];
    let noop =
        stats(&one_at_a_time(&embedded, &probes, &noop_names, "probe", "Probe", "noop").await);
    phase("no-op reconciles measured");
    let s3 = Client::new(
        &garage.endpoint(),
        &garage.region,
        Credentials {
            access_key_id: garage.access_key_id.clone(),
            secret_access_key: garage.secret_access_key.clone(),
        },
    )
    .unwrap();
    // Paired, bucket by bucket: the same three requests natively, then a reconcile doing them
    // in the sandbox; drift in the store weighs on both alike.
    let (mut wasm, mut native, mut overhead) = (Vec::new(), Vec::new(), Vec::new());
    for name in &names[..samples] {
        let alone = native_steady(s3.clone(), name.clone()).await;
        let sandboxed = one_at_a_time(
            &embedded,
            &bucket_api,
            std::slice::from_ref(name),
            "storage",
            "Bucket",
            "steady",
        )
        .await[0];
        native.push(alone);
        wasm.push(sandboxed);
        overhead.push(sandboxed - alone);
    }
    let (steady, steady_native, overhead) = (stats(&wasm), stats(&native), stats(&overhead));
    let create_native = tokio::task::spawn_blocking(move || {
        let creates: Vec<Duration> = (0..samples)
            .map(|i| {
                let started = Instant::now();
                s3.create_bucket(
                    &UreqTransport::per_request(),
                    SystemTime::now(),
                    &format!("native-{i:04}"),
                )
                .unwrap();
                started.elapsed()
            })
            .collect();
        mean_ms(&creates)
    })
    .await
    .unwrap();
    phase("steady and native reconciles measured");

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("\nstorage figures: cargo bench -p corbel-e2e --bench buckets");
    println!(
        "  (CORBEL_BENCH_BUCKETS={buckets} CORBEL_BENCH_CONCURRENCY={concurrency} CORBEL_BENCH_SAMPLES={samples})\n"
    );
    println!(
        "1. {buckets} Buckets created at once (16 creates in flight, admitted inline), controller concurrency {concurrency}"
    );
    println!(
        "   all created after          {:>8.2} s",
        created_after.as_secs_f64()
    );
    println!(
        "   all Ready after            {:>8.2} s  ({:.0} Buckets/s)",
        all_ready.as_secs_f64(),
        buckets as f64 / all_ready.as_secs_f64()
    );
    println!(
        "   reconciles                 {:>8.0}    transient failures {failures:.0}",
        burst.count
    );
    println!(
        "   mean reconcile in the burst{:>8.2} ms (create + lifecycle + status write, queued behind each other)",
        burst.sum / burst.count * 1000.0
    );
    println!(
        "   host RSS idle / peak / after {:.1} / {:.1} / {:.1} MiB",
        mib(rss_idle),
        mib(rss_peak),
        mib(rss_after)
    );
    println!(
        "2. one reconcile at a time, {samples} samples (corbel_reconcile_duration_seconds), mean / median"
    );
    println!(
        "   no-op reconcile (sandbox + call, probe-controller)     {:>7.3} / {:.3} ms",
        noop.0, noop.1
    );
    println!(
        "   steady Bucket reconcile (sandbox + 2 API reads + 3 S3) {:>7.3} / {:.3} ms",
        steady.0, steady.1
    );
    println!(
        "   the same 3 S3 requests natively (ureq), paired         {:>7.3} / {:.3} ms",
        steady_native.0, steady_native.1
    );
    println!(
        "   => sandbox, capabilities and host around the backend   {:>7.3} / {:.3} ms per reconcile",
        overhead.0, overhead.1
    );
    println!("   native CreateBucket round trip, mean                   {create_native:>7.3} ms");
}
