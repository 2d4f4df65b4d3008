//! Start-up benchmark: `corbel serve` from process start to ready (every binding loaded, /readyz
//! 200) with 10 plugins, cold (empty cache: every component compiled) and warm (compiled artifacts
//! from the cache). Figures, not pass/fail; target: warm under 200 ms.
//!
//! ```text
//! cargo xtask plugins && cargo build --release -p corbel
//! cargo bench -p corbel --bench startup
//! ```
//!
//! The 10 plugins are 10 distinct components: `require_labels.wasm` with a different custom
//! section appended to each, so each has its own digest and is compiled (cold) or deserialized
//! (warm) on its own, as 10 different plugins would be. Ready is the moment the server logs
//! "ready: every binding loaded", which is when `/readyz` turns 200.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `CORBEL_BIN` | `target/release/corbel` | the binary to start |
//! | `CORBEL_BENCH_PLUGIN` | `target/wasm32-wasip2/plugin/require_labels.wasm` | the component copied 10 times |
//! | `CORBEL_BENCH_RUNS` | 5 | runs of each of cold and warm |

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PLUGINS: usize = 10;
const TARGET_WARM_MS: f64 = 200.0;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A component with a custom section appended: same behaviour, its own digest.
fn variant(component: &[u8], i: usize) -> Vec<u8> {
    let name = format!("corbel-bench-{i}");
    let payload = b"distinct";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name.as_bytes());
    section.extend_from_slice(payload);
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section id
    bytes.push(section.len() as u8); // fits in one LEB128 byte
    bytes.extend_from_slice(&section);
    bytes
}

/// Starts the server, waits for ready, stops it; returns (wall ms to ready, the server's own
/// loading ms, how many plugins came from the cache).
fn start_once(bin: &Path, dir: &Path) -> (f64, f64, usize) {
    let log = dir.join("server.log");
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("corbel.yaml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("failed to start corbel");
    let (wall, text) = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ready: every binding loaded") {
            break (started.elapsed(), text);
        }
        if text.contains("not ready") || started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the server did not become ready:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let _ = child.kill();
    let _ = child.wait();
    let loading = text
        .lines()
        .find(|l| l.contains("ready: every binding loaded"))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let cached = text.matches("compiled=Cached").count();
    (wall.as_secs_f64() * 1000.0, loading, cached)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let bin = std::env::var_os("CORBEL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/corbel"));
    let plugin = std::env::var_os("CORBEL_BENCH_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/wasm32-wasip2/plugin/require_labels.wasm"));
    for (path, how) in [
        (&bin, "cargo build --release -p corbel"),
        (&plugin, "cargo xtask plugins"),
    ] {
        if !path.exists() {
            eprintln!("{} is missing: run `{how}` first", path.display());
            std::process::exit(1);
        }
    }
    let runs: usize = std::env::var("CORBEL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let component = std::fs::read(&plugin).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bindings = String::new();
    for i in 0..PLUGINS {
        let file = dir.path().join(format!("plugin-{i}.wasm"));
        std::fs::write(&file, variant(&component, i)).unwrap();
        bindings.push_str(&format!(
            "  - name: policy-{i}\n    plugin: {}\n    mode: validate\n    settings: {{labels: [team]}}\n",
            file.display()
        ));
    }
    std::fs::write(
        dir.path().join("corbel.yaml"),
        format!("tls:\n  development:\n    dir: tls\nregistry:\n  cacheDir: cache\nbindings:\n{bindings}"),
    )
    .unwrap();

    // A first start creates the development CA and certificate, which later starts reuse.
    start_once(&bin, dir.path());
    let (mut cold, mut cold_loading, mut warm, mut warm_loading) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
        let (wall, loading, cached) = start_once(&bin, dir.path());
        assert_eq!(cached, 0, "a cold start compiles everything");
        cold.push(wall);
        cold_loading.push(loading);
        let (wall, loading, cached) = start_once(&bin, dir.path());
        assert_eq!(
            cached, PLUGINS,
            "a warm start loads every plugin from the cache"
        );
        warm.push(wall);
        warm_loading.push(loading);
    }
    println!(
        "corbel serve, {PLUGINS} plugins ({} KiB component each), median of {runs} runs:",
        component.len() / 1024
    );
    println!(
        "  cold (compile):        start to ready {:7.1} ms   (loading {:7.1} ms)",
        median(cold.clone()),
        median(cold_loading)
    );
    println!(
        "  warm (cached compile): start to ready {:7.1} ms   (loading {:7.1} ms)",
        median(warm.clone()),
        median(warm_loading)
    );
    println!(
        "  all runs, ms: cold {:?}; warm {:?}",
        cold.iter().map(|v| v.round()).collect::<Vec<_>>(),
        warm.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    let warm = median(warm);
    println!(
        "  target warm < {TARGET_WARM_MS} ms: {}",
        if warm < TARGET_WARM_MS {
            "met"
        } else {
            "NOT met"
        }
    );
}
