//! Admission for the storage kinds, when the same component is bound as a validating policy:
//! what the schema cannot say. A Bucket's effective name must be a valid S3 name (the store
//! would refuse it, or worse, the URL would change meaning), and the name and the store it lives
//! on cannot change after creation (the controller would create a second bucket and forget the
//! first). Lifecycle and CORS rules are checked as the store would check them, so a mistake is
//! refused at `kubectl apply` rather than found later in a condition.
//!
//! Lifecycle parts Garage accepts and silently drops (transitions, noncurrent-version
//! expiration, tag filters) have no field in [`crate::api::LifecycleRule`], so they cannot be
//! asked for; what the type can express, Garage applies.

use std::collections::BTreeSet;

use corbel_sdk::{Operation, Request, Verdict};
use serde_json::Value;

use crate::api::{BucketSpec, CorsRule, LifecycleRule, ObjectStoreSpec};

/// S3's bucket-name rules (the general-purpose bucket rules of the S3 documentation). The
/// reason says which one `name` breaks.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let reason = if !(3..=63).contains(&name.len()) {
        "a bucket name has 3 to 63 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        "a bucket name holds only lowercase letters, digits, '-' and '.'"
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        "a bucket name starts and ends with a letter or a digit"
    } else if name.contains("..") {
        "a bucket name has no two dots in a row"
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        "a bucket name is not an IP address"
    } else if name.starts_with("xn--") || name.starts_with("sthree-") {
        "a bucket name does not start with xn-- or sthree- (reserved prefixes)"
    } else if name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
        "a bucket name does not end with -s3alias or --ol-s3 (reserved suffixes)"
    } else {
        return Ok(());
    };
    Err(format!("bucket name {name:?} is not valid: {reason}"))
}

/// The lifecycle rules as the store gets them: each with an id (`expire-<n>` by position when
/// absent) and an empty prefix meaning none.
pub fn lifecycle_rules(rules: &[LifecycleRule]) -> Vec<crate::s3::LifecycleRule> {
    rules
        .iter()
        .enumerate()
        .map(|(index, rule)| crate::s3::LifecycleRule {
            id: rule
                .id
                .clone()
                .unwrap_or_else(|| format!("expire-{}", index + 1)),
            prefix: rule.prefix.clone().filter(|p| !p.is_empty()),
            expiration_days: rule.expiration_days,
        })
        .collect()
}

/// What the store would refuse in lifecycle rules.
pub fn check_lifecycle(rules: &[LifecycleRule]) -> Result<(), String> {
    if rules.len() > 1000 {
        return Err(format!(
            "spec.lifecycle has {} rules: S3 allows at most 1000",
            rules.len()
        ));
    }
    let mut ids = BTreeSet::new();
    for (index, (rule, effective)) in rules.iter().zip(lifecycle_rules(rules)).enumerate() {
        let at = format!("spec.lifecycle[{index}]");
        if rule.expiration_days == 0 {
            return Err(format!("{at}.expirationDays must be at least 1"));
        }
        if effective.id.is_empty() || effective.id.chars().count() > 255 {
            return Err(format!("{at}.id must have 1 to 255 characters"));
        }
        if let Some(prefix) = &effective.prefix
            && prefix.len() > 1024
        {
            return Err(format!(
                "{at}.prefix is longer than an object key (1024 bytes)"
            ));
        }
        if !ids.insert(effective.id.clone()) {
            return Err(format!(
                "{at}.id {:?} is used by another rule: ids must be unique (a rule without an id is expire-<position>)",
                effective.id
            ));
        }
    }
    Ok(())
}

/// What the store would refuse in CORS rules.
pub fn check_cors(rules: &[CorsRule]) -> Result<(), String> {
    if rules.len() > 100 {
        return Err(format!(
            "spec.cors has {} rules: S3 allows at most 100",
            rules.len()
        ));
    }
    for (index, rule) in rules.iter().enumerate() {
        let at = format!("spec.cors[{index}]");
        if rule.allowed_origins.is_empty() || rule.allowed_origins.iter().any(String::is_empty) {
            return Err(format!(
                "{at}.allowedOrigins needs at least one non-empty origin"
            ));
        }
        if rule
            .allowed_origins
            .iter()
            .any(|o| o.matches('*').count() > 1)
        {
            return Err(format!(
                "{at}.allowedOrigins: an origin may hold at most one '*'"
            ));
        }
        if rule.allowed_methods.is_empty() {
            return Err(format!("{at}.allowedMethods needs at least one method"));
        }
        if let Some(id) = &rule.id
            && (id.is_empty() || id.chars().count() > 255)
        {
            return Err(format!("{at}.id must have 1 to 255 characters"));
        }
    }
    Ok(())
}

/// Everything about a Bucket's spec that can be checked without the store.
pub fn check_bucket(name: &str, spec: &BucketSpec) -> Result<(), String> {
    check_bucket_name(spec.effective_name(name))?;
    check_lifecycle(&spec.lifecycle)?;
    check_cors(&spec.cors)
}

/// An ObjectStore's endpoint must be one the S3 client can address.
pub fn check_object_store(spec: &ObjectStoreSpec) -> Result<(), String> {
    let credentials = crate::s3::Credentials {
        access_key_id: "checked-later".into(),
        secret_access_key: "checked-later".into(),
    };
    crate::s3::Client::new(&spec.endpoint, &spec.region, credentials)
        .map(drop)
        .map_err(|e| format!("spec: {e}"))
}

fn metadata_name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn spec<T: serde::de::DeserializeOwned>(object: &Value, kind: &str) -> Result<T, String> {
    serde_json::from_value(object.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("the {kind}'s spec does not fit: {e}"))
}

/// The verdict on one request for a storage kind. Other kinds, DELETE and CONNECT are allowed:
/// the binding's rules decide what reaches here.
pub fn validate(request: &Request) -> Verdict {
    let decision = match (request.kind.kind.as_str(), request.operation) {
        ("Bucket", Operation::Create | Operation::Update) => validate_bucket(request),
        ("ObjectStore", Operation::Create | Operation::Update) => validate_store(request),
        _ => Ok(()),
    };
    match decision {
        Ok(()) => Verdict::allow(),
        Err(message) => Verdict::deny(message),
    }
}

fn validate_bucket(request: &Request) -> Result<(), String> {
    let Some(object) = request.object() else {
        return Ok(());
    };
    let name = metadata_name(object);
    let new: BucketSpec = spec(object, "Bucket")?;
    if request.operation == Operation::Update
        && let Some(old_object) = request.old_object()
        && let Ok(old) = spec::<BucketSpec>(old_object, "Bucket")
    {
        let old_name = old.effective_name(metadata_name(old_object));
        let new_name = new.effective_name(name);
        if old_name != new_name {
            return Err(format!(
                "spec.bucketName is immutable: the bucket is {old_name:?}, not {new_name:?} \
                 (create another Bucket for another bucket)"
            ));
        }
        if old.object_store_ref != new.object_store_ref {
            return Err(format!(
                "spec.objectStoreRef is immutable: the bucket lives on ObjectStore {:?}, not {:?} \
                 (create another Bucket for a bucket on another store)",
                old.object_store_ref.name, new.object_store_ref.name
            ));
        }
    }
    check_bucket(name, &new)
}

fn validate_store(request: &Request) -> Result<(), String> {
    let Some(object) = request.object() else {
        return Ok(());
    };
    check_object_store(&spec(object, "ObjectStore")?)
}

#[cfg(test)]
mod tests {
    use corbel_sdk::Operation;
    use serde_json::{Value, json};

    use super::*;

    fn bucket(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "Bucket",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn create(object: Value) -> Verdict {
        let kind = object["kind"].as_str().unwrap().to_owned();
        validate(
            &Request::builder(Operation::Create, &kind)
                .group_version("storage.corbel.dev", "v1alpha1")
                .object(object)
                .build(),
        )
    }

    fn update(old: Value, new: Value) -> Verdict {
        validate(
            &Request::builder(Operation::Update, "Bucket")
                .group_version("storage.corbel.dev", "v1alpha1")
                .old_object(old)
                .object(new)
                .build(),
        )
    }

    fn denial(verdict: &Verdict) -> &str {
        assert!(!verdict.is_allowed(), "expected a denial");
        verdict.message().unwrap()
    }

    #[test]
    fn bucket_names_follow_the_s3_rules() {
        for good in ["photos", "a.b-c", "123", "my-bucket-2024", &"a".repeat(63)] {
            assert_eq!(check_bucket_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("ab", "3 to 63"),
            (&"a".repeat(64), "3 to 63"),
            ("Photos", "only lowercase"),
            ("under_score", "only lowercase"),
            ("-photos", "starts and ends"),
            ("photos.", "starts and ends"),
            ("a..b", "two dots"),
            ("192.168.1.1", "IP address"),
            ("xn--photos", "xn--"),
            ("photos-s3alias", "-s3alias"),
            ("photos--ol-s3", "--ol-s3"),
        ] {
            let e = check_bucket_name(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bucket_named_after_its_object_is_admitted() {
        let verdict = create(bucket(
            "photos",
            json!({"objectStoreRef": {"name": "garage"}}),
        ));
        assert!(verdict.is_allowed());
    }

    #[test]
    fn denies_a_bucket_whose_effective_name_breaks_the_rules() {
        let by_metadata = create(bucket(
            "My.Bucket",
            json!({"objectStoreRef": {"name": "garage"}}),
        ));
        assert!(denial(&by_metadata).contains("\"My.Bucket\" is not valid"));
        let by_spec = create(bucket(
            "fine",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "xn--bad"}),
        ));
        assert!(denial(&by_spec).contains("xn--"), "{by_spec:?}");
        let fixed = create(bucket(
            "Not_Valid_As_A_Bucket",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "valid-name"}),
        ));
        assert!(fixed.is_allowed(), "bucketName overrides metadata.name");
    }

    #[test]
    fn denies_changing_the_bucket_name_after_create() {
        let old = bucket("photos", json!({"objectStoreRef": {"name": "garage"}}));
        let renamed = bucket(
            "photos",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "pictures"}),
        );
        let verdict = update(old.clone(), renamed);
        assert!(denial(&verdict).contains("spec.bucketName is immutable"));
        let same = bucket(
            "photos",
            json!({"objectStoreRef": {"name": "garage"}, "bucketName": "photos"}),
        );
        assert!(
            update(old, same).is_allowed(),
            "spelling out the name it already has changes nothing"
        );
    }

    #[test]
    fn denies_moving_a_bucket_to_another_object_store() {
        let old = bucket("photos", json!({"objectStoreRef": {"name": "garage"}}));
        let moved = bucket("photos", json!({"objectStoreRef": {"name": "minio"}}));
        let verdict = update(old, moved);
        assert!(denial(&verdict).contains("spec.objectStoreRef is immutable"));
    }

    #[test]
    fn allows_changing_rules_and_the_deletion_policy() {
        let old = bucket("photos", json!({"objectStoreRef": {"name": "garage"}}));
        let new = bucket(
            "photos",
            json!({"objectStoreRef": {"name": "garage"}, "deletionPolicy": "Delete",
                   "lifecycle": [{"expirationDays": 7, "prefix": "tmp/"}],
                   "cors": [{"allowedOrigins": ["https://app.example"], "allowedMethods": ["GET"]}]}),
        );
        assert!(update(old, new).is_allowed());
    }

    #[test]
    fn denies_lifecycle_rules_the_store_would_refuse() {
        for (rules, why) in [
            (json!([{"expirationDays": 0}]), "at least 1"),
            (
                json!([{"id": "a", "expirationDays": 1}, {"id": "a", "expirationDays": 2}]),
                "used by another rule",
            ),
            (
                json!([{"id": "expire-2", "expirationDays": 1}, {"expirationDays": 2}]),
                "used by another rule",
            ),
            (json!([{"id": "", "expirationDays": 1}]), "1 to 255"),
        ] {
            let verdict = create(bucket(
                "photos",
                json!({"objectStoreRef": {"name": "garage"}, "lifecycle": rules}),
            ));
            assert!(denial(&verdict).contains(why), "{rules}: {verdict:?}");
        }
    }

    #[test]
    fn denies_cors_rules_the_store_would_refuse() {
        for (rules, why) in [
            (
                json!([{"allowedOrigins": [], "allowedMethods": ["GET"]}]),
                "non-empty origin",
            ),
            (
                json!([{"allowedOrigins": ["*.*"], "allowedMethods": ["GET"]}]),
                "at most one '*'",
            ),
            (
                json!([{"allowedOrigins": ["*"], "allowedMethods": []}]),
                "at least one method",
            ),
            (
                json!([{"allowedOrigins": ["*"], "allowedMethods": ["PATCH"]}]),
                "does not fit",
            ),
        ] {
            let verdict = create(bucket(
                "photos",
                json!({"objectStoreRef": {"name": "garage"}, "cors": rules}),
            ));
            assert!(denial(&verdict).contains(why), "{rules}: {verdict:?}");
        }
    }

    #[test]
    fn denies_an_object_store_whose_endpoint_has_a_path() {
        let store = |endpoint: &str| {
            json!({"apiVersion": "storage.corbel.dev/v1alpha1", "kind": "ObjectStore",
                   "metadata": {"name": "garage"},
                   "spec": {"endpoint": endpoint, "region": "garage",
                            "credentialsSecretRef": {"name": "garage-keys"}}})
        };
        assert!(create(store("http://127.0.0.1:3900")).is_allowed());
        let verdict = create(store("http://127.0.0.1:3900/buckets"));
        assert!(denial(&verdict).contains("path"), "{verdict:?}");
    }

    #[test]
    fn unnamed_lifecycle_rules_get_ids_by_position() {
        let rules = lifecycle_rules(&[
            LifecycleRule {
                id: None,
                expiration_days: 7,
                prefix: Some("tmp/".into()),
            },
            LifecycleRule {
                id: Some("logs".into()),
                expiration_days: 30,
                prefix: Some(String::new()),
            },
        ]);
        assert_eq!(rules[0].id, "expire-1");
        assert_eq!(rules[1].id, "logs");
        assert_eq!(rules[1].prefix, None, "an empty prefix is the whole bucket");
    }
}
