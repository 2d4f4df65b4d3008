//! Field selectors, a port of `k8s.io/apimachinery/pkg/fields` parsing (`=`, `==`, `!=`, `,`,
//! and the `\,` `\=` `\\` escapes in values) with the fields custom resources can be
//! selected by: `metadata.name`, `metadata.namespace` and a CRD version's `selectableFields`.

use std::fmt;

use serde_json::Value;

/// Why a field selector was refused, worded as the API server words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term with no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    NoOperator { selector: String, term: String },
    /// A backslash before something other than a backslash, `,` or `=` (`None`: at the end).
    #[error(
        "invalid field selector: invalid escape sequence: \\{}",
        .0.map(String::from).unwrap_or_default()
    )]
    InvalidEscape(Option<char>),
    /// A `,` or `=` in a value that is not escaped.
    #[error("invalid field selector: unescaped character in value: {0}")]
    Unescaped(char),
    /// A field that cannot be selected on.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// The fields every custom resource can be selected by.
const DEFAULT_FIELDS: [&str; 2] = ["metadata.name", "metadata.namespace"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// A parsed field selector: every term must hold. Empty selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parse `metadata.name=x,metadata.namespace!=y` (also `==`). Only `metadata.name` and
    /// `metadata.namespace` may be selected on: anything else is
    /// `field label not supported: <field>`, as the API server answers for custom resources.
    pub fn parse(s: &str) -> Result<FieldSelector, FieldSelectorError> {
        Self::parse_with_selectable_fields(s, &[])
    }

    /// [`FieldSelector::parse`] that also accepts a CRD version's `selectableFields`, each
    /// given as its JSON path (`.spec.color` or `spec.color`).
    pub fn parse_with_selectable_fields(
        s: &str,
        selectable: &[String],
    ) -> Result<FieldSelector, FieldSelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(&part) else {
                return Err(FieldSelectorError::NoOperator {
                    selector: s.to_owned(),
                    term: part,
                });
            };
            let value = unescape_value(rhs)?;
            let supported = DEFAULT_FIELDS.contains(&lhs)
                || selectable
                    .iter()
                    .any(|f| f.strip_prefix('.').unwrap_or(f) == lhs);
            if !supported {
                return Err(FieldSelectorError::UnsupportedField(lhs.to_owned()));
            }
            terms.push(FieldTerm {
                field: lhs.to_string(),
                value,
                equal: op != "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether every term holds for this object. A field that is absent reads as `""`.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(object, &t.field);
            (actual.as_deref() == Some(t.value.as_str())) == t.equal
        })
    }

    /// Whether this selector has no terms (and so selects everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.equal { "=" } else { "!=" };
            let escaped = t
                .value
                .replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=");
            write!(f, "{}{op}{escaped}", t.field)?;
        }
        Ok(())
    }
}

/// The value of a dotted field path, as a field selector compares it: strings as they are,
/// integers and booleans in their JSON form, absent or null as `""`. Objects and arrays have
/// no field value (`None`), so they match no `=` and every `!=`.
fn field_value(object: &Value, path: &str) -> Option<String> {
    let mut cur = object;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return Some(String::new()),
        }
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `fields.splitTerms`: split on commas that are not escaped.
fn split_terms(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    terms.push(current);
    terms
}

/// `fields.splitTerm`: the first operator (`!=`, `==`, `=`, tried in that order at each
/// position) splits field from value.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`.
fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(FieldSelectorError::InvalidEscape(Some(c)));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(FieldSelectorError::Unescaped(c));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscape(None));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selector_matching_table() {
        let obj = json!({"metadata": {"name": "web", "namespace": "prod"}, "spec": {"color": "red", "size": 3}});
        let cluster = json!({"metadata": {"name": "node-1"}});
        // (selector, object, expected)
        let cases: &[(&str, &Value, bool)] = &[
            ("", &obj, true),
            ("metadata.name=web", &obj, true),
            ("metadata.name==web", &obj, true),
            ("metadata.name=db", &obj, false),
            ("metadata.name!=db", &obj, true),
            ("metadata.name!=web", &obj, false),
            ("metadata.namespace=prod", &obj, true),
            ("metadata.name=web,metadata.namespace=prod", &obj, true),
            ("metadata.name=web,metadata.namespace!=prod", &obj, false),
            ("metadata.namespace=", &cluster, true), // cluster-scoped: namespace is ""
            ("metadata.namespace!=prod", &cluster, true),
            ("metadata.name=node-1", &cluster, true),
        ];
        for (selector, object, expected) in cases {
            let sel = FieldSelector::parse(selector)
                .unwrap_or_else(|e| panic!("{selector:?} should parse: {e}"));
            assert_eq!(
                sel.matches(object),
                *expected,
                "{selector:?} against {object}"
            );
        }
    }

    #[test]
    fn field_selector_escapes() {
        let obj = json!({"metadata": {"name": "a,b=c\\d"}});
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
        assert!(sel.matches(&obj));
        assert_eq!(sel.to_string(), r"metadata.name=a\,b\=c\\d");
    }

    #[test]
    fn field_selector_errors_table() {
        let cases: &[(&str, &str)] = &[
            ("spec.x=1", "field label not supported: spec.x"),
            (
                "status.phase!=Running",
                "field label not supported: status.phase",
            ),
            (
                "metadata.name",
                "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            ),
            (
                "metadata.name=a=b",
                "invalid field selector: unescaped character in value: =",
            ),
            (
                r"metadata.name=a\x",
                r"invalid field selector: invalid escape sequence: \x",
            ),
            (
                r"metadata.name=a\",
                r"invalid field selector: invalid escape sequence: \",
            ),
        ];
        for (selector, want) in cases {
            match FieldSelector::parse(selector) {
                Ok(s) => panic!("{selector:?} should fail, got {s:?}"),
                Err(e) => assert_eq!(e.to_string(), *want, "{selector:?}"),
            }
        }
    }

    #[test]
    fn field_selector_selectable_fields() {
        let obj =
            json!({"metadata": {"name": "a"}, "spec": {"color": "red", "size": 3, "on": true}});
        let fields = vec![
            ".spec.color".to_string(),
            "spec.size".to_string(),
            ".spec.on".to_string(),
        ];
        let cases: &[(&str, bool)] = &[
            ("spec.color=red", true),
            ("spec.color=blue", false),
            ("spec.size=3", true),
            ("spec.on=true", true),
            ("spec.color!=blue,metadata.name=a", true),
        ];
        for (selector, expected) in cases {
            let sel = FieldSelector::parse_with_selectable_fields(selector, &fields).unwrap();
            assert_eq!(sel.matches(&obj), *expected, "{selector:?}");
        }
        assert_eq!(
            FieldSelector::parse_with_selectable_fields("spec.other=1", &fields)
                .unwrap_err()
                .to_string(),
            "field label not supported: spec.other"
        );
    }

    #[test]
    fn errors_are_typed() {
        let cases = [
            (
                "a",
                FieldSelectorError::NoOperator {
                    selector: "a".into(),
                    term: "a".into(),
                },
            ),
            (
                "spec.x=1",
                FieldSelectorError::UnsupportedField("spec.x".into()),
            ),
            (
                r"metadata.name=a\x",
                FieldSelectorError::InvalidEscape(Some('x')),
            ),
            (r"metadata.name=a\", FieldSelectorError::InvalidEscape(None)),
            ("metadata.name=a\\,=b", FieldSelectorError::Unescaped('=')),
            // `=b` splits into an empty field and `b`: not a field that can be selected on.
            (
                "metadata.name=a,=b",
                FieldSelectorError::UnsupportedField(String::new()),
            ),
        ];
        for (selector, want) in cases {
            assert_eq!(
                FieldSelector::parse(selector).unwrap_err(),
                want,
                "{selector:?}"
            );
        }
    }

    #[test]
    fn terms_split_on_unescaped_commas_and_the_first_operator() {
        assert_eq!(split_terms(r"a=1\,2,b!=3"), [r"a=1\,2", "b!=3"]);
        assert!(split_terms("").is_empty());
        assert_eq!(split_term("a!=b=c"), Some(("a", "!=", "b=c")));
        assert_eq!(split_term("a==b"), Some(("a", "==", "b")));
        assert_eq!(split_term("ab"), None);
    }

    #[test]
    fn field_values_compare_as_text() {
        let obj = json!({"spec": {"n": 3, "on": false, "none": null, "list": [1]}});
        assert_eq!(field_value(&obj, "spec.n").as_deref(), Some("3"));
        assert_eq!(field_value(&obj, "spec.on").as_deref(), Some("false"));
        assert_eq!(field_value(&obj, "spec.none").as_deref(), Some(""));
        assert_eq!(field_value(&obj, "spec.missing").as_deref(), Some(""));
        assert_eq!(field_value(&obj, "spec.list"), None);
        let sel =
            FieldSelector::parse_with_selectable_fields("spec.list!=x", &["spec.list".into()])
                .unwrap();
        assert!(sel.matches(&obj), "an array matches every !=");
    }
}
