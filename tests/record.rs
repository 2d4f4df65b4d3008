//! Record and replay through the real binary: a binding with `record:` writes live requests and
//! their verdicts as `corbel test` cases (Secret data and configured fields redacted, each
//! request once), the recorded suite passes against the same version, and `corbel test` says
//! what changed against another one and exits non-zero; `corbel record` does the same from a file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use corbel_e2e::{Server, bin, binding, plugin, review, root};
use serde_json::{Value, json};

fn corbel(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files
        .retain(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("corbel-test.yaml"));
    files.sort();
    files
}

/// A ConfigMap labelled `team` only.
fn team_only() -> Value {
    let mut review = review("configmap-labelled");
    review["request"]["uid"] = json!("team-only");
    review["request"]["object"]["metadata"]["labels"] = json!({"team": "checkout"});
    review
}

/// An unlabelled Secret whose data and one configured field must not reach the recording.
fn secret() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "secret-1",
            "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "resource": {"group": "", "version": "v1", "resource": "secrets"},
            "name": "db", "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db", "namespace": "shop", "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}",
                    "example.com/api-key": "sk-live-123",
                }},
                "data": {"password": "aHVudGVyMg=="},
                "stringData": {"token": "t0k3n-plain"},
            },
        }
    })
}

#[tokio::test]
async fn a_recorded_suite_passes_against_the_same_version_and_shows_what_a_changed_one_changes() {
    let work = tempfile::tempdir().unwrap();
    let cases = work.path().join("cases");
    let server = Server::start(
        &binding(
            "labels",
            "require_labels",
            "validate",
            r#"{"labels": ["team"]}"#,
            &format!(
                "record:\n  dir: {}\n  redact: [/metadata/annotations/example.com~1api-key]",
                cases.display()
            ),
        ),
        "",
    )
    .await;
    for review in [
        team_only(),
        review("configmap-unlabelled"),
        secret(),
        team_only(), // the same request again: recorded once
    ] {
        server.admit("/validate/labels", &review).await;
    }
    let started = Instant::now();
    while case_files(&cases).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cases were not written: {:?}\n{}",
            case_files(&cases),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let files = case_files(&cases);
    assert_eq!(files.len(), 3, "{files:?}");

    // Deterministic, safe names; Secret data and the configured field redacted.
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("create-secret-shop-db-")),
        "{names:?}"
    );
    for (name, file) in names.iter().zip(&files) {
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c)),
            "{name}"
        );
        let text = std::fs::read_to_string(file).unwrap();
        for secret in ["aHVudGVyMg", "t0k3n-plain", "sk-live-123"] {
            assert!(!text.contains(secret), "{name} leaks {secret}:\n{text}");
        }
    }
    let secret_case =
        std::fs::read_to_string(&files[names.iter().position(|n| n.contains("secret")).unwrap()])
            .unwrap();
    assert!(secret_case.contains("REDACTED"), "{secret_case}");

    // Replayed against the same version: every case passes.
    let same = corbel(&["test", cases.to_str().unwrap()]);
    assert!(same.status.success(), "{}", text(&same));
    assert!(
        text(&same).contains("3 passed, 0 failed"),
        "{}",
        text(&same)
    );

    // Against a changed version (other settings): what changed, per case, and a failure exit.
    let suite = cases.join("corbel-test.yaml");
    let original = std::fs::read_to_string(&suite).unwrap();
    let changed = original.replace("- team", "- owner");
    assert_ne!(original, changed, "{original}");
    std::fs::write(&suite, changed).unwrap();
    let other = corbel(&[
        "test",
        cases.to_str().unwrap(),
        "--plugin",
        plugin("require_labels").to_str().unwrap(),
    ]);
    let report = text(&other);
    assert!(!other.status.success(), "{report}");
    assert!(
        report.contains("allowed: expected true, got false"),
        "{report}"
    );
    assert!(
        report.contains(r#"message: expected "missing required labels: team", got "missing required labels: owner""#),
        "{report}"
    );
    assert!(report.contains("0 passed, 3 failed"), "{report}");
}

#[test]
fn corbel_record_writes_a_file_of_reviews_as_cases_within_the_cap() {
    let work = tempfile::tempdir().unwrap();
    let requests = work.path().join("reviews.jsonl");
    let lines: Vec<String> = [
        review("configmap-labelled"),
        review("configmap-unlabelled"),
        review("configmap-missing-team"),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    std::fs::write(&requests, lines.join("\n")).unwrap();
    let out = work.path().join("cases");
    let plugin = plugin("require_labels");
    let record = |max: &str| {
        corbel(&[
            "record",
            "--plugin",
            plugin.to_str().unwrap(),
            "--settings",
            r#"{"labels":["team","owner"]}"#,
            "--requests",
            requests.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--max-cases",
            max,
        ])
    };
    let first = record("2");
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("2 cases written") && text(&first).contains("1 over the cap of 2"),
        "{}",
        text(&first)
    );
    assert_eq!(case_files(&out).len(), 2);

    // Again with room: the two already there are recognised, the third is added.
    let second = record("10");
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("1 cases written") && text(&second).contains("2 already there"),
        "{}",
        text(&second)
    );

    let replay = corbel(&["test", out.to_str().unwrap()]);
    assert!(replay.status.success(), "{}", text(&replay));
    assert!(
        text(&replay).contains("3 passed, 0 failed"),
        "{}",
        text(&replay)
    );
}

#[test]
fn corbel_record_refuses_input_that_is_not_admission_reviews() {
    let work = tempfile::tempdir().unwrap();
    let requests = work.path().join("bad.json");
    std::fs::write(&requests, "{not json").unwrap();
    let output = corbel(&[
        "record",
        "--plugin",
        plugin("require_labels").to_str().unwrap(),
        "--settings",
        r#"{"labels":["team"]}"#,
        "--requests",
        requests.to_str().unwrap(),
        "--out",
        work.path().join("cases").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("is not valid JSON"),
        "{}",
        text(&output)
    );
}
