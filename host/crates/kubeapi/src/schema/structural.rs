//! The structural skeleton of a schema (`properties`, `items`, `additionalProperties`, and the
//! flags and defaults on each node): what defaulting, pruning and the embedded-resource checks
//! walk, since a JSON Schema validator does not expose it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The structural skeleton of a schema node: what defaulting and pruning walk.
#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    pub(super) properties: BTreeMap<String, Node>,
    pub(super) additional: Option<Additional>,
    pub(super) items: Option<Box<Node>>,
    pub(super) default: Option<Value>,
    pub(super) nullable: bool,
    pub(super) preserve_unknown: bool,
    pub(super) embedded: bool,
}

#[derive(Debug, Clone)]
pub(super) enum Additional {
    /// `additionalProperties: true`: any value, kept as it is.
    Any,
    Schema(Box<Node>),
}

impl Node {
    /// The skeleton of one `openAPIV3Schema` node and everything under it.
    pub(super) fn build(schema: &Map<String, Value>) -> Node {
        let flag = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut node = Node {
            default: schema.get("default").cloned(),
            nullable: flag("nullable"),
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            embedded: flag("x-kubernetes-embedded-resource"),
            ..Node::default()
        };
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (k, v) in props {
                if let Value::Object(child) = v {
                    node.properties.insert(k.clone(), Node::build(child));
                }
            }
        }
        if let Some(Value::Object(items)) = schema.get("items") {
            node.items = Some(Box::new(Node::build(items)));
        }
        node.additional = match schema.get("additionalProperties") {
            Some(Value::Bool(true)) => Some(Additional::Any),
            Some(Value::Object(child)) => Some(Additional::Schema(Box::new(Node::build(child)))),
            _ => None,
        };
        node
    }

    /// The schema of `additionalProperties`, when it is one (not `true`).
    pub(super) fn additional_schema(&self) -> Option<&Node> {
        match &self.additional {
            Some(Additional::Schema(n)) => Some(n),
            _ => None,
        }
    }

    /// Whether this node or one under it is an `x-kubernetes-embedded-resource`.
    pub(super) fn has_embedded(&self) -> bool {
        self.embedded
            || self.properties.values().any(Node::has_embedded)
            || self.items.as_deref().is_some_and(Node::has_embedded)
            || self.additional_schema().is_some_and(Node::has_embedded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(schema: Value) -> Node {
        Node::build(schema.as_object().expect("a schema object"))
    }

    #[test]
    fn a_node_keeps_its_flags_default_and_children() {
        let n = node(json!({
            "type": "object",
            "nullable": true,
            "default": {"a": 1},
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"a": {"type": "integer", "default": 1}},
        }));
        assert!(n.nullable && n.preserve_unknown && !n.embedded);
        assert_eq!(n.default, Some(json!({"a": 1})));
        assert_eq!(n.properties["a"].default, Some(json!(1)));
        assert!(n.items.is_none() && n.additional.is_none());
    }

    #[test]
    fn additional_properties_are_a_schema_or_anything() {
        let any = node(json!({"type": "object", "additionalProperties": true}));
        assert!(matches!(any.additional, Some(Additional::Any)));
        assert!(any.additional_schema().is_none());
        let typed = node(
            json!({"type": "object", "additionalProperties": {"type": "string", "default": "x"}}),
        );
        assert_eq!(
            typed.additional_schema().and_then(|n| n.default.clone()),
            Some(json!("x"))
        );
        let none = node(json!({"type": "object", "additionalProperties": false}));
        assert!(none.additional.is_none());
    }

    #[test]
    fn embedded_resources_are_found_at_any_depth() {
        assert!(
            !node(json!({"type": "object", "properties": {"a": {"type": "string"}}}))
                .has_embedded()
        );
        let deep = node(
            json!({"type": "object", "properties": {"list": {"type": "array", "items": {
                "type": "object", "additionalProperties": {"type": "object", "x-kubernetes-embedded-resource": true}
            }}}}),
        );
        assert!(deep.has_embedded());
        assert!(!deep.embedded);
    }
}
