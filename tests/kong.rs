//! The gateway plugin's Kong driver (`plugins/gateway/src/kong.rs`, natively) against the faithful
//! fake of Kong's Admin API (`support/kong.rs`, written from the contract, since Kong cannot be
//! installed here), over real HTTP: what a Gateway's objects become in Kong, that a second sync
//! changes nothing it should not, that drift made by hand is corrected, that what is no longer
//! wanted is deleted in an order Kong accepts, and that an unreachable Kong is an error to retry.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use corbel_e2e::kong::FakeKong;
use gateway::api::{ConsumeRouteSpec, ConsumerSpec, GatewaySpec, RouteSpec};
use gateway::kong::{self, Admin, KongError};
use gateway::translate::{self, Inputs, Named};
use serde_json::{Value, json};

/// Kong's Admin API over ureq: what `wasi:http` is to the plugin.
struct Http {
    url: String,
    agent: ureq::Agent,
}

impl Http {
    fn new(url: &str) -> Http {
        Http {
            url: url.to_string(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into(),
        }
    }
}

impl Admin for Http {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        let sent = match body {
            Some(body) => self.agent.run(
                builder
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .unwrap(),
            ),
            None => self.agent.run(builder.body(()).unwrap()),
        };
        let mut response = sent.map_err(|e| e.to_string())?;
        let mut text = String::new();
        response
            .body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        Ok((
            response.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::Null),
        ))
    }
}

fn named<T: serde::de::DeserializeOwned>(name: &str, spec: Value) -> Named<T> {
    Named::new(name, serde_json::from_value(spec).unwrap())
}

fn inputs(routes: Vec<Named<RouteSpec>>) -> Inputs {
    let gateway: Named<GatewaySpec> = named(
        "public",
        json!({"driver": "kong", "listener": {"address": "0.0.0.0", "port": 8000},
               "issuers": [{"name": "corp", "issuer": "https://id.example", "jwksUri": "https://id.example/jwks"}],
               "kong": {"adminUrl": "http://kong:8001"}}),
    );
    let consumers: Vec<Named<ConsumerSpec>> = vec![
        named(
            "billing",
            json!({"gatewayRef": {"name": "public"}, "clientId": "billing-app"}),
        ),
        named(
            "audit",
            json!({"gatewayRef": {"name": "public"}, "clientId": "audit-app"}),
        ),
    ];
    let grants: Vec<Named<ConsumeRouteSpec>> = vec![named(
        "billing-orders",
        json!({"consumerRef": {"name": "billing"}, "routeRef": {"name": "orders"}, "rateLimit": {"perMinute": 60}}),
    )];
    Inputs {
        namespace: "shop".into(),
        gateway,
        routes,
        consumers,
        grants,
        rejected: BTreeMap::new(),
    }
}

fn orders() -> Named<RouteSpec> {
    named(
        "orders",
        json!({"gatewayRef": {"name": "public"}, "paths": ["/orders"],
               "upstreams": [{"url": "http://orders-a.shop:8080", "weight": 80}, {"url": "http://orders-b.shop:8080", "weight": 20}],
               "traffic": {"rateLimit": {"perSecond": 10, "perMinute": 300}, "timeoutMs": 5000, "retries": 2},
               "security": {"issuer": "corp", "ipDeny": ["10.9.0.0/16"]},
               "transformation": {"requestHeadersToAdd": {"x-api": "orders"}, "pathRewrite": "/v1/orders"}}),
    )
}

fn catalog() -> Named<RouteSpec> {
    named(
        "catalog",
        json!({"gatewayRef": {"name": "public"}, "paths": ["/catalog"], "upstreams": [{"url": "http://catalog.shop"}]}),
    )
}

fn sync(admin: &Http, inputs: &Inputs) -> Result<kong::Synced, KongError> {
    let results = translate::translate(inputs).routes;
    let keys = BTreeMap::from([("corp".to_string(), kong::rsa_pem("wQ", "AQAB").unwrap())]);
    kong::sync(
        admin,
        &kong::owner_tag("shop", "public"),
        &kong::desired(inputs, &results, &keys),
    )
}

fn by(entities: &[Value], field: &str, value: &str) -> Value {
    entities
        .iter()
        .find(|e| e[field] == value)
        .cloned()
        .unwrap_or_else(|| panic!("no {field}={value} in {entities:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_becomes_kong_entities_kept_in_sync_and_cleaned_up() {
    let fake = FakeKong::start(None).await;
    let url = fake.url.clone();
    let state = fake.state.clone();
    let entities = move |c: &str| state.lock().unwrap().entities(c);
    let world = inputs(vec![orders(), catalog()]);
    tokio::task::spawn_blocking(move || {
        let admin = Http::new(&url);
        let first = sync(&admin, &world).unwrap();
        assert_eq!(first.deleted, 0);

        let services = entities("services");
        let service = by(&services, "name", "shop.public.orders");
        assert_eq!(
            service["host"], "shop.public.orders",
            "the service points at its upstream"
        );
        assert_eq!(
            (
                service["retries"].as_i64(),
                service["read_timeout"].as_i64()
            ),
            (Some(2), Some(5000))
        );
        let route = by(&entities("routes"), "name", "shop.public.orders");
        assert_eq!(route["service"]["id"], service["id"]);
        assert_eq!(route["paths"], json!(["/orders"]));
        let targets = entities("targets");
        assert_eq!(by(&targets, "target", "orders-a.shop:8080")["weight"], 80);
        assert_eq!(by(&targets, "target", "orders-b.shop:8080")["weight"], 20);
        let plugins = entities("plugins");
        let names: Vec<&str> = plugins
            .iter()
            .filter(|p| p["route"]["id"] == route["id"])
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for expected in [
            "jwt",
            "acl",
            "rate-limiting",
            "ip-restriction",
            "request-transformer",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} on the route: {names:?}"
            );
        }
        assert_eq!(
            by(&plugins, "instance_name", "shop.public.orders.acl")["config"]["allow"],
            json!(["shop.public.orders"])
        );
        let consumers = entities("consumers");
        let billing = by(&consumers, "username", "shop.public.billing");
        assert_eq!(billing["custom_id"], "billing-app");
        let acl = by(&entities("acls"), "group", "shop.public.orders");
        assert_eq!(
            acl["consumer"]["id"], billing["id"],
            "only the granted consumer is in the route's group"
        );
        assert_eq!(entities("acls").len(), 1);
        let per_consumer = by(
            &plugins,
            "instance_name",
            "shop.public.orders.billing.rate-limiting",
        );
        assert_eq!(
            (
                per_consumer["consumer"]["id"].clone(),
                per_consumer["route"]["id"].clone()
            ),
            (billing["id"].clone(), route["id"].clone())
        );
        assert_eq!(
            by(&entities("jwts"), "key", "billing-app")["algorithm"],
            "RS256"
        );
        assert!(
            entities("services")
                .iter()
                .all(|s| s["tags"] == json!(["corbel", "corbel-gateway-shop.public"]))
        );

        // A second sync finds everything in place: same ids, nothing deleted.
        let again = sync(&admin, &world).unwrap();
        assert_eq!((again.upserted, again.deleted), (first.upserted, 0));
        assert_eq!(
            by(&entities("services"), "name", "shop.public.orders")["id"],
            service["id"]
        );

        // Drift: a field changed by hand is set back, an entity deleted by hand comes back.
        let (status, _) = admin
            .call(
                "PATCH",
                "/services/shop.public.orders",
                Some(&json!({"retries": 9})),
            )
            .unwrap();
        assert_eq!(status, 200);
        let (status, _) = admin
            .call("DELETE", "/plugins/shop.public.orders.rate-limiting", None)
            .unwrap();
        assert_eq!(status, 204);
        // Something Corbel does not own stays untouched.
        let (status, _) = admin
            .call(
                "PUT",
                "/services/hand-made",
                Some(&json!({"host": "legacy.internal"})),
            )
            .unwrap();
        assert_eq!(status, 200);
        sync(&admin, &world).unwrap();
        assert_eq!(
            by(&entities("services"), "name", "shop.public.orders")["retries"],
            2
        );
        by(
            &entities("plugins"),
            "instance_name",
            "shop.public.orders.rate-limiting",
        );

        // A Route gone: its plugins, route, service, targets and upstream go (children first, or
        // Kong refuses to delete the service); the other Route and the hand-made service stay.
        let fewer = inputs(vec![catalog()]);
        let cleaned = sync(&admin, &fewer).unwrap();
        assert!(cleaned.deleted >= 8, "{cleaned:?}");
        let names: Vec<Value> = entities("services")
            .iter()
            .map(|s| s["name"].clone())
            .collect();
        assert_eq!(names, [json!("shop.public.catalog"), json!("hand-made")]);
        assert!(
            entities("routes")
                .iter()
                .all(|r| r["name"] != "shop.public.orders")
        );
        assert!(entities("plugins").is_empty(), "{:#?}", entities("plugins"));
        assert!(entities("acls").is_empty(), "the grant's route is gone");
        assert!(
            entities("targets")
                .iter()
                .all(|t| t["target"] == "catalog.shop:80")
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_kong_is_an_error_to_retry_and_a_refusal_names_the_call() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = FakeKong::start(None).await;
    let url = fake.url.clone();
    tokio::task::spawn_blocking(move || {
        let error = sync(
            &Http::new(&format!("http://127.0.0.1:{port}")),
            &inputs(vec![catalog()]),
        )
        .unwrap_err();
        assert!(matches!(error, KongError::Unreachable(_)), "{error}");

        let admin = Http::new(&url);
        // A name Kong already holds for an entity Corbel does not own: Kong's 409, named.
        let (status, _) = admin
            .call(
                "PUT",
                "/consumers/hand-made",
                Some(&json!({"custom_id": "billing-app"})),
            )
            .unwrap();
        assert_eq!(status, 200);
        let error = sync(&admin, &inputs(vec![orders()])).unwrap_err();
        match error {
            KongError::Refused {
                status,
                message,
                path,
                ..
            } => {
                assert_eq!(status, 409);
                assert!(
                    message.contains("UNIQUE violation") && path.contains("/consumers/"),
                    "{message} {path}"
                );
            }
            other => panic!("{other}"),
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fake_keeps_kongs_contract() {
    let fake = FakeKong::start(None).await;
    let url = fake.url.clone();
    tokio::task::spawn_blocking(move || {
        let admin = Http::new(&url);
        let call = |m: &str, p: &str, b: Option<Value>| admin.call(m, p, b.as_ref()).unwrap();
        assert_eq!(
            call("GET", "/services/nope", None),
            (404, json!({"message": "Not found"}))
        );
        assert_eq!(
            call("DELETE", "/services/nope", None).0,
            204,
            "DELETE of nothing is 204"
        );
        let (status, body) = call("POST", "/services", Some(json!({"name": "s"})));
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(2)),
            "host is required: {body}"
        );
        let (status, service) = call(
            "POST",
            "/services",
            Some(json!({"name": "s", "host": "a.internal"})),
        );
        assert_eq!(
            (
                status,
                service["port"].as_i64(),
                service["retries"].as_i64()
            ),
            (201, Some(80), Some(5))
        );
        assert_eq!(
            call("POST", "/services", Some(json!({"name": "s", "host": "b"}))).0,
            409
        );
        assert_eq!(
            call("PUT", "/services/s", Some(json!({"host": "b.internal"}))).0,
            200,
            "PUT replaces: 200, never 201"
        );
        assert_eq!(
            call(
                "POST",
                "/services/s/routes",
                Some(json!({"name": "r", "paths": ["/"]}))
            )
            .0,
            201
        );
        let (status, body) = call("DELETE", "/services/s", None);
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(4)),
            "a service with routes: {body}"
        );
        let (status, body) = call(
            "POST",
            "/routes/r/plugins",
            Some(json!({"name": "openid-connect"})),
        );
        assert!(
            status == 400 && body["message"].as_str().unwrap().contains("not enabled"),
            "{body}"
        );
        assert_eq!(
            call(
                "POST",
                "/routes/r/plugins",
                Some(json!({"name": "acl", "config": {"allow": ["a"], "deny": ["b"]}}))
            )
            .0,
            400
        );
        assert_eq!(
            call(
                "POST",
                "/routes/r/plugins",
                Some(json!({"name": "rate-limiting", "config": {"second": 10, "minute": 5}}))
            )
            .0,
            400
        );
        assert_eq!(
            call(
                "POST",
                "/routes/r/plugins",
                Some(json!({"name": "rate-limiting", "config": {"second": 1}}))
            )
            .0,
            201
        );
        assert_eq!(
            call(
                "POST",
                "/routes/r/plugins",
                Some(json!({"name": "rate-limiting", "config": {"second": 2}}))
            )
            .0,
            409,
            "cache key"
        );
        assert_eq!(call("DELETE", "/routes/r", None).0, 204);
        assert_eq!(
            call("GET", "/plugins", None).1["data"],
            json!([]),
            "plugins cascade with their route"
        );
        for i in 0..5 {
            call(
                "PUT",
                &format!("/consumers/c{i}"),
                Some(json!({"tags": ["t"]})),
            );
        }
        let (_, page) = call("GET", "/consumers?size=2&tags=t", None);
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        let next = page["next"].as_str().unwrap().to_string();
        let (_, page) = call("GET", &next, None);
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        let (_, last) = call("GET", page["next"].as_str().unwrap(), None);
        assert_eq!(
            (last["data"].as_array().unwrap().len(), last["next"].clone()),
            (1, Value::Null)
        );
        assert_eq!(call("GET", "/consumers?size=5000", None).1["code"], 9);
        assert_eq!(call("GET", "/consumers?offset=garbage", None).1["code"], 7);
    })
    .await
    .unwrap();
}
