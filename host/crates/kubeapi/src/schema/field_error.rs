//! Field errors, as Kubernetes' `field.Error` words them (`spec.replicas: Invalid value: "x":
//! ...`), and Go's formatting of the values in their messages.

use std::fmt;

use serde_json::Value;

use crate::go_quote;

/// The kind of a field error, as `field.ErrorType` in Kubernetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A required field is absent (`Required value`).
    Required,
    /// A value fails a constraint (`Invalid value`).
    Invalid,
    /// A value has the wrong JSON type (`Invalid value`, reason `FieldValueTypeInvalid`).
    TypeInvalid,
    /// A value is not in the `enum` (`Unsupported value`).
    NotSupported,
    /// A string is longer than `maxLength` (`Too long`).
    TooLong,
    /// An array or object has more than `maxItems` / `maxProperties` (`Too many`).
    TooMany,
}

impl FieldErrorKind {
    /// The `reason` of a `StatusCause` (`FieldValueRequired`, `FieldValueInvalid`, ...).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
        }
    }
}

/// One validation failure, as a Kubernetes `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Kubernetes field path: `spec.rules[0].host`.
    pub field: String,
    pub kind: FieldErrorKind,
    /// The whole message, as the API server words it:
    /// `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
    pub message: String,
    /// The bad value as Kubernetes records it: the value itself; for a type error the name of
    /// its JSON type; for `Too many` the count; `None` for `Required`.
    pub value: Option<Value>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn with_field(field: &str, body: String) -> String {
    if field.is_empty() {
        body
    } else {
        format!("{field}: {body}")
    }
}

impl FieldError {
    pub(super) fn required(field: String, detail: &str) -> FieldError {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            message: with_field(&field, body),
            field,
            kind: FieldErrorKind::Required,
            value: None,
        }
    }

    pub(super) fn invalid(
        field: String,
        kind: FieldErrorKind,
        value: Value,
        detail: &str,
    ) -> FieldError {
        let body = format!("Invalid value: {}: {detail}", go_value(&value));
        FieldError {
            message: with_field(&field, body),
            field,
            kind,
            value: Some(value),
        }
    }

    pub(super) fn not_supported(field: String, value: Value, supported: &[String]) -> FieldError {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let body = format!(
            "Unsupported value: {}: supported values: {}",
            go_value(&value),
            quoted.join(", ")
        );
        FieldError {
            message: with_field(&field, body),
            field,
            kind: FieldErrorKind::NotSupported,
            value: Some(value),
        }
    }

    pub(super) fn too_long(field: String, value: Value, max: u64) -> FieldError {
        let unit = if max == 1 { "byte" } else { "bytes" };
        let body = format!("Too long: may not be more than {max} {unit}");
        FieldError {
            message: with_field(&field, body),
            field,
            kind: FieldErrorKind::TooLong,
            value: Some(value),
        }
    }

    pub(super) fn too_many(field: String, actual: usize, max: u64) -> FieldError {
        let unit = if max == 1 { "item" } else { "items" };
        let body = format!("Too many: {actual}: must have at most {max} {unit}");
        FieldError {
            message: with_field(&field, body),
            field,
            kind: FieldErrorKind::TooMany,
            value: Some(Value::from(actual)),
        }
    }
}

/// How `field.Error` prints a bad value: strings quoted, scalars bare, the rest as JSON.
pub(super) fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(_) => go_number(v),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Go's `%v` of a JSON number: `3`, not `3.0`.
pub(super) fn go_number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if !v.is_i64() && !v.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
            format!("{}", f as i64)
        }
        _ => v.to_string(),
    }
}

/// Go's `%v` of a float64: `2`, not `2.0`.
pub(super) fn go_f64(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// go-openapi's name for a value's type.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A child's Kubernetes field path: `spec` + `image` is `spec.image`; at the root, `image`.
pub(super) fn join_field(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_words_its_message_as_the_api_server() {
        let cases = [
            (
                FieldError::required("spec.image".into(), ""),
                "spec.image: Required value",
            ),
            (
                FieldError::required("spec.kind".into(), "must not be empty"),
                "spec.kind: Required value: must not be empty",
            ),
            (
                FieldError::invalid(
                    "spec.n".into(),
                    FieldErrorKind::Invalid,
                    json!(3),
                    "must be even",
                ),
                "spec.n: Invalid value: 3: must be even",
            ),
            (
                FieldError::not_supported(
                    "spec.mode".into(),
                    json!("x"),
                    &["a".to_string(), "b".to_string()],
                ),
                r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
            ),
            (
                FieldError::too_long("spec.name".into(), json!("abc"), 1),
                "spec.name: Too long: may not be more than 1 byte",
            ),
            (
                FieldError::too_many("spec.tags".into(), 4, 3),
                "spec.tags: Too many: 4: must have at most 3 items",
            ),
            (FieldError::required(String::new(), ""), "Required value"),
        ];
        for (error, message) in cases {
            assert_eq!(error.message, message);
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn the_recorded_value_is_the_value_or_the_count() {
        assert_eq!(FieldError::required("a".into(), "").value, None);
        assert_eq!(FieldError::too_many("a".into(), 4, 3).value, Some(json!(4)));
        assert_eq!(
            FieldError::too_long("a".into(), json!("abcd"), 3).value,
            Some(json!("abcd"))
        );
    }

    #[test]
    fn reasons_are_kubernetes_status_cause_reasons() {
        let cases = [
            (FieldErrorKind::Required, "FieldValueRequired"),
            (FieldErrorKind::Invalid, "FieldValueInvalid"),
            (FieldErrorKind::TypeInvalid, "FieldValueTypeInvalid"),
            (FieldErrorKind::NotSupported, "FieldValueNotSupported"),
            (FieldErrorKind::TooLong, "FieldValueTooLong"),
            (FieldErrorKind::TooMany, "FieldValueTooMany"),
        ];
        for (kind, reason) in cases {
            assert_eq!(kind.reason(), reason);
        }
    }

    #[test]
    fn values_print_as_go_prints_them() {
        let cases = [
            (json!("a\"b"), r#""a\"b""#),
            (json!(3), "3"),
            (json!(3.0), "3"),
            (json!(2.5), "2.5"),
            (json!(true), "true"),
            (Value::Null, "null"),
            (json!({"a": [1]}), r#"{"a":[1]}"#),
        ];
        for (value, printed) in cases {
            assert_eq!(go_value(&value), printed, "{value}");
        }
        assert_eq!(go_f64(2.0), "2");
        assert_eq!(go_f64(0.25), "0.25");
    }

    #[test]
    fn type_names_tell_integers_from_numbers() {
        let cases = [
            (json!(1), "integer"),
            (json!(-1), "integer"),
            (json!(1.5), "number"),
            (json!("s"), "string"),
            (json!([]), "array"),
            (json!({}), "object"),
            (json!(false), "boolean"),
            (Value::Null, "null"),
        ];
        for (value, name) in cases {
            assert_eq!(type_name(&value), name, "{value}");
        }
    }

    #[test]
    fn fields_join_with_a_dot_except_at_the_root() {
        assert_eq!(join_field("", "spec"), "spec");
        assert_eq!(join_field("spec", "image"), "spec.image");
        assert_eq!(join_field("spec.rules[0]", "host"), "spec.rules[0].host");
    }
}
