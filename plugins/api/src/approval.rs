//! What the decisions on an Approval add up to, under its strategy, and which new decision a
//! person may add. The reconciler ([`crate::reconcile`]) derives the state with [`state`];
//! admission ([`crate::admission`]) refuses a decision with [`check_decision`]. Both read only
//! the Approval, so they cannot disagree.
//!
//! The decisions are read oldest first. `Reject` and `Suspend` take effect at once and start a
//! new round; `Grant` grants under `Auto` and `Simple`, and under `FourEyes` once two different
//! people (neither the requester) granted in the same round.

use crate::api::{ApprovalSpec, Decision, State, Strategy, Verdict};

/// The state now, and a sentence saying why (or what it waits for).
pub fn state(spec: &ApprovalSpec) -> (State, String) {
    let (state, why, _) = state_at(spec, now());
    (state, why)
}

/// Seconds since the Unix epoch (the host's wall clock).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The state at `now` (seconds since the Unix epoch), why, and when a grant in force expires.
/// A grant whose `at` cannot be read does not expire: admission fills `at` in, so only an
/// Approval written around it lacks one.
pub fn state_at(spec: &ApprovalSpec, now: u64) -> (State, String, Option<u64>) {
    let (state, why, granted_at, _) = decided(spec);
    let expires = match (state, spec.grant_valid_seconds, granted_at) {
        (State::Granted, Some(valid), Some(at)) => Some(at.saturating_add(valid)),
        _ => None,
    };
    match expires {
        Some(expires) if now >= expires => (
            State::Expired,
            format!(
                "{why}, valid for {}s: expired at {}; a Grant by a member of team {} renews it",
                spec.grant_valid_seconds.unwrap_or_default(),
                corbel_sdk::controller::rfc3339(expires),
                spec.deciding_team
            ),
            None,
        ),
        _ => (state, why, expires),
    }
}

/// The state the decisions add up to, why, when the grant in force was completed, and who granted
/// in the current round.
fn decided(spec: &ApprovalSpec) -> (State, String, Option<u64>, Vec<&str>) {
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
    let mut granted_at: Option<u64> = None;
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
        let at = decision
            .at
            .as_deref()
            .and_then(corbel_sdk::controller::parse_rfc3339);
        // A grant that had expired when this decision came closes its round: renewing it takes
        // as many Grants as granting it did.
        if let (State::Granted, Some(valid), Some(granted), Some(at)) =
            (state, spec.grant_valid_seconds, granted_at, at)
            && at >= granted.saturating_add(valid)
        {
            granted_by.clear();
            granted_at = None;
            state = State::Pending;
        }
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
                    granted_at = at;
                    why = format!("granted by {}{reason}", granted_by.join(" and "));
                } else if state != State::Granted {
                    why = format!(
                        "granted by {by} so far; waiting for a second member of team {team} (FourEyes)"
                    );
                }
            }
            Verdict::Reject => {
                granted_by.clear();
                granted_at = None;
                state = State::Rejected;
                why = format!("rejected by {by}{reason}");
            }
            Verdict::Suspend => {
                granted_by.clear();
                granted_at = None;
                state = State::Suspended;
                why = format!("suspended by {by}{reason}");
            }
        }
    }
    (state, why, granted_at, granted_by)
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
        let already = if new.decision == Verdict::Grant {
            // Who granted in the current round; an expired grant starts a new one, in which
            // those who granted before may grant again.
            let expired = state_at(spec, now()).0 == State::Expired;
            !expired && decided(spec).3.contains(&user)
        } else {
            // The decisions since the last one of another kind: the current round of this kind.
            spec.decisions
                .iter()
                .rev()
                .take_while(|d| d.decision == new.decision)
                .any(|earlier| earlier.by.as_deref() == Some(user))
        };
        if already {
            return Err(format!(
                "{user} already decided {:?} on this Approval; FourEyes needs a second, different member of team {team}",
                new.decision
            ));
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
            grant_valid_seconds: None,
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

    /// Grants at `at` seconds since the epoch, valid for 100 s.
    fn dated(strategy: Strategy, decisions: &[(Verdict, &str, u64)]) -> ApprovalSpec {
        let mut spec = spec(strategy, &[]);
        spec.grant_valid_seconds = Some(100);
        spec.decisions = decisions
            .iter()
            .map(|(decision, by, at)| Decision {
                decision: *decision,
                by: Some((*by).into()),
                at: Some(corbel_sdk::controller::rfc3339(*at)),
                reason: None,
            })
            .collect();
        spec
    }

    #[test]
    fn a_grant_expires_after_its_validity_and_a_new_round_renews_it() {
        let simple = dated(Strategy::Simple, &[(G, "alice", 1_000)]);
        assert_eq!(
            state_at(&simple, 1_050),
            (State::Granted, "granted by alice".into(), Some(1_100))
        );
        let (state, why, next) = state_at(&simple, 1_100);
        assert_eq!((state, next), (State::Expired, None));
        assert!(why.contains("expired at 1970-01-01T00:18:20Z"), "{why}");
        let renewed = dated(
            Strategy::Simple,
            &[(G, "alice", 1_000), (G, "alice", 1_200)],
        );
        assert_eq!(
            state_at(&renewed, 1_250).2,
            Some(1_300),
            "a Grant after expiry renews"
        );

        // FourEyes: after expiry one Grant is not enough, and the same two may grant again.
        let four = |decisions: &[(Verdict, &str, u64)]| dated(Strategy::FourEyes, decisions);
        let expired = four(&[(G, "alice", 1_000), (G, "bob", 1_010)]);
        assert_eq!(state_at(&expired, 1_110).0, State::Expired);
        let one = four(&[(G, "alice", 1_000), (G, "bob", 1_010), (G, "alice", 1_200)]);
        assert_eq!(state_at(&one, 1_210).0, State::Pending);
        let two = four(&[
            (G, "alice", 1_000),
            (G, "bob", 1_010),
            (G, "alice", 1_200),
            (G, "bob", 1_201),
        ]);
        assert_eq!(
            state_at(&two, 1_210),
            (
                State::Granted,
                "granted by alice and bob".into(),
                Some(1_301)
            )
        );
        // A suspension ends the grant: nothing left to expire.
        let suspended = dated(Strategy::Simple, &[(G, "alice", 1_000), (S, "bob", 1_010)]);
        assert_eq!(state_at(&suspended, 5_000).0, State::Suspended);
        // Without a validity a grant lasts.
        let mut lasting = simple.clone();
        lasting.grant_valid_seconds = None;
        assert_eq!(state_at(&lasting, u64::MAX).0, State::Granted);
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
