use serde_json::json;

use super::*;

fn request(object: serde_json::Value) -> Request {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "operation": "CREATE", "userInfo": {"username": "alice"}, "object": object,
        }
    });
    parse_review(review.to_string().as_bytes()).unwrap()
}

fn output(allowed: bool) -> wit::AdmissionResponse {
    wit::AdmissionResponse {
        allowed,
        message: None,
        code: None,
        warnings: vec![],
        mutated_object: None,
    }
}

#[test]
fn a_mutation_becomes_a_json_patch() {
    let req = request(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
    let mut out = output(true);
    out.mutated_object = Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"team": "a"}}}).to_string());
    let verdict = check(Mode::Mutate, &req, out).unwrap();
    let expected = json!([{"op": "add", "path": "/metadata/labels", "value": {"team": "a"}}]);
    assert_eq!(
        serde_json::to_value(verdict.patch.clone().unwrap()).unwrap(),
        expected
    );
    let review: serde_json::Value =
        serde_json::from_slice(&review_json(respond(&req, verdict))).unwrap();
    assert_eq!(review["response"]["patchType"], "JSONPatch");
    use base64::Engine as _;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(review["response"]["patch"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&patch).unwrap(),
        expected
    );
}

#[test]
fn a_validate_binding_never_mutates() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let mut out = output(true);
    out.mutated_object = Some(json!({"metadata": {"name": "c", "labels": {"x": "y"}}}).to_string());
    assert_eq!(check(Mode::Validate, &req, out).unwrap().patch, None);
}

#[test]
fn an_unchanged_object_gives_no_patch() {
    let object = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
    let mut out = output(true);
    out.mutated_object = Some(object.to_string());
    assert_eq!(
        check(Mode::Mutate, &request(object), out).unwrap().patch,
        None
    );
}

#[test]
fn malformed_outputs_are_evaluation_errors() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let cases: Vec<(wit::AdmissionResponse, &str)> = vec![
        (
            wit::AdmissionResponse {
                code: Some(7),
                ..output(false)
            },
            "status code 7",
        ),
        (
            wit::AdmissionResponse {
                message: Some("x".repeat(MAX_MESSAGE_BYTES + 1)),
                ..output(false)
            },
            "over the limit",
        ),
        (
            wit::AdmissionResponse {
                warnings: vec!["w".into(); MAX_WARNINGS + 1],
                ..output(true)
            },
            "warnings",
        ),
        (
            wit::AdmissionResponse {
                mutated_object: Some("{not json".into()),
                ..output(true)
            },
            "not JSON",
        ),
        (
            wit::AdmissionResponse {
                mutated_object: Some("[1]".into()),
                ..output(true)
            },
            "array, not an object",
        ),
        (
            wit::AdmissionResponse {
                mutated_object: Some(r#"{"metadata": {"name": "other"}}"#.into()),
                ..output(true)
            },
            "/metadata/name",
        ),
    ];
    for (out, expected) in cases {
        match check(Mode::Mutate, &req, out) {
            Err(EvaluationError::Malformed(why)) => assert!(
                why.contains(expected),
                "{why:?} should mention {expected:?}"
            ),
            other => {
                panic!("expected a malformed-output error mentioning {expected:?}, got {other:?}")
            }
        }
    }
}

#[test]
fn a_denial_carries_the_plugins_message_and_code() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let verdict = check(
        Mode::Validate,
        &req,
        wit::AdmissionResponse {
            message: Some("no".into()),
            code: Some(422),
            warnings: vec!["w".into()],
            ..output(false)
        },
    )
    .unwrap();
    let response = respond(&req, verdict);
    assert!(!response.allowed);
    assert_eq!(
        (response.result.code, response.result.message.as_str()),
        (422, "no")
    );
    assert_eq!(response.uid, "u-1");
    assert_eq!(response.warnings, Some(vec!["w".to_string()]));
    let default = respond(&req, check(Mode::Validate, &req, output(false)).unwrap());
    assert_eq!(default.result.code, 403);
}

#[test]
fn the_failure_policy_decides_the_answer_to_an_evaluation_error() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let fail = fail(
        &req,
        FailurePolicy::Fail,
        "binding \"b\" (plugin \"p\") timed out",
    );
    assert!(!fail.allowed);
    assert_eq!(fail.result.code, 500);
    assert!(fail.result.message.contains("timed out"));
    let ignore = super::fail(
        &req,
        FailurePolicy::Ignore,
        "binding \"b\" (plugin \"p\") timed out",
    );
    assert!(ignore.allowed);
    assert!(ignore.warnings.unwrap()[0].contains("failure policy is Ignore"));
}

fn denial(message: &str) -> (Decision, Outcome) {
    let verdict = Verdict {
        allowed: false,
        message: Some(message.into()),
        code: Some(403),
        warnings: vec!["the plugin's own warning".into()],
        patch: None,
    };
    let outcome = Outcome {
        allowed: false,
        mutated: false,
        error: None,
        unenforced: None,
    };
    (Decision::Verdict(verdict), outcome)
}

#[test]
fn enforcement_deny_answers_a_denial_as_it_is() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let (decision, outcome) = denial("missing label team");
    let (decision, outcome) = enforce("labels", Enforcement::Deny, &req, decision, outcome);
    let response = decision.respond(&req);
    assert!(!response.allowed);
    assert_eq!(response.result.message, "missing label team");
    assert_eq!(outcome.unenforced, None);
}

#[test]
fn enforcement_warn_admits_with_the_denial_as_a_warning() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let (decision, outcome) = denial("missing label team");
    let (decision, outcome) = enforce("labels", Enforcement::Warn, &req, decision, outcome);
    assert!(outcome.allowed);
    assert_eq!(outcome.unenforced, Some(Enforcement::Warn));
    let response = decision.respond(&req);
    assert!(response.allowed);
    assert!(response.audit_annotations.is_empty());
    assert_eq!(
        response.warnings.unwrap(),
        [
            "the plugin's own warning",
            "binding \"labels\" (enforcement: warn) would deny the request: missing label team"
        ]
    );
}

#[test]
fn enforcement_audit_admits_with_an_audit_annotation() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let (decision, outcome) = denial("missing label team");
    let (decision, outcome) = enforce("labels", Enforcement::Audit, &req, decision, outcome);
    assert_eq!(outcome.unenforced, Some(Enforcement::Audit));
    let response = decision.respond(&req);
    assert!(response.allowed);
    assert_eq!(
        response.audit_annotations[AUDIT_ANNOTATION],
        "missing label team"
    );
    assert_eq!(response.warnings.unwrap(), ["the plugin's own warning"]);
}

#[test]
fn enforcement_softens_a_failure_policy_denial_too() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let failed = fail(&req, FailurePolicy::Fail, "binding \"labels\" timed out");
    let outcome = Outcome {
        allowed: false,
        mutated: false,
        error: Some("timeout"),
        unenforced: None,
    };
    let (decision, outcome) = enforce(
        "labels",
        Enforcement::Warn,
        &req,
        Decision::Failed(Box::new(failed)),
        outcome,
    );
    assert!(outcome.allowed);
    assert_eq!(outcome.error, Some("timeout"), "the error is still counted");
    let response = decision.respond(&req);
    assert!(response.allowed);
    assert!(
        response.warnings.unwrap()[0]
            .ends_with("would deny the request: binding \"labels\" timed out"),
    );
}

#[test]
fn an_admission_is_never_touched_by_enforcement() {
    let req = request(json!({"metadata": {"name": "c"}}));
    let verdict = Verdict {
        allowed: true,
        message: None,
        code: None,
        warnings: vec![],
        patch: None,
    };
    let outcome = Outcome {
        allowed: true,
        mutated: false,
        error: None,
        unenforced: None,
    };
    let (decision, outcome) = enforce(
        "labels",
        Enforcement::Audit,
        &req,
        Decision::Verdict(verdict.clone()),
        outcome.clone(),
    );
    assert_eq!(decision, Decision::Verdict(verdict));
    assert_eq!(outcome.unenforced, None);
}
