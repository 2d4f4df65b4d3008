//! Shadow evaluation: a binding's candidate plugin version (`shadow:` in its configuration),
//! evaluated on the same live requests as the serving version, to upgrade a policy with evidence.
//!
//! The candidate is loaded beside the serving version (through the same `Loader`, by the binding
//! set) and never answers: [`observe`] is called once the serving verdict is known and spawns the
//! candidate's evaluation, so the caller's answer is neither delayed nor changed by it. A
//! semaphore sized `ceil(cpuShare × cores)` caps how many candidate evaluations run at once (each
//! is one sandbox on one thread, so this bounds the cores the candidate takes); a request that
//! finds no permit is skipped and counted, never queued, so a slow candidate cannot build a
//! backlog. A candidate that fails to load is reported (`/readyz`, `GET /shadow`) and never fails
//! the binding.
//!
//! Verdicts are compared on `allowed`, `message` and `patch`. Counts go to the Prometheus family
//! [`metrics`] (registered by `corbel-telemetry`: `corbel_shadow_evaluations_total{binding,
//! result}`), and the last `keep` disagreements (the request, Secret data redacted and large
//! requests cut down to their identity, with both verdicts) to a ring that [`Shadow::report`]
//! reads for `GET /shadow/{binding}` and `corbel shadow report`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::config::BindingConfig;
use crate::{Binding, EvaluationError, Request, Spec, Verdict};
use corbel_runtime::{Limits, Plugin};

/// The largest request (serialized) kept whole with a disagreement; a larger one is kept as its
/// identity only, so the ring holds at most `keep` × this much.
pub const MAX_KEPT_REQUEST_BYTES: usize = 64 << 10;
/// The most disagreements a binding may keep.
pub const MAX_KEEP: usize = 10_000;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    pub binding: String,
    /// `agreed`, `disagreed`, `skipped` or `error`.
    pub result: String,
}

static METRICS: LazyLock<Family<ShadowLabels, Counter>> = LazyLock::new(Family::default);

/// Candidate evaluations by binding and result, for the host's Prometheus registry (a clone
/// shares the counters).
pub fn metrics() -> &'static Family<ShadowLabels, Counter> {
    &METRICS
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    agreed: AtomicU64,
    disagreed: AtomicU64,
    skipped: AtomicU64,
    errors: AtomicU64,
}

/// A binding's candidate version and what it made of the live requests so far.
#[derive(Debug)]
pub struct Shadow {
    binding: String,
    /// The candidate as the configuration names it (a file or `oci://` reference).
    reference: String,
    /// The loaded candidate, or why it did not load.
    candidate: Result<Arc<Binding>, String>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    cpu_share: f64,
    keep: usize,
    since: SystemTime,
    counts: Counts,
    kept: Mutex<VecDeque<Disagreement>>,
    last_error: Mutex<Option<String>>,
}

/// One verdict as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictView {
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The RFC 6902 patch, for mutate bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<serde_json::Value>,
}

impl From<&Verdict> for VerdictView {
    fn from(v: &Verdict) -> Self {
        Self {
            allowed: v.allowed,
            message: v.message.clone(),
            code: v.code,
            warnings: v.warnings.clone(),
            patch: v
                .patch
                .as_ref()
                .map(|p| serde_json::to_value(p).expect("a JSON Patch always serializes")),
        }
    }
}

/// A request on which the candidate answered otherwise than the serving version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Disagreement {
    /// When the candidate answered (RFC 3339).
    pub at: String,
    pub uid: String,
    pub operation: String,
    /// `group/version/Kind` (`v1/Pod` for the core group).
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    /// Which of `allowed`, `message`, `patch` differ.
    pub differs: Vec<String>,
    pub serving: VerdictView,
    pub candidate: VerdictView,
    /// The AdmissionRequest (Secret `data` and `stringData` redacted), or only its identity with
    /// `truncated: true` when it is over [`MAX_KEPT_REQUEST_BYTES`].
    pub request: serde_json::Value,
}

/// What `GET /shadow/{binding}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub binding: String,
    /// The serving version's plugin.
    pub serving: String,
    /// The candidate as configured.
    pub candidate: String,
    pub loaded: bool,
    /// Why the candidate did not load; the binding serves regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When this candidate was loaded (RFC 3339): the counts start there.
    pub since: String,
    pub cpu_share: f64,
    /// Candidate evaluations allowed at once.
    pub concurrency: usize,
    pub keep: usize,
    /// Live requests the serving version answered since the candidate was loaded.
    pub requests: u64,
    /// Requests both versions answered: `agreed + disagreed`.
    pub compared: u64,
    pub agreed: u64,
    pub disagreed: u64,
    /// `disagreed / compared` (0 before any comparison).
    pub disagreement_rate: f64,
    /// Requests not given to the candidate: no free permit, or the candidate is not loaded.
    pub skipped: u64,
    /// Requests one of the two versions could not evaluate.
    pub errors: u64,
    /// Candidate evaluations still running.
    pub in_flight: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last disagreements, oldest first.
    pub disagreements: Vec<Disagreement>,
}

/// Spawns the candidate's evaluation of `request` when the binding has one; returns at once.
/// Called by admission once the serving version's result is known. Dry runs (`kubectl
/// --dry-run=server`, and the background audit's pass over every object) are not live traffic:
/// they are not shadowed.
pub fn observe(binding: &Binding, request: &Request, serving: &Result<Verdict, EvaluationError>) {
    if let Some(shadow) = &binding.shadow
        && !request.dry_run
    {
        shadow.clone().start(request, serving);
    }
}

enum Tally {
    Agreed,
    Disagreed,
    Skipped,
    Error,
}

impl Shadow {
    fn count(&self, result: Tally) {
        let (counter, label) = match result {
            Tally::Agreed => (&self.counts.agreed, "agreed"),
            Tally::Disagreed => (&self.counts.disagreed, "disagreed"),
            Tally::Skipped => (&self.counts.skipped, "skipped"),
            Tally::Error => (&self.counts.errors, "error"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        METRICS
            .get_or_create(&ShadowLabels {
                binding: self.binding.clone(),
                result: label.to_owned(),
            })
            .inc();
    }

    fn error(&self, message: String) {
        tracing::debug!(binding = %self.binding, error = %message, "shadow: not compared");
        *self.last_error.lock().unwrap() = Some(message);
        self.count(Tally::Error);
    }

    fn start(self: Arc<Self>, request: &Request, serving: &Result<Verdict, EvaluationError>) {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(candidate) = &self.candidate else {
            return self.count(Tally::Skipped);
        };
        let serving = match serving {
            Ok(verdict) => verdict.clone(),
            Err(e) => return self.error(format!("the serving version {e}")),
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.count(Tally::Skipped);
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return self.count(Tally::Skipped);
        };
        let (candidate, request) = (candidate.clone(), request.clone());
        runtime.spawn(async move {
            let _permit = permit;
            match crate::evaluate(&candidate, &request).await {
                Ok(verdict) => self.compare(&request, &serving, &verdict),
                Err(e) => self.error(format!("the candidate {e}")),
            }
        });
    }

    fn compare(&self, request: &Request, serving: &Verdict, candidate: &Verdict) {
        let mut differs = Vec::new();
        if serving.allowed != candidate.allowed {
            differs.push("allowed".to_owned());
        }
        if serving.message != candidate.message {
            differs.push("message".to_owned());
        }
        if serving.patch != candidate.patch {
            differs.push("patch".to_owned());
        }
        if differs.is_empty() {
            return self.count(Tally::Agreed);
        }
        tracing::debug!(binding = %self.binding, uid = %request.uid, ?differs, "shadow: the candidate disagrees");
        let kind = &request.kind;
        let disagreement = Disagreement {
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            uid: request.uid.clone(),
            operation: serde_json::to_value(&request.operation)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            kind: if kind.group.is_empty() {
                format!("{}/{}", kind.version, kind.kind)
            } else {
                format!("{}/{}/{}", kind.group, kind.version, kind.kind)
            },
            namespace: request.namespace.clone().unwrap_or_default(),
            name: request.name.clone(),
            differs,
            serving: serving.into(),
            candidate: candidate.into(),
            request: kept_request(request),
        };
        {
            let mut kept = self.kept.lock().unwrap();
            if kept.len() == self.keep {
                kept.pop_front();
            }
            kept.push_back(disagreement);
        }
        self.count(Tally::Disagreed);
    }

    /// The binding's shadow report: counts since the candidate was loaded, and the last
    /// disagreements.
    pub fn report(&self, serving: &str) -> Report {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counts;
        let (requests, agreed, disagreed, skipped, errors) = (
            get(&c.requests),
            get(&c.agreed),
            get(&c.disagreed),
            get(&c.skipped),
            get(&c.errors),
        );
        let compared = agreed + disagreed;
        Report {
            binding: self.binding.clone(),
            serving: serving.to_owned(),
            candidate: self.reference.clone(),
            loaded: self.candidate.is_ok(),
            error: self.candidate.as_ref().err().cloned(),
            since: humantime::format_rfc3339_seconds(self.since).to_string(),
            cpu_share: self.cpu_share,
            concurrency: self.concurrency,
            keep: self.keep,
            requests,
            compared,
            agreed,
            disagreed,
            disagreement_rate: if compared == 0 {
                0.0
            } else {
                disagreed as f64 / compared as f64
            },
            skipped,
            errors,
            in_flight: requests.saturating_sub(compared + skipped + errors),
            last_error: self.last_error.lock().unwrap().clone(),
            disagreements: self.kept.lock().unwrap().iter().cloned().collect(),
        }
    }

    /// For `/readyz`: the candidate as configured, whether it loaded, and why not.
    pub fn readiness(&self) -> serde_json::Value {
        match &self.candidate {
            Ok(c) => {
                serde_json::json!({"plugin": self.reference, "loaded": true, "candidate": c.plugin.name()})
            }
            Err(e) => {
                serde_json::json!({"plugin": self.reference, "loaded": false, "lastError": e})
            }
        }
    }
}

/// The request as kept with a disagreement: Secret data redacted, cut to its identity when large.
fn kept_request(request: &Request) -> serde_json::Value {
    let mut value = serde_json::to_value(request).unwrap_or(serde_json::Value::Null);
    if request.kind.group.is_empty() && request.kind.kind == "Secret" {
        for pointer in [
            "/object/data",
            "/object/stringData",
            "/oldObject/data",
            "/oldObject/stringData",
        ] {
            if let Some(serde_json::Value::Object(map)) = value.pointer_mut(pointer) {
                for v in map.values_mut() {
                    *v = "REDACTED".into();
                }
            }
        }
    }
    let size = serde_json::to_vec(&value).map_or(0, |v| v.len());
    if size > MAX_KEPT_REQUEST_BYTES {
        value = serde_json::json!({
            "uid": request.uid, "kind": request.kind, "operation": request.operation,
            "namespace": request.namespace, "name": request.name,
            "truncated": true, "bytes": size,
        });
    }
    value
}

/// Loads a binding's candidate from its compiled plugin (`None` when the binding has no
/// `shadow:`). Every failure is kept in the returned [`Shadow`], never returned as an error: the
/// serving version serves regardless.
pub(crate) async fn load(
    config: &BindingConfig,
    max_memory: usize,
    compiled: Option<Result<Arc<Plugin>, String>>,
) -> Option<Arc<Shadow>> {
    let shadow = config.shadow.as_ref()?;
    let reference = shadow.plugin.display().to_string();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency = ((shadow.cpu_share * cores as f64).ceil() as usize).max(1);
    let candidate = async {
        if !(shadow.cpu_share > 0.0 && shadow.cpu_share <= 1.0) {
            return Err(format!(
                "shadow.cpuShare {} is not in (0, 1]: it is the share of the host's cores the candidate may use",
                shadow.cpu_share
            ));
        }
        if shadow.keep == 0 || shadow.keep > MAX_KEEP {
            return Err(format!(
                "shadow.keep {} is not between 1 and {MAX_KEEP}",
                shadow.keep
            ));
        }
        if config.memory_limit > max_memory {
            return Err(format!(
                "memoryLimit {} MiB is over the host's maximum of {} MiB",
                config.memory_limit >> 20,
                max_memory >> 20
            ));
        }
        let plugin = compiled
            .unwrap_or_else(|| Err("it was not compiled".into()))
            .map_err(|e| format!("candidate plugin {reference} does not load: {e}"))?;
        let settings = match (&shadow.settings, &shadow.settings_file) {
            (_, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    format!("failed to read shadow settings file {}: {e}", file.display())
                })?;
                serde_yaml_ng::from_str(&text).map_err(|e| {
                    format!(
                        "shadow settings file {} is not YAML or JSON: {e}",
                        file.display()
                    )
                })?
            }
            (Some(settings), None) => settings.clone(),
            (None, None) => config.settings().map_err(|e| format!("{e:#}"))?,
        };
        let name = format!("{} (shadow)", config.name);
        let spec = Spec {
            name: &name,
            settings: &settings,
            mode: config.mode,
            limits: Limits {
                timeout: config.timeout,
                memory: config.memory_limit,
            },
            failure_policy: config.failure_policy,
        };
        Binding::new(plugin, spec)
            .await
            .map(Arc::new)
            .map_err(|e| format!("candidate {e}"))
    }
    .await;
    match &candidate {
        Ok(c) => {
            tracing::info!(binding = %config.name, candidate = %c.plugin.name(), concurrency, "shadow candidate loaded")
        }
        Err(e) => {
            tracing::error!(binding = %config.name, error = %e, "shadow candidate failed to load: the binding serves without it")
        }
    }
    Some(Arc::new(Shadow {
        binding: config.name.clone(),
        reference,
        candidate,
        permits: Arc::new(Semaphore::new(concurrency)),
        concurrency,
        cpu_share: shadow.cpu_share,
        keep: shadow.keep.clamp(1, MAX_KEEP),
        since: SystemTime::now(),
        counts: Counts::default(),
        kept: Mutex::new(VecDeque::new()),
        last_error: Mutex::new(None),
    }))
}
