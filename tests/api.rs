//! API management end to end, with real parts only (issue 15): one `corbel serve` in embedded
//! mode with the identity, gateway and api controllers; the real npm `oidc-provider`, issuing
//! both the people's tokens the API authenticates (groups from a claim) and the Application's
//! client-credentials token; a real Envoy 1.40 configured only by Corbel's xDS, in front of an
//! upstream of its own. Everything is done through the API with the teams' own tokens, under
//! the rules of `deploy/examples/api-management/auth-rules.yaml` (harness: support/api.rs).
//!
//! Needs node with `tests/servers/oidc/node_modules` and Envoy (`cargo xtask test` installs both;
//! `ENVOY_BIN` overrides), the plugins (`cargo xtask plugins`) and the host
//! (`cargo build --release -p corbel`).

use corbel_e2e::api::{CONSUMER_NS, PROVIDER_NS, World, api, create, object};
use corbel_e2e::identity::Credentials;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use serde_json::json;

const API: &str = "api.corbel.dev";
const GATEWAY: &str = "gateway.corbel.dev";

/// The provider team's exposure of `/orders` with `strategy`, the consumer team's Application
/// `checkout`, and erin's subscription `checkout-orders`; returns the Application's token once
/// its Secret holds credentials.
async fn subscribe(world: &World, strategy: &str) -> String {
    subscribe_with(world, json!({"strategy": strategy})).await
}

/// As [`subscribe`], with the exposure's whole `approval` policy.
async fn subscribe_with(world: &World, approval: serde_json::Value) -> String {
    let alice = world.as_user("alice").await;
    let carol = world.as_user("carol").await;
    let erin = world.as_user("erin").await;
    create(
        &api(&alice, PROVIDER_NS, API, "ApiExposure"),
        object(
            API,
            "ApiExposure",
            "orders-api",
            json!({
                "basePath": "/orders", "gatewayRef": {"name": "public"},
                "upstreams": [{"url": world.upstream.url}],
                "security": {"issuer": "oidc"}, "approval": approval,
            }),
        ),
    )
    .await
    .expect("the provider team exposes its API in its namespace");
    create(
        &api(&carol, CONSUMER_NS, API, "Application"),
        object(API, "Application", "checkout", json!({"scopes": ["api"]})),
    )
    .await
    .expect("the consumer team creates its Application in its namespace");
    // erin is in both teams: she may subscribe shop's Application, and may decide for orders.
    create(
        &api(&erin, PROVIDER_NS, API, "ApiSubscription"),
        object(API, "ApiSubscription", "checkout-orders", json!({
            "basePath": "/orders", "applicationRef": {"namespace": CONSUMER_NS, "name": "checkout"},
        })),
    )
    .await
    .expect("a member of the Application's team subscribes it");

    let application = world
        .until(
            &api(&carol, CONSUMER_NS, API, "Application"),
            "checkout",
            "Ready",
            |o| ready(o) == Some("True"),
        )
        .await
        .unwrap();
    let secret = application.data["status"]["secretName"].as_str().unwrap();
    let secret = api(&carol, CONSUMER_NS, "", "Secret")
        .get(secret)
        .await
        .unwrap();
    let (code, body) = Credentials::of(&secret).token();
    assert_eq!(code, 200, "{body}\n{}", world.provider.log());
    body["access_token"].as_str().unwrap().to_owned()
}

fn ready(object: Option<&DynamicObject>) -> Option<&str> {
    object?.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["status"]
        .as_str()
}

fn ready_message(object: Option<&DynamicObject>) -> &str {
    object
        .and_then(|o| o.data["status"]["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
}

fn state(object: Option<&DynamicObject>) -> Option<&str> {
    object?.data["status"]["state"].as_str()
}

/// `user` appends a decision to Approval `checkout-orders`, as `kubectl edit` would: the
/// refusal's message, if refused.
async fn decide(world: &World, user: &str, decision: &str, reason: &str) -> Result<(), String> {
    let client = world.as_user(user).await;
    let approvals = api(&client, PROVIDER_NS, API, "Approval");
    let mut approval = approvals
        .get("checkout-orders")
        .await
        .map_err(|e| e.to_string())?;
    approval.data["spec"]["decisions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"decision": decision, "reason": reason}));
    approvals
        .replace("checkout-orders", &PostParams::default(), &approval)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(status) => format!("{} {}", status.code, status.message),
            other => other.to_string(),
        })
}

async fn wait_state(world: &World, wanted: &'static str) -> DynamicObject {
    let admin = world.admin(PROVIDER_NS, API, "ApiSubscription");
    world
        .until(
            &admin,
            "checkout-orders",
            &format!("in state {wanted}"),
            move |o| state(o) == Some(wanted),
        )
        .await
        .unwrap()
}

/// The api controller looks again only every 600 s here, so everything below follows from
/// watches: the Application's client id, and its deletion, reach the subscription in the other
/// team's namespace through the watch across namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_passes_the_gateway_once_granted_and_no_longer_once_suspended() {
    let world = World::start_with(
        "resyncSeconds: 1, blockedRetrySeconds: 1",
        "resyncSeconds: 600, blockedRetrySeconds: 1",
    )
    .await;
    let token = subscribe(&world, "Simple").await;

    // Not approved yet: Envoy knows the Route and the token, and refuses the call.
    // (Until the Application has its client, the subscription says it waits for that.)
    world
        .until(
            &world.admin(PROVIDER_NS, API, "ApiSubscription"),
            "checkout-orders",
            "waiting for approval",
            |o| {
                state(o) == Some("Pending")
                    && ready_message(o) == "waiting for approval by team orders"
            },
        )
        .await;
    world.until_envoy_answers("/orders/42", &token, 403).await;

    // The requester may not approve their own subscription: refused at admission, with why.
    let refused = decide(&world, "erin", "Grant", "mine").await.unwrap_err();
    assert!(
        refused.contains("erin requested this subscription and cannot approve it"),
        "{refused}"
    );

    // A provider team member grants: the same token passes.
    decide(&world, "alice", "Grant", "checkout may read orders")
        .await
        .unwrap();
    let took = world.until_envoy_answers("/orders/42", &token, 200).await;
    eprintln!("grant to 200 through Envoy: {took:?}");
    let approval = world
        .admin(PROVIDER_NS, API, "Approval")
        .get("checkout-orders")
        .await
        .unwrap();
    let decision = &approval.data["spec"]["decisions"][0];
    assert_eq!(
        decision["by"], "alice",
        "who decided comes from the request's user"
    );
    assert!(
        decision["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{decision}"
    );
    assert_eq!(approval.data["spec"]["requester"], "erin");

    // The teams cannot read each other's things.
    let alice = world.as_user("alice").await;
    let carol = world.as_user("carol").await;
    for (target, what) in [
        (
            api(&alice, CONSUMER_NS, API, "Application"),
            "shop's Applications",
        ),
        (api(&alice, CONSUMER_NS, "", "Secret"), "shop's Secrets"),
        (
            api(&carol, PROVIDER_NS, API, "Approval"),
            "orders' decisions",
        ),
    ] {
        match target.list(&Default::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{what}: {status:?}"),
            other => panic!(
                "reading {what} as the other team: {:?}",
                other.map(|l| l.items.len())
            ),
        }
    }
    // Each reads its own.
    api(&carol, CONSUMER_NS, API, "Application")
        .list(&Default::default())
        .await
        .unwrap();
    api(&alice, PROVIDER_NS, API, "Approval")
        .list(&Default::default())
        .await
        .unwrap();

    // Suspending brings the refusal back.
    decide(&world, "bob", "Suspend", "audit").await.unwrap();
    let took = world.until_envoy_answers("/orders/42", &token, 403).await;
    eprintln!("suspend to 403 through Envoy: {took:?}");
    wait_state(&world, "Suspended").await;

    // Granted again, then the consumer team deletes its Application: its Client, Secret,
    // Consumer and ConsumeRoute go, and the token no longer passes.
    decide(&world, "alice", "Grant", "audit done")
        .await
        .unwrap();
    world.until_envoy_answers("/orders/42", &token, 200).await;
    let consume_routes = world.admin(PROVIDER_NS, GATEWAY, "ConsumeRoute");
    assert!(
        consume_routes
            .get_opt("checkout-orders")
            .await
            .unwrap()
            .is_some()
    );
    let secret_name = world
        .admin(CONSUMER_NS, API, "Application")
        .get("checkout")
        .await
        .unwrap()
        .data["status"]["secretName"]
        .as_str()
        .unwrap()
        .to_owned();
    api(&carol, CONSUMER_NS, API, "Application")
        .delete("checkout", &DeleteParams::default())
        .await
        .unwrap();
    let gone = |o: Option<&DynamicObject>| o.is_none();
    world
        .until(
            &world.admin(CONSUMER_NS, "identity.corbel.dev", "Client"),
            "checkout",
            "deleted",
            gone,
        )
        .await;
    world
        .until(
            &world.admin(CONSUMER_NS, "", "Secret"),
            &secret_name,
            "deleted",
            gone,
        )
        .await;
    world
        .until(
            &world.admin(PROVIDER_NS, GATEWAY, "Consumer"),
            "checkout-orders",
            "deleted",
            gone,
        )
        .await;
    world
        .until(&consume_routes, "checkout-orders", "deleted", gone)
        .await;
    // The subscription says what it waits for.
    world
        .until(
            &world.admin(PROVIDER_NS, API, "ApiSubscription"),
            "checkout-orders",
            "waiting for its Application",
            |o| ready_message(o).contains("waiting for Application shop/checkout"),
        )
        .await;
    world.until_envoy_answers("/orders/42", &token, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_needs_two_different_people() {
    let world = World::start().await;
    let token = subscribe(&world, "FourEyes").await;
    wait_state(&world, "Pending").await;
    world.until_envoy_answers("/orders/7", &token, 403).await;

    decide(&world, "alice", "Grant", "looks fine")
        .await
        .unwrap();
    wait_state(&world, "Pending").await;
    assert_eq!(
        world.through.get("/orders/7", Some(&token)).await.0,
        403,
        "one decision is not enough"
    );

    let refused = decide(&world, "alice", "Grant", "again").await.unwrap_err();
    assert!(refused.contains("alice already decided Grant"), "{refused}");

    decide(&world, "bob", "Grant", "agreed").await.unwrap();
    world.until_envoy_answers("/orders/7", &token, 200).await;
    wait_state(&world, "Granted").await;
    let refused = decide(&world, "bob", "Grant", "once more")
        .await
        .unwrap_err();
    assert!(refused.contains("bob already decided Grant"), "{refused}");
}

/// A grant with a validity expires by itself: the gateway refuses the token again once it has
/// passed, without anyone acting, and a new Grant by the same person renews it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_expires_after_its_validity_and_a_new_grant_renews_it() {
    let world = World::start().await;
    let token = subscribe_with(
        &world,
        json!({"strategy": "Simple", "grantValidSeconds": 3}),
    )
    .await;
    wait_state(&world, "Pending").await;

    decide(&world, "alice", "Grant", "for a trial")
        .await
        .unwrap();
    world.until_envoy_answers("/orders/7", &token, 200).await;
    let expired = wait_state(&world, "Expired").await;
    assert!(
        ready_message(Some(&expired)).contains("expired at"),
        "the subscription says why: {}",
        ready_message(Some(&expired))
    );
    world.until_envoy_answers("/orders/7", &token, 403).await;

    decide(&world, "alice", "Grant", "renewed").await.unwrap();
    world.until_envoy_answers("/orders/7", &token, 200).await;
}
