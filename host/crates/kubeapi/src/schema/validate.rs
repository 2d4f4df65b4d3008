//! Validation errors: each `jsonschema` error mapped to the `field.Error` the API server reports
//! (`kubeOpenAPIResultToFieldErrors` and go-openapi's wording), with a Kubernetes field path
//! (`spec.rules[0].host`).

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde_json::Value;

use super::field_error::{
    FieldError, FieldErrorKind, go_f64, go_number, go_value, join_field, type_name,
};

/// The Kubernetes path of a JSON pointer into `root`: `spec.rules[0].host`.
fn k8s_path(root: &Value, location: &jsonschema::paths::Location) -> String {
    let mut out = String::new();
    let mut cur = Some(root);
    for seg in location.iter() {
        let s = seg.to_string();
        match cur {
            Some(Value::Array(list)) if s.parse::<usize>().is_ok() => {
                let i: usize = s.parse().unwrap_or_default();
                out.push_str(&format!("[{i}]"));
                cur = list.get(i);
            }
            _ => {
                if !out.is_empty() {
                    out.push('.');
                }
                cur = cur.and_then(|c| c.get(&s));
                out.push_str(&s);
            }
        }
    }
    out
}

/// go-openapi's list of expected types (`integer,string`), without the `null` of `nullable`.
fn type_list(kind: &TypeKind) -> String {
    let names: Vec<&str> = match kind {
        TypeKind::Single(t) => vec![t.as_str()],
        TypeKind::Multiple(set) => set
            .iter()
            .filter(|t| *t != JsonType::Null)
            .map(JsonType::as_str)
            .collect(),
    };
    names.join(",")
}

/// The `field.Error` the API server reports for one `jsonschema` error, with go-openapi's wording.
pub(super) fn to_field_error(e: &ValidationError<'_>, root: &Value) -> FieldError {
    let path = k8s_path(root, e.instance_path());
    let instance: &Value = e.instance();
    let invalid = |detail: String| {
        FieldError::invalid(
            path.clone(),
            FieldErrorKind::Invalid,
            instance.clone(),
            &detail,
        )
    };
    let len = |v: &Value| match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.chars().count(),
        _ => 0,
    };
    match e.kind() {
        ValidationErrorKind::Required { property } => {
            let prop = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            FieldError::required(join_field(&path, &prop), "")
        }
        ValidationErrorKind::Type { kind } => {
            let actual = type_name(instance);
            FieldError::invalid(
                path.clone(),
                FieldErrorKind::TypeInvalid,
                Value::from(actual),
                &format!(
                    "{path} in body must be of type {}: \"{actual}\"",
                    type_list(kind)
                ),
            )
        }
        ValidationErrorKind::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .map(|list| {
                    // `null` is in the list only because the field is nullable.
                    list.iter()
                        .filter(|o| !o.is_null())
                        .map(|o| match o {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            FieldError::not_supported(path.clone(), instance.clone(), &supported)
        }
        ValidationErrorKind::MaxLength { limit } => {
            FieldError::too_long(path.clone(), instance.clone(), *limit)
        }
        ValidationErrorKind::MaxItems { limit } | ValidationErrorKind::MaxProperties { limit } => {
            FieldError::too_many(path.clone(), len(instance), *limit)
        }
        ValidationErrorKind::MinLength { limit } => invalid(format!(
            "{path} in body should be at least {limit} chars long"
        )),
        ValidationErrorKind::MinItems { limit } => FieldError::invalid(
            path.clone(),
            FieldErrorKind::Invalid,
            Value::from(len(instance)),
            &format!("{path} in body should have at least {limit} items"),
        ),
        ValidationErrorKind::MinProperties { limit } => FieldError::invalid(
            path.clone(),
            FieldErrorKind::Invalid,
            Value::from(len(instance)),
            &format!("{path} in body should have at least {limit} properties"),
        ),
        ValidationErrorKind::Pattern { pattern } => {
            invalid(format!("{path} in body should match '{pattern}'"))
        }
        ValidationErrorKind::Minimum { limit } => invalid(format!(
            "{path} in body should be greater than or equal to {}",
            go_number(limit)
        )),
        ValidationErrorKind::ExclusiveMinimum { limit } => invalid(format!(
            "{path} in body should be greater than {}",
            go_number(limit)
        )),
        ValidationErrorKind::Maximum { limit } => invalid(format!(
            "{path} in body should be less than or equal to {}",
            go_number(limit)
        )),
        ValidationErrorKind::ExclusiveMaximum { limit } => invalid(format!(
            "{path} in body should be less than {}",
            go_number(limit)
        )),
        ValidationErrorKind::MultipleOf { multiple_of } => invalid(format!(
            "{path} in body should be a multiple of {}",
            go_f64(*multiple_of)
        )),
        ValidationErrorKind::UniqueItems => {
            invalid(format!("{path} in body shouldn't contain duplicates"))
        }
        ValidationErrorKind::Format { format } => invalid(format!(
            "{path} in body must be of type {format}: {}",
            go_value(instance)
        )),
        ValidationErrorKind::AnyOf { .. } => invalid(format!(
            "{path} in body must validate at least one schema (anyOf)"
        )),
        ValidationErrorKind::OneOfNotValid { .. } => invalid(format!(
            "{path} in body must validate one and only one schema (oneOf)"
        )),
        ValidationErrorKind::OneOfMultipleValid { context } => {
            let valid = context.iter().filter(|errs| errs.is_empty()).count();
            invalid(format!(
                "{path} in body must validate one and only one schema (oneOf). Found {valid} valid alternatives"
            ))
        }
        ValidationErrorKind::Not { .. } => {
            invalid(format!("{path} in body must not validate the schema (not)"))
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let field = join_field(&path, unexpected.first().map_or("", String::as_str));
            FieldError::invalid(
                field.clone(),
                FieldErrorKind::Invalid,
                instance.clone(),
                &format!("{field} in body is a forbidden property"),
            )
        }
        _ => invalid(format!("{path} in body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::{compile, widget, widget_schema};
    use serde_json::json;

    #[test]
    fn valid_objects_have_no_errors() {
        let schema = compile(&widget_schema());
        let cases = [
            json!({"image": "nginx"}),
            json!({"image": "nginx:1.2", "replicas": 5, "mode": "b", "tags": ["x"], "port": 80}),
            json!({"image": "nginx", "port": "http", "note": null, "color": null}),
            json!({"image": "nginx", "when": "2024-01-02T03:04:05Z", "size": 3}),
            json!({"image": "nginx", "rules": [{"host": "example.com", "paths": [{"path": "/a", "weight": 100}]}]}),
            json!({"image": "nginx", "labels": {"a": "xyz"}, "choice": {"a": "1"}, "ratio": 0.5}),
            json!({"image": "nginx", "template": {"apiVersion": "v1", "kind": "ConfigMap", "data": {}}}),
        ];
        for spec in cases {
            let errs = schema.validate(&widget(spec.clone()));
            assert!(errs.is_empty(), "{spec}: {errs:#?}");
        }
    }

    /// (spec, field, kind, message)
    type Case = (Value, &'static str, FieldErrorKind, &'static str);

    #[test]
    fn invalid_objects_report_kubernetes_errors() {
        let schema = compile(&widget_schema());
        let cases: Vec<Case> = vec![
            (
                json!({}),
                "spec.image",
                FieldErrorKind::Required,
                "spec.image: Required value",
            ),
            (
                json!({"image": "nginx", "replicas": "string"}),
                "spec.replicas",
                FieldErrorKind::TypeInvalid,
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
            ),
            (
                json!({"image": "nginx", "replicas": 1.5}),
                "spec.replicas",
                FieldErrorKind::TypeInvalid,
                r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#,
            ),
            (
                json!({"image": "nginx", "mode": "x"}),
                "spec.mode",
                FieldErrorKind::NotSupported,
                r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
            ),
            (
                json!({"image": "Nginx"}),
                "spec.image",
                FieldErrorKind::Invalid,
                r#"spec.image: Invalid value: "Nginx": spec.image in body should match '^[a-z]+(:[0-9.]+)?$'"#,
            ),
            (
                json!({"image": "nginx", "replicas": 0}),
                "spec.replicas",
                FieldErrorKind::Invalid,
                "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            ),
            (
                json!({"image": "nginx", "replicas": 6}),
                "spec.replicas",
                FieldErrorKind::Invalid,
                "spec.replicas: Invalid value: 6: spec.replicas in body should be less than or equal to 5",
            ),
            (
                json!({"image": "nginx", "ratio": 0}),
                "spec.ratio",
                FieldErrorKind::Invalid,
                "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            ),
            (
                json!({"image": "nginx", "ratio": 1}),
                "spec.ratio",
                FieldErrorKind::Invalid,
                "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1",
            ),
            (
                json!({"image": "nginx", "name": "toolong"}),
                "spec.name",
                FieldErrorKind::TooLong,
                "spec.name: Too long: may not be more than 5 bytes",
            ),
            (
                json!({"image": "nginx", "name": "x"}),
                "spec.name",
                FieldErrorKind::Invalid,
                r#"spec.name: Invalid value: "x": spec.name in body should be at least 2 chars long"#,
            ),
            (
                json!({"image": "nginx", "tags": ["a", "b", "c", "d"]}),
                "spec.tags",
                FieldErrorKind::TooMany,
                "spec.tags: Too many: 4: must have at most 3 items",
            ),
            (
                json!({"image": "nginx", "tags": []}),
                "spec.tags",
                FieldErrorKind::Invalid,
                "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
            ),
            (
                json!({"image": "nginx", "tags": ["a", 2]}),
                "spec.tags[1]",
                FieldErrorKind::TypeInvalid,
                r#"spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer""#,
            ),
            (
                json!({"image": "nginx", "rules": [{"host": "a.com"}, {"paths": []}]}),
                "spec.rules[1].host",
                FieldErrorKind::Required,
                "spec.rules[1].host: Required value",
            ),
            (
                json!({"image": "nginx", "rules": [{"host": "a.com", "paths": [{"weight": 1}, {"weight": 101}]}]}),
                "spec.rules[0].paths[1].weight",
                FieldErrorKind::Invalid,
                "spec.rules[0].paths[1].weight: Invalid value: 101: spec.rules[0].paths[1].weight in body should be less than or equal to 100",
            ),
            (
                json!({"image": "nginx", "rules": [{"host": "-bad-"}]}),
                "spec.rules[0].host",
                FieldErrorKind::Invalid,
                r#"spec.rules[0].host: Invalid value: "-bad-": spec.rules[0].host in body must be of type hostname: "-bad-""#,
            ),
            (
                json!({"image": "nginx", "labels": {"k": "long"}}),
                "spec.labels.k",
                FieldErrorKind::TooLong,
                "spec.labels.k: Too long: may not be more than 3 bytes",
            ),
            (
                json!({"image": "nginx", "port": true}),
                "spec.port",
                FieldErrorKind::TypeInvalid,
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
            ),
            (
                json!({"image": "nginx", "port": 1.5}),
                "spec.port",
                FieldErrorKind::TypeInvalid,
                r#"spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number""#,
            ),
            (
                json!({"image": "nginx", "note": 3}),
                "spec.note",
                FieldErrorKind::TypeInvalid,
                r#"spec.note: Invalid value: "integer": spec.note in body must be of type string: "integer""#,
            ),
            (
                json!({"image": null}),
                "spec.image",
                FieldErrorKind::TypeInvalid,
                r#"spec.image: Invalid value: "null": spec.image in body must be of type string: "null""#,
            ),
            (
                json!({"image": "nginx", "color": "green"}),
                "spec.color",
                FieldErrorKind::NotSupported,
                r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#,
            ),
            (
                json!({"image": "nginx", "when": "yesterday"}),
                "spec.when",
                FieldErrorKind::Invalid,
                r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#,
            ),
            (
                json!({"image": "nginx", "choice": {}}),
                "spec.choice",
                FieldErrorKind::Invalid,
                "spec.choice: Invalid value: {}: spec.choice in body must validate one and only one schema (oneOf)",
            ),
            (
                json!({"image": "nginx", "choice": {"a": "1", "b": "2"}}),
                "spec.choice",
                FieldErrorKind::Invalid,
                r#"spec.choice: Invalid value: {"a":"1","b":"2"}: spec.choice in body must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
            ),
            (
                json!({"image": "nginx", "template": {"kind": "ConfigMap"}}),
                "spec.template.apiVersion",
                FieldErrorKind::Required,
                "spec.template.apiVersion: Required value: must not be empty",
            ),
            (
                json!({"image": "nginx", "template": {"apiVersion": "v1", "kind": "Config_Map"}}),
                "spec.template.kind",
                FieldErrorKind::Invalid,
                r#"spec.template.kind: Invalid value: "Config_Map": may have mixed case, but should otherwise match: a DNS-1035 label"#,
            ),
            (
                json!("not an object"),
                "spec",
                FieldErrorKind::TypeInvalid,
                r#"spec: Invalid value: "string": spec in body must be of type object: "string""#,
            ),
        ];
        for (spec, field, kind, message) in cases {
            let errs = schema.validate(&widget(spec.clone()));
            let found = errs.iter().find(|e| e.field == field);
            let Some(err) = found else {
                panic!("{spec}: no error at {field}, got {errs:#?}");
            };
            assert_eq!(err.kind, kind, "{spec}: {err:?}");
            assert!(
                err.message.starts_with(message),
                "{spec}:\n got  {}\n want {message}",
                err.message
            );
            assert_eq!(
                errs.len(),
                1,
                "{spec}: exactly one error expected, got {errs:#?}"
            );
        }
    }

    #[test]
    fn type_error_value_is_the_type_name() {
        let schema = compile(&widget_schema());
        let errs = schema.validate(&widget(json!({"image": "nginx", "replicas": "3"})));
        assert_eq!(errs[0].value, Some(json!("string")));
        assert_eq!(errs[0].kind.reason(), "FieldValueTypeInvalid");
    }

    #[test]
    fn several_errors_are_all_reported() {
        let schema = compile(&widget_schema());
        let errs = schema.validate(&widget(json!({"replicas": 9, "mode": "z"})));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in ["spec.image", "spec.replicas", "spec.mode"] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn all_of_and_not() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "allOf": [{"minimum": 1}, {"multipleOf": 2}], "not": {"enum": [4]}}
            }
        }));
        assert!(schema.validate(&json!({"n": 2})).is_empty());
        let msg = |v: Value| {
            schema
                .validate(&json!({"n": v}))
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            msg(json!(3)),
            ["n: Invalid value: 3: n in body should be a multiple of 2"]
        );
        assert_eq!(
            msg(json!(4)),
            ["n: Invalid value: 4: n in body must not validate the schema (not)"]
        );
    }

    #[test]
    fn paths_index_arrays_and_name_object_members() {
        let schema = compile(
            &json!({"type": "object", "properties": {"m": {"type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "integer"}}}}}),
        );
        let errs = schema.validate(&json!({"m": {"0": [1, "x"]}}));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        // A numeric member name of an object stays a member, an index of an array is bracketed.
        assert_eq!(errs[0].field, "m.0[1]");
    }

    #[test]
    fn unknown_fields_under_a_closed_schema_are_forbidden() {
        // additionalProperties: false cannot be compiled from a CRD, but the mapping is kept
        // for the API server's wording should a junctor produce it.
        let validator = jsonschema::draft4::new(
            &json!({"properties": {"a": {}}, "additionalProperties": false}),
        )
        .unwrap();
        let object = json!({"a": 1, "b": 2});
        let errs: Vec<FieldError> = validator
            .iter_errors(&object)
            .map(|e| to_field_error(&e, &object))
            .collect();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "b");
        assert_eq!(
            errs[0].message,
            r#"b: Invalid value: {"a":1,"b":2}: b in body is a forbidden property"#
        );
    }
}
