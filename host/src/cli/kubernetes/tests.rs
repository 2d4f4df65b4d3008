use super::*;

fn config(yaml: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corbel.yaml");
    std::fs::write(
        &path,
        format!("tls: {{certFile: tls.crt, keyFile: tls.key}}\n{yaml}"),
    )
    .unwrap();
    Config::load(&path).unwrap()
}

fn target() -> Target {
    Target {
        namespace: "corbel".into(),
        service: "corbel".into(),
        port: 443,
        service_account: "corbel".into(),
    }
}

const BINDINGS: &str = r#"
bindings:
  - name: require-labels
    plugin: p.wasm
    mode: validate
    timeout: 2s
    rules: [{operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}]
  - name: slow
    plugin: p.wasm
    mode: validate
    timeout: 30s
    failurePolicy: Ignore
    namespaceSelector: {matchLabels: {team: a}}
    rules: [{operations: ["*"], apiGroups: ["*"], apiVersions: ["*"], resources: ["*"]}]
  - name: default-labels
    plugin: p.wasm
    mode: mutate
    rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}]
"#;

fn webhooks(include: &[&str]) -> Vec<Value> {
    let include: Vec<String> = include.iter().map(|s| s.to_string()).collect();
    webhook_configurations(&config(BINDINGS), &target(), &include)
        .unwrap()
        .iter()
        .flat_map(|c| c["webhooks"].as_array().unwrap().clone())
        .collect()
}

#[test]
fn one_webhook_per_binding_with_the_safety_properties() {
    let all = webhooks(&[]);
    assert_eq!(all.len(), 3);
    for webhook in &all {
        assert_eq!(webhook["sideEffects"], "None", "{webhook}");
        assert_eq!(
            webhook["admissionReviewVersions"],
            json!(["v1"]),
            "{webhook}"
        );
        assert!(
            webhook["timeoutSeconds"].as_u64().unwrap() <= 10,
            "{webhook}"
        );
        let excluded = webhook["namespaceSelector"]["matchExpressions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
            .unwrap_or_else(|| panic!("no namespace exclusion: {webhook}"));
        for namespace in ["kube-system", "kube-node-lease", "corbel"] {
            assert!(
                excluded["values"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(namespace)),
                "{webhook}"
            );
        }
        let conditions = webhook["matchConditions"].to_string();
        assert!(
            conditions.contains("system:serviceaccount:corbel:corbel"),
            "{webhook}"
        );
        assert!(conditions.contains("not-control-plane"), "{webhook}");
    }
}

#[test]
fn each_webhook_carries_its_binding_s_rules_policy_path_and_selector() {
    let all = webhooks(&[]);
    let slow = all
        .iter()
        .find(|w| w["name"] == "slow.webhooks.corbel.dev")
        .unwrap();
    assert_eq!(slow["failurePolicy"], "Ignore");
    assert_eq!(
        slow["timeoutSeconds"], 10,
        "30 s is cut to the API server's ceiling"
    );
    assert_eq!(slow["clientConfig"]["service"]["path"], "/validate/slow");
    assert_eq!(
        slow["namespaceSelector"]["matchLabels"],
        json!({"team": "a"})
    );
    assert_eq!(slow["rules"][0]["resources"], json!(["*"]));
    let labels = all
        .iter()
        .find(|w| w["name"] == "require-labels.webhooks.corbel.dev")
        .unwrap();
    assert_eq!(labels["failurePolicy"], "Fail");
    assert_eq!(labels["timeoutSeconds"], 3, "2 s and a second of margin");
    let mutate = all
        .iter()
        .find(|w| w["name"] == "default-labels.webhooks.corbel.dev")
        .unwrap();
    assert_eq!(
        mutate["clientConfig"]["service"]["path"],
        "/mutate/default-labels"
    );
}

#[test]
fn a_binding_named_to_include_the_control_plane_loses_only_that_condition() {
    let all = webhooks(&["slow"]);
    let slow = all
        .iter()
        .find(|w| w["name"] == "slow.webhooks.corbel.dev")
        .unwrap();
    let conditions = slow["matchConditions"].to_string();
    assert!(!conditions.contains("not-control-plane"), "{slow}");
    assert!(
        conditions.contains("not-corbel"),
        "Corbel's own account stays out: {slow}"
    );
}

#[test]
fn a_binding_without_rules_or_an_unknown_include_is_refused() {
    let config = config("bindings: [{name: x, plugin: p.wasm, mode: validate}]");
    let error = webhook_configurations(&config, &target(), &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains(r#"binding "x" has no rules"#), "{error}");
    let error = webhook_configurations(&config, &target(), &["nope".into()])
        .unwrap_err()
        .to_string();
    assert!(error.contains("no binding named"), "{error}");
}

#[test]
fn timeouts_keep_a_margin_and_never_pass_ten_seconds() {
    for (binding_ms, expected) in [(100, 2), (2000, 3), (8500, 10), (9000, 10), (60_000, 10)] {
        assert_eq!(
            timeout_seconds(Duration::from_millis(binding_ms)),
            expected,
            "{binding_ms} ms"
        );
    }
}

const CONTROLLER: &str = r#"
controllers:
  - name: storage
    plugin: storage.wasm
    grants:
      secrets: [{namespace: "@self", name: "*"}, {namespace: vault, name: root-key}]
      resources:
        read: [{apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore}]
        write: [{apiVersion: v1, kind: ConfigMap}]
"#;

const MANIFEST: &str = r#"
reconciles:
  - apiVersion: storage.corbel.dev/v1alpha1
    kind: Bucket
    owns: [{apiVersion: v1, kind: ConfigMap}]
    watches: [{apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore, referencedBy: spec.objectStoreRef.name}]
"#;

/// Every (namespace, apiGroup, resource, resourceNames) → verbs the configuration above needs,
/// and nothing else: the least-privilege table.
#[test]
fn rbac_allows_exactly_what_the_manifest_and_grants_need() {
    let config = config(CONTROLLER);
    let manifest = Manifest::parse(MANIFEST).unwrap();
    let needs = needs(&config, &[(&config.controllers[0], &manifest)], "corbel");
    let cluster: Vec<(String, String, String)> = needs
        .cluster
        .iter()
        .map(|((g, r), v)| {
            (
                g.clone(),
                r.clone(),
                v.iter().copied().collect::<Vec<_>>().join(","),
            )
        })
        .collect();
    let expected = [
        (
            "",
            "configmaps",
            "create,delete,get,list,patch,update,watch",
        ),
        ("", "secrets", "get"),
        ("corbel.dev", "plugins", "get,list,patch,watch"),
        ("corbel.dev", "plugins/status", "get,patch"),
        ("events.k8s.io", "events", "create,patch"),
        ("storage.corbel.dev", "buckets", "get,list,patch,watch"),
        ("storage.corbel.dev", "buckets/status", "get,patch"),
        ("storage.corbel.dev", "objectstores", "get,list,watch"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    assert_eq!(cluster, expected);
    let namespaced: Vec<(String, String, Vec<String>, String)> = needs
        .namespaced
        .iter()
        .flat_map(|(ns, rules)| {
            rules.iter().map(move |((_, r, names), v)| {
                (
                    ns.clone(),
                    r.clone(),
                    names.clone(),
                    v.iter().copied().collect::<Vec<_>>().join(","),
                )
            })
        })
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        namespaced,
        vec![
            (s("corbel"), s("leases"), vec![], s("create")),
            (
                s("corbel"),
                s("leases"),
                vec![s("corbel-controllers")],
                s("get,patch,update")
            ),
            (
                s("corbel"),
                s("leases"),
                vec![s("corbel-controllers-plugins")],
                s("get,patch,update")
            ),
            (s("vault"), s("secrets"), vec![s("root-key")], s("get")),
        ]
    );
}

#[test]
fn rbac_documents_bind_the_roles_to_corbel_s_service_account() {
    let config = config(CONTROLLER);
    let manifest = Manifest::parse(MANIFEST).unwrap();
    let documents = rbac(
        &needs(&config, &[(&config.controllers[0], &manifest)], "corbel"),
        &target(),
    );
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding"
        ]
    );
    for binding in documents
        .iter()
        .filter(|d| d["kind"].as_str().unwrap().ends_with("Binding"))
    {
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "corbel", "namespace": "corbel"}])
        );
    }
    let text = serde_json::to_string(&documents).unwrap();
    assert!(
        !text.contains(r#""*""#),
        "no wildcard verb, group or resource: {text}"
    );
}

#[test]
fn webhooks_only_need_no_rbac() {
    let config = config(BINDINGS);
    assert!(rbac(&needs(&config, &[], "corbel"), &target()).is_empty());
}

#[test]
fn the_xds_server_reads_snapshots_and_writes_their_status_only() {
    let config = config("xds: {listen: 127.0.0.1:18000}\n");
    let needs = needs(&config, &[], "corbel");
    let rules: Vec<(String, String)> = needs
        .cluster
        .iter()
        .map(|((_, r), v)| (r.clone(), v.iter().copied().collect::<Vec<_>>().join(",")))
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        rules,
        vec![
            (s("xdssnapshots"), s("list,patch,watch")),
            (s("xdssnapshots/status"), s("patch"))
        ]
    );
}

/// A manifest with `holdsSecrets`: the host puts its finalizer on the Secrets the grants name,
/// so `patch` joins `get` on exactly those (issue 18, bug 1).
#[test]
fn a_manifest_that_holds_secrets_needs_patch_on_the_secrets_it_is_granted() {
    let config = config(CONTROLLER);
    let text = MANIFEST.replace(
        "    owns:",
        "    holdsSecrets: [spec.credentialsSecretRef.name]\n    owns:",
    );
    let manifest = Manifest::parse(&text).unwrap();
    let needs = needs(&config, &[(&config.controllers[0], &manifest)], "corbel");
    let cluster: Vec<&str> = needs.cluster[&(String::new(), "secrets".to_owned())]
        .iter()
        .copied()
        .collect();
    assert_eq!(cluster, ["get", "patch"]);
    let vault: Vec<&str> = needs.namespaced["vault"]
        .iter()
        .find(|((_, resource, _), _)| resource == "secrets")
        .map(|(_, verbs)| verbs.iter().copied().collect())
        .unwrap();
    assert_eq!(vault, ["get", "patch"]);
}

/// A binding with `audit:` lists what its rules match (a subresource as its parent, the
/// namespaces of its namespaceSelector), keeps OpenReports reports and holds the `-audit` Lease
/// (issue 18: the generated RBAC covers the background audit).
#[test]
fn an_audited_binding_needs_lists_of_its_kinds_reports_and_the_audit_lease() {
    let config = config(
        r#"
bindings:
  - name: audited
    plugin: p.wasm
    mode: validate
    audit: {}
    namespaceSelector: {matchLabels: {team: a}}
    rules: [{operations: [CREATE], apiGroups: ["", apps], apiVersions: [v1], resources: [configmaps, deployments/status]}]
  - name: not-audited
    plugin: p.wasm
    mode: validate
    rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [secrets]}]
"#,
    );
    let needs = needs(&config, &[], "corbel");
    let verbs = |group: &str, resource: &str| -> Vec<&str> {
        needs
            .cluster
            .get(&(group.to_owned(), resource.to_owned()))
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    };
    assert_eq!(verbs("", "configmaps"), ["list"]);
    assert_eq!(verbs("apps", "deployments"), ["list"]);
    assert_eq!(verbs("", "namespaces"), ["list"]);
    assert!(
        verbs("", "secrets").is_empty(),
        "only audited bindings' kinds"
    );
    for reports in ["reports", "clusterreports"] {
        assert_eq!(
            verbs("openreports.io", reports),
            ["create", "delete", "get", "list", "patch"]
        );
    }
    let leases = &needs.namespaced["corbel"];
    let audit_lease = leases
        .iter()
        .find(|((_, resource, names), _)| {
            resource == "leases" && names == &["corbel-controllers-audit"]
        })
        .map(|(_, verbs)| verbs.iter().copied().collect::<Vec<_>>());
    assert_eq!(audit_lease, Some(vec!["get", "patch", "update"]));
}
