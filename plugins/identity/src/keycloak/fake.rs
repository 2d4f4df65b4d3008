//! A fake of Keycloak (17 and later) as far as the identity controller and its consumers use it,
//! written from the documented admin REST and token endpoint contract
//! (`shared/design/CONTRACTS-KONG-KEYCLOAK.md`), not from Keycloak itself: realms (`POST
//! /admin/realms` 201 with `Location`, 409 duplicates, 404 `Realm not found.`), clients (arrays
//! from `?clientId=`, 201 with `Location` naming the id, 409 `Client x already exists`, PUT and
//! DELETE 204, `client-secret`), and the token endpoint (the password grant through `admin-cli`
//! on `master`; client credentials of service-account clients, 401 `invalid_client` for a wrong
//! secret, `unauthorized_client` for a client without a service account). Access tokens are
//! opaque strings here, not signed JWTs.
//!
//! Used by the plugin's unit tests and, behind the `fake` feature, served over HTTP by
//! tests/identity.rs.

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine;
pub use corbel_sdk::http::{Request, Response};
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    /// realm → client id (the internal uuid) → representation (with `secret`).
    realms: BTreeMap<String, BTreeMap<String, Value>>,
    next: u64,
    tokens: BTreeMap<String, String>,
}

/// Keycloak's admin API and token endpoint, in memory. The admin logs in as `admin` with the
/// password given to [`FakeKeycloak::new`].
pub struct FakeKeycloak {
    admin_password: String,
    state: Mutex<State>,
}

fn answer(status: u16, body: Value) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
    }
}

fn created(location: String) -> Response {
    Response {
        status: 201,
        headers: vec![("location".into(), location)],
        body: Vec::new(),
    }
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    answer(
        status,
        json!({"error": error, "error_description": description}),
    )
}

impl FakeKeycloak {
    pub fn new(admin_password: &str) -> FakeKeycloak {
        let mut state = State::default();
        state.realms.insert("master".into(), BTreeMap::new());
        FakeKeycloak {
            admin_password: admin_password.into(),
            state: Mutex::new(state),
        }
    }

    /// Answers one request; the URL may be absolute or just the path and query.
    pub fn handle(&self, request: &Request) -> Response {
        let url = request.url.as_str();
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => url,
        };
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(percent_decode)
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let method = request.method.to_ascii_uppercase();
        let mut state = self.state.lock().unwrap();
        match (method.as_str(), parts.as_slice()) {
            ("POST", ["realms", realm, "protocol", "openid-connect", "token"]) => {
                self.token(&mut state, realm, request)
            }
            (_, ["admin", "realms", rest @ ..]) => {
                let authorized = header(request, "authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .is_some_and(|t| state.tokens.get(t).is_some_and(|who| who == "admin"));
                if !authorized {
                    let mut response = answer(401, json!({"error": "HTTP 401 Unauthorized"}));
                    response
                        .headers
                        .push(("www-authenticate".into(), "Bearer".into()));
                    return response;
                }
                let base = url.find("/admin/realms").map_or("", |i| &url[..i]);
                Self::admin(&mut state, &method, rest, query, request, base)
            }
            _ => answer(
                404,
                json!({"error": "Unable to find matching target resource method"}),
            ),
        }
    }

    fn token(&self, state: &mut State, realm: &str, request: &Request) -> Response {
        let params = form(&request.body);
        if !state.realms.contains_key(realm) {
            return answer(404, json!({"error": "Realm does not exist"}));
        }
        let Some(grant) = params.get("grant_type") else {
            return oauth_error(400, "invalid_request", "Missing form parameter: grant_type");
        };
        let token = |state: &mut State, who: String| {
            state.next += 1;
            let token = format!("kc-token-{}", state.next);
            state.tokens.insert(token.clone(), who);
            token
        };
        match grant.as_str() {
            "password" => {
                let ok = realm == "master"
                    && params.get("client_id").map(String::as_str) == Some("admin-cli")
                    && params.get("username").map(String::as_str) == Some("admin")
                    && params.get("password") == Some(&self.admin_password);
                if !ok {
                    return oauth_error(401, "invalid_grant", "Invalid user credentials");
                }
                let access = token(state, "admin".into());
                answer(
                    200,
                    json!({"access_token": access, "expires_in": 60, "refresh_expires_in": 1800,
                           "refresh_token": "fake-refresh", "token_type": "Bearer",
                           "not-before-policy": 0, "session_state": "fake", "scope": "profile email"}),
                )
            }
            "client_credentials" => {
                // Basic or form credentials.
                let (id, secret) = match header(request, "authorization")
                    .and_then(|v| v.strip_prefix("Basic "))
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    Some(pair) => {
                        let (id, secret) = pair.split_once(':').unwrap_or((&pair, ""));
                        (percent_decode(id), percent_decode(secret))
                    }
                    None => (
                        params.get("client_id").cloned().unwrap_or_default(),
                        params.get("client_secret").cloned().unwrap_or_default(),
                    ),
                };
                let client = state.realms[realm]
                    .values()
                    .find(|c| c["clientId"] == id.as_str())
                    .cloned();
                let Some(client) = client.filter(|c| c["secret"] == secret.as_str()) else {
                    return oauth_error(
                        401,
                        "invalid_client",
                        "Invalid client or Invalid client credentials",
                    );
                };
                if client["publicClient"] == true {
                    return oauth_error(
                        401,
                        "unauthorized_client",
                        "Public client not allowed to retrieve service account",
                    );
                }
                if client["serviceAccountsEnabled"] != true {
                    return oauth_error(
                        401,
                        "unauthorized_client",
                        "Client not enabled to retrieve service account",
                    );
                }
                let lifespan = client["attributes"]["access.token.lifespan"]
                    .as_str()
                    .and_then(|l| l.parse::<u64>().ok())
                    .unwrap_or(300);
                let access = token(state, format!("{realm}/{id}"));
                answer(
                    200,
                    json!({"access_token": access, "expires_in": lifespan, "refresh_expires_in": 0,
                           "token_type": "Bearer", "not-before-policy": 0,
                           "scope": client["defaultClientScopes"].as_array().map(|s| {
                               s.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
                           }).unwrap_or_default()}),
                )
            }
            _ => oauth_error(400, "unsupported_grant_type", "Unsupported grant_type"),
        }
    }

    fn admin(
        state: &mut State,
        method: &str,
        rest: &[&str],
        query: &str,
        request: &Request,
        base: &str,
    ) -> Response {
        let body = || serde_json::from_slice::<Value>(&request.body).unwrap_or(Value::Null);
        let not_found = || answer(404, json!({"error": "Realm not found."}));
        match (method, rest) {
            ("GET", []) => answer(
                200,
                Value::Array(
                    state
                        .realms
                        .keys()
                        .map(|r| json!({"realm": r, "enabled": true}))
                        .collect(),
                ),
            ),
            ("POST", []) => {
                let representation = body();
                let Some(name) = representation["realm"].as_str().map(str::to_owned) else {
                    return answer(400, json!({"errorMessage": "Realm name cannot be empty"}));
                };
                if state.realms.contains_key(&name) {
                    return answer(
                        409,
                        json!({"errorMessage": "Conflict detected. See logs for details"}),
                    );
                }
                state.realms.insert(name.clone(), BTreeMap::new());
                created(format!("{base}/admin/realms/{name}"))
            }
            (_, [realm, ..]) if !state.realms.contains_key(*realm) => not_found(),
            ("GET", [realm]) => answer(200, json!({"realm": realm, "enabled": true})),
            ("PUT", [_]) => answer(204, Value::Null),
            ("DELETE", [realm]) => {
                state.realms.remove(*realm);
                answer(204, Value::Null)
            }
            ("GET", [realm, "clients"]) => {
                let wanted = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("clientId="))
                    .map(percent_decode);
                let list = state.realms[*realm]
                    .values()
                    .filter(|c| wanted.as_deref().is_none_or(|w| c["clientId"] == w))
                    .cloned()
                    .collect();
                answer(200, Value::Array(list))
            }
            ("POST", [realm, "clients"]) => {
                let mut client = body();
                let Some(client_id) = client["clientId"].as_str().map(str::to_owned) else {
                    return answer(400, json!({"errorMessage": "clientId is required"}));
                };
                let clients = state.realms.get(*realm).unwrap();
                if clients
                    .values()
                    .any(|c| c["clientId"] == client_id.as_str())
                {
                    return answer(
                        409,
                        json!({"errorMessage": format!("Client {client_id} already exists")}),
                    );
                }
                state.next += 1;
                let id = format!("00000000-0000-4000-8000-{:012}", state.next);
                client["id"] = id.clone().into();
                if client["secret"].is_null() && client["publicClient"] != true {
                    client["secret"] = format!("fake-secret-{}", state.next).into();
                }
                state
                    .realms
                    .get_mut(*realm)
                    .unwrap()
                    .insert(id.clone(), client);
                created(format!("{base}/admin/realms/{realm}/clients/{id}"))
            }
            (_, [realm, "clients", id, ..]) if !state.realms[*realm].contains_key(*id) => {
                answer(404, json!({"error": "Could not find client"}))
            }
            ("GET", [realm, "clients", id]) => answer(200, state.realms[*realm][*id].clone()),
            ("PUT", [realm, "clients", id]) => {
                let stored = state.realms.get_mut(*realm).unwrap().get_mut(*id).unwrap();
                let secret = stored["secret"].clone();
                *stored = body();
                stored["id"] = (*id).into();
                if stored["secret"].is_null() {
                    stored["secret"] = secret;
                }
                answer(204, Value::Null)
            }
            ("DELETE", [realm, "clients", id]) => {
                state.realms.get_mut(*realm).unwrap().remove(*id);
                answer(204, Value::Null)
            }
            ("GET", [realm, "clients", id, "client-secret"]) => answer(
                200,
                json!({"type": "secret", "value": state.realms[*realm][*id]["secret"]}),
            ),
            ("POST", [realm, "clients", id, "client-secret"]) => {
                state.next += 1;
                let secret = format!("fake-secret-{}", state.next);
                state.realms.get_mut(*realm).unwrap().get_mut(*id).unwrap()["secret"] =
                    secret.clone().into();
                answer(200, json!({"type": "secret", "value": secret}))
            }
            _ => answer(
                404,
                json!({"error": "Unable to find matching target resource method"}),
            ),
        }
    }

    /// The clients of a realm, by `clientId`.
    pub fn clients(&self, realm: &str) -> BTreeMap<String, Value> {
        let state = self.state.lock().unwrap();
        state
            .realms
            .get(realm)
            .into_iter()
            .flatten()
            .map(|(_, c)| {
                (
                    c["clientId"].as_str().unwrap_or_default().to_owned(),
                    c.clone(),
                )
            })
            .collect()
    }

    pub fn has_realm(&self, realm: &str) -> bool {
        self.state.lock().unwrap().realms.contains_key(realm)
    }

    /// Deletes every client of a realm, as an administrator would by hand.
    pub fn clear_clients(&self, realm: &str) {
        if let Some(clients) = self.state.lock().unwrap().realms.get_mut(realm) {
            clients.clear();
        }
    }
}
