//! The `XdsSnapshot` kind's API, group `xds.corbel.dev`, version `v1alpha1`, namespaced:
//! Envoy resources (proto-JSON) a controller plugin publishes for one node group
//! ([`XdsSnapshotSpec`]), and what the host's xDS server writes back ([`XdsSnapshotStatus`]).
//!
//! A group is served the union of every XdsSnapshot naming it (`node.cluster` in the instances'
//! bootstrap), so a publisher splits its resources over several objects, each under 512 KiB
//! (etcd refuses requests over 1.5 MiB). The host's xDS server writes what the instances
//! acknowledged or refused into the status of the objects with `spec.groupStatus`
//! (docs/xds.md).
//!
//! `deploy/crds/xdssnapshots.xds.corbel.dev.yaml` is generated from these types (kube's
//! `CustomResource` and schemars' `JsonSchema`) by `cargo xtask crds`; a test below fails when
//! the committed file and the types disagree. The schema must accept what publishers write (the
//! gateway plugin: `plugins/gateway/src/reconcile.rs`) and the status the host's xDS room
//! writes (`host/src/xds.rs`): nothing here has a schema default, since the API would then
//! add fields a publisher compares against what it wants and rewrite its objects forever.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The source file `deploy/crds/xdssnapshots.xds.corbel.dev.yaml` is generated from.
pub const SOURCE: &str = "host/crates/xds/src/api.rs";

/// The resources one object publishes for its node group.
// Several `printcolumn(...)` look like one attribute repeated to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "xds.corbel.dev",
    version = "v1alpha1",
    kind = "XdsSnapshot",
    namespaced,
    status = "XdsSnapshotStatus",
    shortname = "xds",
    doc = "Envoy resources (proto-JSON) a controller plugin publishes for one node group, served by the host over ADS. A group is served the union of every XdsSnapshot naming it; the host writes what the instances acknowledged or refused into the status. docs/xds.md.",
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.nodeGroup"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.group.version"
    ),
    printcolumn(
        name = "Acknowledged",
        type_ = "string",
        json_path = ".status.group.acknowledgedVersion"
    ),
    printcolumn(
        name = "Refused",
        type_ = "string",
        json_path = ".status.rejected.message",
        priority = 1
    ),
    printcolumn(
        name = "Group-Refused",
        type_ = "string",
        json_path = ".status.group.rejected.message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct XdsSnapshotSpec {
    /// The node group served: node.cluster in the instances' bootstrap. The group is served the
    /// union of every XdsSnapshot naming it.
    pub node_group: String,
    /// Write the group's status (versions served and acknowledged, the last refusal by an
    /// instance) into this object's status.group: set it on one object of the group (the
    /// publisher's head).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_status: bool,
    /// The Envoy resources this object publishes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<XdsResource>,
}

/// A resource name must be unique in the node group across its objects: a duplicate is left out
/// and reported in status.rejected.
#[derive(JsonSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct XdsResource {
    /// such as type.googleapis.com/envoy.config.cluster.v3.Cluster
    pub type_url: String,
    pub name: String,
    /// The publisher's tags of what this resource holds; a refusal names those changed since
    /// the last accepted version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The resource as proto-JSON, with its @type.
    #[schemars(schema_with = "any_object")]
    pub resource: Value,
}

/// An object with any fields: a resource is checked against Envoy's descriptors when it is
/// converted, not by the API.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What the host's xDS server wrote: this object's refusal, and on head objects the group's
/// status.
#[derive(JsonSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct XdsSnapshotStatus {
    /// Why this object's spec is not (or not all) served: a resource that does not convert (its
    /// last good resources keep serving), or names another object of the group publishes
    /// already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Refusal>,
    /// The node group's status, on objects with spec.groupStatus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupStatus>,
}

/// A refusal of this object's spec, by the host.
#[derive(JsonSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
}

/// A node group's status, as the xDS server saw its instances.
#[derive(JsonSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// The version served (a digest of the union of the group's resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The last version an instance accepted entirely (every type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_version: Option<String>,
    /// The last refusal by an instance (a NACK), while it applies: sources are the tags of the
    /// resources changed since the version that instance last accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<InstanceRefusal>,
}

/// A version an instance refused (a NACK).
#[derive(JsonSchema, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRefusal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// The instance's node.id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The type the instance refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;

    fn generated() -> Vec<(String, String)> {
        corbel_sdk::crd::files(SOURCE, [XdsSnapshot::crd()])
    }

    #[test]
    fn deploy_crds_holds_what_the_types_generate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../deploy/crds");
        let generated = generated();
        assert_eq!(generated[0].0, "xdssnapshots.xds.corbel.dev.yaml");
        assert_eq!(
            corbel_sdk::crd::check_committed(&dir, SOURCE, &generated),
            Ok(())
        );
    }

    #[test]
    fn the_kind_is_namespaced_with_status_columns_and_the_short_name_xds() {
        let crd = XdsSnapshot::crd();
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["xds".to_owned()]));
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<(&str, &str, Option<i32>)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority))
            .collect();
        assert_eq!(
            columns,
            [
                ("Group", ".spec.nodeGroup", None),
                ("Version", ".status.group.version", None),
                ("Acknowledged", ".status.group.acknowledgedVersion", None),
                ("Refused", ".status.rejected.message", Some(1)),
                ("Group-Refused", ".status.group.rejected.message", Some(1)),
                ("Age", ".metadata.creationTimestamp", None),
            ]
        );
        let schema = serde_json::to_value(&version.schema).unwrap()["openAPIV3Schema"].clone();
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["required"], json!(["nodeGroup"]));
        let resource = &spec["properties"]["resources"]["items"];
        assert_eq!(resource["required"], json!(["name", "resource", "typeUrl"]));
        assert_eq!(
            resource["properties"]["resource"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
    }

    /// Every `default` key in a schema, by its path.
    fn defaults(schema: &Value, path: &str, found: &mut Vec<String>) {
        match schema {
            Value::Object(fields) => {
                for (key, value) in fields {
                    if key == "default" {
                        found.push(path.to_string());
                    }
                    defaults(value, &format!("{path}.{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    defaults(item, &format!("{path}[{i}]"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_schema_defaults_nothing_a_publisher_would_find_added_to_its_spec() {
        // The gateway plugin compares a stored spec with the one it wants: a field the API adds
        // by default would make it rewrite its objects on every reconcile.
        let schema = serde_json::to_value(&XdsSnapshot::crd().spec.versions[0].schema).unwrap();
        let mut found = Vec::new();
        defaults(&schema, "", &mut found);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn what_the_gateway_and_the_xds_room_write_reads_as_the_types() {
        // The gateway plugin's head object (plugins/gateway/src/reconcile.rs, `objects`).
        let spec: XdsSnapshotSpec = serde_json::from_value(json!({
            "nodeGroup": "shop/public",
            "groupStatus": true,
            "resources": [{
                "typeUrl": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": "public",
                "sources": [],
                "resource": {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "public"},
            }],
        }))
        .unwrap();
        assert!(spec.group_status);
        assert_eq!(spec.resources[0].resource["name"], "public");
        // The room's writes (host/src/xds.rs): a refusal, the group's version, an instance's NACK.
        let status: XdsSnapshotStatus = serde_json::from_value(json!({
            "rejected": {"version": "", "message": "not published: bad", "sources": ["route/shop/a"]},
            "group": {
                "version": "v1", "acknowledgedVersion": "v0",
                "rejected": {"version": "v1", "message": "NACK", "sources": [], "node": "envoy-1",
                             "typeUrl": "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
            },
        }))
        .unwrap();
        let group = status.group.unwrap();
        assert_eq!(group.acknowledged_version.as_deref(), Some("v0"));
        assert_eq!(group.rejected.unwrap().node.as_deref(), Some("envoy-1"));
    }
}
