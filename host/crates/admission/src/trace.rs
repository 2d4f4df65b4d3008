//! "Why denied": a binding's evaluation with the plugin's log lines and checks collected
//! (`corbel_runtime::trace`), for `corbel eval --trace` and for bindings with `trace: true`, whose
//! denials carry the trace as warnings (bounded: at most [`MAX_ENTRIES`] entries and
//! [`MAX_BYTES`] of text, then one warning saying how many were dropped).

use std::sync::Arc;

pub use corbel_runtime::trace::{CHECK_MESSAGE, Collected, Entry, MAX_BYTES, MAX_ENTRIES, Trace};

use crate::{Binding, EvaluationError, Request, Verdict};

/// Evaluates like [`crate::evaluate`], and returns what the plugin said meanwhile.
pub async fn evaluate_traced(
    binding: &Binding,
    request: &Request,
) -> (Result<Verdict, EvaluationError>, Collected) {
    let trace = Arc::new(Trace::new());
    let result = crate::run(binding, request, Some(&trace)).await;
    (result, trace.collected())
}

/// The trace as AdmissionReview warnings: one per entry, then one saying how many were dropped.
pub fn warnings(binding: &str, collected: &Collected) -> Vec<String> {
    let mut warnings: Vec<String> = collected
        .entries
        .iter()
        .map(|e| format!("{binding} trace: {e}"))
        .collect();
    if collected.dropped > 0 {
        warnings.push(format!(
            "{binding} trace: {} more entries dropped (a trace keeps {MAX_ENTRIES} entries and {} KiB; failed checks first)",
            collected.dropped,
            MAX_BYTES >> 10
        ));
    }
    warnings
}
