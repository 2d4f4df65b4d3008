//! The translation from the gateway kinds to Envoy configuration: data in ([`Inputs`]: one
//! Gateway, its Routes, Consumers and ConsumeRoutes), data out ([`Translation`]: xDS resources as
//! proto-JSON, and what became of each Route). Nothing here calls the host, so every rule is a
//! unit test.
//!
//! The shape follows what Envoy Gateway does, and what was verified against Envoy 1.40 (see
//! `../shared/design/TEST-SERVERS.md`):
//! - one Listener per Gateway whose HTTP connection manager reads its routes over RDS (through
//!   ADS) and has a fixed filter chain `jwt_authn → rbac → local_ratelimit → router`. The chain
//!   never changes with Routes (a changed listener drains its connections); the filters do nothing
//!   at listener level and are switched on per route with `typed_per_filter_config`.
//! - `jwt_authn` has one provider per trusted issuer, with remote JWKS and the payload in dynamic
//!   metadata; a Route with `security.issuer` requires that provider by `requirement_name`.
//! - `rbac` per Route allows the `client_id` claims of the Consumers holding a ConsumeRoute (read
//!   from that metadata, so a client cannot forge them with a header), the scopes, and the IP lists.
//! - `local_ratelimit` per Route: the Route's shortest window is the token bucket, longer windows
//!   and per-consumer limits are descriptors filled by the route's `rate_limits` actions.
//! - one Cluster per Route (or per upstream when weighted), endpoints at their priority, outlier
//!   detection so a failing primary is ejected and traffic fails over.
//!
//! Every resource carries the Routes it holds (`sources`, name and generation), so a
//! configuration Envoy refuses can be traced back to the Routes that changed since the last one
//! it accepted, and the Route whose own `XdsSnapshot` holds it (`route`: its clusters; the
//! listener and the JWKS clusters go in the Gateway's head object, the route table in one of its
//! own). Every object
//! stays under [`MAX_OBJECT_BYTES`]: the route table is one resource (one listener, one HTTP
//! connection manager), so Routes are taken oldest first and one whose entries would take the
//! table past [`ROUTE_TABLE_BUDGET`] is blocked with [`ROUTE_TABLE_FULL`].

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::admission::{self, Endpoint};
use crate::api::{
    AdmittedConsumer, ConsumeRouteSpec, ConsumerSpec, GatewaySpec, RateLimit, RouteSpec,
};

pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_CONFIGURATION: &str =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
const RBAC_FILTER: &str = "envoy.filters.http.rbac";
const RATELIMIT_FILTER: &str = "envoy.filters.http.local_ratelimit";
/// Where `jwt_authn` puts the verified payload, under its filter name.
const PAYLOAD: &str = "payload";

/// A Consumer and its grant on one Route.
pub type Grant<'a> = (&'a Named<ConsumerSpec>, &'a ConsumeRouteSpec);

/// An upstream as checked: `(priority, endpoint, weight)`.
pub type Upstream = (u32, Endpoint, Option<u32>);

/// One named object of the Gateway's namespace.
#[derive(Debug, Clone)]
pub struct Named<T> {
    pub name: String,
    /// Orders Routes claiming the same host and path: the older one keeps it.
    pub created: String,
    pub generation: i64,
    pub spec: T,
}

impl<T> Named<T> {
    pub fn new(name: &str, spec: T) -> Named<T> {
        Named {
            name: name.into(),
            created: String::new(),
            generation: 1,
            spec,
        }
    }
}

/// Everything one Gateway's configuration is made of.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub namespace: String,
    pub gateway: Named<GatewaySpec>,
    pub routes: Vec<Named<RouteSpec>>,
    pub consumers: Vec<Named<ConsumerSpec>>,
    pub grants: Vec<Named<ConsumeRouteSpec>>,
    /// Routes (by [`source`]) left out because Envoy refused a configuration that held them,
    /// with Envoy's message.
    pub rejected: BTreeMap<String, String>,
}

/// One xDS resource, as proto-JSON with its `@type`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub type_url: &'static str,
    pub name: String,
    /// The Routes this resource holds ([`source`]); empty for the Gateway's own.
    pub sources: Vec<String>,
    pub resource: Value,
    /// The Route whose own `XdsSnapshot` holds it (its clusters); `None`: the Gateway's (the
    /// listener and the issuers' JWKS clusters in its head, the route table in its own object).
    pub route: Option<String>,
}

/// The largest `XdsSnapshot` the plugin writes, in bytes of JSON: the host's
/// `xds::MAX_OBJECT_BYTES`, well under etcd's default request limit of 1.5 MiB.
pub const MAX_OBJECT_BYTES: usize = 512 * 1024;

/// The most the route table's entries (and their sources) may take in its object (the rest of
/// [`MAX_OBJECT_BYTES`] is for its virtual hosts and metadata): a Route that would take it past
/// this is `RouteTableFull`, the older Routes keep being served.
pub const ROUTE_TABLE_BUDGET: usize = MAX_OBJECT_BYTES - 16 * 1024;

/// The most one Route's clusters may take (its object's metadata gets the rest).
pub const ROUTE_OBJECT_BUDGET: usize = MAX_OBJECT_BYTES - 8 * 1024;

/// The reason of a Route left out because the Gateway's route table is full.
pub const ROUTE_TABLE_FULL: &str = "RouteTableFull";

/// Bytes of a value as compact JSON, without building the text.
pub fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("counting never fails");
    count.0
}

/// What became of one Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteResult {
    Served {
        url: String,
        consumers: Vec<AdmittedConsumer>,
    },
    /// Not served, and why; `reason` is one CamelCase word.
    Blocked { reason: String, message: String },
}

#[derive(Debug, Clone)]
pub struct Translation {
    pub resources: Vec<Resource>,
    pub routes: BTreeMap<String, RouteResult>,
    pub consumers: usize,
}

/// How a Route's generation is named in a resource's `source`: a refusal then sticks to the
/// generation Envoy saw, and a changed Route is tried again.
pub fn source(route: &str, generation: i64) -> String {
    format!("Route/{route}@{generation}")
}

fn prefix(inputs: &Inputs) -> String {
    format!("{}.{}", inputs.namespace, inputs.gateway.name)
}

/// The Listener's and RouteConfiguration's name for a Gateway, also what a bootstrap names.
pub fn listener_name(namespace: &str, gateway: &str) -> String {
    format!("{namespace}.{gateway}")
}

/// Translates one Gateway. Routes that cannot be served are `Blocked` and left out; the others
/// are served.
pub fn translate(inputs: &Inputs) -> Translation {
    let gateway = &inputs.gateway.spec;
    let mut results = BTreeMap::new();
    let mut routes: Vec<&Named<RouteSpec>> = inputs.routes.iter().collect();
    routes.sort_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)));

    // host + path → the Route that claimed it first.
    let mut claimed: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut served = Vec::new();
    for route in routes {
        match check(inputs, route, &claimed) {
            Err((reason, message)) => {
                results.insert(
                    route.name.clone(),
                    RouteResult::Blocked {
                        reason: reason.into(),
                        message,
                    },
                );
            }
            Ok(endpoints) => {
                for key in claims(gateway, &route.spec) {
                    claimed.insert(key, route.name.clone());
                }
                served.push((route, endpoints));
            }
        }
    }

    let consumers: BTreeMap<&str, &Named<ConsumerSpec>> = inputs
        .consumers
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    // Each Route's grants, in their order: one pass, not one per Route.
    let mut grants_of: BTreeMap<&str, Vec<&Named<ConsumeRouteSpec>>> = BTreeMap::new();
    for grant in &inputs.grants {
        grants_of
            .entry(grant.spec.route_ref.name.as_str())
            .or_default()
            .push(grant);
    }
    let prefix = prefix(inputs);
    let mut resources = Vec::new();
    let mut clusters = Vec::new();
    let mut vhosts: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
    let mut admitted_consumers = BTreeSet::new();
    let mut served_sources = Vec::new();
    // Bytes of the route table's entries so far: one RouteConfiguration holds them all (one
    // listener, one HTTP connection manager), and it must fit in the head object.
    let mut table_bytes = 0;
    for (route, endpoints) in served {
        let grants: Vec<Grant<'_>> = grants_of
            .get(route.name.as_str())
            .into_iter()
            .flatten()
            .filter_map(|g| {
                consumers
                    .get(g.spec.consumer_ref.name.as_str())
                    .map(|c| (*c, &g.spec))
            })
            .filter(|(c, _)| c.spec.gateway_ref.name == inputs.gateway.name)
            .collect();
        let source = source(&route.name, route.generation);
        let route_clusters = route_clusters(&prefix, route, &endpoints);
        let cluster_names: Vec<&str> = route_clusters.iter().map(|(n, _)| n.as_str()).collect();
        let mut entries = Vec::new();
        for path in &route.spec.paths {
            let entry = route_entry(inputs, route, path, &cluster_names, &grants);
            for domain in domains(gateway, &route.spec) {
                entries.push((domain, path.len(), entry.clone()));
            }
        }
        let clusters_bytes: usize = route_clusters.iter().map(|(_, c)| json_len(c)).sum();
        let entries_bytes = entries
            .iter()
            .map(|(_, _, e)| json_len(e) + 1)
            .sum::<usize>()
            + source.len()
            + 3;
        let blocked = if clusters_bytes > ROUTE_OBJECT_BUDGET {
            Some((
                "TooLarge",
                format!(
                    "its clusters take {clusters_bytes} bytes, more than the {ROUTE_OBJECT_BUDGET} one XdsSnapshot may hold; use fewer upstreams"
                ),
            ))
        } else if table_bytes + entries_bytes > ROUTE_TABLE_BUDGET {
            Some((
                ROUTE_TABLE_FULL,
                format!(
                    "the route table of Gateway {:?} is full: with this Route's entries ({entries_bytes} bytes) it would take more than {ROUTE_TABLE_BUDGET} bytes, and it must fit in one XdsSnapshot of at most {MAX_OBJECT_BYTES} (etcd's request limit is 1.5 MiB); older Routes keep being served; serve this one from another Gateway",
                    inputs.gateway.name
                ),
            ))
        } else {
            None
        };
        if let Some((reason, message)) = blocked {
            results.insert(
                route.name.clone(),
                RouteResult::Blocked {
                    reason: reason.into(),
                    message,
                },
            );
            continue;
        }
        table_bytes += entries_bytes;
        let admitted = admitted(&grants);
        admitted_consumers.extend(admitted.iter().map(|a| a.name.clone()));
        for (name, cluster) in route_clusters {
            clusters.push(Resource {
                type_url: CLUSTER,
                name,
                sources: vec![source.clone()],
                resource: cluster,
                route: Some(route.name.clone()),
            });
        }
        for (domain, length, entry) in entries {
            vhosts.entry(domain).or_default().push((length, entry));
        }
        served_sources.push(source);
        results.insert(
            route.name.clone(),
            RouteResult::Served {
                url: url(gateway, &route.spec),
                consumers: admitted,
            },
        );
    }

    let listener = listener_name(&inputs.namespace, &inputs.gateway.name);
    let virtual_hosts: Vec<Value> = vhosts
        .into_iter()
        .map(|(domain, mut entries)| {
            // Longest prefix first: Envoy takes the first match.
            entries.sort_by_key(|e| std::cmp::Reverse(e.0));
            json!({
                "name": domain,
                "domains": [domain],
                "routes": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
            })
        })
        .collect();
    resources.push(Resource {
        type_url: LISTENER,
        name: listener.clone(),
        sources: vec![],
        resource: listener_resource(inputs, &listener),
        route: None,
    });
    resources.push(Resource {
        type_url: ROUTE_CONFIGURATION,
        name: listener.clone(),
        sources: served_sources,
        resource: json!({
            "@type": ROUTE_CONFIGURATION,
            "name": listener,
            "virtual_hosts": virtual_hosts,
        }),
        route: None,
    });
    for issuer in &gateway.issuers {
        if let Ok(endpoint) = jwks_endpoint(&issuer.jwks_uri) {
            let name = jwks_cluster(&prefix, &issuer.name);
            let cluster = cluster(
                &name,
                &[(0, vec![endpoint.clone()])],
                endpoint.tls.then_some(&endpoint.host),
                None,
            );
            resources.push(Resource {
                type_url: CLUSTER,
                name,
                sources: vec![],
                resource: cluster,
                route: None,
            });
        }
    }
    resources.extend(clusters);
    Translation {
        resources,
        routes: results,
        consumers: admitted_consumers.len(),
    }
}

/// The Consumers a Route admits (those holding a grant on it), sorted.
pub fn admitted(grants: &[Grant<'_>]) -> Vec<AdmittedConsumer> {
    let mut admitted: Vec<AdmittedConsumer> = grants
        .iter()
        .map(|(c, g)| AdmittedConsumer {
            name: c.name.clone(),
            client_id: c.spec.client_id.clone(),
            rate_limit: g.rate_limit.clone(),
        })
        .collect();
    admitted.sort();
    admitted
}

/// Why a Route cannot be served, as `(reason, message)`; else its endpoints, in order.
fn check(
    inputs: &Inputs,
    route: &Named<RouteSpec>,
    claimed: &BTreeMap<(String, String), String>,
) -> Result<Vec<Upstream>, (&'static str, String)> {
    let endpoints = check_own(&inputs.namespace, &inputs.gateway, &inputs.rejected, route)?;
    for key in claims(&inputs.gateway.spec, &route.spec) {
        if let Some(owner) = claimed.get(&key) {
            return Err((
                PATH_CONFLICT,
                format!(
                    "host {:?} path {:?} is already served by Route {owner:?}",
                    key.0, key.1
                ),
            ));
        }
    }
    Ok(endpoints)
}

/// The reason of a Route blocked because an older Route claims one of its hosts and paths.
pub const PATH_CONFLICT: &str = "PathConflict";

/// What can be decided of one Route from its Gateway alone, without the Gateway's other Routes
/// (so a Route's own reconcile reads one object): why it cannot be served, as `(reason,
/// message)`, else its endpoints, in order. Path conflicts are [`translate`]'s to find.
/// `rejected`: as [`Inputs::rejected`].
pub fn check_own(
    namespace: &str,
    gateway_object: &Named<GatewaySpec>,
    rejected: &BTreeMap<String, String>,
    route: &Named<RouteSpec>,
) -> Result<Vec<Upstream>, (&'static str, String)> {
    let gateway = &gateway_object.spec;
    if route.spec.gateway_ref.name != gateway_object.name {
        return Err((
            "GatewayNotFound",
            format!(
                "Gateway {:?} does not exist in namespace {namespace:?}",
                route.spec.gateway_ref.name
            ),
        ));
    }
    if let Some(message) = rejected.get(&source(&route.name, route.generation)) {
        return Err((
            "RejectedByEnvoy",
            format!(
                "Envoy refused the configuration holding this Route (generation {}): {message}",
                route.generation
            ),
        ));
    }
    admission::check_route(&route.spec).map_err(|m| ("Invalid", m))?;
    if !gateway.hostnames.is_empty()
        && let Some(host) = route
            .spec
            .hostnames
            .iter()
            .find(|h| !gateway.hostnames.contains(h))
    {
        return Err((
            "HostnameNotAllowed",
            format!(
                "hostname {host:?} is not among Gateway {:?}'s hostnames {:?}",
                gateway_object.name, gateway.hostnames
            ),
        ));
    }
    if let Some(security) = &route.spec.security
        && let Some(issuer) = &security.issuer
        && !gateway.issuers.iter().any(|i| &i.name == issuer)
    {
        let known: Vec<&str> = gateway.issuers.iter().map(|i| i.name.as_str()).collect();
        return Err((
            "IssuerNotFound",
            format!(
                "security.issuer {issuer:?} is not one of Gateway {:?}'s issuers {known:?}",
                gateway_object.name
            ),
        ));
    }
    let mut endpoints = Vec::new();
    for upstream in &route.spec.upstreams {
        let endpoint = admission::parse_upstream(&upstream.url).map_err(|m| ("Invalid", m))?;
        if endpoint.is_loopback() && !gateway.allow_loopback_upstreams {
            return Err((
                "LoopbackUpstream",
                format!(
                    "upstream {} is on loopback, which reaches the gateway's own host; set allowLoopbackUpstreams on Gateway {:?} if that is meant",
                    upstream.url, gateway_object.name
                ),
            ));
        }
        endpoints.push((upstream.priority, endpoint, upstream.weight));
    }
    Ok(endpoints)
}

fn domains(gateway: &GatewaySpec, route: &RouteSpec) -> Vec<String> {
    if !route.hostnames.is_empty() {
        route.hostnames.clone()
    } else if !gateway.hostnames.is_empty() {
        gateway.hostnames.clone()
    } else {
        vec!["*".into()]
    }
}

fn claims(gateway: &GatewaySpec, route: &RouteSpec) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for domain in domains(gateway, route) {
        for path in &route.paths {
            keys.push((domain.clone(), path.trim_end_matches('/').to_string()));
        }
    }
    keys
}

/// Where a Route is served.
pub fn url(gateway: &GatewaySpec, route: &RouteSpec) -> String {
    let host = domains(gateway, route)
        .into_iter()
        .next()
        .filter(|d| d != "*" && !d.starts_with("*."))
        .unwrap_or_else(|| gateway.listener.address.clone());
    format!("http://{host}:{}{}", gateway.listener.port, route.paths[0])
}

fn jwks_endpoint(uri: &str) -> Result<Endpoint, String> {
    let url = url::Url::parse(uri).map_err(|e| e.to_string())?;
    Ok(Endpoint {
        host: url
            .host_str()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string(),
        port: url.port_or_known_default().unwrap_or(443),
        tls: url.scheme() == "https",
    })
}

fn jwks_cluster(prefix: &str, issuer: &str) -> String {
    format!("{prefix}.jwks.{issuer}")
}

fn listener_resource(inputs: &Inputs, name: &str) -> Value {
    let gateway = &inputs.gateway.spec;
    let prefix = prefix(inputs);
    let mut filters = Vec::new();
    if !gateway.issuers.is_empty() {
        let providers: serde_json::Map<String, Value> = gateway
            .issuers
            .iter()
            .map(|issuer| {
                let mut provider = json!({
                    "issuer": issuer.issuer,
                    "remote_jwks": {
                        "http_uri": {"uri": issuer.jwks_uri, "cluster": jwks_cluster(&prefix, &issuer.name), "timeout": "5s"},
                        "cache_duration": "300s",
                    },
                    "payload_in_metadata": PAYLOAD,
                });
                if !issuer.audiences.is_empty() {
                    provider["audiences"] = json!(issuer.audiences);
                }
                (issuer.name.clone(), provider)
            })
            .collect();
        let requirements: serde_json::Map<String, Value> = gateway
            .issuers
            .iter()
            .map(|i| (i.name.clone(), json!({"provider_name": i.name})))
            .collect();
        filters.push(json!({
            "name": JWT_FILTER,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": providers,
                "requirement_map": requirements,
            },
        }));
    }
    // Without rules RBAC enforces nothing; without a token bucket and with filter_enabled at 0 %
    // local_ratelimit limits nothing. Routes switch both on.
    filters.push(json!({
        "name": RBAC_FILTER,
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"},
    }));
    filters.push(json!({
        "name": RATELIMIT_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "corbel_ratelimit",
        },
    }));
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    json!({
        "@type": LISTENER,
        "name": name,
        "address": {"socket_address": {"address": gateway.listener.address, "port_value": gateway.listener.port}},
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "rds": {
                        "route_config_name": name,
                        "config_source": {"ads": {}, "resource_api_version": "V3"},
                    },
                    "http_filters": filters,
                },
            }],
        }],
    })
}

/// `(name, Cluster)`: one per upstream when weighted (a weighted route splits between
/// clusters), else one holding every upstream at its priority.
fn route_clusters(
    prefix: &str,
    route: &Named<RouteSpec>,
    endpoints: &[Upstream],
) -> Vec<(String, Value)> {
    let breaker = route
        .spec
        .traffic
        .as_ref()
        .and_then(|t| t.circuit_breaker.as_ref());
    let base = format!("{prefix}.route.{}", route.name);
    let tls_host = |e: &Endpoint| e.tls.then_some(e.host.clone());
    if endpoints.iter().any(|(_, _, w)| w.is_some()) {
        endpoints
            .iter()
            .enumerate()
            .map(|(i, (_, e, _))| {
                let name = format!("{base}.{i}");
                let c = cluster(
                    &name,
                    &[(0, vec![e.clone()])],
                    tls_host(e).as_ref(),
                    breaker,
                );
                (name, c)
            })
            .collect()
    } else {
        let mut by_priority: BTreeMap<u32, Vec<Endpoint>> = BTreeMap::new();
        for (priority, e, _) in endpoints {
            by_priority.entry(*priority).or_default().push(e.clone());
        }
        let levels: Vec<(u32, Vec<Endpoint>)> = by_priority.into_iter().collect();
        // One TLS setting per cluster: the first upstream's.
        let sni = endpoints.first().and_then(|(_, e, _)| tls_host(e));
        vec![(base.clone(), cluster(&base, &levels, sni.as_ref(), breaker))]
    }
}

fn cluster(
    name: &str,
    levels: &[(u32, Vec<Endpoint>)],
    sni: Option<&String>,
    breaker: Option<&crate::api::CircuitBreaker>,
) -> Value {
    // Envoy wants priorities 0..n without gaps: renumber in order.
    let endpoints: Vec<Value> = levels
        .iter()
        .enumerate()
        .map(|(priority, (_, endpoints))| {
            json!({
                "priority": priority,
                "lb_endpoints": endpoints.iter().map(|e| json!({
                    "endpoint": {"address": {"socket_address": {"address": e.host, "port_value": e.port}}}
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let all_ips = levels
        .iter()
        .flat_map(|(_, es)| es)
        .all(|e| e.host.parse::<std::net::IpAddr>().is_ok());
    let consecutive = breaker.and_then(|b| b.consecutive_errors).unwrap_or(3);
    let mut cluster = json!({
        "@type": CLUSTER,
        "name": name,
        "type": if all_ips { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "2s",
        "dns_lookup_family": "V4_PREFERRED",
        "load_assignment": {"cluster_name": name, "endpoints": endpoints},
        // A failing endpoint is ejected, which is what moves traffic to the next priority.
        "outlier_detection": {
            "consecutive_5xx": consecutive,
            "consecutive_gateway_failure": consecutive,
            "interval": "1s",
            "base_ejection_time": "10s",
            "max_ejection_percent": 100,
        },
    });
    if let Some(breaker) = breaker {
        let mut threshold = serde_json::Map::new();
        for (key, value) in [
            ("max_connections", breaker.max_connections),
            ("max_pending_requests", breaker.max_pending_requests),
            ("max_requests", breaker.max_requests),
        ] {
            if let Some(v) = value {
                threshold.insert(key.into(), json!(v));
            }
        }
        if !threshold.is_empty() {
            cluster["circuit_breakers"] = json!({"thresholds": [threshold]});
        }
    }
    if let Some(sni) = sni {
        cluster["transport_socket"] = json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": sni,
            },
        });
    }
    cluster
}

fn duration_ms(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

fn headers(map: &BTreeMap<String, String>) -> Vec<Value> {
    map.iter()
        .map(|(k, v)| json!({"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}))
        .collect()
}

fn route_entry(
    inputs: &Inputs,
    route: &Named<RouteSpec>,
    path: &str,
    clusters: &[&str],
    grants: &[Grant<'_>],
) -> Value {
    let spec = &route.spec;
    let matcher = if path == "/" || path.ends_with('/') {
        json!({"prefix": path})
    } else {
        // `/orders` matches `/orders` and `/orders/…`, never `/ordersx`.
        json!({"path_separated_prefix": path})
    };
    let mut action = if clusters.len() == 1 && !spec.upstreams.iter().any(|u| u.weight.is_some()) {
        json!({"cluster": clusters[0]})
    } else {
        json!({"weighted_clusters": {"clusters": clusters.iter().zip(&spec.upstreams).map(|(c, u)| json!({
            "name": c, "weight": u.weight.unwrap_or(0),
        })).collect::<Vec<_>>()}})
    };
    let traffic = spec.traffic.clone().unwrap_or_default();
    if let Some(ms) = traffic.timeout_ms {
        action["timeout"] = json!(duration_ms(ms));
    }
    let failover = spec.upstreams.iter().any(|u| u.priority != 0);
    if traffic.retries.is_some() || failover {
        action["retry_policy"] = json!({
            "retry_on": "connect-failure,reset,5xx",
            "num_retries": traffic.retries.unwrap_or(2),
        });
    }
    if let Some(rewrite) = spec
        .transformation
        .as_ref()
        .and_then(|t| t.path_rewrite.as_ref())
    {
        action["prefix_rewrite"] = json!(rewrite);
    }
    let mut per_filter = serde_json::Map::new();
    let security = spec.security.clone().unwrap_or_default();
    if let Some(issuer) = &security.issuer {
        per_filter.insert(
            JWT_FILTER.into(),
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
                "requirement_name": issuer,
            }),
        );
    }
    if let Some(rules) = rbac_rules(&security, grants) {
        per_filter.insert(
            RBAC_FILTER.into(),
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
                "rbac": {"rules": rules},
            }),
        );
    }
    if let Some((config, rate_limits)) = rate_limit(inputs, route, grants) {
        per_filter.insert(RATELIMIT_FILTER.into(), config);
        action["rate_limits"] = json!(rate_limits);
    }
    let mut entry = json!({
        "name": format!("{}/{}", inputs.namespace, route.name),
        "match": matcher,
        "route": action,
    });
    if !per_filter.is_empty() {
        entry["typed_per_filter_config"] = Value::Object(per_filter);
    }
    if let Some(t) = &spec.transformation {
        if !t.request_headers_to_add.is_empty() {
            entry["request_headers_to_add"] = json!(headers(&t.request_headers_to_add));
        }
        if !t.request_headers_to_remove.is_empty() {
            entry["request_headers_to_remove"] = json!(t.request_headers_to_remove);
        }
        if !t.response_headers_to_add.is_empty() {
            entry["response_headers_to_add"] = json!(headers(&t.response_headers_to_add));
        }
    }
    entry
}

fn metadata_matcher(claim: &str, value: Value) -> Value {
    json!({"sourced_metadata": {"metadata_matcher": {
        "filter": JWT_FILTER,
        "path": [{"key": PAYLOAD}, {"key": claim}],
        "value": {"string_match": value},
    }}})
}

fn ip_principals(entries: &[String]) -> Vec<Value> {
    entries
        .iter()
        .filter_map(|e| admission::parse_cidr(e).ok())
        .map(|(ip, len)| json!({"direct_remote_ip": {"address_prefix": ip.to_string(), "prefix_len": len}}))
        .collect()
}

/// `ids` as one principal: and/or of several, the one itself, or `None` for none.
fn combine(kind: &str, mut ids: Vec<Value>) -> Option<Value> {
    match ids.len() {
        0 => None,
        1 => ids.pop(),
        _ => Some(json!({kind: {"ids": ids}})),
    }
}

/// The IP conditions of an allow list and a deny list, as principals to AND.
fn ip_conditions(allow: &[String], deny: &[String]) -> Vec<Value> {
    let mut ids = Vec::new();
    if let Some(allowed) = combine("or_ids", ip_principals(allow)) {
        ids.push(allowed);
    }
    if let Some(denied) = combine("or_ids", ip_principals(deny)) {
        ids.push(json!({"not_id": denied}));
    }
    ids
}

/// Escapes a literal for RE2.
fn regex_literal(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = "\\.+*?()|[]{}^$".contains(c);
            escape.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// The Route's RBAC rules, or `None` when it restricts nothing. With an issuer, only granted
/// Consumers pass (none granted: the policy set is empty and ALLOW denies everyone).
fn rbac_rules(security: &crate::api::Security, grants: &[Grant<'_>]) -> Option<Value> {
    let mut conditions = ip_conditions(&security.ip_allow, &security.ip_deny);
    if security.issuer.is_some() {
        let consumers: Vec<Value> = grants
            .iter()
            .filter_map(|(consumer, _)| {
                let mut ids = vec![metadata_matcher(
                    "client_id",
                    json!({"exact": consumer.spec.client_id}),
                )];
                ids.extend(ip_conditions(
                    &consumer.spec.ip_allow,
                    &consumer.spec.ip_deny,
                ));
                combine("and_ids", ids)
            })
            .collect();
        let Some(consumers) = combine("or_ids", consumers) else {
            return Some(json!({"action": "ALLOW", "policies": {}}));
        };
        conditions.push(consumers);
        for scope in &security.scopes {
            // `scope` is one space-separated string in the token.
            let regex = format!("(^|.* ){}( .*|$)", regex_literal(scope));
            conditions.push(metadata_matcher(
                "scope",
                json!({"safe_regex": {"regex": regex}}),
            ));
        }
    }
    let principal = combine("and_ids", conditions)?;
    Some(json!({
        "action": "ALLOW",
        "policies": {"granted": {"permissions": [{"any": true}], "principals": [principal]}},
    }))
}

fn bucket(requests: u32, seconds: u64) -> Value {
    json!({"max_tokens": requests, "tokens_per_fill": requests, "fill_interval": format!("{seconds}s")})
}

/// The per-route `local_ratelimit` config and the route's `rate_limits` actions filling its
/// descriptors, or `None` when neither the Route nor a grant has a limit.
fn rate_limit(
    inputs: &Inputs,
    route: &Named<RouteSpec>,
    grants: &[Grant<'_>],
) -> Option<(Value, Vec<Value>)> {
    let route_windows = route
        .spec
        .traffic
        .as_ref()
        .and_then(|t| t.rate_limit.as_ref())
        .map(RateLimit::windows)
        .unwrap_or_default();
    let consumer_limits: Vec<(&str, Vec<crate::api::Window>)> = grants
        .iter()
        .filter_map(|(c, g)| {
            g.rate_limit
                .as_ref()
                .map(|l| (c.spec.client_id.as_str(), l.windows()))
        })
        .collect();
    if route_windows.is_empty() && consumer_limits.is_empty() {
        return None;
    }
    // The token bucket is mandatory once enabled; with only per-consumer limits it never runs out.
    let token_bucket = match route_windows.first() {
        Some((_, seconds, n)) => bucket(*n, *seconds),
        None => bucket(u32::MAX, 1),
    };
    let mut descriptors = Vec::new();
    let mut rate_limits = Vec::new();
    for (window, seconds, n) in route_windows.iter().skip(1) {
        descriptors.push(json!({"entries": [{"key": "route_window", "value": window}], "token_bucket": bucket(*n, *seconds)}));
        rate_limits.push(json!({"actions": [{"generic_key": {"descriptor_key": "route_window", "descriptor_value": window}}]}));
    }
    let mut consumer_windows = BTreeSet::new();
    for (client_id, windows) in &consumer_limits {
        for (window, seconds, n) in windows {
            consumer_windows.insert(*window);
            descriptors.push(json!({
                "entries": [{"key": "client_id", "value": client_id}, {"key": "consumer_window", "value": window}],
                "token_bucket": bucket(*n, *seconds),
            }));
        }
    }
    for window in consumer_windows {
        rate_limits.push(json!({"actions": [
            {"metadata": {
                "descriptor_key": "client_id",
                "metadata_key": {"key": JWT_FILTER, "path": [{"key": PAYLOAD}, {"key": "client_id"}]},
                "source": "DYNAMIC",
            }},
            {"generic_key": {"descriptor_key": "consumer_window", "descriptor_value": window}},
        ]}));
    }
    let always = |key: &str| json!({"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": key});
    let mut config = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": format!("{}_{}", inputs.namespace, route.name),
        "token_bucket": token_bucket,
        "filter_enabled": always("corbel_ratelimit_enabled"),
        "filter_enforced": always("corbel_ratelimit_enforced"),
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
    });
    if !descriptors.is_empty() {
        config["descriptors"] = json!(descriptors);
    }
    Some((config, rate_limits))
}

#[cfg(test)]
mod tests;
