use serde_json::json;

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn widget(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new("example.com", "widgets", Some(ns), name)
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn create_sets_server_fields_and_refuses_a_second_create() {
    let (_dir, store) = store();
    let created = store
        .create(
            widget("a", "w"),
            json!({"metadata": {"uid": "mine"}, "spec": {"size": 1}}),
        )
        .await
        .unwrap();
    let meta = &created["metadata"];
    assert_eq!(
        (
            meta["name"].as_str(),
            meta["namespace"].as_str(),
            meta["generation"].as_i64()
        ),
        (Some("w"), Some("a"), Some(1))
    );
    assert_ne!(meta["uid"], "mine", "the server chooses the uid");
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(store.get(&widget("a", "w")).unwrap(), created);
    let again = store.create(widget("a", "w"), json!({})).await.unwrap_err();
    assert!(matches!(again, StoreError::AlreadyExists(_)), "{again}");
}

#[tokio::test]
async fn a_stale_resource_version_conflicts_and_generation_counts_spec_changes_only() {
    let (_dir, store) = store();
    let v1 = store
        .create(widget("a", "w"), json!({"spec": {"size": 1}}))
        .await
        .unwrap();
    let mut edit = v1.clone();
    edit["metadata"]["labels"] = json!({"x": "y"});
    let v2 = store
        .update(
            widget("a", "w"),
            edit,
            UpdateMode::Main {
                status_subresource: true,
            },
        )
        .await
        .unwrap();
    assert!(rv(&v2) > rv(&v1));
    assert_eq!(
        v2["metadata"]["generation"], 1,
        "a metadata change is not a spec change"
    );

    let mut stale = v1.clone();
    stale["spec"]["size"] = json!(2);
    let conflict = store
        .update(
            widget("a", "w"),
            stale,
            UpdateMode::Main {
                status_subresource: true,
            },
        )
        .await
        .unwrap_err();
    assert!(
        conflict
            .to_string()
            .contains("the object has been modified"),
        "{conflict}"
    );

    let mut grow = v2.clone();
    grow["spec"]["size"] = json!(2);
    grow["status"] = json!({"ready": true});
    let v3 = store
        .update(
            widget("a", "w"),
            grow,
            UpdateMode::Main {
                status_subresource: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(v3["metadata"]["generation"], 2);
    assert_eq!(
        v3.get("status"),
        None,
        "the main resource does not write status when the kind has a status subresource"
    );

    let v4 = store
        .update(
            widget("a", "w"),
            json!({"status": {"ready": true}, "spec": {"size": 99}}),
            UpdateMode::Status,
        )
        .await
        .unwrap();
    assert_eq!(
        (v4["status"]["ready"].as_bool(), v4["spec"]["size"].as_i64()),
        (Some(true), Some(2)),
        "status writes only status"
    );
    assert_eq!(v4["metadata"]["generation"], 2);

    let same = store
        .update(widget("a", "w"), v4.clone(), UpdateMode::Status)
        .await
        .unwrap();
    assert_eq!(
        rv(&same),
        rv(&v4),
        "an update that changes nothing gets no new resourceVersion"
    );
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_the_last_one_goes() {
    let (_dir, store) = store();
    store
        .create(
            widget("a", "w"),
            json!({"metadata": {"finalizers": ["x", "y"]}}),
        )
        .await
        .unwrap();
    let held = match store.delete(widget("a", "w"), None).await.unwrap() {
        Deleted::Finalizing(o) => o,
        other => panic!("expected finalizing, got {other:?}"),
    };
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let mut one = held.clone();
    one["metadata"]["finalizers"] = json!(["y"]);
    let one = store
        .update(
            widget("a", "w"),
            one,
            UpdateMode::Main {
                status_subresource: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        one["metadata"]["deletionTimestamp"],
        held["metadata"]["deletionTimestamp"]
    );
    assert!(store.get(&widget("a", "w")).is_ok());
    let mut none = one.clone();
    none["metadata"]["finalizers"] = json!([]);
    store
        .update(
            widget("a", "w"),
            none,
            UpdateMode::Main {
                status_subresource: false,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        store.get(&widget("a", "w")),
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents_and_a_namespace_its_contents() {
    let (_dir, store) = store();
    let owner = store.create(widget("a", "owner"), json!({})).await.unwrap();
    let reference = json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": "owner", "uid": owner["metadata"]["uid"]}]);
    store
        .create(
            widget("a", "child"),
            json!({"metadata": {"ownerReferences": reference}}),
        )
        .await
        .unwrap();
    store
        .create(
            widget("a", "held-child"),
            json!({"metadata": {"ownerReferences": reference, "finalizers": ["f"]}}),
        )
        .await
        .unwrap();
    store.delete(widget("a", "owner"), None).await.unwrap();
    assert!(matches!(
        store.get(&widget("a", "child")),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.get(&widget("a", "held-child")).unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "a dependent with finalizers is marked, not removed"
    );

    let ns = ObjectKey::new("", "namespaces", None, "b");
    store.create(ns.clone(), json!({})).await.unwrap();
    store.create(widget("b", "w1"), json!({})).await.unwrap();
    store
        .create(ObjectKey::new("", "configmaps", Some("b"), "c"), json!({}))
        .await
        .unwrap();
    store.delete(ns, None).await.unwrap();
    assert!(matches!(
        store.get(&widget("b", "w1")),
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.get(&widget("a", "held-child")).is_ok(),
        "other namespaces are untouched"
    );
}

#[tokio::test]
async fn lists_by_namespace_in_pages() {
    let (_dir, store) = store();
    for (ns, name) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")] {
        store
            .create(widget(ns, name), json!({"spec": {"n": name}}))
            .await
            .unwrap();
    }
    let all = store
        .list(
            &ObjectKey::prefix("example.com", "widgets", None),
            None,
            None,
            &|_| true,
        )
        .unwrap();
    assert_eq!(all.items.len(), 4);
    assert_eq!(all.revision, store.revision().unwrap());
    let prefix = ObjectKey::prefix("example.com", "widgets", Some("a"));
    let page = store.list(&prefix, None, Some(2), &|_| true).unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = store
        .list(&prefix, page.next.as_deref(), Some(2), &|_| true)
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0]["metadata"]["name"], "3");
    assert_eq!(rest.next, None);
}

#[tokio::test]
async fn a_watch_replays_from_a_resource_version_then_follows_live_writes() {
    let (_dir, store) = store();
    let first = store.create(widget("a", "1"), json!({})).await.unwrap();
    store.create(widget("a", "2"), json!({})).await.unwrap();
    store.create(widget("b", "1"), json!({})).await.unwrap();
    let mut watch = store
        .watch(
            ObjectKey::prefix("example.com", "widgets", Some("a")),
            rv(&first),
        )
        .unwrap();
    let replayed = watch.recv().await.unwrap();
    assert_eq!(
        (replayed.kind, replayed.object["metadata"]["name"].as_str()),
        (EventType::Added, Some("2"))
    );
    store.delete(widget("a", "1"), None).await.unwrap();
    let live = watch.recv().await.unwrap();
    assert_eq!(
        (live.kind, live.object["metadata"]["name"].as_str()),
        (EventType::Deleted, Some("1"))
    );
}

#[tokio::test]
async fn survives_a_reopen_with_every_committed_write() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
    {
        let store = Store::open(dir.path()).unwrap();
        let writes = names
            .iter()
            .map(|n| store.create(widget("a", n), json!({})));
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
    }
    let store = Store::open(dir.path()).unwrap();
    let listed = store
        .list(
            &ObjectKey::prefix("example.com", "widgets", None),
            None,
            None,
            &|_| true,
        )
        .unwrap();
    assert_eq!(listed.items.len(), 50);
    assert_eq!(listed.revision, 50);
}

#[tokio::test]
async fn a_watch_from_before_the_retained_log_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        events: 3,
        ..Retention::default()
    };
    let store = Store::open_with_retention(dir.path(), retention).unwrap();
    for i in 0..6 {
        store
            .create(widget("a", &i.to_string()), json!({}))
            .await
            .unwrap();
    }
    let prefix = ObjectKey::prefix("example.com", "widgets", None);
    match store.watch(prefix.clone(), 1) {
        Err(StoreError::Gone { requested, oldest }) => assert_eq!((requested, oldest), (1, 3)),
        other => panic!("expected Gone, got {:?}", other.map(|_| ())),
    }
    let mut resumed = store.watch(prefix, 3).unwrap();
    assert_eq!(
        resumed.recv().await.unwrap().rv,
        4,
        "the retained tail is replayed"
    );
}

/// Changes the spec of the big widget, one more event of its full size.
async fn rewrite(store: &Store, n: Value) {
    let mut object = store.get(&widget("a", "big")).unwrap();
    object["spec"]["n"] = n;
    let mode = UpdateMode::Main {
        status_subresource: false,
    };
    store
        .update(widget("a", "big"), object, mode)
        .await
        .unwrap();
}

/// A large object rewritten often must not keep its every version: the byte limit drops old
/// events even when their number is far below the event limit, keeps the newest, and holds
/// across a reopen.
#[tokio::test]
async fn the_event_log_keeps_within_its_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        events: 1_000,
        bytes: 64 * 1024,
    };
    let big = "x".repeat(20 * 1024);
    let prefix = ObjectKey::prefix("example.com", "widgets", None);
    {
        let store = Store::open_with_retention(dir.path(), retention).unwrap();
        store
            .create(widget("a", "big"), json!({"spec": {"blob": big}}))
            .await
            .unwrap();
        for i in 0..9 {
            rewrite(&store, json!(i)).await;
        }
        // 10 events of ~20 KiB each: only the last three fit in 64 KiB.
        match store.watch(prefix.clone(), 6) {
            Err(StoreError::Gone { oldest, .. }) => assert_eq!(oldest, 7),
            other => panic!("expected Gone, got {:?}", other.map(|_| ())),
        }
        let mut tail = store.watch(prefix.clone(), 7).unwrap();
        assert_eq!(
            tail.recv().await.unwrap().rv,
            8,
            "the kept tail is replayed"
        );
    }
    let store = Store::open_with_retention(dir.path(), retention).unwrap();
    rewrite(&store, json!("again")).await;
    assert!(
        matches!(
            store.watch(prefix.clone(), 7),
            Err(StoreError::Gone { oldest: 8, .. })
        ),
        "the count of kept bytes survives a reopen"
    );
}
