//! A **faithful fake** of Kong's Admin API (3.x, DB mode), on 127.0.0.1 over plain HTTP. Kong
//! cannot be installed on these machines, so this is written from the contract in
//! `../shared/design/CONTRACTS-KONG-KEYCLOAK.md` (read from Kong's `kong/api/endpoints.lua`,
//! `kong/db/errors.lua` and the entity schemas), and keeps to it:
//!
//! - collections `/{entity}` (GET, POST), items `/{entity}/{id-or-key}` (GET, PUT, PATCH,
//!   DELETE), nested `/{parent}/{p}/{entity}[/{x}]` that fill in the parent; a UUID is an `id`,
//!   anything else the entity's endpoint key (services/routes/upstreams `name`, consumers
//!   `username`, targets `target`, plugins `instance_name`, ACLs `group`, jwt credentials `key`);
//! - POST 201, GET 200 or 404 `{"message":"Not found"}`, PATCH 200 or 404, PUT 200 whether it
//!   created or replaced (fields left out go back to their defaults), DELETE 204 even when nothing
//!   existed;
//! - errors `{"code","name","message","fields"}`: 400 code 2 schema violation, 400 code 4 foreign
//!   key (a bad reference; deleting a service that still has routes), 409 code 5 unique violation
//!   (names, and a plugin's cache key name+route+service+consumer), 400 code 7/9 bad offset/size;
//! - pagination `size` (default 100, max 1000) and opaque `offset`, `next` null on the last page;
//!   `?tags=a,b` (AND) and `?tags=a/b` (OR);
//! - cascades: plugins with their route, service or consumer; ACLs and credentials with their
//!   consumer; targets with their upstream;
//! - entity defaults of the contract (service protocol/port/retries/timeouts, route
//!   protocols/strip_path, target weight, plugin enabled/protocols) and plugin config checks
//!   (unknown plugin not enabled; acl exactly one of allow/deny; rate-limiting at least one limit,
//!   larger periods not smaller).
//!
//! Not modelled: routers' matching (no proxying), workspaces, RBAC (an optional
//! `Kong-Admin-Token` check stands in for Enterprise's), declarative config.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use serde_json::{Value, json};

const PLUGINS: [&str; 6] = [
    "jwt",
    "acl",
    "rate-limiting",
    "ip-restriction",
    "request-transformer",
    "key-auth",
];

/// A foreign key: (field, collection it points into, deleted with its parent).
type ForeignKey = (&'static str, &'static str, bool);

/// The entity kinds, with their endpoint key and foreign keys.
fn schema(collection: &str) -> Option<(&'static str, &'static [ForeignKey])> {
    Some(match collection {
        "services" => ("name", &[]),
        "routes" => ("name", &[("service", "services", false)]),
        "consumers" => ("username", &[]),
        "upstreams" => ("name", &[]),
        "targets" => ("target", &[("upstream", "upstreams", true)]),
        "plugins" => (
            "instance_name",
            &[
                ("route", "routes", true),
                ("service", "services", true),
                ("consumer", "consumers", true),
            ],
        ),
        "acls" => ("group", &[("consumer", "consumers", true)]),
        "jwts" => ("key", &[("consumer", "consumers", true)]),
        _ => return None,
    })
}

fn collection_of(segment: &str) -> &str {
    if segment == "jwt" { "jwts" } else { segment }
}

fn error(status: u16, code: u16, name: &str, message: String, fields: Value) -> (u16, Value) {
    (
        status,
        json!({"code": code, "name": name, "message": message, "fields": fields}),
    )
}

fn not_found() -> (u16, Value) {
    (404, json!({"message": "Not found"}))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[derive(Default)]
pub struct State {
    entities: BTreeMap<String, Vec<Value>>,
    next_id: u64,
    clock: i64,
    /// Every request, as `METHOD path`.
    pub requests: Vec<String>,
    /// When set, requests must carry `Kong-Admin-Token` with this value.
    pub token: Option<String>,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.next_id)
    }

    fn all(&self, collection: &str) -> &[Value] {
        self.entities
            .get(collection)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn find(&self, collection: &str, key: &str, parent: Option<(&str, &str)>) -> Option<usize> {
        let (endpoint_key, _) = schema(collection)?;
        self.all(collection).iter().position(|e| {
            let matches = if is_uuid(key) {
                e["id"] == key
            } else {
                e[endpoint_key] == key
            };
            matches && parent.is_none_or(|(field, id)| e[field]["id"] == id)
        })
    }

    /// The id of a foreign reference `{"id": …}` or `{"name": …}` (Kong accepts the endpoint key).
    fn resolve(&self, collection: &str, reference: &Value) -> Option<String> {
        let key = reference["id"]
            .as_str()
            .or_else(|| reference[schema(collection)?.0].as_str())?;
        let index = self.find(collection, key, None)?;
        Some(self.all(collection)[index]["id"].as_str()?.to_string())
    }

    fn defaults(collection: &str, body: &mut Value) {
        let object = body.as_object_mut().unwrap();
        let mut default = |k: &str, v: Value| {
            object.entry(k.to_string()).or_insert(v);
        };
        match collection {
            "services" => {
                default("protocol", json!("http"));
                default("port", json!(80));
                default("path", Value::Null);
                default("retries", json!(5));
                for t in ["connect_timeout", "write_timeout", "read_timeout"] {
                    default(t, json!(60000));
                }
                default("enabled", json!(true));
            }
            "routes" => {
                default("protocols", json!(["http", "https"]));
                for f in [
                    "methods",
                    "hosts",
                    "paths",
                    "headers",
                    "snis",
                    "sources",
                    "destinations",
                ] {
                    default(f, Value::Null);
                }
                default("strip_path", json!(true));
                default("preserve_host", json!(false));
                default("regex_priority", json!(0));
                default("path_handling", json!("v0"));
                default("https_redirect_status_code", json!(426));
            }
            "upstreams" => {
                default("hash_on", json!("none"));
                default("hash_fallback", json!("none"));
                default("slots", json!(10000));
            }
            "targets" => default("weight", json!(100)),
            "plugins" => {
                default("enabled", json!(true));
                default("protocols", json!(["grpc", "grpcs", "http", "https"]));
                default("config", json!({}));
                for f in ["route", "service", "consumer"] {
                    default(f, Value::Null);
                }
            }
            "jwts" => default("algorithm", json!("HS256")),
            _ => {}
        }
        default("tags", Value::Null);
    }

    /// Schema checks of the contract; `Err` is the error answer.
    fn validate(&self, collection: &str, body: &Value) -> Result<(), (u16, Value)> {
        let violation = |field: &str, message: &str| {
            error(
                400,
                2,
                "schema violation",
                format!("schema violation ({field}: {message})"),
                json!({field: message}),
            )
        };
        match collection {
            "services" if body["host"].as_str().is_none_or(str::is_empty) => {
                return Err(violation("host", "required field missing"));
            }
            "upstreams"
                if body["name"]
                    .as_str()
                    .is_none_or(|n| n.parse::<std::net::IpAddr>().is_ok()) =>
            {
                return Err(violation("name", "Invalid name; must be a valid hostname"));
            }
            "targets" if body["target"].as_str().is_none() => {
                return Err(violation("target", "required field missing"));
            }
            "consumers"
                if body["username"].as_str().is_none() && body["custom_id"].as_str().is_none() =>
            {
                return Err(error(400, 2, "schema violation",
                    "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')".into(),
                    json!({"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]})));
            }
            "acls" if body["group"].as_str().is_none() => {
                return Err(violation("group", "required field missing"));
            }
            "routes" => {
                let empty = |f: &str| body[f].as_array().is_none_or(Vec::is_empty);
                if ["methods", "hosts", "headers", "paths"]
                    .iter()
                    .all(|f| empty(f))
                {
                    return Err(error(400, 2, "schema violation",
                        "schema violation (must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http')".into(),
                        json!({"@entity": ["must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"]})));
                }
            }
            "plugins" => {
                let name = body["name"].as_str().unwrap_or_default();
                if !PLUGINS.contains(&name) {
                    return Err(error(
                        400,
                        2,
                        "schema violation",
                        format!(
                            "schema violation (name: plugin '{name}' not enabled; add it to the 'plugins' configuration property)"
                        ),
                        json!({"name": format!("plugin '{name}' not enabled; add it to the 'plugins' configuration property")}),
                    ));
                }
                let config = &body["config"];
                match name {
                    "acl" if config["allow"].is_array() == config["deny"].is_array() => {
                        return Err(violation(
                            "config",
                            "exactly one of these fields must be non-empty: 'allow', 'deny'",
                        ));
                    }
                    "acl" | "jwt" if !body["consumer"].is_null() => {
                        return Err(violation("consumer", "value must be null"));
                    }
                    "rate-limiting" => {
                        let periods = ["second", "minute", "hour", "day", "month", "year"];
                        let values: Vec<Option<f64>> =
                            periods.iter().map(|p| config[*p].as_f64()).collect();
                        if values.iter().all(Option::is_none) {
                            return Err(violation(
                                "config",
                                "at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'",
                            ));
                        }
                        let set: Vec<f64> = values.into_iter().flatten().collect();
                        if set.windows(2).any(|w| w[1] < w[0]) {
                            return Err(violation(
                                "config",
                                "The limit for a larger period cannot be smaller than a smaller period",
                            ));
                        }
                    }
                    "ip-restriction"
                        if !config["allow"].is_array() && !config["deny"].is_array() =>
                    {
                        return Err(violation(
                            "config",
                            "at least one of these fields must be non-empty: 'allow', 'deny'",
                        ));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        let (_, foreign) = schema(collection).unwrap();
        for (field, target, _) in foreign {
            let reference = &body[*field];
            if !reference.is_null() && self.resolve(target, reference).is_none() {
                return Err(error(
                    400,
                    4,
                    "foreign key violation",
                    format!(
                        "the foreign key '{reference}' does not reference an existing '{target}' entity."
                    ),
                    json!({*field: reference}),
                ));
            }
        }
        Ok(())
    }

    /// Unique fields, and a plugin's cache key.
    fn unique(&self, collection: &str, body: &Value, id: &str) -> Result<(), (u16, Value)> {
        let fields: &[&str] = match collection {
            "services" | "routes" | "upstreams" => &["name"],
            "consumers" => &["username", "custom_id"],
            "plugins" => &["instance_name"],
            _ => &[],
        };
        for other in self.all(collection).iter().filter(|e| e["id"] != id) {
            for field in fields {
                if !body[*field].is_null() && other[*field] == body[*field] {
                    return Err(error(
                        409,
                        5,
                        "unique constraint violation",
                        format!(
                            "UNIQUE violation detected on '{{{field}=\"{}\"}}'",
                            body[*field].as_str().unwrap_or_default()
                        ),
                        json!({*field: body[*field]}),
                    ));
                }
            }
            let same = |f: &str| other[f]["id"] == body[f]["id"];
            let clash = match collection {
                "plugins" => {
                    other["name"] == body["name"]
                        && same("route")
                        && same("service")
                        && same("consumer")
                }
                "acls" => other["group"] == body["group"] && same("consumer"),
                "targets" => other["target"] == body["target"] && same("upstream"),
                _ => false,
            };
            if clash {
                return Err(error(
                    409,
                    5,
                    "unique constraint violation",
                    format!("UNIQUE violation detected on '{collection}' cache key"),
                    json!({}),
                ));
            }
        }
        Ok(())
    }

    /// Normalises foreign references to `{"id": …}`.
    fn references(&self, collection: &str, body: &mut Value) {
        let (_, foreign) = schema(collection).unwrap();
        for (field, target, _) in foreign {
            if !body[*field].is_null()
                && let Some(id) = self.resolve(target, &body[*field])
            {
                body[*field] = json!({"id": id});
            }
        }
    }

    fn write(
        &mut self,
        collection: &str,
        mut body: Value,
        existing: Option<usize>,
    ) -> Result<Value, (u16, Value)> {
        self.references(collection, &mut body);
        Self::defaults(collection, &mut body);
        self.validate(collection, &body)?;
        self.clock += 1;
        let (id, created) = match existing {
            Some(i) => {
                let old = &self.all(collection)[i];
                (
                    old["id"].as_str().unwrap().to_string(),
                    old["created_at"].clone(),
                )
            }
            None => (
                body["id"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| self.id()),
                json!(self.clock),
            ),
        };
        self.unique(collection, &body, &id)?;
        body["id"] = json!(id);
        body["created_at"] = created;
        body["updated_at"] = json!(self.clock);
        let list = self.entities.entry(collection.to_string()).or_default();
        match existing {
            Some(i) => list[i] = body.clone(),
            None => list.push(body.clone()),
        }
        Ok(body)
    }

    fn delete(&mut self, collection: &str, index: usize) -> Result<(), (u16, Value)> {
        let id = self.all(collection)[index]["id"]
            .as_str()
            .unwrap()
            .to_string();
        if collection == "services"
            && self
                .all("routes")
                .iter()
                .any(|r| r["service"]["id"] == id.as_str())
        {
            return Err(error(
                400,
                4,
                "foreign key violation",
                "an existing 'routes' entity references this 'services' entity".into(),
                json!({"@referenced_by": "routes"}),
            ));
        }
        self.entities.get_mut(collection).unwrap().remove(index);
        // Cascades.
        let children: Vec<String> = self.entities.keys().cloned().collect();
        for child in children {
            let (_, foreign) = schema(&child).unwrap();
            for (field, target, cascade) in foreign {
                if *target == collection && *cascade {
                    self.entities
                        .get_mut(&child)
                        .unwrap()
                        .retain(|e| e[*field]["id"] != id.as_str());
                }
            }
        }
        Ok(())
    }

    fn list(
        &self,
        collection: &str,
        parent: Option<(&str, &str)>,
        query: &BTreeMap<String, String>,
        path: &str,
    ) -> (u16, Value) {
        let size = match query.get("size").map(|s| s.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=1000).contains(&n) => n,
            _ => {
                return error(
                    400,
                    9,
                    "invalid size",
                    "size must be a number between 1 and 1000".into(),
                    json!({}),
                );
            }
        };
        let start = match query.get("offset") {
            None => 0,
            Some(o) => match o
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => {
                    return error(
                        400,
                        7,
                        "invalid offset",
                        format!("'{o}' is not a valid offset: bad base64 encoding"),
                        json!({}),
                    );
                }
            },
        };
        let tags = query.get("tags").cloned().unwrap_or_default();
        if tags.contains(',') && tags.contains('/') {
            return error(
                400,
                2,
                "invalid filter",
                "invalid option (tags: invalid filter syntax)".into(),
                json!({}),
            );
        }
        let has = |e: &Value, t: &str| {
            e["tags"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|x| x == t))
        };
        let matching: Vec<&Value> = self
            .all(collection)
            .iter()
            .filter(|e| parent.is_none_or(|(f, id)| e[f]["id"] == id))
            .filter(|e| {
                tags.is_empty()
                    || if tags.contains('/') {
                        tags.split('/').any(|t| has(e, t))
                    } else {
                        tags.split(',').all(|t| has(e, t))
                    }
            })
            .collect();
        let page: Vec<&Value> = matching.iter().skip(start).take(size).copied().collect();
        let mut body = json!({"data": page, "next": null});
        if start + size < matching.len() {
            let offset = format!("page-{}", start + size);
            let mut next = format!("{path}?offset={offset}&size={size}");
            if !tags.is_empty() {
                next.push_str(&format!("&tags={tags}"));
            }
            body["offset"] = json!(offset);
            body["next"] = json!(next);
        }
        (200, body)
    }

    /// One Admin API request.
    pub fn handle(&mut self, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
        self.requests.push(format!("{method} {target}"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query: BTreeMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), decode(v)))
            .collect();
        let segments: Vec<String> = path.trim_matches('/').split('/').map(decode).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        // (collection, key, parent scope)
        let (collection, key, parent): (&str, Option<&str>, Option<(String, String)>) =
            match segments.as_slice() {
                [c] => (collection_of(c), None, None),
                [c, k] => (collection_of(c), Some(*k), None),
                [p, pk, c] | [p, pk, c, _] => {
                    let Some(index) = self.find(p, pk, None) else {
                        return not_found();
                    };
                    let parent_id = self.all(p)[index]["id"].as_str().unwrap().to_string();
                    let field = p.trim_end_matches('s').to_string();
                    (
                        collection_of(c),
                        segments.get(3).copied(),
                        Some((field, parent_id)),
                    )
                }
                _ => return not_found(),
            };
        let Some((endpoint_key, _)) = schema(collection) else {
            return not_found();
        };
        let scope = parent.as_ref().map(|(f, id)| (f.as_str(), id.as_str()));
        let found = key.and_then(|k| self.find(collection, k, scope));
        let mut body = body.unwrap_or(json!({}));
        if let Some((field, id)) = &parent {
            body[field.as_str()] = json!({"id": id});
        }
        match (method, key) {
            ("GET", None) => self.list(collection, scope, &query, path),
            ("POST", None) => match self.write(collection, body, None) {
                Ok(entity) => (201, entity),
                Err(e) => e,
            },
            ("GET", Some(_)) => found
                .map(|i| (200, self.all(collection)[i].clone()))
                .unwrap_or_else(not_found),
            ("PATCH", Some(_)) => {
                let Some(i) = found else { return not_found() };
                let mut merged = self.all(collection)[i].clone();
                for (k, v) in body.as_object().unwrap() {
                    merged[k] = v.clone();
                }
                match self.write(collection, merged, Some(i)) {
                    Ok(entity) => (200, entity),
                    Err(e) => e,
                }
            }
            ("PUT", Some(k)) => {
                if is_uuid(k) {
                    body["id"] = json!(k);
                } else {
                    if body[endpoint_key].as_str().is_some_and(|v| v != k) {
                        return error(
                            400,
                            2,
                            "schema violation",
                            format!(
                                "schema violation ({endpoint_key}: must match the {endpoint_key} in the path)"
                            ),
                            json!({endpoint_key: "must match the value in the path"}),
                        );
                    }
                    body[endpoint_key] = json!(k);
                }
                match self.write(collection, body, found) {
                    Ok(entity) => (200, entity),
                    Err(e) => e,
                }
            }
            ("DELETE", Some(_)) => match found.map(|i| self.delete(collection, i)) {
                Some(Err(e)) => e,
                _ => (204, Value::Null),
            },
            _ => (405, json!({"message": "Method not allowed"})),
        }
    }

    /// The entities of a collection, for assertions.
    pub fn entities(&self, collection: &str) -> Vec<Value> {
        self.all(collection).to_vec()
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fake on a loopback port; stops when dropped.
pub struct FakeKong {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKong {
    pub async fn start(token: Option<&str>) -> FakeKong {
        let state = Arc::new(Mutex::new(State {
            token: token.map(str::to_string),
            ..State::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let target = parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str())
                                    .unwrap_or("/")
                                    .to_string();
                                let (status, answer) = {
                                    let mut state = state.lock().unwrap();
                                    let token = parts
                                        .headers
                                        .get("kong-admin-token")
                                        .and_then(|v| v.to_str().ok());
                                    if state.token.is_some() && state.token.as_deref() != token {
                                        (
                                            401,
                                            json!({"message": "Invalid credentials. Token or User credentials required"}),
                                        )
                                    } else {
                                        match (
                                            bytes.is_empty(),
                                            serde_json::from_slice::<Value>(&bytes),
                                        ) {
                                            (true, _) => {
                                                state.handle(parts.method.as_str(), &target, None)
                                            }
                                            (false, Ok(body)) => state.handle(
                                                parts.method.as_str(),
                                                &target,
                                                Some(body),
                                            ),
                                            (false, Err(e)) => (
                                                400,
                                                json!({"message": format!("Cannot parse JSON body: {e}")}),
                                            ),
                                        }
                                    }
                                };
                                let body = if answer.is_null() {
                                    Bytes::new()
                                } else {
                                    Bytes::from(answer.to_string())
                                };
                                Ok::<_, Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json; charset=utf-8")
                                        .body(Full::new(body))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        FakeKong { url, state, task }
    }
}

impl Drop for FakeKong {
    fn drop(&mut self) {
        self.task.abort();
    }
}
