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

#[cfg(test)]
mod examples {
    use std::path::Path;

    use serde::Deserialize;

    use crate::api::{ApiExposureSpec, ApiSubscriptionSpec, ApplicationSpec};
    use crate::settings::Settings;

    fn example(file: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/examples/api-management")
            .join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_example_objects_fit_the_types() {
        let text = example("teams.yaml");
        let mut kinds = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let object = serde_json::Value::deserialize(document).unwrap();
            let spec = object["spec"].clone();
            let kind = object["kind"].as_str().unwrap().to_owned();
            match kind.as_str() {
                "ApiExposure" => drop(serde_json::from_value::<ApiExposureSpec>(spec).unwrap()),
                "Application" => drop(serde_json::from_value::<ApplicationSpec>(spec).unwrap()),
                "ApiSubscription" => {
                    drop(serde_json::from_value::<ApiSubscriptionSpec>(spec).unwrap())
                }
                other => panic!("unexpected kind {other}"),
            }
            kinds.push(kind);
        }
        assert_eq!(kinds, ["ApiExposure", "Application", "ApiSubscription"]);
    }

    #[test]
    fn the_example_configuration_has_valid_settings() {
        let config: serde_json::Value =
            serde_yaml_ng::from_str(&example("corbel-api.yaml")).unwrap();
        let controller = &config["controllers"][0]["settings"];
        let settings: Settings = serde_json::from_value(controller.clone()).unwrap();
        assert_eq!(settings.check(), Ok(()));
        assert_eq!(settings.team_of("orders"), "orders");
        let binding = &config["bindings"][1]["settings"];
        serde_json::from_value::<Settings>(binding.clone()).unwrap();
    }
}
