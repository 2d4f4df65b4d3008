//! `deploy/kubernetes/`: the generated files match what `corbel kubernetes …` prints from the
//! base configuration; every overlay renders with kubectl's built-in kustomize; every object of
//! Kubernetes' own kinds validates against the published schemas of 1.31 to 1.34 (PyPI
//! `kubernetes-validate`, offline, installed by `cargo xtask test`), and Corbel's own kinds against
//! their CRDs; and the safety properties hold on the rendered objects, not only on the sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use corbel_e2e::{bin, root};
use serde_json::Value;

const VERSIONS: [&str; 4] = ["1.31.0", "1.32.0", "1.33.0", "1.34.0"];

fn deploy() -> PathBuf {
    root().join("deploy/kubernetes")
}

fn corbel(args: &[&str]) -> String {
    let output = Command::new(bin()).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "corbel {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A configuration of `deploy/kubernetes/config/`, with the image's plugin folder pointed at the
/// locally built plugins (as `NAME/corbel.yaml`, the file name the generated headers name).
fn local_config(dir: &Path, name: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(deploy().join("config").join(name).join("corbel.yaml")).unwrap();
    let plugins = corbel_e2e::plugin("storage").parent().unwrap().to_owned();
    std::fs::create_dir_all(dir.join(name)).unwrap();
    let path = dir.join(name).join("corbel.yaml");
    std::fs::write(
        &path,
        text.replace("/usr/lib/corbel/plugins", plugins.to_str().unwrap()),
    )
    .unwrap();
    path
}

#[test]
fn the_generated_webhooks_and_rbac_are_what_corbel_prints() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["default", "gateway"] {
        let config = local_config(dir.path(), name);
        for command in ["webhooks", "rbac"] {
            let printed = corbel(&["kubernetes", command, "-c", config.to_str().unwrap()]);
            let file = format!("config/{name}/{command}.yaml");
            let kept = std::fs::read_to_string(deploy().join(&file)).unwrap();
            assert_eq!(
                printed, kept,
                "deploy/kubernetes/{file} is stale: regenerate it with `corbel kubernetes {command} -c deploy/kubernetes/config/{name}/corbel.yaml` (plugins built locally: docs/kubernetes.md)"
            );
        }
        // The NetworkPolicy needs the cluster's addresses: its header says the command that made
        // it, which must print it again from today's configuration.
        let file = format!("config/{name}/networkpolicy.yaml");
        let kept = std::fs::read_to_string(deploy().join(&file)).unwrap();
        let mut args = egress_flags(&kept);
        args.splice(
            0..0,
            [
                "kubernetes",
                "networkpolicy",
                "-c",
                config.to_str().unwrap(),
            ]
            .map(String::from),
        );
        let output = Command::new(bin()).args(&args).output().unwrap();
        assert!(
            output.status.success(),
            "deploy/kubernetes/{file} is stale: its command fails on today's configuration:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            kept,
            "deploy/kubernetes/{file} is stale: run the command on its first line again (docs/kubernetes.md)"
        );
    }
}

/// The flags after `-c corbel.yaml` of the command a generated NetworkPolicy's header names.
fn egress_flags(kept: &str) -> Vec<String> {
    let command = kept
        .lines()
        .next()
        .and_then(|l| l.split('`').nth(1))
        .expect("the first line names the command between backticks");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(
        words[..5],
        ["corbel", "kubernetes", "networkpolicy", "-c", "corbel.yaml"],
        "{command}"
    );
    words[5..].iter().map(|w| w.to_string()).collect()
}

/// The gateway configuration is the default one plus the gateway domain: a binding or controller
/// added to one and forgotten in the other fails here.
#[test]
fn the_gateway_configuration_is_the_default_one_plus_the_gateway() {
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(deploy().join("config").join(name).join("corbel.yaml"))
            .unwrap();
        serde_yaml_ng::from_str(&text).unwrap()
    };
    let (default, mut gateway) = (read("default"), read("gateway"));
    assert!(
        gateway["xds"]["listen"]
            .as_str()
            .unwrap()
            .ends_with(":18000"),
        "{gateway}"
    );
    for list in ["bindings", "controllers"] {
        let items = gateway[list].as_array_mut().unwrap();
        items.retain(|item| item["name"] != "gateway");
    }
    let object = gateway.as_object_mut().unwrap();
    object.remove("xds");
    assert_eq!(
        &default, &gateway,
        "config/gateway/corbel.yaml must be config/default/corbel.yaml plus the gateway binding, controller and xds"
    );
}

/// Renders an overlay (a copy, so that own-ca can get its certificates) into its objects.
fn render(overlay: &str) -> Vec<Value> {
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .args(["-r"])
        .arg(deploy())
        .arg(copy.path().join("k"))
        .status()
        .unwrap();
    assert!(status.success());
    let tree = copy.path().join("k");
    if overlay == "own-ca" {
        corbel(&[
            "kubernetes",
            "certificates",
            "--dir",
            tree.join("overlays/own-ca/certs").to_str().unwrap(),
        ]);
    }
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(tree.join("overlays").join(overlay))
        .output()
        .expect("kubectl is needed to render the overlays");
    assert!(
        output.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    std::fs::write(copy.path().join("rendered.yaml"), &text).unwrap();
    validate(overlay, &text, copy.path());
    text.split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect()
}

/// Kinds whose schemas are CRDs from elsewhere (cert-manager, Prometheus Operator): not in
/// kubernetes-validate's published schemas, so they are only checked for their safety fields.
const FOREIGN: [&str; 3] = [
    "cert-manager.io/v1",
    "monitoring.coreos.com/v1",
    "storage.corbel.dev/v1alpha1",
];

fn validate(overlay: &str, text: &str, dir: &Path) {
    let tool = root().join("target/toolchains/kubernetes-validate/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: `cargo xtask test` installs it (PyPI kubernetes-validate)",
        tool.display()
    );
    let own: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| {
            !FOREIGN
                .iter()
                .any(|g| d.contains(&format!("apiVersion: {g}\n")))
        })
        .collect();
    let file = dir.join("kubernetes-kinds.yaml");
    std::fs::write(&file, own.join("\n---\n")).unwrap();
    for version in VERSIONS {
        let output = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{overlay} on Kubernetes {version}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn by_kind(objects: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut kinds: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for object in objects {
        kinds
            .entry(object["kind"].as_str().unwrap().to_owned())
            .or_default()
            .push(object);
    }
    kinds
}

fn assert_safe(overlay: &str, objects: &[Value]) {
    let kinds = by_kind(objects);
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "Deployment",
        "PodDisruptionBudget",
        "ConfigMap",
        "Service",
        "NetworkPolicy",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        assert!(kinds.contains_key(kind), "{overlay}: no {kind}");
    }
    let webhooks: Vec<&Value> = [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ]
    .iter()
    .flat_map(|k| kinds[*k].iter())
    .flat_map(|c| c["webhooks"].as_array().unwrap())
    .collect();
    for webhook in &webhooks {
        assert_eq!(webhook["sideEffects"], "None", "{overlay}: {webhook}");
        assert!(
            webhook["timeoutSeconds"].as_u64().unwrap() <= 10,
            "{overlay}: {webhook}"
        );
        let selector = webhook["namespaceSelector"].to_string();
        for namespace in ["kube-system", "kube-node-lease", "\"corbel\""] {
            assert!(
                selector.contains(namespace),
                "{overlay}: {namespace} is not left out: {webhook}"
            );
        }
        assert!(
            webhook["matchConditions"]
                .to_string()
                .contains("system:serviceaccount:corbel:corbel"),
            "{overlay}: Corbel's own account is not left out: {webhook}"
        );
    }
    let corbel = kinds["Deployment"]
        .iter()
        .find(|d| d["metadata"]["name"] == "corbel")
        .unwrap();
    let spec = &corbel["spec"]["template"]["spec"];
    assert_eq!(corbel["spec"]["replicas"], 2, "{overlay}");
    assert!(spec["affinity"]["podAntiAffinity"].is_object(), "{overlay}");
    assert!(
        spec["topologySpreadConstraints"]
            .to_string()
            .contains("topology.kubernetes.io/zone"),
        "{overlay}"
    );
    let container = &spec["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{overlay}");
    assert_eq!(security["runAsNonRoot"], true, "{overlay}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{overlay}");
    assert_eq!(
        security["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{overlay}"
    );
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{overlay}"
    );
    assert_eq!(
        container["resources"]["requests"],
        serde_json::json!({"cpu": "100m", "memory": "128Mi"})
    );
    assert_eq!(
        container["resources"]["limits"],
        serde_json::json!({"cpu": "500m", "memory": "512Mi"})
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    // Rolling upgrades lose no request: serve on while leaving the endpoints, then shut down
    // gracefully, all within the grace period.
    let pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    let config = kinds["ConfigMap"]
        .iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("corbel-config")
        })
        .unwrap();
    let config: Value =
        serde_yaml_ng::from_str(config["data"]["corbel.yaml"].as_str().unwrap()).unwrap();
    let shutdown = config["shutdownGracePeriod"]
        .as_str()
        .map_or(10, |s| s.trim_end_matches('s').parse::<u64>().unwrap());
    assert!(
        pre_stop + shutdown < grace,
        "{overlay}: preStop {pre_stop} s + shutdown {shutdown} s within {grace} s"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_egress(overlay, &kinds, &config);
    // Least privilege: nothing in any role is a wildcard.
    for role in kinds["ClusterRole"].iter().chain(kinds["Role"].iter()) {
        assert!(
            !role["rules"].to_string().contains("\"*\""),
            "{overlay}: a wildcard in {role}"
        );
    }
}

#[test]
fn the_cert_manager_overlay_renders_validates_and_injects_the_ca() {
    let objects = render("cert-manager");
    assert_safe("cert-manager", &objects);
    for config in objects.iter().filter(|o| {
        o["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    }) {
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "corbel/corbel-serving",
            "{config}"
        );
    }
    let kinds = by_kind(&objects);
    let serving = kinds["Certificate"]
        .iter()
        .find(|c| c["metadata"]["name"] == "corbel-serving")
        .unwrap();
    assert_eq!(serving["spec"]["secretName"], "corbel-tls");
}

#[test]
fn the_own_ca_overlay_renders_validates_and_carries_the_ca_bundle() {
    let objects = render("own-ca");
    assert_safe("own-ca", &objects);
    let kinds = by_kind(&objects);
    // A hash suffix rolls the pods when the certificate changes; the Deployment follows the name.
    let secret = kinds["Secret"]
        .iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("corbel-tls")
        })
        .unwrap();
    let corbel = kinds["Deployment"]
        .iter()
        .find(|d| d["metadata"]["name"] == "corbel")
        .unwrap();
    assert!(
        corbel["spec"]["template"]["spec"]["volumes"]
            .to_string()
            .contains(secret["metadata"]["name"].as_str().unwrap()),
        "the Deployment mounts the generated Secret: {corbel}"
    );
    let ca = secret["data"]["ca.crt"].as_str().unwrap();
    for config in objects.iter().filter(|o| {
        o["kind"]
            .as_str()
            .unwrap()
            .ends_with("WebhookConfiguration")
    }) {
        for webhook in config["webhooks"].as_array().unwrap() {
            assert_eq!(webhook["clientConfig"]["caBundle"], ca, "{webhook}");
        }
    }
}

#[test]
fn the_gateway_overlay_adds_envoy_bootstrapped_to_corbel_s_xds_service() {
    let objects = render("gateway");
    assert_safe("gateway", &objects);
    let kinds = by_kind(&objects);
    assert!(
        kinds["Deployment"]
            .iter()
            .any(|d| d["metadata"]["name"] == "corbel-envoy")
    );
    assert!(
        kinds.contains_key("ServiceMonitor"),
        "the gateway overlay includes the ServiceMonitor component"
    );
    let bootstrap = kinds["ConfigMap"]
        .iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("corbel-envoy")
        })
        .unwrap();
    let bootstrap: Value =
        serde_yaml_ng::from_str(bootstrap["data"]["envoy.yaml"].as_str().unwrap()).unwrap();
    // The same shape as `corbel xds-bootstrap` (host/src/xds.rs), with the Service's name.
    let cluster = &bootstrap["static_resources"]["clusters"][0];
    assert_eq!(cluster["name"], "corbel_xds");
    assert_eq!(
        bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"],
        "corbel_xds"
    );
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(address["address"], "corbel.corbel.svc");
    // The port Corbel's configuration serves xDS on, behind the Service's `xds` port.
    let config = kinds["ConfigMap"]
        .iter()
        .find(|c| {
            c["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("corbel-config")
        })
        .unwrap();
    let config: Value =
        serde_yaml_ng::from_str(config["data"]["corbel.yaml"].as_str().unwrap()).unwrap();
    let port = config["xds"]["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert_eq!(address["port_value"], port);
    let service = kinds["Service"]
        .iter()
        .find(|s| s["metadata"]["name"] == "corbel")
        .unwrap();
    let xds = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "xds")
        .unwrap();
    assert_eq!(xds["port"], port, "{service}");
    let envoy = kinds["Deployment"]
        .iter()
        .find(|d| d["metadata"]["name"] == "corbel-envoy")
        .unwrap();
    let args = envoy["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--service-cluster"),
        "Envoy names its node group: {args}"
    );
    // Only the Envoy pods reach the plaintext xDS port.
    let policy = kinds["NetworkPolicy"]
        .iter()
        .find(|p| p["metadata"]["name"] == "corbel")
        .unwrap();
    let rule = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"][0]["port"] == port)
        .unwrap();
    assert_eq!(
        rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "corbel-envoy"
    );
    // The gateway's webhook and its controller's RBAC are there.
    assert!(objects.iter().any(|o| {
        o["kind"] == "ValidatingWebhookConfiguration"
            && o["webhooks"]
                .to_string()
                .contains("gateway.webhooks.corbel.dev")
    }));
    let role = kinds["ClusterRole"]
        .iter()
        .find(|r| r["metadata"]["name"] == "corbel")
        .unwrap();
    assert!(
        role["rules"].to_string().contains("xdssnapshots/status"),
        "{role}"
    );
}

/// The egress of Corbel's pods, as rendered: isolated; DNS only to kube-dns; every other rule to
/// addresses on ports, none to every address unless the generating command asked for it; the API
/// server and each grant's host on their ports, at the addresses the command mapped them to.
fn assert_egress(overlay: &str, kinds: &BTreeMap<String, Vec<&Value>>, config: &Value) {
    let name = if overlay == "gateway" {
        "gateway"
    } else {
        "default"
    };
    let kept = std::fs::read_to_string(deploy().join(format!("config/{name}/networkpolicy.yaml")))
        .unwrap();
    let flags = egress_flags(&kept);
    let asked = |flag: &str| -> Vec<&str> {
        flags
            .windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    };
    // NAME → CIDRs, as --egress-cidr said.
    let mapped: BTreeMap<&str, Vec<&str>> = asked("--egress-cidr")
        .into_iter()
        .map(|m| {
            let (name, cidrs) = m.split_once('=').unwrap();
            (name, cidrs.split(',').collect())
        })
        .collect();
    let policies: Vec<&&Value> = kinds["NetworkPolicy"]
        .iter()
        .filter(|p| p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "corbel")
        .collect();
    assert!(
        policies
            .iter()
            .any(|p| p["spec"]["policyTypes"].to_string().contains("Egress")),
        "{overlay}: Corbel's egress is not isolated"
    );
    let rules: Vec<&Value> = policies
        .iter()
        .flat_map(|p| p["spec"]["egress"].as_array().into_iter().flatten())
        .collect();
    let is_dns = |peer: &Value| {
        peer["podSelector"]["matchLabels"]["k8s-app"] == "kube-dns"
            && peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                == "kube-system"
    };
    for rule in &rules {
        let (to, ports) = (rule["to"].as_array(), rule["ports"].as_array());
        assert!(
            to.is_some_and(|t| !t.is_empty()) && ports.is_some_and(|p| !p.is_empty()),
            "{overlay}: an egress rule to anywhere or on any port: {rule}"
        );
        let dns_ports = ports.unwrap().iter().all(|p| p["port"] == 53);
        for peer in to.unwrap() {
            if is_dns(peer) {
                assert!(dns_ports, "{overlay}: kube-dns on more than 53: {rule}");
                continue;
            }
            assert!(
                !ports.unwrap().iter().any(|p| p["port"] == 53),
                "{overlay}: DNS to something other than kube-dns: {rule}"
            );
            let cidr = peer["ipBlock"]["cidr"].as_str().unwrap_or_else(|| {
                panic!("{overlay}: a peer that is neither kube-dns nor addresses: {rule}")
            });
            if cidr.ends_with("/0") {
                assert!(
                    mapped.values().flatten().any(|c| *c == cidr),
                    "{overlay}: {cidr} though no --egress-cidr asked for it: {rule}"
                );
            }
        }
    }
    let allows = |cidr: &str, port: u64| {
        rules.iter().any(|r| {
            r["to"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["ipBlock"]["cidr"] == cidr)
                && r["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"] == port)
        })
    };
    let api_server = asked("--api-server");
    assert!(
        !api_server.is_empty(),
        "{overlay}: no API server in {flags:?}"
    );
    for address in api_server {
        let (ip, port) = address.rsplit_once(':').unwrap();
        let cidr = if ip.contains('/') {
            ip.to_owned()
        } else {
            format!("{ip}/32")
        };
        assert!(
            allows(&cidr, port.parse().unwrap()),
            "{overlay}: the API server {address}"
        );
    }
    for controller in config["controllers"].as_array().unwrap() {
        for grant in controller["grants"]["http"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let grant = grant.as_str().unwrap();
            let (scheme, rest) = grant.split_once("://").unwrap();
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) => (host, port.parse::<u64>().unwrap()),
                None => (rest, if scheme == "https" { 443 } else { 80 }),
            };
            let cidrs = mapped
                .get(host)
                .unwrap_or_else(|| panic!("{overlay}: {grant} is not mapped in {flags:?}"));
            for cidr in cidrs {
                assert!(
                    allows(cidr, port),
                    "{overlay}: {grant} not open on {cidr}:{port}"
                );
            }
        }
    }
}
