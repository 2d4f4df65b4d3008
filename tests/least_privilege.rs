//! Kubernetes mode under exactly the RBAC `corbel kubernetes rbac` generates (issue 18). The API
//! server is the embedded one (a real one cannot be installed here), which enforces its `auth`
//! rules as Kubernetes enforces RBAC: the generated ClusterRole's rules become rules for every
//! namespace, each Role's rules rules for its namespace, `resourceNames` included, all for the
//! user a ServiceAccount token authenticates as. A replica authenticating as that service account
//! runs a controller, leader election and the Plugin kind with nothing more: the controller
//! reconciles (status, an owned ConfigMap, a Secret it is granted), the Lease is held, a Plugin
//! installs and serves, Events are written, and nothing is refused. Without one of those rules,
//! `/readyz` says which permission is missing instead of looking healthy.

use std::time::{Duration, Instant};

use corbel_e2e::probes::{create, create_crd, probes, resource};
use corbel_e2e::registry::{TestRegistry, Workspace, ok};
use corbel_e2e::{Server, plugin, review};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

/// The user a token of ServiceAccount corbel/corbel authenticates as, in Kubernetes.
const CORBEL: &str = "system:serviceaccount:corbel:corbel";

/// Accounts bound to all of the generated rules but one: (account, what its rules leave out).
const SHORT: [(&str, &str); 4] = [
    ("no-lease", "leases"),
    ("no-plugins", "plugins"),
    ("no-probes", "probes"),
    ("no-configmaps", "configmaps"),
];

/// The replica's configuration: a controller that reads a Secret, writes ConfigMaps and records
/// Events; leader election in Corbel's namespace; the Plugin kind (Kubernetes mode).
fn replica_config(kubeconfig: &std::path::Path, registry: &TestRegistry) -> String {
    format!(
        "tls: {{development: {{dir: tls}}}}
kubernetes: {{kubeconfig: {}}}
leaderElection: {{namespace: corbel, identity: replica, leaseDuration: 3s, renewPeriod: 1s}}
registry: {{cacheDir: cache, caFile: ca.crt, allowUnsigned: ['{}/*']}}
controllers:
  - name: probe
    plugin: {}
    grants:
      secrets: [{{namespace: default, name: creds}}]
      resources:
        read: [{{apiVersion: v1, kind: ConfigMap}}]
        write: [{{apiVersion: v1, kind: ConfigMap}}]
bindings: []
",
        kubeconfig.display(),
        registry.address,
        plugin("probe_controller").display()
    )
}

/// The generated RBAC as the embedded API's rules for `user`: a ClusterRole's rules for every
/// namespace and the cluster scope, a Role's for its namespace.
fn auth_rules(rbac: &str, user: &str) -> Vec<Value> {
    let mut rules = Vec::new();
    for document in rbac.split("\n---\n").skip(1) {
        let object: Value = serde_yaml_ng::from_str(document).unwrap();
        let namespaces = match object["kind"].as_str().unwrap() {
            "ClusterRole" => json!(["*"]),
            "Role" => json!([object["metadata"]["namespace"]]),
            _ => continue,
        };
        for rule in object["rules"].as_array().unwrap() {
            let mut converted = json!({
                "subjects": [{"user": user}],
                "verbs": rule["verbs"],
                "groups": rule["apiGroups"],
                "resources": rule["resources"],
                "namespaces": namespaces,
            });
            if let Some(names) = rule.get("resourceNames") {
                converted["resourceNames"] = names.clone();
            }
            rules.push(converted);
        }
    }
    rules
}

/// The API's kubeconfig (`from`) with `token` for its user, at `to`.
fn kubeconfig_with(from: &std::path::Path, token: &str, to: &std::path::Path) {
    let mut kubeconfig: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    kubeconfig["users"][0]["user"]["token"] = token.into();
    std::fs::write(to, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
}

async fn eventually<T>(
    what: &str,
    limit: Duration,
    context: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn forbidden_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            // kube-rs and the API server's wordings of a refusal (not any "403": digests have it).
            let lower = l.to_lowercase();
            lower.contains("forbidden") || l.contains("code: 403") || l.contains("with 403")
        })
        .collect()
}

/// The registry (with the plugin `policies/demo:v1`), the replica's workspace (its
/// configuration written), and the embedded API enforcing the generated RBAC for [`CORBEL`] and,
/// less one rule each, for the [`SHORT`] accounts; Corbel's namespace and the Secret the
/// controller is granted exist.
struct World {
    registry: TestRegistry,
    ws: Workspace,
    /// The embedded API's own workspace.
    api: Workspace,
    api_server: Server,
    admin: kube::Client,
}

impl World {
    async fn start() -> World {
        let registry = TestRegistry::start();
        let ws = Workspace::new(&registry, "", "[]");
        let demo = registry.reference("policies/demo:v1");
        ok(&ws.corbel(&["push", plugin("require_labels").to_str().unwrap(), &demo]));
        std::fs::write(
            ws.path("corbel.yaml"),
            replica_config(&ws.path("kubeconfig"), &registry),
        )
        .unwrap();

        // The RBAC for this configuration, as an operator would apply it.
        let output = std::process::Command::new(corbel_e2e::bin())
            .args(["kubernetes", "rbac", "-c"])
            .arg(ws.path("corbel.yaml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rbac = String::from_utf8(output.stdout).unwrap();
        let mut rules = auth_rules(&rbac, CORBEL);
        let groups = "\"system:serviceaccounts,system:serviceaccounts:corbel\"";
        let mut tokens = format!("corbel-token,{CORBEL},0,{groups}\n");
        for (i, (account, left_out)) in SHORT.iter().enumerate() {
            let user = format!("system:serviceaccount:corbel:{account}");
            let all = auth_rules(&rbac, &user);
            let before = all.len();
            let kept: Vec<Value> = all
                .into_iter()
                .filter(|r| r["resources"] != json!([left_out]))
                .collect();
            assert!(kept.len() < before, "no rule on {left_out}: {rbac}");
            rules.extend(kept);
            tokens += &format!("{account}-token,{user},{},{groups}\n", i + 1);
        }
        std::fs::write(ws.path("tokens.csv"), tokens).unwrap();

        // The API, in a workspace of its own: it serves the Plugin kind too, so it trusts the
        // registry, and with a Lease of its own (in kube-system) it does not contend with the
        // replica for the one that decides who writes the Plugins' status.
        let api = Workspace::new(&registry, "", "[]");
        std::fs::write(
            api.path("corbel.yaml"),
            format!(
                "tls: {{development: {{dir: tls}}}}
embedded: {{dataDir: data}}
leaderElection: {{namespace: kube-system, identity: api, leaseDuration: 3s, renewPeriod: 1s}}
registry: {{cacheDir: cache, caFile: ca.crt, allowUnsigned: ['{}/*']}}
auth:
  tokenFile: {}
  rules: {}
bindings: []
",
                registry.address,
                ws.path("tokens.csv").display(),
                serde_json::to_string(&rules).unwrap()
            ),
        )
        .unwrap();
        let api_server = api.serve().await;
        let admin = kube::Client::try_from(
            kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(api.path("data/kubeconfig")).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap(),
        )
        .unwrap();
        create_crd(&admin).await;
        for (kind, plural, namespace, object) in [
            (
                "Namespace",
                "namespaces",
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "corbel"}}),
            ),
            (
                "Secret",
                "secrets",
                Some("default"),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}}),
            ),
        ] {
            let resource = resource("", "v1", kind, plural);
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
                None => Api::all_with(admin.clone(), &resource),
            };
            api.create(
                &PostParams::default(),
                &serde_json::from_value(object).unwrap(),
            )
            .await
            .unwrap();
        }
        World {
            registry,
            ws,
            api,
            api_server,
            admin,
        }
    }

    /// A replica authenticating with `token`.
    async fn replica(&self, token: &str) -> Server {
        kubeconfig_with(
            &self.api.path("data/kubeconfig"),
            token,
            &self.ws.path("kubeconfig"),
        );
        self.ws.serve().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_only_the_generated_rbac_reconciles_elects_installs_and_records_events() {
    let world = World::start().await;
    let admin = world.admin.clone();
    let replica = world.replica("corbel-token").await;
    let context = || {
        format!(
            "replica:\n{}\nAPI:\n{}",
            replica.log(),
            world.api_server.log()
        )
    };

    // Leader election: the replica holds the Lease in Corbel's namespace.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "corbel");
    eventually(
        "the Lease is held",
        Duration::from_secs(20),
        context,
        async || {
            let lease = leases.get_opt("corbel-controllers").await.unwrap()?;
            (lease.spec?.holder_identity.as_deref() == Some("replica")).then_some(())
        },
    )
    .await;

    // The controller reconciles: status, its owned ConfigMap, the Secret it is granted.
    create(
        &admin,
        "p1",
        json!({"message": "hi", "child": true, "secret": {"namespace": "default", "name": "creds", "key": "token"}}),
    )
    .await;
    let status = eventually(
        "p1 is reconciled",
        Duration::from_secs(20),
        context,
        async || {
            let probe = probes(&admin).get("p1").await.unwrap();
            let status = probe.data["status"].clone();
            (status["child"] == "p1-child").then_some(status)
        },
    )
    .await;
    assert_eq!(status["echo"], "hi", "{status}");
    assert_eq!(status["secret"], "s3cret", "{status}");

    // The Event the controller asked for.
    let events: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    eventually(
        "the ChildCreated Event",
        Duration::from_secs(10),
        context,
        async || {
            let list = events.list(&Default::default()).await.unwrap();
            list.items
                .iter()
                .any(|e| e.data["reason"] == "ChildCreated" && e.data["regarding"]["name"] == "p1")
                .then_some(())
        },
    )
    .await;

    // The Plugin kind: installs, reports, serves.
    let plugins: Api<DynamicObject> = Api::all_with(
        admin.clone(),
        &resource("corbel.dev", "v1alpha1", "Plugin", "plugins"),
    );
    let demo = world.registry.reference("policies/demo:v1");
    plugins
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "corbel.dev/v1alpha1", "kind": "Plugin", "metadata": {"name": "demo"},
                "spec": {"reference": demo, "settings": {"labels": ["team"]}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(
        "the Plugin is Ready",
        Duration::from_secs(30),
        context,
        async || {
            let plugin = plugins.get("demo").await.unwrap();
            (plugin.data["status"]["phase"] == "Ready").then_some(())
        },
    )
    .await;
    // `Ready` may have been written by the API's own process, which serves the Plugin kind under
    // a Lease of its own: the replica installs the same Plugin on its own watch, a moment later.
    let body = eventually(
        "the replica serves the Plugin's binding",
        Duration::from_secs(30),
        context,
        async || {
            let (code, body) = replica
                .post("/validate/demo", &review("configmap-unlabelled"))
                .await;
            (code != 404).then_some((code, body))
        },
    )
    .await;
    assert_eq!(
        (body.0, &body.1["response"]["allowed"]),
        (200, &json!(false)),
        "{}",
        body.1
    );

    let (code, body) = replica.get_text("/readyz").await;
    assert_eq!(code, 200, "{body}");
    let log = replica.log();
    let refused = forbidden_lines(&log);
    assert!(
        refused.is_empty(),
        "refused with the generated RBAC:\n{}",
        refused.join("\n")
    );
}

/// Waits until the replica with `token` is not ready with a problem containing every one of
/// `words`, and returns `/readyz`'s body.
async fn not_ready_saying(world: &World, token: &str, words: &[&str]) -> String {
    let replica = world.replica(token).await;
    let body = eventually(
        &format!("/readyz of {token} says {words:?}"),
        Duration::from_secs(20),
        || replica.log(),
        async || {
            let (code, body) = replica.get_text("/readyz").await;
            (code == 503 && words.iter().all(|w| body.contains(w))).then_some(body)
        },
    )
    .await;
    let _ = replica.terminate();
    body
}

/// Issue 18, bug 3: a 403 must not look healthy. Without one rule of the generated RBAC (the
/// Lease, listing Plugins), a replica is not ready and says which permission it misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_one_generated_rule_readyz_says_which_permission_is_missing() {
    let world = World::start().await;
    not_ready_saying(
        &world,
        "no-lease-token",
        &[
            "leaderElection",
            "forbidden",
            "Leases",
            "corbel-controllers",
        ],
    )
    .await;
    not_ready_saying(
        &world,
        "no-plugins-token",
        &["\"plugins\"", "forbidden", "list"],
    )
    .await;
}

/// The same for the controller's own kind and a kind it owns: the loop waits until it can list
/// them, and meanwhile `/readyz` names the problem `controller/NAME[/KIND]` (not only a WARN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_listing_its_kind_a_controller_is_not_ready() {
    let world = World::start().await;
    not_ready_saying(&world, "no-probes-token", &["probes", "forbidden", "list"]).await;
    // And for a kind it owns (the probe controller's ConfigMaps).
    not_ready_saying(
        &world,
        "no-configmaps-token",
        &["controller/probe/ConfigMap", "configmaps", "forbidden"],
    )
    .await;
}
