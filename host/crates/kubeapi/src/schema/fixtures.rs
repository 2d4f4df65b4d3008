//! Schemas and objects the tests of the schema's files share.

use serde_json::{Value, json};

use super::Schema;

/// A CRD-like schema exercising most keywords.
pub(super) fn widget_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
            "spec": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "pattern": "^[a-z]+(:[0-9.]+)?$"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                    "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1, "exclusiveMaximum": true},
                    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                    "name": {"type": "string", "minLength": 2, "maxLength": 5},
                    "tags": {"type": "array", "maxItems": 3, "minItems": 1, "items": {"type": "string"}},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "color": {"type": "string", "nullable": true, "enum": ["red", "blue"]},
                    "when": {"type": "string", "format": "date-time"},
                    "size": {"type": "integer", "format": "int32"},
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["host"],
                            "properties": {
                                "host": {"type": "string", "format": "hostname"},
                                "paths": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "path": {"type": "string", "default": "/"},
                                            "weight": {"type": "integer", "maximum": 100}
                                        }
                                    }
                                }
                            }
                        }
                    },
                    "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
                    "limits": {
                        "type": "object",
                        "properties": {
                            "cpu": {"type": "string", "default": "100m"},
                            "nested": {"type": "object", "properties": {"deep": {"type": "integer", "default": 7}}}
                        }
                    },
                    "choice": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
                    },
                    "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"known": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}
                }
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }
    })
}

/// A Widget object with this spec.
pub(super) fn widget(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
}

/// Compiles a schema that must compile.
pub(super) fn compile(schema: &Value) -> Schema {
    Schema::compile(schema).unwrap_or_else(|e| panic!("schema should compile: {e}"))
}
