//! `corbel audit`: the background audit run once from the command line (docs/audit.md). It loads
//! the configuration's bindings with `audit:` (or those named), lists the objects their rules
//! admit through a kubeconfig, evaluates each through the same path as `corbel serve`'s audit
//! ([`corbel_audit::audit_binding`]) and prints a table. It writes nothing to the API.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::admission::bindings::BindingSet;
use crate::config::Config;
use crate::runtime::Runtime;
use corbel_audit::{Outcome, Run};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The configuration file whose bindings are audited (YAML or JSON; docs/configuration.md).
    #[arg(long, short)]
    config: PathBuf,
    /// The API to audit. Default: the configuration's `kubernetes.kubeconfig`, else the
    /// embedded API's kubeconfig when the configuration has `embedded:` (its server must be
    /// running), else $KUBECONFIG or ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Audit this binding (repeatable), even without `audit:`; default: every binding with
    /// `audit:`. A binding is audited for the kinds its `rules` admit on CREATE.
    #[arg(long = "binding")]
    bindings: Vec<String>,
    /// Print passing objects too (by default the table lists fail, error and warn).
    #[arg(long)]
    all: bool,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let mut configs = Vec::new();
    for name in &args.bindings {
        let Some(binding) = config.bindings.iter().find(|b| &b.name == name) else {
            bail!(
                "{}: no binding named {name:?} (bindings: {})",
                args.config.display(),
                config
                    .bindings
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let mut binding = binding.clone();
        binding.audit.get_or_insert_with(Default::default);
        configs.push(binding);
    }
    if args.bindings.is_empty() {
        configs = config
            .bindings
            .iter()
            .filter(|b| b.audit.is_some())
            .cloned()
            .collect();
        if configs.is_empty() {
            bail!(
                "{}: no binding has `audit:`; add `audit: {{}}` to one (docs/audit.md) or name it with --binding",
                args.config.display()
            );
        }
    }
    for binding in &configs {
        corbel_audit::check(binding)?;
    }
    let client = client(&config, args.kubeconfig.as_deref()).await?;
    let runtime = Arc::new(Runtime::new(&super::runtime_config_for(
        &configs,
        config.max_instances,
    ))?);
    let set = BindingSet::load_with(&runtime, &configs, super::plugin_loader(&config)).await;
    let mut runs: Vec<Run> = Vec::new();
    for binding in &configs {
        let entry = &set.entries[&binding.name];
        if let crate::admission::bindings::Entry::Failed { reason, .. } = entry {
            bail!("binding {:?} does not load: {reason}", binding.name);
        }
        runs.push(corbel_audit::audit_binding(&client, binding, entry, None).await);
    }
    print_table(&runs, args.all);
    let failed: usize = runs
        .iter()
        .map(|r| r.count(Outcome::Fail) + r.count(Outcome::Error))
        .sum();
    let problems: Vec<&String> = runs.iter().flat_map(|r| &r.problems).collect();
    if !problems.is_empty() {
        bail!(
            "the audit is incomplete: {}",
            problems
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if failed > 0 {
        bail!("{failed} objects failed the audit (or could not be evaluated)");
    }
    Ok(())
}

fn print_table(runs: &[Run], all: bool) {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for run in runs {
        for finding in &run.findings {
            if finding.outcome == Outcome::Pass && !all {
                continue;
            }
            rows.push([
                finding.resource.display(),
                finding.binding.clone(),
                finding.outcome.as_str().to_owned(),
                finding.message.replace('\n', " "),
            ]);
        }
    }
    let header = [
        "RESOURCE".to_owned(),
        "BINDING".to_owned(),
        "RESULT".to_owned(),
        "MESSAGE".to_owned(),
    ];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String; 4]| {
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
        .trim_end()
        .to_owned()
    };
    println!("{}", line(&header));
    for row in &rows {
        println!("{}", line(row));
    }
    println!();
    for run in runs {
        println!(
            "{}: {} objects of {} in {:.2}s: {} fail, {} error, {} warn, {} pass{}",
            run.binding,
            run.audited,
            if run.kinds.is_empty() {
                "no kinds".to_owned()
            } else {
                run.kinds.join(", ")
            },
            run.duration.as_secs_f64(),
            run.count(Outcome::Fail),
            run.count(Outcome::Error),
            run.count(Outcome::Warn),
            run.count(Outcome::Pass),
            if run.dropped > 0 {
                format!(
                    "; {} not listed: over audit.maxReports ({})",
                    run.dropped, run.max_reports
                )
            } else {
                String::new()
            }
        );
    }
}

/// The client for `--kubeconfig`, the configuration's kubeconfig, the embedded API's, or the
/// environment's.
async fn client(config: &Config, kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let path = kubeconfig
        .map(Path::to_path_buf)
        .or_else(|| {
            config
                .kubernetes
                .as_ref()
                .and_then(|k| k.kubeconfig.clone())
        })
        .or_else(|| {
            config.embedded.as_ref().map(|e| {
                e.kubeconfig
                    .clone()
                    .unwrap_or_else(|| e.data_dir().join("kubeconfig"))
            })
        });
    let client_config = match path {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(&path).with_context(|| {
                format!(
                    "failed to read the kubeconfig {} (for the embedded API, start `corbel serve` first: it writes it)",
                    path.display()
                )
            })?;
            let options = kube::config::KubeConfigOptions {
                context: config.kubernetes.as_ref().and_then(|k| k.context.clone()),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .with_context(|| format!("the kubeconfig {} is not usable", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no API to audit: pass --kubeconfig, or use a configuration with `embedded:` or `kubernetes.kubeconfig`")?,
    };
    kube::Client::try_from(client_config).context("failed to create the Kubernetes client")
}
