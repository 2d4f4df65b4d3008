//! Label keys and values, validated as `validation.IsQualifiedName` and
//! `validation.IsValidLabelValue` do, with their wording: every problem is kept, typed, and
//! the whole is printed joined with `; ` as the API server prints it.

use std::fmt;

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

/// One thing wrong with a label key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("prefix part must be non-empty")]
    EmptyPrefix,
    #[error("prefix part must be no more than 253 characters")]
    LongPrefix,
    #[error(
        "prefix part {}",
        regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"])
    )]
    PrefixNotSubdomain,
    /// More than one `/`.
    #[error(
        "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
    )]
    NotQualified,
    #[error("name part must be non-empty")]
    EmptyName,
    #[error("name part must be no more than 63 characters")]
    LongName,
    #[error(
        "name part {}",
        regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
    )]
    NameNotQualified,
}

/// One thing wrong with a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("must be no more than 63 characters")]
    TooLong,
    #[error(
        "{}",
        regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"])
    )]
    Malformed,
}

/// A label key that is not a qualified name: every problem found (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLabelKey(pub Vec<KeyProblem>);

/// A label value that is not valid: every problem found (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLabelValue(pub Vec<ValueProblem>);

/// Problems joined with `; `, as `validateLabelKey` and `validateLabelValue` join them.
fn joined(f: &mut fmt::Formatter<'_>, problems: &[impl fmt::Display]) -> fmt::Result {
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{p}")?;
    }
    Ok(())
}

impl fmt::Display for InvalidLabelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        joined(f, &self.0)
    }
}

impl std::error::Error for InvalidLabelKey {}

impl fmt::Display for InvalidLabelValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        joined(f, &self.0)
    }
}

impl std::error::Error for InvalidLabelValue {}

/// `validation.IsQualifiedName`, as `validateLabelKey` applies it.
pub(super) fn validate_label_key(key: &str) -> Result<(), InvalidLabelKey> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(KeyProblem::EmptyPrefix);
            } else {
                if prefix.len() > 253 {
                    errs.push(KeyProblem::LongPrefix);
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(KeyProblem::PrefixNotSubdomain);
                }
            }
            *name
        }
        _ => return Err(InvalidLabelKey(vec![KeyProblem::NotQualified])),
    };
    if name.is_empty() {
        errs.push(KeyProblem::EmptyName);
    } else if name.len() > 63 {
        errs.push(KeyProblem::LongName);
    }
    if !is_alnum_dash_dot_underscore(name) {
        errs.push(KeyProblem::NameNotQualified);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(InvalidLabelKey(errs))
    }
}

/// `validation.IsValidLabelValue`.
pub(super) fn validate_label_value(value: &str) -> Result<(), InvalidLabelValue> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(ValueProblem::TooLong);
    }
    if !value.is_empty() && !is_alnum_dash_dot_underscore(value) {
        errs.push(ValueProblem::Malformed);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(InvalidLabelValue(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            validate_label_value("-a").unwrap_err().to_string(),
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
    }

    #[test]
    fn every_problem_of_a_key_is_named() {
        let cases: &[(&str, &[KeyProblem])] = &[
            ("/a", &[KeyProblem::EmptyPrefix]),
            ("Example.com/a", &[KeyProblem::PrefixNotSubdomain]),
            ("a/b/c", &[KeyProblem::NotQualified]),
            ("a/", &[KeyProblem::EmptyName, KeyProblem::NameNotQualified]),
            ("-a", &[KeyProblem::NameNotQualified]),
        ];
        for (key, problems) in cases {
            assert_eq!(validate_label_key(key).unwrap_err().0, *problems, "{key:?}");
        }
        let long = format!("{}/{}", "p".repeat(254), "n".repeat(64));
        assert_eq!(
            validate_label_key(&long).unwrap_err().0,
            [KeyProblem::LongPrefix, KeyProblem::LongName]
        );
    }

    #[test]
    fn problems_print_joined_with_semicolons() {
        let err = validate_label_key("a/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "name part must be non-empty; name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let err = validate_label_value(&format!("-{}", "v".repeat(63))).unwrap_err();
        assert_eq!(err.0, [ValueProblem::TooLong, ValueProblem::Malformed]);
        assert!(
            err.to_string()
                .starts_with("must be no more than 63 characters; a valid label")
        );
    }
}
