//! The reconcile decisions against an in-memory S3 store (answering as Garage does) and a fake
//! cluster. The real store and the real host are in tests/storage.rs.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use corbel_sdk::controller::Status;
use corbel_sdk::{CapabilityError, Object, ReconcileError};
use serde_json::{Value, json};

use super::*;
use crate::s3::{HttpRequest, HttpResponse, TransportError};

const ENDPOINT: &str = "http://store.test:3900";

#[derive(Default)]
struct StoredBucket {
    objects: usize,
    lifecycle: Option<Vec<u8>>,
    cors: Option<Vec<u8>>,
}

/// Just enough of S3 for the controller: buckets, their lifecycle and CORS documents (stored as
/// sent, answered back as read), and an object count.
#[derive(Default)]
struct FakeStore {
    buckets: RefCell<BTreeMap<String, StoredBucket>>,
    down: Cell<bool>,
    denied: Cell<bool>,
    /// `METHOD /path?query` of every request received.
    log: RefCell<Vec<String>>,
}

fn answer(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

fn error(status: u16, code: &str) -> HttpResponse {
    answer(
        status,
        &format!("<Error><Code>{code}</Code><Message>{code}</Message></Error>"),
    )
}

impl FakeStore {
    fn with_bucket(self, name: &str, objects: usize) -> FakeStore {
        self.buckets.borrow_mut().insert(
            name.into(),
            StoredBucket {
                objects,
                ..Default::default()
            },
        );
        self
    }

    fn writes(&self) -> Vec<String> {
        self.log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("PUT") || l.starts_with("DELETE"))
            .cloned()
            .collect()
    }

    fn handle(&self, request: &HttpRequest) -> HttpResponse {
        let rest = request
            .url
            .strip_prefix(ENDPOINT)
            .expect("requests go to the store");
        self.log
            .borrow_mut()
            .push(format!("{} {rest}", request.method));
        let authorized = request
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.contains("Credential=GKgood/"));
        if !authorized {
            return error(403, "AccessDenied");
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let sub = query.split('=').next().unwrap_or_default();
        let name = path.trim_start_matches('/');
        let mut buckets = self.buckets.borrow_mut();
        if name.is_empty() {
            let list: String = buckets
                .keys()
                .map(|b| format!("<Bucket><Name>{b}</Name></Bucket>"))
                .collect();
            return answer(
                200,
                &format!(
                    "<ListAllMyBucketsResult><Buckets>{list}</Buckets></ListAllMyBucketsResult>"
                ),
            );
        }
        let method = request.method.as_str();
        if (method, sub) == ("PUT", "") {
            if buckets.contains_key(name) {
                return error(409, "BucketAlreadyOwnedByYou");
            }
            buckets.insert(name.into(), StoredBucket::default());
            return answer(200, "");
        }
        let Some(bucket) = buckets.get_mut(name) else {
            return error(404, "NoSuchBucket");
        };
        let document = |stored: &Option<Vec<u8>>, missing: &str| match stored {
            Some(body) => answer(200, std::str::from_utf8(body).unwrap()),
            None => error(404, missing),
        };
        match (method, sub) {
            ("HEAD", "") => answer(200, ""),
            ("DELETE", "") if bucket.objects > 0 => error(409, "BucketNotEmpty"),
            ("DELETE", "") => {
                buckets.remove(name);
                answer(204, "")
            }
            ("GET", "lifecycle") => document(&bucket.lifecycle, "NoSuchLifecycleConfiguration"),
            ("PUT", "lifecycle") => {
                bucket.lifecycle = Some(request.body.clone());
                answer(200, "")
            }
            ("DELETE", "lifecycle") => {
                bucket.lifecycle = None;
                answer(204, "")
            }
            ("GET", "cors") => document(&bucket.cors, "NoSuchCORSConfiguration"),
            ("PUT", "cors") => {
                bucket.cors = Some(request.body.clone());
                answer(200, "")
            }
            ("DELETE", "cors") => {
                bucket.cors = None;
                answer(204, "")
            }
            other => panic!("the fake store does not know {other:?}"),
        }
    }
}

impl Transport for FakeStore {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.denied.get() {
            return Err(TransportError::with_source(
                "refused by the host",
                OriginDenied(ENDPOINT.into()),
            ));
        }
        if self.down.get() {
            return Err(TransportError::new("connection refused"));
        }
        Ok(self.handle(&request))
    }
}

/// The namespace's ObjectStores and Secrets.
#[derive(Default)]
struct FakeCluster {
    stores: BTreeMap<String, Value>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    buckets: Vec<Value>,
    buckets_denied: bool,
}

impl Cluster for FakeCluster {
    fn object_store(&self, name: &str) -> Result<Option<Value>, CapabilityError> {
        Ok(self.stores.get(name).cloned())
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        self.secrets.get(name).cloned().ok_or_else(|| {
            CapabilityError::NotFound(format!("secret default/{name} does not exist"))
        })
    }

    fn buckets(&self) -> Result<Vec<Value>, CapabilityError> {
        if self.buckets_denied {
            return Err(CapabilityError::AccessDenied(
                "resources: reading Bucket is not granted".into(),
            ));
        }
        Ok(self.buckets.clone())
    }
}

fn store_object() -> Value {
    json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "ObjectStore",
           "metadata": {"name": "garage", "namespace": "default"},
           "spec": {"endpoint": ENDPOINT, "region": "garage",
                    "credentialsSecretRef": {"name": "garage-keys"}}})
}

fn cluster() -> FakeCluster {
    let mut cluster = FakeCluster::default();
    cluster.stores.insert("garage".into(), store_object());
    cluster.secrets.insert(
        "garage-keys".into(),
        BTreeMap::from([
            ("accessKeyId".into(), b"GKgood".to_vec()),
            ("secretAccessKey".into(), b"s3cr3t\n".to_vec()),
        ]),
    );
    cluster
}

fn bucket_object(spec: Value) -> Object {
    Object(
        json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "Bucket",
                  "metadata": {"name": "photos", "namespace": "default", "generation": 1},
                  "spec": spec}),
    )
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn env<'a>(cluster: &'a FakeCluster, store: &'a FakeStore, settings: &'a Settings) -> Env<'a> {
    Env {
        cluster,
        transport: store,
        now,
        settings,
    }
}

fn reason(error: &ReconcileError) -> (&str, &str, bool, Option<Duration>) {
    match error {
        ReconcileError::Transient {
            reason,
            message,
            retry_after,
        } => (reason, message, false, *retry_after),
        ReconcileError::Permanent {
            reason,
            message,
            retry_after,
        } => (reason, message, true, *retry_after),
    }
}

fn full_spec() -> Value {
    json!({"objectStoreRef": {"name": "garage"},
           "lifecycle": [{"expirationDays": 7, "prefix": "tmp/"}, {"id": "all", "expirationDays": 365}],
           "cors": [{"allowedOrigins": ["https://app.example"], "allowedMethods": ["GET", "PUT"], "maxAgeSeconds": 600}]})
}

#[test]
fn creates_a_missing_bucket_with_its_rules_and_records_name_and_endpoint() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    let outcome = bucket(
        &bucket_object(full_spec()),
        &env(&cluster, &store, &settings),
    )
    .unwrap();

    assert_eq!(
        outcome.status,
        Some(json!({"bucketName": "photos", "endpoint": ENDPOINT}))
    );
    assert_eq!(outcome.conditions[0].type_, "Ready");
    assert_eq!(outcome.conditions[0].status, Status::True);
    assert_eq!(outcome.requeue_after, Some(Duration::from_secs(300)));
    let reasons: Vec<&str> = outcome.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["BucketCreated", "LifecycleApplied", "CorsApplied"]
    );
    let buckets = store.buckets.borrow();
    let stored = &buckets["photos"];
    let lifecycle = String::from_utf8(stored.lifecycle.clone().unwrap()).unwrap();
    assert!(
        lifecycle.contains("<ID>expire-1</ID>") && lifecycle.contains("<Days>365</Days>"),
        "{lifecycle}"
    );
    assert!(stored.cors.is_some());
}

#[test]
fn reconciling_an_unchanged_bucket_again_writes_nothing() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    let env = env(&cluster, &store, &settings);
    bucket(&bucket_object(full_spec()), &env).unwrap();
    store.log.borrow_mut().clear();

    let outcome = bucket(&bucket_object(full_spec()), &env).unwrap();
    assert_eq!(store.writes(), Vec::<String>::new());
    assert!(outcome.events.is_empty(), "{:?}", outcome.events);
}

#[test]
fn rules_removed_from_the_spec_are_deleted_from_the_bucket() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    let env = env(&cluster, &store, &settings);
    bucket(&bucket_object(full_spec()), &env).unwrap();
    store.log.borrow_mut().clear();

    bucket(
        &bucket_object(json!({"objectStoreRef": {"name": "garage"}})),
        &env,
    )
    .unwrap();
    assert_eq!(
        store.writes(),
        ["DELETE /photos?lifecycle", "DELETE /photos?cors"]
    );
    let buckets = store.buckets.borrow();
    assert!(buckets["photos"].lifecycle.is_none() && buckets["photos"].cors.is_none());
}

#[test]
fn the_bucket_name_in_the_spec_wins_over_the_object_name() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    let spec = json!({"objectStoreRef": {"name": "garage"}, "bucketName": "team-a-photos"});
    let outcome = bucket(&bucket_object(spec), &env(&cluster, &store, &settings)).unwrap();
    assert_eq!(outcome.status.unwrap()["bucketName"], "team-a-photos");
    assert!(store.buckets.borrow().contains_key("team-a-photos"));
}

#[test]
fn a_missing_object_store_is_transient_and_named() {
    let (mut cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    cluster.stores.clear();
    let error = bucket(
        &bucket_object(full_spec()),
        &env(&cluster, &store, &settings),
    )
    .unwrap_err();
    let (reason, message, permanent, _) = reason(&error);
    assert_eq!((reason, permanent), ("ObjectStoreNotFound", false));
    assert!(
        message.contains("ObjectStore garage does not exist"),
        "{message}"
    );
}

#[test]
fn a_secret_without_the_key_blocks_and_says_which_key_is_missing() {
    let (mut cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    cluster
        .secrets
        .get_mut("garage-keys")
        .unwrap()
        .remove("secretAccessKey");
    let error = bucket(
        &bucket_object(full_spec()),
        &env(&cluster, &store, &settings),
    )
    .unwrap_err();
    let (reason, message, permanent, retry) = reason(&error);
    assert_eq!((reason, permanent), ("SecretKeyMissing", true));
    assert!(message.contains("no key \"secretAccessKey\""), "{message}");
    assert!(
        message.contains("credentialsSecretRef.secretAccessKeyKey"),
        "{message}"
    );
    assert_eq!(
        retry,
        Some(Duration::from_secs(30)),
        "a fixed Secret is noticed"
    );
}

#[test]
fn an_unreachable_store_is_transient_and_names_the_endpoint() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    store.down.set(true);
    let error = bucket(
        &bucket_object(full_spec()),
        &env(&cluster, &store, &settings),
    )
    .unwrap_err();
    let (reason, message, permanent, retry) = reason(&error);
    assert_eq!(
        (reason, permanent, retry),
        ("StoreUnreachable", false, None)
    );
    assert!(message.contains(ENDPOINT), "{message}");
}

#[test]
fn an_origin_the_host_refuses_blocks_and_points_at_the_grant() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    store.denied.set(true);
    let error = bucket(
        &bucket_object(full_spec()),
        &env(&cluster, &store, &settings),
    )
    .unwrap_err();
    let (reason, message, permanent, _) = reason(&error);
    assert_eq!((reason, permanent), ("AccessDenied", true));
    assert!(message.contains("grants.http"), "{message}");
}

#[test]
fn retain_cleanup_lets_go_without_touching_the_store() {
    let (cluster, settings) = (cluster(), Settings::default());
    let store = FakeStore::default().with_bucket("photos", 3);
    bucket_cleanup(
        &bucket_object(full_spec()),
        &env(&cluster, &store, &settings),
    )
    .unwrap();
    assert!(store.log.borrow().is_empty());
    assert!(store.buckets.borrow().contains_key("photos"));
}

#[test]
fn delete_cleanup_deletes_an_empty_bucket_and_accepts_one_already_gone() {
    let (cluster, settings) = (cluster(), Settings::default());
    let store = FakeStore::default().with_bucket("photos", 0);
    let spec = json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete"});
    let env = env(&cluster, &store, &settings);
    let outcome = bucket_cleanup(&bucket_object(spec.clone()), &env).unwrap();
    assert_eq!(outcome.events[0].reason, "BucketDeleted");
    assert!(store.buckets.borrow().is_empty());
    bucket_cleanup(&bucket_object(spec), &env).expect("a bucket already gone is success");
}

#[test]
fn delete_cleanup_of_an_invalid_name_lets_go_without_the_store_or_its_object_store() {
    // No ObjectStore and no Secret either: an invalid name must not wait on them.
    let (mut cluster, settings) = (cluster(), Settings::default());
    cluster.stores.clear();
    cluster.secrets.clear();
    let store = FakeStore::default();
    for name in ["Photos_2024", "ab", "xn--photos"] {
        let spec = json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete", "bucketName": name});
        let outcome = bucket_cleanup(&bucket_object(spec), &env(&cluster, &store, &settings))
            .expect("an invalid name lets go");
        assert_eq!(outcome.events[0].reason, "NothingToDelete");
        assert!(
            outcome.events[0].note.contains(name),
            "{:?}",
            outcome.events[0]
        );
    }
    assert!(store.log.borrow().is_empty(), "{:?}", store.log.borrow());
}

#[test]
fn delete_cleanup_without_its_object_store_or_secret_waits_and_says_how_to_let_go() {
    let without_store = |c: &mut FakeCluster| c.stores.clear();
    let without_secret = |c: &mut FakeCluster| c.secrets.clear();
    type Removal<'a> = &'a dyn Fn(&mut FakeCluster);
    let cases: [(Removal, &str); 2] = [
        (&without_store, "ObjectStoreNotFound"),
        (&without_secret, "SecretNotFound"),
    ];
    for (remove, expected) in cases {
        let (mut cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
        remove(&mut cluster);
        let spec = json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete"});
        let error =
            bucket_cleanup(&bucket_object(spec), &env(&cluster, &store, &settings)).unwrap_err();
        let (reason, message, permanent, _) = reason(&error);
        assert_eq!((reason, permanent), (expected, false));
        assert!(
            message.contains("set spec.deletionPolicy to Retain"),
            "{message}"
        );
    }
}

#[test]
fn delete_cleanup_of_a_bucket_with_objects_blocks_and_looks_again_later() {
    let (cluster, settings) = (
        cluster(),
        Settings {
            blocked_retry_seconds: 5,
            ..Settings::default()
        },
    );
    let store = FakeStore::default().with_bucket("photos", 2);
    let spec = json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete"});
    let error =
        bucket_cleanup(&bucket_object(spec), &env(&cluster, &store, &settings)).unwrap_err();
    let (reason, message, permanent, retry) = reason(&error);
    assert_eq!(
        (reason, permanent, retry),
        ("BucketNotEmpty", true, Some(Duration::from_secs(5)))
    );
    assert!(
        message.contains("still holds objects") && message.contains("nothing is lost"),
        "{message}"
    );
    assert!(
        store.buckets.borrow().contains_key("photos"),
        "the bucket is kept"
    );
}

#[test]
fn an_object_store_is_ready_when_a_signed_request_is_answered() {
    let (cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    let outcome = object_store(&Object(store_object()), &env(&cluster, &store, &settings)).unwrap();
    assert_eq!(outcome.conditions[0].reason, "StoreReachable");
    assert_eq!(outcome.status, Some(json!({"endpoint": ENDPOINT})));
    assert_eq!(store.log.borrow().as_slice(), ["GET /"]);
}

#[test]
fn an_object_store_whose_key_is_refused_is_blocked_with_the_store_answer() {
    let (mut cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    cluster
        .secrets
        .get_mut("garage-keys")
        .unwrap()
        .insert("accessKeyId".into(), b"GKwrong".to_vec());
    let error =
        object_store(&Object(store_object()), &env(&cluster, &store, &settings)).unwrap_err();
    let (reason, message, permanent, _) = reason(&error);
    assert_eq!((reason, permanent), ("CredentialsRefused", true));
    assert!(message.contains("AccessDenied"), "{message}");
}

#[test]
fn settings_default_when_absent_and_refuse_unknown_fields() {
    let settings: Settings = serde_json::from_str("{}").unwrap();
    assert_eq!(
        (settings.resync_seconds, settings.blocked_retry_seconds),
        (300, 30)
    );
    assert!(serde_json::from_str::<Settings>(r#"{"resync": 1}"#).is_err());
}

#[test]
fn object_store_cleanup_waits_while_buckets_name_it() {
    // A namespace being deleted: the ObjectStore must outlive the Buckets whose cleanup needs it.
    let (mut cluster, store, settings) = (cluster(), FakeStore::default(), Settings::default());
    let object = Object(store_object());
    cluster.buckets = vec![
        bucket_object(json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete"})).0,
        bucket_object(json!({"objectStoreRef": {"name": "other"}})).0,
    ];
    let error = object_store_cleanup(&object, &env(&cluster, &store, &settings)).unwrap_err();
    let (reason, message, permanent, retry) = reason(&error);
    assert_eq!((reason, permanent), ("ObjectStoreInUse", false));
    assert!(message.contains("Buckets (photos)"), "{message}");
    assert!(
        retry.is_some_and(|r| r <= Duration::from_secs(5)),
        "{retry:?}"
    );

    cluster.buckets.remove(0);
    object_store_cleanup(&object, &env(&cluster, &store, &settings))
        .expect("no Bucket names it: it goes");
    cluster.buckets_denied = true;
    let outcome = object_store_cleanup(&object, &env(&cluster, &store, &settings))
        .expect("without the grant it lets go, as before");
    assert_eq!(outcome.events[0].reason, "BucketsNotChecked");
    assert!(store.log.borrow().is_empty());
}
