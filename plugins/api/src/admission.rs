//! Admission for the API-management kinds, where reconciliation cannot help: who asks. The
//! request's user (`userInfo`, which the API server or the embedded API fills in from the
//! caller's token) is who subscribes and who decides.
//!
//! Validating ([`validate`]):
//! - an ApiSubscription is created by a member of the team owning its Application's namespace,
//!   with `spec.requester` that member's name; its Application and requester never change;
//! - an Approval starts without decisions; an update either leaves the spec alone (metadata,
//!   finalizers) or appends exactly one decision, which [`crate::approval::check_decision`]
//!   judges: a member of the deciding team, under their own name, not the requester granting,
//!   not the same person twice in a FourEyes round; nothing else of the spec changes.
//!
//! Mutating ([`mutate`]): fills in `spec.requester` of a new ApiSubscription and `by`/`at` of an
//! appended decision from the request, so a client sends only what it decides.

use corbel_sdk::{Operation, Request, Verdict};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{ApiSubscriptionSpec, ApprovalSpec};
use crate::approval;
use crate::settings::Settings;

pub fn validate(request: &Request, settings: &Settings) -> Verdict {
    // The status subresource is the controller's; a delete takes nothing from anyone.
    if request.sub_resource.is_some() || matches!(request.operation, Operation::Delete) {
        return Verdict::allow();
    }
    let result = match request.kind.kind.as_str() {
        "ApiSubscription" => subscription(request, settings),
        "Approval" => decision(request),
        _ => Ok(()),
    };
    match result {
        Ok(()) => Verdict::allow(),
        Err(message) => Verdict::deny(message).with_code(403),
    }
}

fn spec_of<T: DeserializeOwned>(object: Option<&Value>, kind: &str) -> Result<T, String> {
    let object = object.ok_or("the request carries no object")?;
    serde_json::from_value(object.get("spec").cloned().unwrap_or_default())
        .map_err(|e| format!("spec is not a valid {kind}: {e}"))
}

fn subscription(request: &Request, settings: &Settings) -> Result<(), String> {
    let user = &request.user_info.username;
    let new: ApiSubscriptionSpec = spec_of(request.object(), "ApiSubscription")?;
    if matches!(request.operation, Operation::Update) {
        let old: ApiSubscriptionSpec = spec_of(request.old_object(), "ApiSubscription")?;
        if old.application_ref != new.application_ref || old.requester != new.requester {
            return Err(
                "spec.applicationRef and spec.requester of an ApiSubscription do not change: delete it and subscribe again".into(),
            );
        }
        return Ok(());
    }
    match new.requester.as_deref() {
        Some(requester) if requester == user => {}
        Some(requester) => {
            return Err(format!(
                "spec.requester is {requester:?}, but the request comes from {user:?}: a subscription is requested under its requester's own name"
            ));
        }
        None => {
            return Err(format!(
                "spec.requester is missing: set it to {user:?} (the api mutating binding fills it in)"
            ));
        }
    }
    let namespace = &new.application_ref.namespace;
    let team = settings.team_of(namespace);
    if !request.user_info.groups.iter().any(|g| g == team) {
        return Err(format!(
            "{user} is not a member of team {team}, which owns namespace {namespace}: only its members subscribe its Applications"
        ));
    }
    Ok(())
}

fn decision(request: &Request) -> Result<(), String> {
    let new: ApprovalSpec = spec_of(request.object(), "Approval")?;
    if matches!(request.operation, Operation::Create) {
        if !new.decisions.is_empty() {
            return Err(
                "an Approval starts without decisions; a decision is added by updating it".into(),
            );
        }
        return Ok(());
    }
    let old: ApprovalSpec = spec_of(request.old_object(), "Approval")?;
    if old == new {
        return Ok(());
    }
    let mut unchanged = new.clone();
    unchanged.decisions = old.decisions.clone();
    if unchanged != old {
        return Err("only spec.decisions of an Approval changes, by appending a decision".into());
    }
    if new.decisions.len() != old.decisions.len() + 1
        || new.decisions[..old.decisions.len()] != old.decisions[..]
    {
        return Err(
            "append exactly one decision to spec.decisions; earlier decisions do not change".into(),
        );
    }
    let user = &request.user_info.username;
    approval::check_decision(
        &old,
        new.decisions.last().expect("one more than before"),
        user,
        &request.user_info.groups,
    )
}

/// Fills in who asked and who decided (and when) from the request.
pub fn mutate(request: &Request, now: &str) -> Verdict {
    if request.sub_resource.is_some() || matches!(request.operation, Operation::Delete) {
        return Verdict::allow();
    }
    let Some(object) = request.object() else {
        return Verdict::allow();
    };
    let user = request.user_info.username.as_str();
    let mut changed = object.clone();
    match (request.kind.kind.as_str(), request.operation) {
        ("ApiSubscription", Operation::Create) => {
            let spec = &mut changed["spec"];
            if spec.is_object() && spec.get("requester").is_none_or(Value::is_null) {
                spec["requester"] = user.into();
            }
        }
        ("Approval", Operation::Update) => {
            let before = request
                .old_object()
                .and_then(|o| o["spec"]["decisions"].as_array())
                .map(Vec::len)
                .unwrap_or(0);
            if let Some(decisions) = changed["spec"]["decisions"].as_array_mut() {
                for decision in decisions.iter_mut().skip(before) {
                    if decision.is_object() {
                        if decision.get("by").is_none_or(Value::is_null) {
                            decision["by"] = user.into();
                        }
                        if decision.get("at").is_none_or(Value::is_null) {
                            decision["at"] = now.into();
                        }
                    }
                }
            }
        }
        _ => {}
    }
    if &changed == object {
        Verdict::allow()
    } else {
        Verdict::mutate(changed)
    }
}

#[cfg(test)]
mod tests {
    use corbel_sdk::UserInfo;
    use serde_json::json;

    use super::*;

    fn request(
        kind: &str,
        operation: Operation,
        user: &str,
        groups: &[&str],
        object: Value,
        old: Option<Value>,
    ) -> Request {
        let mut builder = Request::builder(operation, kind)
            .group_version("api.corbel.dev", "v1alpha1")
            .namespace("orders")
            .name("checkout-orders")
            .object(object);
        if let Some(old) = old {
            builder = builder.old_object(old);
        }
        let mut request = builder.build();
        request.user_info = UserInfo {
            username: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        };
        request
    }

    fn approval(decisions: Value) -> Value {
        json!({"spec": {"strategy": "Simple", "decidingTeam": "orders", "requester": "carol",
                        "basePath": "/orders", "applicationRef": {"namespace": "shop", "name": "checkout"},
                        "decisions": decisions}})
    }

    fn subscription(requester: Option<&str>) -> Value {
        let mut spec = json!({"basePath": "/orders", "applicationRef": {"namespace": "shop", "name": "checkout"}});
        if let Some(r) = requester {
            spec["requester"] = r.into();
        }
        json!({"spec": spec})
    }

    #[test]
    fn a_member_of_the_applications_team_subscribes_under_their_own_name() {
        let settings = Settings::default();
        let ok = request(
            "ApiSubscription",
            Operation::Create,
            "carol",
            &["shop"],
            subscription(Some("carol")),
            None,
        );
        assert!(validate(&ok, &settings).is_allowed());
        let foreign = request(
            "ApiSubscription",
            Operation::Create,
            "alice",
            &["orders"],
            subscription(Some("alice")),
            None,
        );
        let verdict = validate(&foreign, &settings);
        assert!(
            verdict
                .message()
                .unwrap()
                .contains("alice is not a member of team shop"),
            "{verdict:?}"
        );
        let impostor = request(
            "ApiSubscription",
            Operation::Create,
            "carol",
            &["shop"],
            subscription(Some("dave")),
            None,
        );
        assert!(!validate(&impostor, &settings).is_allowed());
    }

    #[test]
    fn the_mutating_side_names_the_requester_and_the_decider() {
        let create = request(
            "ApiSubscription",
            Operation::Create,
            "carol",
            &["shop"],
            subscription(None),
            None,
        );
        let verdict = mutate(&create, "2026-12-05T06:00:00Z");
        assert_eq!(
            verdict.mutated_object().unwrap()["spec"]["requester"],
            "carol"
        );

        let decide = request(
            "Approval",
            Operation::Update,
            "alice",
            &["orders"],
            approval(json!([{"decision": "Grant", "reason": "fine"}])),
            Some(approval(json!([]))),
        );
        let verdict = mutate(&decide, "2026-12-05T06:00:00Z");
        let decision = &verdict.mutated_object().unwrap()["spec"]["decisions"][0];
        assert_eq!(decision["by"], "alice");
        assert_eq!(decision["at"], "2026-12-05T06:00:00Z");
    }

    #[test]
    fn a_decision_is_one_appended_entry_by_a_member_of_the_deciding_team() {
        let settings = Settings::default();
        let grant = json!([{"decision": "Grant", "by": "alice"}]);
        let ok = request(
            "Approval",
            Operation::Update,
            "alice",
            &["orders"],
            approval(grant.clone()),
            Some(approval(json!([]))),
        );
        assert!(validate(&ok, &settings).is_allowed());

        let own = request(
            "Approval",
            Operation::Update,
            "carol",
            &["orders", "shop"],
            approval(json!([{"decision": "Grant", "by": "carol"}])),
            Some(approval(json!([]))),
        );
        let verdict = validate(&own, &settings);
        assert!(
            verdict.message().unwrap().contains("cannot approve it"),
            "{verdict:?}"
        );

        let rewritten = request(
            "Approval",
            Operation::Update,
            "alice",
            &["orders"],
            approval(json!([{"decision": "Reject", "by": "alice"}])),
            Some(approval(grant.clone())),
        );
        assert!(
            validate(&rewritten, &settings)
                .message()
                .unwrap()
                .contains("append exactly one")
        );

        let mut moved = approval(json!([]));
        moved["spec"]["decidingTeam"] = "shop".into();
        let team = request(
            "Approval",
            Operation::Update,
            "carol",
            &["shop"],
            moved,
            Some(approval(json!([]))),
        );
        assert!(
            validate(&team, &settings)
                .message()
                .unwrap()
                .contains("only spec.decisions")
        );

        // The controller's own writes: metadata only.
        let metadata = request(
            "Approval",
            Operation::Update,
            "system:corbel",
            &[],
            approval(grant.clone()),
            Some(approval(grant)),
        );
        assert!(validate(&metadata, &settings).is_allowed());
    }

    #[test]
    fn an_approval_starts_without_decisions() {
        let settings = Settings::default();
        let forged = request(
            "Approval",
            Operation::Create,
            "mallory",
            &[],
            approval(json!([{"decision": "Grant", "by": "alice"}])),
            None,
        );
        assert!(!validate(&forged, &settings).is_allowed());
    }
}
