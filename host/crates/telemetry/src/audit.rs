//! The background audit's metrics (`corbel_audit_*`, docs/audit.md): what it evaluated, what it
//! found, when it last ran and for how long, and how many reports its cap left out.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

type AtomicU64 = std::sync::atomic::AtomicU64;
type AtomicI64 = std::sync::atomic::AtomicI64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BindingLabels {
    binding: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    binding: String,
    /// An OpenReports result: pass, fail, warn, error.
    result: String,
}

/// The audit's metrics, registered in the host's registry by [`crate::Metrics::new`].
#[derive(Debug, Default)]
pub struct AuditMetrics {
    objects: Family<BindingLabels, Counter>,
    results: Family<ResultLabels, Counter>,
    runs: Family<ResultLabels, Counter>,
    last_run: Family<BindingLabels, Gauge<f64, AtomicU64>>,
    duration: Family<BindingLabels, Gauge<f64, AtomicU64>>,
    dropped: Family<BindingLabels, Gauge<i64, AtomicI64>>,
    reports: Gauge<i64, AtomicI64>,
}

impl AuditMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "audit_objects",
            "Objects the background audit evaluated, by binding",
            metrics.objects.clone(),
        );
        registry.register(
            "audit_results",
            "Background audit results, by binding and result (pass, fail, warn, error)",
            metrics.results.clone(),
        );
        registry.register(
            "audit_runs",
            "Background audit runs, by binding and result (ok, or failed when the objects could not be listed)",
            metrics.runs.clone(),
        );
        registry.register_with_unit(
            "audit_last_run_timestamp",
            "When the binding's last audit run finished (Unix time)",
            Unit::Seconds,
            metrics.last_run.clone(),
        );
        registry.register_with_unit(
            "audit_last_run_duration",
            "How long the binding's last audit run took (listing and evaluating)",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        registry.register(
            "audit_reports_dropped",
            "Resources of the binding's last run left without a report because of its audit.maxReports cap",
            metrics.dropped.clone(),
        );
        registry.register(
            "audit_reports",
            "OpenReports reports the audit keeps (Report and ClusterReport, the summary included)",
            metrics.reports.clone(),
        );
        metrics
    }

    /// One object evaluated, with its result (`pass`, `fail`, `warn` or `error`).
    pub fn record_result(&self, binding: &str, result: &str) {
        self.objects
            .get_or_create(&BindingLabels {
                binding: binding.to_owned(),
            })
            .inc();
        self.results
            .get_or_create(&ResultLabels {
                binding: binding.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// A run finished: `ok` false when its objects could not all be listed.
    pub fn record_run(
        &self,
        binding: &str,
        ok: bool,
        finished_unix: f64,
        seconds: f64,
        dropped: usize,
    ) {
        let labels = BindingLabels {
            binding: binding.to_owned(),
        };
        self.runs
            .get_or_create(&ResultLabels {
                binding: binding.to_owned(),
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
        self.last_run.get_or_create(&labels).set(finished_unix);
        self.duration.get_or_create(&labels).set(seconds);
        if ok {
            self.dropped.get_or_create(&labels).set(dropped as i64);
        }
    }

    pub fn set_reports(&self, reports: usize) {
        self.reports.set(reports as i64);
    }
}
