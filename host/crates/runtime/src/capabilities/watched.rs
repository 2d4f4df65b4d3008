//! Lists answered from the controller's own watches, as controller-runtime's cached client
//! answers them: `resources.list` of a kind the plugin's manifest owns or watches reads the
//! objects the host already holds for that watch instead of asking the API server again.
//!
//! Why: a Gateway of 1,000 Routes lists its 1,002 `XdsSnapshot`s and 3,000 Routes, Consumers
//! and ConsumeRoutes on every reconcile. Profiled during the gateway bench's propagation part
//! (`perf record --call-graph dwarf` on `corbel serve`), answering those lists took 34 % of the
//! host's CPU: 24 % in the API server (reading and re-serialising every object) and 10 % in the
//! client parsing the answer again, for objects the host's watches had parsed already.
//!
//! The contract is the informer's: a list reflects every event the watch delivered before it,
//! and the watch delivers an object's change to the cache before it reconciles anything, so a
//! reconcile sees at least the change that started it. It may lag a moment behind a write
//! (the plugin's own included); an update from such a read meets a `conflict`, as an update
//! from any stale read does. A cache is used only once its first list is complete; until then,
//! for kinds nobody watches, and for selectors beyond `=`, `==`, `!=`, `key` and `!key`, the
//! API server answers (with its own errors for a malformed selector).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::Notify;

use super::GvkKey;

/// How long a list waits for the watch to deliver the plugin's own writes before it asks the
/// API server instead. Events arrive within milliseconds; this bounds a watch that stalls.
const CATCH_UP: Duration = Duration::from_secs(2);

/// An object by namespace and name.
type ObjectKey = (Option<String>, String);

/// The synced watch caches of one controller plugin, by kind, and the plugin's own writes
/// that a cache has not delivered yet (the "expectations" of Kubernetes' ReplicaSet
/// controller): a list of a kind waits for them, so that a reconcile always sees what an
/// earlier one wrote. Without that, the reconcile that the echo of a Gateway's first child
/// write starts found its other children as they were before, translated again and wrote
/// them again (1.99 Gateway reconciles a change in the gateway bench, against 1.45).
#[derive(Default)]
pub struct WatchedKinds {
    inner: Mutex<Inner>,
    caught_up: Notify,
}

#[derive(Default)]
struct Inner {
    stores: HashMap<GvkKey, (Store<DynamicObject>, ApiResource)>,
    /// Writes not yet seen by the kind's watch: the resourceVersion written, or `None` for a
    /// deletion.
    expected: HashMap<GvkKey, HashMap<ObjectKey, Option<String>>>,
    /// Each cached object as JSON, by resourceVersion, written on its first list: serialising
    /// every object on every list was 14 % of the host's CPU in the gateway bench.
    texts: HashMap<GvkKey, HashMap<ObjectKey, (String, Arc<str>)>>,
}

fn gvk_key(gvk: &GroupVersionKind) -> GvkKey {
    (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone())
}

fn object_key(object: &DynamicObject) -> ObjectKey {
    (
        object.metadata.namespace.clone(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

impl WatchedKinds {
    /// Serves lists of `resource`'s kind from `store` from now on. Call once its first list is complete
    /// (`Store::wait_until_ready`). A kind already served keeps its first store.
    pub fn serve(&self, resource: &ApiResource, store: Store<DynamicObject>) {
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        let mut inner = self.inner.lock().unwrap();
        inner
            .stores
            .entry(gvk_key(&gvk))
            .or_insert((store, resource.clone()));
    }

    /// Records a write of the plugin's (`resource_version` of what the API stored, `None` for
    /// an object deleted), unless the kind's cache already holds it.
    pub fn expect(
        &self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
        name: &str,
        resource_version: Option<String>,
    ) {
        let key = gvk_key(gvk);
        let mut inner = self.inner.lock().unwrap();
        let Some((store, resource)) = inner.stores.get(&key) else {
            return;
        };
        let mut reference = ObjectRef::new_with(name, resource.clone());
        if let Some(namespace) = namespace {
            reference = reference.within(namespace);
        }
        let cached = store
            .get(&reference)
            .map(|o| o.metadata.resource_version.clone());
        let held = match (&cached, &resource_version) {
            (None, None) => true,
            (Some(cached), Some(written)) => cached.as_ref() == Some(written),
            _ => false,
        };
        if !held {
            inner.expected.entry(key).or_default().insert(
                (namespace.map(str::to_owned), name.to_owned()),
                resource_version,
            );
        }
    }

    /// Called for each event of `gvk`'s watch, after its cache applied it.
    pub fn saw(&self, gvk: &GroupVersionKind, event: &watcher::Event<DynamicObject>) {
        let key = gvk_key(gvk);
        let mut inner = self.inner.lock().unwrap();
        match event {
            watcher::Event::Delete(o) => {
                if let Some(texts) = inner.texts.get_mut(&key) {
                    texts.remove(&object_key(o));
                }
            }
            // A fresh list: what it dropped without a Delete event goes with the old texts.
            watcher::Event::Init => {
                inner.texts.remove(&key);
            }
            _ => {}
        }
        let Some(expected) = inner.expected.get_mut(&key) else {
            return;
        };
        let before = expected.len();
        match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let object = object_key(o);
                if expected
                    .get(&object)
                    .is_some_and(|rv| *rv == o.metadata.resource_version)
                {
                    expected.remove(&object);
                }
            }
            watcher::Event::Delete(o) => {
                expected.remove(&object_key(o));
            }
            // A fresh list replaced the cache: it holds every write made before it.
            watcher::Event::InitDone => expected.clear(),
            watcher::Event::Init => {}
        }
        if expected.len() < before {
            self.caught_up.notify_waiters();
        }
    }

    /// `object`, which a [`WatchedKinds::list`] of `gvk` returned, as JSON.
    pub fn json(&self, gvk: &GroupVersionKind, object: &DynamicObject) -> String {
        let (key, object_key) = (gvk_key(gvk), object_key(object));
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        if let Some((cached, text)) = self
            .inner
            .lock()
            .unwrap()
            .texts
            .get(&key)
            .and_then(|texts| texts.get(&object_key))
            && *cached == version
        {
            return text.to_string();
        }
        let text = serde_json::to_string(object).expect("a DynamicObject serializes");
        self.inner
            .lock()
            .unwrap()
            .texts
            .entry(key)
            .or_default()
            .insert(object_key, (version, Arc::from(text.as_str())));
        text
    }

    /// The objects of `gvk` in `namespace` (every namespace for `None`: a cluster-scoped kind)
    /// that `selector` selects, unsorted, once the cache holds the plugin's own writes; `None`
    /// when this cache cannot answer.
    pub async fn list(
        &self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Option<Vec<Arc<DynamicObject>>> {
        let terms = match selector {
            Some(selector) => equality_terms(selector)?,
            None => Vec::new(),
        };
        let key = gvk_key(gvk);
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        let store = loop {
            let notified = self.caught_up.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.inner.lock().unwrap();
                let store = inner.stores.get(&key)?.0.clone();
                let waiting = inner.expected.get(&key).map_or(0, HashMap::len);
                if waiting == 0 {
                    break store;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        kind = %gvk.kind,
                        waiting,
                        "the watch has not delivered the controller's own writes after {CATCH_UP:?}; listing from the API server"
                    );
                    inner.expected.remove(&key);
                    return None;
                }
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        };
        let empty = BTreeMap::new();
        Some(store.state_filter(|object| {
            namespace.is_none_or(|n| object.metadata.namespace.as_deref() == Some(n))
                && terms
                    .iter()
                    .all(|term| term.holds(object.metadata.labels.as_ref().unwrap_or(&empty)))
        }))
    }
}

/// One requirement of an equality-based label selector.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

impl Term {
    fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            // As Kubernetes: `k!=v` also selects objects without the label.
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::Exists(k) => labels.contains_key(k),
            Term::Absent(k) => !labels.contains_key(k),
        }
    }
}

/// The terms of `k=v,k==v,k!=v,k,!k` with valid keys and values; `None` for anything else
/// (set-based terms, `gt`/`lt`, a malformed selector), which the API server then answers.
fn equality_terms(selector: &str) -> Option<Vec<Term>> {
    let mut terms = Vec::new();
    if selector.trim().is_empty() {
        return Some(terms);
    }
    for term in selector.split(',') {
        let term = term.trim();
        let parsed = if let Some((k, v)) = term.split_once("!=") {
            Term::NotEquals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Term::Equals(k.trim().to_string(), v.trim().to_string())
        } else if let Some(k) = term.strip_prefix('!') {
            Term::Absent(k.trim().to_string())
        } else {
            Term::Exists(term.to_string())
        };
        let valid = match &parsed {
            Term::Equals(k, v) | Term::NotEquals(k, v) => valid_key(k) && valid_value(v),
            Term::Exists(k) | Term::Absent(k) => valid_key(k),
        };
        if !valid {
            return None;
        }
        terms.push(parsed);
    }
    Some(terms)
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of 1 to 63 characters.
fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && !name.is_empty() && valid_value(name)
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.is_empty()
        || (bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
        let labels = labels(pairs);
        equality_terms(selector)
            .unwrap()
            .iter()
            .all(|t| t.holds(&labels))
    }

    #[test]
    fn equality_selectors_match_as_kubernetes_matches_them() {
        assert!(selects(
            "gateway.corbel.dev/gateway=public",
            &[("gateway.corbel.dev/gateway", "public")]
        ));
        assert!(!selects(
            "gateway.corbel.dev/gateway=public",
            &[("gateway.corbel.dev/gateway", "edge")]
        ));
        assert!(selects("a==1, b!=2", &[("a", "1"), ("b", "3")]));
        // `!=` selects objects without the label too
        assert!(selects("b!=2", &[]));
        assert!(selects("a,!b", &[("a", "")]));
        assert!(!selects("a,!b", &[("a", ""), ("b", "x")]));
        assert!(selects("", &[]));
        assert!(selects("a=", &[("a", "")]));
    }

    #[test]
    fn anything_else_is_left_to_the_api_server() {
        for selector in [
            "a in (x,y)",
            "a notin (x)",
            "a>1",
            "a<1",
            "-a=b",
            "a=-b",
            "A.B/c=d",
            "a=b c",
            "a=b,",
            "/a=b",
            &format!("a={}", "x".repeat(64)),
        ] {
            assert_eq!(equality_terms(selector), None, "{selector}");
        }
    }
}
