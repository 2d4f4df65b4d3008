//! `corbel eval` and `corbel inspect` as a user runs them: the real binary, real files.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use corbel_e2e::{bin, plugin, root};
use serde_json::Value;

fn corbel(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
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

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn eval_prints_the_admission_review_and_exits_zero_for_any_verdict() {
    let labels = plugin("require_labels");
    let labels = labels.to_str().unwrap();
    let denied = stdout_json(&corbel(&[
        "eval",
        "--plugin",
        labels,
        "--settings",
        r#"{"labels":["team"]}"#,
        "--request",
        &fixture("configmap-unlabelled"),
    ]));
    assert_eq!(denied["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(denied["kind"], "AdmissionReview");
    assert_eq!(
        denied["response"]["uid"],
        "a3b2c1d0-0000-4000-8000-000000000003"
    );
    assert_eq!(denied["response"]["allowed"], false);
    assert_eq!(
        denied["response"]["status"]["message"],
        "missing required labels: team"
    );
    assert_eq!(denied["response"]["status"]["code"], 403);

    let allowed = stdout_json(&corbel(&[
        "eval",
        "--plugin",
        labels,
        "--settings",
        r#"{"labels":["team"]}"#,
        "--request",
        &fixture("configmap-labelled"),
    ]));
    assert_eq!(allowed["response"]["allowed"], true);
}

#[test]
fn eval_reads_the_request_from_stdin_and_settings_from_a_file() {
    let settings = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(settings.path(), "labels:\n  env: dev\n").unwrap();
    let mut child = Command::new(bin())
        .args(["eval", "--mode", "mutate", "--request", "-", "--plugin"])
        .arg(plugin("default_labels"))
        .arg("--settings")
        .arg(format!("@{}", settings.path().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = std::fs::read(fixture("configmap-unlabelled")).unwrap();
    child.stdin.take().unwrap().write_all(&request).unwrap();
    let output = child.wait_with_output().unwrap();
    let review = stdout_json(&output);
    let request: Value = serde_json::from_slice(&request).unwrap();
    let mutated = corbel_e2e::apply_patch(&request, &review["response"]);
    assert_eq!(mutated["metadata"]["labels"]["env"], "dev");
}

#[test]
fn eval_exits_non_zero_with_a_clear_message_when_it_cannot_evaluate() {
    let hostile = plugin("hostile");
    let hostile = hostile.to_str().unwrap();
    let labels = plugin("require_labels");
    let labels = labels.to_str().unwrap();
    let request = fixture("configmap-labelled");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--plugin",
                hostile,
                "--settings",
                r#"{"attack":"infinite-loop"}"#,
                "--timeout",
                "100ms",
            ],
            "plugin hostile timed out after 100ms",
        ),
        (
            vec!["--plugin", hostile, "--settings", r#"{"attack":"trap"}"#],
            "trapped",
        ),
        (
            vec!["--plugin", labels, "--settings", r#"{"labels":[]}"#],
            "refused the settings: `labels` is empty",
        ),
        (
            vec!["--plugin", labels, "--settings", "{not json"],
            "--settings is not JSON",
        ),
        (
            vec!["--plugin", "/nonexistent.wasm"],
            "failed to read /nonexistent.wasm",
        ),
        (
            vec![
                "--plugin",
                labels,
                "--mode",
                "mutate",
                "--settings",
                r#"{"labels":["team"]}"#,
            ],
            "this policy does not mutate",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["eval", "--request", &request];
        all.extend(args);
        let output = corbel(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{all:?} should fail");
        assert!(
            output.stdout.is_empty(),
            "{all:?} prints no verdict when it could not evaluate"
        );
        assert!(
            stderr.contains(message),
            "{all:?}: stderr should say {message:?}:\n{stderr}"
        );
    }
    let missing_request = corbel(&["eval", "--plugin", labels, "--request", "/nonexistent.json"]);
    assert!(
        String::from_utf8_lossy(&missing_request.stderr)
            .contains("failed to read the AdmissionReview /nonexistent.json")
    );
}

#[test]
fn inspect_names_the_wit_version_world_imports_and_exports() {
    let output = corbel(&["inspect", plugin("require_labels").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(text.contains("package:  corbel:plugin@0.1.0"), "{text}");
    assert!(
        text.contains("world:    corbel:plugin/policy@0.1.0"),
        "{text}"
    );
    assert!(text.contains("corbel:plugin/admission@0.1.0: "), "{text}");
    assert!(
        text.contains("validate-settings, validate, mutate"),
        "{text}"
    );
    assert!(text.contains("wasi:cli/stdout@"), "{text}");

    let json: Value = serde_json::from_slice(
        &corbel(&[
            "inspect",
            "--json",
            plugin("future_version").to_str().unwrap(),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(json["package"], "corbel:plugin@0.2.0");
    assert!(
        json["loadable"]["Err"]
            .as_str()
            .unwrap()
            .contains("supports corbel:plugin@0.1.0"),
        "{json}"
    );
}

#[test]
fn inspect_explains_what_a_file_is_when_it_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, b"hello").unwrap();
    for (file, message) in [
        (&module, "core WebAssembly module, not a component"),
        (&text, "not WebAssembly"),
    ] {
        let output = corbel(&["inspect", file.to_str().unwrap()]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}

/// `corbel eval` (and `corbel test`) keep the compiled component in the plugin cache
/// (`$XDG_CACHE_HOME/corbel`), so a large component compiles once per version; a damaged
/// artifact is noticed, compiled again and replaced, never loaded.
#[test]
fn eval_compiles_through_the_cache_and_mends_a_damaged_artifact() {
    let cache = tempfile::tempdir().unwrap();
    let labels = plugin("require_labels");
    let eval = || {
        let output = Command::new(bin())
            .args(["eval", "--plugin", labels.to_str().unwrap()])
            .args(["--settings", r#"{"labels":["team"]}"#])
            .args(["--request", &fixture("configmap-unlabelled")])
            .env("XDG_CACHE_HOME", cache.path())
            .current_dir(root())
            .output()
            .unwrap();
        let review = stdout_json(&output);
        assert_eq!(review["response"]["allowed"], false, "{review}");
    };
    let artifacts = || -> Vec<std::path::PathBuf> {
        let compiled = cache.path().join("corbel/compiled");
        std::fs::read_dir(&compiled)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|engine| std::fs::read_dir(engine.path()).unwrap().flatten())
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };

    eval();
    let stored = artifacts();
    assert_eq!(stored.len(), 1, "one compiled artifact: {stored:?}");
    let intact = std::fs::read(&stored[0]).unwrap();
    let written = || std::fs::metadata(&stored[0]).unwrap().modified().unwrap();
    let first = written();

    std::thread::sleep(std::time::Duration::from_millis(20));
    eval();
    assert_eq!(
        written(),
        first,
        "the second run loaded the artifact, not rewrote it"
    );

    std::fs::write(&stored[0], &intact[..intact.len() / 2]).unwrap();
    eval();
    assert_eq!(
        std::fs::read(&stored[0]).unwrap(),
        intact,
        "the truncated artifact was compiled again and replaced"
    );
}
