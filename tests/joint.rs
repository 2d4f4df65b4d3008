//! The identity and gateway domains together, end to end, with real parts only: one `corbel serve`
//! in embedded mode running both `target/wasm32-wasip2/plugin/identity.wasm` (the `identity`
//! controller, and its validating policy) and `target/wasm32-wasip2/plugin/gateway.wasm` (the
//! `gateway` controller, its `XdsSnapshot`s served over xDS); the real npm `oidc-provider` with
//! dynamic registration (tests/servers/oidc/provider.mjs); a real Envoy 1.40 configured only by
//! Corbel's xDS; real HTTP requests through it to an upstream the test starts.
//!
//! The test acts as the two teams would: the identity side creates an IdentityProvider, a Realm
//! and a Client, and the consumer obtains a client-credentials token with nothing but the Secret
//! the controller wrote; the gateway side trusts that issuer and names the Consumer by the
//! Client's `status.clientId` (a rotation changes `client_id`: docs/identity.md). The token then
//! passes Envoy on the granted Route (200), is refused on the other (403), and no token is 401.
//!
//! Needs node with `tests/servers/oidc/node_modules` and Envoy (`cargo xtask test` installs both;
//! `ENVOY_BIN` overrides), the plugins (`cargo xtask plugins`) and the host
//! (`cargo build --release -p corbel`).

use corbel_e2e::envoy::{self, Client, Envoy, GROUP, Upstream, free_port};
use corbel_e2e::identity::{self, AUDIENCE, POLICY_RULES, Provider, identity_kind};
use corbel_e2e::probes::create_crd_file;
use corbel_e2e::{Embedded, binding, plugin};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_secret_obtains_a_token_that_envoy_admits_on_its_granted_route_only() {
    let provider = Provider::start();
    let upstream = Upstream::start("api").await;
    let xds_port = free_port();

    // One server, both controllers: identity (HTTP to the provider only) and gateway (xDS).
    let bindings = binding("identity", "identity", "validate", "{}", POLICY_RULES);
    let controllers = format!(
        "controllers:\n  - name: identity\n    plugin: {}\n    settings: {{resyncSeconds: 1, blockedRetrySeconds: 1}}\n    timeout: 10s\n    backoff: {{initial: 200ms, max: 1s}}\n    grants:\n      secrets: [{{namespace: '@self'}}]\n      http: ['{}']\n      resources: {{read: [{}, {}, {}], write: [{{apiVersion: v1, kind: Secret}}]}}\n  - name: gateway\n    plugin: {}\n    timeout: 10s\n    backoff: {{initial: 100ms, max: 1s}}\n    grants:\n      resources: {}\nxds:\n  listen: 127.0.0.1:{xds_port}\n",
        plugin("identity").display(),
        provider.issuer,
        identity_kind("IdentityProvider"),
        identity_kind("Realm"),
        identity_kind("Client"),
        plugin("gateway").display(),
        envoy::GRANTS,
    );
    let embedded = Embedded::start(&bindings, &controllers, None).await;
    let client = embedded.client().await;
    for crd in [
        "identityproviders.identity.corbel.dev",
        "realms.identity.corbel.dev",
        "clients.identity.corbel.dev",
        "gateways.gateway.corbel.dev",
        "routes.gateway.corbel.dev",
        "consumers.gateway.corbel.dev",
        "consumeroutes.gateway.corbel.dev",
    ] {
        create_crd_file(&client, &format!("deploy/crds/{crd}.yaml")).await;
    }
    // The identity side: a provider, a realm, a client; the consumer reads only the Secret.
    let ids = identity::Setup { embedded, client };
    ids.provider(json!({"oidc": {"issuer": provider.issuer}}))
        .await;
    ids.create_client(
        "billing",
        json!({"realmRef": {"name": "apps"}, "scopes": ["api"]}),
    )
    .await
    .unwrap();
    let billing = ids.ready_client("billing", &provider).await;
    let client_id = billing.data["status"]["clientId"]
        .as_str()
        .expect("a Ready Client has status.clientId")
        .to_owned();
    let credentials = ids.credentials("billing-credentials").await;
    assert_eq!(credentials.get("client_id"), client_id);
    let (code, body) = credentials.token();
    assert_eq!(code, 200, "{body}\n{}", provider.log());
    let token = body["access_token"].as_str().unwrap().to_owned();

    // The gateway side, on the same server: trust the issuer, two secured Routes, the Consumer
    // following the Client's status.clientId, a grant for one Route only.
    let identity::Setup { embedded, client } = ids;
    let setup = envoy::Setup {
        embedded,
        client,
        xds: format!("127.0.0.1:{xds_port}").parse().unwrap(),
    };
    let discovery = identity::get_json(&format!(
        "{}/.well-known/openid-configuration",
        provider.issuer
    ));
    let port = free_port();
    setup
        .create(
            "Gateway",
            "public",
            json!({"listener": {"address": "127.0.0.1", "port": port}, "allowLoopbackUpstreams": true,
                   "issuers": [{"name": "oidc", "issuer": provider.issuer,
                                "jwksUri": discovery["jwks_uri"], "audiences": [AUDIENCE]}]}),
        )
        .await;
    for route in ["invoices", "payroll"] {
        setup
            .create(
                "Route",
                route,
                json!({"gatewayRef": {"name": "public"}, "paths": [format!("/{route}")],
                       "upstreams": [{"url": upstream.url}], "security": {"issuer": "oidc"}}),
            )
            .await;
    }
    setup
        .create(
            "Consumer",
            "billing",
            json!({"gatewayRef": {"name": "public"}, "clientId": client_id}),
        )
        .await;
    setup
        .create(
            "ConsumeRoute",
            "billing-invoices",
            json!({"consumerRef": {"name": "billing"}, "routeRef": {"name": "invoices"}}),
        )
        .await;
    setup.wait_ready("Route", "invoices", "True").await;
    setup.wait_ready("Route", "payroll", "True").await;

    let envoy = Envoy::start(GROUP, setup.xds).await;
    let through = Client::to(port);
    // The grant reaches Envoy with the Route's snapshot.
    let body = through
        .wait_for("/invoices/2026", Some(&token), 200, &envoy, &setup)
        .await;
    assert_eq!(body, "api /invoices/2026 ", "served by the upstream");
    assert_eq!(
        through.get("/payroll/2026", Some(&token)).await.0,
        403,
        "the Client's token on a Route its Consumer is not granted"
    );
    assert_eq!(
        through.get("/invoices/2026", None).await.0,
        401,
        "no token on the granted Route"
    );
}
