//! OpenReports reports (`openreports.io/v1alpha1`): one per audited resource, a `Report` in the
//! resource's namespace or a `ClusterReport` for a cluster-scoped one, named after the
//! resource's UID (as Kyverno names its reports), with one result per binding that audits it.
//! Plus one `ClusterReport` named [`SUMMARY`]: a result per binding with its last run's counts
//! and, when its cap left resources out, how many.
//!
//! Bounded by construction: each binding reports on at most `audit.maxReports` resources (its
//! failures first), a message is cut to `audit.maxMessageBytes`, and a report holds one result
//! per auditing binding; so the reports never outgrow the configuration, whatever the cluster.
//!
//! [`sync`] keeps the API in step with what the runs found: a report is written (server-side
//! apply, field manager [`MANAGER`]) only when its content changed, which a digest in an
//! annotation says without comparing objects field by field; a report whose resource is gone,
//! or that fell under the cap, is deleted. Each report also has its resource as owner, so the
//! garbage collector (or the embedded store) removes it with its resource at once.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::{Finding, Outcome, Resource, Run};

/// The field manager of every write the audit makes.
pub const MANAGER: &str = "corbel-audit";
/// The label that marks the reports the audit owns; it lists and deletes only those.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "corbel-audit");
/// The content's digest, timestamps left out: a report is rewritten only when it changes.
pub const DIGEST: &str = "audit.corbel.dev/digest";
/// The ClusterReport that summarizes each binding's last run, its cap included.
pub const SUMMARY: &str = "corbel-audit";
/// The `source` of the reports and their results.
pub const SOURCE: &str = "corbel";

/// The CRDs, as committed under `deploy/crds/`.
pub const REPORT_CRD: &str = include_str!("../../../../deploy/crds/reports.openreports.io.yaml");
pub const CLUSTER_REPORT_CRD: &str =
    include_str!("../../../../deploy/crds/clusterreports.openreports.io.yaml");

/// How many report writes are in flight at once: writes to the embedded store are grouped per
/// fsync, so a few at a time make thousands of first reports take seconds, not minutes.
const WRITERS: usize = 16;

pub fn report_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("openreports.io", "v1alpha1", "Report"),
        "reports",
    )
}

pub fn cluster_report_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("openreports.io", "v1alpha1", "ClusterReport"),
        "clusterreports",
    )
}

/// A report's namespace (none for a ClusterReport) and name.
pub type Key = (Option<String>, String);

/// A report as it should be.
#[derive(Debug, Clone)]
pub struct Desired {
    pub key: Key,
    pub digest: String,
    pub body: Value,
}

/// The reports the runs' findings make, the summary included.
pub fn desired(runs: &[&Run]) -> Vec<Desired> {
    let mut by_resource: BTreeMap<&Resource, Vec<(&Finding, SystemTime)>> = BTreeMap::new();
    for run in runs {
        for finding in &run.findings {
            if finding.resource.uid.is_empty() {
                continue;
            }
            by_resource
                .entry(&finding.resource)
                .or_default()
                .push((finding, run.finished));
        }
    }
    let mut reports: Vec<Desired> = by_resource
        .into_iter()
        .map(|(resource, mut findings)| {
            findings.sort_by(|a, b| a.0.binding.cmp(&b.0.binding));
            resource_report(resource, &findings)
        })
        .collect();
    if !runs.is_empty() {
        reports.push(summary(runs));
    }
    reports
}

fn timestamp(at: SystemTime) -> Value {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    json!({"seconds": since.as_secs(), "nanos": 0})
}

fn summary_of<'a>(outcomes: impl Iterator<Item = &'a str>) -> Value {
    let mut summary = json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0});
    for outcome in outcomes {
        summary[outcome] = (summary[outcome].as_u64().unwrap_or(0) + 1).into();
    }
    summary
}

/// Finishes a report: the digest over everything but the results' timestamps, then the
/// timestamps.
fn seal(key: Key, mut body: Value, times: &[SystemTime]) -> Desired {
    let digest = hex::encode(sha2::Sha256::digest(body.to_string().as_bytes()));
    body["metadata"]["annotations"] = json!({ DIGEST: digest });
    if let Some(results) = body["results"].as_array_mut() {
        for (result, at) in results.iter_mut().zip(times) {
            result["timestamp"] = timestamp(*at);
        }
    }
    Desired { key, digest, body }
}

fn resource_report(resource: &Resource, findings: &[(&Finding, SystemTime)]) -> Desired {
    let kind = if resource.namespace.is_some() {
        "Report"
    } else {
        "ClusterReport"
    };
    let mut metadata = json!({
        "name": resource.uid,
        "labels": { MANAGED_BY.0: MANAGED_BY.1 },
        "ownerReferences": [{
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "name": resource.name,
            "uid": resource.uid,
        }],
    });
    let mut scope = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": resource.name,
        "uid": resource.uid,
    });
    if let Some(ns) = &resource.namespace {
        metadata["namespace"] = ns.clone().into();
        scope["namespace"] = ns.clone().into();
    }
    let results: Vec<Value> = findings
        .iter()
        .map(|(f, _)| {
            let mut result = json!({
                "source": SOURCE,
                "policy": f.binding,
                "rule": f.plugin,
                "result": f.outcome.as_str(),
                "scored": true,
            });
            if !f.message.is_empty() {
                result["message"] = f.message.clone().into();
            }
            result
        })
        .collect();
    let body = json!({
        "apiVersion": "openreports.io/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "source": SOURCE,
        "scope": scope,
        "summary": summary_of(findings.iter().map(|(f, _)| f.outcome.as_str())),
        "results": results,
    });
    let times: Vec<SystemTime> = findings.iter().map(|(_, at)| *at).collect();
    seal(
        (resource.namespace.clone(), resource.uid.clone()),
        body,
        &times,
    )
}

/// The summary: one result per binding, `fail` when its run found failures, `error` when it
/// could not evaluate some objects or list some kinds, `warn` when its cap left resources out.
fn summary(runs: &[&Run]) -> Desired {
    let mut runs: Vec<&&Run> = runs.iter().collect();
    runs.sort_by(|a, b| a.binding.cmp(&b.binding));
    let results: Vec<Value> = runs
        .iter()
        .map(|run| {
            let outcome = if run.count(Outcome::Fail) > 0 {
                Outcome::Fail
            } else if run.count(Outcome::Error) > 0 || !run.problems.is_empty() {
                Outcome::Error
            } else if run.dropped > 0 {
                Outcome::Warn
            } else {
                Outcome::Pass
            };
            let mut message = format!(
                "audited {} objects of {}: {} fail, {} error, {} warn, {} pass",
                run.audited,
                if run.kinds.is_empty() { "no kinds".to_owned() } else { run.kinds.join(", ") },
                run.count(Outcome::Fail),
                run.count(Outcome::Error),
                run.count(Outcome::Warn),
                run.count(Outcome::Pass),
            );
            if run.dropped > 0 {
                message.push_str(&format!(
                    "; {} resources not reported: over the cap of {} (audit.maxReports; failures are reported first)",
                    run.dropped, run.max_reports
                ));
            }
            for problem in &run.problems {
                message.push_str(&format!("; {problem}"));
            }
            json!({
                "source": SOURCE,
                "policy": run.binding,
                "rule": "audit",
                "result": outcome.as_str(),
                "scored": false,
                "message": crate::cut(message, 4096),
                "properties": {
                    "audited": run.audited.to_string(),
                    "fail": run.count(Outcome::Fail).to_string(),
                    "error": run.count(Outcome::Error).to_string(),
                    "warn": run.count(Outcome::Warn).to_string(),
                    "pass": run.count(Outcome::Pass).to_string(),
                    "reported": run.findings.len().to_string(),
                    "reportsDropped": run.dropped.to_string(),
                    "maxReports": run.max_reports.to_string(),
                },
            })
        })
        .collect();
    let summary = summary_of(
        results
            .iter()
            .map(|r| r["result"].as_str().unwrap_or("error")),
    );
    let body = json!({
        "apiVersion": "openreports.io/v1alpha1",
        "kind": "ClusterReport",
        "metadata": {"name": SUMMARY, "labels": { MANAGED_BY.0: MANAGED_BY.1 }},
        "source": SOURCE,
        "summary": summary,
        "results": results,
    });
    let times: Vec<SystemTime> = runs.iter().map(|r| r.finished).collect();
    seal((None, SUMMARY.to_owned()), body, &times)
}

/// What a [`sync`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    pub written: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Reports there are now.
    pub reports: usize,
}

/// The reports the audit owns now, with their digests: listed in pages by [`MANAGED_BY`].
pub async fn existing(client: &kube::Client) -> Result<HashMap<Key, String>, kube::Error> {
    let mut known = HashMap::new();
    for resource in [report_resource(), cluster_report_resource()] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default()
                .labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))
                .limit(500);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = api.list(&params).await?;
            for report in page.items {
                let digest = report
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DIGEST).cloned())
                    .unwrap_or_default();
                let name = report.metadata.name.unwrap_or_default();
                known.insert((report.metadata.namespace.clone(), name), digest);
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(known)
}

fn api_for(client: &kube::Client, key: &Key) -> Api<DynamicObject> {
    match &key.0 {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &report_resource()),
        None => Api::all_with(client.clone(), &cluster_report_resource()),
    }
}

/// Writes the reports that changed and deletes those no longer wanted.
pub async fn sync(client: &kube::Client, desired: Vec<Desired>) -> Result<Synced, kube::Error> {
    let mut known = existing(client).await?;
    let mut synced = Synced {
        reports: desired.len(),
        ..Default::default()
    };
    let mut writes = Vec::new();
    for report in desired {
        match known.remove(&report.key) {
            Some(digest) if digest == report.digest => synced.unchanged += 1,
            _ => writes.push(report),
        }
    }
    let params = PatchParams::apply(MANAGER).force();
    let written: Vec<Result<(), (Key, kube::Error)>> = futures::stream::iter(writes)
        .map(|report| {
            let params = &params;
            async move {
                let api = api_for(client, &report.key);
                api.patch(&report.key.1, params, &Patch::Apply(&report.body))
                    .await
                    .map(|_| ())
                    .map_err(|e| (report.key, e))
            }
        })
        .buffer_unordered(WRITERS)
        .collect()
        .await;
    for result in written {
        match result {
            Ok(()) => synced.written += 1,
            Err((key, e)) => {
                synced.failed += 1;
                tracing::warn!(namespace = key.0.as_deref().unwrap_or(""), report = %key.1, error = %e, "failed to write an audit report");
            }
        }
    }
    let stale: Vec<Key> = known.into_keys().collect();
    let deleted: Vec<bool> = futures::stream::iter(stale)
        .map(|key| async move {
            match api_for(client, &key)
                .delete(&key.1, &DeleteParams::default())
                .await
            {
                Ok(_) => true,
                Err(kube::Error::Api(status)) if status.code == 404 => true,
                Err(e) => {
                    tracing::warn!(namespace = key.0.as_deref().unwrap_or(""), report = %key.1, error = %e, "failed to delete a stale audit report");
                    false
                }
            }
        })
        .buffer_unordered(WRITERS)
        .collect()
        .await;
    synced.deleted = deleted.iter().filter(|d| **d).count();
    synced.failed += deleted.len() - synced.deleted;
    tracing::info!(
        written = synced.written,
        unchanged = synced.unchanged,
        deleted = synced.deleted,
        failed = synced.failed,
        "audit reports in step"
    );
    Ok(synced)
}

/// Creates the Report and ClusterReport CRDs unless the API has them (embedded mode; a cluster
/// installs them from `deploy/crds/`, or has them from another engine).
pub async fn create_crds_if_missing(client: &kube::Client) -> Result<(), kube::Error> {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    for yaml in [REPORT_CRD, CLUSTER_REPORT_CRD] {
        let crd: DynamicObject = serde_yaml_ng::from_str(yaml).expect("the committed CRD parses");
        let name = crd.metadata.name.clone().unwrap_or_default();
        if crds.get_opt(&name).await?.is_some() {
            continue;
        }
        match crds.create(&PostParams::default(), &crd).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn finding(name: &str, binding: &str, outcome: Outcome) -> Finding {
        Finding {
            resource: Resource {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("default".into()),
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            binding: binding.into(),
            plugin: "require-labels".into(),
            outcome,
            message: if outcome == Outcome::Fail {
                "missing label team".into()
            } else {
                String::new()
            },
        }
    }

    fn run(binding: &str, findings: Vec<Finding>, at: SystemTime) -> Run {
        Run {
            binding: binding.into(),
            kinds: vec!["v1/configmaps".into()],
            audited: findings.len(),
            findings,
            dropped: 0,
            max_reports: 10,
            counts: [1, 0, 0, 1],
            problems: Vec::new(),
            duration: Duration::ZERO,
            finished: at,
        }
    }

    #[test]
    fn one_report_per_resource_with_a_result_per_binding() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let a = run(
            "a",
            vec![
                finding("x", "a", Outcome::Fail),
                finding("y", "a", Outcome::Pass),
            ],
            at,
        );
        let b = run("b", vec![finding("x", "b", Outcome::Pass)], at);
        let reports = desired(&[&a, &b]);
        assert_eq!(reports.len(), 3, "x, y and the summary");
        let x = reports.iter().find(|r| r.key.1 == "uid-x").unwrap();
        assert_eq!(x.key.0.as_deref(), Some("default"));
        assert_eq!(x.body["kind"], "Report");
        assert_eq!(x.body["summary"]["fail"], 1);
        assert_eq!(x.body["summary"]["pass"], 1);
        assert_eq!(x.body["results"][0]["policy"], "a");
        assert_eq!(x.body["results"][0]["message"], "missing label team");
        assert_eq!(x.body["results"][0]["timestamp"]["seconds"], 1_000);
        assert_eq!(x.body["scope"]["name"], "x");
        assert_eq!(x.body["metadata"]["ownerReferences"][0]["uid"], "uid-x");
    }

    #[test]
    fn the_digest_ignores_when_the_result_was_found() {
        let early = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let late = early + Duration::from_secs(3_600);
        let first = desired(&[&run("a", vec![finding("x", "a", Outcome::Fail)], early)]);
        let again = desired(&[&run("a", vec![finding("x", "a", Outcome::Fail)], late)]);
        let fixed = desired(&[&run("a", vec![finding("x", "a", Outcome::Pass)], late)]);
        assert_eq!(first[0].digest, again[0].digest);
        assert_ne!(first[0].digest, fixed[0].digest);
    }

    #[test]
    fn the_summary_reports_the_cap() {
        let mut capped = run(
            "a",
            vec![finding("x", "a", Outcome::Pass)],
            SystemTime::now(),
        );
        capped.counts = [0, 0, 0, 5];
        capped.audited = 5;
        capped.dropped = 4;
        capped.max_reports = 1;
        let reports = desired(&[&capped]);
        let summary = reports.iter().find(|r| r.key.1 == SUMMARY).unwrap();
        assert_eq!(summary.body["results"][0]["result"], "warn");
        assert_eq!(
            summary.body["results"][0]["properties"]["reportsDropped"],
            "4"
        );
        let message = summary.body["results"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("4 resources not reported: over the cap of 1"),
            "{message}"
        );
    }
}
