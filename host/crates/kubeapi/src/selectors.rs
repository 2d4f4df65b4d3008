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
//! Not supported: set-based requirements in field selectors (Kubernetes has none either), and
//! field selectors on fields that are not strings, integers or booleans (they never match).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube_core::{Expression, SelectorExt};
use serde_json::Value;

// ------------------------------------------------------------------------------------------
// Label selectors
// ------------------------------------------------------------------------------------------

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// Everything kube-core models (`=`, `!=`, `in`, `notin`, exists, does-not-exist).
    Expr(Expression),
    /// `key>N`: the label exists and its value, parsed as an integer, is greater than N.
    GreaterThan(String, i64),
    /// `key<N`: the label exists and its value, parsed as an integer, is less than N.
    LessThan(String, i64),
}

impl Requirement {
    fn key(&self) -> &str {
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
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let tokens = lex(s);
        let mut parser = Parser {
            tokens,
            position: 0,
        };
        let mut requirements = parser.parse()?;
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
    pub fn from_label_selector(selector: &Value) -> Result<LabelSelector, String> {
        let obj = match selector {
            Value::Null => return Ok(LabelSelector::default()),
            Value::Object(obj) => obj,
            other => {
                return Err(format!(
                    "label selector must be an object, got {}",
                    corbel_admission::json_type(other)
                ));
            }
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Value::String(v) = v else {
                        return Err(format!(
                            "matchLabels[{k}]: Invalid value: {v}: must be a string"
                        ));
                    };
                    requirements.push(new_requirement(k, Op::Equals, vec![v.clone()])?);
                }
            }
            Some(other) => {
                return Err(format!(
                    "matchLabels: Invalid value: {other}: must be an object of strings"
                ));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    let Value::Object(expr) = expr else {
                        return Err(format!(
                            "matchExpressions[{i}]: Invalid value: {expr}: must be an object"
                        ));
                    };
                    let key = match expr.get("key") {
                        Some(Value::String(k)) => k.as_str(),
                        None | Some(Value::Null) => "",
                        Some(other) => {
                            return Err(format!(
                                "matchExpressions[{i}].key: Invalid value: {other}: must be a string"
                            ));
                        }
                    };
                    let operator = match expr.get("operator") {
                        Some(Value::String(o)) => o.as_str(),
                        None | Some(Value::Null) => "",
                        Some(other) => {
                            return Err(format!(
                                "matchExpressions[{i}].operator: Invalid value: {other}: must be a string"
                            ));
                        }
                    };
                    let values: Vec<String> = match expr.get("values") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(vs)) => {
                            let mut out = Vec::with_capacity(vs.len());
                            for (j, v) in vs.iter().enumerate() {
                                let Value::String(v) = v else {
                                    return Err(format!(
                                        "matchExpressions[{i}].values[{j}]: Invalid value: {v}: must be a string"
                                    ));
                                };
                                out.push(v.clone());
                            }
                            out
                        }
                        Some(other) => {
                            return Err(format!(
                                "matchExpressions[{i}].values: Invalid value: {other}: must be an array of strings"
                            ));
                        }
                    };
                    let op = match operator {
                        "In" => Op::In,
                        "NotIn" => Op::NotIn,
                        "Exists" => Op::Exists,
                        "DoesNotExist" => Op::DoesNotExist,
                        other => {
                            return Err(format!(
                                "{} is not a valid label selector operator",
                                go_quote(other)
                            ));
                        }
                    };
                    requirements.push(new_requirement(key, op, values)?);
                }
            }
            Some(other) => {
                return Err(format!(
                    "matchExpressions: Invalid value: {other}: must be an array"
                ));
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
enum Op {
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
fn new_requirement(key: &str, op: Op, mut values: Vec<String>) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    if let Err(e) = validate_label_key(key) {
        errs.push(format!("key: Invalid value: {}: {e}", go_quote(key)));
    }
    match op {
        Op::In | Op::NotIn => {
            if values.is_empty() {
                errs.push(format!(
                    "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                    go_string_slice(&values)
                ));
            }
        }
        Op::Equals | Op::DoubleEquals | Op::NotEquals => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {}: exact-match compatibility requires one single value",
                    go_string_slice(&values)
                ));
            }
        }
        Op::Exists | Op::DoesNotExist => {
            if !values.is_empty() {
                errs.push(format!(
                    "values: Invalid value: {}: values set must be empty for exists and does not exist",
                    go_string_slice(&values)
                ));
            }
        }
        Op::GreaterThan | Op::LessThan => {
            if values.len() != 1 {
                errs.push(format!(
                    "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                    go_string_slice(&values)
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        if let Err(e) = validate_label_value(v) {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {e}",
                go_quote(v)
            ));
        }
    }
    if !errs.is_empty() {
        return Err(aggregate(errs));
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

/// `utilerrors.NewAggregate(...).Error()`: one error alone, several as `[a, b]`.
fn aggregate(errs: Vec<String>) -> String {
    if errs.len() == 1 {
        errs.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

/// Go's `%q` for the strings that appear in these messages (close enough: JSON escaping).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice(values: &[String]) -> String {
    let inner: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

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

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// `validation.RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join("or ")
    )
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the qualified-name / label-value shape.
fn is_alnum_dash_dot_underscore(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    })
}

/// `validation.IsQualifiedName`, joined with `; ` as `validateLabelKey` does.
pub(crate) fn validate_label_key(key: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_ERR,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            return Err(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_alnum_dash_dot_underscore(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// `validation.IsValidLabelValue`, joined with `; `.
pub(crate) fn validate_label_value(value: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_alnum_dash_dot_underscore(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// The `labels.Lexer`, run to the end (the parser looks ahead freely).
fn lex(s: &str) -> Vec<(Token, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < chars.len() && is_whitespace(chars[pos]) {
            pos += 1;
        }
        if pos >= chars.len() {
            out.push((Token::EndOfString, String::new()));
            return out;
        }
        if is_special_symbol(chars[pos]) {
            // Longest run of special symbols that is still a known token.
            let mut buffer = String::new();
            let mut last: Option<(Token, String)> = None;
            while pos < chars.len() && is_special_symbol(chars[pos]) {
                buffer.push(chars[pos]);
                if let Some(t) = keyword(&buffer) {
                    last = Some((t, buffer.clone()));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match last {
                Some(item) => out.push(item),
                None => {
                    out.push((
                        Token::Error,
                        format!("error expected: keyword found '{buffer}'"),
                    ));
                }
            }
        } else {
            let start = pos;
            while pos < chars.len() && !is_whitespace(chars[pos]) && !is_special_symbol(chars[pos])
            {
                pos += 1;
            }
            let word: String = chars[start..pos].iter().collect();
            match keyword(&word) {
                Some(t) => out.push((t, word)),
                None => out.push((Token::Identifier, word)),
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn lookahead(&self, context: Context) -> (Token, String) {
        let (mut tok, lit) = self
            .tokens
            .get(self.position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        if context == Context::Values && matches!(tok, Token::In | Token::NotIn) {
            tok = Token::Identifier;
        }
        (tok, lit)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let item = self.lookahead(context);
        if self.position < self.tokens.len() {
            self.position += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!("found '{l}', expected: ',' or 'end of string'"));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Op::Exists | Op::DoesNotExist)) = op {
            return new_requirement(&key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Op::In | Op::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(&key, op, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            op = Some(Op::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Err(e) = validate_label_key(&lit) {
            return Err(format!("Invalid value: {}: {e}", go_quote(&lit)));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma) && op.is_none() {
            op = Some(Op::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Op, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Op::In,
            Token::Equals => Op::Equals,
            Token::DoubleEquals => Op::DoubleEquals,
            Token::GreaterThan => Op::GreaterThan,
            Token::LessThan => Op::LessThan,
            Token::NotIn => Op::NotIn,
            Token::NotEquals => Op::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let s = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut s = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    s.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(s),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if s.is_empty() {
                        s.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        s.insert(String::new());
                        return Ok(s);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        s.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            Ok(BTreeSet::from([lit]))
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// ------------------------------------------------------------------------------------------
// Field selectors
// ------------------------------------------------------------------------------------------

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
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        Self::parse_with_selectable_fields(s, &[])
    }

    /// [`FieldSelector::parse`] that also accepts a CRD version's `selectableFields`, each
    /// given as its JSON path (`.spec.color` or `spec.color`).
    pub fn parse_with_selectable_fields(
        s: &str,
        selectable: &[String],
    ) -> Result<FieldSelector, String> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(&part) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let value = unescape_value(rhs)?;
            let supported = DEFAULT_FIELDS.contains(&lhs)
                || selectable
                    .iter()
                    .any(|f| f.strip_prefix('.').unwrap_or(f) == lhs);
            if !supported {
                return Err(format!("field label not supported: {lhs}"));
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
fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {c}"
                ));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
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
                Err(e) => assert!(e.contains(want), "{selector:?}: {e:?} lacks {want:?}"),
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
                Err(e) => assert!(e.contains(want), "{selector}: {e:?} lacks {want:?}"),
            }
        }
    }

    #[test]
    fn label_key_and_value_validation_table() {
        let keys_ok = ["a", "A", "a.b_c-d", "example.com/a", "a1", &"x".repeat(63)];
        for k in keys_ok {
            assert!(validate_label_key(k).is_ok(), "{k:?}");
        }
        let keys_bad = [
            "",
            "-a",
            "a-",
            "/a",
            "a/",
            "a b",
            &"x".repeat(64),
            "UPPER.com/a",
        ];
        for k in keys_bad {
            assert!(validate_label_key(k).is_err(), "{k:?}");
        }
        let values_ok = ["", "a", "a.b_c-d", &"v".repeat(63)];
        for v in values_ok {
            assert!(validate_label_value(v).is_ok(), "{v:?}");
        }
        let values_bad = ["-a", "a b", "a/b", &"v".repeat(64)];
        for v in values_bad {
            assert!(validate_label_value(v).is_err(), "{v:?}");
        }
        assert_eq!(
            validate_label_value("-a").unwrap_err(),
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
    }

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
                Err(e) => assert_eq!(&e, want, "{selector:?}"),
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
            FieldSelector::parse_with_selectable_fields("spec.other=1", &fields).unwrap_err(),
            "field label not supported: spec.other"
        );
    }
}
