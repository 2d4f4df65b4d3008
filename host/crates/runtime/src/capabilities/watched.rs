//! Lists answered from the controller's own watches, as controller-runtime's cached client
//! answers them: `resources.list` of a kind the plugin's manifest owns or watches, and may read
//! whole, reads the objects the host already holds for that watch instead of asking the API
//! server again.
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
/// earlier one wrote. Without that, a reconcile that the echo of a Gateway's first child write
/// starts can find its other children as they were before the last reconcile wrote them, and
/// translate and write them again.
#[derive(Default)]
pub struct WatchedKinds {
    inner: Mutex<Inner>,
    caught_up: Notify,
    watches: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// The store serving each kind, and which watch fills it ([`WatchedKinds::new_watch`]).
    stores: HashMap<GvkKey, (Store<DynamicObject>, ApiResource, u64)>,
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
    /// A number for a new watch, which names it to [`WatchedKinds::serve`] and
    /// [`WatchedKinds::saw`].
    pub fn new_watch(&self) -> u64 {
        self.watches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Serves lists of `resource`'s kind from `store`, filled by watch `watch`, from now on (in
    /// place of an earlier watch of the kind). Call once its first list is complete
    /// (`Store::wait_until_ready`).
    pub fn serve(&self, watch: u64, resource: &ApiResource, store: Store<DynamicObject>) {
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        let mut inner = self.inner.lock().unwrap();
        let key = gvk_key(&gvk);
        // What the earlier store was awaited for is for this one to show.
        inner.expected.remove(&key);
        inner.texts.remove(&key);
        inner.stores.insert(key, (store, resource.clone(), watch));
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
        let Some((store, resource, _)) = inner.stores.get(&key) else {
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

    /// Called for each event of watch `watch` of `gvk`, after its cache applied it. Only the
    /// watch whose store serves the kind counts: another one may be ahead of it.
    pub fn saw(&self, watch: u64, gvk: &GroupVersionKind, event: &watcher::Event<DynamicObject>) {
        let key = gvk_key(gvk);
        let mut inner = self.inner.lock().unwrap();
        if inner
            .stores
            .get(&key)
            .is_none_or(|(_, _, serving)| *serving != watch)
        {
            return;
        }
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
/// (set-based terms, `gt`/`lt`, a malformed selector), which the API server then answers. The
/// whole grammar, with the API server's error messages, is the embedded API's
/// (`corbel_kubeapi::selectors`); the runtime does not depend on the API server's crate, so only
/// this subset, strictly checked, is evaluated here.
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

    fn route(name: &str, version: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.corbel.dev/v1alpha1", "kind": "Route",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": version,
                         "labels": {"gateway": "public"}},
        }))
        .unwrap()
    }

    fn names(objects: &[Arc<DynamicObject>]) -> Vec<(String, String)> {
        let mut names: Vec<_> = objects
            .iter()
            .map(|o| {
                let meta = &o.metadata;
                (
                    meta.name.clone().unwrap(),
                    meta.resource_version.clone().unwrap(),
                )
            })
            .collect();
        names.sort();
        names
    }

    /// A served kind with `r1` at version 1, as a controller's watch leaves it after its list.
    fn served() -> (
        WatchedKinds,
        kube::runtime::reflector::store::Writer<DynamicObject>,
        u64,
        GroupVersionKind,
    ) {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "gateway.corbel.dev",
            "v1alpha1",
            "Route",
        ));
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        let mut writer = kube::runtime::reflector::store::Writer::new(resource.clone());
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(route("r1", "1")));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let kinds = WatchedKinds::default();
        let watch = kinds.new_watch();
        kinds.serve(watch, &resource, writer.as_reader());
        (kinds, writer, watch, gvk)
    }

    #[tokio::test]
    async fn a_list_waits_for_the_controllers_own_write_to_reach_the_cache() {
        let (kinds, mut writer, watch, gvk) = served();
        let kinds = Arc::new(kinds);
        assert_eq!(
            names(
                &kinds
                    .list(&gvk, Some("default"), Some("gateway=public"))
                    .await
                    .unwrap()
            ),
            [("r1".to_string(), "1".to_string())]
        );
        assert!(
            kinds
                .list(&gvk, Some("other"), None)
                .await
                .unwrap()
                .is_empty()
        );
        // The controller updated r1 (version 2) and created r2 (3); its watch has not seen them.
        kinds.expect(&gvk, Some("default"), "r1", Some("2".into()));
        kinds.expect(&gvk, Some("default"), "r2", Some("3".into()));
        let list = tokio::spawn({
            let (kinds, gvk) = (kinds.clone(), gvk.clone());
            async move { kinds.list(&gvk, Some("default"), None).await }
        });
        // The test runs on one thread: the list runs until it waits, or to its end.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(
            !list.is_finished(),
            "a list must wait for the controller's own writes"
        );
        for event in [
            watcher::Event::Apply(route("r1", "2")),
            watcher::Event::Apply(route("r2", "3")),
        ] {
            writer.apply_watcher_event(&event);
            kinds.saw(watch, &gvk, &event);
        }
        let listed = list.await.unwrap().unwrap();
        assert_eq!(
            names(&listed),
            [
                ("r1".to_string(), "2".to_string()),
                ("r2".to_string(), "3".to_string())
            ]
        );
        // A write the cache already holds is not waited for.
        kinds.expect(&gvk, Some("default"), "r2", Some("3".into()));
        assert_eq!(
            kinds.list(&gvk, Some("default"), None).await.unwrap().len(),
            2
        );
        // Its JSON is kept per version.
        let r2 = listed
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some("r2"))
            .unwrap();
        assert_eq!(
            kinds.json(&gvk, r2),
            serde_json::to_string(r2.as_ref()).unwrap()
        );
    }

    #[tokio::test]
    async fn an_echo_that_never_comes_sends_the_list_to_the_api_server() {
        let (kinds, mut writer, watch, gvk) = served();
        kinds.expect(&gvk, Some("default"), "r1", None);
        // Another watch of the same kind saw the deletion; the store serving lists did not.
        let deleted = watcher::Event::Delete(route("r1", "1"));
        kinds.saw(watch + 1, &gvk, &deleted);
        assert!(kinds.list(&gvk, Some("default"), None).await.is_none());
        // Given up on, it is not waited for again.
        assert!(kinds.list(&gvk, Some("default"), None).await.is_some());
        writer.apply_watcher_event(&deleted);
        kinds.saw(watch, &gvk, &deleted);
        assert!(
            kinds
                .list(&gvk, Some("default"), None)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn kinds_nobody_watches_and_other_selectors_are_not_answered() {
        let (kinds, _writer, _, gvk) = served();
        let other = GroupVersionKind::gvk("gateway.corbel.dev", "v1alpha1", "Consumer");
        assert!(kinds.list(&other, Some("default"), None).await.is_none());
        assert!(
            kinds
                .list(&gvk, Some("default"), Some("gateway in (public)"))
                .await
                .is_none()
        );
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
