//! The host's crates depend on each other one way, down: a room never imports a room above it
//! (docs/architecture.md, "Crates and arrows"). Read from `cargo metadata`, so a new arrow that
//! points up fails here with the two crates named.

use std::collections::BTreeMap;
use std::process::Command;

/// Each host crate's floor: a crate may depend only on crates on a lower floor.
const FLOORS: &[(&str, u32)] = &[
    ("corbel-runtime", 0),
    ("corbel-store", 0),
    ("corbel-auth", 0),
    ("corbel-xds", 0),
    ("corbel-registry", 1),
    ("corbel-admission", 2),
    ("corbel-telemetry", 3),
    ("corbel-kubeapi", 4),
    ("corbel-reconcile", 4),
    ("corbel-audit", 4),
    ("corbel", 5),
];

#[test]
fn host_crates_depend_only_on_crates_below_them() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let floors: BTreeMap<&str, u32> = FLOORS.iter().copied().collect();
    let mut seen = 0;
    let mut upward = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        let Some(&floor) = floors.get(name) else {
            continue;
        };
        seen += 1;
        for dependency in package["dependencies"].as_array().unwrap() {
            let target = dependency["name"].as_str().unwrap();
            if dependency["kind"].is_null()
                && let Some(&other) = floors.get(target)
                && other >= floor
            {
                upward.push(format!(
                    "{name} (floor {floor}) depends on {target} (floor {other})"
                ));
            }
        }
    }
    assert_eq!(
        seen,
        FLOORS.len(),
        "a host crate is missing from the workspace, or a new one is not in FLOORS"
    );
    assert!(
        upward.is_empty(),
        "dependencies must point down (docs/architecture.md): {upward:#?}"
    );
}
