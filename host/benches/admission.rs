//! The admission benchmark: the `require-labels` component against a native Rust implementation of
//! the same check, in-process and behind the real HTTPS server, in one process.
//!
//! ```text
//! cargo xtask plugins                        # builds target/wasm32-wasip2/plugin/require_labels.wasm
//! cargo bench -p corbel --bench admission    # (or `cargo xtask bench`, which does both)
//! ```
//!
//! What it prints (see docs/benchmarks.md for how to read it):
//!
//! 1. sandbox instantiation per request (`Plugin::instantiate_only` in a loop): mean, p50, p99;
//! 2. in-process evaluation (`admission::evaluate`, validate, one task): evaluations/s, p50, p99;
//!    then the same with one task per server thread at once, to show how the cost scales across cores;
//! 3. HTTPS keep-alive round trips against the real server (`api::serve` on 127.0.0.1): (a) open
//!    loop at a fixed rate, latency measured from the scheduled send time; (b) closed loop at a
//!    fixed number of connections: the maximum throughput;
//! 4. the same 2 and 3 for a native Rust policy behind the same server (`NativeRequireLabels`, an
//!    `admission::Policy` like a loaded plugin, so it takes the same evaluation path);
//! 5. the Wasm/native ratios and a pass/fail line per target.
//!
//! Wasm and native phases run interleaved A-B-B-A (each phase split in two halves), so that drift
//! of a noisy machine weighs on both alike. The whole run takes about 35 s with the defaults.
//!
//! Environment overrides (all optional):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `CORBEL_BENCH_SECONDS` | 5 | seconds per policy for each HTTPS phase (open loop, closed loop) |
//! | `CORBEL_BENCH_EVAL_SECONDS` | 2 | seconds per policy for each in-process evaluation phase |
//! | `CORBEL_BENCH_INSTANTIATIONS` | 20000 | measured instantiations (after a tenth as many for warm-up) |
//! | `CORBEL_BENCH_RATE` | 2000 | open-loop request rate, requests/s |
//! | `CORBEL_BENCH_CONNECTIONS` | 8 | keep-alive connections of the open-loop phase |
//! | `CORBEL_BENCH_CONCURRENCY` | 16 | keep-alive connections of the closed-loop phase |
//! | `CORBEL_BENCH_SERVER_THREADS` | 2 | worker threads of the server's tokio runtime |
//! | `CORBEL_BENCH_CLIENT_THREADS` | 2 | worker threads of the load generator's tokio runtime |
//! | `CORBEL_BENCH_PLUGIN` | `target/wasm32-wasip2/plugin/require_labels.wasm` | the component |
//! | `CORBEL_BENCH_ONLY` | unset | `wasm` or `native`: only that policy's closed loop, for profilers |
//!
//! The load generator is reqwest over HTTP/1.1 keep-alive, one `Client` (so one connection) per
//! connection slot: the host's own `hyper` dependency does not enable the `client` feature.

/// The same allocator as the `corbel` binary, so the figures are those of what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corbel::admission::bindings::{BindingSet, Entry};
use corbel::admission::{self, Binding, Mode, Policy, PolicyFuture, Request, Verdict};
use corbel::runtime::bindings::latest as wit;
use corbel::runtime::{Call, Limits, LogContext, Runtime, RuntimeConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

const WASM: &str = "require-labels";
const NATIVE: &str = "require-labels-native";
const REQUEST_FIXTURE: &str = "tests/data/reviews/configmap-labelled.json";
const DENIED_FIXTURE: &str = "tests/data/reviews/configmap-missing-team.json";

// Targets.
const TARGET_INSTANTIATION_US: f64 = 10.0;
const TARGET_P99_US: f64 = 1000.0;
const TARGET_THROUGHPUT_RATIO: f64 = 0.7;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not valid; using the default");
            default
        }),
        Err(_) => default,
    }
}

struct Options {
    http_secs: f64,
    eval_secs: f64,
    instantiations: usize,
    rate: f64,
    connections: usize,
    concurrency: usize,
    server_threads: usize,
    client_threads: usize,
    plugin: PathBuf,
}

impl Options {
    fn from_env(root: &Path) -> Self {
        let plugin = std::env::var_os("CORBEL_BENCH_PLUGIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/wasm32-wasip2/plugin/require_labels.wasm"));
        let connections = env_or("CORBEL_BENCH_CONNECTIONS", 8usize).max(1);
        Self {
            http_secs: env_or("CORBEL_BENCH_SECONDS", 5.0f64).max(0.2),
            eval_secs: env_or("CORBEL_BENCH_EVAL_SECONDS", 2.0f64).max(0.1),
            instantiations: env_or("CORBEL_BENCH_INSTANTIATIONS", 20_000usize).max(100),
            rate: env_or("CORBEL_BENCH_RATE", 2000.0f64).max(1.0),
            connections,
            concurrency: env_or("CORBEL_BENCH_CONCURRENCY", 16usize).max(1),
            server_threads: env_or("CORBEL_BENCH_SERVER_THREADS", 2usize).max(1),
            client_threads: env_or("CORBEL_BENCH_CLIENT_THREADS", 2usize).max(1),
            plugin,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The native baseline: the same check as plugins/require-labels, in Rust inside the host.

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    labels: Vec<String>,
}

/// `require-labels` without the sandbox. Like the plugin (through the SDK), it parses the settings
/// on every call and the object's JSON text, then reads `metadata.labels`.
#[derive(Debug)]
struct NativeRequireLabels;

impl Policy for NativeRequireLabels {
    fn name(&self) -> &str {
        NATIVE
    }

    fn wit_version(&self) -> &str {
        "native"
    }

    fn validate_settings<'a>(
        &'a self,
        settings: &'a String,
        _limits: Limits,
        _log: &'a Arc<LogContext>,
    ) -> PolicyFuture<'a, Result<(), String>> {
        let valid = serde_json::from_str::<Settings>(settings)
            .map(drop)
            .map_err(|e| format!("invalid settings: {e}"));
        Box::pin(std::future::ready(Ok(valid)))
    }

    fn admit<'a>(
        &'a self,
        _call: Call,
        request: &'a wit::AdmissionRequest,
        settings: &'a String,
        _limits: Limits,
        _log: &'a Arc<LogContext>,
        _trace: Option<&'a Arc<corbel::admission::trace::Trace>>,
    ) -> PolicyFuture<'a, Result<wit::AdmissionResponse, String>> {
        Box::pin(std::future::ready(Ok(require_labels(request, settings))))
    }
}

/// The check itself, as the plugin does it.
fn require_labels(
    request: &wit::AdmissionRequest,
    settings: &str,
) -> Result<wit::AdmissionResponse, String> {
    let settings: Settings =
        serde_json::from_str(settings).map_err(|e| format!("invalid settings: {e}"))?;
    let allow = wit::AdmissionResponse {
        allowed: true,
        message: None,
        code: None,
        warnings: Vec::new(),
        mutated_object: None,
    };
    if !matches!(
        request.operation,
        wit::Operation::Create | wit::Operation::Update
    ) {
        return Ok(allow);
    }
    // The subject: the new object, or the old one when there is none (as the SDK does).
    let subject: Option<serde_json::Value> = request
        .object
        .as_deref()
        .or(request.old_object.as_deref())
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| format!("the request's object is not JSON: {e}"))?;
    let labels = subject
        .as_ref()
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.as_object());
    let missing: Vec<&str> = settings
        .labels
        .iter()
        .filter(|l| {
            !labels.is_some_and(|present| present.get(l.as_str()).is_some_and(|v| v.is_string()))
        })
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(allow);
    }
    Ok(wit::AdmissionResponse {
        allowed: false,
        message: Some(format!("missing required labels: {}", missing.join(", "))),
        ..allow
    })
}

// ---------------------------------------------------------------------------------------------
// Samples and statistics.

#[derive(Default)]
struct Samples {
    /// Latencies, nanoseconds.
    latencies: Vec<u64>,
    /// Wall time of the measurement (summed over the parts merged into this one).
    elapsed: Duration,
    errors: u64,
    /// Open loop: requests sent after their scheduled time because their connection was busy.
    queued: u64,
    first_error: Option<String>,
    /// CPU time the server's threads spent during the measurement (closed loop only).
    server_cpu: Duration,
    /// CPU time the load generator's threads spent during the measurement (closed loop only).
    client_cpu: Duration,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        self.elapsed += other.elapsed;
        self.errors += other.errors;
        self.queued += other.queued;
        self.server_cpu += other.server_cpu;
        self.client_cpu += other.client_cpu;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn count(&self) -> u64 {
        self.latencies.len() as u64 + self.errors
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn stats(&self) -> Stats {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        Stats::of(&sorted)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    /// Microseconds, nearest-rank percentiles, from sorted nanoseconds.
    fn of(sorted: &[u64]) -> Self {
        if sorted.is_empty() {
            return Self::default();
        }
        let rank = |p: f64| {
            sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1] as f64
                / 1e3
        };
        Self {
            mean: sorted.iter().map(|&n| n as f64).sum::<f64>() / sorted.len() as f64 / 1e3,
            p50: rank(0.50),
            p99: rank(0.99),
            max: *sorted.last().unwrap() as f64 / 1e3,
        }
    }
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Runs `phase` for A, B, B, A (halves of `each` per call), merging each side's samples.
async fn abba<F, Fut>(each: Duration, mut phase: F) -> (Samples, Samples)
where
    F: FnMut(bool, Duration) -> Fut,
    Fut: std::future::Future<Output = Samples>,
{
    let half = each / 2;
    let (mut wasm, mut native) = (Samples::default(), Samples::default());
    for is_wasm in [true, false, false, true] {
        let samples = phase(is_wasm, half).await;
        if is_wasm {
            wasm.merge(samples)
        } else {
            native.merge(samples)
        }
    }
    (wasm, native)
}

// ---------------------------------------------------------------------------------------------
// In-process phases.

async fn evaluate_for(binding: &Binding, request: &Request, duration: Duration) -> Samples {
    let mut samples = Samples {
        latencies: Vec::with_capacity(1 << 16),
        ..Default::default()
    };
    let started = Instant::now();
    while started.elapsed() < duration {
        let t = Instant::now();
        let verdict = admission::evaluate(binding, request).await;
        let latency = t.elapsed();
        match verdict {
            Ok(Verdict { allowed: true, .. }) => samples.latencies.push(ns(latency)),
            other => {
                samples.errors += 1;
                samples
                    .first_error
                    .get_or_insert_with(|| format!("{other:?}"));
            }
        }
    }
    samples.elapsed = started.elapsed();
    samples
}

/// `evaluate_for` on `tasks` tasks at once (spawned on a multi-thread runtime: one per worker).
async fn evaluate_parallel(
    binding: Arc<Binding>,
    request: Arc<Request>,
    tasks: usize,
    duration: Duration,
) -> Samples {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (binding, request) = (binding.clone(), request.clone());
            tokio::spawn(async move { evaluate_for(&binding, &request, duration).await })
        })
        .collect();
    let mut all = Samples::default();
    let mut longest = Duration::ZERO;
    for handle in handles {
        let samples = handle.await.expect("an evaluation task does not panic");
        longest = longest.max(samples.elapsed);
        all.merge(samples);
    }
    all.elapsed = longest;
    all
}

// ---------------------------------------------------------------------------------------------
// The HTTPS load generator.

#[derive(Clone)]
struct Target {
    url: reqwest::Url,
    /// POST this body (application/json); GET when `None`.
    body: Option<Bytes>,
    /// A byte string the answer must contain.
    expect: &'static [u8],
}

async fn send(client: &reqwest::Client, target: &Target) -> Result<(), String> {
    let request = match &target.body {
        Some(body) => client
            .post(target.url.clone())
            .header("content-type", "application/json")
            .body(body.clone()),
        None => client.get(target.url.clone()),
    };
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{e:?}"))?;
    if status != reqwest::StatusCode::OK
        || !body
            .windows(target.expect.len())
            .any(|w| w == target.expect)
    {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

fn record(samples: &mut Samples, result: Result<(), String>, latency: Duration) {
    match result {
        Ok(()) => samples.latencies.push(ns(latency)),
        Err(e) => {
            samples.errors += 1;
            samples.first_error.get_or_insert(e);
        }
    }
}

/// Open loop: request `i` is due at `start + i / rate` and goes out on connection `i % n`.
/// Latency counts from the scheduled time when the connection was still busy with an earlier
/// request (the wait is the server's doing: no coordinated omission); when the connection was idle
/// the task sleeps until the due time and counts from when it actually sends, so the timer's
/// millisecond granularity is not charged to the server.
async fn open_loop(
    clients: &[reqwest::Client],
    target: &Target,
    rate: f64,
    duration: Duration,
) -> Samples {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let n = clients.len() as u64;
    let start = Instant::now() + Duration::from_millis(2);
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(k, client)| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let mut samples = Samples {
                    latencies: Vec::with_capacity((total / n + 1) as usize),
                    ..Default::default()
                };
                let mut last_done = start;
                let mut i = k as u64;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    let from = if last_done > due {
                        samples.queued += 1;
                        due
                    } else {
                        tokio::time::sleep_until(due.into()).await;
                        Instant::now()
                    };
                    let result = send(&client, &target).await;
                    last_done = Instant::now();
                    record(&mut samples, result, last_done - from);
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

/// CPU time (user + system) of this process's threads named `name`, from /proc (10 ms ticks).
fn threads_cpu(name: &str) -> Duration {
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        ticks += fields
            .get(11)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        ticks += fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_millis(ticks * 10)
}

/// Closed loop: every connection sends its next request as soon as the previous one is answered.
async fn closed_loop(clients: &[reqwest::Client], target: &Target, duration: Duration) -> Samples {
    let cpu_before = (threads_cpu("bench-server"), threads_cpu("bench-client"));
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, target) = (client.clone(), target.clone());
            tokio::spawn(async move {
                let mut samples = Samples {
                    latencies: Vec::with_capacity(1 << 15),
                    ..Default::default()
                };
                let mut now = Instant::now();
                while now < end {
                    let result = send(&client, &target).await;
                    let done = Instant::now();
                    record(&mut samples, result, done - now);
                    now = done;
                }
                (samples, now)
            })
        })
        .collect();
    let mut all = Samples::default();
    let mut last = start;
    for task in tasks {
        let (samples, done) = task.await.expect("a load task does not panic");
        last = last.max(done);
        all.merge(samples);
    }
    all.elapsed = last - start;
    all.server_cpu = threads_cpu("bench-server").saturating_sub(cpu_before.0);
    all.client_cpu = threads_cpu("bench-client").saturating_sub(cpu_before.1);
    all
}

fn client_tls(ca: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// One client per connection slot: used by one task at a time, so it keeps exactly one connection.
fn make_client(tls: &rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .http1_only()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(600))
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// Setup and report.

fn fixture(root: &Path, path: &str) -> anyhow::Result<(Bytes, Request)> {
    let bytes = std::fs::read(root.join(path))
        .map_err(|e| anyhow::anyhow!("failed to read {path}: {e}"))?;
    let request: Request =
        admission::parse_review(&bytes).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    Ok((Bytes::from(bytes), request))
}

fn first_line(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn locked_version(root: &Path, package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            return lines
                .next()?
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_owned);
        }
    }
    None
}

fn rustc_version() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn row(label: &str, samples: &Samples) {
    let s = samples.stats();
    println!(
        "   {label:<12} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>7}",
        samples.rate(),
        s.mean,
        s.p50,
        s.p99,
        s.max,
        samples.latencies.len(),
        samples.errors
    );
    if let Some(e) = &samples.first_error {
        println!(
            "   {:<12} first error: {}",
            "",
            e.chars().take(300).collect::<String>()
        );
    }
}

fn header(rate_label: &str) {
    println!(
        "   {:<12} {rate_label:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7}",
        "", "mean µs", "p50 µs", "p99 µs", "max µs", "ok", "errors"
    );
}

fn ratio_row(wasm: &Samples, native: &Samples) {
    let (w, n) = (wasm.stats(), native.stats());
    println!(
        "   {:<12} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        "wasm/native",
        wasm.rate() / native.rate(),
        w.mean / n.mean,
        w.p50 / n.p50,
        w.p99 / n.p99,
        w.max / n.max
    );
}

fn main() {
    if let Err(e) = run() {
        eprintln!("admission bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let wall = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    let opts = Options::from_env(&root);
    if !opts.plugin.exists() {
        eprintln!(
            "the plugin component {} is missing: build it first with `cargo xtask plugins` \
             (or `cargo build --target wasm32-wasip2 --profile plugin -p require-labels`)",
            opts.plugin.display()
        );
        std::process::exit(2);
    }

    println!("Corbel admission benchmark: require-labels as a Wasm component vs native Rust");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = first_line("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    println!(
        "machine:   {cores} cores available ({cpu}); load average {} at start",
        loadavg()
    );
    println!(
        "toolchain: {}; wasmtime {}; profile bench (release, debug line tables)",
        rustc_version().unwrap_or_else(|| "rustc version unknown".into()),
        locked_version(&root, "wasmtime").unwrap_or_else(|| "?".into())
    );

    // Bindings: the component with its settings, and the native policy with the same settings.
    let settings = serde_json::json!({"labels": ["team"]});
    let bench_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let runtime = Runtime::new(&RuntimeConfig::default())?;
    let compile = Instant::now();
    let plugin = Arc::new(runtime.load_file(&opts.plugin)?);
    let compile = compile.elapsed();
    let wasm = Arc::new(bench_rt.block_on(Binding::new(
        plugin.clone(),
        admission::Spec::new(WASM, &settings, Mode::Validate),
    ))?);
    let native = Arc::new(bench_rt.block_on(Binding::new(
        Arc::new(NativeRequireLabels),
        admission::Spec::new(NATIVE, &settings, Mode::Validate),
    ))?);
    println!(
        "plugin:    {} ({} KiB, corbel:plugin@{}), compiled in {:.2} s; settings {settings}",
        opts.plugin
            .strip_prefix(&root)
            .unwrap_or(&opts.plugin)
            .display(),
        std::fs::metadata(&opts.plugin)?.len() >> 10,
        plugin.wit_version(),
        compile.as_secs_f64()
    );
    println!(
        "load:      server {} tokio workers; client reqwest HTTP/1.1 keep-alive, {} tokio workers; {} s per policy per HTTPS phase, {} s in-process",
        opts.server_threads, opts.client_threads, opts.http_secs, opts.eval_secs
    );

    // The verdicts, once: the measured request is admitted, and both implementations agree.
    let (body, request) = fixture(&root, REQUEST_FIXTURE)?;
    let (_, denied) = fixture(&root, DENIED_FIXTURE)?;
    bench_rt.block_on(async {
        let (w, n) = (
            admission::evaluate(&wasm, &request).await?,
            admission::evaluate(&native, &request).await?,
        );
        anyhow::ensure!(
            w.allowed,
            "the Wasm policy does not admit {REQUEST_FIXTURE}: {w:?}"
        );
        anyhow::ensure!(
            w == n,
            "Wasm and native disagree on {REQUEST_FIXTURE}: {w:?} vs {n:?}"
        );
        let (w, n) = (
            admission::evaluate(&wasm, &denied).await?,
            admission::evaluate(&native, &denied).await?,
        );
        anyhow::ensure!(
            !w.allowed && w.message.as_deref() == Some("missing required labels: team"),
            "the Wasm policy does not deny {DENIED_FIXTURE} as expected: {w:?}"
        );
        anyhow::ensure!(
            w == n,
            "Wasm and native disagree on {DENIED_FIXTURE}: {w:?} vs {n:?}"
        );
        Ok(())
    })?;
    println!(
        "request:   {REQUEST_FIXTURE} ({} bytes); Wasm and native verdicts identical (allowed; and for {DENIED_FIXTURE}: denied, \"missing required labels: team\")",
        body.len()
    );

    // 1. Instantiation.
    let log = Arc::new(LogContext {
        binding: WASM.into(),
        plugin: plugin.name().into(),
    });
    let inst = bench_rt.block_on(async {
        let warm = opts.instantiations / 10;
        for _ in 0..warm {
            plugin.instantiate_only(Limits::default(), &log).await?;
        }
        let mut samples = Samples {
            latencies: Vec::with_capacity(opts.instantiations),
            ..Default::default()
        };
        let started = Instant::now();
        for _ in 0..opts.instantiations {
            let t = Instant::now();
            plugin.instantiate_only(Limits::default(), &log).await?;
            samples.latencies.push(ns(t.elapsed()));
        }
        samples.elapsed = started.elapsed();
        anyhow::Ok(samples)
    })?;
    let inst_stats = inst.stats();
    println!();
    println!(
        "1. sandbox instantiation per request (Plugin::instantiate_only: store + WASI context + instance; {} after {} warm-up)",
        opts.instantiations,
        opts.instantiations / 10
    );
    println!(
        "   mean {:.2} µs   p50 {:.2} µs   p99 {:.2} µs   max {:.1} µs   ({:.0} instantiations/s on one thread)",
        inst_stats.mean,
        inst_stats.p50,
        inst_stats.p99,
        inst_stats.max,
        inst.rate()
    );

    // 2. In-process evaluation.
    let eval_each = Duration::from_secs_f64(opts.eval_secs);
    let (eval_wasm, eval_native) = bench_rt.block_on(async {
        evaluate_for(&wasm, &request, Duration::from_millis(300)).await;
        evaluate_for(&native, &request, Duration::from_millis(300)).await;
        abba(eval_each, |is_wasm, d| {
            let binding = if is_wasm {
                wasm.clone()
            } else {
                native.clone()
            };
            let request = &request;
            async move { evaluate_for(&binding, request, d).await }
        })
        .await
    });
    println!();
    println!(
        "2. in-process evaluation (admission::evaluate, validate, one task on one thread, {} s each, A-B-B-A)",
        opts.eval_secs
    );
    header("evals/s");
    row("wasm", &eval_wasm);
    row("native", &eval_native);
    ratio_row(&eval_wasm, &eval_native);

    // The same on every server thread at once: does the per-request cost hold across cores?
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.server_threads)
        .thread_name("bench-server")
        .enable_all()
        .build()?;
    let shared_request = Arc::new(request.clone());
    let threads = opts.server_threads;
    let (par_wasm, par_native) = server_rt.block_on(abba(eval_each, |is_wasm, d| {
        let binding = if is_wasm {
            wasm.clone()
        } else {
            native.clone()
        };
        evaluate_parallel(binding, shared_request.clone(), threads, d)
    }));
    println!(
        "   the same on {threads} threads at once (server runtime, one task per worker; evals/s summed):"
    );
    row(&format!("wasm x{threads}"), &par_wasm);
    row(&format!("native x{threads}"), &par_native);
    ratio_row(&par_wasm, &par_native);
    println!(
        "   scaling from 1 to {threads} threads: wasm {:.2}x, native {:.2}x",
        par_wasm.rate() / eval_wasm.rate(),
        par_native.rate() / eval_native.rate()
    );

    // 3. The real server, on its own runtime.
    let dir = std::env::temp_dir().join(format!("corbel-bench-{}", std::process::id()));
    let certs =
        corbel::tls::development_certificates(&dir, &["127.0.0.1".into(), "localhost".into()])?;
    let (server_tls, _current) = corbel::tls::server_config(&certs.files)?;
    let mut set = BindingSet::default();
    set.entries.insert(WASM.into(), Entry::Loaded(wasm.clone()));
    set.entries
        .insert(NATIVE.into(), Entry::Loaded(native.clone()));
    let router = corbel::api::router(corbel::api::AppState::with_bindings(set), 3 << 20);
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    server_rt.spawn(async move {
        if let Err(e) = corbel::api::serve(
            listener,
            server_tls,
            router,
            std::future::pending(),
            Duration::from_secs(1),
            Default::default(),
        )
        .await
        {
            eprintln!("the server stopped: {e:#}");
        }
    });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let tls = client_tls(&certs.ca)?;
    let clients: Vec<reqwest::Client> = (0..opts.connections.max(opts.concurrency))
        .map(|_| make_client(&tls))
        .collect::<anyhow::Result<_>>()?;
    let target = |binding: &str| -> anyhow::Result<Target> {
        Ok(Target {
            url: format!("https://{addr}/validate/{binding}").parse()?,
            body: Some(body.clone()),
            expect: br#""allowed":true"#,
        })
    };
    let (wasm_target, native_target) = (target(WASM)?, target(NATIVE)?);
    let health = Target {
        url: format!("https://{addr}/healthz").parse()?,
        body: None,
        expect: b"ok",
    };

    // Once over HTTPS: the answer is an admitted AdmissionReview for our request, over HTTP/1.1.
    client_rt.block_on(async {
        for t in [&wasm_target, &native_target] {
            let response = clients[0]
                .post(t.url.clone())
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await?;
            anyhow::ensure!(
                response.version() == reqwest::Version::HTTP_11,
                "expected HTTP/1.1, got {:?}",
                response.version()
            );
            anyhow::ensure!(
                response.status() == reqwest::StatusCode::OK,
                "{} answered {}",
                t.url,
                response.status()
            );
            let review: serde_json::Value = response.json().await?;
            anyhow::ensure!(
                review.pointer("/response/allowed") == Some(&serde_json::Value::Bool(true))
                    && review.pointer("/response/uid").and_then(|u| u.as_str())
                        == Some(request.uid.as_str()),
                "{} answered {review}",
                t.url
            );
        }
        // Warm-up: open every connection and run both bindings for a moment.
        closed_loop(&clients, &wasm_target, Duration::from_millis(500)).await;
        closed_loop(&clients, &native_target, Duration::from_millis(500)).await;
        Ok(())
    })?;

    if let Ok(only) = std::env::var("CORBEL_BENCH_ONLY") {
        // For profilers: only the closed loop of one policy, for CORBEL_BENCH_SECONDS.
        let target = match only.as_str() {
            "wasm" => &wasm_target,
            "native" => &native_target,
            other => anyhow::bail!("CORBEL_BENCH_ONLY={other:?}: expected wasm or native"),
        };
        let samples = client_rt.block_on(closed_loop(
            &clients[..opts.concurrency],
            target,
            Duration::from_secs_f64(opts.http_secs),
        ));
        header("req/s");
        row(&only, &samples);
        return Ok(());
    }
    let each = Duration::from_secs_f64(opts.http_secs);
    let open_clients = &clients[..opts.connections];
    let closed_clients = &clients[..opts.concurrency];
    let rate = opts.rate;
    let (open_wasm, open_native) = client_rt.block_on(abba(each, |is_wasm, d| {
        let t = if is_wasm {
            wasm_target.clone()
        } else {
            native_target.clone()
        };
        async move { open_loop(open_clients, &t, rate, d).await }
    }));
    println!();
    println!(
        "3a. HTTPS round trip, open loop: {} req/s scheduled over {} keep-alive connections, {} s each, A-B-B-A",
        opts.rate, opts.connections, opts.http_secs
    );
    println!(
        "    (latency from the scheduled send time when the connection was busy, else from the send)"
    );
    header("achieved/s");
    row("wasm", &open_wasm);
    row("native", &open_native);
    ratio_row(&open_wasm, &open_native);
    println!(
        "   queued behind a busy connection: wasm {:.2}%, native {:.2}%",
        100.0 * open_wasm.queued as f64 / open_wasm.count().max(1) as f64,
        100.0 * open_native.queued as f64 / open_native.count().max(1) as f64
    );

    let (closed_wasm, closed_native) = client_rt.block_on(abba(each, |is_wasm, d| {
        let t = if is_wasm {
            wasm_target.clone()
        } else {
            native_target.clone()
        };
        async move { closed_loop(closed_clients, &t, d).await }
    }));
    let floor = client_rt.block_on(closed_loop(closed_clients, &health, each / 2));
    println!();
    println!(
        "3b. HTTPS round trip, closed loop: {} keep-alive connections, {} s each, A-B-B-A",
        opts.concurrency, opts.http_secs
    );
    header("req/s");
    row("wasm", &closed_wasm);
    row("native", &closed_native);
    ratio_row(&closed_wasm, &closed_native);
    println!(
        "   transport floor (GET /healthz, same connections, {:.1} s):",
        (each / 2).as_secs_f64()
    );
    row("healthz", &floor);
    let per_request =
        |cpu: Duration, s: &Samples| cpu.as_secs_f64() * 1e6 / s.latencies.len().max(1) as f64;
    println!(
        "   server CPU per request: wasm {:.1} µs, native {:.1} µs, healthz {:.1} µs (from /proc, 10 ms ticks)",
        per_request(closed_wasm.server_cpu, &closed_wasm),
        per_request(closed_native.server_cpu, &closed_native),
        per_request(floor.server_cpu, &floor)
    );
    println!(
        "   client CPU per request: wasm {:.1} µs, native {:.1} µs, healthz {:.1} µs (the load generator, same process)",
        per_request(closed_wasm.client_cpu, &closed_wasm),
        per_request(closed_native.client_cpu, &closed_native),
        per_request(floor.client_cpu, &floor)
    );

    // 5. Summary.
    let (ow, on) = (open_wasm.stats(), open_native.stats());
    let (cw, cn) = (closed_wasm.stats(), closed_native.stats());
    let throughput_ratio = closed_wasm.rate() / closed_native.rate();
    println!();
    println!("5. Wasm/native ratios");
    println!(
        "   closed-loop throughput     {:.2}x  ({:.0} vs {:.0} req/s)",
        throughput_ratio,
        closed_wasm.rate(),
        closed_native.rate()
    );
    println!(
        "   closed-loop p99            {:.2}x  ({:.0} vs {:.0} µs)",
        cw.p99 / cn.p99,
        cw.p99,
        cn.p99
    );
    println!(
        "   p99 at {:.0} req/s          {:.2}x  ({:.0} vs {:.0} µs)",
        opts.rate,
        ow.p99 / on.p99,
        ow.p99,
        on.p99
    );
    println!(
        "   in-process evaluations/s   {:.2}x  ({:.0} vs {:.0}/s; Wasm costs {:.1} µs more per request at p50)",
        eval_wasm.rate() / eval_native.rate(),
        eval_wasm.rate(),
        eval_native.rate(),
        eval_wasm.stats().p50 - eval_native.stats().p50
    );
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    let rate_ok = open_wasm.rate() >= 0.95 * opts.rate && open_wasm.errors == 0;
    println!("   targets:");
    println!(
        "   [{}] instantiation mean {:.2} µs < {TARGET_INSTANTIATION_US} µs (p50 {:.2} µs)",
        verdict(inst_stats.mean < TARGET_INSTANTIATION_US),
        inst_stats.mean,
        inst_stats.p50
    );
    println!(
        "   [{}] round-trip p99 {:.0} µs < {TARGET_P99_US} µs at {:.0} req/s (achieved {:.0} req/s{})",
        verdict(ow.p99 < TARGET_P99_US && rate_ok),
        ow.p99,
        opts.rate,
        open_wasm.rate(),
        if rate_ok {
            ""
        } else {
            ": below the target rate or with errors, so not met"
        }
    );
    println!(
        "   [{}] throughput {:.2}x native >= {TARGET_THROUGHPUT_RATIO}x",
        verdict(throughput_ratio >= TARGET_THROUGHPUT_RATIO && closed_wasm.errors == 0),
        throughput_ratio
    );
    println!();
    println!(
        "load average {} at the end; whole run {:.0} s",
        loadavg(),
        wall.elapsed().as_secs_f64()
    );

    server_rt.shutdown_background();
    client_rt.shutdown_background();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
