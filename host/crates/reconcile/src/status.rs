//! The status a reconcile writes: the plugin's own fields, `observedGeneration`, and the
//! conditions `Ready` / `Processing` / `Blocked` with the host's defaults filled in.
//! `lastTransitionTime` changes only when a condition's status does, and conditions are kept
//! sorted, so that writing the same outcome twice changes nothing (and triggers nothing).

use serde_json::{Map, Value, json};

use corbel_runtime::bindings::latest::{Condition, ConditionStatus};

/// How a call ended, for the default conditions.
pub enum Ending<'a> {
    Reconciled,
    Transient { reason: &'a str, message: &'a str },
    Permanent { reason: &'a str, message: &'a str },
}

fn status_text(status: ConditionStatus) -> &'static str {
    match status {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

fn condition(
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> (String, String, String, String) {
    (kind.into(), status.into(), reason.into(), message.into())
}

/// The conditions for an ending, with the plugin's own overriding the defaults by type.
fn conditions(ending: &Ending, plugin: &[Condition]) -> Vec<(String, String, String, String)> {
    let mut out = match ending {
        Ending::Reconciled => vec![
            condition("Ready", "True", "Reconciled", ""),
            condition("Processing", "False", "Reconciled", ""),
            condition("Blocked", "False", "Reconciled", ""),
        ],
        Ending::Transient { reason, message } => vec![
            condition("Ready", "False", reason, message),
            condition(
                "Processing",
                "True",
                "Retrying",
                &format!("retrying with backoff: {message}"),
            ),
            condition("Blocked", "False", reason, ""),
        ],
        Ending::Permanent { reason, message } => vec![
            condition("Ready", "False", reason, message),
            condition(
                "Processing",
                "False",
                reason,
                "waiting for the object to change",
            ),
            condition("Blocked", "True", reason, message),
        ],
    };
    for c in plugin {
        let new = condition(&c.type_, status_text(c.status), &c.reason, &c.message);
        match out.iter_mut().find(|o| o.0 == c.type_) {
            Some(slot) => *slot = new,
            None => out.push(new),
        }
    }
    out
}

/// The whole new status, from the current one. `now` is RFC 3339.
pub fn next(
    current: Option<&Value>,
    plugin_status: Option<&Value>,
    ending: &Ending,
    plugin_conditions: &[Condition],
    generation: Option<i64>,
    now: &str,
) -> Value {
    let mut status = current
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    if !status.is_object() {
        status = Value::Object(Map::new());
    }
    if let Some(patch) = plugin_status {
        json_patch::merge(&mut status, patch);
    }
    let previous: Vec<Value> = current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut list: Vec<Value> = conditions(ending, plugin_conditions)
        .into_iter()
        .map(|(kind, state, reason, message)| {
            let old = previous.iter().find(|c| c["type"] == kind.as_str());
            let since = match old {
                Some(old) if old["status"] == state.as_str() => old["lastTransitionTime"].clone(),
                _ => Value::String(now.to_owned()),
            };
            let mut c = json!({
                "type": kind, "status": state, "reason": reason, "message": message,
                "lastTransitionTime": since,
            });
            if let Some(generation) = generation {
                c["observedGeneration"] = generation.into();
            }
            c
        })
        .collect();
    // Conditions of other writers (types the host and plugin did not set) are kept.
    for old in previous {
        if !list.iter().any(|c| c["type"] == old["type"]) {
            list.push(old);
        }
    }
    list.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
    let object = status.as_object_mut().expect("made an object above");
    object.insert("conditions".into(), Value::Array(list));
    if let Some(generation) = generation {
        object.insert("observedGeneration".into(), generation.into());
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &Value) -> (&str, &str) {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        (c["status"].as_str().unwrap(), c["reason"].as_str().unwrap())
    }

    #[test]
    fn a_success_sets_ready_and_keeps_the_plugins_fields() {
        let status = next(
            None,
            Some(&json!({"bucketName": "logs"})),
            &Ending::Reconciled,
            &[],
            Some(3),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status["bucketName"], "logs");
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(ready(&status), ("True", "Reconciled"));
        let types: Vec<&str> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Blocked", "Processing", "Ready"]);
    }

    #[test]
    fn the_same_outcome_twice_changes_nothing() {
        let first = next(
            None,
            None,
            &Ending::Reconciled,
            &[],
            Some(1),
            "2026-01-01T00:00:00Z",
        );
        let second = next(
            Some(&first),
            None,
            &Ending::Reconciled,
            &[],
            Some(1),
            "2026-01-01T00:05:00Z",
        );
        assert_eq!(first, second);
    }

    #[test]
    fn a_permanent_error_blocks_and_a_later_success_clears_it() {
        let blocked = next(
            None,
            None,
            &Ending::Permanent {
                reason: "BucketNotEmpty",
                message: "3 objects",
            },
            &[],
            Some(2),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(ready(&blocked), ("False", "BucketNotEmpty"));
        let blocked_condition = &blocked["conditions"][0];
        assert_eq!(blocked_condition["type"], "Blocked");
        assert_eq!(blocked_condition["status"], "True");
        let cleared = next(
            Some(&blocked),
            None,
            &Ending::Reconciled,
            &[],
            Some(3),
            "2026-01-01T00:01:00Z",
        );
        assert_eq!(cleared["conditions"][0]["status"], "False");
        assert_eq!(
            cleared["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:01:00Z"
        );
    }

    #[test]
    fn a_plugins_condition_overrides_the_default_of_its_type() {
        let status = next(
            None,
            None,
            &Ending::Reconciled,
            &[Condition {
                type_: "Ready".into(),
                status: ConditionStatus::False,
                reason: "WaitingForDns".into(),
                message: "the record is not visible yet".into(),
            }],
            None,
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(ready(&status), ("False", "WaitingForDns"));
    }
}
