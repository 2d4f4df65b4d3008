//! `corbel kubernetes networkpolicy`: the egress NetworkPolicy of a configuration — cluster DNS,
//! the API server, the registries its plugins come from and the hosts its grants name, each on
//! its own ports, and nothing else.
//!
//! A NetworkPolicy names addresses (`ipBlock`s), pods and namespaces, never host names, and most
//! CNIs apply it after a Service's DNAT: the API server is the addresses of the `kubernetes`
//! Service's endpoints, not its ClusterIP. So the operator says what each name resolves to
//! (`--egress-cidr NAME=CIDR`, `--api-server ADDRESS:PORT`); a host the configuration names and
//! the operator did not map is an error that lists every such host and the flag to add. Nothing
//! is opened to every address (`0.0.0.0/0`) unless the operator maps a name to it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::bail;
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::capabilities::HttpGrant;
use crate::config::Config;

/// The flags that say where the names are.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Egress {
    /// The API server as the pods reach it after the `kubernetes` Service's DNAT: its endpoints'
    /// ADDRESS[/PREFIX]:PORT (IPv6 in brackets: [fd00::1]:6443). Repeatable. Needed in Kubernetes
    /// mode (controllers, `kubernetes:`).
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub api_server: Vec<String>,
    /// What a host resolves to: NAME=CIDR[,CIDR…] (repeatable). NAME is a host the configuration
    /// names (a grant's, a registry's, the OIDC issuer's), or NAME:PORT for a destination of its
    /// own, such as a registry that Plugin objects install from or one a registry redirects to.
    /// NAME=0.0.0.0/0 opens NAME's ports to every address, if you must.
    #[arg(long, value_name = "NAME=CIDR")]
    pub egress_cidr: Vec<String>,
}

/// A host the configuration (or an `--egress-cidr NAME:PORT`) names, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Lowercase, IPv6 without brackets; `*.domain` as a grant wrote it.
    pub host: String,
    /// `None`: every TCP port (a grant's `:*`).
    pub port: Option<u16>,
    /// What named it: "controller storage: grants.http https://s3.example.com".
    pub why: String,
}

/// Every destination the configuration names: the hosts of its controllers' `http` grants, the
/// registries of its `oci://` plugins, the OIDC issuer.
pub fn destinations(config: &Config) -> Vec<Destination> {
    let mut found = Vec::new();
    for controller in &config.controllers {
        for text in &controller.grants.http {
            // Config::load checked the grants' syntax against nothing yet: a bad one is reported
            // when the controller loads; here it names no host.
            if let Ok(grant) = HttpGrant::parse(text) {
                found.push(Destination {
                    host: unbracket(&grant.host),
                    port: grant.port,
                    why: format!("controller {}: grants.http {text}", controller.name),
                });
            }
        }
        registry(
            &mut found,
            &controller.plugin,
            &format!("controller {}", controller.name),
        );
    }
    for binding in &config.bindings {
        registry(
            &mut found,
            &binding.plugin,
            &format!("binding {}", binding.name),
        );
        if let Some(shadow) = &binding.shadow {
            registry(
                &mut found,
                &shadow.plugin,
                &format!("binding {}'s shadow", binding.name),
            );
        }
    }
    if let Some(oidc) = &config.auth.oidc
        && let Ok(uri) = oidc.issuer.parse::<http::Uri>()
        && let Some(host) = uri.host()
    {
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("http") => 80,
            _ => 443,
        });
        found.push(Destination {
            host: unbracket(host),
            port: Some(port),
            why: format!("auth.oidc.issuer {}", oidc.issuer),
        });
    }
    found
}

fn registry(found: &mut Vec<Destination>, plugin: &std::path::Path, who: &str) {
    let Some(text) = plugin.to_str().filter(|p| p.starts_with("oci://")) else {
        return;
    };
    let Ok(reference) = crate::registry::client::parse_reference(text) else {
        return;
    };
    // docker.io is served from index.docker.io.
    let registry = reference.resolve_registry().to_ascii_lowercase();
    let (host, port) = split_port(&registry);
    found.push(Destination {
        host,
        port: Some(port.unwrap_or(443)),
        why: format!("{who}: {text}"),
    });
}

/// `host[:port]`, `[v6]:port`, `v6` → host without brackets and the port.
fn split_port(text: &str) -> (String, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (
            host.to_owned(),
            after.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host.to_owned(), Some(port)),
            Err(_) => (text.to_owned(), None),
        },
        _ => (text.to_owned(), None),
    }
}

fn unbracket(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// `ADDRESS[/PREFIX]` → a network; a bare address is a /32 or /128.
fn cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{text:?} is not an address or a CIDR (10.0.0.0/24, 10.0.0.5, fd00::/64)")
    })
}

/// One `--api-server ADDRESS[/PREFIX]:PORT`.
fn api_server(text: &str) -> Result<(IpNet, u16), String> {
    let usage = || {
        format!(
            "--api-server {text:?}: expected ADDRESS[/PREFIX]:PORT, e.g. 172.18.0.2:6443 or [fd00::1]:6443"
        )
    };
    let (address, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (address, after) = rest.split_once(']').ok_or_else(usage)?;
            (address, after.strip_prefix(':').ok_or_else(usage)?)
        }
        None => text.rsplit_once(':').ok_or_else(usage)?,
    };
    let port = port.parse::<u16>().map_err(|_| usage())?;
    Ok((
        cidr(address).map_err(|e| format!("--api-server: {e}"))?,
        port,
    ))
}

/// What the operator said: name → networks, and destinations of their own (`NAME:PORT=…`).
#[derive(Debug, Default)]
struct Mapping {
    names: BTreeMap<String, BTreeSet<IpNet>>,
    extra: Vec<Destination>,
}

fn mapping(flags: &[String]) -> Result<Mapping, String> {
    let mut mapping = Mapping::default();
    for flag in flags {
        let (key, cidrs) = flag.split_once('=').ok_or_else(|| {
            format!("--egress-cidr {flag:?}: expected NAME=CIDR[,CIDR…], e.g. s3.example.com=203.0.113.0/24")
        })?;
        let (name, port) = split_port(&key.to_ascii_lowercase());
        if name.is_empty() {
            return Err(format!("--egress-cidr {flag:?}: no name before `=`"));
        }
        let nets = cidrs
            .split(',')
            .map(cidr)
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|e| format!("--egress-cidr {flag:?}: {e}"))?;
        mapping.names.entry(name.clone()).or_default().extend(nets);
        if let Some(port) = port {
            mapping.extra.push(Destination {
                host: name,
                port: Some(port),
                why: format!("--egress-cidr {key}"),
            });
        }
    }
    Ok(mapping)
}

/// Whether the host talks to a Kubernetes API server of the cluster (not the embedded one).
pub fn uses_api_server(config: &Config) -> bool {
    config.embedded.is_none() && (!config.controllers.is_empty() || config.kubernetes.is_some())
}

/// The egress NetworkPolicy, and the lines of the header that say what each rule is for.
/// Errors list every host left unmapped, and what to add.
pub fn network_policy(
    config: &Config,
    egress: &Egress,
    namespace: &str,
) -> anyhow::Result<(Value, Vec<String>)> {
    let mapping = mapping(&egress.egress_cidr).map_err(anyhow::Error::msg)?;
    let named = destinations(config);
    let mut problems = Vec::new();
    for name in mapping.names.keys() {
        let in_config = named.iter().any(|d| &d.host == name);
        let own = mapping.extra.iter().any(|d| &d.host == name);
        if !in_config && !own {
            let hosts: BTreeSet<&str> = named.iter().map(|d| d.host.as_str()).collect();
            problems.push(format!(
                "--egress-cidr {name}: the configuration names no host {name} (it names: {}); for a destination of its own, such as a registry that Plugin objects install from, give its port: {name}:443=CIDR",
                if hosts.is_empty() { "none".to_owned() } else { hosts.into_iter().collect::<Vec<_>>().join(", ") }
            ));
        }
    }
    let mut rules = vec![json!({
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    })];
    let mut notes =
        vec!["cluster DNS: the kube-dns pods of kube-system, on 53 (UDP and TCP)".to_owned()];

    let mut api = BTreeMap::<u16, BTreeSet<IpNet>>::new();
    for text in &egress.api_server {
        let (net, port) = api_server(text).map_err(anyhow::Error::msg)?;
        api.entry(port).or_default().insert(net);
    }
    if uses_api_server(config) && api.is_empty() {
        problems.push("the API server (Kubernetes mode: controllers, the Plugin kind): --api-server ADDRESS:PORT for each address of the `kubernetes` Service's endpoints — a NetworkPolicy applies after the Service's DNAT, so its ClusterIP is not enough (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes -o jsonpath='{.items[*].endpoints[*].addresses} {.items[*].ports[*].port}')".to_owned());
    }
    if !uses_api_server(config) && !api.is_empty() {
        problems.push("--api-server: this configuration never talks to a Kubernetes API server (no controllers, no `kubernetes:`, or `embedded:`); leave it out".to_owned());
    }
    for (port, nets) in &api {
        rules.push(rule(nets, &BTreeSet::from([Some(*port)])));
        notes.push(format!("the API server: {} on {port}", list(nets)));
    }

    // Each host once, with every port it is named on and every reason.
    let mut hosts: BTreeMap<String, (BTreeSet<Option<u16>>, Vec<String>)> = BTreeMap::new();
    for destination in named.iter().chain(&mapping.extra) {
        let entry = hosts.entry(destination.host.clone()).or_default();
        entry.0.insert(destination.port);
        if !entry.1.contains(&destination.why) {
            entry.1.push(destination.why.clone());
        }
    }
    let mut unmapped = Vec::new();
    for (host, (ports, why)) in &hosts {
        // Any port of a `:*` grant covers its other ports.
        let ports = if ports.contains(&None) {
            BTreeSet::from([None])
        } else {
            ports.clone()
        };
        let nets = match (host.parse::<IpAddr>(), mapping.names.get(host)) {
            (_, Some(nets)) => nets.clone(),
            (Ok(address), None) => BTreeSet::from([IpNet::from(address)]),
            (Err(_), None) => {
                unmapped.push(format!(
                    "  {host} on {} ({})",
                    port_list(&ports),
                    why.join("; ")
                ));
                continue;
            }
        };
        rules.push(rule(&nets, &ports));
        notes.push(format!(
            "{host}: {} on {} ({})",
            list(&nets),
            port_list(&ports),
            why.join("; ")
        ));
    }
    if !unmapped.is_empty() {
        let example = hosts
            .keys()
            .find(|h| h.parse::<IpAddr>().is_err() && !mapping.names.contains_key(*h));
        problems.push(format!(
            "these hosts have no addresses (a NetworkPolicy names addresses, not hosts):\n{}\n  say what each resolves to: --egress-cidr {}=CIDR[,CIDR…] (repeatable). Nothing is opened to every address unless you map a name to 0.0.0.0/0 yourself",
            unmapped.join("\n"),
            example.map_or("NAME", |h| h.as_str()),
        ));
    }
    if !problems.is_empty() {
        bail!(
            "cannot write the NetworkPolicy:\n- {}",
            problems.join("\n- ")
        );
    }
    let policy = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "corbel-egress", "namespace": namespace, "labels": super::labels()},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "corbel"}},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    });
    Ok((policy, notes))
}

fn rule(nets: &BTreeSet<IpNet>, ports: &BTreeSet<Option<u16>>) -> Value {
    let to: Vec<Value> = nets
        .iter()
        .map(|n| json!({"ipBlock": {"cidr": n.to_string()}}))
        .collect();
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| match p {
            Some(port) => json!({"port": port, "protocol": "TCP"}),
            // Every TCP port: a grant's `:*`.
            None => json!({"protocol": "TCP"}),
        })
        .collect();
    json!({"to": to, "ports": ports})
}

fn list(nets: &BTreeSet<IpNet>) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn port_list(ports: &BTreeSet<Option<u16>>) -> String {
    ports
        .iter()
        .map(|p| p.map_or("every TCP port".to_owned(), |p| p.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The YAML the command prints: a header with the command to regenerate it and what each rule is
/// for, then the policy.
pub fn to_yaml(
    policy: &Value,
    notes: &[String],
    command: &str,
    plugin_kind: bool,
) -> anyhow::Result<String> {
    let mut out = format!("# Generated by `{command}`: regenerate rather than edit.\n");
    out += "# Egress, one rule each:\n";
    for note in notes {
        out += &format!("#   {note}\n");
    }
    if plugin_kind {
        out += "# Plugin objects may name registries the configuration does not: open each with\n";
        out += "# --egress-cidr HOST:PORT=CIDR (and the hosts it redirects blob downloads to).\n";
    }
    out += "---\n";
    out += &serde_yaml_ng::to_string(policy)?;
    Ok(out)
}

/// The command line that regenerates the policy: the configuration's file name (the file sits
/// beside it) and the flags, in the order given.
pub fn command_line(config: &std::path::Path, egress: &Egress, target: &super::Target) -> String {
    let mut words = vec![
        "corbel kubernetes networkpolicy -c".to_owned(),
        config.file_name().map_or_else(
            || config.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
    ];
    if target.namespace != "corbel" {
        words.push(format!("--namespace {}", target.namespace));
    }
    for a in &egress.api_server {
        words.push(format!("--api-server {a}"));
    }
    for e in &egress.egress_cidr {
        words.push(format!("--egress-cidr {e}"));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corbel.yaml");
        std::fs::write(
            &path,
            format!("tls: {{certFile: t.crt, keyFile: t.key}}\n{yaml}"),
        )
        .unwrap();
        Config::load(&path).unwrap()
    }

    const CONFIG: &str = r#"
bindings:
  - {name: a, plugin: "oci://registry.example.com:5000/policies/a:v1", mode: validate}
  - {name: b, plugin: "oci://ghcr.io/corbel-dev/b:v1", mode: validate}
controllers:
  - name: storage
    plugin: storage.wasm
    grants:
      http: ["https://s3.example.com", "http://10.1.2.3:9000", "https://[fd00::7]:8443"]
  - name: gateway
    plugin: "oci://ghcr.io/corbel-dev/gateway:v1"
    grants:
      http: ["http://kong-admin.internal:8001", "https://*.idp.example.com:*"]
"#;

    fn egress(api: &[&str], cidrs: &[&str]) -> Egress {
        Egress {
            api_server: api.iter().map(|s| s.to_string()).collect(),
            egress_cidr: cidrs.iter().map(|s| s.to_string()).collect(),
        }
    }

    const MAPPED: [&str; 5] = [
        "s3.example.com=203.0.113.0/24",
        "registry.example.com=198.51.100.7",
        "ghcr.io=140.82.112.0/20,140.82.113.33",
        "kong-admin.internal=10.9.0.0/16",
        "*.idp.example.com=192.0.2.0/28",
    ];

    /// The rule whose `to` is exactly these networks.
    fn rule_to<'a>(policy: &'a Value, cidrs: &[&str]) -> &'a Value {
        let want: Vec<Value> = cidrs
            .iter()
            .map(|c| json!({"ipBlock": {"cidr": c}}))
            .collect();
        policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["to"] == json!(want))
            .unwrap_or_else(|| panic!("no rule to {cidrs:?}: {policy:#}"))
    }

    #[test]
    fn each_host_on_its_ports_dns_only_to_kube_dns_and_nothing_to_everywhere() {
        let (policy, notes) = network_policy(
            &config(CONFIG),
            &egress(&["172.18.0.2:6443"], &MAPPED),
            "corbel",
        )
        .unwrap();
        assert_eq!(policy["spec"]["policyTypes"], json!(["Egress"]));
        let rules = policy["spec"]["egress"].as_array().unwrap();
        // DNS: only to the kube-dns pods, only on 53.
        let dns: Vec<&Value> = rules
            .iter()
            .filter(|r| r["ports"].to_string().contains("53"))
            .collect();
        assert_eq!(dns.len(), 1, "{policy:#}");
        assert_eq!(
            dns[0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
            "kube-dns"
        );
        assert_eq!(
            dns[0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "kube-system"
        );
        // Every other rule names addresses and ports; none is open to every address.
        for rule in rules.iter().filter(|r| !std::ptr::eq(*r, dns[0])) {
            let to = rule["to"].as_array().unwrap();
            assert!(
                !to.is_empty() && !rule["ports"].as_array().unwrap().is_empty(),
                "{rule}"
            );
            for peer in to {
                let cidr = peer["ipBlock"]["cidr"].as_str().unwrap();
                assert!(!cidr.ends_with("/0"), "{rule}");
            }
        }
        let tcp = |port: u16| json!([{"port": port, "protocol": "TCP"}]);
        assert_eq!(rule_to(&policy, &["172.18.0.2/32"])["ports"], tcp(6443));
        assert_eq!(rule_to(&policy, &["203.0.113.0/24"])["ports"], tcp(443));
        assert_eq!(
            rule_to(&policy, &["10.1.2.3/32"])["ports"],
            tcp(9000),
            "a literal address needs no mapping"
        );
        assert_eq!(rule_to(&policy, &["fd00::7/128"])["ports"], tcp(8443));
        assert_eq!(
            rule_to(&policy, &["198.51.100.7/32"])["ports"],
            tcp(5000),
            "the registry's own port"
        );
        assert_eq!(
            rule_to(&policy, &["140.82.112.0/20", "140.82.113.33/32"])["ports"],
            tcp(443)
        );
        assert_eq!(rule_to(&policy, &["10.9.0.0/16"])["ports"], tcp(8001));
        assert_eq!(
            rule_to(&policy, &["192.0.2.0/28"])["ports"],
            json!([{"protocol": "TCP"}]),
            "a grant's `:*` is every TCP port, of its addresses only"
        );
        // DNS, the API server, and one rule per host (ghcr.io once for two plugins).
        assert_eq!(rules.len(), 2 + 7, "{policy:#}");
        let ghcr = notes.iter().find(|n| n.starts_with("ghcr.io")).unwrap();
        assert!(
            ghcr.contains("binding b") && ghcr.contains("controller gateway"),
            "{ghcr}"
        );
    }

    #[test]
    fn an_unmapped_host_is_named_with_what_to_add_and_nothing_is_opened() {
        let error = network_policy(
            &config(CONFIG),
            &egress(&[], &MAPPED[1..]), // s3.example.com left out, and no API server
            "corbel",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(
                "s3.example.com on 443 (controller storage: grants.http https://s3.example.com)"
            ),
            "{error}"
        );
        assert!(
            error.contains("--egress-cidr s3.example.com=CIDR"),
            "{error}"
        );
        assert!(error.contains("--api-server ADDRESS:PORT"), "{error}");
        assert!(
            !error.contains("kong-admin"),
            "mapped hosts are not listed: {error}"
        );
    }

    #[test]
    fn every_address_only_when_the_operator_asks_for_it() {
        let mut cidrs = MAPPED.to_vec();
        cidrs[0] = "s3.example.com=0.0.0.0/0";
        let (policy, _) = network_policy(
            &config(CONFIG),
            &egress(&["172.18.0.2:6443"], &cidrs),
            "corbel",
        )
        .unwrap();
        let open: Vec<&Value> = policy["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["to"].to_string().contains("0.0.0.0/0"))
            .collect();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0]["ports"], json!([{"port": 443, "protocol": "TCP"}]));
    }

    #[test]
    fn a_name_the_configuration_does_not_name_needs_a_port_and_then_is_a_destination() {
        let config = config(CONFIG);
        let mut cidrs = MAPPED.to_vec();
        cidrs.push("pkg-containers.githubusercontent.com=185.199.108.0/22");
        let error = network_policy(&config, &egress(&["172.18.0.2:6443"], &cidrs), "corbel")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the configuration names no host pkg-containers.githubusercontent.com")
                && error.contains("pkg-containers.githubusercontent.com:443=CIDR"),
            "{error}"
        );
        *cidrs.last_mut().unwrap() = "pkg-containers.githubusercontent.com:443=185.199.108.0/22";
        let (policy, _) =
            network_policy(&config, &egress(&["172.18.0.2:6443"], &cidrs), "corbel").unwrap();
        assert_eq!(
            rule_to(&policy, &["185.199.108.0/22"])["ports"],
            json!([{"port": 443, "protocol": "TCP"}])
        );
    }

    #[test]
    fn the_api_server_only_in_kubernetes_mode_and_bad_flags_say_what_is_expected() {
        let webhooks_only = config("bindings: [{name: a, plugin: a.wasm, mode: validate}]\n");
        let (policy, _) = network_policy(&webhooks_only, &Egress::default(), "corbel").unwrap();
        assert_eq!(
            policy["spec"]["egress"].as_array().unwrap().len(),
            1,
            "DNS only"
        );
        let error = network_policy(&webhooks_only, &egress(&["10.0.0.1:443"], &[]), "corbel")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("never talks to a Kubernetes API server"),
            "{error}"
        );
        let kubernetes = config("kubernetes: {}\n");
        for (flags, expected) in [
            (egress(&["10.0.0.1"], &[]), "expected ADDRESS[/PREFIX]:PORT"),
            (
                egress(&["10.0.0.300:6443"], &[]),
                "is not an address or a CIDR",
            ),
            (
                egress(&["10.0.0.1:6443"], &["s3.example.com"]),
                "expected NAME=CIDR",
            ),
            (
                egress(&["10.0.0.1:6443"], &["s3.example.com=s3"]),
                "is not an address or a CIDR",
            ),
        ] {
            let error = network_policy(&kubernetes, &flags, "corbel")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{flags:?}: {error}");
        }
        let (policy, _) = network_policy(
            &kubernetes,
            &egress(&["[fd00::1]:6443", "10.0.0.0/30:6443"], &[]),
            "corbel",
        )
        .unwrap();
        assert_eq!(
            rule_to(&policy, &["10.0.0.0/30", "fd00::1/128"])["ports"],
            json!([{"port": 6443, "protocol": "TCP"}])
        );
    }
}
