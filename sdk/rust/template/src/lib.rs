//! {{name}}: denies CREATE and UPDATE of objects that miss the label named in the settings.

use corbel_sdk::{Error, Operation, Policy, Request, Verdict, export_policy};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The label key every object must carry.
    pub label: String,
}

pub struct RequireLabel;

impl Policy for RequireLabel {
    type Settings = Settings;

    fn validate_settings(settings: &Settings) -> Result<(), String> {
        if settings.label.trim().is_empty() {
            return Err("`label` is blank: name a label key, e.g. {\"label\": \"team\"}".into());
        }
        Ok(())
    }

    fn validate(request: &Request, settings: &Settings) -> Result<Verdict, Error> {
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return Ok(Verdict::allow());
        }
        if request.labels().contains_key(&settings.label) {
            return Ok(Verdict::allow());
        }
        Ok(Verdict::deny(format!(
            "missing required label: {}",
            settings.label
        )))
    }
}

export_policy!(RequireLabel);
