//! The CustomResourceDefinitions of the gateway API, generated from [`crate::api`]: one YAML per
//! kind under `deploy/crds/` (through `corbel_sdk::crd`). `cargo xtask crds` writes them; the test
//! below fails when the committed files and the types disagree.

use kube::CustomResourceExt;

use crate::api::{ConsumeRoute, Consumer, Gateway, Route};

fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        Gateway::crd(),
        Route::crd(),
        Consumer::crd(),
        ConsumeRoute::crd(),
    ]
}

/// `(file name, YAML)` for each kind, as committed under `deploy/crds/`.
pub fn generated() -> Vec<(String, String)> {
    corbel_sdk::crd::files("plugins/gateway/src/api.rs", crds())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_committed_crds_are_the_ones_the_types_generate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
        let checked =
            corbel_sdk::crd::check_committed(&dir, "plugins/gateway/src/api.rs", &generated());
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn every_kind_is_namespaced_in_the_gateway_group_with_a_status_subresource() {
        for crd in crds() {
            assert_eq!(crd.spec.group, "gateway.corbel.dev");
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
            assert!(columns.contains(&"Age"), "{columns:?}");
        }
    }
}
