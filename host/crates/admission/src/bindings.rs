//! The set of bindings a server answers for, loaded from the configuration. A binding that fails
//! to load stays in the set with its reason: readiness reports it, and requests to it get the
//! binding's failure-policy answer.
//!
//! Hot swap: the set is immutable and shared behind an `ArcSwap`; a request holds the set (and so
//! the `Arc<Binding>`) it started with. [`BindingSet::reload`] loads new versions off the request
//! path (compile through the cache, pre-link, `validate-settings`) and swaps in a new set only
//! with what loaded; a binding whose new version fails keeps its old version serving, and the
//! failure is kept in [`BindingSet::errors`] for `/readyz`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::future::join_all;

use super::{Binding, Enforcement, FailurePolicy, Mode, Spec};
use crate::config::BindingConfig;
use corbel_registry::plugins::Loader;
use corbel_runtime::{Limits, Plugin, Runtime};

#[derive(Debug, Clone)]
pub enum Entry {
    Loaded(Arc<Binding>),
    Failed {
        mode: Mode,
        failure_policy: FailurePolicy,
        enforcement: Enforcement,
        plugin: String,
        reason: String,
    },
}

impl Entry {
    pub fn mode(&self) -> Mode {
        match self {
            Entry::Loaded(b) => b.mode,
            Entry::Failed { mode, .. } => *mode,
        }
    }

    /// What the binding's denials do (its failure-policy answers included).
    pub fn enforcement(&self) -> Enforcement {
        match self {
            Entry::Loaded(b) => b.enforcement,
            Entry::Failed { enforcement, .. } => *enforcement,
        }
    }
}

/// The bindings being served, swapped whole on (re)load; `None` while the first load runs.
pub type SharedBindings = ArcSwap<Option<BindingSet>>;

#[derive(Debug, Default, Clone)]
pub struct BindingSet {
    pub entries: BTreeMap<String, Entry>,
    /// The last reload's error for a binding that kept its previous version serving.
    pub errors: BTreeMap<String, String>,
    /// Bindings that `Plugin` objects manage rather than the configuration file: a reload of
    /// the file keeps them.
    pub managed: std::collections::BTreeSet<String>,
}

/// What a reload did, binding by binding.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Bindings now serving a newly loaded version (or newly added).
    pub swapped: Vec<String>,
    /// Bindings whose new version failed to load: `(name, reason)`; the old one keeps serving.
    pub kept: Vec<(String, String)>,
    pub removed: Vec<String>,
}

impl BindingSet {
    pub fn is_ready(&self) -> bool {
        self.entries.values().all(|e| matches!(e, Entry::Loaded(_)))
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Compiles every binding's plugin (each file once, however many bindings share it) and
    /// validates its settings, without a compile cache. Compilation runs off the async threads.
    pub async fn load(runtime: &Arc<Runtime>, configs: &[BindingConfig]) -> Self {
        Self::load_with(runtime, configs, Arc::new(Loader::uncached())).await
    }

    /// Like [`BindingSet::load`], with plugins read through `loader`: `oci://` references from the
    /// lock file and cache, and compiled artifacts from the cache.
    pub async fn load_with(
        runtime: &Arc<Runtime>,
        configs: &[BindingConfig],
        loader: Arc<Loader>,
    ) -> Self {
        let compiled = compile_all(runtime, configs, &loader).await;
        let entries = join_all(configs.iter().map(|config| {
            let plugin = compiled[&config.plugin].clone();
            let candidate = config.shadow.as_ref().map(|s| compiled[&s.plugin].clone());
            async move {
                let entry = bind(runtime, config, plugin, candidate).await;
                (config.name.clone(), entry)
            }
        }))
        .await;
        Self {
            entries: entries.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Loads the bindings of a new configuration off the request path and swaps them in at once.
    /// A binding whose new version fails to load keeps serving its old version (its error is
    /// reported in [`BindingSet::errors`] and the report); requests in flight finish on whatever
    /// version they started with.
    pub async fn reload(
        current: &ArcSwap<Option<BindingSet>>,
        runtime: &Arc<Runtime>,
        configs: &[BindingConfig],
        loader: Arc<Loader>,
    ) -> ReloadReport {
        let fresh = Self::load_with(runtime, configs, loader).await;
        let mut report = ReloadReport::default();
        current.rcu(|old| {
            report = ReloadReport::default();
            let old = old.as_ref().as_ref();
            let mut next = BindingSet::default();
            for (name, entry) in &fresh.entries {
                let previous = old.and_then(|o| o.entries.get(name));
                match (entry, previous) {
                    (Entry::Failed { reason, .. }, Some(previous @ Entry::Loaded(_))) => {
                        next.entries.insert(name.clone(), previous.clone());
                        next.errors.insert(name.clone(), reason.clone());
                        report.kept.push((name.clone(), reason.clone()));
                    }
                    (entry, _) => {
                        next.entries.insert(name.clone(), entry.clone());
                        report.swapped.push(name.clone());
                    }
                }
            }
            if let Some(old) = old {
                for name in &old.managed {
                    if let Some(entry) = old.entries.get(name) {
                        next.entries
                            .entry(name.clone())
                            .or_insert_with(|| entry.clone());
                        next.managed.insert(name.clone());
                    }
                }
                report.removed = old
                    .entries
                    .keys()
                    .filter(|n| !next.entries.contains_key(*n))
                    .cloned()
                    .collect();
            }
            Arc::new(Some(next))
        });
        for (name, reason) in &report.kept {
            tracing::error!(binding = %name, reason = %reason, "new version failed to load: the previous version keeps serving");
        }
        tracing::info!(swapped = ?report.swapped, kept = report.kept.len(), removed = ?report.removed, "bindings reloaded");
        report
    }
}

impl BindingSet {
    /// Loads one binding off the request path and, only if it loads, swaps it in (added, or
    /// replacing the version of the same name); requests in flight finish on the version they
    /// started with. On failure the current version, if any, keeps serving and the reason is
    /// kept for `/readyz`. Used by the `Plugin` kind, which manages the binding from then on.
    pub async fn upsert(
        current: &ArcSwap<Option<BindingSet>>,
        runtime: &Arc<Runtime>,
        config: &BindingConfig,
        loader: Arc<Loader>,
    ) -> Result<Arc<Binding>, String> {
        let fresh = Self::load_with(runtime, std::slice::from_ref(config), loader).await;
        let entry = fresh
            .entries
            .into_values()
            .next()
            .expect("one configuration gives one entry");
        let name = config.name.clone();
        match entry {
            Entry::Loaded(binding) => {
                current.rcu(|old| {
                    let mut next = old.as_ref().clone().unwrap_or_default();
                    next.entries
                        .insert(name.clone(), Entry::Loaded(binding.clone()));
                    next.errors.remove(&name);
                    next.managed.insert(name.clone());
                    Arc::new(Some(next))
                });
                tracing::info!(binding = %name, plugin = %binding.plugin.name(), "binding swapped in");
                Ok(binding)
            }
            Entry::Failed { reason, .. } => {
                current.rcu(|old| {
                    let mut next = old.as_ref().clone().unwrap_or_default();
                    if next.entries.contains_key(&name) {
                        next.errors.insert(name.clone(), reason.clone());
                    }
                    Arc::new(Some(next))
                });
                tracing::error!(binding = %name, reason = %reason, "new version failed to load: any previous version keeps serving");
                Err(reason)
            }
        }
    }

    /// Removes a binding that a `Plugin` object managed; its endpoint answers 404 from then on.
    pub fn remove_managed(current: &ArcSwap<Option<BindingSet>>, name: &str) {
        current.rcu(|old| {
            let mut next = old.as_ref().clone().unwrap_or_default();
            if next.managed.remove(name) {
                next.entries.remove(name);
                next.errors.remove(name);
            }
            Arc::new(Some(next))
        });
    }
}

/// Compiles every distinct plugin of the configuration once, off the async threads.
async fn compile_all(
    runtime: &Arc<Runtime>,
    configs: &[BindingConfig],
    loader: &Arc<Loader>,
) -> BTreeMap<std::path::PathBuf, Result<Arc<Plugin>, String>> {
    let mut files: Vec<std::path::PathBuf> = configs.iter().map(|c| c.plugin.clone()).collect();
    // Shadow candidates compile through the same loader and cache (docs/shadow.md).
    files.extend(
        configs
            .iter()
            .filter_map(|c| Some(c.shadow.as_ref()?.plugin.clone())),
    );
    files.sort();
    files.dedup();
    let compiled = join_all(files.into_iter().map(|path| {
        let (runtime, loader) = (runtime.clone(), loader.clone());
        async move {
            let p = path.clone();
            let plugin = tokio::task::spawn_blocking(move || loader.load(&runtime, &p))
                .await
                .expect("compilation does not panic");
            (path, plugin.map(Arc::new))
        }
    }))
    .await;
    compiled.into_iter().collect()
}

/// Makes one binding from its compiled plugin: checks limits, validates settings.
async fn bind(
    runtime: &Runtime,
    config: &BindingConfig,
    plugin: Result<Arc<Plugin>, String>,
    candidate: Option<Result<Arc<Plugin>, String>>,
) -> Entry {
    let failed = |reason: String| Entry::Failed {
        mode: config.mode,
        failure_policy: config.failure_policy,
        enforcement: config.enforcement,
        plugin: config.plugin.display().to_string(),
        reason,
    };
    let entry = match (plugin, config.settings()) {
        (Err(e), _) => failed(format!(
            "plugin {} does not load: {e}",
            config.plugin.display()
        )),
        (_, Err(e)) => failed(format!("{e:#}")),
        (Ok(_), _) if config.memory_limit > runtime.max_memory() => failed(format!(
            "memoryLimit {} MiB is over the host's maximum of {} MiB",
            config.memory_limit >> 20,
            runtime.max_memory() >> 20
        )),
        (Ok(plugin), Ok(settings)) => {
            let limits = Limits {
                timeout: config.timeout,
                memory: config.memory_limit,
            };
            let spec = Spec {
                name: &config.name,
                settings: &settings,
                mode: config.mode,
                limits,
                failure_policy: config.failure_policy,
            };
            match Binding::new(plugin, spec).await {
                Ok(mut binding) => {
                    binding.enforcement = config.enforcement;
                    binding.trace = config.trace;
                    binding.recorder = crate::record::for_binding(config, &settings);
                    binding.shadow =
                        crate::shadow::load(config, runtime.max_memory(), candidate).await;
                    Entry::Loaded(Arc::new(binding))
                }
                Err(e) => failed(e.to_string()),
            }
        }
    };
    match &entry {
        Entry::Loaded(b) => {
            tracing::info!(binding = %config.name, plugin = %b.plugin.name(), mode = b.mode.as_str(), wit = b.plugin.wit_version(), "binding loaded")
        }
        Entry::Failed { reason, .. } => {
            tracing::error!(binding = %config.name, reason = %reason, "binding failed to load")
        }
    }
    entry
}
