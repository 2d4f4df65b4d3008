//! `corbel test` and the plugins written in other languages: one shared case suite
//! (tests/cases/require-labels) must pass unchanged against every build of require-labels, and
//! tests/cases/default-labels against the Rust and JavaScript builds of that mutating policy.

use std::path::Path;
use std::process::{Command, Output};

use corbel_e2e::{bin, plugin, root};

fn corbel_test(dir: &Path, plugin: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.arg("test").arg(dir).current_dir(root());
    if let Some(plugin) = plugin {
        cmd.arg("--plugin").arg(plugin);
    }
    cmd.output().unwrap()
}

fn assert_suite_passes(suite: &str, component: &str) {
    let output = corbel_test(
        &root().join("tests/cases").join(suite),
        Some(&plugin(component)),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{component} failed the shared suite {suite}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn the_shared_suite_passes_against_the_rust_require_labels() {
    assert_suite_passes("require-labels", "require_labels");
}

#[test]
fn the_shared_suite_passes_against_the_javascript_require_labels() {
    assert_suite_passes("require-labels", "require_labels_js");
}

#[test]
fn the_shared_suite_passes_against_the_python_require_labels() {
    assert_suite_passes("require-labels", "require_labels_py");
}

#[test]
fn the_shared_suite_passes_against_the_c_require_labels() {
    assert_suite_passes("require-labels", "require_labels_c");
}

#[test]
fn the_shared_suite_passes_against_the_go_require_labels() {
    assert_suite_passes("require-labels", "require_labels_go");
}

#[test]
fn the_mutating_suite_passes_against_the_rust_default_labels() {
    assert_suite_passes("default-labels", "default_labels");
}

#[test]
fn the_mutating_suite_passes_against_the_javascript_default_labels() {
    assert_suite_passes("default-labels", "default_labels_js");
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_failing_case_is_reported_with_a_diff_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let review = root().join("tests/data/reviews/configmap-unlabelled.json");
    write(
        dir.path(),
        "corbel-test.yaml",
        "settings: {labels: {env: dev}}\nmode: mutate\n",
    );
    write(
        dir.path(),
        "adds-the-label.yaml",
        &format!(
            "request: {}\nexpect:\n  allowed: true\n  patch: [{{op: add, path: /metadata/labels, value: {{env: prod}}}}]\n",
            review.display()
        ),
    );
    write(
        dir.path(),
        "denies.yaml",
        &format!(
            "request: {}\nexpect: {{allowed: false, message: '^nope$'}}\n",
            review.display()
        ),
    );
    let output = corbel_test(dir.path(), Some(&plugin("default_labels")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("FAIL  adds-the-label"), "{stdout}");
    assert!(
        stdout.contains("patch differs (- expected, + actual)"),
        "{stdout}"
    );
    assert!(stdout.contains("-       \"env\": \"prod\""), "{stdout}");
    assert!(stdout.contains("+       \"env\": \"dev\""), "{stdout}");
    assert!(
        stdout.contains("allowed: expected false, got true"),
        "{stdout}"
    );
    assert!(stdout.contains("0 passed, 2 failed"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("2 of 2 cases failed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_suite_without_a_plugin_says_how_to_name_one() {
    let output = corbel_test(&root().join("tests/cases/require-labels"), None);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("pass --plugin FILE.wasm, or name one with `plugin:`"),
        "{stderr}"
    );
}

#[test]
fn a_case_that_expects_an_error_fails_when_the_plugin_answers() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "wrong.yaml",
        &format!(
            "request: {}\nsettings: {{labels: [team]}}\nexpect: {{error: 'is empty'}}\n",
            root()
                .join("tests/data/reviews/configmap-labelled.json")
                .display()
        ),
    );
    let output = corbel_test(dir.path(), Some(&plugin("require_labels")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "expected a failure matching /is empty/, but the plugin answered allowed=true"
        ),
        "{stdout}"
    );
}

/// `corbel new --lang LANG` in a fresh folder, then its `./build.sh`, then `corbel test` on its cases.
fn scaffold_builds_and_passes(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join(format!("my-{lang}-policy"));
    let new = Command::new(bin())
        .args(["new", "--lang", lang])
        .arg(&policy)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        new.status.success(),
        "{}",
        String::from_utf8_lossy(&new.stderr)
    );
    let build = Command::new(policy.join("build.sh"))
        // A Rust scaffold shares the workspace's target folder, so its dependencies build once.
        .env("CARGO_TARGET_DIR", root().join("target/scaffold"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{lang} scaffold failed to build:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
    let output = corbel_test(&policy.join("tests"), None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
}

#[test]
fn a_new_rust_policy_builds_and_passes_its_own_cases() {
    scaffold_builds_and_passes("rust");
}

#[test]
fn a_new_javascript_policy_builds_and_passes_its_own_cases() {
    scaffold_builds_and_passes("js");
}

#[test]
fn a_new_python_policy_builds_and_passes_its_own_cases() {
    scaffold_builds_and_passes("python");
}

#[test]
fn a_new_c_policy_builds_and_passes_its_own_cases() {
    scaffold_builds_and_passes("c");
}

#[test]
fn a_new_go_policy_builds_and_passes_its_own_cases() {
    scaffold_builds_and_passes("go");
}

#[test]
fn corbel_new_leaves_a_folder_that_is_not_empty_alone() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    write(&policy, "mine.txt", "keep");
    let output = Command::new(bin())
        .args(["new", "--lang", "js"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(&policy).unwrap().count(), 1);
}
