//! Structural defaulting, a port of `structuraldefaulting.Default`: a property's `default` is
//! applied when the property is absent (or `null` and not `nullable`) in an object that exists,
//! at every level, including inside defaults just applied.

use serde_json::Value;

use super::structural::Node;

fn is_non_nullable_null(v: &Value, s: &Node) -> bool {
    v.is_null() && !s.nullable
}

/// `structuraldefaulting.Default`.
pub(super) fn default_value(x: &mut Value, s: &Node, root: bool) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                if root && k == "metadata" {
                    continue;
                }
                let Some(default) = &prop.default else {
                    continue;
                };
                let missing = match map.get(k) {
                    None => true,
                    Some(v) => is_non_nullable_null(v, prop),
                };
                if missing {
                    map.insert(k.clone(), default.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    default_value(v, prop, false);
                } else if let Some(add) = s.additional_schema() {
                    if is_non_nullable_null(v, add)
                        && let Some(default) = &add.default
                    {
                        *v = default.clone();
                    }
                    default_value(v, add, false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for v in list.iter_mut() {
                    if is_non_nullable_null(v, items)
                        && let Some(default) = &items.default
                    {
                        *v = default.clone();
                    }
                    default_value(v, items, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::{compile, widget, widget_schema};
    use serde_json::json;

    #[test]
    fn defaults_table() {
        let schema = compile(&widget_schema());
        // (input spec, expected spec after defaulting)
        let cases: &[(Value, Value)] = &[
            (
                json!({"image": "x"}),
                json!({"image": "x", "replicas": 1, "mode": "a"}),
            ),
            // present values win
            (
                json!({"image": "x", "replicas": 3, "mode": "b"}),
                json!({"image": "x", "replicas": 3, "mode": "b"}),
            ),
            // nested: defaults apply inside an object that exists, not under an absent parent
            (
                json!({"image": "x", "limits": {}}),
                json!({"image": "x", "replicas": 1, "mode": "a", "limits": {"cpu": "100m"}}),
            ),
            (
                json!({"image": "x", "limits": {"nested": {}}}),
                json!({"image": "x", "replicas": 1, "mode": "a", "limits": {"cpu": "100m", "nested": {"deep": 7}}}),
            ),
            // arrays: each item is defaulted
            (
                json!({"image": "x", "rules": [{"host": "a", "paths": [{}, {"path": "/b"}]}]}),
                json!({"image": "x", "replicas": 1, "mode": "a", "rules": [{"host": "a", "paths": [{"path": "/"}, {"path": "/b"}]}]}),
            ),
            // null for a non-nullable defaulted field takes the default
            (
                json!({"image": "x", "replicas": null}),
                json!({"image": "x", "replicas": 1, "mode": "a"}),
            ),
        ];
        for (spec, want) in cases {
            let mut obj = widget(spec.clone());
            schema.apply_defaults(&mut obj);
            assert_eq!(obj["spec"], *want, "defaulting {spec}");
            assert_eq!(obj["metadata"], json!({"name": "w"}));
        }
        // no spec at all: nothing under it is defaulted
        let mut obj = json!({"apiVersion": "v1", "kind": "Widget", "metadata": {}});
        schema.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Widget", "metadata": {}})
        );
    }

    #[test]
    fn defaults_in_additional_properties_and_of_objects() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "pools": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "default": 3}}
                            }
                        },
                        "shared": {"type": "object", "default": {"list": [1]}, "properties": {"list": {"type": "array", "items": {"type": "integer"}}, "on": {"type": "boolean", "default": true}}}
                    }
                }
            }
        }));
        let mut obj = json!({"spec": {"pools": {"a": {}, "b": {"size": 1}}}});
        schema.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"pools": {"a": {"size": 3}, "b": {"size": 1}}, "shared": {"list": [1], "on": true}}})
        );
        // the default is a deep copy: changing one object does not change the next
        obj["spec"]["shared"]["list"][0] = json!(99);
        let mut other = json!({});
        schema.apply_defaults(&mut other);
        assert_eq!(
            other,
            json!({"spec": {"shared": {"list": [1], "on": true}}})
        );
    }

    #[test]
    fn null_items_and_map_values_take_their_default_unless_nullable() {
        let schema = compile(&json!({"type": "object", "properties": {
            "list": {"type": "array", "items": {"type": "string", "default": "d"}},
            "map": {"type": "object", "additionalProperties": {"type": "integer", "default": 0}},
            "nullable": {"type": "array", "items": {"type": "string", "nullable": true, "default": "d"}},
        }}));
        let mut obj = json!({"list": ["a", null], "map": {"x": null, "y": 2}, "nullable": [null]});
        schema.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"list": ["a", "d"], "map": {"x": 0, "y": 2}, "nullable": [null]})
        );
    }
}
