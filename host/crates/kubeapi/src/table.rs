//! `kubectl get` asks for a `meta.k8s.io/v1` Table: rows with the columns a human wants. Name and
//! age for every kind, plus a CRD version's `additionalPrinterColumns` (simple `.a.b` JSON paths).

use serde_json::{Value, json};

use super::registry::Kind;

fn age(created: Option<&str>) -> String {
    let Some(created) = created.and_then(|c| c.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let seconds = jiff::Timestamp::now()
        .duration_since(created)
        .as_secs()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A printer column's value: its `jsonPath` (Kubernetes writes them without the leading `$`,
/// such as `.status.conditions[?(@.type=="Ready")].status`), evaluated as RFC 9535 JSONPath;
/// the first match, as kubectl shows it. A path that does not parse shows nothing.
fn column_value<'v>(object: &'v Value, path: &str) -> Option<&'v Value> {
    let path = if path.starts_with('$') {
        path.to_owned()
    } else {
        format!("${path}")
    };
    let path = serde_json_path::JsonPath::parse(&path).ok()?;
    path.query(object).first()
}

pub(super) fn table(kind: &Kind, items: &[Value], metadata: Value) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    let extra: Vec<&Value> = kind
        .columns
        .iter()
        .filter(|c| c.get("name").and_then(Value::as_str) != Some("Age"))
        .collect();
    for c in &extra {
        columns.push(json!({"name": c["name"], "type": c.get("type").cloned().unwrap_or(json!("string")), "format": "", "description": c.get("description").cloned().unwrap_or(json!("")), "priority": c.get("priority").cloned().unwrap_or(json!(0))}));
    }
    columns.push(json!({"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}));
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut cells = vec![item.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
            for c in &extra {
                let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or("");
                cells.push(column_value(item, path).cloned().unwrap_or(Value::Null));
            }
            cells.push(json!(age(item.pointer("/metadata/creationTimestamp").and_then(Value::as_str))));
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item.get("metadata")}})
        })
        .collect();
    // Built by moving the rows in: `json!` would serialize a second copy of them.
    let mut table = serde_json::Map::new();
    table.insert("kind".into(), "Table".into());
    table.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    table.insert("metadata".into(), metadata);
    table.insert("columnDefinitions".into(), Value::Array(columns));
    table.insert("rows".into(), Value::Array(rows));
    Value::Object(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_columns_evaluate_kubernetes_jsonpath_filters() {
        let bucket = json!({"spec": {"size": 3}, "status": {"conditions": [
            {"type": "Blocked", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(column_value(&bucket, ".spec.size"), Some(&json!(3)));
        assert_eq!(
            column_value(&bucket, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(&json!("True"))
        );
        assert_eq!(column_value(&bucket, ".status.missing"), None);
        assert_eq!(column_value(&bucket, "[[not a path"), None);
    }
}
