//! Logging (tracing) and Prometheus metrics, all prefixed `corbel_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::admission::Outcome;

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

/// The host's metrics, served at `/metrics`.
pub struct Metrics {
    registry: Registry,
    evaluations: Family<EvaluationLabels, Counter>,
    latency: Family<BindingLabels, Histogram>,
    in_flight: Gauge<i64, AtomicI64>,
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
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "admission_in_flight",
            "Admission requests being evaluated now",
            in_flight.clone(),
        );
        Self {
            registry,
            evaluations,
            latency,
            in_flight,
        }
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
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
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

pub struct InFlight<'a>(&'a Gauge<i64, AtomicI64>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
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
