//! The XdsSnapshot CRD the host installs (`corbel::xds::CRD`, generated from
//! `corbel_xds::api`) accepts what is written to XdsSnapshots today, as the embedded API applies
//! it: each object validates, and pruning and defaulting leave it as it was written (a field the
//! schema does not know would be dropped silently; one it defaults would make the gateway
//! plugin, which compares the stored spec with the one it wants, rewrite its objects forever).

use corbel::kubeapi::schema::Schema;
use serde_json::{Value, json};

fn schema() -> Schema {
    let crd: Value = serde_yaml_ng::from_str(corbel::xds::CRD).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    Schema::compile(&version["schema"]["openAPIV3Schema"]).unwrap()
}

fn object(spec: Value, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "xds.corbel.dev/v1alpha1",
        "kind": "XdsSnapshot",
        "metadata": {"name": "public", "namespace": "shop", "labels": {"gateway.corbel.dev/gateway": "public"}},
        "spec": spec,
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

/// Validates, then prunes and defaults as a write does: the object must come out unchanged.
fn accepted(schema: &Schema, what: &str, written: Value) {
    let errors = schema.validate(&written);
    assert!(errors.is_empty(), "{what}: {errors:?}");
    let mut stored = written.clone();
    schema.prune(&mut stored);
    schema.apply_defaults(&mut stored);
    assert_eq!(stored, written, "{what}: pruning or defaulting changed it");
}

fn resource(type_url: &str, name: &str, sources: &[&str]) -> Value {
    json!({
        "typeUrl": format!("type.googleapis.com/{type_url}"),
        "name": name,
        "sources": sources,
        "resource": {
            "@type": format!("type.googleapis.com/{type_url}"),
            "name": name,
            "deeply": {"nested": [{"proto": "json", "number": 3}]},
        },
    })
}

#[test]
fn the_gateway_plugin_s_objects_are_stored_as_written() {
    let schema = schema();
    // The shapes `objects` in plugins/gateway/src/reconcile.rs writes: the head (listener, the
    // group's status), the route table, one object per Route with its clusters.
    let head = json!({
        "nodeGroup": "shop/public",
        "groupStatus": true,
        "resources": [resource("envoy.config.listener.v3.Listener", "public", &[])],
    });
    let routes = json!({
        "nodeGroup": "shop/public",
        "resources": [resource("envoy.config.route.v3.RouteConfiguration", "public", &["route/shop/orders"])],
    });
    let route = json!({
        "nodeGroup": "shop/public",
        "resources": [resource("envoy.config.cluster.v3.Cluster", "shop/orders/0", &["route/shop/orders"])],
    });
    let empty = json!({"nodeGroup": "shop/public", "resources": []});
    for (what, spec) in [
        ("head", head),
        ("routes", routes),
        ("route", route),
        ("empty", empty),
    ] {
        accepted(&schema, what, object(spec, None));
    }
}

#[test]
fn the_xds_room_s_status_writes_are_stored_as_written() {
    let schema = schema();
    let spec = json!({"nodeGroup": "shop/public", "groupStatus": true, "resources": []});
    // What host/src/xds.rs merges into status: an object's refusal (a conversion error or a
    // duplicate), the group's version, an ACK, an instance's NACK.
    let statuses = [
        json!({"rejected": {"version": "", "message": "not published: bad", "sources": []}}),
        json!({"rejected": {"version": "", "message": "resource names must be unique", "sources": ["route/shop/a"]}}),
        json!({"group": {"version": "3f2a"}}),
        json!({"group": {"version": "3f2a", "acknowledgedVersion": "3f2a"}}),
        json!({"group": {"version": "3f2b", "acknowledgedVersion": "3f2a", "rejected": {
            "version": "3f2b", "message": "Proto constraint validation failed", "sources": ["route/shop/orders"],
            "node": "envoy-1", "typeUrl": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        }}}),
    ];
    for status in statuses {
        let what = status.to_string();
        accepted(&schema, &what, object(spec.clone(), Some(status)));
    }
}

#[test]
fn a_snapshot_without_a_node_group_or_with_a_resource_missing_its_type_is_refused() {
    let schema = schema();
    let no_group = object(json!({"resources": []}), None);
    assert!(
        schema
            .validate(&no_group)
            .iter()
            .any(|e| e.to_string().contains("spec.nodeGroup")),
        "{:?}",
        schema.validate(&no_group)
    );
    let untyped = object(
        json!({"nodeGroup": "g", "resources": [{"name": "x", "resource": {}}]}),
        None,
    );
    assert!(
        schema
            .validate(&untyped)
            .iter()
            .any(|e| e.to_string().contains("typeUrl")),
        "{:?}",
        schema.validate(&untyped)
    );
}
