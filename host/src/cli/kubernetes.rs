//! `corbel kubernetes webhooks`, `rbac` and `networkpolicy`: the objects a cluster needs to send
//! admission requests to Corbel and to let its controllers work, generated from the configuration
//! so that they cannot drift from it (`deploy/kubernetes/base/` holds what these print, and a test
//! checks that it still matches).
//!
//! Two promises shape the webhooks. Corbel down must never stop the cluster from healing itself,
//! nor Corbel from starting again: every webhook leaves out `kube-system`, `kube-node-lease` and
//! Corbel's own namespace, Corbel's own service account, and — unless a binding is named with
//! `--include-control-plane` — the control plane's own identities (`system:` users that are not
//! service accounts, and kube-system's service accounts: kube-controller-manager publishing
//! `kube-root-ca.crt`, the scheduler, kubelets). And the API server must hear Corbel's answer,
//! failure policy included, before it gives up: `timeoutSeconds` is the binding's timeout plus a
//! second, never over Kubernetes' maximum of 10.
//!
//! The RBAC is least privilege by construction: each rule comes from one line of a manifest or a
//! grant ([`Needs`]), and the test table in this module is the list of what each one yields.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::bail;
use serde_json::{Value, json};

use crate::admission::{FailurePolicy, Mode};
use crate::capabilities::KindRef;
use crate::config::{BindingConfig, Config, ControllerConfig};
use crate::reconcile::Manifest;

/// Where Corbel runs in the cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Corbel's namespace.
    #[arg(long, default_value = "corbel")]
    pub namespace: String,
    /// The Service in front of Corbel's HTTPS port.
    #[arg(long, default_value = "corbel")]
    pub service: String,
    /// The Service's HTTPS port.
    #[arg(long, default_value_t = 443)]
    pub port: u16,
    /// Corbel's ServiceAccount.
    #[arg(long, default_value = "corbel")]
    pub service_account: String,
}

/// The API server's own ceiling for a webhook's timeout.
const MAX_TIMEOUT_SECONDS: u64 = 10;
/// Time for the answer to travel back, on top of the binding's own timeout.
const MARGIN: Duration = Duration::from_secs(1);
/// Namespaces no webhook ever sees, besides Corbel's own.
const CONTROL_PLANE_NAMESPACES: [&str; 2] = ["kube-system", "kube-node-lease"];
/// The control plane's identities: `system:` users that are not service accounts (the API server,
/// kube-controller-manager and kube-scheduler without per-controller credentials, kubelets as
/// `system:node:…`), and the service accounts of kube-system (per-controller credentials).
const NOT_CONTROL_PLANE: &str = "!request.userInfo.username.startsWith('system:') || (request.userInfo.username.startsWith('system:serviceaccount:') && !request.userInfo.username.startsWith('system:serviceaccount:kube-system:'))";

/// A webhook's `timeoutSeconds`: the binding's timeout plus the margin, rounded up, at most 10.
pub fn timeout_seconds(binding: Duration) -> u64 {
    (binding + MARGIN)
        .as_secs_f64()
        .ceil()
        .clamp(1.0, MAX_TIMEOUT_SECONDS as f64) as u64
}

/// The Validating- and MutatingWebhookConfiguration (each left out when no binding has its mode),
/// one webhook per binding. `include_control_plane` names the bindings that also see the control
/// plane's requests.
pub fn webhook_configurations(
    config: &Config,
    target: &Target,
    include_control_plane: &[String],
) -> anyhow::Result<Vec<Value>> {
    for name in include_control_plane {
        if !config.bindings.iter().any(|b| &b.name == name) {
            bail!("--include-control-plane {name}: there is no binding named {name:?}");
        }
    }
    let mut documents = Vec::new();
    for (mode, kind) in [
        (Mode::Validate, "ValidatingWebhookConfiguration"),
        (Mode::Mutate, "MutatingWebhookConfiguration"),
    ] {
        let webhooks = config
            .bindings
            .iter()
            .filter(|b| b.mode == mode)
            .map(|b| webhook(b, target, include_control_plane.contains(&b.name)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if webhooks.is_empty() {
            continue;
        }
        documents.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": target.service, "labels": labels()},
            "webhooks": webhooks,
        }));
    }
    Ok(documents)
}

fn labels() -> Value {
    json!({"app.kubernetes.io/name": "corbel", "app.kubernetes.io/managed-by": "corbel"})
}

fn webhook(binding: &BindingConfig, target: &Target, control_plane: bool) -> anyhow::Result<Value> {
    if binding.rules.is_empty() {
        bail!(
            "binding {:?} has no rules: say which requests it admits (rules: [{{operations, apiGroups, apiVersions, resources}}]), as in a webhook configuration",
            binding.name
        );
    }
    if binding.timeout + MARGIN > Duration::from_secs(MAX_TIMEOUT_SECONDS) {
        tracing::warn!(binding = %binding.name, timeout = ?binding.timeout, "the binding's timeout leaves no margin under the API server's 10 s: the API server may give up before Corbel's failure policy answers");
    }
    let rules: Vec<Value> = binding
        .rules
        .iter()
        .map(|r| {
            json!({"operations": r.operations, "apiGroups": r.api_groups, "apiVersions": r.api_versions,
                   "resources": r.resources, "scope": r.scope})
        })
        .collect();
    let mut namespace_selector = binding
        .namespace_selector
        .clone()
        .unwrap_or_else(|| json!({}));
    let excluded: Vec<&str> = CONTROL_PLANE_NAMESPACES
        .into_iter()
        .chain([target.namespace.as_str()])
        .collect();
    let expressions = namespace_selector
        .as_object_mut()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "binding {:?}: namespaceSelector must be a LabelSelector object",
                binding.name
            )
        })?
        .entry("matchExpressions")
        .or_insert_with(|| json!([]));
    expressions
        .as_array_mut()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "binding {:?}: namespaceSelector.matchExpressions must be a list",
                binding.name
            )
        })?
        .push(
            json!({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}),
        );
    let mut match_conditions = vec![json!({
        "name": "not-corbel",
        "expression": format!("request.userInfo.username != 'system:serviceaccount:{}:{}'", target.namespace, target.service_account),
    })];
    if !control_plane {
        match_conditions
            .push(json!({"name": "not-control-plane", "expression": NOT_CONTROL_PLANE}));
    }
    let path = format!("/{}/{}", binding.mode.as_str(), binding.name);
    let mut webhook = json!({
        "name": format!("{}.webhooks.corbel.dev", binding.name),
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": match binding.failure_policy { FailurePolicy::Fail => "Fail", FailurePolicy::Ignore => "Ignore" },
        "timeoutSeconds": timeout_seconds(binding.timeout),
        "clientConfig": {"service": {"namespace": target.namespace, "name": target.service, "port": target.port, "path": path}},
        "rules": rules,
        "namespaceSelector": namespace_selector,
        "matchConditions": match_conditions,
    });
    if let Some(selector) = &binding.object_selector {
        webhook["objectSelector"] = selector.clone();
    }
    if binding.mode == Mode::Mutate {
        // A later mutating webhook may change what this one saw: ask to be called again then.
        webhook["reinvocationPolicy"] = json!("IfNeeded");
    }
    Ok(webhook)
}

/// What Corbel needs of the API server: verbs per (apiGroup, resource), cluster-wide or in one
/// namespace, and Secrets by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Needs {
    /// (apiGroup, resource) → verbs, on every namespace.
    pub cluster: BTreeMap<(String, String), BTreeSet<&'static str>>,
    /// namespace → (apiGroup, resource, resourceNames) → verbs.
    pub namespaced: BTreeMap<String, NamespacedRules>,
}

/// (apiGroup, resource, resourceNames) → verbs, in one namespace.
pub type NamespacedRules = BTreeMap<(String, String, Vec<String>), BTreeSet<&'static str>>;

const READ: &[&str] = &["get", "list", "watch"];
const WATCH: &[&str] = &["list", "watch"];
const WRITE: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

impl Needs {
    fn cluster(&mut self, kind: &KindRef, subresource: Option<&str>, verbs: &[&'static str]) {
        let (group, plural) = plural(kind);
        let resource = subresource.map_or(plural.clone(), |s| format!("{plural}/{s}"));
        self.cluster
            .entry((group, resource))
            .or_default()
            .extend(verbs);
    }

    fn named(
        &mut self,
        namespace: &str,
        group: &str,
        resource: &str,
        names: &[&str],
        verbs: &[&'static str],
    ) {
        let key = (
            group.to_owned(),
            resource.to_owned(),
            names.iter().map(|n| n.to_string()).collect(),
        );
        self.namespaced
            .entry(namespace.to_owned())
            .or_default()
            .entry(key)
            .or_default()
            .extend(verbs);
    }

    /// A Lease held in Corbel's namespace: `create` (RBAC knows no name before the object
    /// exists), then `get update patch` on that Lease by name.
    fn lease(&mut self, namespace: &str, name: &str) {
        self.named(namespace, "coordination.k8s.io", "leases", &[], &["create"]);
        self.named(
            namespace,
            "coordination.k8s.io",
            "leases",
            &[name],
            &["get", "update", "patch"],
        );
    }
}

fn plural(kind: &KindRef) -> (String, String) {
    let resource = kube::core::ApiResource::from_gvk(&kind.gvk());
    (resource.group, resource.plural)
}

/// What the configuration's controllers need, each with its manifest (read from the plugin).
pub fn needs(
    config: &Config,
    controllers: &[(&ControllerConfig, &Manifest)],
    namespace: &str,
) -> Needs {
    let mut needs = Needs::default();
    for (controller, manifest) in controllers {
        for reconciled in &manifest.reconciles {
            let kind = reconciled.kind_ref();
            // Finalizers and status by server-side apply: patch; get for the object itself.
            needs.cluster(&kind, None, &["get", "list", "watch", "patch"]);
            needs.cluster(&kind, Some("status"), &["get", "patch"]);
            for owned in &reconciled.owns {
                needs.cluster(owned, None, WATCH);
            }
            for watched in &reconciled.watches {
                let kind = KindRef {
                    api_version: watched.api_version.clone(),
                    kind: watched.kind.clone(),
                };
                needs.cluster(&kind, None, WATCH);
            }
        }
        for kind in &controller.grants.resources.read {
            needs.cluster(kind, None, READ);
        }
        for kind in &controller.grants.resources.write {
            needs.cluster(kind, None, WRITE);
        }
        // A manifest's `holdsSecrets`: the host adds and removes its finalizer on those Secrets.
        let holds = manifest
            .reconciles
            .iter()
            .any(|r| !r.holds_secrets.is_empty());
        let verbs: &[&'static str] = if holds { &["get", "patch"] } else { &["get"] };
        for secret in &controller.grants.secrets {
            let names: Vec<&str> = if secret.name == "*" {
                vec![]
            } else {
                vec![secret.name.as_str()]
            };
            match secret.namespace.as_str() {
                // The reconciled object's namespace, or any: known only at run time.
                "*" | "@self" => {
                    let key = (String::new(), "secrets".to_owned());
                    if names.is_empty() {
                        needs.cluster.entry(key).or_default().extend(verbs);
                    } else {
                        // RBAC cannot name a Secret in every namespace without granting all of them
                        // by name: a ClusterRole rule with resourceNames does exactly that.
                        needs.named("", "", "secrets", &names, verbs);
                    }
                }
                exact => needs.named(exact, "", "secrets", &names, verbs),
            }
        }
    }
    if !controllers.is_empty() {
        // Events about the reconciled objects, in their namespaces.
        needs
            .cluster
            .entry(("events.k8s.io".into(), "events".into()))
            .or_default()
            .extend(["create", "patch"]);
        if let Some(election) = config.leader_election() {
            needs.lease(namespace, &election.lease_name);
        }
    }
    if config.xds.is_some() {
        // The xDS server, on every replica: reads the snapshots and reports Envoy's ACKs and
        // NACKs in their status (docs/xds.md).
        let key = |r: &str| ("xds.corbel.dev".to_owned(), r.to_owned());
        needs
            .cluster
            .entry(key("xdssnapshots"))
            .or_default()
            .extend(["list", "watch", "patch"]);
        needs
            .cluster
            .entry(key("xdssnapshots/status"))
            .or_default()
            .extend(["patch"]);
    }
    if config.bindings.iter().any(|b| b.audit.is_some()) {
        // A binding's background audit (docs/audit.md), run by the holder of `{lease}-audit`: it
        // lists the kinds its rules match in pages (and the namespaces its namespaceSelector
        // picks), then keeps one OpenReports report per resource by server-side apply, deleting
        // those whose resource is gone. A subresource in a rule is audited as its parent kind.
        for binding in config.bindings.iter().filter(|b| b.audit.is_some()) {
            for rule in &binding.rules {
                for group in &rule.api_groups {
                    for resource in &rule.resources {
                        let plural = resource.split('/').next().unwrap_or(resource);
                        needs
                            .cluster
                            .entry((group.clone(), plural.to_owned()))
                            .or_default()
                            .insert("list");
                    }
                }
            }
            if binding.namespace_selector.is_some() {
                needs
                    .cluster
                    .entry((String::new(), "namespaces".into()))
                    .or_default()
                    .insert("list");
            }
        }
        for reports in ["reports", "clusterreports"] {
            needs
                .cluster
                .entry(("openreports.io".into(), reports.into()))
                .or_default()
                .extend(["get", "list", "create", "patch", "delete"]);
        }
        if let Some(election) = config.leader_election() {
            needs.lease(namespace, &format!("{}-audit", election.lease_name));
        }
    }
    if !controllers.is_empty() || config.kubernetes.is_some() {
        // The Plugin kind: the host installs what Plugin objects name and reports it in their
        // status; after an install it reads the Plugin again (`get`: deleted meanwhile?).
        needs
            .cluster
            .entry(("corbel.dev".into(), "plugins".into()))
            .or_default()
            .extend(["get", "list", "watch", "patch"]);
        needs
            .cluster
            .entry(("corbel.dev".into(), "plugins/status".into()))
            .or_default()
            .extend(["get", "patch"]);
        if let Some(election) = config.leader_election() {
            // With several replicas, the holder of this Lease writes the Plugins' status.
            needs.lease(namespace, &format!("{}-plugins", election.lease_name));
        }
    }
    needs
}

/// The ClusterRole, Roles and their bindings to Corbel's ServiceAccount.
pub fn rbac(needs: &Needs, target: &Target) -> Vec<Value> {
    let subject = json!([{"kind": "ServiceAccount", "name": target.service_account, "namespace": target.namespace}]);
    let mut documents = Vec::new();
    let mut cluster_rules: Vec<Value> = needs
        .cluster
        .iter()
        .map(|((group, resource), verbs)| json!({"apiGroups": [group], "resources": [resource], "verbs": verbs}))
        .collect();
    // Secrets named in any namespace (a name with `@self` or `*`): cluster-wide, by name only.
    if let Some(named) = needs.namespaced.get("") {
        cluster_rules.extend(named.iter().map(|((group, resource, names), verbs)| {
            json!({"apiGroups": [group], "resources": [resource], "resourceNames": names, "verbs": verbs})
        }));
    }
    if !cluster_rules.is_empty() {
        documents.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": target.service_account, "labels": labels()}, "rules": cluster_rules}));
        documents.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": target.service_account, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": target.service_account},
            "subjects": subject}));
    }
    for (namespace, rules) in needs.namespaced.iter().filter(|(ns, _)| !ns.is_empty()) {
        let rules: Vec<Value> = rules
            .iter()
            .map(|((group, resource, names), verbs)| {
                let mut rule =
                    json!({"apiGroups": [group], "resources": [resource], "verbs": verbs});
                if !names.is_empty() {
                    rule["resourceNames"] = json!(names);
                }
                rule
            })
            .collect();
        let metadata =
            json!({"name": target.service_account, "namespace": namespace, "labels": labels()});
        documents.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata, "rules": rules}));
        documents.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": target.service_account},
            "subjects": subject}));
    }
    documents
}

/// Documents as one YAML stream, with a header that says where they came from.
pub fn to_yaml(documents: &[Value], command: &str) -> anyhow::Result<String> {
    let mut out =
        format!("# Generated by `corbel kubernetes {command}`: regenerate rather than edit.\n");
    for document in documents {
        out += "---\n";
        out += &serde_yaml_ng::to_string(document)?;
    }
    Ok(out)
}

/// `corbel kubernetes …`
#[derive(Debug, clap::Subcommand)]
pub enum KubernetesCommand {
    /// Print the webhook configurations of the configuration's bindings (one webhook per binding).
    ///
    /// Every webhook leaves out kube-system, kube-node-lease, Corbel's namespace, Corbel's own
    /// service account and the control plane's identities; name a binding with
    /// --include-control-plane to let it see the control plane's requests too.
    Webhooks {
        /// The configuration file of `corbel serve`.
        #[arg(long, short)]
        config: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
        /// A binding that also admits the control plane's own requests (repeatable).
        #[arg(long, value_name = "BINDING")]
        include_control_plane: Vec<String>,
    },
    /// Print the least-privilege RBAC the configuration's controllers, the Plugin kind and the
    /// xDS server need (loads each controller plugin to read its manifest).
    Rbac {
        /// The configuration file of `corbel serve`.
        #[arg(long, short)]
        config: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Print the egress NetworkPolicy of the configuration: cluster DNS, the API server, the
    /// registries its plugins come from and the hosts its grants name, each on its ports.
    ///
    /// A NetworkPolicy names addresses, not hosts: say what each host resolves to with
    /// --egress-cidr NAME=CIDR, and where the API server's endpoints are with --api-server. A
    /// host left unmapped is an error that lists it; nothing is opened to every address unless a
    /// name is mapped to 0.0.0.0/0.
    Networkpolicy {
        /// The configuration file of `corbel serve`.
        #[arg(long, short)]
        config: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        egress: networkpolicy::Egress,
    },
    /// Create (or keep, when made for the same Service) Corbel's own CA and a serving certificate
    /// for the Service, for a cluster without cert-manager (overlays/own-ca).
    Certificates {
        /// Where ca.crt, tls.crt and tls.key are written.
        #[arg(long)]
        dir: std::path::PathBuf,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn run(command: KubernetesCommand) -> anyhow::Result<()> {
    let text = match command {
        KubernetesCommand::Webhooks {
            config,
            target,
            include_control_plane,
        } => {
            let config = Config::load(&config)?;
            to_yaml(
                &webhook_configurations(&config, &target, &include_control_plane)?,
                "webhooks",
            )?
        }
        KubernetesCommand::Rbac { config, target } => {
            let config = Config::load(&config)?;
            let runtime = std::sync::Arc::new(crate::runtime::Runtime::new(
                &super::runtime_config(&config),
            )?);
            let loader = super::plugin_loader(&config);
            let mut loaded = Vec::new();
            for controller in &config.controllers {
                let plugin = crate::reconcile::load(&runtime, controller, &loader)
                    .await
                    .map_err(|e| anyhow::anyhow!("controller {:?}: {e}", controller.name))?;
                loaded.push((controller, plugin.manifest));
            }
            let pairs: Vec<_> = loaded.iter().map(|(c, m)| (*c, m)).collect();
            to_yaml(
                &rbac(&needs(&config, &pairs, &target.namespace), &target),
                "rbac",
            )?
        }
        KubernetesCommand::Networkpolicy {
            config: path,
            target,
            egress,
        } => {
            let config = Config::load(&path)?;
            let (policy, notes) =
                networkpolicy::network_policy(&config, &egress, &target.namespace)?;
            networkpolicy::to_yaml(
                &policy,
                &notes,
                &networkpolicy::command_line(&path, &egress, &target),
                networkpolicy::uses_api_server(&config),
            )?
        }
        KubernetesCommand::Certificates { dir, target } => {
            let service = format!("{}.{}.svc", target.service, target.namespace);
            let hosts = [service.clone(), format!("{service}.cluster.local")];
            let written = crate::tls::development_certificates(&dir, &hosts)?;
            format!(
                "{} (CA), {} and {}: valid for {}\n",
                written.ca.display(),
                written.files.cert.display(),
                written.files.key.display(),
                hosts.join(", ")
            )
        }
    };
    print!("{text}");
    Ok(())
}

pub mod networkpolicy;

#[cfg(test)]
mod tests;
