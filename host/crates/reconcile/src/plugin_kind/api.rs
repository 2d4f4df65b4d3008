//! The `Plugin` kind's API, group `corbel.dev`, version `v1alpha1`, cluster-scoped: [`PluginSpec`]
//! (a binding's fields, its plugin named by an OCI reference) and [`PluginStatus`] (what the
//! install did, as the holder of the Plugin Lease saw it). `deploy/crds/plugins.corbel.dev.yaml`
//! is generated from these types (kube's `CustomResource` and schemars' `JsonSchema`) by
//! `cargo xtask crds`; a test below fails when the committed file and the types disagree.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use corbel_admission::config::BindingConfig;
use corbel_admission::{Enforcement, FailurePolicy, Mode};

/// The source file `deploy/crds/plugins.corbel.dev.yaml` is generated from.
pub const SOURCE: &str = "host/crates/reconcile/src/plugin_kind/api.rs";

/// A binding's fields, its plugin named by an OCI reference; the object's name is the binding's
/// (`POST /validate/{name}`).
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Debug, Clone, Serialize, Deserialize)]
#[kube(
    group = "corbel.dev",
    version = "v1alpha1",
    kind = "Plugin",
    status = "PluginStatus",
    shortname = "cplugin",
    doc = "An admission binding whose plugin comes from an OCI registry. The host installs it (resolve, verify the signature, pull, compile) off the request path and swaps it in; a failed upgrade keeps the previous version serving. docs/registry.md.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Reference", type_ = "string", json_path = ".spec.reference"),
    printcolumn(
        name = "Digest",
        type_ = "string",
        json_path = ".status.loadedDigest",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PluginSpec {
    /// oci://host/repository:tag or @sha256:digest. A tag is resolved to a digest at install.
    pub reference: String,
    /// validate (default) or mutate.
    #[serde(default = "validate")]
    pub mode: Mode,
    /// The plugin's settings, checked by its validate-settings at install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub settings: Option<Value>,
    /// such as 2s
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// such as 64Mi
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    // Described by its type's doc: kube's schema puts an optional enum's own description over
    // the field's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    // Described by its type's doc too (docs/monitor-mode.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
}

fn validate() -> Mode {
    Mode::Validate
}

/// An object with any fields: a plugin's settings are its own to check.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What the last install did, as the replica holding the Lease `{leaseName}-plugins` saw it.
#[derive(JsonSchema, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    /// Ready, Failed (never loaded), or Degraded (the previous version serves; see lastError), as
    /// the replica holding the Lease {leaseName}-plugins saw it; a replica that serves nothing for
    /// this Plugin says so in its own /readyz
    pub phase: Option<String>,
    /// the manifest digest the reference resolved to at the last install that succeeded; cleared
    /// when one fails (loadedDigest says what serves)
    pub resolved_digest: Option<String>,
    /// the manifest digest of the version serving now
    pub loaded_digest: Option<String>,
    /// The plugin's name, as its component says.
    pub plugin: Option<String>,
    /// The WIT version the plugin was built against.
    pub wit: Option<String>,
    /// Why the last install failed.
    pub last_error: Option<String>,
    pub observed_generation: Option<i64>,
}

impl PluginSpec {
    /// The spec of a Plugin object, or what is wrong with it.
    pub fn parse(spec: &Value) -> Result<PluginSpec, String> {
        if spec["reference"].as_str().is_none_or(str::is_empty) {
            return Err(
                "spec.reference is required: oci://host/repository:tag or @sha256:digest".into(),
            );
        }
        serde_json::from_value(spec.clone()).map_err(|e| format!("spec is not valid: {e}"))
    }

    /// The binding this spec describes, named `name`, its plugin read from `plugin` (the
    /// reference, or the installed `oci://` one): checked by the same rules as the configuration
    /// file's bindings.
    pub fn binding(&self, name: &str, plugin: &str) -> Result<BindingConfig, String> {
        let mut fields = match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            _ => unreachable!("a PluginSpec serializes to an object"),
        };
        fields.remove("reference");
        fields.insert("name".into(), name.into());
        fields.insert("plugin".into(), plugin.into());
        serde_json::from_value(Value::Object(fields)).map_err(|e| format!("spec is not valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;

    fn committed_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/crds")
    }

    #[test]
    fn the_committed_crd_is_the_one_the_types_generate() {
        let generated = corbel_sdk::crd::files(SOURCE, [Plugin::crd()]);
        let checked = corbel_sdk::crd::check_committed(&committed_dir(), SOURCE, &generated);
        assert_eq!(checked, Ok(()));
    }

    #[test]
    fn the_crd_is_cluster_scoped_with_a_status_subresource_columns_and_a_short_name() {
        let crd = Plugin::crd();
        assert_eq!(crd.spec.scope, "Cluster");
        assert_eq!(crd.spec.names.short_names, Some(vec!["cplugin".to_owned()]));
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<(&str, Option<i32>)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.priority))
            .collect();
        assert_eq!(
            columns,
            [
                ("Phase", None),
                ("Reference", None),
                ("Digest", Some(1)),
                ("Age", None)
            ]
        );
        let schema = serde_json::to_value(&version.schema).unwrap()["openAPIV3Schema"].clone();
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["required"], json!(["reference"]));
        assert_eq!(
            spec["properties"]["mode"]["enum"],
            json!(["validate", "mutate"])
        );
        assert_eq!(spec["properties"]["mode"]["default"], "validate");
        assert_eq!(
            spec["properties"]["failurePolicy"]["enum"],
            json!(["Fail", "Ignore"])
        );
        assert_eq!(
            spec["properties"]["enforcement"]["enum"],
            json!(["deny", "warn", "audit"])
        );
        assert_eq!(
            spec["properties"]["settings"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }

    #[test]
    fn a_spec_becomes_a_binding_checked_as_the_configuration_file_s() {
        let spec = PluginSpec::parse(&json!({
            "reference": "oci://r.example/p:v1", "timeout": "2s", "memoryLimit": "32Mi",
            "failurePolicy": "Ignore", "settings": {"labels": ["team"]},
        }))
        .unwrap();
        let binding = spec.binding("demo", "oci://r.example/p:v1").unwrap();
        assert_eq!(binding.name, "demo");
        assert_eq!(binding.mode, Mode::Validate);
        assert_eq!(binding.timeout, std::time::Duration::from_secs(2));
        assert_eq!(binding.memory_limit, 32 << 20);
        assert_eq!(binding.failure_policy, FailurePolicy::Ignore);
        assert_eq!(binding.settings, Some(json!({"labels": ["team"]})));

        let missing = PluginSpec::parse(&json!({"mode": "validate"})).unwrap_err();
        assert!(missing.contains("spec.reference is required"), "{missing}");
        let bad_mode = PluginSpec::parse(&json!({"reference": "oci://r/p:v1", "mode": "nope"}));
        assert!(bad_mode.unwrap_err().starts_with("spec is not valid"));
        let bad_timeout =
            PluginSpec::parse(&json!({"reference": "oci://r/p:v1", "timeout": "soon"}))
                .unwrap()
                .binding("demo", "oci://r/p:v1")
                .unwrap_err();
        assert!(
            bad_timeout.starts_with("spec is not valid"),
            "{bad_timeout}"
        );
    }
}
