//! Data in, data out: each test builds [`Inputs`] and reads the Envoy configuration produced.

use serde_json::{Value, json};

use super::*;

fn gateway(extra: Value) -> Named<GatewaySpec> {
    let mut spec = json!({
        "listener": {"address": "127.0.0.1", "port": 10000},
        "allowLoopbackUpstreams": true,
        "issuers": [{"name": "corp", "issuer": "http://127.0.0.1:4000", "jwksUri": "http://127.0.0.1:4000/jwks", "audiences": ["api"]}],
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    Named::new("public", serde_json::from_value(spec).unwrap())
}

fn route(name: &str, spec: Value) -> Named<RouteSpec> {
    let mut base = json!({"gatewayRef": {"name": "public"}, "paths": [format!("/{name}")],
                          "upstreams": [{"url": "http://127.0.0.1:9000"}]});
    base.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    Named::new(name, serde_json::from_value(base).unwrap())
}

fn consumer(name: &str, client_id: &str) -> Named<ConsumerSpec> {
    Named::new(
        name,
        serde_json::from_value(json!({"gatewayRef": {"name": "public"}, "clientId": client_id}))
            .unwrap(),
    )
}

fn grant(consumer: &str, route: &str, limit: Option<Value>) -> Named<ConsumeRouteSpec> {
    let mut spec = json!({"consumerRef": {"name": consumer}, "routeRef": {"name": route}});
    if let Some(limit) = limit {
        spec["rateLimit"] = limit;
    }
    Named::new(
        &format!("{consumer}-{route}"),
        serde_json::from_value(spec).unwrap(),
    )
}

fn inputs(routes: Vec<Named<RouteSpec>>) -> Inputs {
    Inputs {
        namespace: "shop".into(),
        gateway: gateway(json!({})),
        routes,
        consumers: vec![],
        grants: vec![],
        rejected: BTreeMap::new(),
    }
}

fn find<'a>(t: &'a Translation, type_url: &str, name: &str) -> &'a Value {
    &t.resources
        .iter()
        .find(|r| r.type_url == type_url && r.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no {type_url} {name}: {:#?}",
                t.resources.iter().map(|r| &r.name).collect::<Vec<_>>()
            )
        })
        .resource
}

/// The Envoy route entries of a Route, from every virtual host.
fn entries(t: &Translation, route: &str) -> Vec<Value> {
    let config = find(t, ROUTE_CONFIGURATION, "shop.public");
    config["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|vh| vh["routes"].as_array().unwrap().clone())
        .filter(|r| r["name"] == format!("shop/{route}"))
        .collect()
}

#[test]
fn a_gateway_without_routes_is_a_listener_an_empty_route_configuration_and_the_jwks_cluster() {
    let t = translate(&inputs(vec![]));
    let listener = find(&t, LISTENER, "shop.public");
    assert_eq!(listener["address"]["socket_address"]["port_value"], 10000);
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["rds"]["route_config_name"], "shop.public");
    let filters: Vec<&str> = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            JWT_FILTER,
            RBAC_FILTER,
            RATELIMIT_FILTER,
            "envoy.filters.http.router"
        ]
    );
    let provider = &hcm["http_filters"][0]["typed_config"]["providers"]["corp"];
    assert_eq!(
        provider["remote_jwks"]["http_uri"]["cluster"],
        "shop.public.jwks.corp"
    );
    assert_eq!(provider["audiences"], json!(["api"]));
    assert_eq!(
        find(&t, CLUSTER, "shop.public.jwks.corp")["load_assignment"]["endpoints"][0]["lb_endpoints"]
            [0]["endpoint"]["address"]["socket_address"]["port_value"],
        4000
    );
    assert_eq!(
        find(&t, ROUTE_CONFIGURATION, "shop.public")["virtual_hosts"],
        json!([])
    );
}

#[test]
fn the_listener_does_not_change_when_routes_do() {
    let empty = translate(&inputs(vec![]));
    let full = translate(&inputs(vec![route(
        "orders",
        json!({"security": {"issuer": "corp"}, "traffic": {"rateLimit": {"perSecond": 2}}}),
    )]));
    assert_eq!(
        find(&empty, LISTENER, "shop.public"),
        find(&full, LISTENER, "shop.public")
    );
}

#[test]
fn a_secured_route_requires_the_issuer_and_admits_only_granted_consumers() {
    let mut input = inputs(vec![route(
        "orders",
        json!({"security": {"issuer": "corp", "scopes": ["orders:read"]}}),
    )]);
    input.consumers = vec![consumer("shop-app", "app-1"), consumer("other", "app-2")];
    input.grants = vec![grant("shop-app", "orders", None)];
    let t = translate(&input);
    let entry = &entries(&t, "orders")[0];
    assert_eq!(entry["match"], json!({"path_separated_prefix": "/orders"}));
    let per_filter = &entry["typed_per_filter_config"];
    assert_eq!(per_filter[JWT_FILTER]["requirement_name"], "corp");
    let rules = &per_filter[RBAC_FILTER]["rbac"]["rules"];
    assert_eq!(rules["action"], "ALLOW");
    let principal = &rules["policies"]["granted"]["principals"][0]["and_ids"]["ids"];
    let client = &principal[0]["sourced_metadata"]["metadata_matcher"];
    assert_eq!(client["filter"], JWT_FILTER);
    assert_eq!(
        client["path"],
        json!([{"key": "payload"}, {"key": "client_id"}])
    );
    assert_eq!(client["value"]["string_match"]["exact"], "app-1");
    let scope = &principal[1]["sourced_metadata"]["metadata_matcher"]["value"]["string_match"]["safe_regex"]
        ["regex"];
    assert_eq!(scope, "(^|.* )orders:read( .*|$)");
    assert_eq!(
        t.routes["orders"],
        RouteResult::Served {
            url: "http://127.0.0.1:10000/orders".into(),
            consumers: vec![AdmittedConsumer {
                name: "shop-app".into(),
                client_id: "app-1".into(),
                rate_limit: None
            }],
        }
    );
    assert_eq!(t.consumers, 1);
}

#[test]
fn a_secured_route_without_grants_denies_everyone() {
    let t = translate(&inputs(vec![route(
        "orders",
        json!({"security": {"issuer": "corp"}}),
    )]));
    let rules = &entries(&t, "orders")[0]["typed_per_filter_config"][RBAC_FILTER]["rbac"]["rules"];
    assert_eq!(rules, &json!({"action": "ALLOW", "policies": {}}));
}

#[test]
fn an_open_route_has_no_per_route_filters() {
    let t = translate(&inputs(vec![route("health", json!({}))]));
    let entry = &entries(&t, "health")[0];
    assert!(entry.get("typed_per_filter_config").is_none(), "{entry}");
    assert_eq!(entry["route"]["cluster"], "shop.public.route.health");
}

#[test]
fn ip_lists_become_rbac_on_the_direct_remote_address() {
    let t = translate(&inputs(vec![route(
        "admin",
        json!({"security": {"ipAllow": ["10.0.0.0/8"], "ipDeny": ["10.1.2.3"]}}),
    )]));
    let principal = &entries(&t, "admin")[0]["typed_per_filter_config"][RBAC_FILTER]["rbac"]["rules"]
        ["policies"]["granted"]["principals"][0];
    assert_eq!(
        principal,
        &json!({"and_ids": {"ids": [
            {"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}},
            {"not_id": {"direct_remote_ip": {"address_prefix": "10.1.2.3", "prefix_len": 32}}},
        ]}})
    );
}

#[test]
fn rate_limits_use_the_shortest_window_as_bucket_and_descriptors_for_the_rest_and_consumers() {
    let mut input = inputs(vec![route(
        "orders",
        json!({
            "security": {"issuer": "corp"},
            "traffic": {"rateLimit": {"perSecond": 5, "perMinute": 100}},
        }),
    )]);
    input.consumers = vec![consumer("shop-app", "app-1")];
    input.grants = vec![grant("shop-app", "orders", Some(json!({"perMinute": 10})))];
    let t = translate(&input);
    let entry = &entries(&t, "orders")[0];
    let config = &entry["typed_per_filter_config"][RATELIMIT_FILTER];
    assert_eq!(
        config["token_bucket"],
        json!({"max_tokens": 5, "tokens_per_fill": 5, "fill_interval": "1s"})
    );
    assert_eq!(config["filter_enforced"]["default_value"]["numerator"], 100);
    let descriptors = config["descriptors"].as_array().unwrap();
    assert_eq!(
        descriptors[0]["entries"],
        json!([{"key": "route_window", "value": "minute"}])
    );
    assert_eq!(
        descriptors[1]["entries"],
        json!([{"key": "client_id", "value": "app-1"}, {"key": "consumer_window", "value": "minute"}])
    );
    assert_eq!(descriptors[1]["token_bucket"]["max_tokens"], 10);
    let actions = entry["route"]["rate_limits"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[1]["actions"][0]["metadata"]["source"], "DYNAMIC");
}

#[test]
fn weighted_upstreams_get_a_cluster_each_and_failover_upstreams_priorities() {
    let t = translate(&inputs(vec![
        route(
            "split",
            json!({"upstreams": [{"url": "http://127.0.0.1:9001", "weight": 80}, {"url": "http://127.0.0.1:9002", "weight": 20}]}),
        ),
        route(
            "failover",
            json!({"upstreams": [{"url": "http://127.0.0.1:9001"}, {"url": "http://backup.shop:9002", "priority": 5}],
                                  "traffic": {"circuitBreaker": {"maxConnections": 100, "consecutiveErrors": 2}}}),
        ),
    ]));
    let split = &entries(&t, "split")[0]["route"]["weighted_clusters"]["clusters"];
    assert_eq!(
        split,
        &json!([{"name": "shop.public.route.split.0", "weight": 80}, {"name": "shop.public.route.split.1", "weight": 20}])
    );
    find(&t, CLUSTER, "shop.public.route.split.1");
    let failover = find(&t, CLUSTER, "shop.public.route.failover");
    let levels = failover["load_assignment"]["endpoints"].as_array().unwrap();
    assert_eq!(
        (levels[0]["priority"].clone(), levels[1]["priority"].clone()),
        (json!(0), json!(1)),
        "priorities are renumbered without gaps"
    );
    assert_eq!(failover["type"], "STRICT_DNS", "a host name needs DNS");
    assert_eq!(failover["outlier_detection"]["consecutive_5xx"], 2);
    assert_eq!(
        failover["circuit_breakers"]["thresholds"][0]["max_connections"],
        100
    );
    assert!(
        entries(&t, "failover")[0]["route"]["retry_policy"]["retry_on"]
            .as_str()
            .unwrap()
            .contains("connect-failure")
    );
}

#[test]
fn transformations_become_header_mutation_and_prefix_rewrite() {
    let t = translate(&inputs(vec![route(
        "orders",
        json!({
            "traffic": {"timeoutMs": 1500},
            "transformation": {"pathRewrite": "/v2/orders", "requestHeadersToAdd": {"x-team": "shop"},
                               "requestHeadersToRemove": ["x-debug"], "responseHeadersToAdd": {"x-served-by": "corbel"}},
        }),
    )]));
    let entry = &entries(&t, "orders")[0];
    assert_eq!(entry["route"]["prefix_rewrite"], "/v2/orders");
    assert_eq!(entry["route"]["timeout"], "1.500s");
    assert_eq!(
        entry["request_headers_to_add"][0]["header"],
        json!({"key": "x-team", "value": "shop"})
    );
    assert_eq!(entry["request_headers_to_remove"], json!(["x-debug"]));
    assert_eq!(
        entry["response_headers_to_add"][0]["header"]["value"],
        "corbel"
    );
}

#[test]
fn https_upstreams_get_tls_with_their_host_as_sni() {
    let t = translate(&inputs(vec![route(
        "pay",
        json!({"upstreams": [{"url": "https://pay.example.com"}]}),
    )]));
    let cluster = find(&t, CLUSTER, "shop.public.route.pay");
    assert_eq!(
        cluster["transport_socket"]["typed_config"]["sni"],
        "pay.example.com"
    );
    assert_eq!(
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            ["port_value"],
        443
    );
}

#[test]
fn longer_prefixes_match_first_within_a_host() {
    let t = translate(&inputs(vec![
        route("all", json!({"paths": ["/"]})),
        route("orders", json!({"paths": ["/orders"]})),
    ]));
    let vhost = &find(&t, ROUTE_CONFIGURATION, "shop.public")["virtual_hosts"][0];
    assert_eq!(vhost["domains"], json!(["*"]));
    let names: Vec<&str> = vhost["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop/orders", "shop/all"]);
}

#[test]
fn routes_that_cannot_be_served_are_blocked_with_the_reason_and_left_out() {
    let mut input = inputs(vec![
        route("first", json!({"paths": ["/orders"]})),
        route("second", json!({"paths": ["/orders/"]})),
        route("elsewhere", json!({"gatewayRef": {"name": "private"}})),
        route(
            "unknown-issuer",
            json!({"security": {"issuer": "partners"}}),
        ),
        route("not-our-host", json!({"hostnames": ["evil.example"]})),
        route("refused", json!({})),
    ]);
    input.routes[0].created = "2026-01-01T00:00:00Z".into();
    input.routes[1].created = "2026-01-02T00:00:00Z".into();
    input.gateway.spec.hostnames = vec![];
    input.routes[4].spec.hostnames = vec!["evil.example".into()];
    input.gateway.spec.hostnames = vec!["api.example".into()];
    input.rejected.insert(
        source("refused", 1),
        "Proto constraint validation failed".into(),
    );
    let t = translate(&input);
    let reason = |name: &str| match &t.routes[name] {
        RouteResult::Blocked { reason, message } => format!("{reason}: {message}"),
        served => panic!("{name} is served: {served:?}"),
    };
    assert!(
        reason("second").starts_with("PathConflict"),
        "{}",
        reason("second")
    );
    assert!(reason("second").contains("\"first\""));
    assert!(reason("elsewhere").starts_with("GatewayNotFound"));
    assert!(reason("unknown-issuer").contains("\"partners\" is not one of"));
    assert!(reason("not-our-host").starts_with("HostnameNotAllowed"));
    assert!(reason("refused").contains("Proto constraint validation failed"));
    assert!(matches!(t.routes["first"], RouteResult::Served { .. }));
    assert!(t.resources.iter().all(|r| !r.name.contains("second")));
}

#[test]
fn a_refusal_of_an_older_generation_does_not_block_the_route() {
    let mut input = inputs(vec![route("orders", json!({}))]);
    input.routes[0].generation = 2;
    input.rejected.insert(source("orders", 1), "bad".into());
    assert!(matches!(
        translate(&input).routes["orders"],
        RouteResult::Served { .. }
    ));
}

#[test]
fn loopback_upstreams_need_the_gateways_permission() {
    let mut input = inputs(vec![route("orders", json!({}))]);
    input.gateway.spec.allow_loopback_upstreams = false;
    assert!(
        matches!(&translate(&input).routes["orders"], RouteResult::Blocked { reason, .. } if reason == "LoopbackUpstream")
    );
}

#[test]
fn every_route_resource_names_its_source() {
    let t = translate(&inputs(vec![route("orders", json!({}))]));
    let cluster = t
        .resources
        .iter()
        .find(|r| r.name == "shop.public.route.orders")
        .unwrap();
    assert_eq!(cluster.sources, ["Route/orders@1"]);
    let config = t
        .resources
        .iter()
        .find(|r| r.type_url == ROUTE_CONFIGURATION)
        .unwrap();
    assert_eq!(config.sources, ["Route/orders@1"]);
}
