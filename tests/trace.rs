//! "Why denied" through the real binary: `corbel eval --trace` prints the checks a plugin made and
//! its log lines with the verdict, and a binding with `trace: true` puts them into a denial's
//! warnings, bounded, the last warning counting what was dropped.

use std::process::{Command, Output};

use corbel_e2e::{Server, bin, binding, plugin, review, root};
use serde_json::Value;

fn corbel(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/data/reviews")
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

/// Runs `corbel eval --trace`; returns the AdmissionReview (stdout) and the trace (stderr).
fn eval_traced(plugin_file: &str, settings: &str, request: &str) -> (Value, String) {
    let plugin = plugin(plugin_file);
    let output = corbel(&[
        "eval",
        "--trace",
        "--plugin",
        plugin.to_str().unwrap(),
        "--settings",
        settings,
        "--request",
        &fixture(request),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    let review: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is the AdmissionReview alone: {e}"));
    (review, stderr)
}

/// `eval --trace` of require-labels, built from `plugin_file`, on a ConfigMap missing `team`.
fn assert_trace_names_the_failed_label_check(plugin_file: &str) {
    let (review, trace) = eval_traced(
        plugin_file,
        r#"{"labels":["team","owner"]}"#,
        "configmap-missing-team",
    );
    assert_eq!(review["response"]["allowed"], false);
    assert!(
        trace.contains(r#"check "label team" FAILED"#),
        "the trace names the failed check:\n{trace}"
    );
    assert!(trace.contains(r#"check "label owner" passed"#), "{trace}");
    assert!(
        trace.contains("verdict: denied (403): missing required labels: team"),
        "{trace}"
    );
}

#[test]
fn eval_trace_names_the_failed_label_check_with_the_verdict() {
    assert_trace_names_the_failed_label_check("require_labels");
}

/// The Go SDK's `corbel.Check` (its hand-written `log` import, snapshotted past Wizer with a stub)
/// sends the same record as the Rust SDK's `check`, and only with a denial.
#[test]
fn eval_trace_names_the_failed_label_check_of_a_go_policy() {
    assert_trace_names_the_failed_label_check("require_labels_go");

    let (review, trace) = eval_traced(
        "require_labels_go",
        r#"{"labels":["team"]}"#,
        "configmap-labelled",
    );
    assert_eq!(review["response"]["allowed"], true);
    assert!(
        !trace.contains("check \""),
        "an admitted request sends no checks:\n{trace}"
    );
}

#[test]
fn eval_trace_names_the_failed_pod_security_checks_by_their_psa_ids() {
    let (review, trace) = eval_traced("pod_security", r#"{"level":"baseline"}"#, "pod-privileged");
    assert_eq!(review["response"]["allowed"], false);
    assert!(
        trace.contains(r#"check "privileged" FAILED: privileged (container "app" must not set securityContext.privileged=true)"#),
        "{trace}"
    );
    assert!(
        trace.contains(r#"check "hostNamespaces" passed"#),
        "{trace}"
    );
}

#[test]
fn eval_without_trace_prints_no_trace() {
    let plugin = plugin("require_labels");
    let output = corbel(&[
        "eval",
        "--plugin",
        plugin.to_str().unwrap(),
        "--settings",
        r#"{"labels":["team"]}"#,
        "--request",
        &fixture("configmap-unlabelled"),
    ]);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("trace of plugin"));
}

#[tokio::test]
async fn a_binding_with_trace_puts_the_failed_check_into_the_denials_warnings() {
    let bindings = [
        binding(
            "traced",
            "require_labels",
            "validate",
            r#"{"labels": ["team", "owner"]}"#,
            "trace: true",
        ),
        binding(
            "untraced",
            "require_labels",
            "validate",
            r#"{"labels": ["team", "owner"]}"#,
            "",
        ),
        binding(
            "traced-go",
            "require_labels_go",
            "validate",
            r#"{"labels": ["team", "owner"]}"#,
            "trace: true",
        ),
    ]
    .concat();
    let server = Server::start(&bindings, "").await;

    let denied = server
        .admit("/validate/traced", &review("configmap-missing-team"))
        .await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["message"], "missing required labels: team");
    let warnings: Vec<&str> = denied["warnings"]
        .as_array()
        .expect("a traced denial carries warnings")
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.contains(&r#"traced trace: check "label team" FAILED"#),
        "{warnings:?}"
    );

    let go = server
        .admit("/validate/traced-go", &review("configmap-missing-team"))
        .await;
    assert_eq!(go["allowed"], false);
    assert_eq!(go["status"]["message"], "missing required labels: team");
    assert!(
        go["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w == r#"traced-go trace: check "label team" FAILED"#)),
        "a Go policy's denial names its failed check: {go}"
    );

    let untraced = server
        .admit("/validate/untraced", &review("configmap-missing-team"))
        .await;
    assert_eq!(untraced["allowed"], false);
    assert!(
        untraced.get("warnings").is_none_or(Value::is_null),
        "{untraced}"
    );

    let admitted = server
        .admit("/validate/traced", &review("configmap-labelled"))
        .await;
    assert_eq!(admitted["allowed"], true);
    assert!(
        admitted.get("warnings").is_none_or(Value::is_null),
        "{admitted}"
    );
}

#[tokio::test]
async fn a_chatty_plugins_trace_is_bounded_keeps_the_failed_check_and_counts_the_rest() {
    let server = Server::start(
        &binding(
            "chatty",
            "hostile",
            "validate",
            r#"{"attack": "chatty"}"#,
            "trace: true",
        ),
        "",
    )
    .await;
    let denied = server
        .admit("/validate/chatty", &review("configmap-labelled"))
        .await;
    assert_eq!(denied["allowed"], false);
    let warnings: Vec<&str> = denied["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    // 32 entries and the count of the dropped ones.
    assert_eq!(warnings.len(), 33, "{warnings:#?}");
    assert_eq!(
        warnings[0], r#"chatty trace: check "early" FAILED: the check that matters"#,
        "the failed check survives 250 later lines"
    );
    assert_eq!(warnings[31], "chatty trace: stdout: stdout line 49");
    assert_eq!(
        warnings[32],
        "chatty trace: 219 more entries dropped (a trace keeps 32 entries and 4 KiB; failed checks first)"
    );
    let bytes: usize = warnings.iter().map(|w| w.len()).sum();
    assert!(bytes < 6 << 10, "{bytes} bytes of warnings");
}
