//! Leader election by a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! `renewTime` every renew period; a candidate takes the Lease over when it has seen no renewal
//! for a whole lease duration. Expiry is judged by the candidate's own clock from when *it*
//! last saw the Lease change, never by comparing timestamps written by another machine, so
//! clock skew between replicas cannot make two leaders. Writes are guarded by resourceVersion.
//!
//! A leader that cannot renew steps down before its Lease can expire for the others
//! (`lease duration - renew period` after its last successful renewal).

#[cfg(test)]
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

use crate::config::LeaderElectionConfig;

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    /// The Lease's resourceVersion when this replica last saw it change, and when that was.
    observed: Option<(String, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// This replica holds the Lease (acquired or renewed now).
    Leading,
    /// Another replica holds it.
    Following,
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl Elector {
    pub fn new(client: kube::Client, config: &LeaderElectionConfig, identity: String) -> Elector {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            name: config.lease_name.clone(),
            identity,
            duration: config.lease_duration,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One election round: create, renew or take over the Lease if this replica may.
    pub async fn round(&mut self) -> Result<Round, kube::Error> {
        let seconds = self.duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Round::Leading),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Round::Following),
                Err(e) => Err(e),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let seen_at = match &self.observed {
            Some((seen, at)) if *seen == version => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((version, at));
                at
            }
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_for =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(seconds).max(0) as u64);
        let mine = holder == self.identity;
        let free = holder.is_empty() || seen_at.elapsed() >= held_for;
        if !mine && !free {
            return Ok(Round::Following);
        }
        if !mine {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.observed = written
                    .metadata
                    .resource_version
                    .map(|v| (v, Instant::now()));
                if !mine {
                    tracing::info!(lease = %self.name, identity = %self.identity, previous = %holder, "acquired the Lease: leading");
                }
                Ok(Round::Leading)
            }
            // Someone else wrote first: they lead (or renewed) this round.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Round::Following),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up (on shutdown), so that another replica need not wait for it to expire.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the Lease"),
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "failed to release the Lease (the others take over when it expires)")
            }
        }
    }
}

/// Runs `lead` only while holding the Lease: starts it when elected, and stops it (by turning its
/// stop signal true and waiting for it) when leadership is lost or on shutdown.
pub async fn run<F, Fut>(
    mut elector: Elector,
    config: LeaderElectionConfig,
    state: &corbel_telemetry::Health,
    mut shutdown: watch::Receiver<bool>,
    lead: F,
) where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let metrics = &state.metrics;
    let lease = format!("{}/{}", config.namespace, config.lease_name);
    metrics.set_leader(&lease, false);
    let mut forbidden = false;
    let step_down_after = config.lease_duration.saturating_sub(config.renew_period);
    let mut leading: Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> = None;
    let mut last_renewal = Instant::now();
    loop {
        let round = elector.round().await;
        // Forbidden is a misconfiguration, not a passing failure: say so once, loudly, and keep
        // readiness off until the RBAC is fixed (a replica that can never lead is not healthy).
        let now_forbidden = matches!(&round, Err(kube::Error::Api(status)) if status.code == 403);
        if now_forbidden != forbidden {
            forbidden = now_forbidden;
            let problem = now_forbidden.then(|| {
                format!(
                    "leader election is forbidden: Corbel's service account needs create on Leases in namespace {} and get, update, patch on the Lease {} (corbel kubernetes rbac prints the RBAC)",
                    config.namespace, config.lease_name
                )
            });
            if let (Some(problem), Err(e)) = (&problem, &round) {
                tracing::error!(lease, error = %e, "{problem}");
            }
            state.report_problem("leaderElection", problem);
        }
        match (&round, leading.is_some()) {
            (Ok(Round::Leading), false) => {
                let (stop, stopped) = watch::channel(false);
                leading = Some((stop, tokio::spawn(lead(stopped))));
                last_renewal = Instant::now();
                metrics.set_leader(&lease, true);
            }
            (Ok(Round::Leading), true) => last_renewal = Instant::now(),
            (Ok(Round::Following), true) => {
                tracing::warn!(
                    lease,
                    "another replica holds the Lease now: stopping the controllers"
                );
                stop_leading(&mut leading).await;
                metrics.set_leader(&lease, false);
            }
            (Err(e), true) if last_renewal.elapsed() >= step_down_after => {
                tracing::error!(lease, error = %e, "could not renew the Lease in time: stopping the controllers");
                stop_leading(&mut leading).await;
                metrics.set_leader(&lease, false);
            }
            (Err(_), _) if forbidden => {}
            (Err(e), _) => {
                tracing::warn!(lease, error = %e, "leader election round failed; retrying")
            }
            (Ok(Round::Following), false) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(config.renew_period) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    if leading.is_some() {
        stop_leading(&mut leading).await;
        elector.release().await;
    }
    metrics.set_leader(&lease, false);
}

async fn stop_leading(leading: &mut Option<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>) {
    if let Some((stop, task)) = leading.take() {
        let _ = stop.send(true);
        let _ = task.await;
    }
}

/// The elector against a scripted API server (tower-test): the races and expiries a real
/// cluster produces but the embedded API cannot be made to produce on cue. The end-to-end
/// failover between two processes is in `tests/leader.rs`.
#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    fn elector(duration: Duration) -> (Elector, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let config = LeaderElectionConfig {
            lease_duration: duration,
            ..Default::default()
        };
        (Elector::new(client, &config, "me".into()), handle)
    }

    fn lease(holder: &str, version: &str, seconds: i32) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "corbel-controllers", "namespace": "default", "resourceVersion": version},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds, "leaseTransitions": 3,
                     "renewTime": "2026-01-01T00:00:00.000000Z"},
        })
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": reason})
    }

    /// Answers the next request, checking its method and path; returns its body.
    async fn answer(
        handle: &mut Handle,
        method: Method,
        path: &str,
        code: u16,
        body: Value,
    ) -> Value {
        let (request, respond) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), method);
        assert_eq!(request.uri().path(), path);
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .unwrap()
            .to_bytes();
        respond.send_response(
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/corbel-controllers";

    #[tokio::test]
    async fn without_a_lease_the_first_replica_creates_it_and_leads() {
        let (mut elector, mut api) = elector(Duration::from_secs(15));
        let round = tokio::spawn(async move { elector.round().await.unwrap() });
        answer(&mut api, Method::GET, PATH, 404, status(404, "NotFound")).await;
        let created = answer(
            &mut api,
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            201,
            lease("me", "1", 15),
        )
        .await;
        assert_eq!(created["spec"]["holderIdentity"], "me");
        assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(round.await.unwrap(), Round::Leading);
    }

    #[tokio::test]
    async fn a_lease_another_replica_holds_is_left_alone() {
        let (mut elector, mut api) = elector(Duration::from_secs(15));
        let round = tokio::spawn(async move { (elector.round().await.unwrap(), elector) });
        answer(&mut api, Method::GET, PATH, 200, lease("other", "7", 15)).await;
        let (result, _elector) = round.await.unwrap();
        assert_eq!(result, Round::Following);
        // No write followed the read.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), api.next_request())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_lease_nobody_renewed_for_its_duration_is_taken_over() {
        let (mut elector, mut api) = elector(Duration::from_secs(1));
        // First sight of version 7: the holder may still be alive.
        let round = tokio::spawn(async move { (elector.round().await.unwrap(), elector) });
        answer(&mut api, Method::GET, PATH, 200, lease("other", "7", 1)).await;
        let (result, mut elector) = round.await.unwrap();
        assert_eq!(result, Round::Following);
        // Still version 7 a whole lease duration later (by this replica's clock): taken over.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let round = tokio::spawn(async move { elector.round().await.unwrap() });
        answer(&mut api, Method::GET, PATH, 200, lease("other", "7", 1)).await;
        let written = answer(&mut api, Method::PUT, PATH, 200, lease("me", "8", 1)).await;
        assert_eq!(written["spec"]["holderIdentity"], "me");
        assert_eq!(written["spec"]["leaseTransitions"], 4);
        assert_eq!(
            written["metadata"]["resourceVersion"], "7",
            "the write is guarded by the version read"
        );
        assert_eq!(round.await.unwrap(), Round::Leading);
    }

    #[tokio::test]
    async fn losing_the_race_for_a_free_lease_is_following_not_an_error() {
        let (mut elector, mut api) = elector(Duration::from_secs(15));
        let round = tokio::spawn(async move { elector.round().await });
        answer(&mut api, Method::GET, PATH, 200, lease("", "9", 15)).await;
        answer(&mut api, Method::PUT, PATH, 409, status(409, "Conflict")).await;
        assert_eq!(round.await.unwrap().unwrap(), Round::Following);
    }

    #[tokio::test]
    async fn an_unreachable_api_is_an_error_the_caller_retries() {
        let (mut elector, mut api) = elector(Duration::from_secs(15));
        let round = tokio::spawn(async move { elector.round().await });
        answer(
            &mut api,
            Method::GET,
            PATH,
            503,
            status(503, "ServiceUnavailable"),
        )
        .await;
        assert!(round.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_forbidden_lease_turns_readiness_off_until_the_rbac_is_fixed() {
        let (elector, mut api) = elector(Duration::from_secs(15));
        let config = LeaderElectionConfig {
            renew_period: Duration::from_millis(10),
            ..Default::default()
        };
        let state = Arc::new(corbel_telemetry::Health::new());
        let (stop, shutdown) = watch::channel(false);
        let running = {
            let state = state.clone();
            tokio::spawn(async move {
                run(elector, config, &state, shutdown, |_| async {}).await;
            })
        };
        answer(&mut api, Method::GET, PATH, 403, status(403, "Forbidden")).await;
        // The next round's request is made after the first round's report.
        let (request, respond) = api.next_request().await.expect("a second round");
        let problem = state.problems().get("leaderElection").cloned();
        let problem = problem.expect("a forbidden Lease is a problem readiness reports");
        assert!(problem.contains("corbel kubernetes rbac"), "{problem}");
        assert_eq!(request.uri().path(), PATH);
        // Allowed now (another replica leads): the problem is gone.
        respond.send_response(
            Response::builder()
                .body(Body::from(
                    serde_json::to_vec(&lease("other", "7", 15)).unwrap(),
                ))
                .unwrap(),
        );
        let _ = api.next_request().await;
        assert!(state.problems().is_empty());
        stop.send(true).unwrap();
        drop(api);
        running.await.unwrap();
    }
}
