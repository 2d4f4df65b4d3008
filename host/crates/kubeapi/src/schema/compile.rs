//! Compiling a CRD version's `openAPIV3Schema`: first the checks CRD admission would make
//! (structural rules, forbidden keywords, regular expressions, with the API server's wording),
//! then the translation to JSON Schema ([`super::convert`]), the validator and the skeleton.

use jsonschema::PatternOptions;
use regex::Regex;
use serde_json::Value;

use super::Schema;
use super::convert::convert;
use super::field_error::go_value;
use super::formats::FORMATS;
use super::structural::Node;
use crate::go_quote;

/// Checks `open_api_v3_schema`, translates it to JSON Schema and builds the validator and the
/// structural skeleton: [`Schema::compile`].
pub(super) fn compile(open_api_v3_schema: &Value) -> Result<Schema, String> {
    let mut errs = Vec::new();
    check_schema(
        open_api_v3_schema,
        "openAPIV3Schema",
        Position::Root,
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(errs.join("; "));
    }
    let Value::Object(root_map) = open_api_v3_schema else {
        return Err("openAPIV3Schema: must be an object".to_string());
    };
    let converted = convert(root_map, true);
    let mut options = jsonschema::draft4::options()
        .with_pattern_options(PatternOptions::regex())
        .should_validate_formats(true);
    for (name, check) in FORMATS {
        options = options.with_format(*name, *check);
    }
    let validator = options
        .build(&converted)
        .map_err(|e| format!("openAPIV3Schema: {e}"))?;
    let root = Node::build(root_map);
    let has_embedded = root.has_embedded();
    Ok(Schema {
        root,
        validator,
        has_embedded,
    })
}

/// Where a schema node stands: the structural rules differ at the root, under `properties`,
/// `items` and `additionalProperties`, and inside the logical junctors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Root,
    Property,
    Items,
    AdditionalProperties,
    /// Inside `allOf` / `anyOf` / `oneOf` / `not`: value validation only, no structure rules.
    ValueValidation,
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Checks one node of an `openAPIV3Schema` as CRD admission would, at `path`; what is wrong is
/// pushed to `errs`, each as `<path>: <what>`.
fn check_schema(v: &Value, path: &str, pos: Position, errs: &mut Vec<String>) {
    let Value::Object(m) = v else {
        errs.push(format!(
            "{path}: Invalid value: {}: must be a schema object",
            go_value(v)
        ));
        return;
    };
    if m.contains_key("$ref") {
        errs.push(format!(
            "{path}.$ref: Forbidden: $ref is not supported in CRD schemas"
        ));
    }
    for key in [
        "nullable",
        "uniqueItems",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
    ] {
        if let Some(val) = m.get(key)
            && !val.is_boolean()
        {
            errs.push(format!(
                "{path}.{key}: Invalid value: {}: must be a boolean",
                go_value(val)
            ));
        }
    }
    let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    let embedded = flag("x-kubernetes-embedded-resource");
    let structural = pos != Position::ValueValidation;

    let ty = match m.get("type") {
        None => None,
        Some(Value::String(t)) => {
            if !TYPES.contains(&t.as_str()) {
                let quoted: Vec<String> = TYPES.iter().map(|t| go_quote(t)).collect();
                errs.push(format!(
                    "{path}.type: Unsupported value: {}: supported values: {}",
                    go_quote(t),
                    quoted.join(", ")
                ));
            }
            Some(t.as_str())
        }
        Some(other) => {
            errs.push(format!(
                "{path}.type: Invalid value: {}: must be a string",
                go_value(other)
            ));
            None
        }
    };
    if int_or_string && let Some(t) = ty {
        errs.push(format!(
            "{path}.type: Invalid value: {}: must be empty if x-kubernetes-int-or-string is true",
            go_quote(t)
        ));
    }
    match pos {
        Position::Root => match ty {
            None => errs.push(format!(
                "{path}.type: Required value: must not be empty at the root"
            )),
            Some("object") => {}
            Some(t) => errs.push(format!(
                "{path}.type: Invalid value: {}: must be object at the root",
                go_quote(t)
            )),
        },
        Position::Property | Position::Items | Position::AdditionalProperties => {
            if ty.is_none() && !int_or_string && !preserve {
                let what = match pos {
                    Position::Property => "specified object fields",
                    Position::Items => "specified array items",
                    _ => "additionalProperties",
                };
                errs.push(format!(
                    "{path}.type: Required value: must not be empty for {what}"
                ));
            }
        }
        Position::ValueValidation => {}
    }
    if embedded && structural && ty != Some("object") {
        errs.push(format!(
            "{path}.type: Invalid value: {}: must be object if x-kubernetes-embedded-resource is true",
            go_quote(ty.unwrap_or(""))
        ));
    }
    if structural && ty == Some("array") && !m.contains_key("items") {
        errs.push(format!("{path}.items: Required value: must be specified"));
    }
    let child_pos = |p: Position| {
        if structural {
            p
        } else {
            Position::ValueValidation
        }
    };

    match m.get("items") {
        None => {}
        Some(Value::Array(_)) => errs.push(format!(
            "{path}.items: Forbidden: items must be a schema object and not an array"
        )),
        Some(items) => check_schema(
            items,
            &format!("{path}.items"),
            child_pos(Position::Items),
            errs,
        ),
    }
    match m.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (k, child) in props {
                check_schema(
                    child,
                    &format!("{path}.properties[{k}]"),
                    child_pos(Position::Property),
                    errs,
                );
            }
        }
        Some(other) => errs.push(format!(
            "{path}.properties: Invalid value: {}: must be an object",
            go_value(other)
        )),
    }
    match m.get("additionalProperties") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => errs.push(format!(
            "{path}.additionalProperties: Forbidden: must not be false"
        )),
        Some(child) => {
            if m.contains_key("properties") {
                errs.push(format!(
                    "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
                ));
            }
            check_schema(
                child,
                &format!("{path}.additionalProperties"),
                child_pos(Position::AdditionalProperties),
                errs,
            );
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        match m.get(key) {
            None => {}
            Some(Value::Array(list)) => {
                for (i, child) in list.iter().enumerate() {
                    check_schema(
                        child,
                        &format!("{path}.{key}[{i}]"),
                        Position::ValueValidation,
                        errs,
                    );
                }
            }
            Some(other) => errs.push(format!(
                "{path}.{key}: Invalid value: {}: must be an array of schemas",
                go_value(other)
            )),
        }
    }
    if let Some(not) = m.get("not") {
        check_schema(not, &format!("{path}.not"), Position::ValueValidation, errs);
    }
    match m.get("pattern") {
        None => {}
        Some(Value::String(p)) => {
            if let Err(e) = Regex::new(p) {
                errs.push(format!(
                    "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {e}",
                    go_quote(p)
                ));
            }
        }
        Some(other) => errs.push(format!(
            "{path}.pattern: Invalid value: {}: must be a string",
            go_value(other)
        )),
    }
    if let Some(e) = m.get("enum")
        && !e.is_array()
    {
        errs.push(format!(
            "{path}.enum: Invalid value: {}: must be an array",
            go_value(e)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::compile;
    use serde_json::json;

    #[test]
    fn compile_errors_table() {
        // (schema, substring of the error)
        let cases: &[(Value, &str)] = &[
            (
                json!("x"),
                "openAPIV3Schema: Invalid value: \"x\": must be a schema object",
            ),
            (
                json!({"properties": {}}),
                "openAPIV3Schema.type: Required value: must not be empty at the root",
            ),
            (
                json!({"type": "string"}),
                "openAPIV3Schema.type: Invalid value: \"string\": must be object at the root",
            ),
            (
                json!({"type": "object", "properties": {"spec": {"type": "thing"}}}),
                "openAPIV3Schema.properties[spec].type: Unsupported value: \"thing\"",
            ),
            (
                json!({"type": "object", "properties": {"spec": {"properties": {}}}}),
                "openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "array"}}}),
                "openAPIV3Schema.properties[a].items: Required value: must be specified",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}}),
                "items must be a schema object and not an array",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(["}}}),
                "openAPIV3Schema.properties[a].pattern: Invalid value: \"([\": must be a valid regular expression",
            ),
            (
                json!({"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}}}),
                "openAPIV3Schema.properties[a].$ref: Forbidden",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": true}}}),
                "must be empty if x-kubernetes-int-or-string is true",
            ),
            (
                json!({"type": "object", "additionalProperties": false}),
                "openAPIV3Schema.additionalProperties: Forbidden: must not be false",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
                "additionalProperties and properties are mutual exclusive",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "nullable": "yes"}}}),
                "openAPIV3Schema.properties[a].nullable: Invalid value: \"yes\": must be a boolean",
            ),
            (
                json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": "1"}}}),
                "openAPIV3Schema",
            ),
        ];
        for (schema, want) in cases {
            match Schema::compile(schema) {
                Ok(_) => panic!("{schema} should not compile"),
                Err(e) => assert!(e.contains(want), "{schema}:\n got  {e}\n want {want}"),
            }
        }
    }

    #[test]
    fn compile_accepts_value_validation_without_types_and_ignores_extensions() {
        compile(&json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.a == self.b"}],
            "properties": {
                "a": {"type": "string", "anyOf": [{"minLength": 1}, {"pattern": "x"}], "x-kubernetes-list-type": "atomic"},
                "m": {"type": "object", "x-kubernetes-map-type": "granular", "additionalProperties": true},
                "any": {"x-kubernetes-preserve-unknown-fields": true}
            }
        }));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = Schema::compile(&json!({"type": "object", "properties": {
            "a": {"type": "thing"},
            "b": {"type": "array"},
        }}))
        .unwrap_err();
        assert_eq!(
            e,
            r#"openAPIV3Schema.properties[a].type: Unsupported value: "thing": supported values: "array", "boolean", "integer", "number", "object", "string"; openAPIV3Schema.properties[b].items: Required value: must be specified"#
        );
    }

    #[test]
    fn junctors_need_no_types_but_structure_still_does() {
        // Inside allOf/anyOf/oneOf/not a node is value validation only: no type needed.
        compile(
            &json!({"type": "object", "properties": {"a": {"type": "string", "allOf": [{"properties": {"x": {}}}]}}}),
        );
        // Under properties it is structural: a type is required.
        let e = Schema::compile(&json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"x": {}}}}}))
            .unwrap_err();
        assert!(
            e.contains("openAPIV3Schema.properties[a].properties[x].type: Required value"),
            "{e}"
        );
        let e = Schema::compile(&json!({"type": "object", "properties": {"r": {"type": "string", "x-kubernetes-embedded-resource": true}}}))
            .unwrap_err();
        assert!(
            e.contains("must be object if x-kubernetes-embedded-resource is true"),
            "{e}"
        );
    }
}
