//! Pruning, a port of `structuralpruning.Prune` and
//! `structuraldefaulting.PruneNonNullableNullsWithoutDefaults`: fields the schema does not know
//! are dropped unless `x-kubernetes-preserve-unknown-fields` keeps them, and so are `null`s the
//! schema neither allows nor defaults.

use serde_json::Value;

use super::structural::{Additional, Node};

/// Fields that pruning never drops: at the resource root, `apiVersion`, `kind` and `metadata`;
/// in an embedded resource, `apiVersion` / `kind` strings and a `metadata` object.
fn kept_resource_field(k: &str, v: &Value, root: bool, embedded: bool) -> bool {
    if root && matches!(k, "apiVersion" | "kind" | "metadata") {
        return true;
    }
    embedded
        && match k {
            "apiVersion" | "kind" => v.is_string(),
            "metadata" => v.is_object(),
            _ => false,
        }
}

/// `structuralpruning.prune`.
pub(super) fn prune_value(x: &mut Value, s: Option<&Node>, root: bool) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(x, s, root);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                map.clear();
                return;
            };
            map.retain(|k, v| {
                if kept_resource_field(k, v, root, s.embedded) {
                    return true;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune_value(v, Some(prop), false);
                    return true;
                }
                match &s.additional {
                    Some(Additional::Any) => true,
                    Some(Additional::Schema(n)) => {
                        prune_value(v, Some(n), false);
                        true
                    }
                    None => false,
                }
            });
        }
        Value::Array(list) => {
            let items = s.and_then(|s| s.items.as_deref());
            for v in list.iter_mut() {
                prune_value(v, items, false);
            }
        }
        _ => {}
    }
}

/// `structuralpruning.skipPrune`: unknown fields stay, known ones are pruned inside.
fn skip_prune(x: &mut Value, s: &Node, root: bool) {
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if kept_resource_field(k, v, root, s.embedded) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune_value(v, Some(prop), false);
                } else if let Some(n) = s.additional_schema() {
                    prune_value(v, Some(n), false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for v in list.iter_mut() {
                    skip_prune(v, items, false);
                }
            }
        }
        _ => {}
    }
}

/// `structuraldefaulting.PruneNonNullableNullsWithoutDefaults`.
pub(super) fn prune_nulls(x: &mut Value, s: &Node, root: bool) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| {
                if root && k == "metadata" {
                    return true;
                }
                !(v.is_null()
                    && s.properties
                        .get(k)
                        .is_some_and(|p| !p.nullable && p.default.is_none()))
            });
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune_nulls(v, prop, false);
                } else if let Some(n) = s.additional_schema() {
                    prune_nulls(v, n, false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for v in list.iter_mut() {
                    prune_nulls(v, items, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::{compile, widget_schema};
    use serde_json::json;

    #[test]
    fn prune_table() {
        let schema = compile(&widget_schema());
        // (input, expected after pruning)
        let cases: &[(Value, Value)] = &[
            // unknown fields go, at every level; apiVersion/kind/metadata stay as they are
            (
                json!({"apiVersion": "v1", "kind": "W", "metadata": {"name": "w", "x": 1}, "extra": 1,
                       "spec": {"image": "i", "bogus": true, "rules": [{"host": "h", "nope": 1, "paths": [{"path": "/", "zz": 0}]}]},
                       "status": {"ready": true, "gone": 1}}),
                json!({"apiVersion": "v1", "kind": "W", "metadata": {"name": "w", "x": 1},
                       "spec": {"image": "i", "rules": [{"host": "h", "paths": [{"path": "/"}]}]},
                       "status": {"ready": true}}),
            ),
            // additionalProperties keeps every key
            (
                json!({"spec": {"labels": {"a": "1", "b": "2"}}}),
                json!({"spec": {"labels": {"a": "1", "b": "2"}}}),
            ),
            // preserve-unknown-fields keeps unknowns, but prunes inside known properties
            (
                json!({"spec": {"raw": {"anything": {"deep": [1, {"x": 2}]}, "known": {"x": "1", "y": 2}}}}),
                json!({"spec": {"raw": {"anything": {"deep": [1, {"x": 2}]}, "known": {"x": "1"}}}}),
            ),
            // embedded resources keep apiVersion/kind/metadata (and here everything: preserve)
            (
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1}}}}),
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1}}}}),
            ),
            // null in a non-nullable, non-defaulted field is dropped; nullable or defaulted stay
            (
                json!({"spec": {"image": null, "note": null, "replicas": null}}),
                json!({"spec": {"note": null, "replicas": null}}),
            ),
        ];
        for (input, want) in cases {
            let mut obj = input.clone();
            schema.prune(&mut obj);
            assert_eq!(obj, *want, "pruning {input}");
        }
    }

    #[test]
    fn preserve_unknown_fields_at_the_root_and_embedded_without_preserve() {
        let schema = compile(&json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "spec": {"type": "object", "properties": {
                    "obj": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"data": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
                }}
            }
        }));
        let mut obj = json!({"anything": 1, "spec": {"drop": 1, "obj": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "other": 1}}});
        schema.prune(&mut obj);
        assert_eq!(
            obj,
            json!({"anything": 1, "spec": {"obj": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}}})
        );
        assert!(schema.validate(&obj).is_empty());
    }

    #[test]
    fn resource_fields_are_kept_at_the_root_and_in_embedded_objects_only() {
        assert!(kept_resource_field("kind", &json!(1), true, false));
        assert!(kept_resource_field("kind", &json!("Pod"), false, true));
        assert!(!kept_resource_field("kind", &json!(1), false, true));
        assert!(kept_resource_field("metadata", &json!({}), false, true));
        assert!(!kept_resource_field("metadata", &json!("m"), false, true));
        assert!(!kept_resource_field("kind", &json!("Pod"), false, false));
        assert!(!kept_resource_field("spec", &json!({}), true, true));
    }

    #[test]
    fn an_object_without_a_schema_is_emptied_and_array_items_are_pruned() {
        let schema = compile(&json!({"type": "object", "properties": {
            "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        }}));
        let mut obj = json!({"list": [{"a": "x", "b": 1}, {"c": {}}], "other": {"x": 1}});
        schema.prune(&mut obj);
        assert_eq!(obj, json!({"list": [{"a": "x"}, {}]}));
    }
}
