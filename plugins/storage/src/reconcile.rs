//! The reconcile decisions, apart from how the plugin reaches the cluster and the store: an
//! [`Env`] gives the ObjectStore and Secret lookups (the host's capabilities in the component,
//! fakes in tests), the S3 transport (wasi:http, or a fake) and the clock.
//!
//! - [`bucket`]: the ObjectStore and its Secret are read, the bucket is created when missing,
//!   lifecycle and CORS are read back and written only when they differ; status records the
//!   effective name and the endpoint.
//! - [`bucket_cleanup`]: `Retain` lets go; `Delete` deletes the bucket, and a bucket that still
//!   holds objects blocks the deletion (nothing is lost) until it is emptied. A name S3 refuses
//!   was never created, so it lets go at once.
//! - [`object_store`]: a signed ListBuckets proves the store answers and takes the key.
//!
//! Every error is sorted by what helps: transient (the store is down, an object is not there
//! yet: the host retries with backoff) or permanent (the spec, the Secret, the grants or the
//! store's refusal must change: `Blocked`, looked at again after `blockedRetrySeconds`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use corbel_sdk::controller::{Event, Status};
use corbel_sdk::{CapabilityError, Object, Outcome, ReconcileError};
use serde_json::{Value, json};

use crate::admission;
use crate::api::{BucketSpec, CorsRule, DeletionPolicy, ObjectStoreSpec};
use crate::s3::{self, Client, Credentials, Transport};

/// The controller's settings (all optional): when to look again.
pub use corbel_sdk::controller::Timing as Settings;

/// The objects a reconcile reads, in the reconciled object's namespace.
pub trait Cluster {
    fn object_store(&self, name: &str) -> Result<Option<Value>, CapabilityError>;
    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError>;
    /// Every Bucket in the namespace.
    fn buckets(&self) -> Result<Vec<Value>, CapabilityError>;
}

/// Everything a reconcile needs from outside.
pub struct Env<'a> {
    pub cluster: &'a dyn Cluster,
    pub transport: &'a dyn Transport,
    pub now: fn() -> SystemTime,
    pub settings: &'a Settings,
}

/// Marks a transport failure as the host's refusal of the origin (a missing `grants.http`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OriginDenied(pub String);

fn blocked(env: &Env, reason: &str, message: impl Into<String>) -> ReconcileError {
    ReconcileError::permanent(reason, message).retry_after(env.settings.blocked_retry())
}

/// Sorts an S3 error by what helps; the message is the client's, which names the endpoint, the
/// operation and the bucket.
fn s3_failure(env: &Env, error: s3::Error) -> ReconcileError {
    use s3::Error as E;
    let message = error.to_string();
    match error {
        E::Unreachable { ref source, .. }
            if source
                .source
                .as_ref()
                .is_some_and(|s| s.downcast_ref::<OriginDenied>().is_some()) =>
        {
            blocked(
                env,
                "AccessDenied",
                format!("{message}: grant the store's origin in the controller's grants.http"),
            )
        }
        E::Unreachable { .. } => ReconcileError::transient("StoreUnreachable", message),
        E::Auth(_) => blocked(env, "CredentialsRefused", message),
        E::BucketAlreadyExists(_) => blocked(env, "BucketNameTaken", message),
        E::BucketNotEmpty(_) => blocked(env, "BucketNotEmpty", message),
        E::InvalidEndpoint { .. } | E::InvalidInput { .. } => {
            ReconcileError::permanent("InvalidSpec", message)
        }
        E::InvalidRequest(_) => blocked(env, "RequestRefused", message),
        E::NoSuchBucket(_) | E::Status(_) | E::InvalidResponse { .. } => {
            ReconcileError::transient("StoreError", message)
        }
    }
}

/// An S3 client for the ObjectStore `name`, with the keys from its Secret.
fn store_client(env: &Env, name: &str) -> Result<Client, ReconcileError> {
    let store = env.cluster.object_store(name)?.ok_or_else(|| {
        ReconcileError::transient(
            "ObjectStoreNotFound",
            format!(
                "ObjectStore {name} does not exist in this namespace: create it, or fix spec.objectStoreRef.name"
            ),
        )
    })?;
    let spec: ObjectStoreSpec =
        serde_json::from_value(store.get("spec").cloned().unwrap_or(Value::Null)).map_err(|e| {
            blocked(
                env,
                "InvalidObjectStore",
                format!("ObjectStore {name}'s spec does not fit: {e}"),
            )
        })?;
    client_for(env, name, &spec)
}

fn client_for(env: &Env, store: &str, spec: &ObjectStoreSpec) -> Result<Client, ReconcileError> {
    let secret = &spec.credentials_secret_ref;
    let data = match env.cluster.secret(&secret.name) {
        Ok(data) => data,
        Err(CapabilityError::NotFound(_)) => {
            return Err(ReconcileError::transient(
                "SecretNotFound",
                format!(
                    "Secret {} (the credentials of ObjectStore {store}) does not exist in this namespace",
                    secret.name
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let value = |key: &str, field: &str| -> Result<String, ReconcileError> {
        let bytes = data.get(key).ok_or_else(|| {
            let keys: Vec<&str> = data.keys().map(String::as_str).collect();
            blocked(
                env,
                "SecretKeyMissing",
                format!(
                    "Secret {} has no key {key:?} (its keys: {keys:?}): add it, or name the key holding it in ObjectStore {store}'s spec.credentialsSecretRef.{field}",
                    secret.name
                ),
            )
        })?;
        String::from_utf8(bytes.clone())
            .map(|v| v.trim().to_owned())
            .map_err(|_| {
                blocked(
                    env,
                    "SecretKeyInvalid",
                    format!("Secret {} key {key:?} is not UTF-8 text", secret.name),
                )
            })
    };
    let credentials = Credentials {
        access_key_id: value(&secret.access_key_id_key, "accessKeyIdKey")?,
        secret_access_key: value(&secret.secret_access_key_key, "secretAccessKeyKey")?,
    };
    Client::new(&spec.endpoint, &spec.region, credentials).map_err(|e| {
        blocked(
            env,
            "InvalidObjectStore",
            format!("ObjectStore {store}: {e}"),
        )
    })
}

fn cors_rules(rules: &[CorsRule]) -> Vec<s3::CorsRule> {
    rules
        .iter()
        .map(|rule| s3::CorsRule {
            id: rule.id.clone(),
            allowed_origins: rule.allowed_origins.clone(),
            allowed_methods: rule
                .allowed_methods
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            allowed_headers: rule.allowed_headers.clone(),
            expose_headers: rule.expose_headers.clone(),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect()
}

/// Creates the bucket when missing and brings its lifecycle and CORS rules in line with the spec.
pub fn bucket(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let spec: BucketSpec = object.spec()?;
    let name = spec.effective_name(object.name()).to_owned();
    admission::check_bucket(object.name(), &spec)
        .map_err(|e| ReconcileError::permanent("InvalidSpec", e))?;
    let client = store_client(env, &spec.object_store_ref.name)?;
    let (t, now) = (env.transport, env.now);
    let endpoint = client.endpoint().to_owned();
    let s3 = |e| s3_failure(env, e);
    let mut outcome = Outcome::default();

    let exists = match client.head_bucket(t, now(), &name) {
        Ok(exists) => exists,
        // HEAD has no body: a 403 may be a name another owner holds. Creating says which.
        Err(s3::Error::Auth(_)) => false,
        Err(e) => return Err(s3(e)),
    };
    if !exists {
        client.create_bucket(t, now(), &name).map_err(s3)?;
        outcome = outcome.event(Event::normal(
            "BucketCreated",
            "Create",
            format!("created bucket {name} on {endpoint}"),
        ));
    }

    let mut desired = admission::lifecycle_rules(&spec.lifecycle);
    let mut current = client.get_lifecycle(t, now(), &name).map_err(s3)?;
    desired.sort_by(|a, b| a.id.cmp(&b.id));
    current.sort_by(|a, b| a.id.cmp(&b.id));
    if desired != current {
        if desired.is_empty() {
            client.delete_lifecycle(t, now(), &name).map_err(s3)?;
        } else {
            client
                .put_lifecycle(t, now(), &name, &desired)
                .map_err(s3)?;
        }
        outcome = outcome.event(Event::normal(
            "LifecycleApplied",
            "Update",
            format!("bucket {name}: {} lifecycle rule(s) now", desired.len()),
        ));
    }

    // CORS rules apply in order (the first match wins), so the order is part of the value.
    let desired = cors_rules(&spec.cors);
    if desired != client.get_cors(t, now(), &name).map_err(s3)? {
        if desired.is_empty() {
            client.delete_cors(t, now(), &name).map_err(s3)?;
        } else {
            client.put_cors(t, now(), &name, &desired).map_err(s3)?;
        }
        outcome = outcome.event(Event::normal(
            "CorsApplied",
            "Update",
            format!("bucket {name}: {} CORS rule(s) now", desired.len()),
        ));
    }

    Ok(outcome
        .status(json!({"bucketName": name, "endpoint": endpoint}))
        .condition(
            "Ready",
            Status::True,
            "BucketReady",
            format!("bucket {name} exists on {endpoint} with its lifecycle and CORS rules"),
        )
        .requeue_after(env.settings.resync()))
}

/// Lets the bucket go (`Retain`) or deletes it (`Delete`), refusing while it holds objects.
pub fn bucket_cleanup(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    // Read leniently: a spec that no longer parses must not keep a Retain object forever.
    let policy = object.0["spec"]["deletionPolicy"]
        .as_str()
        .unwrap_or("Retain");
    if policy != "Delete" {
        return Ok(Outcome::default());
    }
    let spec: BucketSpec = object.spec()?;
    let name = object.status()["bucketName"]
        .as_str()
        .unwrap_or_else(|| spec.effective_name(object.name()))
        .to_owned();
    debug_assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
    // `bucket` creates nothing under a name that breaks S3's rules (and records the name it
    // created in the status), so there is nothing to delete: letting go contacts no store.
    if let Err(reason) = admission::check_bucket_name(&name) {
        return Ok(Outcome::default().event(Event::normal(
            "NothingToDelete",
            "Delete",
            format!("{reason}, so no bucket was ever created under it: nothing to delete"),
        )));
    }
    let client = store_client(env, &spec.object_store_ref.name).map_err(|e| match e {
        ReconcileError::Transient {
            reason,
            message,
            retry_after,
        } if reason == "ObjectStoreNotFound" || reason == "SecretNotFound" => ReconcileError::Transient {
            message: format!(
                "{message}; or set spec.deletionPolicy to Retain to let the Bucket go and keep the bucket"
            ),
            reason,
            retry_after,
        },
        other => other,
    })?;
    let endpoint = client.endpoint().to_owned();
    match client.delete_bucket(env.transport, (env.now)(), &name) {
        Ok(()) => Ok(Outcome::default().event(Event::normal(
            "BucketDeleted",
            "Delete",
            format!("deleted bucket {name} on {endpoint}"),
        ))),
        Err(s3::Error::NoSuchBucket(_)) => Ok(Outcome::default()),
        Err(s3::Error::BucketNotEmpty(_)) => Err(blocked(
            env,
            "BucketNotEmpty",
            format!(
                "bucket {name} on {endpoint} still holds objects, so it was not deleted and nothing is lost: \
                 delete its objects (the Bucket then goes away by itself), or set spec.deletionPolicy to Retain \
                 to keep the bucket and its objects"
            ),
        )),
        Err(e) => Err(s3_failure(env, e)),
    }
}

/// Waits while Buckets name the ObjectStore: their cleanup (a `Delete` one deletes its bucket)
/// needs it. Without the grant to read Buckets it lets go as before, with a Warning that says so.
pub fn object_store_cleanup(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let buckets = match env.cluster.buckets() {
        Ok(buckets) => buckets,
        Err(CapabilityError::AccessDenied(message)) => {
            return Ok(Outcome::default().event(Event::warning(
                "BucketsNotChecked",
                "Delete",
                format!(
                    "ObjectStore {} let go without checking for Buckets that still need it ({message}): \
                     grant the storage controller resources.read of storage.corbel.dev/v1alpha1 Bucket",
                    object.name()
                ),
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let mut waiting: Vec<&str> = buckets
        .iter()
        .filter(|b| b["spec"]["objectStoreRef"]["name"].as_str() == Some(object.name()))
        .filter_map(|b| b["metadata"]["name"].as_str())
        .collect();
    if waiting.is_empty() {
        return Ok(Outcome::default());
    }
    waiting.sort_unstable();
    Err(ReconcileError::transient(
        "ObjectStoreInUse",
        format!(
            "ObjectStore {} is still used by Buckets ({}): it goes once they are gone (their cleanup needs it)",
            object.name(),
            waiting.join(", ")
        ),
    )
    .retry_after(env.settings.blocked_retry().min(Duration::from_secs(5))))
}

/// Checks that the store answers and takes the credentials.
pub fn object_store(object: &Object, env: &Env) -> Result<Outcome, ReconcileError> {
    let spec: ObjectStoreSpec = object.spec()?;
    let client = client_for(env, object.name(), &spec)?;
    let endpoint = client.endpoint().to_owned();
    client
        .list_buckets(env.transport, (env.now)())
        .map_err(|e| s3_failure(env, e))?;
    // The message stays the same from one check to the next: a status change would reconcile
    // every Bucket on this store.
    Ok(Outcome::default()
        .status(json!({"endpoint": endpoint}))
        .condition(
            "Ready",
            Status::True,
            "StoreReachable",
            format!("{endpoint} answers signed requests with these credentials"),
        )
        .requeue_after(env.settings.resync()))
}

#[cfg(test)]
mod tests;
