//! OpenAPI v3 (the CRD dialect) to JSON Schema draft 4, the draft the validator speaks:
//! `nullable: true` adds `"null"` to `type` (and to `enum`), `x-kubernetes-int-or-string: true`
//! becomes `type: [integer, string]`, `format` is kept only for the formats the API server checks,
//! root `metadata` is reduced to its `name` and `generateName` constraints, and the descriptive
//! keywords and `x-kubernetes-*` extensions are dropped.

use serde_json::{Map, Value};

use super::formats::FORMATS;

/// Keywords copied as they are: draft 4 means the same by them as OpenAPI v3.0 does.
const COPIED: [&str; 16] = [
    "type",
    "enum",
    "required",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

/// One node of the OpenAPI v3 dialect as JSON Schema draft 4 (see the module doc).
pub(super) fn convert(schema: &Map<String, Value>, root: bool) -> Value {
    let mut out = Map::new();
    for (k, v) in schema {
        match k.as_str() {
            "properties" => {
                let Value::Object(props) = v else { continue };
                let mut converted = Map::new();
                for (name, child) in props {
                    let Value::Object(child) = child else {
                        continue;
                    };
                    let c = if root && name == "metadata" {
                        convert_root_metadata(child)
                    } else {
                        convert(child, false)
                    };
                    converted.insert(name.clone(), c);
                }
                out.insert(k.clone(), Value::Object(converted));
            }
            "items" | "not" => {
                if let Value::Object(child) = v {
                    out.insert(k.clone(), convert(child, false));
                }
            }
            "additionalProperties" => match v {
                Value::Object(child) => {
                    out.insert(k.clone(), convert(child, false));
                }
                Value::Bool(_) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => {}
            },
            "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(list) = v {
                    let converted: Vec<Value> = list
                        .iter()
                        .filter_map(Value::as_object)
                        .map(|c| convert(c, false))
                        .collect();
                    out.insert(k.clone(), Value::Array(converted));
                }
            }
            "format" => {
                if let Value::String(f) = v
                    && FORMATS.iter().any(|(name, _)| name == f)
                {
                    out.insert(k.clone(), v.clone());
                }
            }
            key if COPIED.contains(&key) => {
                out.insert(k.clone(), v.clone());
            }
            // nullable, default, description, title, example, externalDocs, x-kubernetes-*, ...
            _ => {}
        }
    }
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") {
        out.insert("type".into(), serde_json::json!(["integer", "string"]));
    }
    if flag("nullable") {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
                types.push(Value::from("null"));
            }
            _ => {}
        }
        if let Some(Value::Array(options)) = out.get_mut("enum")
            && !options.contains(&Value::Null)
        {
            options.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// Root `metadata`: only `name` and `generateName` constraints apply (the rest is ObjectMeta's
/// business, validated elsewhere).
fn convert_root_metadata(schema: &Map<String, Value>) -> Value {
    let mut props = Map::new();
    if let Some(Value::Object(p)) = schema.get("properties") {
        for name in ["name", "generateName"] {
            if let Some(Value::Object(child)) = p.get(name) {
                props.insert(name.to_string(), convert(child, false));
            }
        }
    }
    serde_json::json!({ "properties": props })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldErrorKind;
    use crate::schema::fixtures::{compile, widget, widget_schema};
    use serde_json::json;

    fn converted(schema: Value) -> Value {
        convert(schema.as_object().expect("a schema object"), true)
    }

    #[test]
    fn nullable_adds_null_to_the_type_and_the_enum() {
        assert_eq!(
            converted(json!({"type": "string", "nullable": true, "enum": ["a"]})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(
            converted(json!({"x-kubernetes-int-or-string": true, "nullable": true})),
            json!({"type": ["integer", "string", "null"]})
        );
    }

    #[test]
    fn only_checked_formats_and_validation_keywords_are_kept() {
        assert_eq!(
            converted(
                json!({"type": "string", "format": "int32", "description": "d", "x-kubernetes-list-type": "atomic", "default": "x"})
            ),
            json!({"type": "string"})
        );
        assert_eq!(
            converted(json!({"type": "string", "format": "hostname", "maxLength": 3})),
            json!({"type": "string", "format": "hostname", "maxLength": 3})
        );
    }

    #[test]
    fn root_metadata_keeps_only_name_and_generate_name() {
        let schema = converted(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 10},
                "generateName": {"type": "string"},
                "labels": {"type": "object"},
            }}}}),
        );
        assert_eq!(
            schema["properties"]["metadata"],
            json!({"properties": {"name": {"type": "string", "maxLength": 10}, "generateName": {"type": "string"}}})
        );
        // Not below the root: an embedded `metadata` is converted as it is.
        let nested = convert(
            json!({"type": "object", "properties": {"metadata": {"type": "object", "required": ["x"]}}}).as_object().unwrap(),
            false,
        );
        assert_eq!(
            nested["properties"]["metadata"],
            json!({"type": "object", "required": ["x"]})
        );
    }

    #[test]
    fn root_metadata_only_name_constraints_apply() {
        let schema = compile(&widget_schema());
        let mut obj = widget(json!({"image": "nginx"}));
        obj["metadata"] = json!({"name": "w", "labels": {"a": "b"}, "whatever": 1});
        assert!(schema.validate(&obj).is_empty());
        obj["metadata"]["name"] = json!("much-too-long-a-name");
        let errs = schema.validate(&obj);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].field, "metadata.name");
        assert_eq!(errs[0].kind, FieldErrorKind::TooLong);
    }

    #[test]
    fn int_or_string_with_any_of_pattern() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "maxUnavailable": {
                    "x-kubernetes-int-or-string": true,
                    "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+%$"}]
                }
            }
        }));
        for ok in [json!(1), json!("25%")] {
            assert!(
                schema.validate(&json!({"maxUnavailable": ok})).is_empty(),
                "{ok}"
            );
        }
        let errs = schema.validate(&json!({"maxUnavailable": "lots"}));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(
            errs[0].message,
            r#"maxUnavailable: Invalid value: "lots": maxUnavailable in body must validate at least one schema (anyOf)"#
        );
    }

    #[test]
    fn nullable_objects_and_arrays() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "nullable": true, "properties": {"x": {"type": "string"}}},
                "b": {"type": "array", "nullable": true, "items": {"type": "string"}},
                "c": {"type": "array", "items": {"type": "string", "nullable": true}},
                "d": {"type": "array", "items": {"type": "string"}}
            }
        }));
        assert!(
            schema
                .validate(&json!({"a": null, "b": null, "c": ["x", null]}))
                .is_empty()
        );
        let errs = schema.validate(&json!({"d": ["x", null]}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "d[1]");
    }
}
