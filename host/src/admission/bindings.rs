//! The set of bindings a server answers for, loaded from the configuration. A binding that fails
//! to load stays in the set with its reason: readiness reports it, and requests to it get the
//! binding's failure-policy answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;

use super::{Binding, FailurePolicy, Mode};
use crate::config::BindingConfig;
use crate::runtime::{Limits, Runtime};

#[derive(Debug)]
pub enum Entry {
    Loaded(Arc<Binding>),
    Failed {
        mode: Mode,
        failure_policy: FailurePolicy,
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
}

#[derive(Debug, Default)]
pub struct BindingSet {
    pub entries: BTreeMap<String, Entry>,
}

impl BindingSet {
    pub fn is_ready(&self) -> bool {
        self.entries.values().all(|e| matches!(e, Entry::Loaded(_)))
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// Compiles every binding's plugin (each file once, however many bindings share it) and
    /// validates its settings. Compilation runs off the async threads.
    pub async fn load(runtime: &Arc<Runtime>, configs: &[BindingConfig]) -> Self {
        let mut files: Vec<std::path::PathBuf> = configs.iter().map(|c| c.plugin.clone()).collect();
        files.sort();
        files.dedup();
        let compiled = join_all(files.into_iter().map(|path| {
            let runtime = runtime.clone();
            async move {
                let p = path.clone();
                let plugin = tokio::task::spawn_blocking(move || runtime.load_file(&p))
                    .await
                    .expect("compilation does not panic");
                (path, plugin.map(Arc::new).map_err(|e| e.to_string()))
            }
        }))
        .await;
        let compiled: BTreeMap<_, _> = compiled.into_iter().collect();

        let entries = join_all(configs.iter().map(|config| {
            let plugin = compiled[&config.plugin].clone();
            async move {
                let failed = |reason: String| Entry::Failed {
                    mode: config.mode,
                    failure_policy: config.failure_policy,
                    plugin: config.plugin.display().to_string(),
                    reason,
                };
                let entry = match (plugin, config.settings()) {
                    (Err(e), _) => failed(format!("plugin {} does not load: {e}", config.plugin.display())),
                    (_, Err(e)) => failed(format!("{e:#}")),
                    (Ok(_), _) if config.memory_limit > runtime.max_memory() => failed(format!(
                        "memoryLimit {} MiB is over the host's maximum of {} MiB",
                        config.memory_limit >> 20,
                        runtime.max_memory() >> 20
                    )),
                    (Ok(plugin), Ok(settings)) => {
                        let limits = Limits { timeout: config.timeout, memory: config.memory_limit };
                        match Binding::new(&config.name, plugin, &settings, config.mode, limits, config.failure_policy).await {
                            Ok(binding) => Entry::Loaded(Arc::new(binding)),
                            Err(e) => failed(e.to_string()),
                        }
                    }
                };
                match &entry {
                    Entry::Loaded(b) => tracing::info!(binding = %config.name, plugin = %b.plugin.name(), mode = b.mode.as_str(), wit = b.plugin.wit_version(), "binding loaded"),
                    Entry::Failed { reason, .. } => tracing::error!(binding = %config.name, reason = %reason, "binding failed to load"),
                }
                (config.name.clone(), entry)
            }
        }))
        .await;
        Self {
            entries: entries.into_iter().collect(),
        }
    }
}
