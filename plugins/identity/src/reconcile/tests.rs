//! The reconcile decisions against an in-memory OpenID provider (answering discovery and RFC
//! 7591/7592 as npm `oidc-provider` does), the Keycloak contract fake ([`FakeKeycloak`]) and a
//! map-backed cluster that enforces Secret ownership as the
//! host does. The real provider and the real host are in tests/identity.rs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};

use corbel_sdk::http::{HttpError, Request, Response};
use corbel_sdk::{CapabilityError, Object, ReconcileError};
use serde_json::{Value, json};

use super::*;
use crate::keycloak::fake::FakeKeycloak;

const ISSUER: &str = "http://idp.test";
const KEYCLOAK: &str = "http://kc.test";

fn answer(status: u16, body: Value) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
    }
}

fn bearer(request: &Request) -> Option<&str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.strip_prefix("Bearer "))
}

/// A registered client in the fake OpenID provider.
#[derive(Debug, Clone)]
struct Registered {
    secret: String,
    token: String,
    metadata: Value,
}

/// An OpenID provider with discovery and dynamic registration, in memory.
#[derive(Default)]
struct FakeOidc {
    clients: RefCell<BTreeMap<String, Registered>>,
    next: Cell<u32>,
    down: Cell<bool>,
    /// The token registration asks for, if any.
    initial_access_token: Option<String>,
}

impl FakeOidc {
    fn handle(&self, request: &Request) -> Response {
        let path = request
            .url
            .strip_prefix(ISSUER)
            .expect("requests go to the provider");
        let method = request.method.as_str();
        if (method, path) == ("GET", "/.well-known/openid-configuration") {
            return answer(
                200,
                json!({"issuer": ISSUER, "token_endpoint": format!("{ISSUER}/token"),
                       "jwks_uri": format!("{ISSUER}/jwks"), "registration_endpoint": format!("{ISSUER}/reg"),
                       "grant_types_supported": ["client_credentials"],
                       "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                       "scopes_supported": ["openid", "api"]}),
            );
        }
        if (method, path) == ("POST", "/reg") {
            if let Some(expected) = &self.initial_access_token
                && bearer(request) != Some(expected)
            {
                return answer(401, json!({"error": "invalid_token"}));
            }
            let mut metadata: Value = serde_json::from_slice(&request.body).unwrap();
            let n = self.next.get() + 1;
            self.next.set(n);
            let (id, secret, token) = (format!("c{n}"), format!("s{n}"), format!("rat{n}"));
            metadata["client_id"] = id.clone().into();
            self.clients.borrow_mut().insert(
                id.clone(),
                Registered {
                    secret: secret.clone(),
                    token: token.clone(),
                    metadata: metadata.clone(),
                },
            );
            metadata["client_secret"] = secret.into();
            metadata["registration_access_token"] = token.into();
            metadata["registration_client_uri"] = format!("{ISSUER}/reg/{id}").into();
            return answer(201, metadata);
        }
        let id = path.strip_prefix("/reg/").expect("a registration URI");
        let mut clients = self.clients.borrow_mut();
        let Some(client) = clients.get(id).cloned() else {
            return answer(401, json!({"error": "invalid_token"}));
        };
        if bearer(request) != Some(client.token.as_str()) {
            return answer(401, json!({"error": "invalid_token"}));
        }
        match method {
            "GET" => answer(200, client.metadata.clone()),
            "PUT" => {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(body["client_secret"].as_str(), Some(client.secret.as_str()));
                clients.get_mut(id).unwrap().metadata = body.clone();
                answer(200, body)
            }
            "DELETE" => {
                clients.remove(id);
                answer(204, Value::Null)
            }
            other => panic!("the fake provider does not know {other} {path}"),
        }
    }

    /// Whether a token request with these credentials would succeed.
    fn takes(&self, id: &str, secret: &str) -> bool {
        self.clients
            .borrow()
            .get(id)
            .is_some_and(|c| c.secret == secret)
    }

    /// Deletes a client behind the controller's back.
    fn forget(&self, id: &str) {
        self.clients.borrow_mut().remove(id);
    }
}

/// Whether a client-credentials token request to the fake Keycloak succeeds.
fn keycloak_takes(keycloak: &FakeKeycloak, realm: &str, id: &str, secret: &str) -> bool {
    let request = Request::new(
        "POST",
        &format!("{KEYCLOAK}/realms/{realm}/protocol/openid-connect/token"),
    )
    .header("authorization", &crate::backend::basic(id, secret))
    .body("grant_type=client_credentials");
    keycloak.handle(&request).status == 200
}

/// Both providers behind one transport, by origin.
struct Providers {
    oidc: FakeOidc,
    keycloak: FakeKeycloak,
    keycloak_down: Cell<bool>,
}

impl Default for Providers {
    fn default() -> Self {
        Providers {
            oidc: FakeOidc::default(),
            keycloak: FakeKeycloak::new("admin"),
            keycloak_down: Cell::new(false),
        }
    }
}

impl Transport for Providers {
    fn send(&self, request: &Request) -> Result<Response, HttpError> {
        if request.url.starts_with(ISSUER) {
            if self.oidc.down.get() {
                return Err(HttpError::Transport("connection refused".into()));
            }
            return Ok(self.oidc.handle(request));
        }
        if self.keycloak_down.get() {
            return Err(HttpError::Transport("connection refused".into()));
        }
        Ok(self.keycloak.handle(request))
    }
}

/// A namespace: identity objects, Secrets readable through `secrets`, and the Secrets the
/// reconciled Client owns (a Secret of that name it does not own is refused, as the host does).
#[derive(Default)]
struct FakeCluster {
    objects: RefCell<BTreeMap<(String, String), Value>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    owned: RefCell<BTreeMap<String, Value>>,
    foreign: BTreeSet<String>,
}

impl Cluster for FakeCluster {
    fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, CapabilityError> {
        Ok(self
            .objects
            .borrow()
            .get(&(kind.into(), name.into()))
            .cloned())
    }

    fn clients(&self) -> Result<Vec<Value>, CapabilityError> {
        Ok(self
            .objects
            .borrow()
            .iter()
            .filter(|((kind, _), _)| kind == "Client")
            .map(|(_, v)| v.clone())
            .collect())
    }

    fn secret(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        self.secrets.get(name).cloned().ok_or_else(|| {
            CapabilityError::NotFound(format!("secret default/{name} does not exist"))
        })
    }

    fn owned_secret(&self, name: &str) -> Result<Option<Value>, CapabilityError> {
        if self.foreign.contains(name) {
            return Err(CapabilityError::AccessDenied(format!(
                "resources: v1 Secret {name} is not owned"
            )));
        }
        Ok(self.owned.borrow().get(name).cloned())
    }

    fn create_secret(&self, secret: &Value) -> Result<Value, CapabilityError> {
        let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        let mut owned = self.owned.borrow_mut();
        if owned.contains_key(&name) || self.foreign.contains(&name) {
            return Err(CapabilityError::Conflict(format!("secret {name} exists")));
        }
        let mut stored = secret.clone();
        stored["metadata"]["resourceVersion"] = "1".into();
        owned.insert(name, stored.clone());
        Ok(stored)
    }

    fn update_secret(&self, secret: &Value) -> Result<Value, CapabilityError> {
        let name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        let mut owned = self.owned.borrow_mut();
        let current = owned
            .get(&name)
            .ok_or_else(|| CapabilityError::NotFound(name.clone()))?;
        if current["metadata"]["resourceVersion"] != secret["metadata"]["resourceVersion"] {
            return Err(CapabilityError::Conflict("stale resourceVersion".into()));
        }
        let version: u64 = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut stored = secret.clone();
        stored["metadata"]["resourceVersion"] = (version + 1).to_string().into();
        owned.insert(name, stored.clone());
        Ok(stored)
    }

    fn delete_secret(&self, name: &str) -> Result<bool, CapabilityError> {
        Ok(self.owned.borrow_mut().remove(name).is_some())
    }
}

impl FakeCluster {
    fn put(&self, object: Value) {
        let kind = object["kind"].as_str().unwrap().to_owned();
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        self.objects.borrow_mut().insert((kind, name), object);
    }

    /// The delivered Secret's data, decoded.
    fn delivered(&self, name: &str) -> BTreeMap<String, String> {
        decode(&self.owned.borrow()[name])
    }
}

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "identity.corbel.dev/v1alpha1", "kind": kind,
           "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
           "spec": spec})
}

fn ready(mut object: Value, status: Value) -> Value {
    object["status"] = status;
    object["status"]["conditions"] =
        json!([{"type": "Ready", "status": "True", "reason": "R", "message": "ok"}]);
    object
}

struct World {
    cluster: FakeCluster,
    providers: Providers,
    settings: Settings,
}

impl World {
    /// An `oidc` provider and a Realm of it, both reconciled and Ready.
    fn oidc() -> World {
        let world = World {
            cluster: FakeCluster::default(),
            providers: Providers::default(),
            settings: Settings::default(),
        };
        let provider = object(
            "IdentityProvider",
            "idp",
            json!({"oidc": {"issuer": ISSUER}}),
        );
        let outcome = provider_reconcile(&world, &provider);
        world.cluster.put(ready(provider, outcome.status.unwrap()));
        let realm = object("Realm", "apps", json!({"providerRef": {"name": "idp"}}));
        let outcome = super::realm(&Object(realm.clone()), &world.env(0)).unwrap();
        world.cluster.put(ready(realm, outcome.status.unwrap()));
        world
    }

    /// A `keycloak` provider (admin credentials in a Secret) and a Realm `apps` in it.
    fn keycloak() -> World {
        let mut world = World {
            cluster: FakeCluster::default(),
            providers: Providers::default(),
            settings: Settings::default(),
        };
        world.cluster.secrets.insert(
            "kc-admin".into(),
            BTreeMap::from([
                ("username".into(), b"admin".to_vec()),
                ("password".into(), b"admin".to_vec()),
            ]),
        );
        let provider = object(
            "IdentityProvider",
            "kc",
            json!({"keycloak": {"url": KEYCLOAK, "credentialsSecretRef": {"name": "kc-admin"}}}),
        );
        let outcome = provider_reconcile(&world, &provider);
        world.cluster.put(ready(provider, outcome.status.unwrap()));
        let realm = object("Realm", "apps", json!({"providerRef": {"name": "kc"}}));
        let outcome = super::realm(&Object(realm.clone()), &world.env(0)).unwrap();
        world.cluster.put(ready(realm, outcome.status.unwrap()));
        world
    }

    fn env(&self, now: u64) -> Env<'_> {
        Env {
            cluster: &self.cluster,
            transport: &self.providers,
            now,
            settings: &self.settings,
        }
    }

    fn reconcile(&self, client: &Value, now: u64) -> Result<Outcome, ReconcileError> {
        super::client(&Object(client.clone()), &self.env(now))
    }
}

fn provider_reconcile(world: &World, provider: &Value) -> Outcome {
    super::provider(&Object(provider.clone()), &world.env(0)).unwrap()
}

fn billing(spec: Value) -> Value {
    let mut base = json!({"realmRef": {"name": "apps"}, "scopes": ["api"]});
    for (k, v) in spec.as_object().unwrap() {
        base[k] = v.clone();
    }
    object("Client", "billing", base)
}

#[test]
fn an_oidc_provider_is_ready_with_what_discovery_announces() {
    let world = World::oidc();
    let provider = world
        .cluster
        .get("IdentityProvider", "idp")
        .unwrap()
        .unwrap();
    assert_eq!(
        provider["status"]["registrationEndpoint"],
        format!("{ISSUER}/reg")
    );
    assert_eq!(
        provider["status"]["tokenEndpoint"],
        format!("{ISSUER}/token")
    );
    assert_eq!(provider["status"]["supports"]["twoSecretsPerClient"], false);
    let realm = world.cluster.get("Realm", "apps").unwrap().unwrap();
    assert_eq!(realm["status"]["issuer"], ISSUER);
    assert_eq!(realm["status"]["jwksUrl"], format!("{ISSUER}/jwks"));
}

#[test]
fn an_unreachable_provider_is_transient_and_says_where() {
    let world = World::oidc();
    world.providers.oidc.down.set(true);
    let provider = object(
        "IdentityProvider",
        "idp",
        json!({"oidc": {"issuer": ISSUER}}),
    );
    let e = super::provider(&Object(provider), &world.env(0)).unwrap_err();
    assert!(matches!(e, ReconcileError::Transient { .. }), "{e:?}");
    assert_eq!(e.reason(), "ProviderUnreachable");
    assert!(
        e.message()
            .contains("http://idp.test/.well-known/openid-configuration"),
        "{e}"
    );
}

#[test]
fn a_client_is_registered_and_its_credentials_delivered_in_a_secret() {
    let world = World::oidc();
    let outcome = world.reconcile(&billing(json!({})), 1000).unwrap();
    let data = world.cluster.delivered("billing-credentials");
    assert_eq!(data["client_id"], "c1");
    assert_eq!(data["token_url"], format!("{ISSUER}/token"));
    assert_eq!(data["issuer"], ISSUER);
    assert_eq!(data["scope"], "api");
    assert!(world.providers.oidc.takes("c1", &data["client_secret"]));
    let metadata = world.providers.oidc.clients.borrow()["c1"].metadata.clone();
    assert_eq!(metadata["grant_types"], json!(["client_credentials"]));
    assert_eq!(metadata["client_name"], "billing");
    let status = outcome.status.unwrap();
    assert_eq!(status["clientId"], "c1");
    assert_eq!(status["secretName"], "billing-credentials");

    // Nothing changes on the next reconcile: no new registration, no Secret write.
    let version =
        world.cluster.owned.borrow()["billing-credentials"]["metadata"]["resourceVersion"].clone();
    world.reconcile(&billing(json!({})), 1001).unwrap();
    assert_eq!(world.providers.oidc.clients.borrow().len(), 1);
    assert_eq!(
        world.cluster.owned.borrow()["billing-credentials"]["metadata"]["resourceVersion"],
        version
    );
}

#[test]
fn a_changed_scope_updates_the_registration_in_place() {
    let world = World::oidc();
    world.reconcile(&billing(json!({})), 0).unwrap();
    world
        .reconcile(&billing(json!({"scopes": ["api", "read"]})), 1)
        .unwrap();
    assert_eq!(
        world.providers.oidc.clients.borrow()["c1"].metadata["scope"],
        "api read"
    );
    assert_eq!(
        world.cluster.delivered("billing-credentials")["scope"],
        "api read"
    );
}

#[test]
fn a_client_whose_realm_is_not_ready_is_blocked_with_the_reason() {
    let world = World::oidc();
    let mut realm = world.cluster.get("Realm", "apps").unwrap().unwrap();
    realm["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ProviderNotReady", "message": "the provider is down"}]);
    world.cluster.put(realm);
    let e = world.reconcile(&billing(json!({})), 0).unwrap_err();
    assert!(
        matches!(
            e,
            ReconcileError::Permanent {
                retry_after: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.reason(), "RealmNotReady");
    assert!(e.message().contains("the provider is down"), "{e}");
    assert!(world.cluster.owned.borrow().is_empty());
}

#[test]
fn a_secret_the_client_does_not_own_is_never_written() {
    let mut world = World::oidc();
    world.cluster.foreign.insert("billing-credentials".into());
    let e = world.reconcile(&billing(json!({})), 0).unwrap_err();
    assert_eq!(e.reason(), "SecretNameTaken");
    assert!(e.message().contains("spec.secretName"), "{e}");
    assert!(
        world.providers.oidc.clients.borrow().is_empty(),
        "nothing registered either"
    );
}

#[test]
fn a_client_deleted_in_the_provider_is_registered_again_and_its_secret_updated() {
    let world = World::oidc();
    world.reconcile(&billing(json!({})), 0).unwrap();
    world.providers.oidc.forget("c1");
    let outcome = world.reconcile(&billing(json!({})), 10).unwrap();
    let data = world.cluster.delivered("billing-credentials");
    assert_eq!(data["client_id"], "c2");
    assert!(world.providers.oidc.takes("c2", &data["client_secret"]));
    assert!(outcome.events.iter().any(|e| e.reason == "ClientRecreated"));
}

#[test]
fn a_rotation_keeps_the_old_secret_working_for_the_overlap_then_retires_it() {
    let world = World::oidc();
    let client = billing(json!({"rotation": {"every": "100s", "overlap": "30s"}}));
    let outcome = world.reconcile(&client, 1000).unwrap();
    assert_eq!(outcome.requeue_after, Some(Duration::from_secs(100)));
    let first = world.cluster.delivered("billing-credentials");

    // Not due yet.
    world.reconcile(&client, 1099).unwrap();
    assert_eq!(
        world.cluster.delivered("billing-credentials")["client_id"],
        first["client_id"]
    );

    // Due: a new client; both take their secrets during the overlap.
    let outcome = world.reconcile(&client, 1100).unwrap();
    let second = world.cluster.delivered("billing-credentials");
    assert_ne!(second["client_id"], first["client_id"]);
    assert!(
        world
            .providers
            .oidc
            .takes(&first["client_id"], &first["client_secret"])
    );
    assert!(
        world
            .providers
            .oidc
            .takes(&second["client_id"], &second["client_secret"])
    );
    assert_eq!(second["previous_client_id"], first["client_id"]);
    assert_eq!(outcome.requeue_after, Some(Duration::from_secs(30)));
    let status = outcome.status.unwrap();
    assert_eq!(status["previousClientId"], first["client_id"].as_str());
    assert_eq!(status["previousExpiresAt"], rfc3339(1130));
    assert_eq!(status["secretExpiresAt"], rfc3339(1200));

    // The overlap ends: only the new one works, and the Secret forgets the old one.
    world.reconcile(&client, 1130).unwrap();
    assert!(
        !world
            .providers
            .oidc
            .takes(&first["client_id"], &first["client_secret"])
    );
    assert!(
        world
            .providers
            .oidc
            .takes(&second["client_id"], &second["client_secret"])
    );
    let after = world.cluster.delivered("billing-credentials");
    assert!(!after.contains_key("previous_client_id"), "{after:?}");
    assert_eq!(after["client_id"], second["client_id"]);
}

#[test]
fn a_rotation_due_while_the_provider_is_down_happens_when_it_is_back() {
    let world = World::oidc();
    let client = billing(json!({"rotation": {"every": "100s", "overlap": "30s"}}));
    world.reconcile(&client, 0).unwrap();
    let before = world.cluster.delivered("billing-credentials");
    world.providers.oidc.down.set(true);
    let e = world.reconcile(&client, 150).unwrap_err();
    assert_eq!(e.reason(), "ProviderUnreachable");
    // The Secret still holds what the provider knows.
    assert_eq!(world.cluster.delivered("billing-credentials"), before);
    world.providers.oidc.down.set(false);
    world.reconcile(&client, 160).unwrap();
    let after = world.cluster.delivered("billing-credentials");
    assert_ne!(after["client_id"], before["client_id"]);
    assert!(
        world
            .providers
            .oidc
            .takes(&after["client_id"], &after["client_secret"])
    );
    assert!(
        world
            .providers
            .oidc
            .takes(&before["client_id"], &before["client_secret"])
    );
    assert_eq!(after["previous_expires_at"], "190");
}

#[test]
fn deleting_a_client_removes_it_and_its_overlapping_predecessor_then_the_secret() {
    let world = World::oidc();
    let client = billing(json!({"rotation": {"every": "100s", "overlap": "30s"}}));
    world.reconcile(&client, 0).unwrap();
    world.reconcile(&client, 100).unwrap();
    assert_eq!(world.providers.oidc.clients.borrow().len(), 2);
    super::client_cleanup(&Object(client), &world.env(110)).unwrap();
    assert!(world.providers.oidc.clients.borrow().is_empty());
    assert!(world.cluster.owned.borrow().is_empty());
}

#[test]
fn registration_sends_the_initial_access_token_from_its_secret() {
    let mut world = World::oidc();
    world.providers.oidc.initial_access_token = Some("iat-1".into());
    let e = world.reconcile(&billing(json!({})), 0).unwrap_err();
    assert_eq!(e.reason(), "CredentialsRefused");

    world.cluster.secrets.insert(
        "reg-token".into(),
        BTreeMap::from([("token".into(), b"iat-1\n".to_vec())]),
    );
    let provider = object(
        "IdentityProvider",
        "idp",
        json!({"oidc": {"issuer": ISSUER, "initialAccessTokenSecretRef": {"name": "reg-token"}}}),
    );
    let status = world
        .cluster
        .get("IdentityProvider", "idp")
        .unwrap()
        .unwrap()["status"]
        .clone();
    world.cluster.put(ready(provider, status));
    world.reconcile(&billing(json!({})), 0).unwrap();
    assert_eq!(world.providers.oidc.clients.borrow().len(), 1);
}

#[test]
fn an_oidc_client_asking_for_an_audience_is_refused_with_the_reason() {
    let world = World::oidc();
    let e = world
        .reconcile(&billing(json!({"audience": ["https://api"]})), 0)
        .unwrap_err();
    assert_eq!(e.reason(), "NotSupported");
    assert!(e.message().contains("spec.audience"), "{e}");
}

#[test]
fn a_realm_waits_for_its_clients_before_it_goes() {
    let world = World::oidc();
    world.cluster.put(billing(json!({})));
    let realm = world.cluster.get("Realm", "apps").unwrap().unwrap();
    let e = super::realm_cleanup(&Object(realm.clone()), &world.env(0)).unwrap_err();
    assert_eq!(e.reason(), "RealmHasClients");
    assert!(e.message().contains("billing"), "{e}");
    world
        .cluster
        .objects
        .borrow_mut()
        .remove(&("Client".into(), "billing".into()));
    super::realm_cleanup(&Object(realm), &world.env(0)).unwrap();
}

#[test]
fn keycloak_realms_and_service_account_clients_are_created() {
    let world = World::keycloak();
    assert!(world.providers.keycloak.has_realm("apps"));
    let realm = world.cluster.get("Realm", "apps").unwrap().unwrap();
    assert_eq!(realm["status"]["issuer"], format!("{KEYCLOAK}/realms/apps"));
    let client = billing(json!({"audience": ["https://api"], "tokenLifetimeSeconds": 120}));
    world.reconcile(&client, 0).unwrap();
    let data = world.cluster.delivered("billing-credentials");
    assert_eq!(data["client_id"], "billing");
    assert_eq!(
        data["token_url"],
        format!("{KEYCLOAK}/realms/apps/protocol/openid-connect/token")
    );
    assert!(keycloak_takes(
        &world.providers.keycloak,
        "apps",
        "billing",
        &data["client_secret"]
    ));
    let clients = world.providers.keycloak.clients("apps");
    let stored = &clients["billing"];
    assert_eq!(stored["attributes"]["access.token.lifespan"], "120");
    assert_eq!(
        stored["protocolMappers"][0]["config"]["included.custom.audience"],
        "https://api"
    );
    assert_eq!(stored["standardFlowEnabled"], false);
}

#[test]
fn keycloak_wrong_admin_credentials_block_until_the_secret_changes() {
    let mut world = World::keycloak();
    world.cluster.secrets.insert(
        "kc-admin".into(),
        BTreeMap::from([
            ("username".into(), b"admin".to_vec()),
            ("password".into(), b"wrong".to_vec()),
        ]),
    );
    let provider = world
        .cluster
        .get("IdentityProvider", "kc")
        .unwrap()
        .unwrap();
    let e = super::provider(&Object(provider.clone()), &world.env(0)).unwrap_err();
    assert!(
        matches!(
            e,
            ReconcileError::Permanent {
                retry_after: Some(_),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.reason(), "CredentialsRefused");
    world.cluster.secrets.insert(
        "kc-admin".into(),
        BTreeMap::from([
            ("username".into(), b"admin".to_vec()),
            ("password".into(), b"admin".to_vec()),
        ]),
    );
    super::provider(&Object(provider), &world.env(0)).unwrap();
}

#[test]
fn keycloak_rotation_overlaps_with_a_second_client_and_cleanup_deletes_both() {
    let world = World::keycloak();
    let client = billing(json!({"rotation": {"every": "100s", "overlap": "30s"}}));
    world.reconcile(&client, 0).unwrap();
    let first = world.cluster.delivered("billing-credentials");
    world.reconcile(&client, 100).unwrap();
    let second = world.cluster.delivered("billing-credentials");
    assert_eq!(second["client_id"], "billing-100");
    assert!(keycloak_takes(
        &world.providers.keycloak,
        "apps",
        &first["client_id"],
        &first["client_secret"]
    ));
    assert!(keycloak_takes(
        &world.providers.keycloak,
        "apps",
        &second["client_id"],
        &second["client_secret"]
    ));
    super::client_cleanup(&Object(client), &world.env(110)).unwrap();
    assert!(world.providers.keycloak.clients("apps").is_empty());
    assert!(world.cluster.owned.borrow().is_empty());
}

#[test]
fn a_keycloak_client_deleted_by_hand_is_recreated() {
    let world = World::keycloak();
    world.reconcile(&billing(json!({})), 0).unwrap();
    world.providers.keycloak.clear_clients("apps");
    world.reconcile(&billing(json!({})), 1).unwrap();
    let data = world.cluster.delivered("billing-credentials");
    assert!(keycloak_takes(
        &world.providers.keycloak,
        "apps",
        "billing",
        &data["client_secret"]
    ));
}

#[test]
fn rfc3339_formats_utc_seconds() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
}
