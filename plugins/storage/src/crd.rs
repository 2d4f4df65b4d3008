//! The CustomResourceDefinitions of the storage API, generated from [`crate::api`]: one YAML per
//! kind under `deploy/crds/` (through `corbel_sdk::crd`). `cargo xtask crds` writes them; the test
//! below fails when the committed files and the types disagree.

use kube::CustomResourceExt;

use crate::api::{Bucket, ObjectStore};

/// `(file name, YAML)` for each kind, as committed under `deploy/crds/`.
pub fn generated() -> Vec<(String, String)> {
    corbel_sdk::crd::files(
        "plugins/storage/src/api.rs",
        [ObjectStore::crd(), Bucket::crd()],
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_committed_crds_are_the_ones_the_types_generate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
        let checked =
            corbel_sdk::crd::check_committed(&dir, "plugins/storage/src/api.rs", &generated());
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn both_kinds_are_namespaced_with_a_status_subresource_and_columns() {
        for crd in [ObjectStore::crd(), Bucket::crd()] {
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
