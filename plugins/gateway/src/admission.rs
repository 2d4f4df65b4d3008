//! Admission for the gateway kinds, when the same component is bound as a validating policy:
//! what the schema cannot say, checked on the object alone so a mistake is refused at
//! `kubectl apply` rather than found later in a condition or, worse, in Envoy's NACK.
//!
//! Checks that need other objects — the referenced Gateway, Route or Consumer exists, an
//! upstream on loopback is allowed by its Gateway, no two Routes claim the same host and path —
//! cannot run here (an admission call has no capabilities: it must answer from the request, fast
//! and without side effects). The reconciler makes them ([`crate::translate`]) and sets `Blocked`
//! with the reason, which is also what catches objects created before their references.

use std::net::IpAddr;

use corbel_sdk::{Operation, Request, Verdict};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::api::{ConsumeRouteSpec, ConsumerSpec, GatewaySpec, RateLimit, RouteSpec, Upstream};

/// The answer for one admission request on any of the four kinds.
pub fn validate(request: &Request) -> Verdict {
    if matches!(request.operation, Operation::Delete) {
        return Verdict::allow();
    }
    let result = match request.kind.kind.as_str() {
        "Gateway" => spec::<GatewaySpec>(request).and_then(|s| check_gateway(&s)),
        "Route" => spec::<RouteSpec>(request).and_then(|s| check_route(&s)),
        "Consumer" => spec::<ConsumerSpec>(request).and_then(|s| check_consumer(&s)),
        "ConsumeRoute" => spec::<ConsumeRouteSpec>(request).and_then(|s| {
            check_consume_route(&s)?;
            check_route_label(request.object().unwrap_or(&Value::Null), &s)
        }),
        _ => Ok(()),
    };
    match result {
        Ok(()) => Verdict::allow(),
        Err(message) => Verdict::deny(message),
    }
}

fn spec<T: DeserializeOwned>(request: &Request) -> Result<T, String> {
    let object = request.object().ok_or("the request carries no object")?;
    serde_json::from_value(object.get("spec").cloned().unwrap_or_default())
        .map_err(|e| format!("spec is not a valid {}: {e}", request.kind.kind))
}

pub fn check_gateway(spec: &GatewaySpec) -> Result<(), String> {
    if spec.listener.port == 0 {
        return Err("spec.listener.port must be between 1 and 65535".into());
    }
    spec.listener.address.parse::<IpAddr>().map_err(|_| {
        format!(
            "spec.listener.address {:?} is not an IP address",
            spec.listener.address
        )
    })?;
    for (i, host) in spec.hostnames.iter().enumerate() {
        check_hostname(host).map_err(|e| format!("spec.hostnames[{i}]: {e}"))?;
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, issuer) in spec.issuers.iter().enumerate() {
        if !names.insert(issuer.name.as_str()) {
            return Err(format!(
                "spec.issuers[{i}].name {:?} is used twice",
                issuer.name
            ));
        }
        http_url(&issuer.jwks_uri).map_err(|e| format!("spec.issuers[{i}].jwksUri: {e}"))?;
        if issuer.issuer.is_empty() {
            return Err(format!("spec.issuers[{i}].issuer must not be empty"));
        }
    }
    match (spec.driver, &spec.kong) {
        (crate::api::Driver::Kong, None) => {
            Err("spec.kong.adminUrl is required with driver: kong".into())
        }
        (_, Some(kong)) => http_url(&kong.admin_url)
            .map(|_| ())
            .map_err(|e| format!("spec.kong.adminUrl: {e}")),
        _ => Ok(()),
    }
}

pub fn check_route(spec: &RouteSpec) -> Result<(), String> {
    if spec.paths.is_empty() {
        return Err("spec.paths needs at least one path prefix, such as /orders".into());
    }
    for (i, path) in spec.paths.iter().enumerate() {
        check_path(path).map_err(|e| format!("spec.paths[{i}]: {e}"))?;
    }
    for (i, host) in spec.hostnames.iter().enumerate() {
        check_hostname(host).map_err(|e| format!("spec.hostnames[{i}]: {e}"))?;
    }
    if spec.upstreams.is_empty() {
        return Err("spec.upstreams needs at least one upstream".into());
    }
    for (i, upstream) in spec.upstreams.iter().enumerate() {
        parse_upstream(&upstream.url).map_err(|e| format!("spec.upstreams[{i}].url: {e}"))?;
    }
    check_weights(&spec.upstreams)?;
    if let Some(traffic) = &spec.traffic {
        if let Some(limit) = &traffic.rate_limit {
            check_rate_limit(limit).map_err(|e| format!("spec.traffic.rateLimit: {e}"))?;
        }
        if traffic.timeout_ms == Some(0) {
            return Err("spec.traffic.timeoutMs must be at least 1".into());
        }
    }
    if let Some(security) = &spec.security {
        check_ips(&security.ip_allow, "spec.security.ipAllow")?;
        check_ips(&security.ip_deny, "spec.security.ipDeny")?;
        if !security.scopes.is_empty() && security.issuer.is_none() {
            return Err(
                "spec.security.scopes needs spec.security.issuer: scopes are read from its tokens"
                    .into(),
            );
        }
        if let Some(scope) = security
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.contains(' '))
        {
            return Err(format!("spec.security.scopes: {scope:?} is not one scope"));
        }
    }
    if let Some(rewrite) = spec
        .transformation
        .as_ref()
        .and_then(|t| t.path_rewrite.as_ref())
    {
        check_path(rewrite).map_err(|e| format!("spec.transformation.pathRewrite: {e}"))?;
    }
    Ok(())
}

pub fn check_consumer(spec: &ConsumerSpec) -> Result<(), String> {
    if spec.client_id.trim().is_empty() {
        return Err("spec.clientId must be the client_id of the consumer's tokens".into());
    }
    check_ips(&spec.ip_allow, "spec.ipAllow")?;
    check_ips(&spec.ip_deny, "spec.ipDeny")
}

pub fn check_consume_route(spec: &ConsumeRouteSpec) -> Result<(), String> {
    match &spec.rate_limit {
        Some(limit) => check_rate_limit(limit).map_err(|e| format!("spec.rateLimit: {e}")),
        None => Ok(()),
    }
}

/// The label [`crate::api::ROUTE_LABEL`], when a ConsumeRoute carries it, names its Route.
fn check_route_label(object: &Value, spec: &ConsumeRouteSpec) -> Result<(), String> {
    match object["metadata"]["labels"][crate::api::ROUTE_LABEL].as_str() {
        Some(route) if route != spec.route_ref.name => Err(format!(
            "label {}={route:?} must name spec.routeRef.name {:?} (or be left out)",
            crate::api::ROUTE_LABEL,
            spec.route_ref.name
        )),
        _ => Ok(()),
    }
}

/// Weights all-or-none, and not all zero (Envoy refuses a total weight of 0).
fn check_weights(upstreams: &[Upstream]) -> Result<(), String> {
    let weighted = upstreams.iter().filter(|u| u.weight.is_some()).count();
    if weighted != 0 && weighted != upstreams.len() {
        return Err(format!(
            "spec.upstreams: {weighted} of {} upstreams have a weight; give a weight to all of them or to none",
            upstreams.len()
        ));
    }
    if weighted != 0 && upstreams.iter().all(|u| u.weight == Some(0)) {
        return Err(
            "spec.upstreams: the weights add up to 0; at least one must be positive".into(),
        );
    }
    if weighted != 0 && upstreams.iter().any(|u| u.priority != 0) {
        return Err("spec.upstreams: weights split traffic and priorities order failover; use one or the other".into());
    }
    Ok(())
}

pub fn check_rate_limit(limit: &RateLimit) -> Result<(), String> {
    let windows = limit.windows();
    if windows.is_empty() {
        return Err("give perSecond, perMinute or perHour".into());
    }
    if let Some((name, _, _)) = windows.iter().find(|(_, _, n)| *n == 0) {
        return Err(format!("per{} must be at least 1", capitalize(name)));
    }
    for pair in windows.windows(2) {
        let ((short, _, a), (long, _, b)) = (pair[0], pair[1]);
        if a > b {
            return Err(format!(
                "per{} ({a}) is more than per{} ({b}): a shorter window cannot allow more than a longer one",
                capitalize(short),
                capitalize(long)
            ));
        }
    }
    Ok(())
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// A path prefix Envoy matches literally: absolute, without query, fragment, dot segments or
/// characters a client would have to encode.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with /"));
    }
    if path.contains(['?', '#']) {
        return Err(format!("{path:?} must not hold a query or fragment"));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!("{path:?} must not hold . or .. segments"));
    }
    if path.contains("//") {
        return Err(format!("{path:?} must not hold empty segments (//)"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(*c)))
    {
        return Err(format!(
            "{path:?} holds {c:?}, which is not allowed in a URL path unencoded"
        ));
    }
    Ok(())
}

/// A DNS name (RFC 1123 labels, lowercase), optionally with a leading `*.` wildcard.
pub fn check_hostname(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a host name: lowercase DNS labels separated by dots, optionally starting with *."
        ))
    }
}

fn check_ips(entries: &[String], at: &str) -> Result<(), String> {
    for (i, entry) in entries.iter().enumerate() {
        parse_cidr(entry).map_err(|e| format!("{at}[{i}]: {e}"))?;
    }
    Ok(())
}

/// `addr` or `addr/prefix` as `(address, prefix length)`.
pub fn parse_cidr(entry: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{entry:?} is not an IP address or CIDR range"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to {max}"))?,
        None => max,
    };
    Ok((ip, len))
}

/// An upstream as Envoy reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .trim_matches(['[', ']'])
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

fn http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    Ok(url)
}

/// `http(s)://host[:port]` with nothing else: a path would be silently ignored by a cluster
/// (rewrites are `transformation.pathRewrite`), and credentials do not belong in a spec.
pub fn parse_upstream(text: &str) -> Result<Endpoint, String> {
    let url = http_url(text)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not carry credentials"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?} must not have a path, query or fragment; use transformation.pathRewrite to change the path"
        ));
    }
    let host = url.host_str().unwrap_or_default();
    Ok(Endpoint {
        host: host.trim_matches(['[', ']']).to_string(),
        port: url.port_or_known_default().unwrap_or(80),
        tls: url.scheme() == "https",
    })
}

#[cfg(test)]
mod tests {
    use corbel_sdk::{Operation, Request};
    use serde_json::{Value, json};

    use super::*;

    fn create(kind: &str, spec: Value) -> Verdict {
        let object = json!({"apiVersion": "gateway.corbel.dev/v1alpha1", "kind": kind,
                            "metadata": {"name": "x", "namespace": "shop"}, "spec": spec});
        let request = Request::builder(Operation::Create, kind)
            .group_version("gateway.corbel.dev", "v1alpha1")
            .object(object)
            .build();
        validate(&request)
    }

    fn denial(verdict: &Verdict) -> String {
        assert!(!verdict.is_allowed(), "expected a denial, got {verdict:?}");
        verdict.message().unwrap_or_default().to_string()
    }

    fn route(extra: Value) -> Value {
        let mut spec = json!({"gatewayRef": {"name": "public"}, "paths": ["/orders"],
                              "upstreams": [{"url": "http://orders.shop:8080"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    }

    #[test]
    fn allows_a_complete_route() {
        let verdict = create(
            "Route",
            route(json!({
                "hostnames": ["api.example.com"],
                "upstreams": [{"url": "http://a.shop:8080", "weight": 80}, {"url": "https://b.shop", "weight": 20}],
                "traffic": {"rateLimit": {"perSecond": 5, "perMinute": 100}, "timeoutMs": 2000, "retries": 2},
                "security": {"issuer": "corp", "scopes": ["orders:read"], "ipAllow": ["10.0.0.0/8"]},
                "transformation": {"pathRewrite": "/v2/orders", "requestHeadersToAdd": {"x-team": "shop"}}
            })),
        );
        assert!(verdict.is_allowed(), "{verdict:?}");
    }

    #[test]
    fn denies_routes_with_invalid_parts() {
        for (extra, why) in [
            (json!({"paths": ["orders"]}), "must start with /"),
            (json!({"paths": ["/a/../b"]}), ". or .. segments"),
            (json!({"paths": ["/a?b=1"]}), "query"),
            (json!({"paths": []}), "at least one path"),
            (json!({"hostnames": ["API.example.com"]}), "not a host name"),
            (json!({"hostnames": ["-a.example"]}), "not a host name"),
            (
                json!({"upstreams": [{"url": "ftp://a.shop"}]}),
                "http:// or https://",
            ),
            (
                json!({"upstreams": [{"url": "http://a.shop/v1"}]}),
                "must not have a path",
            ),
            (json!({"upstreams": [{"url": "orders"}]}), "not a URL"),
            (
                json!({"upstreams": [{"url": "http://u:p@a.shop"}]}),
                "credentials",
            ),
            (
                json!({"upstreams": [{"url": "http://a.shop", "weight": 1}, {"url": "http://b.shop"}]}),
                "to all of them or to none",
            ),
            (
                json!({"upstreams": [{"url": "http://a.shop", "weight": 0}]}),
                "add up to 0",
            ),
            (
                json!({"traffic": {"rateLimit": {"perSecond": 10, "perMinute": 5}}}),
                "perSecond (10) is more than perMinute (5)",
            ),
            (
                json!({"traffic": {"rateLimit": {"perMinute": 100, "perHour": 60}}}),
                "perMinute (100) is more than perHour (60)",
            ),
            (json!({"traffic": {"rateLimit": {}}}), "give perSecond"),
            (
                json!({"security": {"ipAllow": ["10.0.0.0/33"]}}),
                "prefix length",
            ),
            (
                json!({"security": {"scopes": ["a"]}}),
                "needs spec.security.issuer",
            ),
        ] {
            let verdict = create("Route", route(extra.clone()));
            let message = denial(&verdict);
            assert!(message.contains(why), "{extra}: {message}");
        }
    }

    #[test]
    fn denies_a_gateway_without_what_its_driver_needs() {
        let verdict = create("Gateway", json!({"driver": "kong"}));
        assert!(denial(&verdict).contains("adminUrl is required"));
        let verdict = create(
            "Gateway",
            json!({"issuers": [{"name": "a", "issuer": "https://id", "jwksUri": "https://id/jwks"},
                                {"name": "a", "issuer": "https://id2", "jwksUri": "https://id2/jwks"}]}),
        );
        assert!(denial(&verdict).contains("used twice"));
        assert!(create("Gateway", json!({"listener": {"port": 8000}})).is_allowed());
    }

    #[test]
    fn denies_consumers_and_grants_with_invalid_parts() {
        let verdict = create(
            "Consumer",
            json!({"gatewayRef": {"name": "g"}, "clientId": " "}),
        );
        assert!(denial(&verdict).contains("clientId"));
        let verdict = create(
            "ConsumeRoute",
            json!({"consumerRef": {"name": "c"}, "routeRef": {"name": "r"},
                   "rateLimit": {"perSecond": 0}}),
        );
        assert!(denial(&verdict).contains("perSecond must be at least 1"));
        let labelled = |route: &str| {
            let object = json!({"apiVersion": "gateway.corbel.dev/v1alpha1", "kind": "ConsumeRoute",
                "metadata": {"name": "x", "labels": {"gateway.corbel.dev/route": route}},
                "spec": {"consumerRef": {"name": "c"}, "routeRef": {"name": "r"}}});
            validate(
                &Request::builder(Operation::Create, "ConsumeRoute")
                    .group_version("gateway.corbel.dev", "v1alpha1")
                    .object(object)
                    .build(),
            )
        };
        assert!(denial(&labelled("other")).contains("must name spec.routeRef.name"));
        assert!(labelled("r").is_allowed());
    }

    #[test]
    fn knows_loopback_upstreams() {
        for (url, loopback) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost", true),
            ("http://[::1]:80", true),
            ("https://orders.shop", false),
        ] {
            let endpoint = parse_upstream(url).unwrap();
            assert_eq!(endpoint.is_loopback(), loopback, "{url}");
        }
        assert_eq!(parse_upstream("https://orders.shop").unwrap().port, 443);
    }
}
