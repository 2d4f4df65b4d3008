//! The languages benchmark: the same `require-labels` policy built in Rust, C, JavaScript, Python
//! and Go, measured through the host's own loading and evaluation code.
//!
//! ```text
//! cargo xtask plugins                          # builds every require_labels*.wasm
//! cargo bench -p corbel --bench languages
//! ```
//!
//! Per language it prints: the component's size; compiling it (`Component::new`, what a host
//! without a cache pays at start); loading a compiled artifact (`Component::deserialize`, what a
//! host with the registry's cache pays); instantiating a sandbox (`Plugin::instantiate_only`,
//! what every request pays before the call); and one whole evaluation (`admission::evaluate`:
//! sandbox, instantiation, request conversion, call, checks), with its ratio to Rust. The request
//! is `tests/data/reviews/configmap-labelled.json` (admitted). `CORBEL_BENCH_ITERATIONS` (default
//! 2000) sets how many instantiations and evaluations are measured, after a tenth for warm-up;
//! `CORBEL_BENCH_LANGUAGES` (say `Go,JavaScript`) measures only those, for profiling one.
//!
//! Beside each time it prints the page faults per evaluation (minor faults of the process, from
//! `/proc/self/stat`): a sandbox's memory is restored from the component's memory image after every
//! request, and every page a request touches beyond what the pool keeps resident is faulted in
//! again, which is most of what a large snapshot (JavaScript, Python) costs per request.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corbel::admission::{self, Binding, Mode, Request};
use corbel::runtime::{Limits, LogContext, Runtime, RuntimeConfig};
use wasmtime::component::Component;

const LANGUAGES: &[(&str, &str)] = &[
    ("Rust", "require_labels"),
    ("C", "require_labels_c"),
    ("JavaScript", "require_labels_js"),
    ("Python", "require_labels_py"),
    ("Go", "require_labels_go"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn request() -> Request {
    let text = std::fs::read_to_string(root().join("tests/data/reviews/configmap-labelled.json"))
        .expect("the request fixture");
    admission::parse_review(text.as_bytes()).unwrap()
}

/// Minor page faults of this process so far (field 10 of `/proc/self/stat`).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    after
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

fn mean(total: Duration, n: usize) -> Duration {
    total / n as u32
}

fn show(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: usize = std::env::var("CORBEL_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        max_memory: 256 << 20,
    })
    .unwrap();
    let request = request();
    let settings = serde_json::json!({"labels": ["team"]});
    let log = Arc::new(LogContext {
        binding: "bench".into(),
        plugin: "bench".into(),
    });

    let only = std::env::var("CORBEL_BENCH_LANGUAGES").ok();
    let wanted = |language: &str| {
        only.as_deref().is_none_or(|only| {
            only.split(',')
                .any(|l| l.trim().eq_ignore_ascii_case(language))
        })
    };

    println!(
        "| language | component | compile (Component::new) | cached load (deserialize) | instantiate | evaluate (per request) | evaluate vs Rust | page faults per evaluation |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut rust_eval = None;
    for (language, stem) in LANGUAGES.iter().filter(|(l, _)| wanted(l)) {
        let path = root().join(format!("target/wasm32-wasip2/plugin/{stem}.wasm"));
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!(
                "{} is missing: run `cargo xtask plugins` first",
                path.display()
            );
            std::process::exit(1);
        };

        let started = Instant::now();
        let component = runtime.compile(&bytes).unwrap();
        let compile = started.elapsed();
        let artifact = component.serialize().unwrap();
        let started = Instant::now();
        // SAFETY: the artifact was serialized by this very engine a moment ago.
        let component = unsafe { Component::deserialize(runtime.engine(), &artifact) }.unwrap();
        let cached = started.elapsed();
        let plugin = Arc::new(runtime.load_component(stem, component).unwrap());

        for _ in 0..iterations / 10 {
            plugin
                .instantiate_only(Limits::default(), &log)
                .await
                .unwrap();
        }
        let started = Instant::now();
        for _ in 0..iterations {
            plugin
                .instantiate_only(Limits::default(), &log)
                .await
                .unwrap();
        }
        let instantiate = mean(started.elapsed(), iterations);

        let binding = Binding::new(
            plugin.clone(),
            admission::Spec::new("bench", &settings, Mode::Validate),
        )
        .await
        .unwrap();
        let verdict = admission::evaluate(&binding, &request).await.unwrap();
        assert!(
            verdict.allowed,
            "{language} must admit the labelled ConfigMap"
        );
        for _ in 0..iterations / 10 {
            admission::evaluate(&binding, &request).await.unwrap();
        }
        let faults = minor_faults();
        let started = Instant::now();
        for _ in 0..iterations {
            admission::evaluate(&binding, &request).await.unwrap();
        }
        let evaluate = mean(started.elapsed(), iterations);
        let faults = (minor_faults() - faults) as f64 / iterations as f64;
        let rust = *rust_eval.get_or_insert(evaluate);
        println!(
            "| {language} | {:.0} KB | {} | {} | {} | {} | {:.1}× | {faults:.0} |",
            bytes.len() as f64 / 1024.0,
            show(compile),
            show(cached),
            show(instantiate),
            show(evaluate),
            evaluate.as_secs_f64() / rust.as_secs_f64()
        );
    }
}
