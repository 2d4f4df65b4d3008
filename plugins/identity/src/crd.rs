//! The CustomResourceDefinitions of the identity API, generated from [`crate::api`]: one YAML per
//! kind under `deploy/crds/`. `cargo xtask crds` writes them; the test below fails when the
//! committed files and the types disagree.

use kube::CustomResourceExt;

use crate::api::{Client, IdentityProvider, Realm};

/// The command that rewrites `deploy/crds/` from the types.
pub const REGENERATE: &str = "cargo xtask crds";

/// `(file name, YAML)` for each kind, as committed under `deploy/crds/`.
pub fn generated() -> Vec<(String, String)> {
    [IdentityProvider::crd(), Realm::crd(), Client::crd()]
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().expect("a generated CRD has a name");
            let yaml = serde_yaml_ng::to_string(&crd).expect("a CRD serializes");
            (
                format!("{name}.yaml"),
                format!("# Generated from plugins/identity/src/api.rs by `{REGENERATE}`: do not edit.\n{yaml}"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_committed_crds_are_the_ones_the_types_generate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
        for (file, yaml) in generated() {
            let path = dir.join(&file);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == yaml,
                "deploy/crds/{file} differs from what plugins/identity/src/api.rs generates: \
                 run `{REGENERATE}` and commit the result"
            );
        }
    }

    #[test]
    fn every_kind_is_namespaced_with_a_status_subresource_and_columns() {
        for crd in [IdentityProvider::crd(), Realm::crd(), Client::crd()] {
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1alpha1");
            assert!(version.subresources.as_ref().unwrap().status.is_some());
            let columns: Vec<&str> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            assert!(
                columns.contains(&"Ready") && columns.contains(&"Age"),
                "{columns:?}"
            );
        }
    }
}
