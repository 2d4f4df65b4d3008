//! Logging (tracing), Prometheus metrics (all prefixed `corbel_`), and [`Health`]: what every
//! room reports for `/metrics` and `/readyz`, owned here so that no room reaches into the HTTP
//! server's state to report.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use corbel_admission::Outcome;

pub mod audit;

/// Log output: human-readable lines, or one JSON object per line for log collectors.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// How many controllers are configured, and how each one's load went (its kinds, or why not).
#[derive(Debug, Clone, Default)]
pub struct ControllerReports {
    /// How many controllers readiness waits for.
    pub expected: usize,
    pub loaded: BTreeMap<String, Result<Vec<String>, String>>,
}

impl ControllerReports {
    /// Every expected controller reported, and each one loaded.
    pub fn ready(&self) -> bool {
        self.loaded.len() == self.expected && self.loaded.values().all(Result::is_ok)
    }
}

/// What the rooms report: the metrics, how each controller's load went, and misconfigurations
/// found while running. The admission server reads it for `/metrics` and `/readyz`; the
/// reconciler, the `Plugin` kind and leader election write to it.
#[derive(Default)]
pub struct Health {
    pub metrics: Metrics,
    controllers: Mutex<ControllerReports>,
    /// Misconfigurations found while running, by what they concern ("leaderElection",
    /// "plugins"): a host that may not take part in leader election or read its kinds is not
    /// ready, and says why, rather than looking healthy.
    problems: Mutex<BTreeMap<String, String>>,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many controllers readiness waits for.
    pub fn expect_controllers(&self, count: usize) {
        self.controllers.lock().unwrap().expected = count;
    }

    pub fn report_controller(&self, name: &str, result: Result<Vec<String>, String>) {
        self.controllers
            .lock()
            .unwrap()
            .loaded
            .insert(name.to_owned(), result);
    }

    /// Sets (`Some`) or clears (`None`) the problem about `what`; readiness fails while any is set.
    pub fn report_problem(&self, what: &str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap();
        match problem {
            Some(problem) => problems.insert(what.to_owned(), problem),
            None => problems.remove(what),
        };
    }

    /// The controllers' reports as they are now.
    pub fn controllers(&self) -> ControllerReports {
        self.controllers.lock().unwrap().clone()
    }

    /// The problems reported and not cleared, by what they concern.
    pub fn problems(&self) -> BTreeMap<String, String> {
        self.problems.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvaluationLabels {
    binding: String,
    allowed: String,
    mutated: String,
    error: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BindingLabels {
    binding: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnforcementLabels {
    binding: String,
    enforcement: String,
}

/// The host's metrics, served at `/metrics`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    plugin: String,
    kind: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    plugin: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    lease: String,
}

pub struct Metrics {
    registry: Registry,
    /// The background audit's (`corbel_audit_*`), written by corbel-audit.
    pub audit: audit::AuditMetrics,
    evaluations: Family<EvaluationLabels, Counter>,
    latency: Family<BindingLabels, Histogram>,
    unenforced: Family<EnforcementLabels, Counter>,
    in_flight: Gauge<i64, AtomicI64>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    reconcile_in_flight: Family<KindLabels, Gauge<i64, AtomicI64>>,
    reconcile_retrying: Family<KindLabels, Gauge<i64, AtomicI64>>,
    leader: Family<LeaseLabels, Gauge<i64, AtomicI64>>,
}

type AtomicI64 = std::sync::atomic::AtomicI64;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("corbel");
        let evaluations = Family::<EvaluationLabels, Counter>::default();
        registry.register(
            "admission_evaluations",
            "Admission requests answered, by binding, verdict, whether a patch was returned, and evaluation error (empty when none)",
            evaluations.clone(),
        );
        // 50 µs .. ~3.3 s
        let latency = Family::<BindingLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.00005, 2.0, 17,
            ))
        });
        registry.register_with_unit(
            "admission_evaluation_duration",
            "Time to answer one admission request, including the sandbox",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let unenforced = Family::<EnforcementLabels, Counter>::default();
        registry.register(
            "admission_unenforced_denials",
            "Requests a binding would have denied and admitted because its enforcement is warn or audit, by binding and enforcement",
            unenforced.clone(),
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "admission_in_flight",
            "Admission requests being evaluated now",
            in_flight.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconcile and cleanup calls, by plugin, kind and result (success, transient, permanent, or the sandbox error)",
            reconciles.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 18,
            ))
        });
        registry.register_with_unit(
            "reconcile_duration",
            "Time of one reconcile: the sandbox, the plugin's capability calls and the status write",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconcile_in_flight = Family::<KindLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "reconcile_in_flight",
            "Reconciles running now",
            reconcile_in_flight.clone(),
        );
        let reconcile_retrying = Family::<KindLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "reconcile_queue_depth",
            "Objects queued for a retry after a failed reconcile",
            reconcile_retrying.clone(),
        );
        let leader = Family::<LeaseLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "leader",
            "1 while this replica holds the controllers' Lease (always 1 without leader election)",
            leader.clone(),
        );
        // Owned by admission's shadow evaluation (docs/shadow.md); registered here.
        registry.register(
            "shadow_evaluations",
            "Live requests given to a binding's shadow candidate, by binding and result: agreed, disagreed (allowed, message or patch differ), skipped (CPU share in use, or candidate not loaded), error (either version could not evaluate)",
            corbel_admission::shadow::metrics().clone(),
        );
        let audit = audit::AuditMetrics::register(&mut registry);
        Self {
            registry,
            audit,
            evaluations,
            latency,
            unenforced,
            in_flight,
            reconciles,
            reconcile_duration,
            reconcile_in_flight,
            reconcile_retrying,
            leader,
        }
    }

    /// Counts one reconcile running until the guard drops.
    pub fn reconcile_started(&self, plugin: &str, kind: &str) -> InFlight<'_> {
        let gauge = self.reconcile_in_flight.get_or_create(&KindLabels {
            plugin: plugin.to_owned(),
            kind: kind.to_owned(),
        });
        gauge.inc();
        // The family hands out a guard over its own map; keep a clone of the gauge instead.
        InFlight::owned(gauge.clone())
    }

    pub fn record_reconcile(&self, plugin: &str, kind: &str, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                plugin: plugin.to_owned(),
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels {
                plugin: plugin.to_owned(),
                kind: kind.to_owned(),
            })
            .observe(seconds);
    }

    pub fn set_retrying(&self, plugin: &str, kind: &str, objects: usize) {
        self.reconcile_retrying
            .get_or_create(&KindLabels {
                plugin: plugin.to_owned(),
                kind: kind.to_owned(),
            })
            .set(objects as i64);
    }

    pub fn set_leader(&self, lease: &str, leader: bool) {
        self.leader
            .get_or_create(&LeaseLabels {
                lease: lease.to_owned(),
            })
            .set(i64::from(leader));
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight::Borrowed(&self.in_flight)
    }

    pub fn record(&self, binding: &str, outcome: &Outcome, seconds: f64) {
        self.evaluations
            .get_or_create(&EvaluationLabels {
                binding: binding.to_owned(),
                allowed: outcome.allowed.to_string(),
                mutated: outcome.mutated.to_string(),
                error: outcome.error.unwrap_or("").to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&BindingLabels {
                binding: binding.to_owned(),
            })
            .observe(seconds);
        if let Some(enforcement) = outcome.unenforced {
            self.unenforced
                .get_or_create(&EnforcementLabels {
                    binding: binding.to_owned(),
                    enforcement: enforcement.as_str().to_owned(),
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

pub enum InFlight<'a> {
    Borrowed(&'a Gauge<i64, AtomicI64>),
    Owned(Gauge<i64, AtomicI64>),
}

impl InFlight<'_> {
    fn owned(gauge: Gauge<i64, AtomicI64>) -> InFlight<'static> {
        InFlight::Owned(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        match self {
            InFlight::Borrowed(gauge) => gauge.dec(),
            InFlight::Owned(gauge) => gauge.dec(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_evaluations_by_outcome_and_tracks_in_flight() {
        let metrics = Metrics::new();
        {
            let _guard = metrics.start();
            assert!(metrics.encode().contains("corbel_admission_in_flight 1"));
        }
        metrics.record(
            "labels",
            &Outcome {
                allowed: false,
                mutated: false,
                error: Some("timeout"),
                unenforced: None,
            },
            0.002,
        );
        let text = metrics.encode();
        assert!(text.contains("corbel_admission_in_flight 0"), "{text}");
        assert!(
            text.contains(r#"corbel_admission_evaluations_total{binding="labels",allowed="false",mutated="false",error="timeout"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"corbel_admission_evaluation_duration_seconds_count{binding="labels"} 1"#
            ),
            "{text}"
        );
    }
}
