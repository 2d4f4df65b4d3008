//! Monitor mode (a binding's `enforcement: deny | warn | audit`) through the real server: the
//! webhooks and the embedded API's inline admission answer a denial the same way, and the
//! metrics count what would have been denied.

use corbel_e2e::{Embedded, Server, binding, review};

fn labels(name: &str, enforcement: &str) -> String {
    binding(
        name,
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        &format!("enforcement: {enforcement}"),
    )
}

#[tokio::test]
async fn warn_and_audit_admit_what_deny_refuses_and_say_why() {
    let bindings = labels("deny", "deny") + &labels("warn", "warn") + &labels("audit", "audit");
    let server = Server::start(&bindings, "").await;
    let unlabelled = review("configmap-unlabelled");

    let denied = server.admit("/validate/deny", &unlabelled).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["status"]["message"], "missing required labels: team");

    let warned = server.admit("/validate/warn", &unlabelled).await;
    assert_eq!(warned["allowed"], true, "{warned}");
    assert_eq!(
        warned["warnings"][0],
        "binding \"warn\" (enforcement: warn) would deny the request: missing required labels: team"
    );
    assert!(
        warned.get("status").is_none_or(|s| s["code"] != 403),
        "{warned}"
    );

    let audited = server.admit("/validate/audit", &unlabelled).await;
    assert_eq!(audited["allowed"], true, "{audited}");
    assert_eq!(
        audited["auditAnnotations"]["would-deny"],
        "missing required labels: team"
    );
    assert!(audited.get("warnings").is_none(), "{audited}");
    assert!(
        server
            .log()
            .contains("would deny (enforcement: audit): admitted"),
        "the audit verdict is recorded in the log:\n{}",
        server.log()
    );

    // A request the policy admits is answered as it always is, whatever the enforcement.
    let labelled = server
        .admit("/validate/warn", &review("configmap-labelled"))
        .await;
    assert_eq!(labelled["allowed"], true);
    assert!(labelled.get("warnings").is_none(), "{labelled}");

    let (_, metrics) = server.get_text("/metrics").await;
    for line in [
        r#"corbel_admission_unenforced_denials_total{binding="warn",enforcement="warn"} 1"#,
        r#"corbel_admission_unenforced_denials_total{binding="audit",enforcement="audit"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    assert!(
        !metrics.contains(r#"corbel_admission_unenforced_denials_total{binding="deny""#),
        "{metrics}"
    );
}

/// A policy rolled out in monitor mode must never block, not even when it cannot be evaluated:
/// its failure policy's denial becomes a warning as well.
#[tokio::test]
async fn a_binding_in_warn_mode_never_blocks_even_when_its_plugin_fails() {
    let bindings = binding(
        "looping",
        "hostile",
        "validate",
        r#"{"attack": "infinite-loop"}"#,
        "timeout: 100ms\nfailurePolicy: Fail\nenforcement: warn",
    );
    let server = Server::start(&bindings, "").await;
    let answer = server
        .admit("/validate/looping", &review("configmap-labelled"))
        .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    let warning = answer["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("binding \"looping\" (enforcement: warn) would deny the request: ")
            && warning.contains("timed out after 100ms"),
        "{warning}"
    );
}

#[tokio::test]
async fn inline_admission_in_warn_mode_admits_and_kubectl_prints_the_warning() {
    let rules = "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps]}";
    let bindings = binding(
        "require-labels",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        &format!("enforcement: warn\n{rules}"),
    );
    let embedded = Embedded::start(&bindings, "", None).await;
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unlabelled}\ndata: {k: v}\n";
    let (success, out, err) = embedded.kubectl(&["apply", "-f", "-"], Some(configmap));
    assert!(success, "kubectl apply failed: {err}");
    assert!(out.contains("configmap/unlabelled created"), "{out}");
    assert!(
        err.contains(
            "Warning: binding \"require-labels\" (enforcement: warn) would deny the request: missing required labels: team"
        ),
        "kubectl prints the warning: {err}"
    );
    let (found, _, err) = embedded.kubectl(&["get", "configmap", "unlabelled"], None);
    assert!(found, "the object was stored: {err}");

    let (_, metrics) = embedded.server.get_text("/metrics").await;
    let line = r#"corbel_admission_unenforced_denials_total{binding="require-labels",enforcement="warn"} 1"#;
    assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    assert!(
        metrics.contains(
            r#"corbel_admission_evaluations_total{binding="require-labels",allowed="true""#
        ),
        "inline admission counts its evaluations: {metrics}"
    );
}
