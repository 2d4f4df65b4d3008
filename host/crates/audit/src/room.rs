//! The background audit in `corbel serve`: each binding with `audit:` is audited when the
//! bindings have loaded, every `audit.interval` after, and as soon as its plugin or settings
//! change. A change is a new `Arc<Binding>` in the binding set (a hot swap, by SIGHUP or a
//! `Plugin` object, builds a new one; an unchanged binding keeps its `Arc`), so comparing the
//! pointer is exact and costs nothing. The set is looked at once a second.
//!
//! Bindings are audited one after the other, each with its own pool of `audit.workers`; then
//! the reports are brought in step with every binding's last complete run ([`crate::report`]).
//! The `audit:` section itself is read at start: changing it needs a restart.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use corbel_admission::Binding;
use corbel_admission::bindings::{Entry, SharedBindings};
use corbel_admission::config::BindingConfig;
use corbel_telemetry::Health;

use crate::{Run, audit_binding, report};

/// What the background audit needs.
#[derive(Clone)]
pub struct Room {
    pub client: kube::Client,
    pub bindings: Arc<SharedBindings>,
    /// The configured bindings; those without `audit:` are ignored.
    pub configs: Vec<BindingConfig>,
    pub health: Arc<Health>,
    /// Create the Report and ClusterReport CRDs if missing (embedded mode).
    pub install_crds: bool,
}

/// What the room remembers of one binding.
#[derive(Default)]
struct State {
    /// The binding version last audited, and when.
    audited: Option<(Weak<Binding>, Instant)>,
    /// The last complete run: its findings make the binding's share of the reports.
    run: Option<Run>,
    warned_not_loaded: bool,
}

/// Runs the room until `stop` turns true.
pub async fn serve(room: Room, stop: watch::Receiver<bool>) {
    room.run(stop).await
}

impl Room {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let configs: Vec<BindingConfig> = self
            .configs
            .iter()
            .filter(|c| c.audit.is_some())
            .cloned()
            .collect();
        if configs.is_empty() {
            return;
        }
        tracing::info!(bindings = ?configs.iter().map(|c| &c.name).collect::<Vec<_>>(), "background audit started");
        let mut states: Vec<State> = configs.iter().map(|_| State::default()).collect();
        let mut crds_ready = !self.install_crds;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if !crds_ready {
                // Tried each round: the API refuses writes while the bindings load (503).
                match report::create_crds_if_missing(&self.client).await {
                    Ok(()) => crds_ready = true,
                    Err(e) => {
                        tracing::debug!(error = %e, "failed to create the OpenReports CRDs; retrying");
                        continue;
                    }
                }
            }
            let set = self.bindings.load_full();
            let Some(set) = set.as_ref() else {
                continue;
            };
            let mut ran = false;
            for (config, state) in configs.iter().zip(states.iter_mut()) {
                if *stop.borrow() {
                    break;
                }
                let binding = match set.entries.get(&config.name) {
                    Some(entry @ Entry::Loaded(binding)) => (entry.clone(), binding.clone()),
                    Some(Entry::Failed { reason, .. }) => {
                        if !state.warned_not_loaded {
                            tracing::warn!(binding = %config.name, reason = %reason, "not audited: the binding is not loaded");
                            state.warned_not_loaded = true;
                        }
                        continue;
                    }
                    None => continue,
                };
                state.warned_not_loaded = false;
                let (entry, loaded) = binding;
                let interval = config
                    .audit
                    .as_ref()
                    .map(|a| a.interval)
                    .unwrap_or_default();
                let due = match &state.audited {
                    None => true,
                    Some((version, at)) => {
                        !std::ptr::eq(version.as_ptr(), Arc::as_ptr(&loaded))
                            || at.elapsed() >= interval
                    }
                };
                if !due {
                    continue;
                }
                let changed = state.audited.is_some()
                    && state
                        .audited
                        .as_ref()
                        .is_some_and(|(v, _)| !std::ptr::eq(v.as_ptr(), Arc::as_ptr(&loaded)));
                if changed {
                    tracing::info!(binding = %config.name, "the binding's plugin or settings changed: auditing again");
                }
                let metrics = &self.health.metrics.audit;
                let run = audit_binding(&self.client, config, &entry, Some(metrics)).await;
                let finished = run
                    .finished
                    .duration_since(std::time::SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                let complete = run.problems.is_empty();
                metrics.record_run(
                    &config.name,
                    complete,
                    finished,
                    run.duration.as_secs_f64(),
                    run.dropped,
                );
                state.audited = Some((Arc::downgrade(&loaded), Instant::now()));
                // An incomplete run (a kind could not be listed) keeps the last complete one's
                // reports rather than deleting them; its problems show in the summary.
                if complete || state.run.is_none() {
                    state.run = Some(run);
                } else if let Some(previous) = &mut state.run {
                    previous.problems = run.problems;
                }
                ran = true;
            }
            if ran {
                let runs: Vec<&Run> = states.iter().filter_map(|s| s.run.as_ref()).collect();
                match report::sync(&self.client, report::desired(&runs)).await {
                    Ok(synced) => self.health.metrics.audit.set_reports(synced.reports),
                    Err(e) => {
                        tracing::warn!(error = %e, "failed to bring the audit reports in step (apply deploy/crds/*openreports.io.yaml; in Kubernetes mode Corbel needs list, patch and delete on reports and clusterreports); retrying at the next run")
                    }
                }
            }
        }
        tracing::info!("background audit stopped");
    }
}
