//! The storage controller end to end, against a real Garage (the S3-compatible store, crates.io
//! `garage` 2.5.0: one node per test on loopback, started by `corbel_e2e::garage`) and the real
//! `corbel serve` in embedded mode. The server runs `target/wasm32-wasip2/plugin/storage.wasm`
//! twice: as the `storage` controller (grants: Secrets of the reconciled object's namespace,
//! HTTP to this Garage only, reading ObjectStores) and as an inline validating policy for
//! `buckets` and `objectstores`. The tests drive it with kube-rs as a user would and check the
//! store itself with the plugin's S3 client, natively.
//!
//! Needs the `garage` binary (`cargo xtask test` installs it), the plugin (`cargo xtask plugins`)
//! and the host (`cargo build --release -p corbel`).

use std::time::{Duration, Instant, SystemTime};

use corbel_e2e::garage::{Garage, UreqTransport};
use corbel_e2e::probes::{condition, create_crd_file, resource};
use corbel_e2e::{Embedded, binding, plugin};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use storage::s3::{Client, CorsRule, Credentials, LifecycleRule};

/// How long the controller may take to get somewhere (a first reconcile waits for discovery).
const WITHIN: Duration = Duration::from_secs(60);

/// The last `n` lines of a log: a failure's cause is at its end, and a whole log is cut in the
/// middle by the CI report.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The store as the test sees it, natively.
struct Store {
    s3: Client,
    http: UreqTransport,
}

impl Store {
    fn of(garage: &Garage) -> Store {
        let credentials = Credentials {
            access_key_id: garage.access_key_id.clone(),
            secret_access_key: garage.secret_access_key.clone(),
        };
        Store {
            s3: Client::new(&garage.endpoint(), &garage.region, credentials).unwrap(),
            http: UreqTransport::pooled(),
        }
    }

    fn exists(&self, bucket: &str) -> bool {
        self.s3
            .head_bucket(&self.http, SystemTime::now(), bucket)
            .unwrap()
    }

    fn lifecycle(&self, bucket: &str) -> Vec<LifecycleRule> {
        self.s3
            .get_lifecycle(&self.http, SystemTime::now(), bucket)
            .unwrap()
    }

    fn cors(&self, bucket: &str) -> Vec<CorsRule> {
        self.s3
            .get_cors(&self.http, SystemTime::now(), bucket)
            .unwrap()
    }
}

/// `corbel serve` in embedded mode with the storage controller and policy, the CRDs from
/// `deploy/crds/`, and (with a Garage) its Secret and an ObjectStore `garage` in `default`.
struct Setup {
    embedded: Embedded,
    client: kube::Client,
}

const POLICY_RULES: &str = "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [storage.corbel.dev], apiVersions: [v1alpha1], resources: [buckets, objectstores]}";

impl Setup {
    async fn start(garage: Option<&Garage>) -> Setup {
        let bindings = binding("storage", "storage", "validate", "{}", POLICY_RULES);
        let controllers = match garage {
            Some(garage) => format!(
                "controllers:\n  - name: storage\n    plugin: {}\n    settings: {{resyncSeconds: 1, blockedRetrySeconds: 1}}\n    timeout: 10s\n    backoff: {{initial: 200ms, max: 1s}}\n    grants:\n      secrets: [{{namespace: '@self'}}]\n      http: ['{}']\n      resources: {{read: [{{apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore}}, {{apiVersion: storage.corbel.dev/v1alpha1, kind: Bucket}}]}}\n",
                plugin("storage").display(),
                garage.endpoint()
            ),
            None => String::new(),
        };
        let embedded = Embedded::start(&bindings, &controllers, None).await;
        let client = embedded.client().await;
        for kind in ["objectstores", "buckets"] {
            create_crd_file(
                &client,
                &format!("deploy/crds/{kind}.storage.corbel.dev.yaml"),
            )
            .await;
        }
        let setup = Setup { embedded, client };
        if let Some(garage) = garage {
            setup
                .create(
                    &setup.secrets(),
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "garage-keys"},
                           "stringData": {"accessKeyId": garage.access_key_id, "secretAccessKey": garage.secret_access_key}}),
                )
                .await;
            setup
                .create(
                    &setup.stores(),
                    json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "ObjectStore",
                           "metadata": {"name": "garage"},
                           "spec": {"endpoint": garage.endpoint(), "region": garage.region,
                                    "credentialsSecretRef": {"name": "garage-keys"}}}),
                )
                .await;
        }
        setup
    }

    fn api(&self, group: &str, version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource(group, version, kind, plural),
        )
    }

    fn buckets(&self) -> Api<DynamicObject> {
        self.api("storage.corbel.dev", "v1alpha1", "Bucket", "buckets")
    }

    fn stores(&self) -> Api<DynamicObject> {
        self.api(
            "storage.corbel.dev",
            "v1alpha1",
            "ObjectStore",
            "objectstores",
        )
    }

    fn secrets(&self) -> Api<DynamicObject> {
        self.api("", "v1", "Secret", "secrets")
    }

    async fn create(&self, api: &Api<DynamicObject>, object: Value) -> DynamicObject {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
        .unwrap()
    }

    async fn create_bucket(&self, name: &str, spec: Value) -> Result<DynamicObject, kube::Error> {
        let bucket = json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "Bucket",
                            "metadata": {"name": name}, "spec": spec});
        self.buckets()
            .create(
                &PostParams::default(),
                &serde_json::from_value(bucket).unwrap(),
            )
            .await
    }

    async fn patch_spec(&self, name: &str, spec: Value) -> Result<DynamicObject, kube::Error> {
        self.buckets()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
    }

    /// Waits until `api`'s object `name` has condition `kind` = `status` and `check` holds.
    async fn wait_for(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        kind: &str,
        status: &str,
        garage: Option<&Garage>,
    ) -> DynamicObject {
        let started = Instant::now();
        loop {
            if let Ok(object) = api.get(name).await
                && condition(&object, kind).is_some_and(|c| c["status"] == status)
            {
                return object;
            }
            assert!(
                started.elapsed() < WITHIN,
                "{name} never got {kind}={status}: {:?}\nserver log, last lines:\n{}\n{}",
                api.get(name).await.map(|o| o.data),
                tail(&self.embedded.server.log(), 60),
                tail(&garage.map(Garage::log).unwrap_or_default(), 30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_gone(&self, name: &str) {
        let started = Instant::now();
        while self.buckets().get_opt(name).await.unwrap().is_some() {
            assert!(
                started.elapsed() < WITHIN,
                "Bucket {name} was never deleted: {:?}\n{}",
                self.buckets().get(name).await.map(|o| o.data),
                self.embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The reasons of the Events about `name`.
    async fn event_reasons(&self, name: &str) -> Vec<String> {
        let events = self.api("events.k8s.io", "v1", "Event", "events");
        let mut reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|e| e.data["regarding"]["name"] == name)
            .filter_map(|e| e.data["reason"].as_str().map(str::to_owned))
            .collect();
        reasons.sort();
        reasons
    }
}

/// The denial's code and message, from a write the inline policy refused.
fn refusal(result: Result<DynamicObject, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Polls until `check` holds, for the store to catch up with a spec change.
async fn eventually(what: &str, setup: &Setup, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < WITHIN,
            "{what} never happened\n{}",
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bucket_is_created_on_garage_with_its_rules_and_follows_changes_to_them() {
    let garage = Garage::start();
    let store = Store::of(&garage);
    let setup = Setup::start(Some(&garage)).await;

    let object_store = setup
        .wait_for(&setup.stores(), "garage", "Ready", "True", Some(&garage))
        .await;
    assert_eq!(
        condition(&object_store, "Ready").unwrap()["reason"],
        "StoreReachable"
    );
    assert_eq!(object_store.data["status"]["endpoint"], garage.endpoint());

    setup
        .create_bucket(
            "photos",
            json!({"objectStoreRef": {"name": "garage"},
                   "lifecycle": [{"expirationDays": 7, "prefix": "tmp/"}],
                   "cors": [{"allowedOrigins": ["https://app.example"], "allowedMethods": ["GET", "PUT"], "maxAgeSeconds": 600}]}),
        )
        .await
        .unwrap();
    // A Bucket whose bucket name is not its object name.
    setup
        .create_bucket(
            "assets",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "team-a-assets"}),
        )
        .await
        .unwrap();

    let photos = setup
        .wait_for(&setup.buckets(), "photos", "Ready", "True", Some(&garage))
        .await;
    let status = &photos.data["status"];
    assert_eq!(status["bucketName"], "photos");
    assert_eq!(status["endpoint"], garage.endpoint());
    assert_eq!(
        status["observedGeneration"],
        photos.metadata.generation.unwrap()
    );
    assert_eq!(
        condition(&photos, "Ready").unwrap()["reason"],
        "BucketReady"
    );
    assert_eq!(
        photos.metadata.finalizers,
        Some(vec!["corbel.dev/storage".to_owned()])
    );
    assert!(store.exists("photos"), "the bucket is on the store");
    assert_eq!(
        store.lifecycle("photos"),
        [LifecycleRule {
            id: "expire-1".into(),
            prefix: Some("tmp/".into()),
            expiration_days: 7
        }]
    );
    assert_eq!(
        store.cors("photos"),
        [CorsRule {
            allowed_origins: vec!["https://app.example".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            max_age_seconds: Some(600),
            ..CorsRule::default()
        }]
    );
    assert_eq!(
        setup.event_reasons("photos").await,
        ["BucketCreated", "CorsApplied", "LifecycleApplied"]
    );

    let (ok, table, err) = setup.embedded.kubectl(&["get", "buckets"], None);
    assert!(ok, "kubectl get buckets: {err}");
    let row = table
        .lines()
        .find(|l| l.starts_with("photos "))
        .unwrap_or_default();
    assert_eq!(
        row.split_whitespace().take(3).collect::<Vec<_>>(),
        ["photos", "True", "photos"],
        "the printer columns (Ready, Bucket):\n{table}"
    );

    let assets = setup
        .wait_for(&setup.buckets(), "assets", "Ready", "True", Some(&garage))
        .await;
    assert_eq!(assets.data["status"]["bucketName"], "team-a-assets");
    assert!(store.exists("team-a-assets") && !store.exists("assets"));

    // New lifecycle rules replace the old ones; CORS rules removed from the spec go.
    let changed = setup
        .patch_spec(
            "photos",
            json!({"lifecycle": [{"id": "all", "expirationDays": 30}], "cors": null}),
        )
        .await
        .unwrap();
    let expected = [LifecycleRule {
        id: "all".into(),
        prefix: None,
        expiration_days: 30,
    }];
    eventually("the new lifecycle and the CORS removal", &setup, || {
        store.lifecycle("photos") == expected && store.cors("photos").is_empty()
    })
    .await;
    let generation = changed.metadata.generation.unwrap();
    let started = Instant::now();
    while setup.buckets().get("photos").await.unwrap().data["status"]["observedGeneration"]
        != generation
    {
        assert!(
            started.elapsed() < WITHIN,
            "generation {generation} was never observed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn admission_refuses_bad_bucket_names_and_changes_to_the_name_or_the_store() {
    // Admission alone: no controller, no store.
    let setup = Setup::start(None).await;
    let store = json!({"objectStoreRef": {"name": "garage"}});

    for (name, spec, why) in [
        ("ab", store.clone(), "a bucket name has 3 to 63 characters"),
        (
            "10.0.0.1",
            store.clone(),
            "a bucket name is not an IP address",
        ),
        (
            "fine",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "xn--punycode"}),
            "does not start with xn--",
        ),
        (
            "also-fine",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "my..bucket"}),
            "no two dots in a row",
        ),
        (
            "rules",
            json!({"objectStoreRef": {"name": "garage"}, "lifecycle": [{"id": "x", "expirationDays": 1}, {"id": "x", "expirationDays": 2}]}),
            "used by another rule",
        ),
    ] {
        let (code, message) = refusal(setup.create_bucket(name, spec).await);
        assert_eq!(code, 403, "{name}: {message}");
        assert!(message.contains(why), "{name}: {message}");
    }

    setup.create_bucket("photos", store).await.unwrap();
    let (code, message) = refusal(
        setup
            .patch_spec("photos", json!({"objectStoreRef": {"name": "minio"}}))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.objectStoreRef is immutable"),
        "{message}"
    );
    let (code, message) = refusal(
        setup
            .patch_spec("photos", json!({"bucketName": "pictures"}))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.bucketName is immutable"),
        "{message}"
    );

    // What may change, does.
    let changed = setup
        .patch_spec(
            "photos",
            json!({"bucketName": "photos", "deletionPolicy": "Delete", "lifecycle": [{"expirationDays": 3}]}),
        )
        .await
        .unwrap();
    assert_eq!(changed.data["spec"]["deletionPolicy"], "Delete");

    let (code, message) = refusal(
        setup
            .stores()
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "storage.corbel.dev/v1alpha1", "kind": "ObjectStore",
                    "metadata": {"name": "bad-port"},
                    "spec": {"endpoint": "http://127.0.0.1:99999", "region": "garage",
                             "credentialsSecretRef": {"name": "keys"}}}))
                .unwrap(),
            )
            .await,
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("port must be a number"), "{message}");
}

#[tokio::test]
async fn deleting_a_bucket_keeps_or_deletes_it_on_garage_as_its_policy_says() {
    let garage = Garage::start();
    let store = Store::of(&garage);
    let setup = Setup::start(Some(&garage)).await;
    setup
        .create_bucket("kept", json!({"objectStoreRef": {"name": "garage"}}))
        .await
        .unwrap();
    setup
        .create_bucket(
            "dropped",
            json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete"}),
        )
        .await
        .unwrap();
    for name in ["kept", "dropped"] {
        setup
            .wait_for(&setup.buckets(), name, "Ready", "True", Some(&garage))
            .await;
        assert!(store.exists(name));
    }

    for name in ["kept", "dropped"] {
        setup
            .buckets()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    setup.wait_gone("kept").await;
    setup.wait_gone("dropped").await;
    assert!(store.exists("kept"), "Retain keeps the bucket");
    assert!(!store.exists("dropped"), "Delete deletes it");
}

#[tokio::test]
async fn a_bucket_with_objects_blocks_its_deletion_until_it_is_emptied() {
    let garage = Garage::start();
    let store = Store::of(&garage);
    let setup = Setup::start(Some(&garage)).await;
    setup
        .create_bucket(
            "archive",
            json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete"}),
        )
        .await
        .unwrap();
    setup
        .wait_for(&setup.buckets(), "archive", "Ready", "True", Some(&garage))
        .await;
    store
        .s3
        .put_object(
            &store.http,
            SystemTime::now(),
            "archive",
            "2024/report.txt",
            b"kept",
        )
        .unwrap();

    setup
        .buckets()
        .delete("archive", &DeleteParams::default())
        .await
        .unwrap();
    let blocked = setup
        .wait_for(
            &setup.buckets(),
            "archive",
            "Blocked",
            "True",
            Some(&garage),
        )
        .await;
    let why = condition(&blocked, "Blocked").unwrap();
    assert_eq!(why["reason"], "BucketNotEmpty");
    let message = why["message"].as_str().unwrap();
    assert!(
        message.contains("still holds objects") && message.contains("nothing is lost"),
        "{message}"
    );
    assert_eq!(condition(&blocked, "Ready").unwrap()["status"], "False");
    assert!(blocked.metadata.deletion_timestamp.is_some());
    assert!(store.exists("archive"));
    assert!(
        !store
            .s3
            .is_empty(&store.http, SystemTime::now(), "archive")
            .unwrap(),
        "the object is kept"
    );

    // Emptied from outside: the controller notices by itself and finishes the deletion.
    store
        .s3
        .delete_object(&store.http, SystemTime::now(), "archive", "2024/report.txt")
        .unwrap();
    setup.wait_gone("archive").await;
    assert!(!store.exists("archive"));
}

#[tokio::test]
async fn a_store_that_goes_down_makes_its_buckets_unready_until_it_is_back() {
    let mut garage = Garage::start();
    let setup = Setup::start(Some(&garage)).await;
    setup
        .create_bucket("durable", json!({"objectStoreRef": {"name": "garage"}}))
        .await
        .unwrap();
    setup
        .wait_for(&setup.buckets(), "durable", "Ready", "True", Some(&garage))
        .await;

    garage.stop();
    let down = setup
        .wait_for(&setup.buckets(), "durable", "Ready", "False", None)
        .await;
    let ready = condition(&down, "Ready").unwrap();
    assert_eq!(ready["reason"], "StoreUnreachable");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains(&garage.endpoint()),
        "{ready}"
    );
    assert_eq!(condition(&down, "Processing").unwrap()["status"], "True");
    let store = setup
        .wait_for(&setup.stores(), "garage", "Ready", "False", None)
        .await;
    assert_eq!(
        condition(&store, "Ready").unwrap()["reason"],
        "StoreUnreachable"
    );

    garage.start_again();
    let back = setup
        .wait_for(&setup.buckets(), "durable", "Ready", "True", Some(&garage))
        .await;
    assert_eq!(condition(&back, "Ready").unwrap()["reason"], "BucketReady");
    setup
        .wait_for(&setup.stores(), "garage", "Ready", "True", Some(&garage))
        .await;
}

#[tokio::test]
async fn refused_credentials_block_the_store_and_its_buckets_until_the_secret_is_fixed() {
    use base64::Engine as _;
    let garage = Garage::start();
    let setup = Setup::start(Some(&garage)).await;
    setup
        .create_bucket("media", json!({"objectStoreRef": {"name": "garage"}}))
        .await
        .unwrap();
    setup
        .wait_for(&setup.buckets(), "media", "Ready", "True", Some(&garage))
        .await;

    let secret_key = |value: &str| json!({"data": {"secretAccessKey": base64::engine::general_purpose::STANDARD.encode(value)}});
    setup
        .secrets()
        .patch(
            "garage-keys",
            &PatchParams::default(),
            &Patch::Merge(secret_key(&"0".repeat(64))),
        )
        .await
        .unwrap();
    for api in [setup.stores(), setup.buckets()] {
        let name = if api.resource_url().ends_with("buckets") {
            "media"
        } else {
            "garage"
        };
        let blocked = setup
            .wait_for(&api, name, "Blocked", "True", Some(&garage))
            .await;
        let why = condition(&blocked, "Blocked").unwrap();
        assert_eq!(why["reason"], "CredentialsRefused", "{name}: {why}");
        assert!(
            why["message"].as_str().unwrap().contains("AccessDenied"),
            "the store's answer is kept: {why}"
        );
    }

    // Blocked objects are looked at again (blockedRetrySeconds): fixing the Secret is enough.
    setup
        .secrets()
        .patch(
            "garage-keys",
            &PatchParams::default(),
            &Patch::Merge(secret_key(&garage.secret_access_key)),
        )
        .await
        .unwrap();
    setup
        .wait_for(&setup.stores(), "garage", "Ready", "True", Some(&garage))
        .await;
    setup
        .wait_for(&setup.buckets(), "media", "Ready", "True", Some(&garage))
        .await;
}

/// Issue 18, bug 1: deleting a namespace that holds a `deletionPolicy: Delete` Bucket, its
/// ObjectStore and the credentials Secret deletes the real bucket and then everything else. The
/// namespace's deletion would take the Secret at once; the host holds it with a finalizer (the
/// storage manifest's `holdsSecrets`) until the ObjectStore, which waits for its Buckets, is
/// cleaned up.
#[tokio::test]
async fn deleting_a_namespace_deletes_its_buckets_on_the_store_before_their_credentials_go() {
    let garage = Garage::start();
    let store = Store::of(&garage);
    let setup = Setup::start(Some(&garage)).await;
    let in_team = |group: &str, version: &str, kind: &str, plural: &str| {
        Api::<DynamicObject>::namespaced_with(
            setup.client.clone(),
            "team",
            &resource(group, version, kind, plural),
        )
    };
    let namespaces = Api::<DynamicObject>::all_with(
        setup.client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    let (secrets, stores, buckets) = (
        in_team("", "v1", "Secret", "secrets"),
        in_team(
            "storage.corbel.dev",
            "v1alpha1",
            "ObjectStore",
            "objectstores",
        ),
        in_team("storage.corbel.dev", "v1alpha1", "Bucket", "buckets"),
    );
    setup
        .create(
            &namespaces,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await;
    setup
        .create(
            &secrets,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
                   "stringData": {"accessKeyId": garage.access_key_id, "secretAccessKey": garage.secret_access_key}}),
        )
        .await;
    setup
        .create(
            &stores,
            json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "ObjectStore",
                   "metadata": {"name": "garage"},
                   "spec": {"endpoint": garage.endpoint(), "region": garage.region,
                            "credentialsSecretRef": {"name": "keys"}}}),
        )
        .await;
    setup
        .create(
            &buckets,
            json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "Bucket",
                   "metadata": {"name": "data"},
                   "spec": {"objectStoreRef": {"name": "garage"}, "bucketName": "team-data",
                            "deletionPolicy": "Delete"}}),
        )
        .await;
    setup
        .wait_for(&buckets, "data", "Ready", "True", Some(&garage))
        .await;
    assert!(store.exists("team-data"));
    let held = secrets.get("keys").await.unwrap().metadata.finalizers;
    assert_eq!(
        held,
        Some(vec!["corbel.dev/used-by-storage.objectstore".to_owned()]),
        "the ObjectStore holds its Secret"
    );

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the bucket's deletion on the store", &setup, || {
        !store.exists("team-data")
    })
    .await;
    let started = Instant::now();
    loop {
        let left = [
            ("Bucket", buckets.get_opt("data").await.unwrap()),
            ("ObjectStore", stores.get_opt("garage").await.unwrap()),
            ("Secret", secrets.get_opt("keys").await.unwrap()),
        ];
        let left: Vec<_> = left
            .iter()
            .filter_map(|(kind, object)| {
                object
                    .as_ref()
                    .map(|o| (kind, o.metadata.finalizers.clone()))
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "left behind: {left:?}\n{}",
            tail(&setup.embedded.server.log(), 60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
