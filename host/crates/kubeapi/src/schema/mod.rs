//! Validation, defaulting and pruning of custom resources against a CRD version's
//! `openAPIV3Schema` (apiextensions.k8s.io/v1), with the API server's semantics and wording.
//!
//! A [`Schema`] is compiled once per CRD version. The API server's order for a write is
//! [`Schema::prune`] (drop unknown fields), [`Schema::apply_defaults`], then
//! [`Schema::validate`]; each is a pure function of the object.
//!
//! # How it works
//!
//! Validation uses the `jsonschema` crate (draft 4, the draft OpenAPI v3.0 schemas follow).
//! [`Schema::compile`] first checks the schema the way CRD admission would (structural rules,
//! forbidden keywords, regular expressions) and then translates the OpenAPI dialect to JSON
//! Schema: `nullable: true` adds `"null"` to `type` (and to `enum`),
//! `x-kubernetes-int-or-string: true` becomes `type: [integer, string]`, `format` is kept only
//! for the formats the API server checks (see below, each with a check that follows
//! `k8s.io/kube-openapi/pkg/validation/strfmt`), root `metadata` is reduced to its `name` and
//! `generateName` constraints, and the descriptive keywords and `x-kubernetes-*` extensions are
//! dropped. `pattern` uses the `regex` crate, which is RE2-like as Go's `regexp` is. Each
//! `jsonschema` error is then mapped to the `field.Error` the API server reports
//! (`kubeOpenAPIResultToFieldErrors` and go-openapi's wording), with a Kubernetes field path
//! (`spec.rules[0].host`).
//!
//! Each concern has its file: [`compile`] (the checks CRD admission makes, and the assembly),
//! `convert` (OpenAPI v3 to JSON Schema draft 4), `formats`, `validate` (jsonschema errors to
//! field errors), `embedded`, `default`, `prune`, over the skeleton in `structural` and the
//! errors of `field_error`.
//!
//! Defaulting and pruning need the structural skeleton (`properties`, `items`,
//! `additionalProperties`), which a JSON Schema validator does not expose, so they walk a small
//! tree built at compile time; they port `structuraldefaulting.Default`,
//! `PruneNonNullableNullsWithoutDefaults` and `structuralpruning.Prune`. Checks for
//! `x-kubernetes-embedded-resource` objects (`apiVersion` and `kind` present and well formed)
//! are done by the same walker, as the API server does them outside the OpenAPI validator.
//!
//! # Supported
//!
//! `type`, `properties`, `required`, `items`, `additionalProperties` (a schema, or `true`),
//! `enum`, `pattern`, `minimum` / `maximum` with boolean `exclusiveMinimum` /
//! `exclusiveMaximum`, `multipleOf`, `minLength` / `maxLength`, `minItems` / `maxItems`,
//! `uniqueItems`, `minProperties` / `maxProperties`, `nullable`, `default`, `format`, `allOf`,
//! `anyOf`, `oneOf`, `not`, `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`
//! and `x-kubernetes-embedded-resource`.
//!
//! Formats checked (others, e.g. `int32`, `int64`, `float`, `double`, are accepted as
//! annotations, as the API server does): `date-time` / `datetime`, `date`, `duration` (Go
//! durations and `5 days` forms), `email`, `hostname`, `ipv4`, `ipv6`, `cidr`, `mac`, `uri`,
//! `uuid`, `uuid3`, `uuid4`, `uuid5`, `byte` (base64), `bsonobjectid`, `hexcolor`, `rgbcolor`,
//! `ssn`, `isbn`, `isbn10`, `isbn13`, `creditcard`, `password` (anything).
//!
//! # Not supported
//!
//! - `x-kubernetes-validations` (CEL rules) are **not evaluated**: they are ignored.
//! - Ignored extensions: `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//!   `x-kubernetes-map-type` (so list-set / list-map uniqueness is not checked), and any other
//!   `x-kubernetes-*` not listed above.
//! - `metadata` is not validated as `ObjectMeta` here (name format, labels, annotations: that is
//!   the caller's job); of the root `metadata` schema only `name` and `generateName` constraints
//!   apply, as in Kubernetes. Metadata of embedded resources is not validated as `ObjectMeta`.
//! - Compile does not check that each `default` validates against its schema and is pruned, as
//!   CRD admission does; `default` inside `allOf` / `anyOf` / `oneOf` / `not` is ignored.
//! - `$ref` is rejected (CRDs forbid it), so nothing is ever resolved over a network.
//! - Errors under `anyOf` / `oneOf` report only the summary, not each branch's errors.
//! - Ratcheting (tolerating unchanged invalid values on update) is not done.

mod compile;
mod convert;
mod default;
mod embedded;
mod field_error;
#[cfg(test)]
mod fixtures;
mod formats;
mod prune;
mod structural;
mod validate;

use std::fmt;

use jsonschema::Validator;
use serde_json::Value;

pub use self::field_error::{FieldError, FieldErrorKind};
use self::structural::Node;

/// A CRD version's `openAPIV3Schema`, compiled once and used for every object of that version.
#[derive(Clone)]
pub struct Schema {
    root: Node,
    validator: Validator,
    has_embedded: bool,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// Check and compile an `openAPIV3Schema`. The error lists every problem found, each with
    /// its path in the schema (`openAPIV3Schema.properties[spec].type: ...`), joined by `; `.
    pub fn compile(open_api_v3_schema: &Value) -> Result<Schema, String> {
        compile::compile(open_api_v3_schema)
    }

    /// Structural defaulting, as the API server does it: a property's `default` is applied when
    /// the property is absent (or `null` and not `nullable`) in an object that exists, at every
    /// level (object properties, array items, `additionalProperties` values), including inside
    /// defaults just applied. A default under an absent parent is not applied. Root `metadata`
    /// is left alone.
    pub fn apply_defaults(&self, object: &mut Value) {
        default::default_value(object, &self.root, true);
    }

    /// Validate an object; an empty list means it is valid.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let mut errs: Vec<FieldError> = Vec::new();
        for e in self.validator.iter_errors(object) {
            let fe = validate::to_field_error(&e, object);
            if !errs.contains(&fe) {
                errs.push(fe);
            }
        }
        if self.has_embedded {
            embedded::check_embedded(object, &self.root, "", true, &mut errs);
        }
        errs
    }

    /// Drop fields the schema does not know, unless a node has
    /// `x-kubernetes-preserve-unknown-fields: true` (then its unknown fields stay, and its
    /// known ones are still pruned inside). Root `apiVersion`, `kind` and `metadata` are always
    /// kept (and `metadata` is not looked into); so are `apiVersion` / `kind` strings and a
    /// `metadata` object of `x-kubernetes-embedded-resource` objects. Also removes `null`
    /// values of properties that are neither `nullable` nor defaulted, as the API server does.
    pub fn prune(&self, object: &mut Value) {
        prune::prune_value(object, Some(&self.root), true);
        prune::prune_nulls(object, &self.root, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Schema>();
    }

    #[test]
    fn a_write_is_pruned_defaulted_then_validated() {
        let schema = fixtures::compile(&fixtures::widget_schema());
        let mut object = fixtures::widget(json!({"image": "nginx", "bogus": 1, "replicas": null}));
        schema.prune(&mut object);
        schema.apply_defaults(&mut object);
        assert_eq!(
            object["spec"],
            json!({"image": "nginx", "replicas": 1, "mode": "a"})
        );
        assert!(schema.validate(&object).is_empty());
        assert!(format!("{schema:?}").starts_with("Schema { root: Node"));
    }
}
