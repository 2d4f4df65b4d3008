//! Record and replay: live AdmissionRequests and their verdicts written as `corbel test` cases
//! (docs/testing.md's format, so `corbel test DIR --plugin NEW.wasm` replays them against another
//! version and says what changed), with Secret data and configured fields redacted.
//!
//! A binding with `record: {dir, redact, maxCases}` gets a [`Recorder`]: the request path only
//! clones the request and hands it to a bounded queue (`try_send`: when the writer falls behind,
//! the request is counted and not recorded); one thread per recording binding redacts, names and
//! writes the case. `corbel record` uses the same [`CaseWriter`] on a file of AdmissionReviews.
//!
//! File names are deterministic and safe: `<operation>-<kind>-<namespace>-<name>-<hash>.yaml`,
//! each part cut to `[a-z0-9.-]`, the hash a digest of the redacted request (without its uid),
//! the settings and the verdict. The same request with the same verdict is therefore written
//! once; the folder holds at most `maxCases` case files, those already there included.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

use crate::config::RecordConfig;
use crate::{Mode, Request, Verdict};

/// The value that replaces a redacted field.
pub const REDACTED: &str = "REDACTED";
/// The suite file `corbel test` reads (docs/testing.md).
pub const SUITE_FILE: &str = "corbel-test.yaml";
/// Requests waiting for the writer; past it, requests are counted as `busy` and not recorded.
const QUEUE: usize = 256;
/// kubectl keeps the whole applied object here: for a Secret, its data in clear.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What a recorder did, for the log and for callers.
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Case files written.
    pub written: AtomicU64,
    /// Requests whose case (same request, settings and verdict) was already in the folder.
    pub duplicates: AtomicU64,
    /// Requests not recorded because the folder holds `maxCases` cases.
    pub over_cap: AtomicU64,
    /// Requests not recorded because the writer fell behind (the queue was full).
    pub busy: AtomicU64,
    /// Requests whose case could not be written (the error is logged).
    pub failed: AtomicU64,
}

/// The `corbel-test.yaml` of a recorded folder.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin: Option<PathBuf>,
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    mode: Option<Mode>,
}

/// One case file, in docs/testing.md's format.
#[derive(Debug, Serialize)]
struct Case<'a> {
    description: String,
    request: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
    expect: Expect,
}

#[derive(Debug, Serialize)]
struct Expect {
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<Value>,
}

/// What [`CaseWriter::write`] did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    New(PathBuf),
    Duplicate(PathBuf),
    OverCap,
}

/// Writes cases into one folder: redaction, names, the cap. Used by the [`Recorder`]'s thread
/// and by `corbel record`.
#[derive(Debug)]
pub struct CaseWriter {
    dir: PathBuf,
    /// Where the binding came from, for each case's description.
    source: String,
    redact: Vec<String>,
    max_cases: usize,
    cases: usize,
    settings: Value,
    mode: Mode,
    /// Whether the suite file says otherwise than the binding: cases then carry their own.
    own_settings: bool,
}

impl CaseWriter {
    /// Opens (creating it if needed) a folder of cases. Writes `corbel-test.yaml` with the
    /// settings, mode and plugin file when the folder has none; when it has one with other
    /// settings or mode, every new case carries its own.
    pub fn open(
        config: &RecordConfig,
        source: &str,
        settings: &Value,
        mode: Mode,
        plugin: Option<&Path>,
    ) -> anyhow::Result<Self> {
        for pointer in &config.redact {
            if !pointer.starts_with('/') {
                bail!(
                    "record.redact: {pointer:?} is not a JSON pointer into the object (it starts with `/`, e.g. /spec/password)"
                );
            }
        }
        let dir = &config.dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("record.dir {} cannot be created", dir.display()))?;
        let suite_file = dir.join(SUITE_FILE);
        let own_settings = match std::fs::read_to_string(&suite_file) {
            Ok(text) => {
                let suite: Suite = serde_yaml_ng::from_str(&text)
                    .with_context(|| format!("{} is not a suite file", suite_file.display()))?;
                suite.settings.as_ref() != Some(settings)
                    || suite.mode.unwrap_or(Mode::Validate) != mode
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let suite = Suite {
                    plugin: plugin.map(Path::to_path_buf),
                    settings: Some(settings.clone()),
                    mode: Some(mode),
                };
                let text = format!(
                    "# Recorded by corbel from {source}; replay with `corbel test {} [--plugin OTHER.wasm]`.\n{}",
                    dir.display(),
                    serde_yaml_ng::to_string(&suite).expect("a suite serializes")
                );
                write_new(&suite_file, text.as_bytes())
                    .with_context(|| format!("failed to write {}", suite_file.display()))?;
                false
            }
            Err(e) => {
                return Err(e).with_context(|| format!("failed to read {}", suite_file.display()));
            }
        };
        let cases = case_files(dir)?;
        Ok(Self {
            dir: dir.clone(),
            source: source.to_owned(),
            redact: config.redact.clone(),
            max_cases: config.max_cases,
            cases,
            settings: settings.clone(),
            mode,
            own_settings,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one request and its verdict as a case, unless the same case is there already or
    /// the folder is full.
    pub fn write(&mut self, request: &Request, verdict: &Verdict) -> anyhow::Result<Written> {
        let mut review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": serde_json::to_value(request).context("the request does not serialize")?,
        });
        redact(&mut review["request"], &self.redact);

        let expect = Expect {
            allowed: verdict.allowed,
            message: (!verdict.allowed)
                .then(|| exactly(verdict.message.as_deref().unwrap_or("denied by policy"))),
            code: (!verdict.allowed).then(|| verdict.code.unwrap_or(403)),
            warnings: verdict.warnings.iter().map(|w| exactly(w)).collect(),
            patch: (self.mode == Mode::Mutate).then(|| {
                verdict
                    .patch
                    .as_ref()
                    .map(|p| serde_json::to_value(p).expect("a JSON Patch serializes"))
                    .unwrap_or_else(|| Value::Array(Vec::new()))
            }),
        };
        let name = self.file_name(request, &review, &expect);
        let path = self.dir.join(&name);
        if path.exists() {
            return Ok(Written::Duplicate(path));
        }
        if self.cases >= self.max_cases {
            return Ok(Written::OverCap);
        }
        let who = request.user_info.username.as_deref().unwrap_or("?");
        let case = Case {
            description: format!(
                "recorded from {}: {:?} {} {} by {who}",
                self.source,
                request.operation,
                request.kind.kind,
                object_name(request),
            ),
            request: review,
            settings: self.own_settings.then_some(&self.settings),
            mode: self.own_settings.then_some(self.mode),
            expect,
        };
        let text = serde_yaml_ng::to_string(&case).context("the case does not serialize")?;
        write_new(&path, text.as_bytes())
            .with_context(|| format!("failed to write {}", path.display()))?;
        self.cases += 1;
        Ok(Written::New(path))
    }

    /// `<operation>-<kind>-<namespace>-<name>-<hash>.yaml`.
    fn file_name(&self, request: &Request, review: &Value, expect: &Expect) -> String {
        let mut hashed = review["request"].clone();
        if let Some(object) = hashed.as_object_mut() {
            object.remove("uid");
        }
        let mut hasher = sha2::Sha256::new();
        hasher.update(hashed.to_string());
        hasher.update(self.settings.to_string());
        hasher.update(self.mode.as_str());
        hasher.update(serde_json::to_string(expect).expect("an expectation serializes"));
        let digest = hasher.finalize();
        let mut hash = String::new();
        for b in &digest[..5] {
            let _ = write!(hash, "{b:02x}");
        }
        let operation = format!("{:?}", request.operation);
        let object = object_name(request);
        let parts = [
            operation.as_str(),
            request.kind.kind.as_str(),
            request.namespace.as_deref().unwrap_or(""),
            object.as_str(),
        ];
        let mut name: Vec<String> = parts
            .iter()
            .map(|p| safe(p))
            .filter(|p| !p.is_empty())
            .collect();
        name.push(hash);
        format!("{}.yaml", name.join("-"))
    }
}

/// The object's name, its `generateName` prefix, or `-`.
fn object_name(request: &Request) -> String {
    if !request.name.is_empty() {
        return request.name.clone();
    }
    request
        .object
        .as_ref()
        .and_then(|o| kube_core::Resource::meta(o).generate_name.clone())
        .unwrap_or_else(|| "-".into())
}

/// `[a-z0-9.]` kept (lowercased), anything else as `-`, at most 48 characters, no leading dot.
fn safe(part: &str) -> String {
    let mut out: String = part
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.') => c,
            _ => '-',
        })
        .take(48)
        .collect();
    while out.starts_with(['.', '-']) {
        out.remove(0);
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A regular expression matching exactly `text` (how `corbel test` compares messages).
pub fn exactly(text: &str) -> String {
    format!("^{}$", regex::escape(text))
}

/// The text an [`exactly`] pattern matches, when `pattern` is one.
pub fn literal(pattern: &str) -> Option<String> {
    let inner = pattern.strip_prefix('^')?.strip_suffix('$')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            c if regex_syntax_meta(c) => return None,
            c => out.push(c),
        }
    }
    (exactly(&out) == pattern).then_some(out)
}

fn regex_syntax_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

/// Redacts an AdmissionRequest (as JSON) in place: a Secret's `data` and `stringData` values
/// and its `last-applied-configuration` annotation, and the configured pointers, in both the
/// object and the old object.
pub fn redact(request: &mut Value, pointers: &[String]) {
    let secret = request.pointer("/kind/kind").and_then(Value::as_str) == Some("Secret")
        && request
            .pointer("/kind/group")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
    for which in ["object", "oldObject"] {
        let Some(object) = request.get_mut(which).filter(|o| o.is_object()) else {
            continue;
        };
        if secret {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(values)) = object.get_mut(field) {
                    for value in values.values_mut() {
                        *value = Value::String(REDACTED.into());
                    }
                }
            }
            if let Some(value) = object
                .pointer_mut("/metadata/annotations")
                .and_then(|a| a.get_mut(LAST_APPLIED))
            {
                *value = Value::String(REDACTED.into());
            }
        }
        for pointer in pointers {
            if let Some(value) = object.pointer_mut(pointer) {
                *value = Value::String(REDACTED.into());
            }
        }
    }
}

/// The case files of a folder (what counts toward the cap).
fn case_files(dir: &Path) -> anyhow::Result<usize> {
    let mut n = 0;
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if (name.ends_with(".yaml") || name.ends_with(".yml")) && name != SUITE_FILE {
            n += 1;
        }
    }
    Ok(n)
}

/// Writes a file whole or not at all (a temporary file renamed into place).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// A binding's recorder: hands requests to its writer thread without waiting.
pub struct Recorder {
    sender: SyncSender<(Request, Verdict)>,
    stats: Arc<RecordStats>,
    dir: PathBuf,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("dir", &self.dir).finish()
    }
}

impl Recorder {
    /// Opens the folder (see [`CaseWriter::open`]) and starts the writer thread, which ends when
    /// the recorder is dropped (the binding swapped out) and its queue is written.
    pub fn start(
        binding: &str,
        config: &RecordConfig,
        settings: &Value,
        mode: Mode,
        plugin: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut writer = CaseWriter::open(
            config,
            &format!("binding {binding:?}"),
            settings,
            mode,
            plugin,
        )?;
        let (sender, receiver) = sync_channel::<(Request, Verdict)>(QUEUE);
        let stats = Arc::new(RecordStats::default());
        let (thread_stats, name) = (stats.clone(), binding.to_owned());
        std::thread::Builder::new()
            .name(format!("corbel-record-{binding}"))
            .spawn(move || {
                let stats = thread_stats;
                for (request, verdict) in receiver {
                    match writer.write(&request, &verdict) {
                        Ok(Written::New(path)) => {
                            stats.written.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(binding = %name, case = %path.display(), "request recorded");
                        }
                        Ok(Written::Duplicate(_)) => {
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Written::OverCap) => {
                            let n = stats.over_cap.fetch_add(1, Ordering::Relaxed) + 1;
                            if n.is_power_of_two() {
                                tracing::warn!(binding = %name, dir = %writer.dir().display(), max_cases = writer.max_cases, not_recorded = n, "record: the folder holds maxCases cases; requests are no longer recorded");
                            }
                        }
                        Err(e) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(binding = %name, error = %format!("{e:#}"), "record: a case could not be written");
                        }
                    }
                }
                let s = &stats;
                tracing::info!(binding = %name, dir = %writer.dir().display(),
                    written = s.written.load(Ordering::Relaxed), duplicates = s.duplicates.load(Ordering::Relaxed),
                    over_cap = s.over_cap.load(Ordering::Relaxed), busy = s.busy.load(Ordering::Relaxed),
                    failed = s.failed.load(Ordering::Relaxed), "record: recorder stopped");
            })
            .context("failed to start the record thread")?;
        Ok(Self {
            sender,
            stats,
            dir: config.dir.clone(),
        })
    }

    /// Queues a request and its verdict for writing; never waits. Evaluation errors are not
    /// recorded (a case expects a verdict, and the failure is the host's, not the policy's).
    pub fn record(&self, request: &Request, verdict: &Verdict) {
        match self.sender.try_send((request.clone(), verdict.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.stats.busy.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dir = %self.dir.display(), not_recorded = n, "record: the writer is behind; requests are dropped from the recording");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> &RecordStats {
        &self.stats
    }
}

/// The recorder of a binding whose configuration has `record:`. A folder that cannot be used is
/// logged as an error and the binding serves without recording: recording never changes what
/// admission answers.
pub fn for_binding(
    config: &crate::config::BindingConfig,
    settings: &Value,
) -> Option<Arc<Recorder>> {
    let record = config.record.as_ref()?;
    let plugin = (config.oci_reference().is_none()).then_some(config.plugin.as_path());
    match Recorder::start(&config.name, record, settings, config.mode, plugin) {
        Ok(recorder) => {
            tracing::info!(binding = %config.name, dir = %record.dir.display(), max_cases = record.max_cases, "recording requests as test cases");
            Some(Arc::new(recorder))
        }
        Err(e) => {
            tracing::error!(binding = %config.name, error = %format!("{e:#}"), "record: the binding serves without recording");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_secret_is_redacted_in_both_objects_and_its_keys_kept() {
        let mut request = json!({
            "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "object": {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}},
                       "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0k3n"}},
            "oldObject": {"data": {"password": "b2xk"}},
        });
        redact(&mut request, &["/metadata/labels/owner".into()]);
        let text = request.to_string();
        assert!(
            !text.contains("aHVudGVyMg") && !text.contains("t0k3n") && !text.contains("b2xk"),
            "{text}"
        );
        assert_eq!(request["object"]["data"]["password"], REDACTED);
        assert_eq!(request["oldObject"]["data"]["password"], REDACTED);
    }

    #[test]
    fn configured_pointers_are_redacted_and_other_kinds_keep_their_data() {
        let mut request = json!({
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "object": {"data": {"a": "b"}, "spec": {"password": "p"}},
        });
        redact(
            &mut request,
            &["/spec/password".into(), "/not/there".into()],
        );
        assert_eq!(request["object"]["spec"]["password"], REDACTED);
        assert_eq!(request["object"]["data"]["a"], "b");
    }

    #[test]
    fn file_name_parts_are_safe() {
        assert_eq!(safe("../../etc/Passwd"), "etc-passwd");
        assert_eq!(safe("default"), "default");
        assert_eq!(safe(&"x".repeat(100)).len(), 48);
    }

    #[test]
    fn an_exact_pattern_reads_back_as_its_text() {
        for text in [
            "missing required labels: team",
            "a (b) [c] $d ^e .*",
            "violates \"x\"",
        ] {
            assert_eq!(literal(&exactly(text)).as_deref(), Some(text));
            assert!(regex::Regex::new(&exactly(text)).unwrap().is_match(text));
        }
        assert_eq!(literal("^missing"), None);
        assert_eq!(literal("^a.*$"), None);
    }
}
