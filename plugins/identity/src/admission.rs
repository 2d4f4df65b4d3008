//! Admission for the identity kinds, when the same component is bound as a validating policy:
//! what the schema cannot say. An IdentityProvider names exactly one driver and keeps it; a
//! Realm keeps its provider and name; a Client keeps its Realm, client id and Secret (changing
//! them would leave a client behind in the provider, or credentials in a Secret nobody owns),
//! its client id is one a provider takes, and a rotation's overlap is shorter than its period.
//!
//! Deleting a Realm that still has Clients is not refused here (a policy sees only the object):
//! the Realm's cleanup waits until its Clients are gone, since their cleanup needs the Realm.

use corbel_sdk::{Operation, Request, Verdict};
use serde_json::Value;

use crate::api::{ClientSpec, IdentityProviderSpec, RealmSpec, parse_duration};

/// Keycloak's and RFC 7591's client ids are free text; the controller takes the portable part:
/// 1 to 255 of letters, digits, `.`, `_`, `-`, `:` and `@`, starting with a letter or digit.
pub fn check_client_id(id: &str) -> Result<(), String> {
    let valid = (1..=255).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "client id {id:?} is not valid: 1 to 255 of letters, digits, '.', '_', '-', ':' and '@', starting with a letter or digit"
        ))
    }
}

/// A Secret's name is a DNS subdomain: lowercase letters, digits, `-` and `.`, at most 253.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let valid = (1..=253).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Secret name {name:?} is not valid: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

pub fn check_provider(spec: &IdentityProviderSpec) -> Result<(), String> {
    match (&spec.keycloak, &spec.oidc) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        _ => Err("an IdentityProvider sets exactly one of spec.keycloak and spec.oidc".into()),
    }
}

/// Everything about a Client's spec that can be checked without the provider.
pub fn check_client(name: &str, spec: &ClientSpec) -> Result<(), String> {
    check_client_id(spec.effective_client_id(name))?;
    check_secret_name(&spec.effective_secret_name(name))?;
    if let Some(rotation) = &spec.rotation {
        let every =
            parse_duration(&rotation.every).map_err(|e| format!("spec.rotation.every: {e}"))?;
        let overlap =
            parse_duration(&rotation.overlap).map_err(|e| format!("spec.rotation.overlap: {e}"))?;
        if overlap == 0 {
            return Err(
                "spec.rotation.overlap must be at least 1s: consumers need time to read the new secret".into(),
            );
        }
        if overlap >= every {
            return Err(format!(
                "spec.rotation.overlap ({}) must be shorter than spec.rotation.every ({}): otherwise a secret would still be valid when the one after next is issued",
                rotation.overlap, rotation.every
            ));
        }
        if spec.secret_from.is_some() {
            return Err(
                "spec.secretFrom and spec.rotation exclude each other: a secret taken from a Secret is rotated by changing that Secret".into(),
            );
        }
    }
    for scope in &spec.scopes {
        if scope.is_empty() || scope.contains(' ') || scope.contains('"') || scope.contains('\\') {
            return Err(format!(
                "spec.scopes: {scope:?} is not a scope token (RFC 6749 §3.3: no spaces, quotes or backslashes)"
            ));
        }
    }
    Ok(())
}

fn metadata_name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn spec<T: serde::de::DeserializeOwned>(object: &Value, kind: &str) -> Result<T, String> {
    serde_json::from_value(object.get("spec").cloned().unwrap_or(Value::Null))
        .map_err(|e| format!("the {kind}'s spec does not fit: {e}"))
}

pub fn validate(request: &Request) -> Verdict {
    let decision = match (request.kind.kind.as_str(), request.operation) {
        ("IdentityProvider", Operation::Create | Operation::Update) => validate_provider(request),
        ("Realm", Operation::Create | Operation::Update) => validate_realm(request),
        ("Client", Operation::Create | Operation::Update) => validate_client(request),
        _ => Ok(()),
    };
    match decision {
        Ok(()) => Verdict::allow(),
        Err(message) => Verdict::deny(message),
    }
}

/// The old object's spec on an UPDATE, when it parses.
fn old_spec<T: serde::de::DeserializeOwned>(request: &Request, kind: &str) -> Option<(T, String)> {
    if request.operation != Operation::Update {
        return None;
    }
    let old = request.old_object()?;
    Some((spec(old, kind).ok()?, metadata_name(old).to_owned()))
}

fn validate_provider(request: &Request) -> Result<(), String> {
    let Some(object) = request.object() else {
        return Ok(());
    };
    let new: IdentityProviderSpec = spec(object, "IdentityProvider")?;
    check_provider(&new)?;
    if let Some((old, _)) = old_spec::<IdentityProviderSpec>(request, "IdentityProvider")
        && old.keycloak.is_some() != new.keycloak.is_some()
    {
        return Err(
            "an IdentityProvider's driver (keycloak or oidc) is immutable: its Realms and Clients live in that provider (create another IdentityProvider)".into(),
        );
    }
    Ok(())
}

fn validate_realm(request: &Request) -> Result<(), String> {
    let Some(object) = request.object() else {
        return Ok(());
    };
    let new: RealmSpec = spec(object, "Realm")?;
    if let Some((old, old_name)) = old_spec::<RealmSpec>(request, "Realm") {
        if old.provider_ref != new.provider_ref {
            return Err(format!(
                "spec.providerRef is immutable: the realm lives in IdentityProvider {:?}, not {:?} (create another Realm)",
                old.provider_ref.name, new.provider_ref.name
            ));
        }
        if old.effective_name(&old_name) != new.effective_name(metadata_name(object)) {
            return Err("spec.realmName is immutable (create another Realm)".into());
        }
    }
    Ok(())
}

fn validate_client(request: &Request) -> Result<(), String> {
    let Some(object) = request.object() else {
        return Ok(());
    };
    let name = metadata_name(object);
    let new: ClientSpec = spec(object, "Client")?;
    if let Some((old, old_name)) = old_spec::<ClientSpec>(request, "Client") {
        if old.realm_ref != new.realm_ref {
            return Err(format!(
                "spec.realmRef is immutable: the client lives in Realm {:?}, not {:?} (create another Client)",
                old.realm_ref.name, new.realm_ref.name
            ));
        }
        if old.effective_client_id(&old_name) != new.effective_client_id(name) {
            return Err("spec.clientId is immutable (create another Client)".into());
        }
        if old.effective_secret_name(&old_name) != new.effective_secret_name(name) {
            return Err(
                "spec.secretName is immutable: consumers mount the Secret by name (create another Client)".into(),
            );
        }
    }
    check_client(name, &new)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn client(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": "Client",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn request(operation: Operation, kind: &str, old: Option<Value>, new: Value) -> Verdict {
        let mut builder = Request::builder(operation, kind)
            .group_version("identity.corbel.dev", "v1alpha1")
            .object(new);
        if let Some(old) = old {
            builder = builder.old_object(old);
        }
        validate(&builder.build())
    }

    fn denial(verdict: &Verdict) -> String {
        assert!(!verdict.is_allowed(), "expected a denial");
        verdict.message().unwrap().to_owned()
    }

    #[test]
    fn a_client_with_a_realm_and_a_rotation_is_admitted() {
        let verdict = request(
            Operation::Create,
            "Client",
            None,
            client(
                "billing",
                json!({"realmRef": {"name": "apps"}, "scopes": ["api"],
                       "rotation": {"every": "24h", "overlap": "1h"}}),
            ),
        );
        assert!(verdict.is_allowed(), "{verdict:?}");
    }

    #[test]
    fn denies_client_ids_and_secret_names_providers_would_refuse() {
        for (spec, why) in [
            (
                json!({"realmRef": {"name": "r"}, "clientId": "has space"}),
                "client id",
            ),
            (
                json!({"realmRef": {"name": "r"}, "clientId": "-dash"}),
                "client id",
            ),
            (
                json!({"realmRef": {"name": "r"}, "secretName": "Upper"}),
                "Secret name",
            ),
            (
                json!({"realmRef": {"name": "r"}, "scopes": ["a b"]}),
                "scope token",
            ),
        ] {
            let message = denial(&request(
                Operation::Create,
                "Client",
                None,
                client("c", spec.clone()),
            ));
            assert!(message.contains(why), "{spec}: {message}");
        }
    }

    #[test]
    fn denies_an_overlap_as_long_as_the_period_and_durations_without_a_unit() {
        for (rotation, why) in [
            (json!({"every": "1h", "overlap": "1h"}), "shorter than"),
            (json!({"every": "1h", "overlap": "0s"}), "at least 1s"),
            (json!({"every": "10", "overlap": "1s"}), "not a duration"),
        ] {
            let spec = json!({"realmRef": {"name": "r"}, "rotation": rotation});
            let message = denial(&request(
                Operation::Create,
                "Client",
                None,
                client("c", spec),
            ));
            assert!(message.contains(why), "{rotation}: {message}");
        }
    }

    #[test]
    fn denies_changing_the_realm_the_client_id_or_the_secret_name() {
        let old = client("c", json!({"realmRef": {"name": "a"}}));
        for (new, field) in [
            (json!({"realmRef": {"name": "b"}}), "spec.realmRef"),
            (
                json!({"realmRef": {"name": "a"}, "clientId": "other"}),
                "spec.clientId",
            ),
            (
                json!({"realmRef": {"name": "a"}, "secretName": "other"}),
                "spec.secretName",
            ),
        ] {
            let message = denial(&request(
                Operation::Update,
                "Client",
                Some(old.clone()),
                client("c", new),
            ));
            assert!(message.contains(field), "{message}");
        }
        let same = request(
            Operation::Update,
            "Client",
            Some(old.clone()),
            client(
                "c",
                json!({"realmRef": {"name": "a"}, "clientId": "c", "scopes": ["api"]}),
            ),
        );
        assert!(
            same.is_allowed(),
            "the default client id spelled out is the same: {same:?}"
        );
    }

    #[test]
    fn a_provider_names_exactly_one_driver_and_keeps_it() {
        let provider = |spec: Value| {
            json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": "IdentityProvider",
                   "metadata": {"name": "p"}, "spec": spec})
        };
        let oidc = provider(json!({"oidc": {"issuer": "http://idp.test"}}));
        let keycloak = provider(json!({"keycloak": {"url": "http://kc.test",
                                                     "credentialsSecretRef": {"name": "admin"}}}));
        assert!(request(Operation::Create, "IdentityProvider", None, oidc.clone()).is_allowed());
        let both = provider(json!({"oidc": {"issuer": "http://idp.test"},
                                   "keycloak": {"url": "http://kc.test", "credentialsSecretRef": {"name": "a"}}}));
        assert!(
            denial(&request(Operation::Create, "IdentityProvider", None, both))
                .contains("exactly one")
        );
        assert!(
            denial(&request(
                Operation::Update,
                "IdentityProvider",
                Some(oidc),
                keycloak
            ))
            .contains("immutable")
        );
    }
}
