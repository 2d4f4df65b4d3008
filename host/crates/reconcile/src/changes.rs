//! Which changes of a watched object reconcile the objects that depend on it.
//!
//! Every write of a watched object's status used to reconcile all its dependants: a Gateway
//! that writes its counters and config version after each reconcile re-ran every one of its
//! Routes, each of which reads everything again (quadratic in the number of Routes). A
//! watched object now reconciles its dependants only when something they can read changed:
//! its uid, generation, labels, annotations, finalizers, deletion timestamp, any top-level
//! field other than `status` (spec, data, …), and the part of its status the manifest's
//! `statusFields` names (all of it when absent; conditions compared by type, status and
//! reason, so a new timestamp or message is not a change). Changes of `resourceVersion` and
//! `managedFields` alone never are. Deletions always pass: the last state of a deleted object
//! is usually the one already seen.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::{Stream, StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::{reflector, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

/// The watcher of `api`, as the objects whose readable state changed (and those deleted).
/// With a `cache`, every event reaches its store first, then its callback, so a reconcile it
/// starts lists at least that change.
pub fn watch<F>(
    api: Api<DynamicObject>,
    status_fields: Option<Vec<String>>,
    cache: Option<(Writer<DynamicObject>, F)>,
) -> impl Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static
where
    F: Fn(&watcher::Event<DynamicObject>) + Send + 'static,
{
    let mut seen: HashMap<(Option<String>, String), u64> = HashMap::new();
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let events = match cache {
        Some((store, applied)) => reflector(store, events).inspect_ok(applied).left_stream(),
        None => events.right_stream(),
    };
    events.filter_map(move |event| {
        let passed = match event {
            Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                let hash = readable(&object, status_fields.as_deref());
                (seen.insert(key(&object), hash) != Some(hash)).then_some(Ok(object))
            }
            Ok(watcher::Event::Delete(object)) => {
                seen.remove(&key(&object));
                Some(Ok(object))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        std::future::ready(passed)
    })
}

fn key(object: &DynamicObject) -> (Option<String>, String) {
    (object.metadata.namespace.clone(), object.name_any())
}

/// A hash of what the dependants of `object` can read of it.
pub fn readable(object: &DynamicObject, status_fields: Option<&[String]>) -> u64 {
    let meta = &object.metadata;
    let mut rest = object.data.clone();
    let status = rest
        .as_object_mut()
        .and_then(|o| o.remove("status"))
        .unwrap_or(Value::Null);
    let status = match status_fields {
        None => status,
        Some(fields) => fields
            .iter()
            .map(|field| {
                let value = status.get(field).cloned().unwrap_or(Value::Null);
                (
                    field.clone(),
                    if field == "conditions" {
                        conditions(&value)
                    } else {
                        value
                    },
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    };
    let readable = json!({
        "uid": meta.uid,
        "generation": meta.generation,
        "labels": meta.labels,
        "annotations": meta.annotations,
        "finalizers": meta.finalizers,
        "deletionTimestamp": meta.deletion_timestamp,
        "rest": rest,
        "status": status,
    });
    let mut hasher = DefaultHasher::new();
    readable.to_string().hash(&mut hasher);
    hasher.finish()
}

/// Conditions as their (type, status, reason), in order of type.
fn conditions(value: &Value) -> Value {
    let mut tuples: Vec<Value> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| json!([c["type"], c["status"], c["reason"]]))
        .collect();
    tuples.sort_by_key(|t| t[0].to_string());
    Value::Array(tuples)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(generation: i64, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.corbel.dev/v1alpha1", "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": "default", "uid": "u1", "generation": generation,
                "resourceVersion": generation.to_string()},
            "spec": {"driver": "envoy"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn named_status_fields_and_spec_changes_count_the_rest_does_not() {
        let fields = ["conditions".to_string(), "rejectedRoutes".to_string()];
        let fields = Some(&fields[..]);
        let ready = |reason: &str, at: &str, routes: u32| {
            json!({"routes": routes, "configVersion": format!("v{routes}"), "conditions": [
                {"type": "Ready", "status": "True", "reason": reason, "message": at, "lastTransitionTime": at}]})
        };
        let base = readable(&gateway(1, ready("Served", "t1", 1)), fields);
        // counters, versions, messages and timestamps alone: no change
        assert_eq!(
            base,
            readable(&gateway(1, ready("Served", "t2", 7)), fields)
        );
        // a condition's reason, a named field, the generation: a change
        assert_ne!(
            base,
            readable(&gateway(1, ready("Waiting", "t1", 1)), fields)
        );
        let mut rejected = ready("Served", "t1", 1);
        rejected["rejectedRoutes"] = json!([{"name": "orders"}]);
        assert_ne!(base, readable(&gateway(1, rejected), fields));
        assert_ne!(
            base,
            readable(&gateway(2, ready("Served", "t1", 1)), fields)
        );
        // with no statusFields, any status change counts; resourceVersion alone never does
        assert_ne!(
            readable(&gateway(1, ready("Served", "t1", 1)), None),
            readable(&gateway(1, ready("Served", "t1", 7)), None)
        );
        let mut bumped = gateway(1, ready("Served", "t1", 1));
        bumped.metadata.resource_version = Some("99".into());
        assert_eq!(base, readable(&bumped, fields));
        // deletion starting is a change
        let mut deleting = gateway(1, ready("Served", "t1", 1));
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap());
        assert_ne!(base, readable(&deleting, fields));
    }
}
