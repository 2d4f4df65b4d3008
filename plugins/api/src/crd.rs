//! The CustomResourceDefinitions of the API-management kinds, generated from [`crate::api`]: one
//! YAML per kind under `deploy/crds/` (through `corbel_sdk::crd`). `cargo xtask crds` writes them;
//! the test below fails when the committed files and the types disagree.

use kube::CustomResourceExt;

use crate::api::{ApiExposure, ApiSubscription, Application, Approval};

fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        Application::crd(),
        ApiExposure::crd(),
        ApiSubscription::crd(),
        Approval::crd(),
    ]
}

/// `(file name, YAML)` for each kind, as committed under `deploy/crds/`.
pub fn generated() -> Vec<(String, String)> {
    corbel_sdk::crd::files("plugins/api/src/api.rs", crds())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_committed_crds_are_the_ones_the_types_generate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
        let checked =
            corbel_sdk::crd::check_committed(&dir, "plugins/api/src/api.rs", &generated());
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn every_kind_is_namespaced_in_the_api_group_with_a_status_subresource() {
        for crd in crds() {
            assert_eq!(crd.spec.group, "api.corbel.dev");
            assert_eq!(crd.spec.scope, "Namespaced");
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, "v1alpha1");
            assert!(version.subresources.as_ref().unwrap().status.is_some());
        }
    }
}
