//! The tools the Kubernetes manifests' tests use (tests/kubernetes.rs): PyPI `kubernetes-validate`,
//! which carries Kubernetes' published schemas and so validates offline, in its own virtual
//! environment under target/toolchains, installed once per change of its requirements file.

use std::process::Command;

use crate::{root, step};

pub fn kubernetes_validate() -> Result<(), String> {
    let venv = root().join("target/toolchains/kubernetes-validate");
    let requirements = root().join("deploy/kubernetes/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("failed to read {}: {e}", requirements.display()))?;
    let stamp = venv.join("installed");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    if !venv.join("bin/python").exists() {
        if Command::new("python3").arg("--version").output().is_err() {
            return Err("python3 is needed to validate the Kubernetes manifests (Debian: apt-get install python3 python3-venv)".into());
        }
        step(
            "creating target/toolchains/kubernetes-validate",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )?;
    }
    step(
        "installing kubernetes-validate into target/toolchains/kubernetes-validate (pip)",
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("failed to write {}: {e}", stamp.display()))
}
