//! The API-management tests' harness (tests/api.rs): one `corbel serve` in embedded mode running
//! the identity, gateway and api controllers (and the api admission bindings), its API
//! authenticating people by JWTs of the real npm `oidc-provider` (groups from a claim) and
//! authorizing them by the example rules of `deploy/examples/api-management/`; a real Envoy
//! configured by Corbel's xDS in front of an upstream the harness starts.
//!
//! Two teams: `orders` provides an API in namespace `orders` (its Gateway `public` is there),
//! `shop` consumes it from namespace `shop` (its IdentityProvider and Realm `default` are
//! there). The people are the provider's client-credentials clients ([`USERS`]); their tokens
//! carry `groups`, which the API reads as their teams.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::envoy::{self, Client, Envoy, Upstream, free_port};
use crate::identity::{self, AUDIENCE, Credentials, Provider, identity_kind};
use crate::probes::{create_crd_file, resource};
use crate::{Embedded, binding, plugin};

/// How long the controllers and Envoy may take to get somewhere.
pub const WITHIN: Duration = Duration::from_secs(60);
pub const PROVIDER_NS: &str = "orders";
pub const CONSUMER_NS: &str = "shop";
/// `(user, groups)`: alice and bob of the provider team, carol of the consumer team, erin of both.
pub const USERS: &[(&str, &[&str])] = &[
    ("alice", &["orders"]),
    ("bob", &["orders"]),
    ("carol", &["shop"]),
    ("erin", &["shop", "orders"]),
];

/// The api controller's grants: what its manifest asks.
pub fn api_grants() -> String {
    let api = |k: &str| format!("{{apiVersion: api.corbel.dev/v1alpha1, kind: {k}}}");
    let gateway = |k: &str| format!("{{apiVersion: gateway.corbel.dev/v1alpha1, kind: {k}}}");
    format!(
        "{{read: [{}, {}], write: [{}, {}, {}, {}, {}]}}",
        api("Application"),
        api("ApiExposure"),
        identity_kind("Client"),
        gateway("Route"),
        api("Approval"),
        gateway("Consumer"),
        gateway("ConsumeRoute"),
    )
}

/// The admission bindings: identity's validation, the api mutating binding (who asked, who
/// decided) and the api validating one.
pub fn bindings() -> String {
    let api_rules = "rules:\n- {operations: [CREATE, UPDATE], apiGroups: [api.corbel.dev], apiVersions: [v1alpha1], resources: [apisubscriptions, approvals]}";
    [
        binding(
            "identity",
            "identity",
            "validate",
            "{}",
            identity::POLICY_RULES,
        ),
        binding("api-requester", "api", "mutate", "{}", api_rules),
        binding("api", "api", "validate", "{}", api_rules),
    ]
    .concat()
}

pub struct World {
    pub provider: Provider,
    pub upstream: Upstream,
    pub envoy: Envoy,
    /// The server and the development admin's client (the platform team).
    pub setup: envoy::Setup,
    /// Requests through Envoy's listener.
    pub through: Client,
    token_url: String,
}

impl World {
    /// Everything running, the CRDs applied, the platform's part done: namespaces, the
    /// consumer team's IdentityProvider and Realm, the provider team's Gateway trusting the
    /// provider's tokens.
    pub async fn start() -> World {
        World::start_with(
            "resyncSeconds: 1, blockedRetrySeconds: 1",
            "resyncSeconds: 1, blockedRetrySeconds: 1",
        )
        .await
    }

    /// The same, with these identity and api controller settings (the benchmark looks less
    /// often than the tests).
    pub async fn start_with(identity_settings: &str, api_settings: &str) -> World {
        let users: Vec<Value> = USERS
            .iter()
            .map(|(user, groups)| json!({"id": user, "secret": format!("pw-{user}"), "groups": groups}))
            .collect();
        let provider = Provider::start_with(None, Value::Array(users));
        let upstream = Upstream::start("orders-api").await;
        let xds_port = free_port();
        let rules = std::fs::read_to_string(
            crate::root().join("deploy/examples/api-management/auth-rules.yaml"),
        )
        .unwrap();
        let controllers = format!(
            "controllers:\n  - name: identity\n    plugin: {}\n    settings: {{{identity_settings}}}\n    timeout: 10s\n    backoff: {{initial: 200ms, max: 1s}}\n    grants:\n      secrets: [{{namespace: '@self'}}]\n      http: ['{issuer}']\n      resources: {{read: [{}, {}, {}], write: [{{apiVersion: v1, kind: Secret}}]}}\n  - name: gateway\n    plugin: {}\n    timeout: 10s\n    backoff: {{initial: 100ms, max: 1s}}\n    grants:\n      resources: {}\n  - name: api\n    plugin: {}\n    settings: {{{api_settings}}}\n    timeout: 10s\n    backoff: {{initial: 100ms, max: 1s}}\n    grants:\n      resources: {}\nxds:\n  listen: 127.0.0.1:{xds_port}\nauth:\n  oidc:\n    issuer: {issuer}\n    audience: {AUDIENCE}\n{}",
            plugin("identity").display(),
            identity_kind("IdentityProvider"),
            identity_kind("Realm"),
            identity_kind("Client"),
            plugin("gateway").display(),
            envoy::GRANTS,
            plugin("api").display(),
            api_grants(),
            rules
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>(),
            issuer = provider.issuer,
        );
        let embedded = Embedded::start(&bindings(), &controllers, None).await;
        let client = embedded.client().await;
        for crd in [
            "identityproviders.identity.corbel.dev",
            "realms.identity.corbel.dev",
            "clients.identity.corbel.dev",
            "gateways.gateway.corbel.dev",
            "routes.gateway.corbel.dev",
            "consumers.gateway.corbel.dev",
            "consumeroutes.gateway.corbel.dev",
            "applications.api.corbel.dev",
            "apiexposures.api.corbel.dev",
            "apisubscriptions.api.corbel.dev",
            "approvals.api.corbel.dev",
        ] {
            create_crd_file(&client, &format!("deploy/crds/{crd}.yaml")).await;
        }
        let setup = envoy::Setup {
            embedded,
            client,
            xds: format!("127.0.0.1:{xds_port}").parse().unwrap(),
        };
        let discovery = identity::get_json(&format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ));
        let admin = setup.client.clone();
        for namespace in [PROVIDER_NS, CONSUMER_NS] {
            create(
                &Api::all_with(
                    admin.clone(),
                    &resource("", "v1", "Namespace", "namespaces"),
                ),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            )
            .await
            .unwrap();
        }
        create(
            &api(
                &admin,
                CONSUMER_NS,
                "identity.corbel.dev",
                "IdentityProvider",
            ),
            object(
                "identity.corbel.dev",
                "IdentityProvider",
                "idp",
                json!({"oidc": {"issuer": provider.issuer}}),
            ),
        )
        .await
        .unwrap();
        create(
            &api(&admin, CONSUMER_NS, "identity.corbel.dev", "Realm"),
            object(
                "identity.corbel.dev",
                "Realm",
                "default",
                json!({"providerRef": {"name": "idp"}}),
            ),
        )
        .await
        .unwrap();
        let port = free_port();
        create(
            &api(&admin, PROVIDER_NS, "gateway.corbel.dev", "Gateway"),
            object("gateway.corbel.dev", "Gateway", "public",
                   json!({"listener": {"address": "127.0.0.1", "port": port}, "allowLoopbackUpstreams": true,
                          "issuers": [{"name": "oidc", "issuer": provider.issuer,
                                       "jwksUri": discovery["jwks_uri"], "audiences": [AUDIENCE]}]})),
        )
        .await
        .unwrap();
        let envoy = Envoy::start(&format!("{PROVIDER_NS}/public"), setup.xds).await;
        World {
            token_url: discovery["token_endpoint"].as_str().unwrap().to_owned(),
            provider,
            upstream,
            envoy,
            setup,
            through: Client::to(port),
        }
    }

    /// A client of the embedded API with `user`'s access token, as kubectl with `--token` would be.
    pub async fn as_user(&self, user: &str) -> kube::Client {
        let credentials = Credentials(BTreeMap::from([
            ("client_id".to_owned(), user.to_owned()),
            ("client_secret".to_owned(), format!("pw-{user}")),
            ("token_url".to_owned(), self.token_url.clone()),
        ]));
        let (code, body) = credentials.token();
        assert_eq!(code, 200, "{user}'s token: {body}\n{}", self.provider.log());
        let token = body["access_token"].as_str().unwrap();
        let text = std::fs::read_to_string(&self.setup.embedded.kubeconfig).unwrap();
        let mut kubeconfig: Value = serde_yaml_ng::from_str(&text).unwrap();
        for entry in kubeconfig["users"].as_array_mut().unwrap() {
            entry["user"] = json!({"token": token});
        }
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&serde_yaml_ng::to_string(&kubeconfig).unwrap())
                .unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Polls Envoy until `path` answers `status` with `token`; returns how long it took.
    pub async fn until_envoy_answers(&self, path: &str, token: &str, status: u16) -> Duration {
        let started = Instant::now();
        self.through
            .wait_for(path, Some(token), status, &self.envoy, &self.setup)
            .await;
        started.elapsed()
    }

    /// Polls `check` on the object until it holds; returns the object.
    pub async fn until(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        what: &str,
        check: impl Fn(Option<&DynamicObject>) -> bool,
    ) -> Option<DynamicObject> {
        let started = Instant::now();
        loop {
            let object = api.get_opt(name).await.unwrap();
            if check(object.as_ref()) {
                return object;
            }
            assert!(
                started.elapsed() < WITHIN,
                "{name}: never {what}: {:?}\n{}",
                object.map(|o| o.data),
                self.setup.embedded.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The admin's view of a kind in a namespace.
    pub fn admin(&self, namespace: &str, group: &str, kind: &str) -> Api<DynamicObject> {
        api(&self.setup.client, namespace, group, kind)
    }
}

/// The API of `kind` (of `group`, `v1alpha1`; `""` is core `v1`) in `namespace`, as `client`.
pub fn api(client: &kube::Client, namespace: &str, group: &str, kind: &str) -> Api<DynamicObject> {
    let plural = format!("{}s", kind.to_lowercase());
    let version = if group.is_empty() { "v1" } else { "v1alpha1" };
    Api::namespaced_with(
        client.clone(),
        namespace,
        &resource(group, version, kind, &plural),
    )
}

/// An object of `kind` (of `group`, `v1alpha1`) named `name`.
pub fn object(group: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": format!("{group}/v1alpha1"), "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// Creates `object`.
pub async fn create(api: &Api<DynamicObject>, object: Value) -> Result<DynamicObject, kube::Error> {
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
}
