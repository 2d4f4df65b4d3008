//! The webhook server end to end: the real `corbel` binary on loopback, real AdmissionReview JSON
//! over HTTPS (HTTP/2 and HTTP/1.1 through reqwest), the first-party policies as built components.

use corbel_e2e::{Server, apply_patch, binding, client_trusting, review};
use serde_json::{Value, json};

fn policies() -> String {
    [
        binding(
            "require-labels",
            "require_labels",
            "validate",
            r#"{"labels": ["team", "owner"]}"#,
            "",
        ),
        binding(
            "default-labels",
            "default_labels",
            "mutate",
            r#"{"labels": {"owner": "platform", "env": "dev"}}"#,
            "",
        ),
        binding(
            "pod-security",
            "pod_security",
            "validate",
            r#"{"level": "restricted"}"#,
            "",
        ),
    ]
    .concat()
}

#[tokio::test]
async fn admits_a_labelled_object_and_denies_one_missing_a_label() {
    let server = Server::start(&policies(), "").await;
    let allowed = server
        .admit("/validate/require-labels", &review("configmap-labelled"))
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert!(
        allowed.get("patch").is_none(),
        "a validate binding never returns a patch"
    );

    let denied = server
        .admit("/validate/require-labels", &review("configmap-unlabelled"))
        .await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["status"]["code"], 403);
    assert_eq!(
        denied["status"]["message"],
        "missing required labels: team, owner"
    );
}

#[tokio::test]
async fn mutates_with_a_json_patch_that_adds_only_missing_labels() {
    let server = Server::start(&policies(), "").await;
    let request = review("configmap-missing-team");
    let response = server.admit("/mutate/default-labels", &request).await;
    assert_eq!(response["allowed"], true, "{response}");
    let mutated = apply_patch(&request, &response);
    assert_eq!(
        mutated["metadata"]["labels"],
        json!({"owner": "alice", "env": "dev"}),
        "owner is kept, env added"
    );
    assert_eq!(
        mutated["data"], request["request"]["object"]["data"],
        "nothing else changes"
    );

    let complete = json!({"owner": "o", "env": "prod"});
    let mut labelled = request.clone();
    labelled["request"]["object"]["metadata"]["labels"] = complete;
    let unchanged = server.admit("/mutate/default-labels", &labelled).await;
    assert_eq!(unchanged["allowed"], true);
    assert!(
        unchanged.get("patch").is_none(),
        "no patch when nothing is missing: {unchanged}"
    );
}

#[tokio::test]
async fn pod_security_denies_a_privileged_pod_the_way_kubernetes_words_it() {
    let server = Server::start(&policies(), "").await;
    let denied = server
        .admit("/validate/pod-security", &review("pod-privileged"))
        .await;
    assert_eq!(denied["allowed"], false);
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#"violates PodSecurity "restricted:latest": "#),
        "{message}"
    );
    assert!(
        message.contains(
            r#"privileged (container "app" must not set securityContext.privileged=true)"#
        ),
        "{message}"
    );
    let allowed = server
        .admit("/validate/pod-security", &review("pod-restricted"))
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
}

#[tokio::test]
async fn reports_health_readiness_and_metrics() {
    let server = Server::start(&policies(), "").await;
    assert_eq!(server.get_text("/healthz").await, (200, "ok\n".to_string()));
    let (status, ready) = server.wait_loaded().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["bindings"]["pod-security"]["loaded"], true);

    server
        .admit("/validate/require-labels", &review("configmap-unlabelled"))
        .await;
    server
        .admit("/mutate/default-labels", &review("configmap-unlabelled"))
        .await;
    let (status, metrics) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"corbel_admission_evaluations_total{binding="require-labels",allowed="false",mutated="false",error=""} 1"#,
        r#"corbel_admission_evaluations_total{binding="default-labels",allowed="true",mutated="true",error=""} 1"#,
        r#"corbel_admission_evaluation_duration_seconds_count{binding="require-labels"} 1"#,
        "corbel_admission_in_flight 0",
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
}

/// Each way a caller can get the request wrong, with the status it must get and why.
#[tokio::test]
async fn refuses_bad_input_with_a_status_and_a_reason() {
    let server = Server::start(&policies(), "maxBodySize: 64Ki").await;
    let url = |path: &str| format!("{}{path}", server.base);
    let good = review("configmap-labelled");
    let mut v1beta1 = good.clone();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut huge = good.clone();
    huge["request"]["object"]["data"]["blob"] = json!("x".repeat(100 << 10));

    // (what, path, content type, body, expected status, what the message must say)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong content type",
            "/validate/require-labels",
            "text/plain",
            good.to_string().into(),
            415,
            "application/json",
        ),
        (
            "not JSON",
            "/validate/require-labels",
            "application/json",
            b"{nope".to_vec(),
            400,
            "not an AdmissionReview",
        ),
        (
            "JSON but no review",
            "/validate/require-labels",
            "application/json",
            br#"{"hello": 1}"#.to_vec(),
            400,
            "not an AdmissionReview",
        ),
        (
            "old API version",
            "/validate/require-labels",
            "application/json",
            v1beta1.to_string().into(),
            400,
            "admissionReviewVersions",
        ),
        (
            "review without a request",
            "/validate/require-labels",
            "application/json",
            br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#.to_vec(),
            400,
            "no request",
        ),
        (
            "unknown binding",
            "/validate/nope",
            "application/json",
            good.to_string().into(),
            404,
            "default-labels, pod-security, require-labels",
        ),
        (
            "wrong mode",
            "/mutate/require-labels",
            "application/json",
            good.to_string().into(),
            404,
            "POST /validate/require-labels",
        ),
        (
            "over the size limit",
            "/validate/require-labels",
            "application/json",
            huge.to_string().into(),
            413,
            "size limit",
        ),
        (
            "unknown path",
            "/admit",
            "application/json",
            good.to_string().into(),
            404,
            "no such endpoint",
        ),
    ];
    for (what, path, content_type, body, code, reason) in cases {
        let response = server
            .client
            .post(url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, code, "{what}: {body}");
        assert_eq!(
            body["kind"], "Status",
            "{what}: errors are Kubernetes Status objects: {body}"
        );
        assert!(
            body["message"].as_str().unwrap_or("").contains(reason),
            "{what}: {body} should say {reason:?}"
        );
    }
    let get = server
        .client
        .get(url("/validate/require-labels"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    // The server is unharmed by all of it.
    assert_eq!(
        server.admit("/validate/require-labels", &good).await["allowed"],
        true
    );
}

#[tokio::test]
async fn a_binding_that_cannot_load_fails_readiness_and_answers_by_its_failure_policy() {
    let bindings = [
        binding(
            "good",
            "require_labels",
            "validate",
            r#"{"labels": ["team"]}"#,
            "",
        ),
        binding(
            "empty-labels",
            "require_labels",
            "validate",
            r#"{"labels": []}"#,
            "failurePolicy: Fail",
        ),
        binding(
            "typo",
            "require_labels",
            "validate",
            r#"{"lables": ["team"]}"#,
            "failurePolicy: Ignore",
        ),
        binding("future", "future_version", "validate", "{}", ""),
        "- name: missing\n  plugin: /nonexistent/plugin.wasm\n  mode: validate\n".to_string(),
    ]
    .concat();
    let server = Server::start(&bindings, "").await;
    let (status, ready) = server.wait_loaded().await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["ready"], false);
    let error = |name: &str| {
        ready["bindings"][name]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(ready["bindings"]["good"]["loaded"], true);
    assert!(
        error("empty-labels").contains("`labels` is empty"),
        "{ready}"
    );
    assert!(error("typo").contains("unknown field `lables`"), "{ready}");
    assert!(
        error("future").contains("corbel:plugin@0.2.0")
            && error("future").contains("corbel:plugin@0.1.0"),
        "{ready}"
    );
    assert!(
        error("missing").contains("/nonexistent/plugin.wasm"),
        "{ready}"
    );

    let failed = server
        .admit("/validate/empty-labels", &review("configmap-labelled"))
        .await;
    assert_eq!(
        (failed["allowed"].clone(), failed["status"]["code"].clone()),
        (json!(false), json!(500))
    );
    assert!(
        failed["status"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"binding "empty-labels" is not loaded"#),
        "{failed}"
    );
    let ignored = server
        .admit("/validate/typo", &review("configmap-unlabelled"))
        .await;
    assert_eq!(ignored["allowed"], true);
    assert!(
        ignored["warnings"][0]
            .as_str()
            .unwrap()
            .contains("failure policy is Ignore"),
        "{ignored}"
    );
    assert_eq!(
        server
            .admit("/validate/good", &review("configmap-labelled"))
            .await["allowed"],
        true
    );
}

fn certificate(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("test CA {name}"));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca_path = dir.join(format!("{name}-ca.crt"));
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    (ca_path, leaf.pem(), key.serialize_pem())
}

#[tokio::test]
async fn serves_a_renewed_certificate_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = certificate(certs.path(), "one");
    let (ca2, cert2, key2) = certificate(certs.path(), "two");
    let (cert_file, key_file) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    std::fs::write(&cert_file, &cert1).unwrap();
    std::fs::write(&key_file, &key1).unwrap();

    // A configuration with certificate files instead of the development CA.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("corbel.yaml");
    std::fs::write(
        &config,
        format!(
            "tls:\n  certFile: {}\n  keyFile: {}\n  reloadInterval: 100ms\nbindings: []\n",
            cert_file.display(),
            key_file.display()
        ),
    )
    .unwrap();
    let address_file = dir.path().join("address");
    let mut child = std::process::Command::new(corbel_e2e::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--address-file")
        .arg(&address_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let healthz = async |ca: &std::path::Path| {
        let address = std::fs::read_to_string(&address_file).unwrap_or_default();
        client_trusting(ca)
            .get(format!("https://{address}/healthz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    };
    let eventually = async |ca: &std::path::Path| {
        for _ in 0..200 {
            if healthz(ca).await == Some(200) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };
    assert!(eventually(&ca1).await, "the first certificate is served");
    assert_eq!(
        healthz(&ca2).await,
        None,
        "a client trusting only the second CA is refused"
    );

    // A half-written renewal does not take the server down: the old certificate keeps serving.
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\ngarbage").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(healthz(&ca1).await, Some(200));

    std::fs::write(&key_file, &key2).unwrap();
    std::fs::write(&cert_file, &cert2).unwrap();
    assert!(
        eventually(&ca2).await,
        "the renewed certificate is served without a restart"
    );
    assert_eq!(
        healthz(&ca1).await,
        None,
        "the old certificate is no longer served"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn stops_gracefully_on_sigterm() {
    let server = Server::start(&policies(), "").await;
    assert_eq!(
        server
            .admit("/validate/require-labels", &review("configmap-labelled"))
            .await["allowed"],
        true
    );
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
