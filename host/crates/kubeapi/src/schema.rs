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

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use base64::Engine as _;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, PatternOptions, ValidationError, Validator};
use regex::Regex;
use serde_json::{Map, Value};

// ------------------------------------------------------------------------------------------
// Field errors
// ------------------------------------------------------------------------------------------

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
    fn required(field: String, detail: &str) -> FieldError {
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

    fn invalid(field: String, kind: FieldErrorKind, value: Value, detail: &str) -> FieldError {
        let body = format!("Invalid value: {}: {detail}", go_value(&value));
        FieldError {
            message: with_field(&field, body),
            field,
            kind,
            value: Some(value),
        }
    }

    fn not_supported(field: String, value: Value, supported: &[String]) -> FieldError {
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

    fn too_long(field: String, value: Value, max: u64) -> FieldError {
        let unit = if max == 1 { "byte" } else { "bytes" };
        let body = format!("Too long: may not be more than {max} {unit}");
        FieldError {
            message: with_field(&field, body),
            field,
            kind: FieldErrorKind::TooLong,
            value: Some(value),
        }
    }

    fn too_many(field: String, actual: usize, max: u64) -> FieldError {
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

/// Go's `%q` (close enough: JSON string escaping).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// How `field.Error` prints a bad value: strings quoted, scalars bare, the rest as JSON.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Number(_) => go_number(v),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// Go's `%v` of a JSON number: `3`, not `3.0`.
fn go_number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if !v.is_i64() && !v.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
            format!("{}", f as i64)
        }
        _ => v.to_string(),
    }
}

fn go_f64(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// go-openapi's name for a value's type.
fn type_name(v: &Value) -> &'static str {
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

// ------------------------------------------------------------------------------------------
// The compiled schema
// ------------------------------------------------------------------------------------------

/// The structural skeleton of a schema node: what defaulting and pruning walk.
#[derive(Debug, Clone, Default)]
struct Node {
    properties: BTreeMap<String, Node>,
    additional: Option<Additional>,
    items: Option<Box<Node>>,
    default: Option<Value>,
    nullable: bool,
    preserve_unknown: bool,
    embedded: bool,
}

#[derive(Debug, Clone)]
enum Additional {
    /// `additionalProperties: true`: any value, kept as it is.
    Any,
    Schema(Box<Node>),
}

impl Node {
    fn build(schema: &Map<String, Value>) -> Node {
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

    fn additional_schema(&self) -> Option<&Node> {
        match &self.additional {
            Some(Additional::Schema(n)) => Some(n),
            _ => None,
        }
    }

    fn has_embedded(&self) -> bool {
        self.embedded
            || self.properties.values().any(Node::has_embedded)
            || self.items.as_deref().is_some_and(Node::has_embedded)
            || self.additional_schema().is_some_and(Node::has_embedded)
    }
}

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

    /// Structural defaulting, as the API server does it: a property's `default` is applied when
    /// the property is absent (or `null` and not `nullable`) in an object that exists, at every
    /// level (object properties, array items, `additionalProperties` values), including inside
    /// defaults just applied. A default under an absent parent is not applied. Root `metadata`
    /// is left alone.
    pub fn apply_defaults(&self, object: &mut Value) {
        default_value(object, &self.root, true);
    }

    /// Validate an object; an empty list means it is valid.
    pub fn validate(&self, object: &Value) -> Vec<FieldError> {
        let mut errs: Vec<FieldError> = Vec::new();
        for e in self.validator.iter_errors(object) {
            let fe = to_field_error(&e, object);
            if !errs.contains(&fe) {
                errs.push(fe);
            }
        }
        if self.has_embedded {
            check_embedded(object, &self.root, "", true, &mut errs);
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
        prune_value(object, Some(&self.root), true);
        prune_nulls(object, &self.root, true);
    }
}

// ------------------------------------------------------------------------------------------
// Compile-time checks (what CRD admission would reject)
// ------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------
// OpenAPI v3 -> JSON Schema draft 4
// ------------------------------------------------------------------------------------------

/// Keywords copied as they are: draft 4 means the same by them as OpenAPI v3.0 does.
const COPIED: [&str; 16] = [
    "type",
    "enum",
    "required",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

fn convert(schema: &Map<String, Value>, root: bool) -> Value {
    let mut out = Map::new();
    for (k, v) in schema {
        match k.as_str() {
            "properties" => {
                let Value::Object(props) = v else { continue };
                let mut converted = Map::new();
                for (name, child) in props {
                    let Value::Object(child) = child else {
                        continue;
                    };
                    let c = if root && name == "metadata" {
                        convert_root_metadata(child)
                    } else {
                        convert(child, false)
                    };
                    converted.insert(name.clone(), c);
                }
                out.insert(k.clone(), Value::Object(converted));
            }
            "items" | "not" => {
                if let Value::Object(child) = v {
                    out.insert(k.clone(), convert(child, false));
                }
            }
            "additionalProperties" => match v {
                Value::Object(child) => {
                    out.insert(k.clone(), convert(child, false));
                }
                Value::Bool(_) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => {}
            },
            "allOf" | "anyOf" | "oneOf" => {
                if let Value::Array(list) = v {
                    let converted: Vec<Value> = list
                        .iter()
                        .filter_map(Value::as_object)
                        .map(|c| convert(c, false))
                        .collect();
                    out.insert(k.clone(), Value::Array(converted));
                }
            }
            "format" => {
                if let Value::String(f) = v
                    && FORMATS.iter().any(|(name, _)| name == f)
                {
                    out.insert(k.clone(), v.clone());
                }
            }
            key if COPIED.contains(&key) => {
                out.insert(k.clone(), v.clone());
            }
            // nullable, default, description, title, example, externalDocs, x-kubernetes-*, ...
            _ => {}
        }
    }
    let flag = |k: &str| schema.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") {
        out.insert("type".into(), serde_json::json!(["integer", "string"]));
    }
    if flag("nullable") {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
                types.push(Value::from("null"));
            }
            _ => {}
        }
        if let Some(Value::Array(options)) = out.get_mut("enum")
            && !options.contains(&Value::Null)
        {
            options.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// Root `metadata`: only `name` and `generateName` constraints apply (the rest is ObjectMeta's
/// business, validated elsewhere).
fn convert_root_metadata(schema: &Map<String, Value>) -> Value {
    let mut props = Map::new();
    if let Some(Value::Object(p)) = schema.get("properties") {
        for name in ["name", "generateName"] {
            if let Some(Value::Object(child)) = p.get(name) {
                props.insert(name.to_string(), convert(child, false));
            }
        }
    }
    serde_json::json!({ "properties": props })
}

// ------------------------------------------------------------------------------------------
// jsonschema errors -> field errors
// ------------------------------------------------------------------------------------------

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

fn join_field(path: &str, child: &str) -> String {
    if path.is_empty() {
        child.to_string()
    } else {
        format!("{path}.{child}")
    }
}

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

fn to_field_error(e: &ValidationError<'_>, root: &Value) -> FieldError {
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

// ------------------------------------------------------------------------------------------
// Embedded resources
// ------------------------------------------------------------------------------------------

fn check_embedded(x: &Value, s: &Node, path: &str, root: bool, errs: &mut Vec<FieldError>) {
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

// ------------------------------------------------------------------------------------------
// Defaulting and pruning
// ------------------------------------------------------------------------------------------

fn is_non_nullable_null(v: &Value, s: &Node) -> bool {
    v.is_null() && !s.nullable
}

/// `structuraldefaulting.Default`.
fn default_value(x: &mut Value, s: &Node, root: bool) {
    match x {
        Value::Object(map) => {
            for (k, prop) in &s.properties {
                if root && k == "metadata" {
                    continue;
                }
                let Some(default) = &prop.default else {
                    continue;
                };
                let missing = match map.get(k) {
                    None => true,
                    Some(v) => is_non_nullable_null(v, prop),
                };
                if missing {
                    map.insert(k.clone(), default.clone());
                }
            }
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    default_value(v, prop, false);
                } else if let Some(add) = s.additional_schema() {
                    if is_non_nullable_null(v, add)
                        && let Some(default) = &add.default
                    {
                        *v = default.clone();
                    }
                    default_value(v, add, false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for v in list.iter_mut() {
                    if is_non_nullable_null(v, items)
                        && let Some(default) = &items.default
                    {
                        *v = default.clone();
                    }
                    default_value(v, items, false);
                }
            }
        }
        _ => {}
    }
}

/// Fields that pruning never drops: at the resource root, `apiVersion`, `kind` and `metadata`;
/// in an embedded resource, `apiVersion` / `kind` strings and a `metadata` object.
fn kept_resource_field(k: &str, v: &Value, root: bool, embedded: bool) -> bool {
    if root && matches!(k, "apiVersion" | "kind" | "metadata") {
        return true;
    }
    embedded
        && match k {
            "apiVersion" | "kind" => v.is_string(),
            "metadata" => v.is_object(),
            _ => false,
        }
}

/// `structuralpruning.prune`.
fn prune_value(x: &mut Value, s: Option<&Node>, root: bool) {
    if let Some(s) = s
        && s.preserve_unknown
    {
        skip_prune(x, s, root);
        return;
    }
    match x {
        Value::Object(map) => {
            let Some(s) = s else {
                map.clear();
                return;
            };
            map.retain(|k, v| {
                if kept_resource_field(k, v, root, s.embedded) {
                    return true;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune_value(v, Some(prop), false);
                    return true;
                }
                match &s.additional {
                    Some(Additional::Any) => true,
                    Some(Additional::Schema(n)) => {
                        prune_value(v, Some(n), false);
                        true
                    }
                    None => false,
                }
            });
        }
        Value::Array(list) => {
            let items = s.and_then(|s| s.items.as_deref());
            for v in list.iter_mut() {
                prune_value(v, items, false);
            }
        }
        _ => {}
    }
}

/// `structuralpruning.skipPrune`: unknown fields stay, known ones are pruned inside.
fn skip_prune(x: &mut Value, s: &Node, root: bool) {
    match x {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if kept_resource_field(k, v, root, s.embedded) {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune_value(v, Some(prop), false);
                } else if let Some(n) = s.additional_schema() {
                    prune_value(v, Some(n), false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for v in list.iter_mut() {
                    skip_prune(v, items, false);
                }
            }
        }
        _ => {}
    }
}

/// `structuraldefaulting.PruneNonNullableNullsWithoutDefaults`.
fn prune_nulls(x: &mut Value, s: &Node, root: bool) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| {
                if root && k == "metadata" {
                    return true;
                }
                !(v.is_null()
                    && s.properties
                        .get(k)
                        .is_some_and(|p| !p.nullable && p.default.is_none()))
            });
            for (k, v) in map.iter_mut() {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(prop) = s.properties.get(k) {
                    prune_nulls(v, prop, false);
                } else if let Some(n) = s.additional_schema() {
                    prune_nulls(v, n, false);
                }
            }
        }
        Value::Array(list) => {
            if let Some(items) = &s.items {
                for v in list.iter_mut() {
                    prune_nulls(v, items, false);
                }
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------------------------------
// Formats (k8s.io/kube-openapi/pkg/validation/strfmt)
// ------------------------------------------------------------------------------------------

type FormatCheck = fn(&str) -> bool;

/// The formats the API server validates, each with its check. Any other `format` is an
/// annotation only.
const FORMATS: &[(&str, FormatCheck)] = &[
    ("bsonobjectid", is_bson_object_id),
    ("uri", is_uri),
    ("email", is_email),
    ("hostname", is_hostname),
    ("ipv4", is_ipv4),
    ("ipv6", is_ipv6),
    ("cidr", is_cidr),
    ("mac", is_mac),
    ("uuid", is_uuid),
    ("uuid3", is_uuid3),
    ("uuid4", is_uuid4),
    ("uuid5", is_uuid5),
    ("isbn", is_isbn),
    ("isbn10", is_isbn10),
    ("isbn13", is_isbn13),
    ("creditcard", is_credit_card),
    ("ssn", is_ssn),
    ("hexcolor", is_hex_color),
    ("rgbcolor", is_rgb_color),
    ("byte", is_base64),
    ("password", is_anything),
    ("date", is_date),
    ("duration", is_duration),
    ("datetime", is_date_time),
    ("date-time", is_date_time),
];

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in format pattern compiles")
}

static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static HEX_COLOR: LazyLock<Regex> = LazyLock::new(|| re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR: LazyLock<Regex> = LazyLock::new(|| {
    let c = r"(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])";
    re(&format!(r"^rgb\(\s*{c}\s*,\s*{c}\s*,\s*{c}\s*\)$"))
});
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| re(r"^(\d{4})-(\d{2})-(\d{2})$"));
static DURATION_WORDS: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+)\s*([A-Za-zµ]+)"));

fn is_anything(_: &str) -> bool {
    true
}

fn is_bson_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lenient, as Go's `url.Parse`: no control characters, well-formed `%` escapes.
fn is_uri(s: &str) -> bool {
    if s.chars().any(|c| c.is_control()) {
        return false;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// As Go's `mail.ParseAddress`, roughly: `local@domain`, optionally as `Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s.trim(),
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn is_hostname(s: &str) -> bool {
    HOSTNAME.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

fn is_ipv6(s: &str) -> bool {
    s.contains(':') && s.parse::<IpAddr>().is_ok()
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else if ip.parse::<Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx..`, `xx-xx..` or `xxxx.xxxx..`.
fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let octets_ok = |n: usize| matches!(n, 6 | 8 | 20);
    if s.contains(':') || s.contains('-') {
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        octets_ok(parts.len()) && parts.iter().all(|p| hex(p, 2))
    } else if s.contains('.') {
        let parts: Vec<&str> = s.split('.').collect();
        octets_ok(parts.len() * 2) && parts.iter().all(|p| hex(p, 4))
    } else {
        false
    }
}

fn is_uuid(s: &str) -> bool {
    UUID.is_match(s)
}
fn is_uuid3(s: &str) -> bool {
    UUID3.is_match(s)
}
fn is_uuid4(s: &str) -> bool {
    UUID4.is_match(s)
}
fn is_uuid5(s: &str) -> bool {
    UUID5.is_match(s)
}

fn strip_dashes_spaces(s: &str) -> String {
    s.chars().filter(|c| *c != '-' && *c != ' ').collect()
}

fn is_isbn10(s: &str) -> bool {
    let s = strip_dashes_spaces(s);
    let b = s.as_bytes();
    if b.len() != 10
        || !b[..9].iter().all(u8::is_ascii_digit)
        || !(b[9].is_ascii_digit() || b[9] == b'X')
    {
        return false;
    }
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let d = if *c == b'X' { 10 } else { u32::from(c - b'0') };
            (i as u32 + 1) * d
        })
        .sum();
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let s = strip_dashes_spaces(s);
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    sum.is_multiple_of(10)
}

fn is_isbn(s: &str) -> bool {
    is_isbn10(s) || is_isbn13(s)
}

/// Luhn over 12 to 19 digits (dashes and spaces ignored).
fn is_credit_card(s: &str) -> bool {
    let s = strip_dashes_spaces(s);
    if !(12..=19).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_ssn(s: &str) -> bool {
    SSN.is_match(s)
}
fn is_hex_color(s: &str) -> bool {
    HEX_COLOR.is_match(s)
}
fn is_rgb_color(s: &str) -> bool {
    RGB_COLOR.is_match(s)
}

fn is_base64(s: &str) -> bool {
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .is_ok()
}

fn valid_ymd(y: &str, m: &str, d: &str) -> bool {
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn is_date(s: &str) -> bool {
    DATE.captures(s)
        .is_some_and(|c| valid_ymd(&c[1], &c[2], &c[3]))
}

/// RFC 3339 and the ISO 8601 variants strfmt's `ParseDateTime` accepts (no zone = local time,
/// minutes-only precision, `+hhmm` zones).
fn is_date_time(s: &str) -> bool {
    let Some(c) = DATE_TIME.captures(s) else {
        return false;
    };
    let num = |i: usize| c.get(i).map_or(Some(0), |m| m.as_str().parse::<u32>().ok());
    if !valid_ymd(&c[1], &c[2], &c[3]) {
        return false;
    }
    matches!((num(4), num(5), num(7)), (Some(h), Some(m), Some(sec)) if h < 24 && m < 60 && sec < 60)
        && c.get(9).is_none_or(|z| {
            let z = z.as_str();
            if z == "Z" {
                return true;
            }
            let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
            digits.len() == 4
                && digits[..2].parse::<u32>().is_ok_and(|h| h < 24)
                && digits[2..].parse::<u32>().is_ok_and(|m| m < 60)
        })
}

/// Go's `time.ParseDuration` grammar: `[-+]` then `(number unit)+`, or `0`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// strfmt's `ParseDuration`: a Go duration, or any `<n> <unit>` run with a known unit
/// (`5 days`, `2 weeks`, `10min`).
fn is_duration(s: &str) -> bool {
    if is_go_duration(s) {
        return true;
    }
    const UNITS: [&[&str]; 8] = [
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    DURATION_WORDS.captures_iter(s).any(|c| {
        let unit = c[2].to_lowercase();
        UNITS.iter().any(|variants| {
            let last = variants.len() - 1;
            variants
                .iter()
                .enumerate()
                .any(|(i, v)| (i == last && unit.starts_with(v)) || unit == *v)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CRD-like schema exercising most keywords.
    fn widget_schema() -> Value {
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

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})
    }

    fn compile(schema: &Value) -> Schema {
        Schema::compile(schema).unwrap_or_else(|e| panic!("schema should compile: {e}"))
    }

    #[test]
    fn schema_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Schema>();
    }

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
    fn root_metadata_only_name_constraints_apply() {
        let schema = compile(&widget_schema());
        let mut obj = widget(json!({"image": "nginx"}));
        obj["metadata"] = json!({"name": "w", "labels": {"a": "b"}, "whatever": 1});
        assert!(schema.validate(&obj).is_empty());
        obj["metadata"]["name"] = json!("much-too-long-a-name");
        let errs = schema.validate(&obj);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].field, "metadata.name");
        assert_eq!(errs[0].kind, FieldErrorKind::TooLong);
    }

    #[test]
    fn formats_table() {
        // (format, valid, invalid)
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "date-time",
                &[
                    "2024-01-02T03:04:05Z",
                    "2024-01-02T03:04:05.123+02:00",
                    "2024-02-29T00:00:00Z",
                    "2024-01-02T03:04:05",
                ],
                &[
                    "2024-01-02",
                    "2023-02-29T00:00:00Z",
                    "2024-01-02T25:00:00Z",
                    "x",
                ],
            ),
            ("date", &["2024-01-31"], &["2024-04-31", "2024-1-1"]),
            (
                "duration",
                &["1h30m", "-5s", "0", "300ms", "3 days", "2weeks"],
                &["", "5", "abc", "1x"],
            ),
            (
                "email",
                &["a@b.com", "Joe <joe@x.org>"],
                &["a", "@b", "a@", "a b@c"],
            ),
            (
                "hostname",
                &["example.com", "a", "my-host.internal"],
                &["-a", "a_b.com", "a..b"],
            ),
            ("ipv4", &["10.0.0.1"], &["10.0.0", "::1", "256.1.1.1"]),
            (
                "ipv6",
                &["::1", "fe80::1", "::ffff:1.2.3.4"],
                &["1.2.3.4", "x::"],
            ),
            (
                "cidr",
                &["10.0.0.0/8", "fd00::/64"],
                &["10.0.0.0", "10.0.0.0/33"],
            ),
            (
                "mac",
                &["00:11:22:33:44:55", "00-11-22-33-44-55", "0011.2233.4455"],
                &["00:11:22", "zz:11:22:33:44:55"],
            ),
            (
                "uuid",
                &["123e4567-e89b-12d3-a456-426614174000"],
                &["123e4567"],
            ),
            (
                "uuid4",
                &["123e4567-e89b-42d3-a456-426614174000"],
                &["123e4567-e89b-12d3-a456-426614174000"],
            ),
            ("byte", &["aGVsbG8=", ""], &["not base64!"]),
            ("hexcolor", &["#fff", "a0b1c2"], &["#ffff"]),
            ("rgbcolor", &["rgb(0, 128, 255)"], &["rgb(256,0,0)"]),
            ("isbn", &["0306406152", "978-0306406157"], &["0306406153"]),
            (
                "uri",
                &["https://example.com/a?b=c", "relative/path"],
                &["http://x/%zz"],
            ),
            ("int32", &["anything"], &[]), // not checked by the API server
            ("password", &["anything"], &[]),
        ];
        for (format, good, bad) in cases {
            let schema = compile(
                &json!({"type": "object", "properties": {"v": {"type": "string", "format": format}}}),
            );
            for v in *good {
                let errs = schema.validate(&json!({"v": v}));
                assert!(errs.is_empty(), "{format}: {v:?} should be valid: {errs:?}");
            }
            for v in *bad {
                let errs = schema.validate(&json!({"v": v}));
                assert_eq!(errs.len(), 1, "{format}: {v:?} should be invalid");
            }
        }
    }

    #[test]
    fn defaults_table() {
        let schema = compile(&widget_schema());
        // (input spec, expected spec after defaulting)
        let cases: &[(Value, Value)] = &[
            (
                json!({"image": "x"}),
                json!({"image": "x", "replicas": 1, "mode": "a"}),
            ),
            // present values win
            (
                json!({"image": "x", "replicas": 3, "mode": "b"}),
                json!({"image": "x", "replicas": 3, "mode": "b"}),
            ),
            // nested: defaults apply inside an object that exists, not under an absent parent
            (
                json!({"image": "x", "limits": {}}),
                json!({"image": "x", "replicas": 1, "mode": "a", "limits": {"cpu": "100m"}}),
            ),
            (
                json!({"image": "x", "limits": {"nested": {}}}),
                json!({"image": "x", "replicas": 1, "mode": "a", "limits": {"cpu": "100m", "nested": {"deep": 7}}}),
            ),
            // arrays: each item is defaulted
            (
                json!({"image": "x", "rules": [{"host": "a", "paths": [{}, {"path": "/b"}]}]}),
                json!({"image": "x", "replicas": 1, "mode": "a", "rules": [{"host": "a", "paths": [{"path": "/"}, {"path": "/b"}]}]}),
            ),
            // null for a non-nullable defaulted field takes the default
            (
                json!({"image": "x", "replicas": null}),
                json!({"image": "x", "replicas": 1, "mode": "a"}),
            ),
        ];
        for (spec, want) in cases {
            let mut obj = widget(spec.clone());
            schema.apply_defaults(&mut obj);
            assert_eq!(obj["spec"], *want, "defaulting {spec}");
            assert_eq!(obj["metadata"], json!({"name": "w"}));
        }
        // no spec at all: nothing under it is defaulted
        let mut obj = json!({"apiVersion": "v1", "kind": "Widget", "metadata": {}});
        schema.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Widget", "metadata": {}})
        );
    }

    #[test]
    fn defaults_in_additional_properties_and_of_objects() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "pools": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "default": 3}}
                            }
                        },
                        "shared": {"type": "object", "default": {"list": [1]}, "properties": {"list": {"type": "array", "items": {"type": "integer"}}, "on": {"type": "boolean", "default": true}}}
                    }
                }
            }
        }));
        let mut obj = json!({"spec": {"pools": {"a": {}, "b": {"size": 1}}}});
        schema.apply_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"pools": {"a": {"size": 3}, "b": {"size": 1}}, "shared": {"list": [1], "on": true}}})
        );
        // the default is a deep copy: changing one object does not change the next
        obj["spec"]["shared"]["list"][0] = json!(99);
        let mut other = json!({});
        schema.apply_defaults(&mut other);
        assert_eq!(
            other,
            json!({"spec": {"shared": {"list": [1], "on": true}}})
        );
    }

    #[test]
    fn prune_table() {
        let schema = compile(&widget_schema());
        // (input, expected after pruning)
        let cases: &[(Value, Value)] = &[
            // unknown fields go, at every level; apiVersion/kind/metadata stay as they are
            (
                json!({"apiVersion": "v1", "kind": "W", "metadata": {"name": "w", "x": 1}, "extra": 1,
                       "spec": {"image": "i", "bogus": true, "rules": [{"host": "h", "nope": 1, "paths": [{"path": "/", "zz": 0}]}]},
                       "status": {"ready": true, "gone": 1}}),
                json!({"apiVersion": "v1", "kind": "W", "metadata": {"name": "w", "x": 1},
                       "spec": {"image": "i", "rules": [{"host": "h", "paths": [{"path": "/"}]}]},
                       "status": {"ready": true}}),
            ),
            // additionalProperties keeps every key
            (
                json!({"spec": {"labels": {"a": "1", "b": "2"}}}),
                json!({"spec": {"labels": {"a": "1", "b": "2"}}}),
            ),
            // preserve-unknown-fields keeps unknowns, but prunes inside known properties
            (
                json!({"spec": {"raw": {"anything": {"deep": [1, {"x": 2}]}, "known": {"x": "1", "y": 2}}}}),
                json!({"spec": {"raw": {"anything": {"deep": [1, {"x": 2}]}, "known": {"x": "1"}}}}),
            ),
            // embedded resources keep apiVersion/kind/metadata (and here everything: preserve)
            (
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1}}}}),
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1}}}}),
            ),
            // null in a non-nullable, non-defaulted field is dropped; nullable or defaulted stay
            (
                json!({"spec": {"image": null, "note": null, "replicas": null}}),
                json!({"spec": {"note": null, "replicas": null}}),
            ),
        ];
        for (input, want) in cases {
            let mut obj = input.clone();
            schema.prune(&mut obj);
            assert_eq!(obj, *want, "pruning {input}");
        }
    }

    #[test]
    fn preserve_unknown_fields_at_the_root_and_embedded_without_preserve() {
        let schema = compile(&json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {
                "spec": {"type": "object", "properties": {
                    "obj": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"data": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
                }}
            }
        }));
        let mut obj = json!({"anything": 1, "spec": {"drop": 1, "obj": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "other": 1}}});
        schema.prune(&mut obj);
        assert_eq!(
            obj,
            json!({"anything": 1, "spec": {"obj": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}}})
        );
        assert!(schema.validate(&obj).is_empty());
    }

    #[test]
    fn int_or_string_with_any_of_pattern() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "maxUnavailable": {
                    "x-kubernetes-int-or-string": true,
                    "anyOf": [{"type": "integer"}, {"type": "string", "pattern": "^[0-9]+%$"}]
                }
            }
        }));
        for ok in [json!(1), json!("25%")] {
            assert!(
                schema.validate(&json!({"maxUnavailable": ok})).is_empty(),
                "{ok}"
            );
        }
        let errs = schema.validate(&json!({"maxUnavailable": "lots"}));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(
            errs[0].message,
            r#"maxUnavailable: Invalid value: "lots": maxUnavailable in body must validate at least one schema (anyOf)"#
        );
    }

    #[test]
    fn nullable_objects_and_arrays() {
        let schema = compile(&json!({
            "type": "object",
            "properties": {
                "a": {"type": "object", "nullable": true, "properties": {"x": {"type": "string"}}},
                "b": {"type": "array", "nullable": true, "items": {"type": "string"}},
                "c": {"type": "array", "items": {"type": "string", "nullable": true}},
                "d": {"type": "array", "items": {"type": "string"}}
            }
        }));
        assert!(
            schema
                .validate(&json!({"a": null, "b": null, "c": ["x", null]}))
                .is_empty()
        );
        let errs = schema.validate(&json!({"d": ["x", null]}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "d[1]");
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
    fn duration_parsing() {
        for ok in ["1h", "1.5h", "2h45m", "1µs", "+3s"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["h", "1", "1.2.3s", "1hh"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }
}
