//! Corbel's build tasks. Each installs what it needs (the wasm32-wasip2 target) and is safe to
//! run again: cargo rebuilds only what changed, into the one shared `target/`.
//!
//! - `cargo xtask run`: build the plugins and the host, then serve the three first-party policies.
//! - `cargo xtask test`: build the plugins and the host, then run every test in the workspace.
//! - `cargo xtask plugins`: build every plugin component (`target/wasm32-wasip2/plugin/*.wasm`).
//! - `cargo xtask bench`: the admission benchmark (figures, not pass/fail).

mod languages;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Folders whose every crate is a plugin built as a component.
const PLUGIN_DIRS: &[&str] = &["plugins", "tests/plugins"];
/// Test fixtures use raw bindings whose exports are not valid native symbols: never built natively.
const WASM_ONLY_DIR: &str = "tests/plugins";
const TARGET: &str = "wasm32-wasip2";

/// Package names of the crates directly under `dir` (relative to the workspace root).
fn crates_in(dir: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(root().join(dir)).map_err(|e| format!("failed to list {dir}: {e}"))?;
    for entry in entries.flatten() {
        let Ok(manifest) = std::fs::read_to_string(entry.path().join("Cargo.toml")) else {
            continue;
        };
        let name = manifest
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("name = ")
                    .map(|n| n.trim_matches('"').to_owned())
            })
            .ok_or_else(|| {
                format!(
                    "{} has no package name",
                    entry.path().join("Cargo.toml").display()
                )
            })?;
        names.push(name);
    }
    names.sort();
    Ok(names)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("plugins") => plugins(),
        Some("bench") => bench(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{}", HELP.trim());
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{}", HELP.trim())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const HELP: &str = "
usage: cargo xtask <task> [args]

tasks:
  run      build the plugins and the host, then serve deploy/local/corbel.yaml (Ctrl-C stops)
  test     build the plugins and the host, then run every test (extra args go to cargo test)
  plugins  build every plugin component (Rust, JavaScript, Python, C) into target/wasm32-wasip2/plugin/
  bench    run the admission benchmark (cargo bench -p corbel --bench admission)
";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn step(what: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("==> {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("failed to start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Installs the wasm32-wasip2 target when rustup does not have it yet.
fn ensure_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup is needed to add the {TARGET} target: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    step(
        &format!("installing the {TARGET} target"),
        Command::new("rustup").args(["target", "add", TARGET]),
    )
}

fn plugins() -> Result<(), String> {
    ensure_target()?;
    // One cargo run per plugin: a controller turns on the SDK's `controller` feature, and cargo
    // would otherwise unify it into every policy built in the same run.
    for dir in PLUGIN_DIRS {
        for name in crates_in(dir)? {
            step(
                &format!("building plugin {name} (target/{TARGET}/plugin/)"),
                cargo().args([
                    "build",
                    "--target",
                    TARGET,
                    "--profile",
                    "plugin",
                    "-p",
                    &name,
                ]),
            )?;
        }
    }
    // JavaScript, Python and C plugins (plugins/*-js, *-py, *-c), toolchains installed once.
    languages::build_all()
}

fn host() -> Result<(), String> {
    step(
        "building the host (target/release/corbel)",
        cargo().args(["build", "--release", "-p", "corbel"]),
    )
}

fn run(extra: &[String]) -> Result<(), String> {
    plugins()?;
    ensure_garage()?;
    host()?;
    let config = root().join("deploy/local/corbel.yaml");
    let ca = root().join("target/corbel-dev/tls/ca.crt");
    let kubeconfig = root().join("target/corbel-dev/data/kubeconfig");
    eprintln!(
        "
==> serving on https://127.0.0.1:8443: the embedded Kubernetes-shaped API and three policies (Ctrl-C stops)

  From another terminal, as a Kubernetes user:
    kubectl --kubeconfig {kubeconfig} get namespaces
    kubectl --kubeconfig {kubeconfig} apply -f deploy/local/examples/configmap-unlabelled.yaml   # denied by require-labels
    kubectl --kubeconfig {kubeconfig} apply -f deploy/local/examples/configmap-labelled.yaml     # admitted, labels added
    kubectl --kubeconfig {kubeconfig} get configmap settings -o yaml

  As the Kubernetes API server calls the webhooks:
    curl --cacert {ca} -H 'content-type: application/json' \\
         --data @tests/data/reviews/pod-privileged.json https://127.0.0.1:8443/validate/pod-security
    curl --cacert {ca} https://127.0.0.1:8443/readyz
",
        ca = ca.display(),
        kubeconfig = kubeconfig.display()
    );
    let mut cmd = Command::new(root().join("target/release/corbel"));
    cmd.current_dir(root())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(extra);
    step("corbel serve", &mut cmd)
}

fn test(extra: &[String]) -> Result<(), String> {
    plugins()?;
    languages::sdk_tests()?;
    oidc_provider()?;
    registry_servers()?;
    ensure_garage()?;
    host()?;
    let mut cmd = cargo();
    cmd.args(["test", "--release", "--workspace"]);
    for name in crates_in(WASM_ONLY_DIR)? {
        cmd.args(["--exclude", &name]);
    }
    cmd.args(extra);
    cmd.env("CORBEL_BIN", root().join("target/release/corbel"));
    cmd.env("CORBEL_PLUGINS", root().join("target/wasm32-wasip2/plugin"));
    step("running the test suite", &mut cmd)
}

/// Installs npm `oidc-provider` (pinned in tests/servers/oidc/package.json) for the host's OpenID
/// tests, when it is not installed yet.
fn oidc_provider() -> Result<(), String> {
    let dir = "tests/servers/oidc";
    if root().join(dir).join("node_modules/oidc-provider").is_dir() {
        return Ok(());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        return Err(format!(
            "npm is needed to install oidc-provider for the OpenID tests ({dir}); install Node.js 20 or later"
        ));
    }
    step(
        &format!("installing oidc-provider into {dir}/node_modules"),
        Command::new("npm").current_dir(root()).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            dir,
        ]),
    )
}

/// Installs the registry tests' servers from Debian (docker-registry, htpasswd, skopeo) when any
/// is missing; with sudo only when not root.
fn registry_servers() -> Result<(), String> {
    let missing = [
        ("docker-registry", "docker-registry"),
        ("htpasswd", "apache2-utils"),
        ("skopeo", "skopeo"),
    ]
    .iter()
    .any(|(tool, _)| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !missing {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    step(
        "apt-get update (for the registry test servers)",
        &mut apt(&["update", "-qq"]),
    )?;
    step(
        "installing docker-registry, apache2-utils and skopeo (registry tests)",
        &mut apt(&[
            "install",
            "-y",
            "docker-registry",
            "apache2-utils",
            "skopeo",
        ]),
    )
}

/// The Garage release the S3 tests are written against (shared/design/TEST-SERVERS.md).
const GARAGE_VERSION: &str = "2.5.0";

/// Installs Garage, the S3-compatible store the storage tests start, when `garage --version`
/// fails. It is built from source, so it is installed once per machine and reused; should it be
/// installed but off `PATH`, cargo finds that version in place and returns at once.
fn ensure_garage() -> Result<(), String> {
    let installed = Command::new("garage")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if installed {
        return Ok(());
    }
    step(
        &format!(
            "installing garage {GARAGE_VERSION} for the S3 tests (cargo install garage --locked): \
             this takes ~20 minutes, once per machine"
        ),
        cargo().args(["install", "garage", "--locked", "--version", GARAGE_VERSION]),
    )
}

fn bench(extra: &[String]) -> Result<(), String> {
    plugins()?;
    step(
        "admission benchmark",
        cargo()
            .args(["bench", "-p", "corbel", "--bench", "admission"])
            .args(extra),
    )
}
