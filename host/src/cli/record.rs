//! `corbel record`: a file of AdmissionReviews evaluated with a plugin and written as a folder of
//! `corbel test` cases, through the same case writer as a binding's `record:` option
//! (`admission::record`); and the trace `corbel eval --trace` prints.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::admission::config::RecordConfig;
use crate::admission::record::{CaseWriter, Written};
use crate::admission::trace::Collected;
use crate::admission::{self, Binding, EvaluationError, Mode, Verdict};
use crate::config::RegistryConfig;
use crate::registry::plugins::Loader;
use crate::runtime::{Runtime, RuntimeConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct RecordArgs {
    /// The plugin component (.wasm) whose verdicts the cases expect.
    #[arg(long)]
    plugin: PathBuf,
    /// Settings as JSON, or @FILE to read them (YAML or JSON) from a file.
    #[arg(long, default_value = "{}")]
    settings: String,
    #[arg(long, value_enum, default_value_t = Mode::Validate)]
    mode: Mode,
    /// AdmissionReviews as JSON: one, an array of them, or one after another (JSON lines); - for
    /// standard input.
    #[arg(long)]
    requests: String,
    /// The folder of cases to write (created if needed; cases already there are kept).
    #[arg(long)]
    out: PathBuf,
    /// A JSON pointer into the object whose value is replaced by "REDACTED" (repeatable); a
    /// Secret's data and stringData always are.
    #[arg(long)]
    redact: Vec<String>,
    /// The most case files the folder may hold, those already there included.
    #[arg(long, default_value_t = 1000)]
    max_cases: usize,
}

pub(crate) async fn run(args: RecordArgs) -> anyhow::Result<()> {
    let text = if args.requests == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read AdmissionReviews from standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.requests)
            .with_context(|| format!("failed to read {}", args.requests))?
    };
    let mut reviews = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value.with_context(|| {
            format!(
                "{}: JSON value {} is not valid JSON (give AdmissionReviews as JSON: one, an array, or JSON lines)",
                args.requests,
                i + 1
            )
        })?;
        match value {
            Value::Array(items) => reviews.extend(items),
            other => reviews.push(other),
        }
    }
    if reviews.is_empty() {
        bail!("{} holds no AdmissionReview", args.requests);
    }
    let settings = parse_settings(&args.settings)?;

    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        max_memory: 256 << 20,
    })?;
    let loaded = Loader::for_files(&RegistryConfig::default().cache_dir())
        .load(&runtime, &args.plugin)
        .map_err(|e| anyhow::anyhow!("failed to load {}: {e}", args.plugin.display()))?;
    let binding = Binding::new(
        Arc::new(loaded),
        admission::Spec::new("record", &settings, args.mode),
    )
    .await?;
    let plugin = std::path::absolute(&args.plugin).unwrap_or(args.plugin.clone());
    let config = RecordConfig {
        dir: args.out.clone(),
        redact: args.redact.clone(),
        max_cases: args.max_cases,
    };
    let source = format!("corbel record ({})", args.requests);
    let mut writer = CaseWriter::open(&config, &source, &settings, args.mode, Some(&plugin))?;

    let (mut written, mut duplicates, mut over_cap, mut failed) = (0, 0, 0, 0);
    for (i, review) in reviews.into_iter().enumerate() {
        let n = i + 1;
        let request = match request_of(review) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("request {n}: {e:#}");
                failed += 1;
                continue;
            }
        };
        let verdict = match admission::evaluate(&binding, &request).await {
            Ok(verdict) => verdict,
            Err(e) => {
                eprintln!(
                    "request {n} ({}): plugin {} {e}; not recorded",
                    request.uid,
                    binding.plugin.name()
                );
                failed += 1;
                continue;
            }
        };
        match writer.write(&request, &verdict)? {
            Written::New(path) => {
                written += 1;
                println!("  wrote {}", path.display());
            }
            Written::Duplicate(_) => duplicates += 1,
            Written::OverCap => over_cap += 1,
        }
    }
    println!(
        "corbel record: {written} cases written to {} ({duplicates} already there, {over_cap} over the cap of {}, {failed} not recorded)",
        args.out.display(),
        args.max_cases
    );
    if failed > 0 {
        bail!("{failed} requests could not be recorded (see above)");
    }
    Ok(())
}

/// `--settings`: JSON, or @FILE (YAML or JSON), as `corbel eval` reads it.
fn parse_settings(settings: &str) -> anyhow::Result<Value> {
    match settings.strip_prefix('@') {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("failed to read settings file {file}"))?;
            serde_yaml_ng::from_str(&text)
                .with_context(|| format!("settings file {file} is not YAML or JSON"))
        }
        None => serde_json::from_str(settings)
            .context("--settings is not JSON (use @FILE to read a file)"),
    }
}

fn request_of(review: Value) -> anyhow::Result<admission::Request> {
    Ok(admission::parse_review(review.to_string().as_bytes())?)
}

/// `corbel eval --trace`: what the plugin said, then the verdict, on standard error (standard
/// output keeps the AdmissionReview alone, for scripts).
pub(crate) fn print_trace(
    binding: &Binding,
    result: Result<&Verdict, &EvaluationError>,
    collected: &Collected,
) {
    let n = collected.entries.len();
    eprintln!(
        "trace of plugin {} ({n} entr{}{}):",
        binding.plugin.name(),
        if n == 1 { "y" } else { "ies" },
        if collected.dropped > 0 {
            format!(", {} more dropped", collected.dropped)
        } else {
            String::new()
        }
    );
    for entry in &collected.entries {
        eprintln!("  {entry}");
    }
    if n == 0 {
        eprintln!(
            "  (none: the plugin logged nothing and sent no checks; SDKs send checks with denials)"
        );
    }
    match result {
        Ok(v) if v.allowed => eprintln!("verdict: allowed"),
        Ok(v) => eprintln!(
            "verdict: denied ({}): {}",
            v.code.unwrap_or(403),
            v.message.as_deref().unwrap_or("denied by policy")
        ),
        Err(e) => eprintln!("verdict: none: the plugin {e}"),
    }
}
