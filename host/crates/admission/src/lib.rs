//! Admission: one AdmissionRequest through one binding. This module knows nothing of HTTP; the
//! webhook server ([`answer`]) and the embedded API's inline admission ([`decide`]) both go
//! through [`decide`]; `corbel eval` and `corbel test` call [`evaluate`].
//!
//! [`evaluate`] runs the plugin and checks what it returned; [`decide`] applies the binding's
//! failure policy to evaluation errors (and to a binding that is not loaded); [`answer`] writes
//! the decision as the AdmissionResponse.

pub mod background;
pub mod bindings;
pub mod config;
mod patch;
pub mod raw;
pub mod record;
pub mod review;
pub mod shadow;
pub mod trace;

use std::sync::Arc;
use std::time::Instant;

use kube_core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use corbel_runtime::bindings::latest as wit;
use corbel_runtime::{Call, Limits, LogContext, Plugin, SandboxError};

pub use patch::json_type;
pub use review::{Object, ReviewError, parse_review};

/// An admission request as the API server sends it, its objects kept as the JSON text they came
/// in ([`Object`]; why, in [`review`]).
pub type Request = AdmissionRequest<Object>;

/// The longest denial message a plugin may return.
pub const MAX_MESSAGE_BYTES: usize = 64 << 10;
/// The most warnings a plugin may return, and the longest each may be.
pub const MAX_WARNINGS: usize = 64;
pub const MAX_WARNING_BYTES: usize = 4 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Mode {
    /// Decide allowed or denied; never change the object.
    Validate,
    /// Decide, and may change the object (answered with a JSON Patch).
    Mutate,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Validate => "validate",
            Mode::Mutate => "mutate",
        }
    }
}

/// What to answer when a plugin cannot be evaluated: Kubernetes' own `failurePolicy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum FailurePolicy {
    /// Deny with code 500 and a message naming binding, plugin and cause.
    #[default]
    Fail,
    /// Admit with a warning naming binding, plugin and cause.
    Ignore,
}

/// What a binding's denials do, as a ValidatingAdmissionPolicyBinding's `validationActions` say
/// it. Only `deny` ever refuses a request: a binding rolled out in `warn` or `audit` never blocks,
/// not even when its plugin cannot be evaluated (the failure policy's denial is softened too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Enforcement {
    /// Denials are answered as denials.
    #[default]
    Deny,
    /// Admits, and returns the denial as an AdmissionReview warning (kubectl prints it).
    Warn,
    /// Admits, records the verdict (log and metrics) and adds an audit annotation.
    Audit,
}

impl Enforcement {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Deny => "deny",
            Enforcement::Warn => "warn",
            Enforcement::Audit => "audit",
        }
    }
}

/// A future a [`Policy`] returns, boxed so that the trait stays object-safe.
pub type PolicyFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, SandboxError>> + Send + 'a>>;

/// What answers a binding's requests. In production this is always a loaded [`Plugin`]; the trait
/// exists so that a benchmark can put a native baseline behind exactly the same evaluation path
/// (same request conversion, same output checks, same server) without admission knowing of it.
pub trait Policy: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    /// The `corbel:plugin` version the policy was built against.
    fn wit_version(&self) -> &str;
    /// `Ok(Err(message))` when the policy refuses the settings.
    #[allow(
        clippy::ptr_arg,
        reason = "the settings as Plugin takes them, with no copy"
    )]
    fn validate_settings<'a>(
        &'a self,
        settings: &'a String,
        limits: Limits,
        log: &'a Arc<LogContext>,
    ) -> PolicyFuture<'a, Result<(), String>>;
    /// `Ok(Err(message))` when the policy returned an error instead of an answer. With `trace`,
    /// the call's log lines and checks are collected into it ("why denied"); a policy without a
    /// log collects nothing.
    #[allow(
        clippy::ptr_arg,
        reason = "the settings as Plugin takes them, with no copy"
    )]
    fn admit<'a>(
        &'a self,
        call: Call,
        request: &'a wit::AdmissionRequest,
        settings: &'a String,
        limits: Limits,
        log: &'a Arc<LogContext>,
        trace: Option<&'a Arc<trace::Trace>>,
    ) -> PolicyFuture<'a, Result<wit::AdmissionResponse, String>>;
}

impl Policy for Plugin {
    fn name(&self) -> &str {
        Plugin::name(self)
    }

    fn wit_version(&self) -> &str {
        Plugin::wit_version(self)
    }

    fn validate_settings<'a>(
        &'a self,
        settings: &'a String,
        limits: Limits,
        log: &'a Arc<LogContext>,
    ) -> PolicyFuture<'a, Result<(), String>> {
        Box::pin(Plugin::validate_settings(self, settings, limits, log))
    }

    fn admit<'a>(
        &'a self,
        call: Call,
        request: &'a wit::AdmissionRequest,
        settings: &'a String,
        limits: Limits,
        log: &'a Arc<LogContext>,
        trace: Option<&'a Arc<trace::Trace>>,
    ) -> PolicyFuture<'a, Result<wit::AdmissionResponse, String>> {
        Box::pin(Plugin::admit_traced(
            self, call, request, settings, limits, log, trace,
        ))
    }
}

/// A loaded binding: a plugin with its settings, mode, limits and failure policy.
#[derive(Debug)]
pub struct Binding {
    pub name: String,
    pub plugin: Arc<dyn Policy>,
    /// The settings as JSON text, passed to every call.
    pub settings: String,
    pub mode: Mode,
    pub limits: Limits,
    pub failure_policy: FailurePolicy,
    /// What the plugin's denials do; [`Enforcement::Deny`] unless the binding's configuration
    /// says otherwise (set after [`Binding::new`]).
    pub enforcement: Enforcement,
    /// The candidate version evaluated beside this one on live requests (set after
    /// [`Binding::new`]; `docs/shadow.md`).
    pub shadow: Option<Arc<shadow::Shadow>>,
    log: Arc<LogContext>,
    /// Denials carry the plugin's log lines and checks as warnings (`trace: true`).
    pub trace: bool,
    /// Writes requests and verdicts as `corbel test` cases (`record:`).
    pub recorder: Option<Arc<record::Recorder>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("plugin {plugin} refused the settings: {message}")]
    Settings { plugin: String, message: String },
    #[error("plugin {plugin} {source} while validating its settings")]
    Sandbox {
        plugin: String,
        source: SandboxError,
    },
}

/// What a binding is besides its plugin: read from a [`config::BindingConfig`] by the binding set
/// ([`bindings`]), or given by `corbel eval` and `corbel test`.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub name: &'a str,
    pub settings: &'a serde_json::Value,
    pub mode: Mode,
    pub limits: Limits,
    pub failure_policy: FailurePolicy,
}

impl<'a> Spec<'a> {
    /// A binding with the default limits and failure policy (`Fail`).
    pub fn new(name: &'a str, settings: &'a serde_json::Value, mode: Mode) -> Self {
        Self {
            name,
            settings,
            mode,
            limits: Limits::default(),
            failure_policy: FailurePolicy::default(),
        }
    }
}

impl Binding {
    /// Makes a binding from a loaded plugin (or any [`Policy`]), calling `validate-settings` first.
    pub async fn new(plugin: Arc<dyn Policy>, spec: Spec<'_>) -> Result<Self, BindingError> {
        let Spec {
            name,
            settings,
            mode,
            limits,
            failure_policy,
        } = spec;
        let log = Arc::new(LogContext {
            binding: name.to_owned(),
            plugin: plugin.name().to_owned(),
        });
        let settings = settings.to_string();
        match plugin.validate_settings(&settings, limits, &log).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(BindingError::Settings {
                    plugin: plugin.name().to_owned(),
                    message,
                });
            }
            Err(source) => {
                return Err(BindingError::Sandbox {
                    plugin: plugin.name().to_owned(),
                    source,
                });
            }
        }
        Ok(Self {
            name: name.to_owned(),
            plugin,
            settings,
            mode,
            limits,
            failure_policy,
            enforcement: Enforcement::Deny,
            shadow: None,
            log,
            trace: false,
            recorder: None,
        })
    }
}

/// A plugin's decision, checked and ready to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    pub message: Option<String>,
    pub code: Option<u16>,
    pub warnings: Vec<String>,
    /// RFC 6902 operations turning the submitted object into the plugin's; only for mutate bindings.
    pub patch: Option<json_patch::Patch>,
}

/// Why a request could not be evaluated. The binding's failure policy decides the answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EvaluationError {
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
    #[error("returned an error: {0}")]
    Plugin(String),
    #[error("returned malformed output: {0}")]
    Malformed(String),
}

impl EvaluationError {
    /// A short, stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            EvaluationError::Sandbox(SandboxError::Timeout(_)) => "timeout",
            EvaluationError::Sandbox(SandboxError::MemoryLimit(_)) => "memory_limit",
            EvaluationError::Sandbox(SandboxError::Trap(_)) => "trap",
            EvaluationError::Sandbox(SandboxError::Busy(..)) => "busy",
            EvaluationError::Plugin(_) => "plugin_error",
            EvaluationError::Malformed(_) => "malformed_output",
        }
    }
}

/// Runs the binding's plugin on one request and checks its answer.
pub async fn evaluate(binding: &Binding, request: &Request) -> Result<Verdict, EvaluationError> {
    run(binding, request, None).await
}

/// [`evaluate`] as a served binding does it: recorded when it records, and a denial carrying the
/// trace as warnings when it traces (after recording: a replayed case is evaluated untraced).
async fn evaluate_bound(binding: &Binding, request: &Request) -> Result<Verdict, EvaluationError> {
    if !binding.trace && binding.recorder.is_none() {
        return run(binding, request, None).await;
    }
    let collect = binding.trace.then(|| Arc::new(trace::Trace::new()));
    let mut result = run(binding, request, collect.as_ref()).await;
    if let (Some(recorder), Ok(verdict)) = (&binding.recorder, &result) {
        recorder.record(request, verdict);
    }
    if let (Some(collected), Ok(verdict)) = (&collect, &mut result)
        && !verdict.allowed
    {
        let warnings = trace::warnings(&binding.name, &collected.collected());
        verdict.warnings.extend(warnings);
    }
    result
}

/// [`evaluate`], with the plugin's log lines and checks collected into `trace` when given.
async fn run(
    binding: &Binding,
    request: &Request,
    trace: Option<&Arc<trace::Trace>>,
) -> Result<Verdict, EvaluationError> {
    let call = match binding.mode {
        Mode::Validate => Call::Validate,
        Mode::Mutate => Call::Mutate,
    };
    let input = to_wit(request);
    let output = binding
        .plugin
        .admit(
            call,
            &input,
            &binding.settings,
            binding.limits,
            &binding.log,
            trace,
        )
        .await?
        .map_err(EvaluationError::Plugin)?;
    check(binding.mode, request, output)
}

/// What [`admit`] did, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub mutated: bool,
    /// The evaluation error's kind, when the failure policy answered.
    pub error: Option<&'static str>,
    /// Set when the request would have been denied and the binding's enforcement (`warn` or
    /// `audit`) admitted it; `allowed` is then true.
    pub unenforced: Option<Enforcement>,
}

/// What a binding made of one request, before it is written as an AdmissionResponse.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The plugin answered: [`respond`] writes it (the embedded API applies its patch as it is).
    Verdict(Verdict),
    /// The plugin could not be evaluated, or the binding is not loaded: the failure policy's answer.
    /// (Boxed: the rare path, and an AdmissionResponse is several times a verdict's size.)
    Failed(Box<AdmissionResponse>),
    /// A denial (or failure-policy denial) that the binding's enforcement turned into an
    /// admission, with the warning or audit annotation written; never carries a patch.
    Unenforced(Box<AdmissionResponse>),
}

impl Decision {
    /// The AdmissionResponse for `request`.
    pub fn respond(self, request: &Request) -> AdmissionResponse {
        match self {
            Decision::Verdict(verdict) => respond(request, verdict),
            Decision::Failed(response) | Decision::Unenforced(response) => *response,
        }
    }
}

/// Evaluates with a loaded binding: the verdict, or the failure policy's answer to an evaluation
/// error.
async fn judge(binding: &Binding, request: &Request) -> (Decision, Outcome) {
    let span = tracing::info_span!("admit", binding = %binding.name, plugin = %binding.plugin.name(), uid = %request.uid);
    let started = Instant::now();
    let result = evaluate_bound(binding, request)
        .instrument(span.clone())
        .await;
    shadow::observe(binding, request, &result);
    let _enter = span.enter();
    match result {
        Ok(verdict) => {
            tracing::debug!(
                allowed = verdict.allowed,
                elapsed_us = started.elapsed().as_micros() as u64,
                "evaluated"
            );
            let outcome = Outcome {
                allowed: verdict.allowed,
                mutated: verdict.patch.is_some(),
                error: None,
                unenforced: None,
            };
            (Decision::Verdict(verdict), outcome)
        }
        Err(error) => {
            let cause = format!(
                "binding {:?} (plugin {:?}, corbel:plugin@{}) {error}",
                binding.name,
                binding.plugin.name(),
                binding.plugin.wit_version()
            );
            tracing::warn!(error = %cause, failure_policy = ?binding.failure_policy, "evaluation failed");
            let outcome = Outcome {
                allowed: binding.failure_policy == FailurePolicy::Ignore,
                mutated: false,
                error: Some(error.kind()),
                unenforced: None,
            };
            let response = fail(request, binding.failure_policy, &cause);
            (Decision::Failed(Box::new(response)), outcome)
        }
    }
}

/// Decides one request with one entry of the binding set, loaded or not, and the outcome for
/// metrics. The one admission path: the webhook server ([`answer`]) and the embedded API's inline
/// admission both decide through here, so a binding that failed to load gets the same
/// failure-policy answer wherever the request came from.
pub async fn decide(name: &str, entry: &bindings::Entry, request: &Request) -> (Decision, Outcome) {
    let (decision, outcome) = match entry {
        bindings::Entry::Loaded(binding) => judge(binding, request).await,
        bindings::Entry::Failed {
            failure_policy,
            reason,
            ..
        } => {
            let outcome = Outcome {
                allowed: *failure_policy == FailurePolicy::Ignore,
                mutated: false,
                error: Some("not_loaded"),
                unenforced: None,
            };
            let cause = format!("binding {name:?} is not loaded: {reason}");
            let response = fail(request, *failure_policy, &cause);
            (Decision::Failed(Box::new(response)), outcome)
        }
    };
    enforce(name, entry.enforcement(), request, decision, outcome)
}

/// The audit annotation's key: the API server prefixes it with the webhook's name, so the audit
/// log reads `<webhook>/would-deny`.
pub const AUDIT_ANNOTATION: &str = "would-deny";

/// Applies the binding's enforcement to a denial: `deny` answers it; `warn` admits with the denial
/// as a warning; `audit` admits with it as an audit annotation and a log record. Either way the
/// outcome says what would have been denied, for metrics. Written once, here, so the webhooks
/// and inline admission (and anything else that decides) soften a denial the same way.
fn enforce(
    name: &str,
    enforcement: Enforcement,
    request: &Request,
    decision: Decision,
    mut outcome: Outcome,
) -> (Decision, Outcome) {
    if enforcement == Enforcement::Deny || outcome.allowed {
        return (decision, outcome);
    }
    let (message, mut warnings) = match decision {
        Decision::Verdict(verdict) => (
            verdict.message.unwrap_or_else(|| "denied by policy".into()),
            verdict.warnings,
        ),
        Decision::Failed(response) | Decision::Unenforced(response) => (
            response.result.message.clone(),
            response.warnings.unwrap_or_default(),
        ),
    };
    let mut response = AdmissionResponse::from(request);
    let said = format!(
        "binding {name:?} (enforcement: {}) would deny the request: {message}",
        enforcement.as_str()
    );
    match enforcement {
        Enforcement::Warn => warnings.push(said),
        Enforcement::Audit => {
            // A dry run (kubectl --dry-run=server, or a background audit going through every
            // object) is not a request that was admitted: at debug, so an audit does not flood
            // the log with one record per failing object.
            if request.dry_run {
                tracing::debug!(binding = %name, uid = %request.uid, message = %message,
                    "would deny (enforcement: audit): admitted (dry run)");
            } else {
                tracing::info!(binding = %name, uid = %request.uid, kind = %request.kind.kind,
                    namespace = request.namespace.as_deref().unwrap_or(""), name = %request.name,
                    user = request.user_info.username.as_deref().unwrap_or(""),
                    error = outcome.error.unwrap_or(""), message = %message,
                    "would deny (enforcement: audit): admitted");
            }
            response
                .audit_annotations
                .insert(AUDIT_ANNOTATION.to_owned(), message);
        }
        Enforcement::Deny => unreachable!("returned above"),
    }
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    outcome.allowed = true;
    outcome.mutated = false;
    outcome.unenforced = Some(enforcement);
    (Decision::Unenforced(Box::new(response)), outcome)
}

/// [`decide`], written as the AdmissionResponse.
pub async fn answer(
    name: &str,
    entry: &bindings::Entry,
    request: &Request,
) -> (AdmissionResponse, Outcome) {
    let (decision, outcome) = decide(name, entry, request).await;
    (decision.respond(request), outcome)
}

/// The answer to a request whose binding could not be evaluated (or is not loaded).
pub fn fail(request: &Request, policy: FailurePolicy, cause: &str) -> AdmissionResponse {
    match policy {
        FailurePolicy::Fail => {
            let mut response = AdmissionResponse::from(request).deny(cause);
            response.result.code = 500;
            response.result.reason = "InternalError".into();
            response
        }
        FailurePolicy::Ignore => {
            let mut response = AdmissionResponse::from(request);
            response.warnings = Some(vec![format!(
                "{cause}; admitted because its failure policy is Ignore"
            )]);
            response
        }
    }
}

pub fn respond(request: &Request, verdict: Verdict) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    if !verdict.allowed {
        response = response.deny(verdict.message.unwrap_or_else(|| "denied by policy".into()));
        response.result.code = verdict.code.unwrap_or(403);
        response.result.reason = "Forbidden".into();
        return response;
    }
    if let Some(patch) = verdict.patch {
        response = response
            .with_patch(patch)
            .expect("a JSON Patch always serializes");
    }
    response
}

/// The AdmissionReview answer as JSON, with `patch` base64-encoded as Kubernetes documents it
/// (kube-core would write the bytes as an array of numbers).
pub fn review_json(response: AdmissionResponse) -> Vec<u8> {
    use base64::Engine as _;
    if response.patch.is_none() {
        // Most answers carry no patch: serialize once, straight to bytes.
        return serde_json::to_vec(&response.into_review())
            .expect("an AdmissionReview always serializes");
    }
    let mut review =
        serde_json::to_value(response.into_review()).expect("an AdmissionReview always serializes");
    if let Some(patch) = review.pointer_mut("/response/patch")
        && let serde_json::Value::Array(bytes) = patch
    {
        let bytes: Vec<u8> = bytes
            .iter()
            .filter_map(|b| b.as_u64())
            .map(|b| b as u8)
            .collect();
        *patch = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    serde_json::to_vec(&review).expect("a JSON value always serializes")
}

fn to_wit(request: &Request) -> wit::AdmissionRequest {
    // The objects' text as it came: nothing to serialise.
    let json = |value: Option<&Object>| value.map(|v| v.json().into_owned());
    let gvk = |g: &kube_core::GroupVersionKind| wit::GroupVersionKind {
        group: g.group.clone(),
        version: g.version.clone(),
        kind: g.kind.clone(),
    };
    let gvr = |g: &kube_core::GroupVersionResource| wit::GroupVersionResource {
        group: g.group.clone(),
        version: g.version.clone(),
        resource: g.resource.clone(),
    };
    let user = &request.user_info;
    wit::AdmissionRequest {
        uid: request.uid.clone(),
        kind: gvk(&request.kind),
        resource: gvr(&request.resource),
        sub_resource: request.sub_resource.clone(),
        request_kind: request.request_kind.as_ref().map(gvk),
        request_resource: request.request_resource.as_ref().map(gvr),
        request_sub_resource: request.request_sub_resource.clone(),
        operation: match request.operation {
            Operation::Create => wit::Operation::Create,
            Operation::Update => wit::Operation::Update,
            Operation::Delete => wit::Operation::Delete,
            Operation::Connect => wit::Operation::Connect,
        },
        namespace: request.namespace.clone().filter(|n| !n.is_empty()),
        name: Some(request.name.clone()).filter(|n| !n.is_empty()),
        object: json(request.object.as_ref()),
        old_object: json(request.old_object.as_ref()),
        user_info: wit::UserInfo {
            username: user.username.clone().unwrap_or_default(),
            uid: user.uid.clone().unwrap_or_default(),
            groups: user.groups.clone().unwrap_or_default(),
            extra: user
                .extra
                .iter()
                .flatten()
                .map(|(k, v)| wit::UserExtra {
                    key: k.clone(),
                    values: v.clone(),
                })
                .collect(),
        },
        dry_run: request.dry_run,
        options: request.options.as_ref().map(|o| o.0.to_string()),
    }
}

/// Checks a plugin's answer, and for mutate bindings turns the changed object into a patch.
fn check(
    mode: Mode,
    request: &Request,
    output: wit::AdmissionResponse,
) -> Result<Verdict, EvaluationError> {
    let malformed = |why: String| Err(EvaluationError::Malformed(why));
    if let Some(message) = &output.message
        && message.len() > MAX_MESSAGE_BYTES
    {
        return malformed(format!(
            "the message is {} bytes, over the limit of {MAX_MESSAGE_BYTES}",
            message.len()
        ));
    }
    if let Some(code) = output.code
        && !(400..=599).contains(&code)
    {
        return malformed(format!(
            "status code {code} is not an HTTP error code (400-599)"
        ));
    }
    if output.warnings.len() > MAX_WARNINGS {
        return malformed(format!(
            "{} warnings, over the limit of {MAX_WARNINGS}",
            output.warnings.len()
        ));
    }
    if let Some(w) = output.warnings.iter().find(|w| w.len() > MAX_WARNING_BYTES) {
        return malformed(format!(
            "a warning is {} bytes, over the limit of {MAX_WARNING_BYTES}",
            w.len()
        ));
    }
    let patch = match (mode, output.mutated_object) {
        (Mode::Mutate, Some(mutated)) if output.allowed => {
            let Some(original) = &request.object else {
                return malformed(format!(
                    "it returned a changed object, but a {:?} request has no object to change",
                    request.operation
                ));
            };
            let mutated: serde_json::Value = match serde_json::from_str(&mutated) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                Ok(other) => {
                    return malformed(format!(
                        "the changed object is a JSON {}, not an object",
                        patch::json_type(&other)
                    ));
                }
                Err(e) => return malformed(format!("the changed object is not JSON: {e}")),
            };
            patch::diff(&original.value(), &mutated)?
        }
        _ => None,
    };
    Ok(Verdict {
        allowed: output.allowed,
        message: output.message,
        code: output.code,
        warnings: output.warnings,
        patch,
    })
}

#[cfg(test)]
mod tests;
