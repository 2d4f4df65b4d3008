//! `driver: kong`: the same kinds, enforced by Kong (3.x, DB mode) through its Admin API.
//!
//! A Gateway reconcile computes the entities its Routes, Consumers and ConsumeRoutes need
//! ([`desired`]), upserts each with `PUT` (Kong's upsert: it replaces the whole entity, so a field
//! changed by hand is set back, and one deleted by hand is created again: drift is corrected on
//! every reconcile), then lists what carries the Gateway's tag and deletes what is no longer
//! wanted. Every entity carries two tags: `corbel` and the Gateway's own ([`owner_tag`]), so
//! Corbel never touches what it does not own.
//!
//! | gateway kinds | Kong |
//! | --- | --- |
//! | Route | upstream + targets (weights), service (timeouts, retries), route (paths, hosts) |
//! | `security.issuer` | `jwt` plugin keyed on the `client_id` claim; a jwt credential (RS256, the issuer's key) per Consumer |
//! | ConsumeRoute | `acl` plugin allowing the Route's group; an ACL group per granted Consumer |
//! | `traffic.rateLimit`, a grant's `rateLimit` | `rate-limiting` on the route; on the route and consumer |
//! | `security.ipAllow`/`ipDeny` | `ip-restriction` |
//! | `transformation` | `request-transformer` (add, remove, replace.uri) |
//!
//! Kong OSS has no endpoint priorities: targets of a priority other than 0 get weight 0 (kept,
//! not sent traffic), which the Route's status says.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::admission;
use crate::api::{RateLimit, RouteSpec};
use crate::translate::{Inputs, Named, RouteResult};

/// One call to Kong's Admin API.
pub trait Admin {
    /// `path` starts with `/` and is relative to the admin URL; the body is JSON. Returns the
    /// status and the body (`Null` when empty). `Err` only when no answer came (unreachable).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String>;
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KongError {
    #[error("Kong's Admin API is unreachable: {0}")]
    Unreachable(String),
    #[error("Kong refused {method} {path} with {status}: {message}")]
    Refused {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
}

/// The tag of everything one Gateway owns in Kong (tags may not hold `,` or `/`).
pub fn owner_tag(namespace: &str, gateway: &str) -> String {
    format!("corbel-gateway-{namespace}.{gateway}")
}

/// An entity Corbel wants: upserted at `path` (`PUT`), found again in `collection` by `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub collection: &'static str,
    pub key: String,
    pub path: String,
    pub body: Value,
}

/// The order entities are written in (parents first); deletion runs in reverse.
const ORDER: [&str; 7] = [
    "upstreams",
    "targets",
    "services",
    "routes",
    "consumers",
    "acls",
    "plugins",
];

fn escape(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn limits(limit: &RateLimit) -> serde_json::Map<String, Value> {
    let mut config = serde_json::Map::new();
    for (key, value) in [
        ("second", limit.per_second),
        ("minute", limit.per_minute),
        ("hour", limit.per_hour),
    ] {
        if let Some(v) = value {
            config.insert(key.into(), json!(v));
        }
    }
    config
}

/// What Kong should hold for these inputs. `keys` maps an issuer's name to the PEM of its RSA
/// signing key (the jwt plugin checks tokens against a credential's key, not a JWKS URL).
pub fn desired(
    inputs: &Inputs,
    results: &BTreeMap<String, RouteResult>,
    keys: &BTreeMap<String, String>,
) -> Vec<Entity> {
    let owner = owner_tag(&inputs.namespace, &inputs.gateway.name);
    let tags = json!(["corbel", owner]);
    let prefix = format!("{}.{}", inputs.namespace, inputs.gateway.name);
    let mut entities = Vec::new();
    let consumer_name = |name: &str| format!("{prefix}.{name}");
    let mut jwt_issuers = BTreeSet::new();
    let served: Vec<&Named<RouteSpec>> = inputs
        .routes
        .iter()
        .filter(|r| matches!(results.get(&r.name), Some(RouteResult::Served { .. })))
        .collect();
    for route in &served {
        let spec = &route.spec;
        let name = format!("{prefix}.{}", route.name);
        let endpoints: Vec<_> = spec
            .upstreams
            .iter()
            .filter_map(|u| admission::parse_upstream(&u.url).ok().map(|e| (u, e)))
            .collect();
        let tls = endpoints.first().is_some_and(|(_, e)| e.tls);
        entities.push(Entity {
            collection: "upstreams",
            key: name.clone(),
            path: format!("/upstreams/{}", escape(&name)),
            body: json!({"name": name, "tags": tags}),
        });
        for (upstream, endpoint) in &endpoints {
            let target = format!("{}:{}", endpoint.host, endpoint.port);
            let weight = if upstream.priority != 0 {
                0
            } else {
                upstream.weight.unwrap_or(100)
            };
            entities.push(Entity {
                collection: "targets",
                key: format!("{name}/{target}"),
                path: format!("/upstreams/{}/targets/{}", escape(&name), escape(&target)),
                body: json!({"target": target, "weight": weight, "tags": tags}),
            });
        }
        let traffic = spec.traffic.clone().unwrap_or_default();
        let mut service = json!({
            "name": name, "protocol": if tls { "https" } else { "http" }, "host": name,
            "port": endpoints.first().map(|(_, e)| e.port).unwrap_or(80),
            "retries": traffic.retries.unwrap_or(5), "tags": tags,
        });
        if let Some(ms) = traffic.timeout_ms {
            for field in ["connect_timeout", "read_timeout", "write_timeout"] {
                service[field] = json!(ms);
            }
        }
        entities.push(Entity {
            collection: "services",
            key: name.clone(),
            path: format!("/services/{}", escape(&name)),
            body: service,
        });
        let hosts = if !spec.hostnames.is_empty() {
            spec.hostnames.clone()
        } else {
            inputs.gateway.spec.hostnames.clone()
        };
        let mut kong_route = json!({
            "name": name, "paths": spec.paths, "strip_path": false, "protocols": ["http", "https"], "tags": tags,
        });
        if !hosts.is_empty() {
            kong_route["hosts"] = json!(hosts);
        }
        entities.push(Entity {
            collection: "routes",
            key: name.clone(),
            path: format!("/services/{}/routes/{}", escape(&name), escape(&name)),
            body: kong_route,
        });
        let mut plugin = |kind: &str, config: Value| {
            let instance = format!("{name}.{kind}");
            entities.push(Entity {
                collection: "plugins",
                key: instance.clone(),
                path: format!("/routes/{}/plugins/{}", escape(&name), escape(&instance)),
                body: json!({"name": kind, "instance_name": instance, "config": config, "tags": tags}),
            });
        };
        let security = spec.security.clone().unwrap_or_default();
        if let Some(issuer) = &security.issuer {
            jwt_issuers.insert(issuer.clone());
            plugin(
                "jwt",
                json!({"key_claim_name": "client_id", "claims_to_verify": ["exp"]}),
            );
            plugin("acl", json!({"allow": [name], "hide_groups_header": true}));
        }
        if let Some(limit) = &traffic.rate_limit {
            let mut config = limits(limit);
            config.insert("policy".into(), json!("local"));
            config.insert("limit_by".into(), json!("service"));
            plugin("rate-limiting", Value::Object(config));
        }
        if !security.ip_allow.is_empty() || !security.ip_deny.is_empty() {
            let mut config = json!({});
            if !security.ip_allow.is_empty() {
                config["allow"] = json!(security.ip_allow);
            }
            if !security.ip_deny.is_empty() {
                config["deny"] = json!(security.ip_deny);
            }
            plugin("ip-restriction", config);
        }
        if let Some(t) = &spec.transformation {
            let add: Vec<String> = t
                .request_headers_to_add
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            let mut config = json!({"add": {"headers": add}, "remove": {"headers": t.request_headers_to_remove}});
            if let Some(uri) = &t.path_rewrite {
                config["replace"] = json!({"uri": uri});
            }
            plugin("request-transformer", config);
        }
        // Grants: an ACL group per granted Consumer, and its own rate limit.
        for grant in inputs
            .grants
            .iter()
            .filter(|g| g.spec.route_ref.name == route.name)
        {
            let Some(consumer) = inputs.consumers.iter().find(|c| {
                c.name == grant.spec.consumer_ref.name
                    && c.spec.gateway_ref.name == inputs.gateway.name
            }) else {
                continue;
            };
            let username = consumer_name(&consumer.name);
            entities.push(Entity {
                collection: "acls",
                key: format!("{username}/{name}"),
                path: format!("/consumers/{}/acls/{}", escape(&username), escape(&name)),
                body: json!({"group": name, "tags": tags}),
            });
            if let Some(limit) = &grant.spec.rate_limit {
                let instance = format!("{name}.{}.rate-limiting", consumer.name);
                let mut config = limits(limit);
                config.insert("policy".into(), json!("local"));
                config.insert("limit_by".into(), json!("consumer"));
                entities.push(Entity {
                    collection: "plugins",
                    key: instance.clone(),
                    path: format!("/consumers/{}/plugins/{}", escape(&username), escape(&instance)),
                    // The route is named by its id at write time (see `sync`).
                    body: json!({"name": "rate-limiting", "instance_name": instance, "config": config,
                                 "route": {"name": name}, "tags": tags}),
                });
            }
        }
    }
    for consumer in inputs
        .consumers
        .iter()
        .filter(|c| c.spec.gateway_ref.name == inputs.gateway.name)
    {
        let username = consumer_name(&consumer.name);
        entities.push(Entity {
            collection: "consumers",
            key: username.clone(),
            path: format!("/consumers/{}", escape(&username)),
            body: json!({"username": username, "custom_id": consumer.spec.client_id, "tags": tags}),
        });
        for issuer in inputs
            .gateway
            .spec
            .issuers
            .iter()
            .filter(|i| jwt_issuers.contains(&i.name))
        {
            let Some(pem) = keys.get(&issuer.name) else {
                continue;
            };
            // The jwt plugin finds the credential by the token's client_id claim.
            entities.push(Entity {
                collection: "jwts",
                key: format!("{username}/{}", consumer.spec.client_id),
                path: format!("/consumers/{}/jwt/{}", escape(&username), escape(&consumer.spec.client_id)),
                body: json!({"key": consumer.spec.client_id, "algorithm": "RS256", "rsa_public_key": pem, "tags": tags}),
            });
        }
    }
    entities.sort_by_key(|e| {
        ORDER
            .iter()
            .position(|c| *c == e.collection)
            .unwrap_or(ORDER.len())
    });
    entities
}

fn refused(method: &str, path: &str, status: u16, body: &Value) -> KongError {
    KongError::Refused {
        method: method.into(),
        path: path.into(),
        status,
        message: body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string()),
    }
}

fn call(
    admin: &dyn Admin,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), KongError> {
    admin
        .call(method, path, body)
        .map_err(KongError::Unreachable)
}

/// Every entity of `collection` tagged with `tag`, following Kong's pagination.
pub fn list(admin: &dyn Admin, collection: &str, tag: &str) -> Result<Vec<Value>, KongError> {
    let mut out = Vec::new();
    let mut path = format!("/{collection}?tags={}&size=1000", escape(tag));
    loop {
        let (status, body) = call(admin, "GET", &path, None)?;
        if status != 200 {
            return Err(refused("GET", &path, status, &body));
        }
        out.extend(body["data"].as_array().cloned().unwrap_or_default());
        match body["next"].as_str() {
            Some(next) if !next.is_empty() => path = next.to_string(),
            _ => return Ok(out),
        }
    }
}

/// What a sync did.
#[derive(Debug, Default, PartialEq)]
pub struct Synced {
    pub upserted: usize,
    pub deleted: usize,
}

/// Upserts what is wanted, then deletes what the Gateway owns and no longer wants.
pub fn sync(admin: &dyn Admin, tag: &str, wanted: &[Entity]) -> Result<Synced, KongError> {
    let mut synced = Synced::default();
    let mut route_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut consumer_ids: BTreeMap<String, String> = BTreeMap::new();
    for entity in wanted {
        let mut body = entity.body.clone();
        if let Some(route) = body["route"]["name"].as_str()
            && let Some(id) = route_ids.get(route)
        {
            body["route"] = json!({"id": id});
        }
        let (status, answer) = call(admin, "PUT", &entity.path, Some(&body))?;
        if !(200..300).contains(&status) {
            return Err(refused("PUT", &entity.path, status, &answer));
        }
        synced.upserted += 1;
        if let Some(id) = answer["id"].as_str() {
            match entity.collection {
                "routes" => {
                    route_ids.insert(entity.key.clone(), id.to_string());
                }
                "consumers" => {
                    consumer_ids.insert(entity.key.clone(), id.to_string());
                }
                _ => {}
            }
        }
    }
    let wanted_keys: BTreeSet<(&str, &str)> = wanted
        .iter()
        .map(|e| (e.collection, e.key.as_str()))
        .collect();
    // Owned entities, by the key `desired` gives them.
    let upstreams = list(admin, "upstreams", tag)?;
    let consumers = list(admin, "consumers", tag)?;
    let upstream_names: BTreeMap<String, String> = upstreams
        .iter()
        .filter_map(|u| {
            Some((
                u["id"].as_str()?.to_string(),
                u["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    let consumer_names: BTreeMap<String, String> = consumers
        .iter()
        .filter_map(|c| {
            Some((
                c["id"].as_str()?.to_string(),
                c["username"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut stale: Vec<(&str, String)> = Vec::new();
    for collection in ["plugins", "routes", "services", "acls"] {
        for entity in list(admin, collection, tag)? {
            let id = entity["id"].as_str().unwrap_or_default().to_string();
            let key = match collection {
                "plugins" => entity["instance_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                "acls" => format!(
                    "{}/{}",
                    consumer_names
                        .get(entity["consumer"]["id"].as_str().unwrap_or_default())
                        .cloned()
                        .unwrap_or_default(),
                    entity["group"].as_str().unwrap_or_default()
                ),
                _ => entity["name"].as_str().unwrap_or_default().to_string(),
            };
            if !wanted_keys.contains(&(collection, key.as_str())) {
                let path = match collection {
                    "acls" => format!(
                        "/consumers/{}/acls/{id}",
                        entity["consumer"]["id"].as_str().unwrap_or_default()
                    ),
                    _ => format!("/{collection}/{id}"),
                };
                stale.push((collection, path));
            }
        }
    }
    for upstream in &upstreams {
        let (Some(id), Some(name)) = (upstream["id"].as_str(), upstream["name"].as_str()) else {
            continue;
        };
        if !wanted_keys.contains(&("upstreams", name)) {
            continue; // its targets go with it
        }
        let (status, body) = call(
            admin,
            "GET",
            &format!("/upstreams/{id}/targets?size=1000"),
            None,
        )?;
        if status != 200 {
            return Err(refused(
                "GET",
                &format!("/upstreams/{id}/targets"),
                status,
                &body,
            ));
        }
        for target in body["data"].as_array().into_iter().flatten() {
            let key = format!("{name}/{}", target["target"].as_str().unwrap_or_default());
            if !wanted_keys.contains(&("targets", key.as_str())) {
                stale.push((
                    "targets",
                    format!(
                        "/upstreams/{id}/targets/{}",
                        target["id"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    for (id, name) in &upstream_names {
        if !wanted_keys.contains(&("upstreams", name.as_str())) {
            stale.push(("upstreams", format!("/upstreams/{id}")));
        }
    }
    for (id, name) in &consumer_names {
        if !wanted_keys.contains(&("consumers", name.as_str())) {
            stale.push(("consumers", format!("/consumers/{id}")));
        }
    }
    // Children before parents: plugins, routes, then services (Kong refuses to delete a
    // service that still has routes), targets, upstreams, ACLs, consumers.
    for (_, path) in stale {
        let (status, body) = call(admin, "DELETE", &path, None)?;
        if status != 204 && status != 404 {
            return Err(refused("DELETE", &path, status, &body));
        }
        synced.deleted += 1;
    }
    Ok(synced)
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let value = (match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        }) as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 128 {
        out.push(len as u8);
    } else if len < 256 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    let mut content = bytes[start..].to_vec();
    if content.first().is_some_and(|b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    der(0x02, &content)
}

/// The PEM (`PUBLIC KEY`, SubjectPublicKeyInfo) of an RSA JWK's `n` and `e`: what Kong's jwt
/// credentials take as `rsa_public_key`.
pub fn rsa_pem(n: &str, e: &str) -> Option<String> {
    let key = der(
        0x30,
        &[
            der_integer(&base64url_decode(n)?),
            der_integer(&base64url_decode(e)?),
        ]
        .concat(),
    );
    let algorithm = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let bit_string = der(0x03, &[&[0u8][..], &key[..]].concat());
    let info = der(0x30, &[&algorithm[..], &bit_string[..]].concat());
    let body = base64_encode(&info);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    Some(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    ))
}

/// The signing key of a JWKS document (the first RSA key for signatures), as PEM.
pub fn jwks_pem(jwks: &Value) -> Option<String> {
    jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kty"] == "RSA" && k["use"].as_str().is_none_or(|u| u == "sig"))
        .and_then(|k| rsa_pem(k["n"].as_str()?, k["e"].as_str()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_jwk_becomes_a_subject_public_key_info_pem() {
        // n = 0xc1 (its high bit is set, so DER gives it a leading zero), e = 65537.
        let pem = rsa_pem("wQ", "AQAB").unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(
            base64url_decode(&body).unwrap(),
            [
                0x30, 0x1d, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
                0x01, 0x05, 0x00, 0x03, 0x0c, 0x00, 0x30, 0x09, 0x02, 0x02, 0x00, 0xc1, 0x02, 0x03,
                0x01, 0x00, 0x01,
            ]
        );
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(escape("127.0.0.1:8080"), "127.0.0.1%3A8080");
        assert_eq!(owner_tag("shop", "public"), "corbel-gateway-shop.public");
    }
}
