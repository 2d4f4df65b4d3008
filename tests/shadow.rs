//! Shadow evaluation (a binding's `shadow:` candidate) and raw JSON evaluation
//! (`POST /validate-raw/{binding}`) through the real server.

use std::time::{Duration, Instant};

use corbel_e2e::{Server, bin, binding, plugin, review};
use serde_json::{Value, json};

/// A ConfigMap review with these labels and a uid of its own.
fn configmap(uid: &str, labels: Value) -> Value {
    let mut review = review("configmap-labelled");
    review["request"]["uid"] = json!(uid);
    review["request"]["object"]["metadata"]["labels"] = labels;
    review
}

/// `GET /shadow/{binding}` once every candidate evaluation has finished.
async fn settled_report(server: &Server, binding: &str, requests: u64) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = server.get_text(&format!("/shadow/{binding}")).await;
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        if report["requests"] == requests && report["inFlight"] == 0 {
            return report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the candidate's evaluations did not finish: {report}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server whose binding `labels` requires `team`, with a candidate that also requires `tier`
/// (so it denies what lacks `tier`), at `cpuShare: 1`; `more` adds to the `shadow:` section.
async fn start_shadowed(more: &str) -> Server {
    let shadow = format!(
        "shadow:\n  plugin: {}\n  settings: {{labels: [team, tier]}}\n  cpuShare: 1{more}",
        plugin("require_labels").display()
    );
    let bindings = binding(
        "labels",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        &shadow,
    );
    Server::start(&bindings, "").await
}

#[tokio::test]
async fn a_candidate_that_disagrees_on_30_of_100_requests_is_reported_with_that_fraction() {
    let server = start_shadowed("\n  keep: 20").await;
    let (status, ready) = server.wait_loaded().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready["bindings"]["labels"]["shadow"]["loaded"], true,
        "{ready}"
    );

    for i in 0..100 {
        let labels = if i % 10 < 3 {
            json!({"team": "a"})
        } else {
            json!({"team": "a", "tier": "web"})
        };
        let response = server
            .admit("/validate/labels", &configmap(&format!("uid-{i}"), labels))
            .await;
        // The caller only ever sees the serving version's verdict.
        assert_eq!(response["allowed"], true, "request {i}: {response}");
        assert!(
            response.get("warnings").is_none(),
            "request {i}: {response}"
        );
    }
    // A request both versions deny, with different messages, is a disagreement on the message
    // alone; the caller sees the serving version's message.
    let response = server
        .admit("/validate/labels", &configmap("uid-none", json!({})))
        .await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "missing required labels: team"
    );

    let report = settled_report(&server, "labels", 101).await;
    assert_eq!(report["compared"], 101, "{report}");
    assert_eq!(report["agreed"], 70, "{report}");
    assert_eq!(report["disagreed"], 31, "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["loaded"], true);
    // `keep: 20`: the ring holds the last 20, oldest first.
    let kept = report["disagreements"].as_array().unwrap();
    assert_eq!(kept.len(), 20, "{report}");
    let first = &kept[0];
    assert_eq!(first["differs"], json!(["allowed", "message"]), "{first}");
    assert_eq!(first["serving"]["allowed"], true);
    assert_eq!(first["candidate"]["allowed"], false);
    assert_eq!(
        first["candidate"]["message"],
        "missing required labels: tier"
    );
    assert_eq!(first["kind"], "v1/ConfigMap");
    assert_eq!(
        first["request"]["object"]["metadata"]["labels"],
        json!({"team": "a"})
    );
    let last = kept.last().unwrap();
    assert_eq!(last["uid"], "uid-none");
    assert_eq!(last["differs"], json!(["message"]), "{last}");

    // Exactly 30 of the first 100 requests: the fraction is 30 %, before the 101st.
    let (_, metrics) = server.get_text("/metrics").await;
    for line in [
        r#"corbel_shadow_evaluations_total{binding="labels",result="agreed"} 70"#,
        r#"corbel_shadow_evaluations_total{binding="labels",result="disagreed"} 31"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }

    // `corbel shadow report` reads the same from the running server.
    let output = std::process::Command::new(bin())
        .args(["shadow", "report", "--server", &server.base, "--last", "2"])
        .arg("--ca-file")
        .arg(server.dir.path().join("tls/ca.crt"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("labels"))
        .unwrap_or_else(|| panic!("no row for the binding:\n{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[cells.len() - 6..],
        ["101", "70", "31", "(30.7%)", "0", "0"],
        "{stdout}"
    );
    assert!(
        stdout.contains("the last 2 of 31 disagreements (the server keeps 20)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("candidate: denied (403): \"missing required labels: tier\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn exactly_the_disagreeing_fraction_is_reported() {
    // Same as above without the extra request: 30 of 100 exactly.
    let server = start_shadowed("").await;
    for i in 0..100 {
        let labels = if i % 10 < 3 {
            json!({"team": "a"})
        } else {
            json!({"team": "a", "tier": "web"})
        };
        let response = server
            .admit("/validate/labels", &configmap(&format!("uid-{i}"), labels))
            .await;
        assert_eq!(response["allowed"], true, "request {i}: {response}");
    }
    let report = settled_report(&server, "labels", 100).await;
    assert_eq!(report["disagreed"], 30, "{report}");
    assert_eq!(report["agreed"], 70, "{report}");
    assert_eq!(report["disagreementRate"], 0.3, "{report}");
    assert_eq!(report["disagreements"].as_array().unwrap().len(), 30);

    // GET /shadow lists every binding with a candidate.
    let (status, body) = server.get_text("/shadow").await;
    assert_eq!(status, 200);
    let all: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["bindings"]["labels"]["disagreed"], 30, "{all}");
}

#[tokio::test]
async fn a_candidate_that_fails_to_load_leaves_the_binding_serving() {
    let missing = "shadow:\n  plugin: /nonexistent/candidate.wasm";
    let refused = format!(
        "shadow:\n  plugin: {}\n  settings: {{labels: []}}",
        plugin("require_labels").display()
    );
    let bindings = binding(
        "missing",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        missing,
    ) + &binding(
        "refused",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        &refused,
    ) + &binding(
        "plain",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        "",
    );
    let server = Server::start(&bindings, "").await;
    let (status, ready) = server.wait_loaded().await;
    assert_eq!(
        status, 200,
        "a candidate never makes the server unready: {ready}"
    );
    let shadow = &ready["bindings"]["missing"]["shadow"];
    assert_eq!(shadow["loaded"], false, "{ready}");
    assert!(
        shadow["lastError"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/candidate.wasm"),
        "{ready}"
    );
    let shadow = &ready["bindings"]["refused"]["shadow"];
    assert_eq!(shadow["loaded"], false, "{ready}");
    assert!(
        shadow["lastError"]
            .as_str()
            .unwrap()
            .contains("refused the settings"),
        "{ready}"
    );
    assert!(
        ready["bindings"]["plain"].get("shadow").is_none(),
        "{ready}"
    );

    for name in ["missing", "refused"] {
        let denied = server
            .admit(
                &format!("/validate/{name}"),
                &review("configmap-unlabelled"),
            )
            .await;
        assert_eq!(denied["allowed"], false, "{denied}");
        let allowed = server
            .admit(&format!("/validate/{name}"), &review("configmap-labelled"))
            .await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        let report = settled_report(&server, name, 2).await;
        assert_eq!(report["loaded"], false, "{report}");
        assert_eq!(report["skipped"], 2, "{report}");
    }

    let (status, body) = server.get_text("/shadow/plain").await;
    assert_eq!(status, 404);
    assert!(body.contains("has no shadow candidate"), "{body}");
    let (status, body) = server.get_text("/shadow/nope").await;
    assert_eq!(status, 404);
    assert!(body.contains("no binding named \\\"nope\\\""), "{body}");
}

#[tokio::test]
async fn the_raw_endpoint_allows_and_denies_a_document_that_is_not_a_kubernetes_object() {
    let bindings = binding(
        "labels",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        "",
    );
    let server = Server::start(&bindings, "maxBodySize: 4096").await;

    // A pipeline's document: no apiVersion, no kind.
    let document = json!({"pipeline": "deploy", "image": "shop:1.2", "metadata": {"labels": {"team": "checkout"}}});
    let (status, body) = server
        .post("/validate-raw/labels", &json!({"request": document}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["allowed"], true, "{body}");
    assert_eq!(body["response"]["uid"], "");
    assert_eq!(body["response"]["warnings"], json!([]));

    let (status, body) = server
        .post(
            "/validate-raw/labels",
            &json!({"uid": "ci-42", "request": {"pipeline": "deploy", "image": "shop:1.2"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["uid"], "ci-42");
    assert_eq!(body["response"]["allowed"], false, "{body}");
    assert_eq!(
        body["response"]["status"]["message"],
        "missing required labels: team"
    );
    assert_eq!(body["response"]["status"]["code"], 403);

    // The clear errors.
    let raw = |body: &'static str| {
        server
            .client
            .post(format!("{}/validate-raw/labels", server.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, says) in [
        ("{not json", "the body is not JSON"),
        (r#"{"document": {}}"#, "the body has no `request`"),
        (r#"{"request": [1, 2]}"#, "`request` must be a JSON object"),
    ] {
        let response = raw(body).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    let (status, body) = server
        .post("/validate-raw/nope", &json!({"request": {}}))
        .await;
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no binding named"),
        "{body}"
    );
    let big = json!({"request": {"blob": "x".repeat(8192)}});
    let (status, body) = server.post("/validate-raw/labels", &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("maxBodySize"),
        "{body}"
    );
}
