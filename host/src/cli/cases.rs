//! `corbel test DIR`: runs a directory of admission cases against one plugin component, through
//! the same evaluation code as the server, and reports each case as passed or failed with a diff.
//!
//! A suite is a folder of case files (`*.yaml`, one case each, run in name order) and an optional
//! `corbel-test.yaml` holding what every case shares: the plugin, default settings and mode. The
//! plugin may be left out of `corbel-test.yaml` and given with `--plugin`, so that one suite runs
//! unchanged against the same policy built in several languages. See docs/testing.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::admission::{self, Binding, BindingError, Mode};
use crate::config::RegistryConfig;
use crate::registry::plugins::Loader;
use crate::runtime::{Plugin, Runtime, RuntimeConfig};

/// The suite file's name inside DIR.
pub(crate) const SUITE_FILE: &str = "corbel-test.yaml";

/// `corbel-test.yaml`: what every case of the folder shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Suite {
    /// The component to test, relative to the folder; `--plugin` overrides it.
    plugin: Option<PathBuf>,
    /// Settings of every case that gives none of its own.
    #[serde(default)]
    settings: Option<Value>,
    #[serde(default)]
    mode: Option<Mode>,
}

/// One case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    /// What the case shows, as a sentence; the file name when absent.
    description: Option<String>,
    /// An AdmissionReview: a file path relative to the case file, or the review written inline.
    request: Value,
    /// Replaces the suite's settings for this case.
    settings: Option<Value>,
    mode: Option<Mode>,
    expect: Expect,
}

/// What the case expects. Every field left out is not checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    allowed: Option<bool>,
    /// A regular expression the denial message must match (anchor it with `^…$` for all of it).
    message: Option<String>,
    code: Option<u16>,
    /// Regular expressions, one per warning, in order.
    warnings: Option<Vec<String>>,
    /// The JSON Patch the host answers with; `[]` means no patch at all.
    patch: Option<Vec<Value>>,
    /// A regular expression the failure must match: the plugin refused the settings, or could
    /// not evaluate the request. Without it, any failure fails the case.
    error: Option<String>,
}

/// The outcome of one case.
#[derive(Debug)]
pub(crate) struct CaseResult {
    pub name: String,
    /// Why it failed, one finding per line; empty when it passed.
    pub failures: Vec<String>,
    pub elapsed: std::time::Duration,
}

/// Runs the suite in `dir` and prints the report; fails when any case fails.
pub(crate) async fn run(
    dir: &Path,
    plugin: Option<PathBuf>,
    filter: Option<&str>,
) -> anyhow::Result<()> {
    let suite = read_suite(dir)?;
    let plugin_path = match (plugin, &suite.plugin) {
        (Some(path), _) => path,
        (None, Some(path)) => dir.join(path),
        (None, None) => bail!(
            "no plugin to test: pass --plugin FILE.wasm, or name one with `plugin:` in {}",
            dir.join(SUITE_FILE).display()
        ),
    };
    let cases = case_files(dir, filter)?;
    if cases.is_empty() {
        bail!(
            "{} has no case files (*.yaml besides {SUITE_FILE}); see docs/testing.md for the format",
            dir.display()
        );
    }

    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        max_memory: 256 << 20,
    })?;
    let started = Instant::now();
    let loaded = Loader::for_files(&RegistryConfig::default().cache_dir())
        .load(&runtime, &plugin_path)
        .map_err(|e| anyhow::anyhow!("failed to load {}: {e}", plugin_path.display()))?;
    println!(
        "corbel test {}: {} case{} against {} (loaded in {} ms)",
        dir.display(),
        cases.len(),
        if cases.len() == 1 { "" } else { "s" },
        plugin_path.display(),
        started.elapsed().as_millis()
    );
    let plugin = Arc::new(loaded);

    let mut failed = 0;
    for file in &cases {
        let result = run_case(&plugin, &suite, file).await;
        let micros = result.elapsed.as_micros();
        if result.failures.is_empty() {
            println!("  ok    {}  ({micros} µs)", result.name);
        } else {
            failed += 1;
            println!("  FAIL  {}  ({})", result.name, file.display());
            for finding in &result.failures {
                for line in finding.lines() {
                    println!("          {line}");
                }
            }
        }
    }
    println!("{} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        bail!("{failed} of {} cases failed", cases.len());
    }
    Ok(())
}

fn read_suite(dir: &Path) -> anyhow::Result<Suite> {
    if !dir.is_dir() {
        bail!(
            "{} is not a folder of test cases (give the folder holding the case files)",
            dir.display()
        );
    }
    let file = dir.join(SUITE_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a valid suite file", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Suite::default()),
        Err(e) => Err(e).with_context(|| format!("failed to read {}", file.display())),
    }
}

/// The case files of a folder, in name order so reports are stable.
fn case_files(dir: &Path, filter: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?
    {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if !yaml || name == SUITE_FILE || !path.is_file() {
            continue;
        }
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

async fn run_case(plugin: &Arc<Plugin>, suite: &Suite, file: &Path) -> CaseResult {
    let stem = file
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let started = Instant::now();
    let mut result = CaseResult {
        name: stem,
        failures: Vec::new(),
        elapsed: Default::default(),
    };
    match prepare(file) {
        Ok((case, request)) => {
            if let Some(description) = &case.description {
                result.name = format!("{}: {description}", result.name);
            }
            result.failures = check(plugin, suite, &case, &request).await;
        }
        Err(e) => result
            .failures
            .push(format!("the case is not valid: {e:#}")),
    }
    result.elapsed = started.elapsed();
    result
}

fn prepare(file: &Path) -> anyhow::Result<(Case, admission::Request)> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("failed to read {}", file.display()))?;
    let case: Case = serde_yaml_ng::from_str(&text).context("not a case file")?;
    let review = match &case.request {
        Value::String(path) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read the request {}", path.display()))?;
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
        }
        inline => inline.clone(),
    };
    Ok((case, request_of(review)?))
}

/// Reads an AdmissionReview v1, as `corbel eval` and the server do.
fn request_of(review: Value) -> anyhow::Result<admission::Request> {
    admission::parse_review(review.to_string().as_bytes())
        .context("`request` is not an AdmissionReview Corbel reads")
}

async fn check(
    plugin: &Arc<Plugin>,
    suite: &Suite,
    case: &Case,
    request: &admission::Request,
) -> Vec<String> {
    let expect = &case.expect;
    let settings = case
        .settings
        .clone()
        .or_else(|| suite.settings.clone())
        .unwrap_or_else(|| Value::Object(Default::default()));
    let mode = case.mode.or(suite.mode).unwrap_or(Mode::Validate);
    let outcome = match Binding::new(
        plugin.clone(),
        admission::Spec::new("test", &settings, mode),
    )
    .await
    {
        // The plugin's own words, so a pattern does not depend on the plugin's file name.
        Err(BindingError::Settings { message, .. }) => Err(message),
        Err(e) => Err(e.to_string()),
        Ok(binding) => admission::evaluate(&binding, request)
            .await
            .map_err(|e| e.to_string()),
    };
    let mut failures = Vec::new();
    let verdict = match (outcome, &expect.error) {
        (Err(error), Some(pattern)) => {
            matches("error", pattern, &error, &mut failures);
            return failures;
        }
        (Err(error), None) => {
            failures.push(format!("the plugin failed: {error}"));
            return failures;
        }
        (Ok(verdict), Some(pattern)) => {
            failures.push(format!(
                "expected a failure matching /{pattern}/, but the plugin answered allowed={}{}",
                verdict.allowed,
                verdict
                    .message
                    .as_deref()
                    .map(|m| format!(" with {m:?}"))
                    .unwrap_or_default()
            ));
            return failures;
        }
        (Ok(verdict), None) => verdict,
    };
    if let Some(allowed) = expect.allowed
        && allowed != verdict.allowed
    {
        failures.push(format!(
            "allowed: expected {allowed}, got {}{}",
            verdict.allowed,
            verdict
                .message
                .as_deref()
                .map(|m| format!(" (message {m:?})"))
                .unwrap_or_default()
        ));
    }
    if let Some(pattern) = &expect.message {
        match &verdict.message {
            Some(message) => matches("message", pattern, message, &mut failures),
            None => failures.push(match admission::record::literal(pattern) {
                Some(expected) => format!("message: expected {expected:?}, got none"),
                None => format!("message: expected one matching /{pattern}/, got none"),
            }),
        }
    }
    if let Some(code) = expect.code {
        // The host answers a denial without a code of its own with 403.
        let got = verdict.code.unwrap_or(403);
        if got != code {
            failures.push(format!("code: expected {code}, got {got}"));
        }
    }
    if let Some(patterns) = &expect.warnings {
        if patterns.len() != verdict.warnings.len() {
            failures.push(format!(
                "warnings: expected {}, got {}: {:?}",
                patterns.len(),
                verdict.warnings.len(),
                verdict.warnings
            ));
        } else {
            for (i, (pattern, warning)) in patterns.iter().zip(&verdict.warnings).enumerate() {
                matches(&format!("warnings[{i}]"), pattern, warning, &mut failures);
            }
        }
    }
    if let Some(expected) = &expect.patch {
        let got = verdict
            .patch
            .as_ref()
            .map(|p| serde_json::to_value(p).expect("a JSON Patch serializes"))
            .unwrap_or_else(|| Value::Array(Vec::new()));
        let expected = Value::Array(expected.clone());
        if got != expected {
            failures.push(format!(
                "patch differs (- expected, + actual):\n{}",
                diff(&pretty(&expected), &pretty(&got))
            ));
        }
    }
    failures
}

fn matches(what: &str, pattern: &str, text: &str, failures: &mut Vec<String>) {
    match regex::Regex::new(pattern) {
        Ok(re) if re.is_match(text) => {}
        // A recorded case expects exact text (`^escaped$`): say what changed in plain words.
        Ok(_) => match admission::record::literal(pattern) {
            Some(expected) => failures.push(format!("{what}: expected {expected:?}, got {text:?}")),
            None => failures.push(format!("{what}: {text:?} does not match /{pattern}/")),
        },
        Err(e) => failures.push(format!("{what}: the pattern /{pattern}/ is not valid: {e}")),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("a JSON value serializes")
}

/// A line diff of two texts (longest common subsequence): `-` lines only in `expected`, `+` lines
/// only in `actual`, and the lines both share indented.
pub(crate) fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "  {}", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "- {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_lines_only_in_one_side() {
        assert_eq!(diff("a\nb\nc", "a\nx\nc"), "  a\n- b\n+ x\n  c\n");
        assert_eq!(diff("a", "a"), "  a\n");
        assert_eq!(diff("", "new"), "+ new\n");
    }

    #[test]
    fn a_case_reads_an_inline_review() {
        let case: Case = serde_yaml_ng::from_str(
            "request: {apiVersion: admission.k8s.io/v1, kind: AdmissionReview, request: {uid: u, kind: {group: '', version: v1, kind: Pod}, resource: {group: '', version: v1, resource: pods}, operation: DELETE, userInfo: {}}}\nexpect: {allowed: true}\n",
        )
        .unwrap();
        let request = request_of(case.request).unwrap();
        assert_eq!(request.uid, "u");
    }

    #[test]
    fn a_case_with_an_unknown_expectation_is_refused() {
        let err = serde_yaml_ng::from_str::<Case>("request: x.json\nexpect: {alowed: true}\n")
            .unwrap_err();
        assert!(err.to_string().contains("alowed"), "{err}");
    }
}
