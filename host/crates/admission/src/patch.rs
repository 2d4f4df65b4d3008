//! The JSON Patch between the submitted object and a plugin's changed one.

use serde_json::Value;

use super::EvaluationError;

/// Fields a mutation may not change: the API server would refuse the patch, or worse, apply it.
const IMMUTABLE: &[&str] = &[
    "/apiVersion",
    "/kind",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/uid",
];

/// The RFC 6902 patch from `original` to `mutated`; `None` when they are equal.
pub(super) fn diff(
    original: &Value,
    mutated: &Value,
) -> Result<Option<json_patch::Patch>, EvaluationError> {
    for pointer in IMMUTABLE {
        if original.pointer(pointer) != mutated.pointer(pointer) {
            return Err(EvaluationError::Malformed(format!(
                "the changed object changes {pointer}, which a mutation may not change"
            )));
        }
    }
    let patch = json_patch::diff(original, mutated);
    Ok(if patch.0.is_empty() {
        None
    } else {
        Some(patch)
    })
}

/// JSON's name for a value's type, for error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// [`json_type`] with its article, for prose: "a string", "an object", "null".
pub fn json_type_with_article(value: &Value) -> String {
    match json_type(value) {
        "null" => "null".to_string(),
        name @ ("array" | "object") => format!("an {name}"),
        name => format!("a {name}"),
    }
}
