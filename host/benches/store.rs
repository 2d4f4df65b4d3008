//! The embedded store benchmark: how fast the embedded mode takes writes, how soon a watcher sees
//! them, what 100,000 objects cost in memory and how long a restart on them takes.
//!
//! ```text
//! cargo bench -p corbel --bench store    # builds target/release/corbel too; ~1 min of measurement
//! ```
//!
//! What it measures, in one run (see docs/benchmarks.md, "Embedded store and API"):
//!
//! 1. **Store, in process** (`corbel::store::Store` on a data dir on disk, 2-worker tokio runtime):
//!    creates/s of small ConfigMaps into an empty store up to `CORBEL_BENCH_OBJECTS`, one at a time
//!    (every write its own commit and fsync) and with `CORBEL_BENCH_STORE_CONCURRENCY` writers at
//!    once (group commit), with p50/p99 latency and, per create, CPU time and bytes written (this
//!    process, /proc/self/stat and /proc/self/io) and flush requests of the disk (device-wide, from
//!    /sys/dev/block/…/stat: one per commit, so they count commits); then
//!    watch latency (from just before `create` to the event leaving `Store::watch`'s receiver) with
//!    the store holding those objects: `CORBEL_BENCH_WATCH_WRITES` sequential writes, then as many
//!    under concurrent writers.
//! 2. **The API over HTTPS**: the real binary (`corbel serve`, embedded mode, development TLS,
//!    127.0.0.1:0 with `--address-file`), the development admin token as bearer. Creates/s of
//!    `POST /api/v1/namespaces/{ns}/configmaps` at concurrency 1 and `CORBEL_BENCH_API_CONCURRENCY`
//!    (one keep-alive HTTP/1.1 connection per writer), each into its own namespace up to
//!    `CORBEL_BENCH_OBJECTS`, with the server's CPU per create; then watch latency from the send of
//!    a POST to the arrival of its event line on a `?watch=true&resourceVersion=N` stream.
//! 3. **Memory**: a data dir prefilled *in process* with `CORBEL_BENCH_MEMORY_OBJECTS` ConfigMaps
//!    (through `Store::create`, 256 writers; the same writes the API would make, minus HTTP), then
//!    the server started on it: VmRSS idle, after a full LIST (and VmHWM, the peak), after a LIST in
//!    pages of 500.
//! 4. **Startup** on that data dir: from spawning `corbel serve` to the address file (listening),
//!    to `/readyz` answering 200, and to the first successful GET of an object; on the store as the
//!    prefill closed it, after a SIGTERM of the server, and after 100 creates and a SIGKILL (a
//!    crash). Before each restart, a copy of the store file is opened in process to tell whether
//!    redb has to repair it (a store not closed cleanly is walked whole on open).
//!
//! Environment overrides (all optional):
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `CORBEL_BENCH_OBJECTS` | 10000 | objects each create phase writes (store: 2 phases, API: 2 phases) |
//! | `CORBEL_BENCH_STORE_CONCURRENCY` | 64 | concurrent writers of the in-process concurrent phases |
//! | `CORBEL_BENCH_API_CONCURRENCY` | 32 | concurrent writers (connections) of the API concurrent phases |
//! | `CORBEL_BENCH_WATCH_WRITES` | 2000 | timed writes of each watch-latency phase (after 20 untimed) |
//! | `CORBEL_BENCH_MEMORY_OBJECTS` | 100000 | objects in the store of the memory and startup phases |
//! | `CORBEL_BENCH_CLIENT_THREADS` | 2 | worker threads of the bench's tokio runtime (store and client) |
//! | `CORBEL_BENCH_DIR` | `target/tmp` | where the data dirs go: a real disk (on tmpfs fsync is free) |
//! | `CORBEL_BIN` | the `corbel` binary cargo built for this bench | the server to start |
//!
//! The bench process shares the machine's cores with the server in the API phases. It runs `sync`
//! before each timed phase, so that writeback of what is dirty machine-wide (the binaries the
//! build just linked) does not land in the phase's fsyncs.

/// The same allocator as the `corbel` binary, so the in-process figures are those of what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use corbel::store::{Event, ObjectKey, Store};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Writes of every watch phase that are not timed (first connection, caches).
const WATCH_WARMUP: usize = 20;
/// Writers of the in-process prefill (the writer folds at most 256 writes into one commit).
const PREFILL_CONCURRENCY: usize = 256;
/// How long a watch event may take before the bench calls it lost.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

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
    objects: usize,
    store_concurrency: usize,
    api_concurrency: usize,
    watch_writes: usize,
    memory_objects: usize,
    client_threads: usize,
    dir: PathBuf,
    bin: PathBuf,
}

impl Options {
    fn from_env() -> Self {
        Self {
            objects: env_or("CORBEL_BENCH_OBJECTS", 10_000usize).max(100),
            store_concurrency: env_or("CORBEL_BENCH_STORE_CONCURRENCY", 64usize).max(1),
            api_concurrency: env_or("CORBEL_BENCH_API_CONCURRENCY", 32usize).max(1),
            watch_writes: env_or("CORBEL_BENCH_WATCH_WRITES", 2_000usize).max(10),
            memory_objects: env_or("CORBEL_BENCH_MEMORY_OBJECTS", 100_000usize).max(100),
            client_threads: env_or("CORBEL_BENCH_CLIENT_THREADS", 2usize).max(1),
            dir: std::env::var_os("CORBEL_BENCH_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
            bin: std::env::var_os("CORBEL_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_corbel"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Figures.

/// Latencies in nanoseconds, and what went wrong.
#[derive(Default)]
struct Run {
    latencies: Vec<u64>,
    elapsed: Duration,
    errors: usize,
    first_error: Option<String>,
}

impl Run {
    fn error(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    fn merge(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// (p50, p99, max) in microseconds, nearest rank.
    fn percentiles(&self) -> (f64, f64, f64) {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let rank = |p: f64| {
            sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1] as f64
                / 1e3
        };
        (rank(0.50), rank(0.99), *sorted.last().unwrap() as f64 / 1e3)
    }

    fn latency(&self) -> String {
        let (p50, p99, max) = self.percentiles();
        format!("{} / {} / {}", us(p50), us(p99), us(max))
    }

    fn errors_note(&self) -> String {
        match &self.first_error {
            None => String::new(),
            Some(e) => format!(
                " — {} errors, first: {}",
                self.errors,
                e.chars().take(200).collect::<String>()
            ),
        }
    }
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else if v >= 1_000.0 {
        format!("{:.2} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The figures, printed as one markdown table at the end.
struct Report {
    rows: Vec<(String, String, String)>,
}

impl Report {
    fn add(&mut self, section: &str, figure: impl Into<String>, value: impl Into<String>) {
        let (figure, value) = (figure.into(), value.into());
        println!("   {figure}: {value}");
        self.rows.push((section.to_owned(), figure, value));
    }

    fn print(&self) {
        println!("\n| | figure | value |\n| --- | --- | --- |");
        let mut last = "";
        for (section, figure, value) in &self.rows {
            let shown = if section == last {
                ""
            } else {
                section.as_str()
            };
            last = section;
            println!("| {shown} | {figure} | {value} |");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The machine: CPU time, memory, disk activity.

/// (utime, stime) of a process from /proc/PID/stat (10 ms ticks), `self` for this one.
fn process_times(pid: &str) -> (Duration, Duration) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        Duration::from_millis(
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
                * 10,
        )
    };
    (tick(11), tick(12))
}

/// utime + stime of a process.
fn process_cpu(pid: &str) -> Duration {
    let (user, system) = process_times(pid);
    user + system
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The block device's /sys stat file of the filesystem holding `dir` (the whole disk, not the
/// partition: flushes are counted there).
fn disk_stat_file(dir: &Path) -> Option<PathBuf> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    let stat = disk.join("stat");
    disk_flushes(&stat).map(|_| stat)
}

/// Flush requests the device completed, all time (field 16 of its stat file).
fn disk_flushes(stat: &Path) -> Option<u64> {
    std::fs::read_to_string(stat)
        .ok()?
        .split_whitespace()
        .nth(15)?
        .parse()
        .ok()
}

/// Bytes a process caused to be written to storage (`write_bytes` of /proc/PID/io).
fn process_write_bytes(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// What a phase cost, per operation: CPU and bytes written by one process (`self` or the
/// server's pid), and flushes of the device (device-wide: other processes' fsyncs count too).
struct Meter {
    pid: String,
    disk: Option<PathBuf>,
    cpu: (Duration, Duration),
    written: Option<u64>,
    flushes: Option<u64>,
}

#[derive(Clone, Copy)]
struct PerOp {
    cpu_us: f64,
    system_us: f64,
    written_kib: Option<f64>,
    flushes: Option<f64>,
}

impl Meter {
    fn start(pid: &str, disk: &Option<PathBuf>) -> Self {
        Self {
            pid: pid.to_owned(),
            disk: disk.clone(),
            cpu: process_times(pid),
            written: process_write_bytes(pid),
            flushes: disk.as_deref().and_then(disk_flushes),
        }
    }

    fn per(&self, ops: usize) -> PerOp {
        let ops = ops.max(1) as f64;
        let written = process_write_bytes(&self.pid);
        let flushes = self.disk.as_deref().and_then(disk_flushes);
        let (user, system) = process_times(&self.pid);
        PerOp {
            cpu_us: (user + system)
                .saturating_sub(self.cpu.0 + self.cpu.1)
                .as_secs_f64()
                * 1e6
                / ops,
            system_us: system.saturating_sub(self.cpu.1).as_secs_f64() * 1e6 / ops,
            written_kib: self
                .written
                .zip(written)
                .map(|(a, b)| b.saturating_sub(a) as f64 / 1024.0 / ops),
            flushes: self
                .flushes
                .zip(flushes)
                .map(|(a, b)| b.saturating_sub(a) as f64 / ops),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn first_line(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// The filesystem type and device of the mount holding `dir`, from /proc/self/mounts.
fn filesystem(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && dir.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} on {}", f[2], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
        .unwrap_or_else(|| "unknown".into())
}

/// Writes back what is dirty machine-wide (the build's binaries, say), so that it does not land
/// in the next phase's fsyncs.
fn sync_disks() {
    let _ = Command::new("sync").status();
}

// ---------------------------------------------------------------------------------------------
// Objects.

/// A small ConfigMap: two labels, two data entries (about 360 bytes once the store added uid,
/// timestamps and resourceVersion).
fn config_map(name: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": (i % 16).to_string()}},
        "data": {"index": i.to_string(), "payload": "0123456789abcdef".repeat(4)},
    })
}

fn cm_key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("", "configmaps", Some(ns), name)
}

/// The index in a name `{prefix}{index:06}`.
fn index_of(name: &str, prefix: &str) -> Option<usize> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// When each write of a watched phase was sent, as nanoseconds since `epoch` (0: not yet).
struct Sent {
    epoch: Instant,
    at: Vec<AtomicU64>,
}

impl Sent {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    fn mark(&self, i: usize) {
        let ns = self.epoch.elapsed().as_nanos() as u64;
        self.at[i].store(ns.max(1), Ordering::Release);
    }

    /// Nanoseconds from the send of write `i` to `arrived`.
    fn latency(&self, i: usize, arrived: Instant) -> Option<u64> {
        let sent = self.at.get(i)?.load(Ordering::Acquire);
        let arrived = arrived.duration_since(self.epoch).as_nanos() as u64;
        (sent > 0).then(|| arrived.saturating_sub(sent))
    }
}

/// Event arrivals as (object name, when), from a store watch or an HTTP watch stream.
type Arrivals = mpsc::UnboundedReceiver<(String, Instant)>;

fn store_arrivals(mut events: mpsc::Receiver<Arc<Event>>) -> Arrivals {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let now = Instant::now();
            let name = event.key.rsplit('/').next().unwrap_or_default().to_owned();
            if tx.send((name, now)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Reads a watch response's newline-delimited JSON events; stamps each chunk when it arrives.
fn http_arrivals(mut response: reqwest::Response) -> Arrivals {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let now = Instant::now();
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                if let Some(name) = event
                    .pointer("/object/metadata/name")
                    .and_then(Value::as_str)
                    && tx.send((name.to_owned(), now)).is_err()
                {
                    return;
                }
            }
        }
    });
    rx
}

/// Waits for the event of `name`; its arrival time.
async fn arrival_of(arrivals: &mut Arrivals, name: &str) -> anyhow::Result<Instant> {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some((n, at))) if n == name => return Ok(at),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("the watch ended before the event of {name}"),
            Err(_) => anyhow::bail!("no event for {name} within {EVENT_TIMEOUT:?}"),
        }
    }
}

/// Collects the latencies of the `n` writes named `{prefix}{i:06}` as their events arrive.
async fn gather(arrivals: &mut Arrivals, sent: &Sent, prefix: &str, n: usize) -> Run {
    let mut run = Run::default();
    let mut seen = 0;
    while seen < n {
        match tokio::time::timeout(EVENT_TIMEOUT, arrivals.recv()).await {
            Ok(Some((name, at))) => {
                if let Some(i) = index_of(&name, prefix)
                    && let Some(latency) = sent.latency(i, at)
                {
                    run.latencies.push(latency);
                    seen += 1;
                }
            }
            Ok(None) => {
                run.error(format!("the watch ended after {seen} of {n} events"));
                break;
            }
            Err(_) => {
                run.error(format!(
                    "{} events missing after {EVENT_TIMEOUT:?}",
                    n - seen
                ));
                break;
            }
        }
    }
    run
}

// ---------------------------------------------------------------------------------------------
// Writers.

/// Creates `{prefix}{i:06}` for i in 0..n in `ns`, `concurrency` at a time, through the store.
async fn store_creates(
    store: &Store,
    ns: &str,
    prefix: &str,
    n: usize,
    concurrency: usize,
    sent: Option<Arc<Sent>>,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, next, sent) = (store.clone(), next.clone(), sent.clone());
            let (ns, prefix) = (ns.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                let mut run = Run::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return run;
                    }
                    let name = format!("{prefix}{i:06}");
                    let (key, object) = (cm_key(&ns, &name), config_map(&name, i));
                    let t = Instant::now();
                    if let Some(sent) = &sent {
                        sent.mark(i);
                    }
                    match store.create(key, object).await {
                        Ok(_) => run.latencies.push(t.elapsed().as_nanos() as u64),
                        Err(e) => run.error(e),
                    }
                }
            })
        })
        .collect();
    let mut all = Run::default();
    for task in tasks {
        match task.await {
            Ok(run) => all.merge(run),
            Err(e) => all.error(e),
        }
    }
    all.elapsed = start.elapsed();
    all
}

#[derive(Clone)]
struct Api {
    base: String,
    token: String,
}

impl Api {
    async fn create(
        &self,
        client: &reqwest::Client,
        ns: &str,
        object: &Value,
    ) -> anyhow::Result<()> {
        let response = client
            .post(format!("{}/api/v1/namespaces/{ns}/configmaps", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(object)?)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(
            status == reqwest::StatusCode::CREATED,
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    async fn get(&self, client: &reqwest::Client, path: &str) -> anyhow::Result<Value> {
        let response = client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "GET {path}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(serde_json::from_slice(&body)?)
    }
}

/// Creates `{prefix}{i:06}` for i in 0..n in `ns` through the API, one client (connection) per writer.
async fn api_creates(
    api: &Api,
    clients: &[reqwest::Client],
    ns: &str,
    prefix: &str,
    n: usize,
    sent: Option<Arc<Sent>>,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .map(|client| {
            let (api, client, next, sent) =
                (api.clone(), client.clone(), next.clone(), sent.clone());
            let (ns, prefix) = (ns.to_owned(), prefix.to_owned());
            tokio::spawn(async move {
                let mut run = Run::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return run;
                    }
                    let name = format!("{prefix}{i:06}");
                    let object = config_map(&name, i);
                    let t = Instant::now();
                    if let Some(sent) = &sent {
                        sent.mark(i);
                    }
                    match api.create(&client, &ns, &object).await {
                        Ok(()) => run.latencies.push(t.elapsed().as_nanos() as u64),
                        Err(e) => run.error(e),
                    }
                }
            })
        })
        .collect();
    let mut all = Run::default();
    for task in tasks {
        match task.await {
            Ok(run) => all.merge(run),
            Err(e) => all.error(e),
        }
    }
    all.elapsed = start.elapsed();
    all
}

// ---------------------------------------------------------------------------------------------
// The server.

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

/// An HTTP/1.1 keep-alive client; `timeout` None for watch streams.
fn make_client(
    tls: &rustls::ClientConfig,
    timeout: Option<Duration>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .http1_only()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(600))
        .tcp_nodelay(true)
        .no_proxy();
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    Ok(builder.build()?)
}

/// A `corbel serve` child process, killed when dropped.
struct Server {
    child: Child,
    api: Api,
    tls: rustls::ClientConfig,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS")
    }

    fn cpu(&self) -> Duration {
        process_cpu(&self.pid().to_string())
    }

    /// SIGTERM, and the time until the process exited.
    fn terminate(mut self) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(start.elapsed());
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(30),
                "corbel did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a start took, from the spawn.
struct Startup {
    listening: Duration,
    ready: Duration,
    first_get: Option<Duration>,
}

/// Starts `corbel serve` in embedded mode on `data` (config, TLS and logs in `dir`), and times it:
/// the address file, `/readyz` 200, and, when given, a successful GET of `probe`.
async fn start_server(
    bin: &Path,
    dir: &Path,
    name: &str,
    data: &Path,
    probe: Option<&str>,
) -> anyhow::Result<(Server, Startup)> {
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "tls:\n  development:\n    dir: {}\nembedded:\n  dataDir: {}\nbindings: []\n",
            dir.join("tls").display(),
            data.display()
        ),
    )?;
    let address_file = dir.join(format!("{name}.address"));
    let _ = std::fs::remove_file(&address_file);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?;
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--address-file")
        .arg(&address_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("failed to start {}: {e}", bin.display()))?;
    let address = loop {
        if let Ok(address) = std::fs::read_to_string(&address_file)
            && !address.is_empty()
        {
            break address;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!(
                "corbel exited with {status}; see {}",
                dir.join(format!("{name}.log")).display()
            );
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "corbel did not listen within 120 s"
        );
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let listening = start.elapsed();
    let tls = client_tls(&dir.join("tls/ca.crt"))?;
    let client = make_client(&tls, Some(Duration::from_secs(60)))?;
    let base = format!("https://{address}");
    let token = std::fs::read_to_string(data.join("admin.token"))?
        .trim()
        .to_owned();
    let server = Server {
        child,
        api: Api { base, token },
        tls,
    };
    loop {
        if let Ok(r) = client
            .get(format!("{}/readyz", server.api.base))
            .send()
            .await
            && r.status() == reqwest::StatusCode::OK
        {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(120),
            "/readyz did not answer 200 within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready = start.elapsed();
    let mut first_get = None;
    if let Some(path) = probe {
        loop {
            if server.api.get(&client, path).await.is_ok() {
                first_get = Some(start.elapsed());
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "GET {path} did not succeed within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok((
        server,
        Startup {
            listening,
            ready,
            first_get,
        },
    ))
}

/// Waits until the store in `dir` is closed (the writer thread has dropped the database).
fn wait_closed(dir: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let path = dir.join("corbel.redb");
    loop {
        match redb::Database::create(&path) {
            Ok(db) => {
                drop(db);
                return Ok(start.elapsed());
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                anyhow::ensure!(
                    start.elapsed() < Duration::from_secs(60),
                    "the store did not close within 60 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => anyhow::bail!("reopening {}: {e}", path.display()),
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The phases.

fn creates_rows(report: &mut Report, section: &str, label: &str, run: &Run, cost: PerOp) {
    report.add(
        section,
        format!("{label}: creates/s"),
        format!("{}{}", thousands(run.rate() as u64), run.errors_note()),
    );
    report.add(
        section,
        format!("{label}: latency p50 / p99 / max"),
        run.latency(),
    );
    let mut per = vec![format!(
        "{:.0} µs CPU ({:.0} µs of it in the kernel)",
        cost.cpu_us, cost.system_us
    )];
    if let Some(kib) = cost.written_kib {
        per.push(format!("{kib:.1} KiB written"));
    }
    if let Some(flushes) = cost.flushes {
        per.push(format!("{flushes:.2} device flushes"));
    }
    report.add(section, format!("{label}: per create"), per.join(", "));
}

async fn store_phase(
    opts: &Options,
    base: &Path,
    disk: &Option<PathBuf>,
    report: &mut Report,
) -> anyhow::Result<()> {
    const S: &str = "store (in process)";
    let n = opts.objects;
    println!(
        "\n1. Store in process: {} creates at concurrency 1, then at {}",
        thousands(n as u64),
        opts.store_concurrency
    );

    // Concurrency 1: each write is its own transaction, commit and fsync.
    let dir = base.join("store-serial");
    let store = Store::open(&dir)?;
    sync_disks();
    let meter = Meter::start("self", disk);
    let serial = store_creates(&store, "default", "cm-", n, 1, None).await;
    let serial_cost = meter.per(serial.latencies.len());
    creates_rows(report, S, "concurrency 1", &serial, serial_cost);
    drop(store);

    // Concurrency 64: the writer folds what waits into one transaction.
    let dir = base.join("store-concurrent");
    let store = Store::open(&dir)?;
    sync_disks();
    let meter = Meter::start("self", disk);
    let concurrent = store_creates(&store, "default", "cm-", n, opts.store_concurrency, None).await;
    let cost = meter.per(concurrent.latencies.len());
    let label = format!("concurrency {}", opts.store_concurrency);
    creates_rows(report, S, &label, &concurrent, cost);
    if let (Some(per_commit), Some(per_create)) = (serial_cost.flushes, cost.flushes)
        && per_create > 0.0
    {
        report.add(
            S,
            format!("{label}: writes per commit (from device flushes)"),
            format!("≈ {:.1}", per_commit / per_create),
        );
    }
    report.add(
        S,
        format!("concurrency {}/1: throughput", opts.store_concurrency),
        format!("{:.1}×", concurrent.rate() / serial.rate()),
    );

    // Watch latency with the store holding n objects: sequential writes.
    let w = opts.watch_writes;
    println!(
        "   watch: {} sequential writes, then {} with {} writers",
        thousands(w as u64),
        thousands(w as u64),
        opts.store_concurrency
    );
    let prefix = ObjectKey::prefix("", "configmaps", Some("default"));
    sync_disks();
    let mut arrivals = store_arrivals(store.watch(prefix.clone(), store.revision()?)?);
    let mut watch = Run::default();
    let mut acks = Run::default();
    let start = Instant::now();
    for i in 0..WATCH_WARMUP + w {
        let name = format!("sw-{i:06}");
        let t = Instant::now();
        let result = store
            .create(cm_key("default", &name), config_map(&name, i))
            .await;
        let acked = t.elapsed();
        if let Err(e) = result {
            watch.error(e);
            continue;
        }
        match arrival_of(&mut arrivals, &name).await {
            Ok(at) if i >= WATCH_WARMUP => {
                watch.latencies.push(at.duration_since(t).as_nanos() as u64);
                acks.latencies.push(acked.as_nanos() as u64);
            }
            Ok(_) => {}
            Err(e) => watch.error(e),
        }
    }
    watch.elapsed = start.elapsed();
    report.add(
        S,
        format!(
            "watch, sequential writes at {} objects: write → event p50 / p99 / max",
            thousands(n as u64)
        ),
        format!("{}{}", watch.latency(), watch.errors_note()),
    );
    report.add(
        S,
        "  (the same writes: write → acknowledged p50 / p99 / max)",
        acks.latency(),
    );

    // Under load: every write of `concurrency` writers, from the send to its event.
    let sent = Sent::new(w);
    let (writes, mut delivered) = tokio::join!(
        store_creates(
            &store,
            "default",
            "lw-",
            w,
            opts.store_concurrency,
            Some(sent.clone())
        ),
        gather(&mut arrivals, &sent, "lw-", w),
    );
    delivered.merge(Run {
        errors: writes.errors,
        first_error: writes.first_error.clone(),
        ..Default::default()
    });
    report.add(
        S,
        format!(
            "watch, {} writers: write → event p50 / p99 / max",
            opts.store_concurrency
        ),
        format!("{}{}", delivered.latency(), delivered.errors_note()),
    );
    report.add(
        S,
        "store file after these phases",
        format!(
            "{:.1} MiB ({} objects)",
            dir_size(&dir) as f64 / 1048576.0,
            thousands((n + 2 * w + WATCH_WARMUP) as u64)
        ),
    );
    drop(arrivals);
    drop(store);
    Ok(())
}

async fn api_phase(
    opts: &Options,
    base: &Path,
    disk: &Option<PathBuf>,
    report: &mut Report,
) -> anyhow::Result<()> {
    const S: &str = "API over HTTPS";
    let n = opts.objects;
    let c = opts.api_concurrency;
    println!(
        "\n2. API over HTTPS (corbel serve): {} creates at concurrency 1, then at {c}",
        thousands(n as u64)
    );
    let data = base.join("api-data");
    let (server, startup) = start_server(&opts.bin, base, "api", &data, None).await?;
    report.add(
        S,
        "startup on an empty data dir: listening / ready",
        format!(
            "{} / {} (development CA and certificates generated)",
            ms(startup.listening),
            ms(startup.ready)
        ),
    );
    let control = make_client(&server.tls, Some(Duration::from_secs(60)))?;
    let api = server.api.clone();
    for ns in ["serial", "parallel"] {
        let response = control
            .post(format!("{}/api/v1/namespaces", api.base))
            .bearer_auth(&api.token)
            .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "creating namespace {ns}: {}",
            response.status()
        );
    }
    let clients = (0..c.max(1))
        .map(|_| make_client(&server.tls, Some(Duration::from_secs(30))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for client in &clients {
        api.get(client, "/api/v1/namespaces/default").await?; // connect and handshake, untimed
    }

    let pid = server.pid().to_string();
    sync_disks();
    let meter = Meter::start(&pid, disk);
    let serial = api_creates(&api, &clients[..1], "serial", "cm-", n, None).await;
    let serial_cost = meter.per(serial.latencies.len());
    creates_rows(report, S, "concurrency 1", &serial, serial_cost);

    sync_disks();
    let meter = Meter::start(&pid, disk);
    let concurrent = api_creates(&api, &clients, "parallel", "cm-", n, None).await;
    let cost = meter.per(concurrent.latencies.len());
    let label = format!("concurrency {c}");
    creates_rows(report, S, &label, &concurrent, cost);
    if let (Some(per_commit), Some(per_create)) = (serial_cost.flushes, cost.flushes)
        && per_create > 0.0
    {
        report.add(
            S,
            format!("{label}: writes per commit (from device flushes)"),
            format!("≈ {:.1}", per_commit / per_create),
        );
    }
    report.add(
        S,
        format!("concurrency {c}/1: throughput"),
        format!("{:.1}×", concurrent.rate() / serial.rate()),
    );

    // Watch latency: a watch stream from the current resourceVersion, sequential creates.
    let w = opts.watch_writes;
    println!(
        "   watch: {} sequential writes, then {} with {c} writers",
        thousands(w as u64),
        thousands(w as u64)
    );
    let list = api
        .get(&control, "/api/v1/namespaces/parallel/configmaps?limit=1")
        .await?;
    let rv = list
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_owned();
    let watcher = make_client(&server.tls, None)?;
    let response = watcher
        .get(format!(
            "{}/api/v1/namespaces/parallel/configmaps?watch=true&resourceVersion={rv}",
            api.base
        ))
        .bearer_auth(&api.token)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "watch: {}",
        response.status()
    );
    let mut arrivals = http_arrivals(response);
    sync_disks();
    let mut watch = Run::default();
    let mut acks = Run::default();
    let start = Instant::now();
    for i in 0..WATCH_WARMUP + w {
        let name = format!("sw-{i:06}");
        let object = config_map(&name, i);
        let t = Instant::now();
        let result = api.create(&clients[0], "parallel", &object).await;
        let acked = t.elapsed();
        if let Err(e) = result {
            watch.error(e);
            continue;
        }
        match arrival_of(&mut arrivals, &name).await {
            Ok(at) if i >= WATCH_WARMUP => {
                watch.latencies.push(at.duration_since(t).as_nanos() as u64);
                acks.latencies.push(acked.as_nanos() as u64);
            }
            Ok(_) => {}
            Err(e) => watch.error(e),
        }
    }
    watch.elapsed = start.elapsed();
    report.add(
        S,
        format!(
            "watch, sequential writes at {} objects: POST sent → event line p50 / p99 / max",
            thousands(n as u64)
        ),
        format!("{}{}", watch.latency(), watch.errors_note()),
    );
    report.add(
        S,
        "  (the same POSTs: sent → 201 received p50 / p99 / max)",
        acks.latency(),
    );

    let sent = Sent::new(w);
    let (writes, mut delivered) = tokio::join!(
        api_creates(&api, &clients, "parallel", "lw-", w, Some(sent.clone())),
        gather(&mut arrivals, &sent, "lw-", w),
    );
    delivered.merge(Run {
        errors: writes.errors,
        first_error: writes.first_error.clone(),
        ..Default::default()
    });
    report.add(
        S,
        format!("watch, {c} writers: POST sent → event line p50 / p99 / max"),
        format!("{}{}", delivered.latency(), delivered.errors_note()),
    );
    let objects = 2 * n + 2 * w + WATCH_WARMUP;
    report.add(
        S,
        format!(
            "server VmRSS after these phases ({} objects)",
            thousands(objects as u64)
        ),
        mib(server.rss_kib()),
    );
    drop(arrivals);
    server.kill()?;
    Ok(())
}

async fn memory_and_startup(
    opts: &Options,
    base: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    const M: &str = "memory";
    const T: &str = "startup";
    let n = opts.memory_objects;
    println!(
        "\n3. Memory and startup at {} objects (store prefilled in process)",
        thousands(n as u64)
    );
    let data = base.join("big-data");
    let store_dir = data.join("store");
    let store = Store::open(&store_dir)?;
    for ns in ["default", "kube-system"] {
        store
            .create(
                ObjectKey::new("", "namespaces", None, ns),
                json!({"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"}}),
            )
            .await?;
    }
    let prefill = store_creates(&store, "default", "cm-", n, PREFILL_CONCURRENCY, None).await;
    anyhow::ensure!(
        prefill.errors == 0,
        "prefill failed: {}",
        prefill.errors_note()
    );
    report.add(
        M,
        format!(
            "prefill in process, {PREFILL_CONCURRENCY} writers: creates/s (0 → {})",
            thousands(n as u64)
        ),
        thousands(prefill.rate() as u64),
    );
    drop(store);
    wait_closed(&store_dir)?;
    report.add(
        M,
        "store file",
        format!("{:.1} MiB", dir_size(&store_dir) as f64 / 1048576.0),
    );

    let probe = "/api/v1/namespaces/default/configmaps/cm-000000";
    let (server, first) = start_server(&opts.bin, base, "big", &data, Some(probe)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_kib();
    report.add(
        M,
        format!(
            "server VmRSS, idle, {} objects in the store",
            thousands(n as u64)
        ),
        mib(idle),
    );

    // A full LIST, as a client without paging does it.
    let client = make_client(&server.tls, Some(Duration::from_secs(120)))?;
    let api = server.api.clone();
    let cpu0 = server.cpu();
    let start = Instant::now();
    let response = client
        .get(format!("{}/api/v1/namespaces/default/configmaps", api.base))
        .bearer_auth(&api.token)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "LIST: {}",
        response.status()
    );
    let headers = start.elapsed();
    let body = response.bytes().await?;
    let listed = start.elapsed();
    let list_cpu = server.cpu().saturating_sub(cpu0);
    let rss_after = server.rss_kib();
    let hwm = status_kib(server.pid(), "VmHWM");
    let items = serde_json::from_slice::<Value>(&body)?
        .get("items")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    report.add(
        M,
        "full LIST (no limit): headers / whole body, size, server CPU",
        format!(
            "{} / {} for {} items, {:.1} MiB of JSON, {} CPU",
            ms(headers),
            ms(listed),
            thousands(items as u64),
            body.len() as f64 / 1048576.0,
            ms(list_cpu)
        ),
    );
    drop(body);
    report.add(
        M,
        "server VmRSS after the full LIST (VmHWM: peak)",
        format!("{} (peak {})", mib(rss_after), mib(hwm)),
    );

    // The same in pages of 500, as kubectl and kube-rs reflectors list.
    let start = Instant::now();
    let (mut pages, mut items, mut token) = (0, 0, None::<String>);
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/namespaces/default/configmaps?limit=500&continue={t}"),
            None => "/api/v1/namespaces/default/configmaps?limit=500".to_owned(),
        };
        let page = api.get(&client, &path).await?;
        pages += 1;
        items += page
            .get("items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    report.add(
        M,
        "LIST in pages of 500: time",
        format!(
            "{} for {} items in {pages} pages",
            ms(start.elapsed()),
            thousands(items as u64)
        ),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.add(M, "server VmRSS 2 s after the LISTs", mib(server.rss_kib()));

    let startup_row = |report: &mut Report, label: &str, s: &Startup| {
        report.add(
            T,
            format!("{label}: listening / /readyz 200 / first GET 200"),
            format!(
                "{} / {} / {}",
                ms(s.listening),
                ms(s.ready),
                s.first_get.map_or("n/a".into(), ms)
            ),
        );
    };
    println!("\n4. Startup on {} objects", thousands(n as u64));
    startup_row(report, "store closed cleanly (by the prefill)", &first);
    let stopped = server.terminate()?;
    report.add(T, "SIGTERM → exit (idle server)", ms(stopped));
    report.add(
        T,
        "after SIGTERM: does the store need repair?",
        repair_probe(&store_dir)?,
    );
    let (server, after_term) = start_server(&opts.bin, base, "big", &data, Some(probe)).await?;
    startup_row(report, "after SIGTERM of the server", &after_term);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.add(
        M,
        "server VmRSS, idle after the restart",
        mib(server.rss_kib()),
    );
    // A crash in use: some writes, then SIGKILL.
    let client = make_client(&server.tls, Some(Duration::from_secs(30)))?;
    for i in 0..100 {
        let name = format!("crash-{i:03}");
        server
            .api
            .create(&client, "default", &config_map(&name, i))
            .await?;
    }
    server.kill()?;
    report.add(
        T,
        "after 100 creates and SIGKILL: does the store need repair?",
        repair_probe(&store_dir)?,
    );
    let (server, after_kill) = start_server(&opts.bin, base, "big", &data, Some(probe)).await?;
    startup_row(
        report,
        "after 100 creates and SIGKILL of the server",
        &after_kill,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.add(
        M,
        "server VmRSS, idle after the restart from SIGKILL",
        mib(server.rss_kib()),
    );
    server.kill()?;
    Ok(())
}

/// Whether redb repairs the store in `dir` when it opens it, found on a copy of the file (so the
/// server still finds it as it was): "no (opened in …)" or "yes (repair took …)".
fn repair_probe(dir: &Path) -> anyhow::Result<String> {
    let copy = dir.with_extension("probe.redb");
    std::fs::copy(dir.join("corbel.redb"), &copy)?;
    let repaired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = repaired.clone();
    let start = Instant::now();
    let db = redb::Database::builder()
        .set_repair_callback(move |_| flag.store(true, Ordering::Relaxed))
        .create(&copy)
        .map_err(|e| anyhow::anyhow!("opening a copy of the store: {e}"))?;
    let took = start.elapsed();
    drop(db);
    std::fs::remove_file(&copy)?;
    Ok(if repaired.load(Ordering::Relaxed) {
        format!("yes (redb's repair on open took {} in process)", ms(took))
    } else {
        "no".to_owned()
    })
}

fn main() {
    if let Err(e) = run() {
        eprintln!("store bench failed: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let wall = Instant::now();
    let opts = Options::from_env();
    anyhow::ensure!(
        opts.bin.exists(),
        "{} is missing: build it with `cargo build --release -p corbel` or set CORBEL_BIN",
        opts.bin.display()
    );
    std::fs::create_dir_all(&opts.dir)?;
    let base = tempfile::Builder::new()
        .prefix("corbel-store-bench-")
        .tempdir_in(&opts.dir)?;
    let disk = disk_stat_file(base.path());

    println!("Corbel embedded store benchmark");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = first_line("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load_at_start = loadavg();
    println!(
        "machine:   {cores} cores available ({cpu}), Linux {}; load average {load_at_start} at start",
        kernel.trim(),
    );
    println!(
        "disk:      {} ({}); device flush counter {}",
        base.path().display(),
        filesystem(base.path()),
        if disk.is_some() {
            "available"
        } else {
            "unavailable"
        }
    );
    println!("server:    {}", opts.bin.display());
    println!(
        "options:   objects {}, store writers {}, API writers {}, watch writes {}, memory objects {}, client threads {}",
        opts.objects,
        opts.store_concurrency,
        opts.api_concurrency,
        opts.watch_writes,
        opts.memory_objects,
        opts.client_threads
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .enable_all()
        .build()?;
    let mut report = Report { rows: Vec::new() };
    report.rows.push((
        "machine".into(),
        "cores, load average at the start".into(),
        format!("{cores} ({cpu}), Linux {}; {load_at_start}", kernel.trim()),
    ));
    report.rows.push((
        "machine".into(),
        "data dirs".into(),
        filesystem(base.path()),
    ));
    rt.block_on(store_phase(&opts, base.path(), &disk, &mut report))?;
    rt.block_on(api_phase(&opts, base.path(), &disk, &mut report))?;
    rt.block_on(memory_and_startup(&opts, base.path(), &mut report))?;
    report.rows.push((
        "machine".into(),
        "load average at the end, wall time".into(),
        format!("{}; {:.0} s", loadavg(), wall.elapsed().as_secs_f64()),
    ));
    report.print();
    Ok(())
}
