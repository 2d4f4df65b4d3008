//! Checks of `x-kubernetes-embedded-resource` objects (`apiVersion` and `kind` present and well
//! formed), which the API server makes outside the OpenAPI validator.

use serde_json::{Map, Value};

use super::field_error::{FieldError, FieldErrorKind, join_field};
use super::structural::Node;

/// Checks every `x-kubernetes-embedded-resource` object under `x` (schema node `s`, at `path`).
pub(super) fn check_embedded(
    x: &Value,
    s: &Node,
    path: &str,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    match x {
        Value::Object(map) => {
            if s.embedded {
                validate_embedded(map, path, errs);
            }
            for (k, v) in map {
                if root && k == "metadata" {
                    continue;
                }
                let child = join_field(path, k);
                if let Some(p) = s.properties.get(k) {
                    check_embedded(v, p, &child, false, errs);
                } else if let Some(n) = s.additional_schema() {
                    check_embedded(v, n, &child, false, errs);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for (i, v) in list.iter().enumerate() {
                    check_embedded(v, items, &format!("{path}[{i}]"), false, errs);
                }
            }
        }
        _ => {}
    }
}

/// `validateEmbeddedResource` of the apiextensions API server.
fn validate_embedded(map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let api_version = join_field(path, "apiVersion");
    let kind = join_field(path, "kind");
    match map.get("apiVersion") {
        None => errs.push(FieldError::required(api_version, "must not be empty")),
        Some(Value::String(v)) if v.is_empty() => errs.push(FieldError::invalid(
            api_version,
            FieldErrorKind::Invalid,
            Value::from(""),
            "must not be empty",
        )),
        Some(Value::String(v)) => {
            if v.matches('/').count() > 1 {
                errs.push(FieldError::invalid(
                    api_version,
                    FieldErrorKind::Invalid,
                    Value::from(v.as_str()),
                    &format!("unexpected GroupVersion string: {v}"),
                ));
            }
        }
        Some(other) => errs.push(FieldError::invalid(
            api_version,
            FieldErrorKind::Invalid,
            other.clone(),
            "must be a string",
        )),
    }
    match map.get("kind") {
        None => errs.push(FieldError::required(kind, "must not be empty")),
        Some(Value::String(v)) if v.is_empty() => errs.push(FieldError::invalid(
            kind,
            FieldErrorKind::Invalid,
            Value::from(""),
            "must not be empty",
        )),
        Some(Value::String(v)) => {
            if let Err(e) = dns1035_label(&v.to_lowercase()) {
                errs.push(FieldError::invalid(
                    kind,
                    FieldErrorKind::Invalid,
                    Value::from(v.as_str()),
                    &format!("may have mixed case, but should otherwise match: {e}"),
                ));
            }
        }
        Some(other) => errs.push(FieldError::invalid(
            kind,
            FieldErrorKind::Invalid,
            other.clone(),
            "must be a string",
        )),
    }
}

fn dns1035_label(s: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if !ok {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(object: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_embedded(object.as_object().unwrap(), "spec.template", &mut errs);
        errs.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn an_embedded_resource_needs_api_version_and_kind() {
        assert!(errors(json!({"apiVersion": "apps/v1", "kind": "Deployment"})).is_empty());
        assert_eq!(
            errors(json!({})),
            [
                "spec.template.apiVersion: Required value: must not be empty",
                "spec.template.kind: Required value: must not be empty",
            ]
        );
        assert_eq!(
            errors(json!({"apiVersion": "", "kind": 3})),
            [
                r#"spec.template.apiVersion: Invalid value: "": must not be empty"#,
                "spec.template.kind: Invalid value: 3: must be a string",
            ]
        );
    }

    #[test]
    fn api_version_and_kind_must_be_well_formed() {
        assert_eq!(
            errors(json!({"apiVersion": "a/b/c", "kind": "Pod"})),
            [
                r#"spec.template.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c"#
            ]
        );
        let kind = errors(json!({"apiVersion": "v1", "kind": "9Pod"}));
        assert_eq!(kind.len(), 1);
        assert!(kind[0].starts_with(r#"spec.template.kind: Invalid value: "9Pod": may have mixed case, but should otherwise match: a DNS-1035 label"#), "{kind:?}");
    }

    #[test]
    fn dns1035_labels() {
        for ok in ["a", "pod", "my-kind2"] {
            assert!(dns1035_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "a-", "a_b"] {
            assert!(dns1035_label(bad).is_err(), "{bad}");
        }
        let long = dns1035_label(&"a".repeat(64)).unwrap_err();
        assert_eq!(long, "must be no more than 63 characters");
    }

    #[test]
    fn embedded_resources_are_found_in_arrays_and_maps_but_not_in_root_metadata() {
        let node = Node::build(json!({"type": "object", "properties": {
            "list": {"type": "array", "items": {"type": "object", "x-kubernetes-embedded-resource": true}},
            "metadata": {"type": "object", "x-kubernetes-embedded-resource": true},
        }}).as_object().unwrap());
        let mut errs = Vec::new();
        check_embedded(
            &json!({"metadata": {}, "list": [{"apiVersion": "v1", "kind": "A"}, {"kind": "B"}]}),
            &node,
            "",
            true,
            &mut errs,
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["list[1].apiVersion"]);
    }
}
