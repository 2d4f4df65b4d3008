//! Hostile plugins against the real server: each attack (see `tests/plugins/hostile`) must fail
//! only its own request, answered by the binding's failure policy, while good traffic continues and
//! memory comes back.

use corbel_e2e::{Server, binding, review};
use futures::future::join_all;
use serde_json::json;

/// Every attack, the limits its binding gets, and what the answer must say caused the failure.
const ATTACKS: &[(&str, &str, &str)] = &[
    ("infinite-loop", "timeout: 200ms", "timed out after 200ms"),
    (
        "memory-bomb",
        "memoryLimit: 32Mi",
        "exceeded its memory limit of 32 MiB",
    ),
    (
        "trap",
        "",
        "trapped: wasm trap: wasm `unreachable` instruction executed",
    ),
    (
        "oversized-output",
        "memoryLimit: 128Mi",
        "returned malformed output: the message is 33554432 bytes",
    ),
    (
        "garbage-output",
        "",
        "returned malformed output: status code 7 is not an HTTP error code",
    ),
];

fn hostile_bindings() -> String {
    let mut yaml = binding(
        "good",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        "",
    );
    for (attack, limits, _) in ATTACKS {
        for policy in ["Fail", "Ignore"] {
            let name = format!("{attack}-{}", policy.to_lowercase());
            let more = format!("failurePolicy: {policy}\n{limits}");
            yaml += &binding(
                &name,
                "hostile",
                "validate",
                &format!(r#"{{"attack": "{attack}"}}"#),
                &more,
            );
        }
    }
    yaml
}

#[tokio::test]
async fn each_hostile_plugin_fails_its_request_by_the_failure_policy() {
    let server = Server::start(&hostile_bindings(), "").await;
    for (attack, _, cause) in ATTACKS {
        let failed = server
            .admit(
                &format!("/validate/{attack}-fail"),
                &review("configmap-labelled"),
            )
            .await;
        assert_eq!(failed["allowed"], false, "{attack}: {failed}");
        assert_eq!(failed["status"]["code"], 500, "{attack}: {failed}");
        let message = failed["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(r#"binding "{attack}-fail""#)),
            "{attack}: names the binding: {message}"
        );
        assert!(
            message.contains(r#"plugin "hostile""#),
            "{attack}: names the plugin: {message}"
        );
        assert!(
            message.contains(cause),
            "{attack}: names the cause {cause:?}: {message}"
        );

        let ignored = server
            .admit(
                &format!("/validate/{attack}-ignore"),
                &review("configmap-labelled"),
            )
            .await;
        assert_eq!(ignored["allowed"], true, "{attack}: {ignored}");
        let warning = ignored["warnings"][0].as_str().unwrap();
        assert!(
            warning.contains(cause) && warning.contains("failure policy is Ignore"),
            "{attack}: {warning}"
        );
    }
    // The memory bomb's allocation failure went to its stderr, which lands in the host's log
    // tagged with the binding and the stream.
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("memory allocation of") && l.contains("memory-bomb-fail"))
        .unwrap_or_else(|| panic!("the plugin's stderr is in the log:\n{log}"));
    assert!(
        line.contains(r#"stream="stderr""#),
        "tagged with the stream: {line}"
    );
    let (_, metrics) = server.get_text("/metrics").await;
    for kind in ["timeout", "memory_limit", "trap", "malformed_output"] {
        assert!(
            metrics.contains(&format!(r#"error="{kind}""#)),
            "metrics count {kind} errors:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn good_requests_keep_succeeding_while_hostile_plugins_run() {
    let mut server = Server::start(&hostile_bindings(), "").await;
    let hostile = async {
        for round in 0..3 {
            let attacks = ATTACKS
                .iter()
                .flat_map(|(attack, _, _)| [attack, attack])
                .map(|attack| {
                    let server = &server;
                    async move {
                        server
                            .admit(
                                &format!("/validate/{attack}-fail"),
                                &review("configmap-labelled"),
                            )
                            .await
                    }
                });
            for answer in join_all(attacks).await {
                assert_eq!(answer["allowed"], false, "round {round}: {answer}");
            }
        }
    };
    let good = async {
        let (mut allowed, mut denied) = (0, 0);
        for i in 0..300 {
            let fixture = if i % 2 == 0 {
                "configmap-labelled"
            } else {
                "configmap-unlabelled"
            };
            let answer = server.admit("/validate/good", &review(fixture)).await;
            match (fixture, answer["allowed"].as_bool()) {
                ("configmap-labelled", Some(true)) => allowed += 1,
                ("configmap-unlabelled", Some(false)) if answer["status"]["code"] == 403 => {
                    denied += 1
                }
                _ => panic!(
                    "request {i} ({fixture}) got a wrong answer while hostile plugins ran: {answer}"
                ),
            }
        }
        (allowed, denied)
    };
    let ((), counts) = tokio::join!(hostile, good);
    assert_eq!(counts, (150, 150));
    assert!(server.is_running(), "the host survived:\n{}", server.log());
}

#[tokio::test]
async fn memory_comes_back_after_memory_bombs() {
    let bindings = [
        binding(
            "bomb",
            "hostile",
            "validate",
            r#"{"attack": "memory-bomb"}"#,
            "memoryLimit: 64Mi",
        ),
        binding(
            "good",
            "require_labels",
            "validate",
            r#"{"labels": ["team"]}"#,
            "",
        ),
    ]
    .concat();
    let server = Server::start(&bindings, "maxInstances: 16").await;
    let bombs = |n: usize| {
        let server = &server;
        join_all((0..n).map(move |_| async move {
            let answer = server
                .admit("/validate/bomb", &review("configmap-labelled"))
                .await;
            assert!(
                answer["status"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("memory limit of 64 MiB"),
                "{answer}"
            );
        }))
    };
    bombs(8).await; // warm up: pools, allocator arenas, lazily compiled paths
    let before = server.rss_kib();
    for _ in 0..5 {
        bombs(8).await; // 8 × 64 MiB at a time: 512 MiB if nothing were returned
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = server.rss_kib();
    assert!(
        after < before + 64 * 1024,
        "resident memory grew from {before} KiB to {after} KiB after 40 memory bombs"
    );
    assert_eq!(
        server
            .admit("/validate/good", &review("configmap-labelled"))
            .await["allowed"],
        json!(true)
    );
}

/// With every sandbox slot taken (here the only one, by an endless loop), a request waits for a
/// slot at most its binding's timeout and is then answered by the failure policy, naming the
/// cause; once the slot comes back, requests run again.
#[tokio::test]
async fn a_request_that_finds_every_sandbox_busy_fails_by_its_policy() {
    let bindings = binding(
        "loop",
        "hostile",
        "validate",
        r#"{"attack": "infinite-loop"}"#,
        "timeout: 2s",
    ) + &binding(
        "good",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        "timeout: 200ms",
    );
    let server = Server::start(&bindings, "maxInstances: 1").await;
    let request = review("configmap-labelled");
    let (looped, busy) = tokio::join!(server.admit("/validate/loop", &request), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        server.admit("/validate/good", &request).await
    });
    assert!(
        looped["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out after 2s")),
        "{looped}"
    );
    assert_eq!(busy["allowed"], false, "{busy}");
    assert_eq!(busy["status"]["code"], 500, "{busy}");
    let message = busy["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("no sandbox slot became free within 200ms (all 1 are busy)"),
        "{message}"
    );
    let after = server.admit("/validate/good", &request).await;
    assert_eq!(after["allowed"], true, "{after}");
}
