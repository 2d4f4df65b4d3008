//! What the decisions on an Approval add up to, under its strategy, and which new decision a
//! person may add. The reconciler ([`crate::reconcile`]) derives the state with [`state`];
//! admission ([`crate::admission`]) refuses a decision with [`check_decision`]. Both read only
//! the Approval, so they cannot disagree.
//!
//! The decisions are read oldest first. `Reject` and `Suspend` take effect at once and start a
//! new round; `Grant` grants under `Auto` and `Simple`, and under `FourEyes` once two different
//! people (neither the requester) granted in the same round.

use crate::api::{ApprovalSpec, Decision, State, Strategy, Verdict};

/// The state, and a sentence saying why (or what it waits for).
pub fn state(spec: &ApprovalSpec) -> (State, String) {
    let team = &spec.deciding_team;
    let mut state = match spec.strategy {
        Strategy::Auto => State::Granted,
        _ => State::Pending,
    };
    let mut why = match spec.strategy {
        Strategy::Auto => "granted automatically (strategy Auto)".to_string(),
        Strategy::Simple => format!("waiting for approval by team {team}"),
        Strategy::FourEyes => {
            format!("waiting for approval by two members of team {team} (FourEyes)")
        }
    };
    let mut granted_by: Vec<&str> = Vec::new();
    for decision in &spec.decisions {
        // Admission refuses both; an Approval written around it still cannot grant this way.
        let Some(by) = decision.by.as_deref() else {
            continue;
        };
        let reason = decision
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match decision.decision {
            Verdict::Grant if by == spec.requester => continue,
            Verdict::Grant => {
                if !granted_by.contains(&by) {
                    granted_by.push(by);
                }
                let needed = if spec.strategy == Strategy::FourEyes {
                    2
                } else {
                    1
                };
                if granted_by.len() >= needed {
                    state = State::Granted;
                    why = format!("granted by {}{reason}", granted_by.join(" and "));
                } else if state != State::Granted {
                    why = format!(
                        "granted by {by} so far; waiting for a second member of team {team} (FourEyes)"
                    );
                }
            }
            Verdict::Reject => {
                granted_by.clear();
                state = State::Rejected;
                why = format!("rejected by {by}{reason}");
            }
            Verdict::Suspend => {
                granted_by.clear();
                state = State::Suspended;
                why = format!("suspended by {by}{reason}");
            }
        }
    }
    (state, why)
}

/// Whether `user` (in `groups`) may add `new` to the decisions of `spec`; the refusal says why.
pub fn check_decision(
    spec: &ApprovalSpec,
    new: &Decision,
    user: &str,
    groups: &[String],
) -> Result<(), String> {
    let team = &spec.deciding_team;
    if !groups.iter().any(|g| g == team) {
        return Err(format!(
            "only members of team {team} decide on this Approval, and {user} is not in group {team}"
        ));
    }
    match new.by.as_deref() {
        Some(by) if by == user => {}
        Some(by) => {
            return Err(format!(
                "a decision is recorded under the name of who makes it: by is {by:?}, but the request comes from {user:?}"
            ));
        }
        None => {
            return Err(format!(
                "the decision names no one: set by to {user:?} (the api mutating binding fills it in)"
            ));
        }
    }
    if new.decision == Verdict::Grant && user == spec.requester {
        return Err(format!(
            "{user} requested this subscription and cannot approve it; another member of team {team} must"
        ));
    }
    if spec.strategy == Strategy::FourEyes {
        // The decisions since the last one of another kind: the current round of this kind.
        let round = spec
            .decisions
            .iter()
            .rev()
            .take_while(|d| d.decision == new.decision);
        for earlier in round {
            if earlier.by.as_deref() == Some(user) {
                return Err(format!(
                    "{user} already decided {:?} on this Approval; FourEyes needs a second, different member of team {team}",
                    new.decision
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NamespacedRef;

    fn spec(strategy: Strategy, decisions: &[(Verdict, &str)]) -> ApprovalSpec {
        ApprovalSpec {
            strategy,
            deciding_team: "orders".into(),
            requester: "carol".into(),
            base_path: "/orders".into(),
            application_ref: NamespacedRef {
                namespace: "shop".into(),
                name: "checkout".into(),
            },
            decisions: decisions
                .iter()
                .map(|(decision, by)| decision_by(*decision, by))
                .collect(),
        }
    }

    fn decision_by(decision: Verdict, by: &str) -> Decision {
        Decision {
            decision,
            by: Some(by.into()),
            at: None,
            reason: None,
        }
    }

    const G: Verdict = Verdict::Grant;
    const S: Verdict = Verdict::Suspend;
    const R: Verdict = Verdict::Reject;

    /// A strategy, the decisions in order (verdict, by), and the state they lead to.
    type Case<'a> = (Strategy, &'a [(Verdict, &'a str)], State);

    #[test]
    fn the_state_follows_the_decisions_under_each_strategy() {
        let cases: &[Case] = &[
            (Strategy::Auto, &[], State::Granted),
            (Strategy::Auto, &[(S, "alice")], State::Suspended),
            (Strategy::Simple, &[], State::Pending),
            (Strategy::Simple, &[(G, "alice")], State::Granted),
            (
                Strategy::Simple,
                &[(G, "alice"), (S, "bob")],
                State::Suspended,
            ),
            (Strategy::Simple, &[(R, "alice")], State::Rejected),
            (Strategy::Simple, &[(G, "carol")], State::Pending),
            (Strategy::FourEyes, &[(G, "alice")], State::Pending),
            (
                Strategy::FourEyes,
                &[(G, "alice"), (G, "alice")],
                State::Pending,
            ),
            (
                Strategy::FourEyes,
                &[(G, "alice"), (G, "bob")],
                State::Granted,
            ),
            (
                Strategy::FourEyes,
                &[(G, "alice"), (G, "carol")],
                State::Pending,
            ),
            (
                Strategy::FourEyes,
                &[(G, "alice"), (G, "bob"), (S, "bob"), (G, "alice")],
                State::Suspended,
            ),
        ];
        for (strategy, decisions, expected) in cases {
            let (state, why) = state(&spec(*strategy, decisions));
            assert_eq!(state, *expected, "{strategy:?} {decisions:?}: {why}");
        }
    }

    #[test]
    fn a_pending_approval_says_which_team_it_waits_for() {
        let (_, why) = state(&spec(Strategy::Simple, &[]));
        assert_eq!(why, "waiting for approval by team orders");
        let (_, why) = state(&spec(Strategy::FourEyes, &[(G, "alice")]));
        assert!(why.contains("second member of team orders"), "{why}");
    }

    fn check(
        spec: &ApprovalSpec,
        decision: Verdict,
        user: &str,
        groups: &[&str],
    ) -> Result<(), String> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        check_decision(spec, &decision_by(decision, user), user, &groups)
    }

    #[test]
    fn only_members_of_the_deciding_team_decide() {
        let error = check(&spec(Strategy::Simple, &[]), G, "mallory", &["shop"]).unwrap_err();
        assert!(error.contains("only members of team orders"), "{error}");
        assert_eq!(
            check(&spec(Strategy::Simple, &[]), G, "alice", &["orders"]),
            Ok(())
        );
    }

    #[test]
    fn the_requester_cannot_approve_their_own_subscription() {
        let error = check(
            &spec(Strategy::Simple, &[]),
            G,
            "carol",
            &["orders", "shop"],
        )
        .unwrap_err();
        assert!(
            error.contains("carol requested this subscription and cannot approve it"),
            "{error}"
        );
        // Withdrawing is fine.
        assert_eq!(
            check(&spec(Strategy::Simple, &[]), S, "carol", &["orders"]),
            Ok(())
        );
    }

    #[test]
    fn four_eyes_refuses_a_second_decision_by_the_same_person() {
        let one = spec(Strategy::FourEyes, &[(G, "alice")]);
        let error = check(&one, G, "alice", &["orders"]).unwrap_err();
        assert!(error.contains("alice already decided Grant"), "{error}");
        assert_eq!(check(&one, G, "bob", &["orders"]), Ok(()));
        // A suspension by one of the granters starts another round.
        assert_eq!(check(&one, S, "alice", &["orders"]), Ok(()));
        let suspended = spec(Strategy::FourEyes, &[(G, "alice"), (G, "bob"), (S, "bob")]);
        assert_eq!(check(&suspended, G, "alice", &["orders"]), Ok(()));
    }

    #[test]
    fn a_decision_is_recorded_under_the_name_of_its_maker() {
        let mut decision = decision_by(G, "bob");
        let error = check_decision(
            &spec(Strategy::Simple, &[]),
            &decision,
            "alice",
            &["orders".into()],
        )
        .unwrap_err();
        assert!(error.contains("by is \"bob\""), "{error}");
        decision.by = None;
        let error = check_decision(
            &spec(Strategy::Simple, &[]),
            &decision,
            "alice",
            &["orders".into()],
        )
        .unwrap_err();
        assert!(error.contains("set by to \"alice\""), "{error}");
    }
}
