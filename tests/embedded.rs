//! The embedded mode end to end: the real `corbel serve` with its embedded store, driven by the
//! clients users already have — kube-rs (`Api<DynamicObject>`, `kube::runtime::watcher`) and the
//! real `kubectl` — over HTTPS with the kubeconfig the server writes.

use std::time::Duration;

use corbel_e2e::{Embedded, binding, root};
use futures::TryStreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// The same CRD fixture the kubectl test applies.
fn crd() -> Value {
    let text = std::fs::read_to_string(root().join("tests/data/kube/widgets-crd.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

async fn with_crd(embedded: &Embedded) -> kube::Client {
    let client = embedded.client().await;
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    client
}

fn widget(name: &str, size: i64, labels: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "labels": labels}, "spec": {"size": size}})).unwrap()
}

#[tokio::test]
async fn kube_rs_creates_reads_updates_and_deletes_custom_resources() {
    let embedded = Embedded::start("[]", "", None).await;
    let client = with_crd(&embedded).await;
    let api = widgets(&client, "default");

    let created = api
        .create(
            &PostParams::default(),
            &widget("w1", 3, json!({"team": "a"})),
        )
        .await
        .unwrap();
    assert_eq!(
        created.data["spec"]["color"], "blue",
        "the CRD schema's default is applied"
    );
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let invalid = api
        .create(&PostParams::default(), &widget("w2", 0, json!({})))
        .await
        .unwrap_err();
    match invalid {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(status.message.contains("spec.size"), "{}", status.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data["spec"]["size"] = json!(4);
    let updated = api
        .replace("w1", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(
        updated.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );
    stale.data["spec"]["size"] = json!(9);
    match api
        .replace("w1", &PostParams::default(), &stale)
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let patched = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "gold"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.as_ref().unwrap()["tier"], "gold");
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "a label change is not a spec change"
    );

    let status = api
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(status.data["status"]["ready"], true);
    let ignored = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(
        ignored.data["status"]["ready"], true,
        "the main resource does not write status"
    );

    for (name, team) in [("w3", "a"), ("w4", "b"), ("w5", "a")] {
        api.create(
            &PostParams::default(),
            &widget(name, 1, json!({"team": team})),
        )
        .await
        .unwrap();
    }
    let team_a = api
        .list(&ListParams::default().labels("team=a"))
        .await
        .unwrap();
    let names: Vec<_> = team_a
        .items
        .iter()
        .map(|w| w.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["w1", "w3", "w5"]);
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(page.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=w4"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    api.delete("w1", &DeleteParams::default()).await.unwrap();
    match api.get("w1").await.unwrap_err() {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.message, r#"widgets.example.com "w1" not found"#);
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_the_last_one_is_removed() {
    let embedded = Embedded::start("[]", "", None).await;
    let client = with_crd(&embedded).await;
    let api = widgets(&client, "default");
    let mut w = widget("held", 1, json!({}));
    w.metadata.finalizers = Some(vec!["example.com/cleanup".into()]);
    api.create(&PostParams::default(), &w).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(
        api.get_opt("held").await.unwrap().is_none(),
        "gone once its last finalizer is removed"
    );
}

#[tokio::test]
async fn kube_runtime_watcher_sees_adds_modifications_and_deletes() {
    let embedded = Embedded::start("[]", "", None).await;
    let client = with_crd(&embedded).await;
    let api = widgets(&client, "default");
    api.create(&PostParams::default(), &widget("before", 1, json!({})))
        .await
        .unwrap();

    let stream = kube::runtime::watcher(
        api.clone(),
        kube::runtime::watcher::Config::default().any_semantic(),
    );
    let mut events = Box::pin(stream);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.create(&PostParams::default(), &widget("during", 1, json!({})))
            .await
            .unwrap();
        api.patch(
            "during",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
        api.delete("during", &DeleteParams::default())
            .await
            .unwrap();
    };
    let reader = async {
        let mut seen = Vec::new();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
        {
            use kube::runtime::watcher::Event;
            match event {
                Event::InitApply(o) => seen.push(format!("init {}", o.metadata.name.unwrap())),
                Event::Apply(o) => seen.push(format!(
                    "apply {} size {}",
                    o.metadata.name.unwrap(),
                    o.data["spec"]["size"]
                )),
                Event::Delete(o) => {
                    seen.push(format!("delete {}", o.metadata.name.unwrap()));
                    break;
                }
                Event::Init | Event::InitDone => {}
            }
        }
        seen
    };
    let ((), seen) = tokio::join!(writer, reader);
    assert_eq!(
        seen,
        [
            "init before",
            "apply during size 1",
            "apply during size 2",
            "delete during"
        ]
    );
}

#[tokio::test]
async fn kubectl_applies_gets_edits_and_deletes() {
    let bindings = binding(
        "require-labels",
        "require_labels",
        "validate",
        r#"{"labels": ["team"]}"#,
        "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps]}",
    );
    let embedded = Embedded::start(&bindings, "", None).await;
    let kube = root().join("tests/data/kube");
    let file = |name: &str| kube.join(name).display().to_string();
    let ok = |args: &[&str], stdin: Option<&str>| {
        let (success, out, err) = embedded.kubectl(args, stdin);
        assert!(success, "kubectl {args:?} failed: {err}");
        out
    };

    assert!(
        ok(&["apply", "-f", &file("widgets-crd.yaml")], None)
            .contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created")
    );
    assert!(
        ok(&["apply", "-f", &file("widget.yaml")], None).contains("widget.example.com/w1 created")
    );
    let table = ok(&["get", "widgets"], None);
    assert!(
        table.contains("SIZE")
            && table
                .lines()
                .any(|l| l.starts_with("w1") && l.contains(" 3 ")),
        "{table}"
    );
    assert_eq!(
        ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.color}"], None),
        "blue"
    );

    let (success, _, err) = embedded.kubectl(&["apply", "-f", &file("widget-invalid.yaml")], None);
    assert!(!success);
    assert!(
        err.contains(r#"Unsupported value: "green""#) && err.contains("spec.size"),
        "{err}"
    );

    let edited = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&embedded.kubeconfig)
        .args(["edit", "widget", "w1"])
        .env("EDITOR", "sed -i s/size:\\ 3/size:\\ 7/")
        .output()
        .unwrap();
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    assert_eq!(
        ok(
            &[
                "get",
                "widget",
                "w1",
                "-o",
                "jsonpath={.spec.size} {.metadata.generation}"
            ],
            None
        ),
        "7 2"
    );

    ok(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"),
    );
    ok(
        &["apply", "-n", "shop", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n",
        ),
    );
    assert_eq!(
        ok(
            &[
                "get",
                "secret",
                "db",
                "-n",
                "shop",
                "-o",
                "jsonpath={.data.password}"
            ],
            None
        ),
        "aHVudGVyMg=="
    );

    let (success, _, err) = embedded.kubectl(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n"),
    );
    assert!(!success);
    assert!(err.contains(r#"admission webhook "require-labels" denied the request: missing required labels: team"#), "{err}");
    ok(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {team: shop}}\ndata: {a: b}\n",
        ),
    );

    assert!(ok(&["delete", "widget", "w1"], None).contains(r#"widget.example.com "w1" deleted"#));
    assert!(ok(&["delete", "namespace", "shop"], None).contains("deleted"));
    let (_, _, err) = embedded.kubectl(&["get", "secret", "db", "-n", "shop"], None);
    assert!(
        err.contains("NotFound"),
        "a namespace takes its contents with it: {err}"
    );
    let (success, _, err) = embedded.kubectl(&["get", "namespaces", "--token", "wrong"], None);
    assert!(
        !success && (err.contains("Unauthorized") || err.contains("You must be logged in")),
        "{err}"
    );
}

#[tokio::test]
async fn a_user_without_a_role_is_forbidden_with_the_verb_and_resource_named() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "viewer-token,viewer,1,\"readers\"\n").unwrap();
    let auth = format!(
        "auth:\n  tokenFile: {}\n  rules:\n  - subjects: [{{group: readers}}]\n    verbs: [get, list, watch]\n    groups: [\"\"]\n    resources: [configmaps]\n",
        tokens.display()
    );
    let embedded = Embedded::start("[]", &auth, None).await;
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps",
        embedded.server.base
    );
    let anonymous = embedded.server.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "no anonymous access");
    let list = embedded
        .server
        .client
        .get(&url)
        .bearer_auth("viewer-token")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);
    let create = embedded
        .server
        .client
        .post(&url)
        .bearer_auth("viewer-token")
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status().as_u16(), 403);
    let status: Value = create.json().await.unwrap();
    assert_eq!(status["reason"], "Forbidden");
    assert_eq!(
        status["message"],
        r#"configmaps is forbidden: User "viewer" cannot create resource "configmaps" in API group "" in the namespace "default""#
    );
}

/// Nothing acknowledged is lost: writers create objects as fast as they can, the server gets
/// SIGKILL in the middle, and after a restart on the same data directory every create that got a
/// success response is there.
#[tokio::test]
async fn every_acknowledged_write_survives_sigkill() {
    let embedded = Embedded::start("[]", "", None).await;
    let client = embedded.client().await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, acknowledged, stop) = (client.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
                    Api::namespaced(client, "default");
                for i in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let name = format!("storm-{w}-{i}");
                    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
                        json!({"metadata": {"name": name}, "data": {"i": i.to_string()}}),
                    )
                    .unwrap();
                    match api.create(&PostParams::default(), &cm).await {
                        Ok(_) => acknowledged.lock().unwrap().push(name),
                        Err(_) => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let data = embedded.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "the storm wrote only {} objects",
        acknowledged.len()
    );

    let restarted = Embedded::start("[]", "", Some(data)).await;
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(restarted.client().await, "default");
    let present: std::collections::BTreeSet<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|n| !present.contains(*n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes were lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
}
