//! Label and field selectors, parsed and matched as the Kubernetes API server does.
//!
//! # Label selectors
//!
//! Matching and the requirement model come from `kube-core`: [`kube_core::Selector`] /
//! [`kube_core::Expression`] already implement `=`, `!=`, `in`, `notin`, exists and
//! does-not-exist with Kubernetes semantics (`!=` and `notin` match objects that lack the key),
//! and convert a `metav1.LabelSelector`. What kube-core does **not** have is a parser for the
//! string form (`?labelSelector=`), nor the validation `labels.NewRequirement` does (qualified
//! key names, label values, non-empty `in` sets), nor the numeric `gt` / `lt` operators
//! (`key>5`, `key<5`) that `labels.Parse` accepts. Those are here: a port of the lexer and
//! parser in `k8s.io/apimachinery/pkg/labels/selector.go`, with the same error wording.
//!
//! # Field selectors
//!
//! A port of `k8s.io/apimachinery/pkg/fields` parsing (`=`, `==`, `!=`, `,`, and the `\,`
//! `\=` `\\` escapes in values) with the field set custom resources support: `metadata.name`
//! and `metadata.namespace` (anything else: `field label not supported: spec.x`, as the API
//! server answers). [`FieldSelector::parse_with_selectable_fields`] also accepts a CRD
//! version's `selectableFields` (Kubernetes 1.31+), given as their JSON paths.
//!
//! The files: `lexer` and `parser` (the string form of label selectors), `label`
//! ([`LabelSelector`]), `validation` (label keys and values), `field` ([`FieldSelector`]). Each
//! refusal is a typed error ([`LabelSelectorError`], [`FieldSelectorError`]) whose message is the
//! API server's.
//!
//! Not supported: set-based requirements in field selectors (Kubernetes has none either), and
//! field selectors on fields that are not strings, integers or booleans (they never match).

mod field;
mod label;
mod lexer;
mod parser;
mod validation;

use std::collections::BTreeMap;

use serde_json::Value;

pub use self::field::{FieldSelector, FieldSelectorError};
pub use self::label::{LabelSelector, LabelSelectorError, RequirementProblem};
pub use self::validation::{InvalidLabelKey, InvalidLabelValue, KeyProblem, ValueProblem};

/// A `metadata.labels` object as a map; values that are not strings are left out.
pub fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// An object's labels (`metadata.labels`) as a map: what a label selector matches.
pub fn object_labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .map(labels)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_that_are_not_strings_are_left_out() {
        let object = json!({"metadata": {"labels": {"a": "1", "b": 2, "c": null}}});
        assert_eq!(
            object_labels(&object),
            BTreeMap::from([("a".to_owned(), "1".to_owned())])
        );
        assert!(object_labels(&json!({"metadata": {}})).is_empty());
        assert!(labels(&json!("not a map")).is_empty());
    }
}
