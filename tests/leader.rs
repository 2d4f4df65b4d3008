//! Kubernetes mode with several replicas. A real Kubernetes API server cannot be installed on
//! these machines, so the API is the embedded one, running as its own `corbel serve` process and
//! reached over HTTPS with its kubeconfig: the same protocol, and the same kube-rs client code,
//! that a cluster would see. Two more `corbel serve` processes run the probe controller against
//! it with leader election; the test kills the leader and watches the other take over.

use std::time::{Duration, Instant};

use corbel_e2e::probes::{create, create_crd, wait_all};
use corbel_e2e::{Embedded, Server, plugin};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const LEASE: Duration = Duration::from_secs(3);

async fn replica(kubeconfig: &std::path::Path, identity: &str) -> Server {
    let extra = format!(
        "kubernetes: {{kubeconfig: {}}}\nleaderElection: {{identity: {identity}, leaseDuration: 3s, renewPeriod: 1s}}\ncontrollers:\n  - name: probe\n    plugin: {}\n",
        kubeconfig.display(),
        plugin("probe_controller").display()
    );
    Server::start("[]", &extra).await
}

/// Waits until the replica's controllers have loaded (it is ready) and it has run an election round.
async fn wait_ready(server: &Server) {
    let started = Instant::now();
    loop {
        let (code, _) = server.get_text("/readyz").await;
        if code == 200 && !metric(server, "corbel_leader{").await.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("corbel-controllers")
        .await
        .unwrap()
        .and_then(|l| l.spec?.holder_identity)
}

/// The `corbel_leader` line of the controllers' Lease. A replica exports one line per Lease it
/// runs for (also `…-plugins`, whose holder may be the other replica), in no fixed order.
async fn metric(server: &Server, name: &str) -> String {
    let (_, text) = server.get_text("/metrics").await;
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("/corbel-controllers\""))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn when_the_leader_dies_the_other_replica_takes_over_within_the_lease_and_loses_no_reconcile()
{
    let api = Embedded::start("[]", "", None).await;
    let client = api.client().await;
    create_crd(&client).await;
    let mut first = Some(replica(&api.kubeconfig, "first").await);
    let second = replica(&api.kubeconfig, "second").await;
    wait_ready(first.as_ref().unwrap()).await;
    wait_ready(&second).await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    let leader = loop {
        if let Some(holder) = holder(&leases).await {
            break holder;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nobody took the Lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let context = || {
        format!(
            "{}\n{}\n{}",
            api.server.log(),
            first.as_ref().map(|s| s.log()).unwrap_or_default(),
            second.log()
        )
    };

    let before: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    for name in &before {
        create(&client, name, serde_json::json!({"message": name})).await;
    }
    wait_all(
        &client,
        &before,
        "Ready",
        "True",
        Duration::from_secs(20),
        context,
    )
    .await;

    // Exactly one replica leads, by its own account and the Lease's.
    let (leading, following) = if leader == "first" {
        (first.as_ref().unwrap(), &second)
    } else {
        (&second, first.as_ref().unwrap())
    };
    assert!(metric(leading, "corbel_leader{").await.ends_with(" 1"));
    assert!(metric(following, "corbel_leader{").await.ends_with(" 0"));

    // Kill the leader (SIGKILL: it cannot release the Lease), then keep creating work.
    let killed_at = Instant::now();
    if leader == "first" {
        drop(first.take());
    } else {
        drop(second);
        // `second` is gone; keep `first` as the survivor.
        return survive(api, client, first.take().unwrap(), "first", killed_at).await;
    }
    survive(api, client, second, "second", killed_at).await;
}

async fn survive(
    api: Embedded,
    client: kube::Client,
    survivor: Server,
    name: &str,
    killed_at: Instant,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let during: Vec<String> = (0..5).map(|i| format!("during-{i}")).collect();
    for probe in &during {
        create(&client, probe, serde_json::json!({"message": probe})).await;
    }
    let took_over = loop {
        if holder(&leases).await.as_deref() == Some(name) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "{name} never took the Lease over:\n{}",
            survivor.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The lease duration plus one renew period (the survivor's polling) at most.
    assert!(
        took_over <= LEASE + Duration::from_millis(1500),
        "took over after {took_over:?}, more than the {LEASE:?} lease and a renew period"
    );
    wait_all(
        &client,
        &during,
        "Ready",
        "True",
        Duration::from_secs(20),
        || format!("{}\n{}", api.server.log(), survivor.log()),
    )
    .await;
    assert!(metric(&survivor, "corbel_leader{").await.ends_with(" 1"));
    eprintln!("takeover after {took_over:?}");
}

/// Issue 18, bug 6: a leader whose watches are all refused (RBAC allows its Lease, not its kind)
/// stops at once on SIGTERM instead of waiting out `shutdownGracePeriod` (kube-runtime would hold
/// the controller until a first list that never succeeds; the loop now waits before it, until the
/// kind can be listed, and that wait ends with the stop).
#[tokio::test]
async fn a_leader_whose_watches_are_forbidden_stops_at_once_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "replica-token,replica,1,\"replicas\"\n").unwrap();
    let auth = format!(
        "auth:\n  tokenFile: {}\n  rules:\n  - subjects: [{{group: replicas}}]\n    verbs: [get, create, update, patch]\n    groups: [coordination.k8s.io]\n    resources: [leases]\n",
        tokens.display()
    );
    let api = Embedded::start("[]", &auth, None).await;
    create_crd(&api.client().await).await;
    // The replica's kubeconfig: the API's, with the restricted user's token.
    let mut kubeconfig: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&api.kubeconfig).unwrap()).unwrap();
    kubeconfig["users"][0]["user"]["token"] = "replica-token".into();
    let restricted = dir.path().join("kubeconfig");
    std::fs::write(&restricted, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
    let extra = format!(
        "shutdownGracePeriod: 10s\nkubernetes: {{kubeconfig: {}}}\nleaderElection: {{identity: only, leaseDuration: 3s, renewPeriod: 1s}}\ncontrollers:\n  - name: probe\n    plugin: {}\n",
        restricted.display(),
        plugin("probe_controller").display()
    );
    let replica = Server::start("[]", &extra).await;
    let started = Instant::now();
    // It leads (its controllers start), and their lists are refused: the loop waits for the RBAC
    // to allow them, saying so in the log and in /readyz.
    while !replica.log().contains("listing Probe objects is forbidden") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica never led with its watches refused:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut replica = replica;
    let stopping = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &replica.pid().to_string()])
        .status()
        .unwrap();
    while replica.is_running() {
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "corbel did not stop:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = stopping.elapsed();
    let log = replica.log();
    assert!(
        took < Duration::from_secs(4),
        "SIGTERM took {took:?} (the grace period is 10 s):\n{log}"
    );
    assert!(log.contains("released the Lease"), "{log}");
    eprintln!("stopped {took:?} after SIGTERM with every watch forbidden");
}
