//! The `corbel` command line.

mod audit;
mod cases;
mod kubernetes;
mod new;
mod plugin;
mod record;
mod shadow;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::admission::bindings::BindingSet;
use crate::admission::{self, Binding, Mode};
use crate::api::{self, AppState};
use crate::config::{Config, RegistryConfig, parse_quantity};
use crate::registry::plugins::Loader;
use crate::runtime::{Limits, Runtime, RuntimeConfig, inspect};
use crate::telemetry::{LogFormat, init_logging};
use crate::tls;

#[derive(Debug, Parser)]
#[command(
    name = "corbel",
    version,
    about = "Kubernetes admission webhooks whose decisions come from sandboxed WebAssembly components"
)]
struct Cli {
    /// Log output format (logs go to standard error; filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the admission webhooks of a configuration over HTTPS.
    ///
    /// Each binding answers at POST /validate/{name} or POST /mutate/{name}; /healthz, /readyz and
    /// /metrics are served beside them.
    Serve {
        /// The configuration file (YAML or JSON); see docs/configuration.md.
        #[arg(long, short)]
        config: PathBuf,
        /// Override the configuration's listen address, e.g. 127.0.0.1:0 for any free port.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Write the actual listen address to this file once serving (useful with port 0).
        #[arg(long)]
        address_file: Option<PathBuf>,
    },
    /// Audit the objects that exist once: evaluate each object the bindings' rules admit (as a
    /// dry-run CREATE, through the same path as `corbel serve`'s background audit) and print a
    /// table of resource, binding, result and message, with a summary (docs/audit.md).
    ///
    /// Audits the bindings with `audit:` in the configuration, or those named with --binding,
    /// against a kubeconfig or the embedded API of a running `corbel serve`. Writes no reports.
    /// Exits non-zero when any object fails or cannot be evaluated, or a kind cannot be listed.
    Audit(audit::AuditArgs),
    /// Evaluate one AdmissionReview offline, through the same code as the server, and print the
    /// AdmissionReview response on standard output.
    ///
    /// Exits 0 when the plugin evaluated the request, whatever its verdict; non-zero with a message
    /// on standard error when it could not (bad input, plugin failure).
    ///
    /// The compiled component is kept in the plugin cache ($XDG_CACHE_HOME/corbel, else
    /// ~/.cache/corbel), so a large component compiles once.
    Eval {
        /// The plugin component (.wasm).
        #[arg(long)]
        plugin: PathBuf,
        /// Settings as JSON, or @FILE to read them (YAML or JSON) from a file.
        #[arg(long, default_value = "{}")]
        settings: String,
        #[arg(long, value_enum, default_value_t = Mode::Validate)]
        mode: Mode,
        /// The AdmissionReview file, or - for standard input.
        #[arg(long)]
        request: String,
        /// Time limit of the evaluation, e.g. 2s or 500ms.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Memory limit of the sandbox, e.g. 64Mi.
        #[arg(long, default_value = "64Mi", value_parser = parse_quantity)]
        memory_limit: usize,
        /// Also print, on standard error, the checks the plugin made and its log lines ("why
        /// denied", docs/trace.md).
        #[arg(long)]
        trace: bool,
    },
    /// Publish, sign, install, list, remove and inspect plugins in OCI registries (docs/registry.md).
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Run a folder of admission test cases against a plugin and report each as passed or failed.
    ///
    /// DIR holds one case per *.yaml file (an AdmissionReview, settings, the expected verdict,
    /// message pattern and patch) and optionally corbel-test.yaml with the plugin and defaults;
    /// see docs/testing.md. Exits non-zero when any case fails.
    ///
    /// The compiled component is kept in the plugin cache ($XDG_CACHE_HOME/corbel, else
    /// ~/.cache/corbel), so a large component compiles once.
    Test {
        /// The folder of cases.
        dir: PathBuf,
        /// The plugin component (.wasm); overrides `plugin:` in DIR/corbel-test.yaml.
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Run only the cases whose file name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Evaluate a file of AdmissionReviews with a plugin and write each request with its verdict
    /// as a `corbel test` case, Secret data and --redact pointers redacted (docs/record-replay.md).
    ///
    /// A binding with `record: {dir: ...}` does the same with live requests. Replay the folder
    /// against another version with `corbel test DIR --plugin OTHER.wasm`.
    Record(record::RecordArgs),
    /// Scaffold a policy in a language of your choice that builds (./build.sh) and passes its own
    /// cases (corbel test NAME/tests) out of the box.
    New {
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// The new policy's folder; its last component names the policy.
        name: PathBuf,
        /// Corbel's sdk/ folder to build against (default: $CORBEL_SDK, else found beside this binary).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Read what a running server's shadow candidates made of live requests (docs/shadow.md).
    Shadow {
        #[command(subcommand)]
        command: shadow::ShadowCommand,
    },
    /// Print the webhook configurations and RBAC a cluster needs for a configuration
    /// (docs/kubernetes.md).
    Kubernetes {
        #[command(subcommand)]
        command: kubernetes::KubernetesCommand,
    },
    /// Show a component's Corbel WIT version, world, imports and exports.
    Inspect {
        /// The component (.wasm).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print an Envoy bootstrap (JSON) for one node group served by `corbel serve`'s xDS server,
    /// so that starting a gateway instance is `envoy -c bootstrap.json` (docs/xds.md).
    XdsBootstrap {
        /// The node group: a Gateway's is `NAMESPACE/NAME` unless its spec.nodeGroup says otherwise.
        #[arg(long)]
        group: String,
        /// The xDS server's address (the configuration's `xds.listen`).
        #[arg(long, default_value = "127.0.0.1:18000")]
        xds: std::net::SocketAddr,
        /// This instance's node id; default: the group and the host name.
        #[arg(long)]
        node: Option<String>,
        /// Port of Envoy's admin interface, on 127.0.0.1.
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                listen,
                address_file,
            } => serve(config, listen, address_file).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Eval {
                plugin,
                settings,
                mode,
                request,
                timeout,
                memory_limit,
                trace,
            } => {
                eval(
                    plugin,
                    settings,
                    mode,
                    request,
                    Limits {
                        timeout,
                        memory: memory_limit,
                    },
                    trace,
                )
                .await
            }
            Command::Test {
                dir,
                plugin,
                filter,
            } => cases::run(&dir, plugin, filter.as_deref()).await,
            Command::Record(args) => record::run(args).await,
            Command::New { lang, name, sdk } => new::run(lang, &name, sdk),
            Command::Inspect { file, json } => inspect(file, json),
            Command::Plugin { command } => plugin::run(command).await,
            Command::Shadow { command } => shadow::run(command).await,
            Command::Kubernetes { command } => kubernetes::run(command).await,
            Command::XdsBootstrap {
                group,
                xds,
                node,
                admin_port,
            } => {
                let node = node.unwrap_or_else(|| {
                    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "envoy".into());
                    format!("{group}/{host}")
                });
                let bootstrap = crate::xds::bootstrap(&group, &node, xds, admin_port);
                println!("{}", serde_json::to_string_pretty(&bootstrap)?);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config_path: PathBuf,
    listen: Option<std::net::SocketAddr>,
    address_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = Config::load(&config_path)?;
    for binding in &config.bindings {
        corbel_audit::check(binding)?;
    }
    for binding in config.rules_not_applied() {
        tracing::warn!(
            binding,
            "binding's rules and selectors do not filter what Corbel admits without `embedded`: the API server applies the webhook configuration registered there (`corbel kubernetes webhooks -c {}` prints the one to apply); they only pick the objects of the binding's background audit, when it has `audit:`",
            config_path.display()
        );
    }
    let files = match (
        &config.tls.development,
        &config.tls.cert_file,
        &config.tls.key_file,
    ) {
        (Some(dev), _, _) => {
            let dev = tls::development_certificates(&dev.dir, &dev.hosts)?;
            tracing::info!(ca = %dev.ca.display(), "development TLS: put this CA into caBundle (base64 -w0 {})", dev.ca.display());
            dev.files
        }
        (None, Some(cert), Some(key)) => tls::CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => unreachable!("Config::load checks the TLS settings"),
    };
    let (tls_config, current) = tls::server_config(&files)?;
    if config.tls.development.is_none() {
        tokio::spawn(tls::reload_on_change(
            files,
            current,
            config.tls.reload_interval,
        ));
    }

    let runtime = Arc::new(Runtime::new(&runtime_config(&config))?);
    let loader = plugin_loader(&config);
    let state = AppState::loading();
    state.health.expect_controllers(config.controllers.len());
    let mut router = api::router(state.clone(), config.max_body_size);
    // The identity the host's own controllers use against the embedded API, in process.
    let host_token = crate::auth::generate_token();
    let mut controller_client = None;

    let addr = listen.unwrap_or(config.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    let local = listener.local_addr()?;
    if let Some(embedded) = &config.embedded {
        let ca = config
            .tls
            .development
            .as_ref()
            .map(|dev| dev.dir.join("ca.crt"));
        let kube = embedded_api(
            &config,
            embedded,
            state.bindings.clone(),
            state.health.clone(),
            local,
            ca.as_deref(),
            &host_token,
        )
        .await?;
        controller_client = Some(in_process_client(kube.clone(), &host_token)?);
        router = router.merge(kube);
    } else if !config.controllers.is_empty() || config.kubernetes.is_some() {
        controller_client = Some(kubernetes_client(config.kubernetes.as_ref()).await?);
    }
    if let Some(file) = &address_file {
        std::fs::write(file, local.to_string())
            .with_context(|| format!("failed to write {}", file.display()))?;
    }
    tracing::info!(address = %local, bindings = config.bindings.len(), "serving HTTPS; loading bindings");

    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(
        config_path.clone(),
        state.clone(),
        runtime.clone(),
    ));
    let loader = {
        let (state, runtime, bindings) = (state.clone(), runtime.clone(), config.bindings.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let set = BindingSet::load_with(&runtime, &bindings, loader).await;
            let ready = set.is_ready();
            state.bindings.store(Arc::new(Some(set)));
            if ready {
                tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ready: every binding loaded"
                );
            } else {
                tracing::error!("not ready: some bindings failed to load (GET /readyz says why)");
            }
        })
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let plugin_kind = controller_client.clone().map(|client| {
        tokio::spawn(crate::reconcile::plugin_kind::run(
            client,
            state.bindings.clone(),
            state.health.clone(),
            runtime.clone(),
            config.registry.settings(),
            // The host owns the Plugin kind: in embedded mode it serves it from the start.
            config.embedded.is_some(),
            // With several replicas one writes the Plugins' status: the Lease's holder.
            config.leader_election(),
            stopped.clone(),
        ))
    });
    let xds = match (&config.xds, controller_client.clone()) {
        (Some(xds), Some(client)) => Some(
            crate::xds::start(
                client,
                xds.listen,
                config.embedded.is_some(),
                stopped.clone(),
            )
            .await?,
        ),
        (Some(_), None) => anyhow::bail!(
            "xds: needs an API to read XdsSnapshots from: set `embedded:` or `kubernetes:`"
        ),
        _ => None,
    };
    if controller_client.is_none() && config.bindings.iter().any(|b| b.audit.is_some()) {
        anyhow::bail!(
            "audit: needs an API to list objects from: set `embedded:`, or `kubernetes:` (`kubernetes: {{}}` in a cluster)"
        );
    }
    let audit = controller_client
        .clone()
        .filter(|_| config.bindings.iter().any(|b| b.audit.is_some()))
        .map(|client| {
            start_audit(
                client,
                &config,
                state.bindings.clone(),
                state.health.clone(),
                stopped.clone(),
            )
        });
    let controllers = controller_client
        .filter(|_| !config.controllers.is_empty())
        .map(|client| {
            tokio::spawn(crate::reconcile::serve(
                runtime.clone(),
                config.controllers.clone(),
                client,
                config.leader_election(),
                state.health.clone(),
                stopped.clone(),
                plugin_loader(&config),
            ))
        });
    let mut server_stop = stopped.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    api::serve(
        listener,
        tls_config,
        router,
        async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        },
        config.shutdown_grace_period,
        config.connections.clone(),
    )
    .await?;
    loader.abort();
    if let Some(audit) = audit {
        let _ = tokio::time::timeout(config.shutdown_grace_period, audit).await;
    }
    if let Some(xds) = xds {
        let _ = tokio::time::timeout(config.shutdown_grace_period, xds).await;
    }
    if let Some(plugin_kind) = plugin_kind {
        let _ = tokio::time::timeout(config.shutdown_grace_period, plugin_kind).await;
    }
    if let Some(controllers) = controllers {
        // Reconciles in flight finish (and a held Lease is released) within the grace period.
        if tokio::time::timeout(config.shutdown_grace_period, controllers)
            .await
            .is_err()
        {
            tracing::warn!("controllers did not stop within the grace period");
        }
    }
    Ok(())
}

/// Starts the background audit of the bindings with `audit:` (docs/audit.md). In Kubernetes mode
/// with leader election only the leader audits, under its own Lease (`{leaseName}-audit`), so
/// that replicas do not evaluate the same objects and write the same reports.
fn start_audit(
    client: kube::Client,
    config: &Config,
    bindings: Arc<crate::admission::bindings::SharedBindings>,
    health: Arc<crate::telemetry::Health>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let room = corbel_audit::Room {
        client: client.clone(),
        bindings,
        configs: config.bindings.clone(),
        health: health.clone(),
        install_crds: config.embedded.is_some(),
    };
    match config.leader_election() {
        // The audit evaluates on the background thread, below admission's CPU priority; the
        // Lease's renewals stay on the server's runtime.
        None => tokio::spawn(crate::admission::background::run(room.run(stop))),
        Some(mut election) => {
            election.lease_name = format!("{}-audit", election.lease_name);
            let identity = election
                .identity
                .clone()
                .or_else(|| std::env::var("POD_NAME").ok())
                .unwrap_or_else(|| {
                    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "corbel".into());
                    format!("{host}-{}", std::process::id())
                });
            let elector = crate::reconcile::leader::Elector::new(client, &election, identity);
            tokio::spawn(async move {
                crate::reconcile::leader::run(elector, election, &health, stop, move |stop| {
                    crate::admission::background::run(room.clone().run(stop))
                })
                .await
            })
        }
    }
}

/// The engine settings for a configuration: `serve` and `plugin install` use the same, so that
/// compiled artifacts cached by one are found by the other.
pub(crate) fn runtime_config(config: &Config) -> RuntimeConfig {
    let mut runtime = runtime_config_for(&config.bindings, config.max_instances);
    let controllers = config.controllers.iter().map(|c| c.memory_limit).max();
    runtime.max_memory = runtime.max_memory.max(controllers.unwrap_or(0));
    runtime
}

pub(crate) fn runtime_config_for(
    bindings: &[crate::config::BindingConfig],
    max_instances: u32,
) -> RuntimeConfig {
    let max_memory = bindings
        .iter()
        .map(|b| b.memory_limit)
        .max()
        .unwrap_or(0)
        .max(RuntimeConfig::default().max_memory);
    RuntimeConfig {
        max_instances,
        max_memory,
    }
}

/// Reads plugins through the configuration's cache and lock file; without a usable cache,
/// file bindings still load (compiled every start) and `oci://` bindings report why not.
fn plugin_loader(config: &Config) -> Arc<crate::registry::plugins::Loader> {
    use crate::registry::plugins::Loader;
    let registry = &config.registry;
    let settings = crate::registry::plugins::Settings {
        cache_dir: registry.cache_dir(),
        lock_file: registry
            .lock_file
            .clone()
            .unwrap_or_else(|| "corbel.lock".into()),
        trusted_keys: Vec::new(),
        allow_unsigned: Vec::new(),
        options: Default::default(),
    };
    match Loader::open(&settings) {
        Ok(loader) => Arc::new(loader),
        Err(e) => {
            tracing::warn!(error = %e, "plugin cache or lock file unusable: compiling every plugin at start");
            Arc::new(Loader::uncached())
        }
    }
}

/// On SIGHUP, reads the configuration again and hot-swaps the bindings: new versions are loaded
/// off the request path and swapped in only if they load; requests in flight finish on the
/// version they started with. Other settings (listen, TLS, limits of the engine) need a restart.
#[cfg(unix)]
async fn reload_on_hangup(config_path: PathBuf, state: Arc<AppState>, runtime: Arc<Runtime>) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("cannot listen for SIGHUP: configuration reload is off");
        return;
    };
    while hangup.recv().await.is_some() {
        let config = match Config::load(&config_path) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGHUP: the configuration does not load; the current bindings keep serving");
                continue;
            }
        };
        if state.bindings.load().is_none() {
            tracing::warn!("SIGHUP: bindings are still loading; send it again once ready");
            continue;
        }
        let started = std::time::Instant::now();
        let report = BindingSet::reload(
            &state.bindings,
            &runtime,
            &config.bindings,
            plugin_loader(&config),
        )
        .await;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            swapped = report.swapped.len(),
            kept = report.kept.len(),
            "SIGHUP: configuration reloaded"
        );
    }
}

/// A client for the embedded API that calls its router in process: no TLS, no socket, and the
/// host's own bearer token on every request.
fn in_process_client(router: axum::Router, token: &str) -> anyhow::Result<kube::Client> {
    let authorization = http::HeaderValue::from_str(&format!("Bearer {token}"))?;
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut request: http::Request<kube::client::Body>| {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, authorization.clone());
            request
        })
        .service(router);
    Ok(kube::Client::new(service, "default"))
}

/// A client for a Kubernetes API server: the configured kubeconfig, else in-cluster, else
/// `$KUBECONFIG` or `~/.kube/config`.
async fn kubernetes_client(
    config: Option<&crate::config::KubernetesConfig>,
) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context: config.and_then(|c| c.context.clone()),
        ..Default::default()
    };
    let client_config = match config.and_then(|c| c.kubeconfig.as_ref()) {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("failed to read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("the kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no Kubernetes API to reconcile against: not in a cluster and no kubeconfig found (set kubernetes.kubeconfig, or use `embedded`)",
        )?,
    };
    kube::Client::try_from(client_config).context("failed to create the Kubernetes client")
}

/// Opens the embedded store and serves the Kubernetes-shaped API over it; writes a kubeconfig.
async fn embedded_api(
    config: &Config,
    embedded: &crate::config::EmbeddedConfig,
    bindings: Arc<crate::admission::bindings::SharedBindings>,
    health: Arc<crate::telemetry::Health>,
    address: std::net::SocketAddr,
    ca: Option<&std::path::Path>,
    host_token: &str,
) -> anyhow::Result<axum::Router> {
    use crate::auth::{Authenticator, Authorizer, development_admin};
    use crate::kubeapi::{InlineBinding, KubeApi};

    let dir = embedded.data_dir();
    let store = crate::store::Store::open(&dir.join("store"))
        .with_context(|| format!("failed to open the store in {}", dir.display()))?;
    let mut bootstrap = Vec::new();
    let mut rules = config.auth.rules.clone();
    let admin = if embedded.development_admin {
        let admin = development_admin(&dir)?;
        bootstrap.push((admin.token.clone(), admin.user.clone()));
        rules.push(admin.rule.clone());
        Some(admin)
    } else {
        None
    };
    let host = crate::auth::host_identity();
    bootstrap.push((host_token.to_owned(), host.0));
    rules.push(host.1);
    let authenticator = Authenticator::new(&config.auth, bootstrap).await?;
    let inline = config
        .bindings
        .iter()
        .filter_map(|b| InlineBinding::from_config(b).transpose())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let api = KubeApi::new(
        store,
        authenticator,
        Authorizer::new(rules),
        bindings,
        inline,
        Some(health),
    )
    .await?;

    let kubeconfig = embedded
        .kubeconfig
        .clone()
        .unwrap_or_else(|| dir.join("kubeconfig"));
    let host = if address.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    write_kubeconfig(
        &kubeconfig,
        &format!("https://{host}"),
        ca,
        admin.as_ref().map(|a| a.token.as_str()),
    )?;
    match &admin {
        Some(admin) => tracing::info!(
            kubeconfig = %kubeconfig.display(),
            admin_token = %admin.token_file.display(),
            "embedded API ready: kubectl --kubeconfig {} get namespaces",
            kubeconfig.display()
        ),
        None => {
            tracing::info!(kubeconfig = %kubeconfig.display(), "embedded API ready (add your token to the kubeconfig)")
        }
    }
    Ok(crate::kubeapi::router(api)
        .layer(axum::extract::DefaultBodyLimit::max(config.max_body_size)))
}

/// A kubeconfig with one cluster, one user and one context, as k3s writes it. Readable by its owner
/// only: it holds a token.
fn write_kubeconfig(
    path: &std::path::Path,
    server: &str,
    ca: Option<&std::path::Path>,
    token: Option<&str>,
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let mut cluster = serde_json::json!({"server": server});
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("failed to read {}", ca.display()))?;
        cluster["certificate-authority-data"] =
            base64::engine::general_purpose::STANDARD.encode(pem).into();
    }
    let user = match token {
        Some(token) => serde_json::json!({"token": token}),
        None => serde_json::json!({}),
    };
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "corbel", "cluster": cluster}],
        "users": [{"name": "corbel-admin", "user": user}],
        "contexts": [{"name": "corbel", "context": {"cluster": "corbel", "user": "corbel-admin", "namespace": "default"}}],
        "current-context": "corbel",
        "preferences": {},
    });
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    let yaml = serde_yaml_ng::to_string(&config)?;
    crate::auth::write_private(path, yaml.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted"),
        () = terminate => tracing::info!("terminated"),
    }
}

async fn eval(
    plugin: PathBuf,
    settings: String,
    mode: Mode,
    request: String,
    limits: Limits,
    trace: bool,
) -> anyhow::Result<()> {
    let text = if request == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read the AdmissionReview from standard input")?;
        text
    } else {
        std::fs::read_to_string(&request)
            .with_context(|| format!("failed to read the AdmissionReview {request}"))?
    };
    let request = admission::parse_review(text.as_bytes())
        .with_context(|| format!("{request} is not an AdmissionReview Corbel reads"))?;
    let settings: serde_json::Value = match settings.strip_prefix('@') {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("failed to read settings file {file}"))?;
            serde_yaml_ng::from_str(&text)
                .with_context(|| format!("settings file {file} is not YAML or JSON"))?
        }
        None => serde_json::from_str(&settings)
            .context("--settings is not JSON (use @FILE to read a file)")?,
    };

    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        max_memory: limits.memory.max(64 << 20),
    })?;
    let loaded = Loader::for_files(&RegistryConfig::default().cache_dir())
        .load(&runtime, &plugin)
        .map_err(|e| anyhow::anyhow!("failed to load {}: {e}", plugin.display()))?;
    let spec = admission::Spec {
        limits,
        ..admission::Spec::new("eval", &settings, mode)
    };
    let binding = Binding::new(Arc::new(loaded), spec).await?;
    let verdict = if trace {
        let (result, collected) = admission::trace::evaluate_traced(&binding, &request).await;
        record::print_trace(&binding, result.as_ref(), &collected);
        result
    } else {
        admission::evaluate(&binding, &request).await
    }
    .map_err(|e| anyhow::anyhow!("plugin {} {e}", binding.plugin.name()))?;
    let response = admission::respond(&request, verdict);
    let review: serde_json::Value = serde_json::from_slice(&admission::review_json(response))?;
    println!("{}", serde_json::to_string_pretty(&review)?);
    Ok(())
}

fn inspect(file: PathBuf, json: bool) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&file).with_context(|| format!("failed to read {}", file.display()))?;
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 1,
        max_memory: 64 << 20,
    })?;
    let component = runtime
        .compile(&bytes)
        .with_context(|| format!("failed to load {}", file.display()))?;
    let description = inspect::describe(runtime.engine(), &component);
    if json {
        println!("{}", serde_json::to_string_pretty(&description)?);
        return Ok(());
    }
    println!("file:     {} ({} bytes)", file.display(), bytes.len());
    plugin::print_description(&description);
    Ok(())
}
