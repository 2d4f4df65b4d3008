//! `cargo xtask startup-order`: writes `host/link/startup-order.txt`, the functions the `corbel`
//! binary runs from its start to answering webhook requests, which `host/build.rs` hands to the
//! linker (`--symbol-ordering-file`) so that they sit next to each other in the binary.
//!
//! Why: on a page fault in a file mapping the kernel maps the cached pages around it too
//! (fault-around, 64 KiB), so a start that runs 2.5 MB of code spread over the 36 MiB `.text`
//! made 18 MiB of it resident: most of the webhook's peak RSS (docs/benchmarks.md, issue 17).
//! With those functions together, 4 MiB.
//!
//! How: the release binary runs under valgrind's callgrind with one policy, answers a few requests
//! (health, readiness, metrics, an admitted and a denied review), and every function callgrind saw
//! run that the binary defines (by `nm`) is written, one mangled name per line. Sampling profilers
//! (`perf`) miss the many functions a start runs once for a microsecond; callgrind sees each.
//!
//! The names carry each crate's disambiguator, which changes with its dependencies' versions and
//! the compiler: after such an update, run this again (`--check` says how many names the current
//! binary still has). Names the binary lacks are skipped by the linker; a stale file costs memory,
//! never correctness.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{build_plugin, ensure_target, root};

/// The file `host/build.rs` passes to the linker.
const ORDER_FILE: &str = "host/link/startup-order.txt";
/// Where the run keeps its configuration, TLS, log and callgrind output.
const WORK_DIR: &str = "target/startup-order";
/// A port of its own, so that a running `cargo xtask run` (8443) is left alone.
const PORT: u16 = 18447;

pub fn startup_order(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        None => write(),
        Some("--check") => check().map(|line| println!("{line}")),
        Some(other) => Err(format!(
            "unknown argument {other:?}: `cargo xtask startup-order` rewrites {ORDER_FILE}, \
             `cargo xtask startup-order --check` counts how many of its names target/release/corbel has"
        )),
    }
}

/// How many of the order file's names the built binary defines, as a line to print.
pub fn check() -> Result<String, String> {
    let wanted = read_order_file()?;
    let binary = root().join("target/release/corbel");
    if !binary.exists() {
        return Err("target/release/corbel is not built: cargo build --release -p corbel".into());
    }
    let defined = text_symbols(&binary)?;
    let present = wanted.iter().filter(|s| defined.contains(*s)).count();
    let share = if wanted.is_empty() {
        0.0
    } else {
        present as f64 * 100.0 / wanted.len() as f64
    };
    let mut line = format!(
        "{ORDER_FILE}: {present} of {} functions are in target/release/corbel ({share:.0}%)",
        wanted.len()
    );
    if share < 80.0 {
        line.push_str(
            "; the file is stale (dependencies or the compiler changed): cargo xtask startup-order",
        );
    }
    Ok(line)
}

fn write() -> Result<(), String> {
    for (tool, args, package) in [
        ("valgrind", "--version", "valgrind"),
        ("nm", "--version", "binutils"),
        ("curl", "--version", "curl"),
    ] {
        let found = Command::new(tool)
            .arg(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "`{tool}` is needed to record the start-up functions: install it \
                 (Debian: apt install {package})"
            ));
        }
    }
    ensure_target()?;
    build_plugin("require-labels")?;
    crate::host()?;

    let work = root().join(WORK_DIR);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {WORK_DIR}: {e}"))?;
    let plugin = root().join("target/wasm32-wasip2/plugin/require_labels.wasm");
    // One sandbox slot: the pool's address-space reservation must fit under valgrind.
    let config = format!(
        "maxInstances: 1\ntls:\n  development:\n    dir: tls\nbindings:\n\
         - name: require-labels\n  plugin: {}\n  mode: validate\n  settings: {{\"labels\": [\"team\"]}}\n",
        plugin.display()
    );
    std::fs::write(work.join("corbel.yaml"), config)
        .map_err(|e| format!("writing {WORK_DIR}/corbel.yaml: {e}"))?;

    // A first start outside valgrind compiles the plugin into the cache, as a deployed webhook
    // starts with a warm cache; the recorded run then loads it as production does.
    eprintln!("==> warming the compiled-plugin cache");
    let mut warm = serve(&work, Command::new(root().join("target/release/corbel")))?;
    let warmed = wait_ready(&work, &mut warm, Duration::from_secs(300));
    stop(&mut warm);
    warmed?;

    eprintln!(
        "==> recording the functions of a start and of webhook requests (valgrind callgrind)"
    );
    let mut valgrind = Command::new("valgrind");
    valgrind.args([
        "--tool=callgrind",
        "--demangle=no",
        "--smc-check=all-non-file",
        "--callgrind-out-file=callgrind.out",
    ]);
    valgrind.arg(root().join("target/release/corbel"));
    let mut child = serve(&work, valgrind)?;
    let requests =
        wait_ready(&work, &mut child, Duration::from_secs(300)).and_then(|()| exercise());
    stop(&mut child);
    requests?;

    let seen = callgrind_functions(&work.join("callgrind.out"))?;
    let defined = text_symbols(&root().join("target/release/corbel"))?;
    let order: BTreeSet<&String> = seen.iter().filter(|s| defined.contains(*s)).collect();
    if order.len() < 1000 {
        return Err(format!(
            "only {} functions were recorded: the run did not get far (see {WORK_DIR}/serve.log)",
            order.len()
        ));
    }
    let mut text = String::from(
        "# The functions `corbel serve` runs from its start to answering webhook requests, which\n\
         # host/build.rs hands to the linker (--symbol-ordering-file) so that they are placed\n\
         # together: written by `cargo xtask startup-order` (xtask/src/startup_order.rs says why).\n",
    );
    for name in &order {
        text.push_str(name);
        text.push('\n');
    }
    let path = root().join(ORDER_FILE);
    std::fs::create_dir_all(path.parent().expect("a folder"))
        .map_err(|e| format!("creating host/link: {e}"))?;
    std::fs::write(&path, text).map_err(|e| format!("writing {ORDER_FILE}: {e}"))?;
    eprintln!(
        "==> wrote {ORDER_FILE}: {} functions; `cargo build --release -p corbel` links with it",
        order.len()
    );
    Ok(())
}

/// Starts `command` (the binary, or valgrind in front of it) as `serve` in `work`.
fn serve(work: &Path, mut command: Command) -> Result<Child, String> {
    let log = std::fs::File::create(work.join("serve.log"))
        .map_err(|e| format!("creating {WORK_DIR}/serve.log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{PORT}"),
            "--config",
            "corbel.yaml",
        ])
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("starting corbel serve: {e}"))
}

/// Waits for the server's "ready" log line.
fn wait_ready(work: &Path, child: &mut Child, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(work.join("serve.log")).unwrap_or_default();
        if log.contains("ready: every binding loaded") {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "corbel serve exited ({status}) before it was ready; {WORK_DIR}/serve.log:\n{log}"
            ));
        }
        if started.elapsed() > limit {
            return Err(format!(
                "corbel serve was not ready after {limit:?}; see {WORK_DIR}/serve.log"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The requests whose code belongs with the start: what a webhook answers all day, over both
/// HTTP versions an API server may speak (curl alone would pick HTTP/2; load generators and many
/// API servers send HTTP/1.1), with objects small and Pod-sized.
fn exercise() -> Result<(), String> {
    let base = format!("https://127.0.0.1:{PORT}");
    let reviews = root().join("tests/data/reviews");
    for http in ["--http1.1", "--http2"] {
        for _ in 0..3 {
            for path in ["/healthz", "/readyz", "/metrics"] {
                curl(&[http, &format!("{base}{path}")])?;
            }
            for review in [
                "configmap-labelled.json",
                "configmap-unlabelled.json",
                "pod-labelled-3k.json",
            ] {
                let body = format!("@{}", reviews.join(review).display());
                curl(&[
                    http,
                    "-H",
                    "content-type: application/json",
                    "--data-binary",
                    &body,
                    &format!("{base}/validate/require-labels"),
                ])?;
            }
        }
    }
    Ok(())
}

fn curl(args: &[&str]) -> Result<(), String> {
    let out = Command::new("curl")
        .args([
            "-sSk",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let code = String::from_utf8_lossy(&out.stdout);
    if code.trim() == "200" {
        Ok(())
    } else {
        Err(format!(
            "curl {args:?} answered {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Interrupts the server (callgrind writes its output on the way out) and waits for it.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Every function name in a callgrind output (`fn=(id) name` and `cfn=(id) name` lines; later
/// mentions of a function give only its id).
fn callgrind_functions(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading {}: {e} (did valgrind run?)", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("fn=(").or_else(|| l.strip_prefix("cfn=(")))
        .filter_map(|rest| {
            rest.split_once(") ")
                .map(|(_, name)| name.trim().to_owned())
        })
        .collect())
}

/// The function symbols a binary defines, by `nm`.
fn text_symbols(binary: &Path) -> Result<BTreeSet<String>, String> {
    let out = Command::new("nm")
        .args(["--defined-only"])
        .arg(binary)
        .output()
        .map_err(|e| format!("nm: {e} (Debian: apt install binutils)"))?;
    if !out.status.success() {
        return Err(format!(
            "nm {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (_, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "t" | "T" | "w" | "W").then(|| name.to_owned())
        })
        .collect())
}

fn read_order_file() -> Result<Vec<String>, String> {
    let path: PathBuf = root().join(ORDER_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading {ORDER_FILE}: {e} (cargo xtask startup-order writes it)"))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}
