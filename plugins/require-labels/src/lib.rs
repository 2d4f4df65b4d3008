//! `require-labels`: denies CREATE and UPDATE of any object that misses one of the listed labels,
//! naming every missing label in the message.

use corbel_sdk::{Error, Operation, Policy, Request, Verdict, check, export_policy};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Label keys every object must carry.
    pub labels: Vec<String>,
}

pub struct RequireLabels;

impl Policy for RequireLabels {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.labels.is_empty() {
            return Err(
                "`labels` is empty: list at least one label key, e.g. {\"labels\": [\"team\"]}"
                    .into(),
            );
        }
        if let Some(blank) = settings.labels.iter().position(|l| l.trim().is_empty()) {
            return Err(format!(
                "`labels[{blank}]` is blank: every entry must be a label key"
            ));
        }
        Ok(())
    }

    fn validate(request: &Request, settings: &Settings) -> Result<Verdict, Error> {
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return Ok(Verdict::allow());
        }
        let present = request.labels();
        // One check per required label, named after it: a traced denial says which one failed.
        let missing: Vec<&str> = settings
            .labels
            .iter()
            .filter(|l| !check(&format!("label {l}"), present.contains_key(l.as_str()), ""))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(Verdict::allow());
        }
        Ok(Verdict::deny(format!(
            "missing required labels: {}",
            missing.join(", ")
        )))
    }
}

export_policy!(RequireLabels);

#[cfg(test)]
mod tests {
    use corbel_sdk::{Operation, Policy, Request};
    use serde_json::json;

    use super::*;

    fn settings(labels: &[&str]) -> Settings {
        Settings {
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn configmap(op: Operation, labels: serde_json::Value) -> Request {
        Request::builder(op, "ConfigMap")
            .object(json!({"metadata": {"name": "c", "labels": labels}}))
            .build()
    }

    #[test]
    fn admits_an_object_with_every_label() {
        let req = configmap(Operation::Create, json!({"team": "a", "owner": "b"}));
        assert!(
            RequireLabels::validate(&req, &settings(&["team", "owner"]))
                .unwrap()
                .is_allowed()
        );
    }

    #[test]
    fn denies_naming_every_missing_label_in_settings_order() {
        let req = configmap(Operation::Update, json!({"owner": "b"}));
        let verdict =
            RequireLabels::validate(&req, &settings(&["team", "owner", "cost-center"])).unwrap();
        assert!(!verdict.is_allowed());
        assert_eq!(
            verdict.message(),
            Some("missing required labels: team, cost-center")
        );
    }

    #[test]
    fn records_one_check_per_label_naming_the_missing_ones() {
        corbel_sdk::log::take_checks();
        let req = configmap(Operation::Create, json!({"owner": "b"}));
        let _ = RequireLabels::validate(&req, &settings(&["team", "owner"])).unwrap();
        let checks: Vec<(String, bool)> = corbel_sdk::log::take_checks()
            .into_iter()
            .map(|(name, passed, _)| (name, passed))
            .collect();
        assert_eq!(
            checks,
            [
                ("label team".to_owned(), false),
                ("label owner".to_owned(), true)
            ]
        );
    }

    #[test]
    fn denies_an_object_without_metadata() {
        let req = Request::builder(Operation::Create, "ConfigMap")
            .object(json!({"kind": "ConfigMap"}))
            .build();
        let verdict = RequireLabels::validate(&req, &settings(&["team"])).unwrap();
        assert_eq!(verdict.message(), Some("missing required labels: team"));
    }

    #[test]
    fn ignores_deletes() {
        let req = Request::builder(Operation::Delete, "ConfigMap")
            .old_object(json!({"metadata": {}}))
            .build();
        assert!(
            RequireLabels::validate(&req, &settings(&["team"]))
                .unwrap()
                .is_allowed()
        );
    }

    #[test]
    fn refuses_empty_or_blank_settings() {
        assert!(
            RequireLabels::validate_settings(&settings(&[]))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            RequireLabels::validate_settings(&settings(&["team", " "]))
                .unwrap_err()
                .contains("labels[1]")
        );
        assert!(serde_json::from_str::<Settings>(r#"{"label": ["x"]}"#).is_err());
    }
}
