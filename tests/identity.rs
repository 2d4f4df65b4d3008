//! The identity controller end to end, against a real OpenID provider (npm `oidc-provider`
//! 9.13, with dynamic registration and its management enabled: tests/servers/oidc/provider.mjs)
//! and the real `corbel serve` in embedded mode. The server runs
//! `target/wasm32-wasip2/plugin/identity.wasm` as the `identity` controller (grants: Secrets of
//! the reconciled object's namespace to read, Secrets to write as children, the identity kinds
//! to read, HTTP to this provider only) and as an inline validating policy for its kinds. The
//! tests act as a consumer would: read the Secret the controller wrote and ask the provider for
//! a client-credentials token with nothing else, then check the token against the provider's
//! JWKS.
//!
//! Needs node and `tests/servers/oidc/node_modules` (`cargo xtask test` installs them), the
//! plugin (`cargo xtask plugins`) and the host (`cargo build --release -p corbel`).

use std::time::{Duration, Instant};

use corbel_e2e::identity::{
    AUDIENCE, Credentials, Provider, Setup, WITHIN, eventually, serve_keycloak, verified_claims,
};
use corbel_e2e::probes::condition;
use identity::keycloak::fake::FakeKeycloak;
use kube::api::DeleteParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_a_secret_that_obtains_tokens_and_deleting_it_revokes_both() {
    let provider = Provider::start();
    let setup = Setup::start(&provider).await;

    setup
        .create_client(
            "billing",
            json!({"realmRef": {"name": "apps"}, "scopes": ["api"]}),
        )
        .await
        .unwrap();
    let client = setup.ready_client("billing", &provider).await;
    let status = &client.data["status"];
    assert_eq!(status["secretName"], "billing-credentials");
    assert_eq!(status["issuer"], provider.issuer);

    let secret = setup.secrets().get("billing-credentials").await.unwrap();
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Client", "billing")
    );
    let credentials = Credentials::of(&secret);
    assert_eq!(credentials.get("issuer"), provider.issuer);
    assert_eq!(
        credentials.get("token_url"),
        format!("{}/token", provider.issuer)
    );
    assert_eq!(
        credentials.get("client_id"),
        status["clientId"].as_str().unwrap()
    );

    // A consumer with nothing but the Secret obtains a token the provider's JWKS vouches for.
    let (code, body) = credentials.token();
    assert_eq!(code, 200, "{body}\n{}", provider.log());
    let claims = verified_claims(&provider.issuer, body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], credentials.get("client_id"));
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["scope"], "api");

    // Deleting the Client removes it from the provider and its Secret.
    setup
        .api("Client")
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Client and its Secret going away", &setup, || async {
        setup
            .api("Client")
            .get_opt("billing")
            .await
            .unwrap()
            .is_none()
            && setup
                .secrets()
                .get_opt("billing-credentials")
                .await
                .unwrap()
                .is_none()
    })
    .await;
    let (code, body) = credentials.token();
    assert_eq!(
        code, 401,
        "the deleted client's secret still obtains tokens: {body}"
    );
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_a_bad_client_id_an_overlong_overlap_and_a_changed_realm() {
    let provider = Provider::start();
    let setup = Setup::start(&provider).await;
    for (spec, why) in [
        (
            json!({"realmRef": {"name": "apps"}, "clientId": "has space"}),
            "client id",
        ),
        (
            json!({"realmRef": {"name": "apps"}, "rotation": {"every": "1h", "overlap": "2h"}}),
            "shorter than",
        ),
    ] {
        match setup.create_client("bad", spec).await {
            Err(kube::Error::Api(status)) => assert!(status.message.contains(why), "{status:?}"),
            other => panic!("expected a refusal naming {why:?}, got {other:?}"),
        }
    }
    setup
        .create_client("fine", json!({"realmRef": {"name": "apps"}}))
        .await
        .unwrap();
    let changed = setup
        .api("Client")
        .patch(
            "fine",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"realmRef": {"name": "other"}}})),
        )
        .await;
    match changed {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains("spec.realmRef is immutable"),
                "{status:?}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_overlaps_so_that_no_token_request_fails() {
    let provider = Provider::start();
    let setup = Setup::start(&provider).await;
    setup
        .create_client(
            "rotating",
            json!({"realmRef": {"name": "apps"}, "scopes": ["api"],
                   "rotation": {"every": "4s", "overlap": "3s"}}),
        )
        .await
        .unwrap();
    setup.ready_client("rotating", &provider).await;
    let first = setup.credentials("rotating-credentials").await;

    // A consumer that reads the Secret before each request, through two rotations: every
    // request succeeds.
    let (mut requests, mut failures, mut seen) = (0, Vec::new(), vec![first.clone()]);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let current = setup.credentials("rotating-credentials").await;
        let (code, body) = current.token();
        requests += 1;
        if code != 200 {
            failures.push(format!("{}: {code} {body}", current.get("client_id")));
        }
        if seen.last().unwrap().get("client_id") != current.get("client_id") {
            seen.push(current);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} token requests failed: {failures:?}",
        failures.len()
    );
    assert!(
        seen.len() >= 2,
        "no rotation happened in 10 s: {:?}\n{}",
        seen,
        setup.embedded.server.log()
    );

    // During the overlap both secrets obtain tokens; after it only the new one does. (Caught
    // with a second of the overlap left: at its very end the provider forgets the previous
    // client a moment before the Secret does.)
    let started = Instant::now();
    let during = loop {
        let c = setup.credentials("rotating-credentials").await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if c.0
            .get("previous_expires_at")
            .and_then(|t| t.parse::<u64>().ok())
            > Some(now + 1)
        {
            break c;
        }
        assert!(
            started.elapsed() < WITHIN,
            "no overlap seen\n{}",
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (old_id, old_secret) = (
        during.get("previous_client_id"),
        during.get("previous_client_secret"),
    );
    assert_eq!(
        during.token_with(old_id, old_secret).0,
        200,
        "the previous secret during the overlap"
    );
    assert_eq!(during.token().0, 200, "the new secret during the overlap");
    eventually("the end of the overlap", &setup, || async {
        let c = setup.credentials("rotating-credentials").await;
        c.get("client_id") != during.get("client_id") || !c.0.contains_key("previous_client_id")
    })
    .await;
    let (code, body) = during.token_with(old_id, old_secret);
    assert_eq!(code, 401, "the previous secret after the overlap: {body}");
    assert_eq!(during.token().0, 200, "the new secret after the overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_goes_away_is_reported_and_its_clients_come_back_with_it() {
    let provider = Provider::start();
    let port = provider.port();
    let setup = Setup::start(&provider).await;
    setup
        .create_client(
            "billing",
            json!({"realmRef": {"name": "apps"}, "scopes": ["api"]}),
        )
        .await
        .unwrap();
    setup.ready_client("billing", &provider).await;
    let before = setup.credentials("billing-credentials").await;

    // Down: the provider is not Ready, and says why.
    drop(provider);
    eventually(
        "the IdentityProvider reporting the provider unreachable",
        &setup,
        || async {
            let idp = setup.api("IdentityProvider").get("idp").await.unwrap();
            condition(&idp, "Ready")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "ProviderUnreachable")
        },
    )
    .await;

    // Back, on the same issuer but with its memory wiped (as if every client had been deleted
    // by hand): the client is registered again and the Secret updated.
    let provider = Provider::start_on(Some(port));
    let started = Instant::now();
    let after = loop {
        let current = setup.credentials("billing-credentials").await;
        if current.get("client_id") != before.get("client_id") {
            break current;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the client was never registered again\n{}\n{}",
            setup.embedded.server.log(),
            provider.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (code, body) = after.token();
    assert_eq!(code, 200, "{body}");
    assert_eq!(before.token().0, 401, "the forgotten client's secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keycloak_driver_creates_service_account_clients_and_recovers_from_wrong_admin_credentials()
 {
    let keycloak = std::sync::Arc::new(FakeKeycloak::new("s3cret"));
    let url = serve_keycloak(keycloak.clone()).await;
    let setup = Setup::serve(&url).await;
    // Wrong admin credentials first: Blocked until the Secret changes.
    setup
        .create(
            &setup.secrets(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kc-admin"},
                   "stringData": {"username": "admin", "password": "wrong"}}),
        )
        .await
        .unwrap();
    setup
        .provider(json!({"keycloak": {"url": url, "credentialsSecretRef": {"name": "kc-admin"}}}))
        .await;
    let blocked = setup
        .wait_for("IdentityProvider", "idp", "Blocked", "True")
        .await;
    assert_eq!(
        condition(&blocked, "Ready").unwrap()["reason"],
        "CredentialsRefused"
    );
    setup
        .secrets()
        .patch(
            "kc-admin",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"password": "s3cret"}})),
        )
        .await
        .unwrap();
    setup
        .wait_for("IdentityProvider", "idp", "Ready", "True")
        .await;
    let realm = setup.wait_for("Realm", "apps", "Ready", "True").await;
    assert!(keycloak.has_realm("apps"));
    assert_eq!(realm.data["status"]["issuer"], format!("{url}/realms/apps"));

    setup
        .create_client(
            "billing",
            json!({"realmRef": {"name": "apps"}, "audience": ["https://api.corbel.test"],
                   "tokenLifetimeSeconds": 120}),
        )
        .await
        .unwrap();
    setup.wait_for("Client", "billing", "Ready", "True").await;
    let credentials = setup.credentials("billing-credentials").await;
    assert_eq!(credentials.get("client_id"), "billing");
    assert_eq!(
        credentials.get("token_url"),
        format!("{url}/realms/apps/protocol/openid-connect/token")
    );
    let (code, body) = credentials.token();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["expires_in"], 120);
    let stored = &keycloak.clients("apps")["billing"];
    assert_eq!(stored["serviceAccountsEnabled"], true);
    assert_eq!(
        stored["protocolMappers"][0]["protocolMapper"],
        "oidc-audience-mapper"
    );

    // Deleted by hand: created again, and the Secret follows.
    keycloak.clear_clients("apps");
    let started = Instant::now();
    while credentials.token().0 == 200
        || setup.credentials("billing-credentials").await.token().0 != 200
    {
        assert!(
            started.elapsed() < WITHIN,
            "never recreated\n{}",
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Deleting the Client deletes it in Keycloak, and its Secret.
    let last = setup.credentials("billing-credentials").await;
    setup
        .api("Client")
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Client and its Secret going away", &setup, || async {
        setup
            .api("Client")
            .get_opt("billing")
            .await
            .unwrap()
            .is_none()
            && setup
                .secrets()
                .get_opt("billing-credentials")
                .await
                .unwrap()
                .is_none()
    })
    .await;
    assert!(keycloak.clients("apps").is_empty());
    let (code, body) = last.token();
    assert_eq!(
        (code, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}
