//! The WebAssembly runtime: one wasmtime [`Engine`] with a pooling allocator and an epoch ticker,
//! the per-call [`Sandbox`] (empty WASI, log import, memory cap, deadline, and for controllers the
//! granted capabilities), and [`Plugin`]: a component compiled once and pre-linked, instantiated
//! afresh for every call.
//!
//! Two linkers: policies get WASI with nothing in it and the log; controllers get that plus the
//! capability imports (`secrets`, `resources`, `wasi:http`), each checked against the grants of
//! the sandbox's [`CallContext`].

pub mod bindings;
pub mod capabilities;
pub mod inspect;
mod output;
pub use output::prefix;
pub mod quantity;
pub mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use self::bindings::latest;
use self::bindings::v0_1_0;
use crate::capabilities::{CallContext, http::Hooks};
use crate::trace::Trace;

/// Bytes of each memory and table slot kept resident between sandboxes (see `Runtime::new`).
const KEEP_RESIDENT: usize = 1 << 20;

/// How often the engine's epoch advances: the granularity of timeouts and of a long call's yields
/// to the executor. Each tick wakes the ticker thread, which costs 17-27 µs of CPU on a virtual
/// machine and, on a server pinned to one core, preempts the request being served: at 1 ms that
/// was 16-20 µs per request at 1,000 req/s (docs/benchmarks.md, the one-core webhook). 10 ms (as
/// Spin's default) keeps timeouts exact to about 10 ms at a tenth of the cost.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Sandboxes that may exist at once; a call beyond this waits for a free slot.
    pub max_instances: u32,
    /// The largest memory cap any binding may ask for.
    pub max_memory: usize,
}

/// Set to `1` to write wasmtime's perf map for the plugins' compiled code, so that a profiler
/// (`perf record -p PID`, then `perf report`) names each guest function; build the plugin
/// unstripped (`CARGO_PROFILE_PLUGIN_STRIP=false`) for names rather than indices.
pub const PERF_MAP_ENV: &str = "CORBEL_PERF_MAP";

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 256,
            max_memory: 1 << 30,
        }
    }
}

/// The limits of one call into a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout: Duration,
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Self::default_timeout(),
            memory: Self::default_memory(),
        }
    }
}

impl Limits {
    /// A call's time limit when its configuration sets none (`timeout`).
    pub fn default_timeout() -> Duration {
        Duration::from_secs(2)
    }

    /// A sandbox's memory cap when its configuration sets none (`memoryLimit`).
    pub fn default_memory() -> usize {
        64 << 20
    }
}

/// Who a plugin's log lines and output belong to.
#[derive(Debug)]
pub struct LogContext {
    pub binding: String,
    pub plugin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "this is a core WebAssembly module, not a component: Corbel loads components (build for wasm32-wasip2, or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("this is not WebAssembly (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "the component is not a Corbel plugin: it exports {exports}, and a policy exports `corbel:plugin/admission@{supported}` (a controller also `corbel:plugin/reconciler@{supported}`)"
    )]
    NotAPolicy { exports: String, supported: String },
    #[error(
        "the component is a policy, not a controller: it does not export `corbel:plugin/reconciler`"
    )]
    NotAController,
    #[error(
        "the plugin was built against corbel:plugin@{found}, which this host does not support (it supports corbel:plugin@{supported}); rebuild the plugin with an SDK for a supported version, or upgrade Corbel"
    )]
    UnsupportedWitVersion { found: String, supported: String },
    #[error("the component cannot be linked: {0}")]
    Link(String),
}

/// Why a call into a plugin did not return a value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory limit of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("no sandbox slot became free within {0:?} (all {1} are busy)")]
    Busy(Duration, u32),
}

/// The engine and linker shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    controller_linker: Linker<Sandbox>,
    slots: Arc<Semaphore>,
    max_instances: u32,
    max_memory: usize,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        let n = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memory_size(config.max_memory)
            // A slot's memory is reset for reuse by rewriting only the pages the last sandbox
            // dirtied (found with Linux's PAGEMAP_SCAN) instead of `madvise`-ing it away: no
            // TLB shootdowns across cores and no page faults when the next request reuses it.
            // Beyond `keep_resident`, and on kernels without PAGEMAP_SCAN, memory is decommitted.
            // Wasmtime 48's scan stops after 32 dirty runs of pages and unmaps the rest, so a
            // JavaScript or Python sandbox (39 and 243 faults per request) still faults: a larger
            // `keep_resident` does not help (measured, docs/languages.md); wasmtime#14357 would.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        // `perf record` sees a plugin's functions by name (`/tmp/perf-PID.map`) when asked;
        // off by default, since the map grows with every compiled plugin.
        if std::env::var_os(PERF_MAP_ENV).is_some_and(|v| v == "1") {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm)
            .map_err(|e| anyhow::anyhow!("failed to create the wasm engine: {e}"))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
        v0_1_0::add_policy_imports(&mut linker)
            .map_err(|e| anyhow::anyhow!("failed to link corbel:plugin@0.1.0: {e}"))?;

        let mut controller_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut controller_linker)
            .map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut controller_linker)
            .map_err(|e| anyhow::anyhow!("failed to link wasi:http: {e}"))?;
        v0_1_0::Controller::add_to_linker::<Sandbox, wasmtime::component::HasSelf<Sandbox>>(
            &mut controller_linker,
            |s| s,
        )
        .map_err(|e| anyhow::anyhow!("failed to link corbel:plugin@0.1.0 (controller): {e}"))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("corbel-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })?;

        Ok(Self {
            engine,
            linker,
            controller_linker,
            slots: Arc::new(Semaphore::new(n as usize)),
            max_instances: n,
            max_memory: config.max_memory,
            stop_ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The largest memory cap a binding may ask for.
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Compiles a component, refusing core modules and non-Wasm input with a clear error.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm),
        }
        Component::new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))
    }

    /// Reads, compiles and pre-links a plugin file.
    pub fn load_file(&self, path: &std::path::Path) -> Result<Plugin, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        self.load(&name, &bytes)
    }

    /// Compiles and pre-links a plugin: checks its WIT version and world, and builds the
    /// `InstancePre`. A component exporting `reconciler` is linked as a controller (with the
    /// capability imports), any other as a policy.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let component = self.compile(bytes)?;
        self.load_component(name, component)
    }

    /// Pre-links an already compiled component (from the registry's compiled-artifact cache).
    pub fn load_component(&self, name: &str, component: Component) -> Result<Plugin, LoadError> {
        let version = inspect::policy_version(&self.engine, &component)?;
        let controller = inspect::is_controller(&self.engine, &component);
        let link = |e: wasmtime::Error| LoadError::Link(format!("{e:#}"));
        let pre = match version.as_str() {
            "0.1.0" => {
                let linker = if controller {
                    &self.controller_linker
                } else {
                    &self.linker
                };
                let pre = linker.instantiate_pre(&component).map_err(link)?;
                let admission = v0_1_0::AdmissionIndices::new(&pre).map_err(link)?;
                let reconciler = if controller {
                    Some(v0_1_0::ControllerPre::new(pre.clone()).map_err(link)?)
                } else {
                    None
                };
                Versioned::V0_1_0 {
                    pre,
                    admission,
                    reconciler,
                }
            }
            found => {
                return Err(LoadError::UnsupportedWitVersion {
                    found: found.to_owned(),
                    supported: bindings::SUPPORTED.join(", "),
                });
            }
        };
        Ok(Plugin {
            name: name.to_owned(),
            wit_version: version,
            pre,
            engine: self.engine.clone(),
            slots: self.slots.clone(),
            max_instances: self.max_instances,
        })
    }
}

enum Versioned {
    V0_1_0 {
        pre: InstancePre<Sandbox>,
        admission: v0_1_0::AdmissionIndices,
        /// Present for controllers.
        reconciler: Option<v0_1_0::ControllerPre<Sandbox>>,
    },
}

/// Which admission function to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Validate,
    Mutate,
}

/// A compiled, pre-linked plugin. Cheap to call concurrently: each call gets its own sandbox.
pub struct Plugin {
    name: String,
    wit_version: String,
    pre: Versioned,
    engine: Engine,
    slots: Arc<Semaphore>,
    max_instances: u32,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("wit_version", &self.wit_version)
            .finish()
    }
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `corbel:plugin` version the plugin was built against.
    pub fn wit_version(&self) -> &str {
        &self.wit_version
    }

    /// Whether the plugin is a controller (exports `reconciler`).
    pub fn is_controller(&self) -> bool {
        match &self.pre {
            Versioned::V0_1_0 { reconciler, .. } => reconciler.is_some(),
        }
    }

    /// Calls `validate-settings`. (`&String` because that is what the generated bindings take.) The outer error is the sandbox's; the inner one the plugin's refusal.
    pub async fn validate_settings(
        &self,
        settings: &String,
        limits: Limits,
        log: &Arc<LogContext>,
    ) -> Result<Result<(), String>, SandboxError> {
        let mut call = self.sandbox(limits, log, None).await?;
        let result = match &self.pre {
            Versioned::V0_1_0 { pre, admission, .. } => {
                async {
                    let instance = pre.instantiate_async(&mut call.store).await?;
                    let guest = admission.load(&mut call.store, &instance)?;
                    guest
                        .call_validate_settings(&mut call.store, settings)
                        .await
                }
                .await
            }
        };
        call.finish(result)
    }

    /// Calls `validate` or `mutate` with one request.
    pub async fn admit(
        &self,
        which: Call,
        request: &latest::AdmissionRequest,
        settings: &String,
        limits: Limits,
        log: &Arc<LogContext>,
    ) -> Result<Result<latest::AdmissionResponse, String>, SandboxError> {
        self.admit_traced(which, request, settings, limits, log, None)
            .await
    }

    /// [`Plugin::admit`], collecting the call's log lines and checks into `trace` when given
    /// ("why denied", see [`trace`]).
    pub async fn admit_traced(
        &self,
        which: Call,
        request: &latest::AdmissionRequest,
        settings: &String,
        limits: Limits,
        log: &Arc<LogContext>,
        trace: Option<&Arc<Trace>>,
    ) -> Result<Result<latest::AdmissionResponse, String>, SandboxError> {
        let mut call = self.sandbox(limits, log, None).await?;
        call.store.data_mut().trace = trace.cloned();
        let result = match &self.pre {
            Versioned::V0_1_0 { pre, admission, .. } => {
                async {
                    let instance = pre.instantiate_async(&mut call.store).await?;
                    let guest = admission.load(&mut call.store, &instance)?;
                    match which {
                        Call::Validate => {
                            guest
                                .call_validate(&mut call.store, request, settings)
                                .await
                        }
                        Call::Mutate => guest.call_mutate(&mut call.store, request, settings).await,
                    }
                }
                .await
            }
        };
        call.finish(result)
    }

    /// Calls the controller's `manifest`.
    pub async fn manifest(
        &self,
        limits: Limits,
        log: &Arc<LogContext>,
    ) -> Result<String, ControllerCallError> {
        let mut call = self.sandbox(limits, log, None).await?;
        let result = match &self.pre {
            Versioned::V0_1_0 { reconciler, .. } => {
                let reconciler = reconciler.as_ref().ok_or(LoadError::NotAController)?;
                async {
                    let controller = reconciler.instantiate_async(&mut call.store).await?;
                    controller
                        .corbel_plugin_reconciler()
                        .call_manifest(&mut call.store)
                        .await
                }
                .await
            }
        };
        Ok(call.finish(result)?)
    }

    /// Calls `reconcile` or `cleanup` with one object, in a sandbox whose capability imports act
    /// through `context`. The whole call, including time spent waiting on capability imports and
    /// outbound HTTP, is bounded by the timeout.
    pub async fn reconcile(
        &self,
        which: ReconcileCall,
        object: &String,
        settings: &String,
        limits: Limits,
        log: &Arc<LogContext>,
        context: CallContext,
    ) -> Result<Result<latest::Outcome, latest::ReconcileError>, ControllerCallError> {
        let mut call = self.sandbox(limits, log, Some(context)).await?;
        let Versioned::V0_1_0 { reconciler, .. } = &self.pre;
        let reconciler = reconciler.as_ref().ok_or(LoadError::NotAController)?;
        let work = async {
            let controller = reconciler.instantiate_async(&mut call.store).await?;
            let guest = controller.corbel_plugin_reconciler();
            match which {
                ReconcileCall::Reconcile => {
                    guest
                        .call_reconcile(&mut call.store, object, settings)
                        .await
                }
                ReconcileCall::Cleanup => {
                    guest.call_cleanup(&mut call.store, object, settings).await
                }
            }
        };
        let result = match tokio::time::timeout(limits.timeout, work).await {
            Ok(result) => result,
            Err(_) => return Err(SandboxError::Timeout(limits.timeout).into()),
        };
        Ok(call.finish(result)?)
    }

    /// Creates a sandbox and instantiates the plugin without calling it: what every request pays
    /// before the call. For benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_only(
        &self,
        limits: Limits,
        log: &Arc<LogContext>,
    ) -> Result<(), SandboxError> {
        let mut call = self.sandbox(limits, log, None).await?;
        let result = match &self.pre {
            Versioned::V0_1_0 { pre, .. } => pre.instantiate_async(&mut call.store).await.map(drop),
        };
        call.finish(result)
    }

    async fn sandbox(
        &self,
        limits: Limits,
        log: &Arc<LogContext>,
        context: Option<CallContext>,
    ) -> Result<Call_, SandboxError> {
        // A free slot is the common case: take it without arming a timer (registering and
        // cancelling one in tokio's timer wheel costs more than the rest of this function).
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(limits.timeout, self.slots.clone().acquire_owned())
                .await
                .map_err(|_| SandboxError::Busy(limits.timeout, self.max_instances))?
                .expect("the slot semaphore is never closed"),
        };
        let deadline = Instant::now() + limits.timeout;
        let hooks = match &context {
            Some(context) => Hooks {
                grants: context.grants.http.clone().into(),
                plugin: Arc::from(context.plugin.as_str()),
            },
            None => Hooks::deny_all(Arc::from(self.name.as_str())),
        };
        let sandbox = Sandbox {
            wasi: None,
            http: WasiHttpCtx::new(),
            hooks,
            controller: context.map(Box::new),
            table: ResourceTable::new(),
            memory: MemoryCap {
                limit: limits.memory,
                hit: false,
            },
            log: log.clone(),
            log_budget: LOG_RECORDS_PER_CALL,
            trace: None,
        };
        let mut store = Store::new(&self.engine, sandbox);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(Call_ {
            store,
            limits,
            _permit: permit,
        })
    }
}

/// Which reconciler function to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileCall {
    Reconcile,
    Cleanup,
}

/// Why a controller call did not return: the sandbox failed, or the plugin is not a controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerCallError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// One call's store, holding its sandbox slot until it is dropped.
struct Call_ {
    store: Store<Sandbox>,
    limits: Limits,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Call_ {
    fn finish<T>(self, result: wasmtime::Result<T>) -> Result<T, SandboxError> {
        result.map_err(|e| {
            if self.store.data().memory.hit {
                SandboxError::MemoryLimit(self.limits.memory)
            } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                SandboxError::Timeout(self.limits.timeout)
            } else {
                SandboxError::Trap(trap_summary(&e))
            }
        })
    }
}

/// The trap's own message, then the innermost frames of the guest backtrace, on one line.
fn trap_summary(e: &wasmtime::Error) -> String {
    let mut summary = match e.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => e.to_string(),
    };
    if let Some(trace) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
        let frames: Vec<String> = trace
            .frames()
            .iter()
            .take(3)
            .filter_map(|f| f.func_name().map(str::to_owned))
            .collect();
        if !frames.is_empty() {
            summary.push_str(&format!(" (in {})", frames.join(" <- ")));
        }
    }
    summary
}

const LOG_RECORDS_PER_CALL: u32 = 1000;

/// The state of one sandbox: WASI with nothing in it, the log, the memory cap, and for a
/// controller's reconcile the capabilities its grants allow.
pub struct Sandbox {
    /// Built on the plugin's first WASI call: most policies make none, and building the context
    /// (random-number generators, clocks, streams) is a measurable part of a request's cost.
    wasi: Option<WasiCtx>,
    http: WasiHttpCtx,
    hooks: Hooks,
    /// Absent outside `reconcile`/`cleanup`: every capability call is then refused.
    controller: Option<Box<CallContext>>,
    table: ResourceTable,
    memory: MemoryCap,
    log: Arc<LogContext>,
    log_budget: u32,
    /// This call's collection of log lines and checks, when the caller traces it.
    trace: Option<Arc<Trace>>,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| {
                WasiCtx::builder()
                    .stdout(output::LogStream::new(
                        self.log.clone(),
                        self.trace.clone(),
                        "stdout",
                    ))
                    .stderr(output::LogStream::new(
                        self.log.clone(),
                        self.trace.clone(),
                        "stderr",
                    ))
                    .build()
            }),
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl Sandbox {
    /// The capability context, or `access-denied` when the call has none (admission, manifest).
    pub(crate) fn capabilities(
        &self,
        capability: &str,
    ) -> Result<&CallContext, latest::CapabilityError> {
        self.controller.as_deref().ok_or_else(|| {
            latest::CapabilityError::AccessDenied(format!(
                "{capability}: capabilities are available only during reconcile and cleanup"
            ))
        })
    }

    pub(crate) fn log_record(
        &mut self,
        level: v0_1_0::Level,
        message: &str,
        fields: &[v0_1_0::Field],
    ) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        use v0_1_0::Level::*;
        let checks = message == trace::CHECK_MESSAGE;
        if let Some(trace) = &self.trace {
            if checks {
                trace.checks(fields.iter().map(|f| (f.key.as_str(), f.value.as_str())));
            } else {
                let text: String = std::iter::once(message.to_owned())
                    .chain(fields.iter().map(|f| format!("{}={}", f.key, f.value)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let level = match level {
                    Trace => "trace",
                    Debug => "debug",
                    Info => "info",
                    Warn => "warn",
                    Error => "error",
                };
                trace.log(level, &text);
            }
        }
        // Formatting below costs an allocation or two: skip it for records the log drops (the
        // SDKs send checks at debug level).
        let enabled = match level {
            Trace => tracing::enabled!(target: "corbel::plugin", tracing::Level::TRACE),
            Debug => tracing::enabled!(target: "corbel::plugin", tracing::Level::DEBUG),
            Info => tracing::enabled!(target: "corbel::plugin", tracing::Level::INFO),
            Warn => tracing::enabled!(target: "corbel::plugin", tracing::Level::WARN),
            Error => tracing::enabled!(target: "corbel::plugin", tracing::Level::ERROR),
        };
        if !enabled {
            if self.log_budget == 0 {
                let (binding, plugin) = (self.log.binding.as_str(), self.log.plugin.as_str());
                tracing::warn!(target: "corbel::plugin", binding, plugin, "log limit of {LOG_RECORDS_PER_CALL} records per call reached: further records dropped");
            }
            return;
        }
        let message = if checks {
            "checks:".into()
        } else {
            output::clip(message, 4096)
        };
        let fields: String = fields
            .iter()
            .map(|f| format!(" {}={}", f.key, output::clip(&f.value, 1024)))
            .collect();
        let (binding, plugin) = (self.log.binding.as_str(), self.log.plugin.as_str());
        match level {
            Trace => {
                tracing::trace!(target: "corbel::plugin", binding, plugin, "{message}{fields}")
            }
            Debug => {
                tracing::debug!(target: "corbel::plugin", binding, plugin, "{message}{fields}")
            }
            Info => tracing::info!(target: "corbel::plugin", binding, plugin, "{message}{fields}"),
            Warn => tracing::warn!(target: "corbel::plugin", binding, plugin, "{message}{fields}"),
            Error => {
                tracing::error!(target: "corbel::plugin", binding, plugin, "{message}{fields}")
            }
        }
        if self.log_budget == 0 {
            tracing::warn!(target: "corbel::plugin", binding, plugin, "log limit of {LOG_RECORDS_PER_CALL} records per call reached: further records dropped");
        }
    }
}

/// Refuses memory growth past the binding's cap, and remembers that it did, so that the trap
/// which follows is reported as a memory-limit error rather than a bare `unreachable`.
struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
