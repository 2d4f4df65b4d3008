//! The CustomResourceDefinitions of the gateway API, generated from [`crate::api`]: one YAML per
//! kind under `deploy/crds/`. `cargo xtask crds` writes them; the test below fails when the
//! committed files and the types disagree.

use kube::CustomResourceExt;

use crate::api::{ConsumeRoute, Consumer, Gateway, Route};

/// The command that rewrites `deploy/crds/` from the types.
pub const REGENERATE: &str = "cargo xtask crds";

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
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().expect("a generated CRD has a name");
            let yaml = serde_yaml_ng::to_string(&crd).expect("a CRD serializes");
            (
                format!("{name}.yaml"),
                format!("# Generated from plugins/gateway/src/api.rs by `{REGENERATE}`: do not edit.\n{yaml}"),
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
            let committed = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
            assert!(
                committed == yaml,
                "deploy/crds/{file} differs from what plugins/gateway/src/api.rs generates: \
                 run `{REGENERATE}` and commit the result"
            );
        }
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
