//! Label selectors: the string form (`?labelSelector=`) parsed as `labels.Parse` does, and
//! `metav1.LabelSelector` objects converted as `metav1.LabelSelectorAsSelector` does; matching
//! through kube-core's [`Expression`], plus the numeric `gt` / `lt` kube-core lacks.

use std::collections::BTreeMap;
use std::fmt;

use kube_core::{Expression, SelectorExt};
use serde_json::Value;

use crate::go_quote;

use super::lexer::lex;
use super::parser::Parser;
use super::validation::{
    InvalidLabelKey, InvalidLabelValue, validate_label_key, validate_label_value,
};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Requirement {
    /// Everything kube-core models (`=`, `!=`, `in`, `notin`, exists, does-not-exist).
    Expr(Expression),
    /// `key>N`: the label exists and its value, parsed as an integer, is greater than N.
    GreaterThan(String, i64),
    /// `key<N`: the label exists and its value, parsed as an integer, is less than N.
    LessThan(String, i64),
}

impl Requirement {
    pub(super) fn key(&self) -> &str {
        match self {
            Requirement::Expr(e) => match e {
                Expression::In(k, _)
                | Expression::NotIn(k, _)
                | Expression::Equal(k, _)
                | Expression::NotEqual(k, _)
                | Expression::Exists(k)
                | Expression::DoesNotExist(k) => k,
            },
            Requirement::GreaterThan(k, _) | Requirement::LessThan(k, _) => k,
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Expr(e) => e.matches(labels),
            Requirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Expr(e) => write!(f, "{e}"),
            Requirement::GreaterThan(k, n) => write!(f, "{k}>{n}"),
            Requirement::LessThan(k, n) => write!(f, "{k}<{n}"),
        }
    }
}

/// A parsed label selector: every requirement must hold. Empty selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse the string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`, also `==`, `gt`/`lt` as
    /// `k>1` / `k<1`), with `labels.Parse`'s grammar and error messages.
    pub fn parse(s: &str) -> Result<LabelSelector, LabelSelectorError> {
        let mut requirements = Parser::new(lex(s)).parse()?;
        // labels.Parse sorts by key; matching does not care, but String() does.
        requirements.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(LabelSelector { requirements })
    }

    /// Whether every requirement holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Convert a `metav1.LabelSelector` (`{matchLabels, matchExpressions}`), as
    /// `metav1.LabelSelectorAsSelector` does, validating keys, values and operators.
    ///
    /// `null` and `{}` both select everything: for `namespaceSelector` / `objectSelector`,
    /// an absent selector means "all" (the API server defaults it to `{}`).
    pub fn from_label_selector(selector: &Value) -> Result<LabelSelector, LabelSelectorError> {
        let malformed = |field: String, value: &Value, expected| LabelSelectorError::Malformed {
            field,
            value: value.clone(),
            expected,
        };
        let obj = match selector {
            Value::Null => return Ok(LabelSelector::default()),
            Value::Object(obj) => obj,
            other => {
                return Err(LabelSelectorError::NotAnObject(
                    corbel_admission::json_type(other),
                ));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Value::String(v) = v else {
                        return Err(malformed(format!("matchLabels[{k}]"), v, "a string"));
                    };
                    requirements.push(new_requirement(k, Op::Equals, vec![v.clone()])?);
                }
            }
            Some(other) => {
                return Err(malformed(
                    "matchLabels".into(),
                    other,
                    "an object of strings",
                ));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    let Value::Object(expr) = expr else {
                        return Err(malformed(
                            format!("matchExpressions[{i}]"),
                            expr,
                            "an object",
                        ));
                    };
                    let string = |member: &str| match expr.get(member) {
                        Some(Value::String(s)) => Ok(s.as_str()),
                        None | Some(Value::Null) => Ok(""),
                        Some(other) => Err(malformed(
                            format!("matchExpressions[{i}].{member}"),
                            other,
                            "a string",
                        )),
                    };
                    let key = string("key")?;
                    let operator = string("operator")?;
                    let values: Vec<String> = match expr.get("values") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(vs)) => {
                            let mut out = Vec::with_capacity(vs.len());
                            for (j, v) in vs.iter().enumerate() {
                                let Value::String(v) = v else {
                                    return Err(malformed(
                                        format!("matchExpressions[{i}].values[{j}]"),
                                        v,
                                        "a string",
                                    ));
                                };
                                out.push(v.clone());
                            }
                            out
                        }
                        Some(other) => {
                            return Err(malformed(
                                format!("matchExpressions[{i}].values"),
                                other,
                                "an array of strings",
                            ));
                        }
                    };
                    let op = match operator {
                        "In" => Op::In,
                        "NotIn" => Op::NotIn,
                        "Exists" => Op::Exists,
                        "DoesNotExist" => Op::DoesNotExist,
                        other => return Err(LabelSelectorError::UnknownOperator(other.to_owned())),
                    };
                    requirements.push(new_requirement(key, op, values)?);
                }
            }
            Some(other) => {
                return Err(malformed("matchExpressions".into(), other, "an array"));
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Whether this selector has no requirements (and so selects everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (`a=b,c in (x,y)`), parseable by [`LabelSelector::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// `labels.NewRequirement`: validates and builds one requirement.
pub(super) fn new_requirement(
    key: &str,
    op: Op,
    mut values: Vec<String>,
) -> Result<Requirement, LabelSelectorError> {
    let mut errs: Vec<RequirementProblem> = Vec::new();
    if let Err(reason) = validate_label_key(key) {
        errs.push(RequirementProblem::Key {
            key: key.to_owned(),
            reason,
        });
    }
    match op {
        Op::In | Op::NotIn => {
            if values.is_empty() {
                errs.push(RequirementProblem::EmptySet {
                    values: values.clone(),
                });
            }
        }
        Op::Equals | Op::DoubleEquals | Op::NotEquals => {
            if values.len() != 1 {
                errs.push(RequirementProblem::NotOneValue {
                    values: values.clone(),
                });
            }
        }
        Op::Exists | Op::DoesNotExist => {
            if !values.is_empty() {
                errs.push(RequirementProblem::ValuesForExistence {
                    values: values.clone(),
                });
            }
        }
        Op::GreaterThan | Op::LessThan => {
            if values.len() != 1 {
                errs.push(RequirementProblem::NotOneNumber {
                    values: values.clone(),
                });
            }
            for (index, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(RequirementProblem::NotAnInteger {
                        index,
                        value: v.clone(),
                    });
                }
            }
        }
    }
    for (index, v) in values.iter().enumerate() {
        if let Err(reason) = validate_label_value(v) {
            errs.push(RequirementProblem::Value {
                index,
                key: key.to_owned(),
                value: v.clone(),
                reason,
            });
        }
    }
    if !errs.is_empty() {
        return Err(LabelSelectorError::Invalid(errs));
    }
    let key = key.to_string();
    Ok(match op {
        Op::In => Requirement::Expr(Expression::In(key, values.into_iter().collect())),
        Op::NotIn => Requirement::Expr(Expression::NotIn(key, values.into_iter().collect())),
        Op::Equals | Op::DoubleEquals => {
            Requirement::Expr(Expression::Equal(key, values.pop().unwrap_or_default()))
        }
        Op::NotEquals => {
            Requirement::Expr(Expression::NotEqual(key, values.pop().unwrap_or_default()))
        }
        Op::Exists => Requirement::Expr(Expression::Exists(key)),
        Op::DoesNotExist => Requirement::Expr(Expression::DoesNotExist(key)),
        Op::GreaterThan => Requirement::GreaterThan(key, values[0].parse().unwrap_or_default()),
        Op::LessThan => Requirement::LessThan(key, values[0].parse().unwrap_or_default()),
    })
}

/// Why a label selector was refused, worded as `labels.Parse` and
/// `metav1.LabelSelectorAsSelector` word it (the API server's `BadRequest` message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelSelectorError {
    /// A requirement of the string form could not be parsed.
    #[error("unable to parse requirement: {0}")]
    Requirement(Box<LabelSelectorError>),
    /// The grammar expected something else where `found` stands.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
    },
    /// `in` / `notin` without its `(` (the API server words this one without a comma).
    #[error("found '{found}' expected: '('")]
    OpenParenthesisExpected { found: String },
    /// A key of the string form that is not a qualified name.
    #[error("Invalid value: {}: {reason}", go_quote(.key))]
    Key {
        key: String,
        reason: InvalidLabelKey,
    },
    /// A requirement `labels.NewRequirement` refuses, with every problem it found.
    #[error("{}", aggregate(.0))]
    Invalid(Vec<RequirementProblem>),
    /// A `metav1.LabelSelector` that is not an object (its JSON type).
    #[error("label selector must be an object, got {0}")]
    NotAnObject(&'static str),
    /// A member of a `metav1.LabelSelector` of the wrong JSON shape.
    #[error("{field}: Invalid value: {value}: must be {expected}")]
    Malformed {
        field: String,
        value: Value,
        expected: &'static str,
    },
    /// A `matchExpressions` operator other than `In`, `NotIn`, `Exists` and `DoesNotExist`.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    UnknownOperator(String),
}

/// One thing `labels.NewRequirement` finds wrong with a requirement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequirementProblem {
    #[error("key: Invalid value: {}: {reason}", go_quote(.key))]
    Key {
        key: String,
        reason: InvalidLabelKey,
    },
    #[error(
        "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
        go_string_slice(.values)
    )]
    EmptySet { values: Vec<String> },
    #[error(
        "values: Invalid value: {}: exact-match compatibility requires one single value",
        go_string_slice(.values)
    )]
    NotOneValue { values: Vec<String> },
    #[error(
        "values: Invalid value: {}: values set must be empty for exists and does not exist",
        go_string_slice(.values)
    )]
    ValuesForExistence { values: Vec<String> },
    #[error(
        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
        go_string_slice(.values)
    )]
    NotOneNumber { values: Vec<String> },
    #[error(
        "values[{index}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
        go_quote(.value)
    )]
    NotAnInteger { index: usize, value: String },
    #[error("values[{index}][{key}]: Invalid value: {}: {reason}", go_quote(.value))]
    Value {
        index: usize,
        key: String,
        value: String,
        reason: InvalidLabelValue,
    },
}

/// `utilerrors.NewAggregate(...).Error()`: one error alone, several as `[a, b]`.
fn aggregate(problems: &[RequirementProblem]) -> String {
    match problems {
        [one] => one.to_string(),
        _ => {
            let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("[{}]", all.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice(values: &[String]) -> String {
    let inner: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_matching_table() {
        let app_web = labels(&[("app", "web"), ("tier", "front"), ("version", "3")]);
        let none = labels(&[]);
        // (selector, labels, expected)
        let cases: &[(&str, &BTreeMap<String, String>, bool)] = &[
            ("", &app_web, true),
            ("", &none, true),
            ("app=web", &app_web, true),
            ("app==web", &app_web, true),
            ("app = web", &app_web, true),
            ("app=db", &app_web, false),
            ("app!=db", &app_web, true),
            ("app!=web", &app_web, false),
            ("app!=web", &none, true), // != matches objects without the key
            ("app in (web,db)", &app_web, true),
            ("app in (db)", &app_web, false),
            ("app in (db)", &none, false),
            ("app notin (db)", &app_web, true),
            ("app notin (web)", &app_web, false),
            ("app notin (web)", &none, true),
            ("tier", &app_web, true),
            ("tier", &none, false),
            ("!tier", &app_web, false),
            ("!tier", &none, true),
            ("app=web,tier=front", &app_web, true),
            ("app=web,tier=back", &app_web, false),
            ("app=web,!missing,tier in (front, back)", &app_web, true),
            ("version>2", &app_web, true),
            ("version>3", &app_web, false),
            ("version<4", &app_web, true),
            ("app>2", &app_web, false), // not an integer: no match
            ("missing=", &none, false), // `=` needs the key, even with an empty value
            ("missing=", &labels(&[("missing", "")]), true),
            ("app in (web,)", &app_web, true),
            ("in=x", &labels(&[("in", "x")]), true), // keywords are identifiers in key position
            (
                "example.com/role=web",
                &labels(&[("example.com/role", "web")]),
                true,
            ),
        ];
        for (selector, lbls, expected) in cases {
            let sel = LabelSelector::parse(selector)
                .unwrap_or_else(|e| panic!("{selector:?} should parse: {e}"));
            assert_eq!(
                sel.matches(lbls),
                *expected,
                "{selector:?} against {lbls:?}"
            );
        }
    }

    #[test]
    fn label_selector_parse_errors_table() {
        // (selector, substring the error must contain)
        let cases: &[(&str, &str)] = &[
            ("app=web,", "found '', expected: identifier after ','"),
            (
                "app=web tier=x",
                "found 'tier', expected: ',' or 'end of string'",
            ),
            (
                ",app",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("app in web", "found 'web' expected: '('"),
            ("app in (web", "found '', expected: ',' or ')'"),
            ("app in (=)", "found '=', expected: ',', ')' or identifier"),
            ("app == ==", "found '==', expected: identifier"),
            ("app=a b", "found 'b', expected: ',' or 'end of string'"),
            ("app >> 1", "found '>', expected: identifier"),
            (
                "app > x",
                "for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "-app=web",
                "unable to parse requirement: Invalid value: \"-app\": name part must consist of alphanumeric characters",
            ),
            ("a/b/c=x", "a qualified name must consist of"),
            (
                "Example.com/x=y",
                "prefix part a lowercase RFC 1123 subdomain",
            ),
            (
                "app=-web",
                "a valid label must be an empty string or consist of",
            ),
            ("!app=web", "found '=', expected: ',' or 'end of string'"),
            ("app notin", "found '' expected: '('"),
            (
                "app x y",
                "found 'x', expected: in, notin, =, ==, !=, gt, lt",
            ),
        ];
        for (selector, want) in cases {
            match LabelSelector::parse(selector) {
                Ok(s) => panic!("{selector:?} should not parse, got {s:?}"),
                Err(e) => assert!(
                    e.to_string().contains(want),
                    "{selector:?}: {e:?} lacks {want:?}"
                ),
            }
        }
    }

    #[test]
    fn label_selector_display_round_trips() {
        let sel = LabelSelector::parse("b in (y,x),a=1,!c,d,e notin (z),f>3").unwrap();
        assert_eq!(sel.to_string(), "a=1,b in (x,y),!c,d,e notin (z),f>3");
        assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
    }

    #[test]
    fn label_selector_is_empty() {
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(LabelSelector::parse("   ").unwrap().is_empty());
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
        assert!(
            LabelSelector::from_label_selector(&json!({}))
                .unwrap()
                .is_empty()
        );
        assert!(
            LabelSelector::from_label_selector(&Value::Null)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn metav1_label_selector_table() {
        let web = labels(&[("app", "web"), ("env", "prod")]);
        // (selector JSON, expected match against `web`)
        let cases: &[(Value, bool)] = &[
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]}),
                false,
            ),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}),
                false,
            ),
        ];
        for (selector, expected) in cases {
            let sel = LabelSelector::from_label_selector(selector)
                .unwrap_or_else(|e| panic!("{selector} should convert: {e}"));
            assert_eq!(sel.matches(&web), *expected, "{selector}");
        }
    }

    #[test]
    fn metav1_label_selector_errors_table() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
                "\"Equals\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
                "values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist",
            ),
            (
                json!({"matchLabels": {"bad key": "x"}}),
                "key: Invalid value: \"bad key\": name part must consist of",
            ),
            (
                json!({"matchLabels": {"a": "bad value"}}),
                "values[0][a]: Invalid value: \"bad value\": a valid label must be",
            ),
            (
                json!({"matchLabels": {"a": 1}}),
                "matchLabels[a]: Invalid value: 1: must be a string",
            ),
            (json!([]), "label selector must be an object, got array"),
        ];
        for (selector, want) in cases {
            match LabelSelector::from_label_selector(selector) {
                Ok(s) => panic!("{selector} should fail, got {s:?}"),
                Err(e) => assert!(
                    e.to_string().contains(want),
                    "{selector}: {e:?} lacks {want:?}"
                ),
            }
        }
    }

    #[test]
    fn errors_say_which_rule_was_broken() {
        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Equals"}]}),
        )
        .unwrap_err();
        assert_eq!(e, LabelSelectorError::UnknownOperator("Equals".into()));
        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
        )
        .unwrap_err();
        assert!(
            matches!(&e, LabelSelectorError::Malformed { field, expected: "a string", .. } if field == "matchExpressions[0].values[0]"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "matchExpressions[0].values[0]: Invalid value: 1: must be a string"
        );
        let e = LabelSelector::parse("app in ()x").unwrap_err();
        assert!(
            matches!(
                e,
                LabelSelectorError::Unexpected {
                    expected: "',' or 'end of string'",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn several_problems_of_one_requirement_print_as_an_aggregate() {
        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "-a", "operator": "Exists", "values": ["x"]}]}),
        )
        .unwrap_err();
        let LabelSelectorError::Invalid(problems) = &e else {
            panic!("{e:?}");
        };
        assert!(
            matches!(
                problems.as_slice(),
                [
                    RequirementProblem::Key { .. },
                    RequirementProblem::ValuesForExistence { .. }
                ]
            ),
            "{problems:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("[key: Invalid value: \"-a\": name part must consist of"),
            "{text}"
        );
        assert!(text.ends_with(r#", values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist]"#), "{text}");
    }

    #[test]
    fn numeric_requirements_need_one_integer() {
        let e = new_requirement("k", Op::GreaterThan, vec!["1".into(), "x".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"[values: Invalid value: []string{"1", "x"}: for 'Gt', 'Lt' operators, exactly one value is required, values[1]: Invalid value: "x": for 'Gt', 'Lt' operators, the value must be an integer]"#
        );
        let r = new_requirement("k", Op::LessThan, vec!["3".into()]).unwrap();
        assert_eq!(r, Requirement::LessThan("k".into(), 3));
        assert_eq!(r.to_string(), "k<3");
        // A negative number is no label value, so it cannot be a bound either.
        assert!(new_requirement("k", Op::LessThan, vec!["-3".into()]).is_err());
    }
}
