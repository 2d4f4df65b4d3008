//! What every controller plugin's CRDs share, so their schemas and files cannot drift apart: the
//! [`Condition`] type and, with the `schema` feature (native builds only), the files under
//! `deploy/crds/` generated from the types ([`files`], [`check_committed`], [`write`]).

use serde::{Deserialize, Serialize};

/// A status condition, as the host writes it (`Ready`, `Processing`, `Blocked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The command that rewrites `deploy/crds/` from the plugins' types.
pub const REGENERATE: &str = "cargo xtask crds";

#[cfg(feature = "schema")]
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// `(file name, YAML)` for each CRD, headed by the source file it is generated from.
#[cfg(feature = "schema")]
pub fn files(
    source: &str,
    crds: impl IntoIterator<Item = CustomResourceDefinition>,
) -> Vec<(String, String)> {
    crds.into_iter()
        .map(|crd| {
            let name = crd
                .metadata
                .name
                .clone()
                .expect("a generated CRD has a name");
            let yaml = serde_yaml_ng::to_string(&crd).expect("a CRD serializes");
            (
                format!("{name}.yaml"),
                format!("# Generated from {source} by `{REGENERATE}`: do not edit.\n{yaml}"),
            )
        })
        .collect()
}

/// `Err` naming the first file in `dir` that differs from `generated` (or is missing), and what
/// to run: for each plugin's test that the committed CRDs follow its types.
#[cfg(feature = "schema")]
pub fn check_committed(
    dir: &std::path::Path,
    source: &str,
    generated: &[(String, String)],
) -> Result<(), String> {
    for (file, yaml) in generated {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if &committed != yaml {
            return Err(format!(
                "deploy/crds/{file} differs from what {source} generates: run `{REGENERATE}` and commit the result"
            ));
        }
    }
    Ok(())
}

/// Writes `generated` into the directory given as the first argument, else `default_dir`: the
/// body of each plugin's `crds` example, which `cargo xtask crds` runs.
#[cfg(feature = "schema")]
pub fn write(default_dir: &std::path::Path, generated: &[(String, String)]) {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| default_dir.to_path_buf());
    std::fs::create_dir_all(&dir).expect("failed to create the CRD directory");
    for (file, yaml) in generated {
        let path = dir.join(file);
        std::fs::write(&path, yaml).expect("failed to write a CRD");
        println!("wrote {}", path.display());
    }
}

#[cfg(all(test, feature = "schema"))]
mod tests {
    use super::*;

    #[test]
    fn a_committed_file_that_differs_or_is_missing_is_named_with_the_command() {
        let dir = std::env::temp_dir().join(format!("corbel-sdk-crd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let generated = vec![("a.yaml".to_string(), "x: 1\n".to_string())];
        let missing = check_committed(&dir, "src/api.rs", &generated).unwrap_err();
        assert!(
            missing.contains("deploy/crds/a.yaml") && missing.contains(REGENERATE),
            "{missing}"
        );
        std::fs::write(dir.join("a.yaml"), "x: 2\n").unwrap();
        assert!(check_committed(&dir, "src/api.rs", &generated).is_err());
        std::fs::write(dir.join("a.yaml"), "x: 1\n").unwrap();
        assert_eq!(check_committed(&dir, "src/api.rs", &generated), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
