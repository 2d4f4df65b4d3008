//! Webhook cost on one core, measured the way operators deploy it (issue 17): the server process
//! pinned to one core with `taskset`, an external load generator (`oha`) pinned to the other,
//! HTTPS keep-alive over HTTP/1.1, 16 connections, a 3.2 KB Pod AdmissionReview
//! (`tests/data/reviews/pod-labelled-3k.json`, sent compact). Two servers doing the same check —
//! "the object must carry the label `team`" — behind the same TLS setup:
//!
//! - **Corbel**: the release `corbel serve` with one binding, `require-labels` (settings
//!   `{"labels": ["team"]}`), certificate and key from files, compiled-artifact cache warm;
//! - **native**: `native-webhook` (benches/native/webhook.rs), axum + rustls + kube-rs's typed
//!   AdmissionReview, the same certificate and key.
//!
//! ```sh
//! cargo xtask bench-webhook      # builds the plugin, the host, oha (once), then runs this
//! # or, with those built:
//! cargo bench -p corbel-e2e --features bench-webhook --bench webhook_one_core
//! ```
//!
//! Each round starts each server afresh (the order alternates between rounds, so drift on a shared
//! machine weighs on both alike) and measures, in this order:
//! 1. **start → first answer**: from spawning the process to the first 200 answer to the review
//!    (polled every 2 ms with a new connection each time, TLS handshake included);
//! 2. a warm-up closed loop (`CORBEL_BENCH_WARMUP` seconds, not counted);
//! 3. **closed loop**: 16 connections, each sending as soon as its answer arrives, for
//!    `CORBEL_BENCH_SECONDS`: requests/s, p50/p99 latency, and server CPU per request (user +
//!    system of the whole process, all threads, from `/proc/PID/stat`, over the answered requests);
//! 4. **open loop at 1,000 req/s**: `oha -q 1000 --latency-correction` (latency counted from each
//!    request's due time, no coordinated omission) on the same 16 connections: p50/p99 and server
//!    CPU per request at a rate both servers sustain;
//! 5. **peak RSS**: `VmHWM` of `/proc/PID/status` after all that.
//!
//! Medians over the rounds, their range, and Corbel/native ratios (each round's ratio is taken
//! between the two servers of that round; the median of those is printed). A cold start (empty
//! compiled-artifact cache: Cranelift compiles the component) is measured once before the rounds.
//!
//! Environment: `CORBEL_BENCH_ROUNDS` (3), `CORBEL_BENCH_SECONDS` (10), `CORBEL_BENCH_WARMUP` (2),
//! `CORBEL_BENCH_RATE` (1000), `CORBEL_BENCH_CONNECTIONS` (16), `CORBEL_BENCH_SERVER_CPU` (the
//! last CPU), `CORBEL_BENCH_CLIENT_CPU` (CPU 0), `CORBEL_BENCH_NICE` (unset; e.g. `-10` runs the
//! server and oha under `nice -n -10`, root only), `CORBEL_BENCH_ONLY` (`corbel` or `native`: run only
//! that server, e.g. under `perf`), `CORBEL_BENCH_HOLD` (seconds to keep each server up after its
//! closed loop with its pid printed, for attaching a profiler to a second load), `OHA` (the load
//! generator; default `target/toolchains/oha/bin/oha`), `CORBEL_BIN`, `CORBEL_PLUGINS`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corbel_e2e::{client_trusting, plugin, root};
use serde_json::Value;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on; getconf says so without libc.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU of a process (all its threads), in seconds.
fn cpu_seconds(pid: u32, tck: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server is running");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / tck
}

/// User + system CPU of each thread of a process, in seconds, summed by thread name.
fn cpu_by_thread(pid: u32, tck: f64) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("stat")),
        ) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        *by_name.entry(name.trim().to_owned()).or_insert(0.0) += ticks / tck;
    }
    by_name
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Corbel,
    Native,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Corbel => "corbel",
            Kind::Native => "native",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Kind::Corbel => "/validate/require-labels",
            Kind::Native => "/validate",
        }
    }
}

struct Setup {
    dir: PathBuf,
    corbel: PathBuf,
    native: PathBuf,
    oha: PathBuf,
    body: PathBuf,
    review: Value,
    server_cpu: String,
    client_cpu: String,
    nice: Option<String>,
    seconds: u64,
    warmup: u64,
    rate: u64,
    connections: u64,
    tck: f64,
}

struct Running {
    child: Child,
    base: String,
    kind: Kind,
    started: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Setup {
    fn corbel_config(&self, cache: &Path, development_tls: bool) -> PathBuf {
        let tls = if development_tls {
            format!(
                "  development:\n    dir: {}\n",
                self.dir.join("tls").display()
            )
        } else {
            format!(
                "  certFile: {}\n  keyFile: {}\n",
                self.dir.join("tls/tls.crt").display(),
                self.dir.join("tls/tls.key").display()
            )
        };
        let config = format!(
            "tls:\n{tls}registry:\n  cacheDir: {}\nbindings:\n  - name: require-labels\n    plugin: {}\n    mode: validate\n    settings: {{\"labels\": [\"team\"]}}\n",
            cache.display(),
            plugin("require_labels").display()
        );
        let path = self.dir.join(if development_tls {
            "corbel-dev.yaml"
        } else {
            "corbel.yaml"
        });
        std::fs::write(&path, config).unwrap();
        path
    }

    /// `taskset -c CPU`, under `nice -n CORBEL_BENCH_NICE` when that is set (a negative value
    /// gives the server and oha the larger share of their cores against other work).
    fn pinned(&self, cpu: &str) -> Command {
        let mut command = match &self.nice {
            Some(nice) => {
                let mut command = Command::new("nice");
                command.args(["-n", nice, "taskset"]);
                command
            }
            None => Command::new("taskset"),
        };
        command.args(["-c", cpu]);
        command
    }

    /// Spawns a server pinned to the server CPU and waits for its address file.
    fn spawn(&self, kind: Kind, config: Option<&Path>) -> Running {
        let address_file = self.dir.join(format!("{}.address", kind.name()));
        let _ = std::fs::remove_file(&address_file);
        let log = std::fs::File::create(self.dir.join(format!("{}.log", kind.name()))).unwrap();
        let mut command = self.pinned(&self.server_cpu);
        match kind {
            Kind::Corbel => {
                command
                    .arg(&self.corbel)
                    .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                    .arg(config.expect("corbel needs a config"))
                    .arg("--address-file")
                    .arg(&address_file)
                    .env("RUST_LOG", "warn");
            }
            Kind::Native => {
                command
                    .arg(&self.native)
                    .args(["--listen", "127.0.0.1:0", "--cert"])
                    .arg(self.dir.join("tls/tls.crt"))
                    .arg("--key")
                    .arg(self.dir.join("tls/tls.key"))
                    .arg("--address-file")
                    .arg(&address_file);
            }
        }
        let started = Instant::now();
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {} under taskset: {e}", kind.name()));
        let address = loop {
            if let Ok(address) = std::fs::read_to_string(&address_file)
                && !address.is_empty()
            {
                break address;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not start; its log: {}",
                kind.name(),
                std::fs::read_to_string(self.dir.join(format!("{}.log", kind.name())))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        Running {
            child,
            base: format!("https://{}", address.trim()),
            kind,
            started,
        }
    }

    /// Polls with the review until the first 200 answer; the time since spawn.
    async fn first_answer(&self, server: &Running) -> Duration {
        loop {
            // A new client each time: a fresh connection, as the API server's first call makes.
            let client = client_trusting(&self.dir.join("tls/ca.crt"));
            let answer = client
                .post(format!("{}{}", server.base, server.kind.path()))
                .json(&self.review)
                .send()
                .await;
            if let Ok(answer) = answer
                && answer.status() == 200
            {
                return server.started.elapsed();
            }
            assert!(
                server.started.elapsed() < Duration::from_secs(60),
                "{} never answered the review",
                server.kind.name()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Checks that the server admits the labelled Pod and denies it without the label.
    async fn check(&self, server: &Running) {
        let client = client_trusting(&self.dir.join("tls/ca.crt"));
        let url = format!("{}{}", server.base, server.kind.path());
        let mut unlabelled = self.review.clone();
        unlabelled["request"]["object"]["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("team");
        for (review, allowed) in [(&self.review, true), (&unlabelled, false)] {
            let answer: Value = client
                .post(&url)
                .json(review)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let response = &answer["response"];
            assert_eq!(response["uid"], review["request"]["uid"], "{answer}");
            assert_eq!(
                response["allowed"],
                allowed,
                "{}: {answer}",
                server.kind.name()
            );
            if !allowed {
                let message = response["status"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("team"), "{}: {answer}", server.kind.name());
            }
        }
    }

    /// Runs oha pinned to the client CPU against a server; its JSON summary.
    fn oha(&self, server: &Running, seconds: u64, rate: Option<u64>) -> Value {
        let mut command = self.pinned(&self.client_cpu);
        command
            .arg(&self.oha)
            .args([
                "--no-tui",
                "--output-format",
                "json",
                "--worker-threads",
                "1",
            ])
            .args([
                "--http-version",
                "1.1",
                "-m",
                "POST",
                "-T",
                "application/json",
            ])
            .arg("--cacert")
            .arg(self.dir.join("tls/ca.crt"))
            .arg("-D")
            .arg(&self.body)
            .args(["-c", &self.connections.to_string()])
            .args(["-z", &format!("{seconds}s"), "-w"]);
        if let Some(rate) = rate {
            command.args(["-q", &rate.to_string(), "--latency-correction"]);
        }
        command.arg(format!("{}{}", server.base, server.kind.path()));
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", self.oha.display()));
        assert!(
            output.status.success(),
            "oha failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "oha's output is not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }
}

/// What one load phase measured.
#[derive(Default, Clone, Copy)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
    /// CPU per request of the threads other than tokio's workers (for Corbel: its epoch ticker).
    other_threads_us: f64,
}

/// Answers with status 200 in an oha summary; panics if any request failed otherwise.
fn answered(summary: &Value, what: &str) -> f64 {
    let codes = summary["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let ok = codes.get("200").and_then(Value::as_f64).unwrap_or(0.0);
    let others: f64 = codes
        .iter()
        .filter(|(code, _)| *code != "200")
        .filter_map(|(_, n)| n.as_f64())
        .sum();
    let errors = &summary["errorDistribution"];
    // oha counts requests cut off at the deadline as errors only without -w; with -w there are none.
    assert!(
        others == 0.0 && errors.as_object().is_none_or(|e| e.is_empty()),
        "{what}: not every request was answered 200: {codes:?}, errors {errors}"
    );
    ok
}

fn load(setup: &Setup, server: &Running, seconds: u64, rate: Option<u64>, what: &str) -> Load {
    let pid = server.child.id();
    let before = cpu_seconds(pid, setup.tck);
    let threads_before = cpu_by_thread(pid, setup.tck);
    let summary = setup.oha(server, seconds, rate);
    let after = cpu_seconds(pid, setup.tck);
    let threads_after = cpu_by_thread(pid, setup.tck);
    let others: f64 = threads_after
        .iter()
        .filter(|(name, _)| name.as_str() != "tokio-rt-worker")
        .map(|(name, t)| t - threads_before.get(name).copied().unwrap_or(0.0))
        .sum();
    let ok = answered(&summary, what);
    let percentile = |p: &str| {
        summary["latencyPercentiles"][p]
            .as_f64()
            .unwrap_or(f64::NAN)
            * 1e3
    };
    Load {
        rps: summary["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: percentile("p50"),
        p99_ms: percentile("p99"),
        cpu_us: (after - before) / ok * 1e6,
        other_threads_us: others / ok * 1e6,
    }
}

#[derive(Default, Clone, Copy)]
struct Round {
    start_ms: f64,
    closed: Load,
    open: Load,
    hwm_mib: f64,
}

async fn measure(setup: &Setup, kind: Kind, config: &Path) -> Round {
    let server = setup.spawn(kind, Some(config));
    let start = setup.first_answer(&server).await;
    setup.check(&server).await;
    setup.oha(&server, setup.warmup, None);
    let closed = load(setup, &server, setup.seconds, None, "closed loop");
    let hold = env_u64("CORBEL_BENCH_HOLD", 0);
    if hold > 0 {
        eprintln!(
            "holding {} (pid {}, {}) for {hold} s",
            kind.name(),
            server.child.id(),
            server.base
        );
        std::thread::sleep(Duration::from_secs(hold));
    }
    let open = load(setup, &server, setup.seconds, Some(setup.rate), "open loop");
    let hwm_mib = status_kib(server.child.id(), "VmHWM:") / 1024.0;
    Round {
        start_ms: start.as_secs_f64() * 1e3,
        closed,
        open,
        hwm_mib,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn range(values: &[f64], digits: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.digits$}–{max:.digits$}")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let oha = std::env::var_os("OHA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/toolchains/oha/bin/oha"));
    assert!(
        oha.exists(),
        "{} is missing: run `cargo xtask bench-webhook` (it installs oha with \
         `cargo install oha --locked --root target/toolchains/oha`), or set OHA",
        oha.display()
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cpus >= 2,
        "this bench pins the server and the load generator to different cores: it needs 2, \
         this process may use {cpus}"
    );
    let dir = root().join("target/tmp/webhook-one-core");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let review: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/data/reviews/pod-labelled-3k.json")).unwrap(),
    )
    .unwrap();
    let body = dir.join("review.json");
    let compact = serde_json::to_vec(&review).unwrap();
    std::fs::write(&body, &compact).unwrap();
    let setup = Setup {
        corbel: corbel_e2e::bin(),
        native: PathBuf::from(env!("CARGO_BIN_EXE_native-webhook")),
        oha,
        body,
        review,
        server_cpu: std::env::var("CORBEL_BENCH_SERVER_CPU").unwrap_or((cpus - 1).to_string()),
        client_cpu: std::env::var("CORBEL_BENCH_CLIENT_CPU").unwrap_or("0".into()),
        nice: std::env::var("CORBEL_BENCH_NICE").ok(),
        seconds: env_u64("CORBEL_BENCH_SECONDS", 10),
        warmup: env_u64("CORBEL_BENCH_WARMUP", 2),
        rate: env_u64("CORBEL_BENCH_RATE", 1000),
        connections: env_u64("CORBEL_BENCH_CONNECTIONS", 16),
        tck: ticks_per_second(),
        dir,
    };
    let rounds = env_u64("CORBEL_BENCH_ROUNDS", 3) as usize;
    let only = std::env::var("CORBEL_BENCH_ONLY").ok();
    let runs = |kind: Kind| only.as_deref().is_none_or(|o| o == kind.name());
    println!(
        "webhook on one core: server on CPU {}, oha on CPU {}, nice {}, {} connections, HTTP/1.1 \
         keep-alive, {}-byte Pod review, {} s per phase, {} rounds",
        setup.server_cpu,
        setup.client_cpu,
        setup.nice.as_deref().unwrap_or("0"),
        setup.connections,
        compact.len(),
        setup.seconds,
        rounds
    );

    println!(
        "load average at the start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // Development certificates and a cold start: the first start makes the CA and the serving
    // certificate, and compiles the component into an empty cache.
    let cache = setup.dir.join("cache");
    let dev = setup.corbel_config(&cache, true);
    let cold = {
        let server = setup.spawn(Kind::Corbel, Some(&dev));
        setup.first_answer(&server).await
    };
    println!(
        "corbel cold start (certificates made, component compiled) → first answer: {:.0} ms",
        cold.as_secs_f64() * 1e3
    );
    let config = setup.corbel_config(&cache, false);

    let mut results: Vec<(Kind, Round)> = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Kind::Corbel, Kind::Native]
        } else {
            [Kind::Native, Kind::Corbel]
        };
        for kind in order.into_iter().filter(|k| runs(*k)) {
            let r = measure(&setup, kind, &config).await;
            println!(
                "round {} {:<6}: start {:>5.1} ms | closed {:>7.0} req/s p50 {:.2} p99 {:.2} ms, {:>5.1} µs CPU/req ({:.1} off the tokio workers) | open {:>5.0} req/s p50 {:.2} p99 {:.2} ms, {:>5.1} µs CPU/req ({:.1} off the workers) | peak RSS {:.1} MiB",
                round + 1,
                kind.name(),
                r.start_ms,
                r.closed.rps,
                r.closed.p50_ms,
                r.closed.p99_ms,
                r.closed.cpu_us,
                r.closed.other_threads_us,
                r.open.rps,
                r.open.p50_ms,
                r.open.p99_ms,
                r.open.cpu_us,
                r.open.other_threads_us,
                r.hwm_mib
            );
            results.push((kind, r));
        }
    }

    let of = |kind: Kind| -> Vec<Round> {
        results
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, r)| *r)
            .collect()
    };
    let (corbel, native) = (of(Kind::Corbel), of(Kind::Native));
    type Figure = (&'static str, fn(&Round) -> f64, usize);
    let figures: [Figure; 12] = [
        ("closed loop: req/s", |r| r.closed.rps, 0),
        (
            "closed loop: req/s per core of server CPU (1 s / CPU per request)",
            |r| 1e6 / r.closed.cpu_us,
            0,
        ),
        (
            "closed loop: server CPU per request, µs",
            |r| r.closed.cpu_us,
            1,
        ),
        (
            "closed loop: of which threads other than tokio's workers, µs",
            |r| r.closed.other_threads_us,
            1,
        ),
        ("closed loop: p50 latency, ms", |r| r.closed.p50_ms, 2),
        ("closed loop: p99 latency, ms", |r| r.closed.p99_ms, 2),
        (
            "open loop: server CPU per request, µs",
            |r| r.open.cpu_us,
            1,
        ),
        (
            "open loop: of which threads other than tokio's workers, µs",
            |r| r.open.other_threads_us,
            1,
        ),
        ("open loop: p50 latency, ms", |r| r.open.p50_ms, 2),
        ("open loop: p99 latency, ms", |r| r.open.p99_ms, 2),
        ("peak RSS (VmHWM), MiB", |r| r.hwm_mib, 1),
        ("start → first answer, ms", |r| r.start_ms, 1),
    ];
    println!();
    println!(
        "| figure (median of {rounds}; range) | corbel | native | corbel/native (median of rounds) |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for (name, get, digits) in figures {
        let c: Vec<f64> = corbel.iter().map(get).collect();
        let n: Vec<f64> = native.iter().map(get).collect();
        let ratios: Vec<f64> = c.iter().zip(&n).map(|(c, n)| c / n).collect();
        println!(
            "| {name} | {:.digits$} ({}) | {:.digits$} ({}) | {:.2}× ({}) |",
            median(c.clone()),
            range(&c, digits),
            median(n.clone()),
            range(&n, digits),
            median(ratios.clone()),
            range(&ratios, 2),
        );
    }
    if !corbel.is_empty() && !native.is_empty() {
        let extra: Vec<f64> = corbel
            .iter()
            .zip(&native)
            .map(|(c, n)| c.closed.cpu_us - n.closed.cpu_us)
            .collect();
        let extra_open: Vec<f64> = corbel
            .iter()
            .zip(&native)
            .map(|(c, n)| c.open.cpu_us - n.open.cpu_us)
            .collect();
        println!();
        println!(
            "corbel − native, server CPU per request: closed loop {:+.1} µs ({}), open loop {:+.1} µs ({})",
            median(extra.clone()),
            range(&extra, 1),
            median(extra_open.clone()),
            range(&extra_open, 1)
        );
        let ratio = |f: fn(&Round) -> f64| {
            median(
                corbel
                    .iter()
                    .zip(&native)
                    .map(|(c, n)| f(c) / f(n))
                    .collect(),
            )
        };
        println!("targets (issue 17), median of the rounds:");
        println!(
            "  throughput ≥ 0.6× native: {:.2}×",
            ratio(|r| r.closed.rps)
        );
        println!(
            "  server CPU per request ≤ native + 30 µs: {:+.1} µs",
            median(extra)
        );
        println!(
            "  p99 at 16 connections ≤ 1.5× native: {:.2}×",
            ratio(|r| r.closed.p99_ms)
        );
        println!(
            "  peak RSS ≤ 20 MB: {:.1} MiB",
            median(corbel.iter().map(|r| r.hwm_mib).collect())
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
}
