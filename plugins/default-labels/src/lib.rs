//! `default-labels`: a mutating policy that adds the listed labels on CREATE and UPDATE where the
//! object lacks them. It never overwrites a label the object already has.

use std::collections::BTreeMap;

use corbel_sdk::objects::{labels, set_label};
use corbel_sdk::{Error, Operation, Policy, Request, Verdict, export_policy};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Labels to add where missing, key to value.
    pub labels: BTreeMap<String, String>,
}

pub struct DefaultLabels;

impl Policy for DefaultLabels {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.labels.is_empty() {
            return Err("`labels` is empty: give at least one label, e.g. {\"labels\": {\"team\": \"platform\"}}".into());
        }
        for (key, value) in &settings.labels {
            check_key(key).map_err(|why| format!("label key {key:?} is not valid: {why}"))?;
            check_value(value)
                .map_err(|why| format!("value {value:?} of label {key:?} is not valid: {why}"))?;
        }
        Ok(())
    }

    /// Bound in validate mode it has nothing to check: every request is admitted.
    fn validate(_request: &Request, _settings: &Settings) -> Result<Verdict, Error> {
        Ok(Verdict::allow())
    }

    fn mutate(request: &Request, settings: &Settings) -> Result<Verdict, Error> {
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return Ok(Verdict::allow());
        }
        let Some(object) = request.object() else {
            return Ok(Verdict::allow());
        };
        let present = labels(object);
        let mut missing = settings
            .labels
            .iter()
            .filter(|(k, _)| !present.contains_key(k.as_str()))
            .peekable();
        if missing.peek().is_none() {
            return Ok(Verdict::allow());
        }
        let mut changed = object.clone();
        for (key, value) in missing {
            set_label(&mut changed, key, value);
        }
        Ok(Verdict::mutate(changed))
    }
}

export_policy!(DefaultLabels);

/// A label name: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn check_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let bytes = name.as_bytes();
    if !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
        || !name.chars().all(ok_inner)
    {
        return Err(
            "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
                .into(),
        );
    }
    Ok(())
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name (Kubernetes' rules).
fn check_key(key: &str) -> Result<(), String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !part.starts_with('-')
                        && !part.ends_with('-')
                });
            if !ok {
                return Err(format!(
                    "prefix {prefix:?} must be a lowercase DNS subdomain"
                ));
            }
            name
        }
        None => key,
    };
    check_name(name, 63)
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Ok(())
    } else {
        check_name(value, 63)
    }
}

#[cfg(test)]
mod tests {
    use corbel_sdk::Operation;
    use serde_json::json;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn adds_missing_labels_and_keeps_existing_ones() {
        let req = Request::builder(Operation::Create, "ConfigMap")
            .object(
                json!({"metadata": {"name": "c", "labels": {"team": "mine"}}, "data": {"k": "v"}}),
            )
            .build();
        let verdict =
            DefaultLabels::mutate(&req, &settings(&[("team", "platform"), ("env", "dev")]))
                .unwrap();
        assert_eq!(
            verdict.mutated_object(),
            Some(
                &json!({"metadata": {"name": "c", "labels": {"team": "mine", "env": "dev"}}, "data": {"k": "v"}})
            )
        );
    }

    #[test]
    fn creates_the_labels_map_when_there_is_none() {
        let req = Request::builder(Operation::Create, "ConfigMap")
            .object(json!({"metadata": {"name": "c"}}))
            .build();
        let verdict = DefaultLabels::mutate(&req, &settings(&[("env", "dev")])).unwrap();
        assert_eq!(
            verdict.mutated_object(),
            Some(&json!({"metadata": {"name": "c", "labels": {"env": "dev"}}}))
        );
    }

    #[test]
    fn leaves_a_fully_labelled_object_unchanged() {
        let req = Request::builder(Operation::Update, "ConfigMap")
            .object(json!({"metadata": {"labels": {"env": "prod"}}}))
            .build();
        let verdict = DefaultLabels::mutate(&req, &settings(&[("env", "dev")])).unwrap();
        assert!(verdict.is_allowed());
        assert_eq!(verdict.mutated_object(), None);
    }

    #[test]
    fn refuses_labels_kubernetes_would_refuse() {
        assert!(
            DefaultLabels::validate_settings(&settings(&[("example.com/team", "a-b.c")])).is_ok()
        );
        assert!(
            DefaultLabels::validate_settings(&settings(&[("-bad", "x")]))
                .unwrap_err()
                .contains("-bad")
        );
        assert!(
            DefaultLabels::validate_settings(&settings(&[("Example.com/x", "x")]))
                .unwrap_err()
                .contains("DNS")
        );
        assert!(
            DefaultLabels::validate_settings(&settings(&[("ok", &"v".repeat(64))]))
                .unwrap_err()
                .contains("63")
        );
        assert!(
            DefaultLabels::validate_settings(&settings(&[]))
                .unwrap_err()
                .contains("empty")
        );
    }
}
