//! The `keycloak` driver: Keycloak's admin REST API (Keycloak 17 and later: no `/auth` prefix),
//! with an admin token from the admin realm's token endpoint (the password grant through
//! `admin-cli`, or the client credentials of an admin client).
//!
//! Realms are created with `POST /admin/realms` (201, `Location`; 409 when it exists). Clients
//! are confidential service-account clients (`serviceAccountsEnabled`, no browser flows), found
//! with `GET …/clients?clientId=` (an array), created with `POST …/clients` (201, the internal id
//! is the last segment of `Location`; 409 for a duplicate `clientId`) and their secret read from
//! `…/clients/{id}/client-secret`. Keycloak holds one secret per client, so a rotation creates a
//! second client beside the first (see [`crate::reconcile`]).

#[cfg(any(test, feature = "fake"))]
pub mod fake;

use std::collections::BTreeMap;

use corbel_sdk::http::{Request, Response};
use serde_json::{Value, json};

use crate::api::KeycloakProvider;
use crate::backend::{self, Error, Result, Transport, form, urlencode};

/// How the controller logs in to Keycloak, read from the provider's Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCredentials {
    /// The password grant through `admin-cli`.
    Password { username: String, password: String },
    /// The client-credentials grant of an admin client (a service account with realm-admin).
    Client {
        client_id: String,
        client_secret: String,
    },
}

impl AdminCredentials {
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> std::result::Result<Self, String> {
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.clone()).ok())
                .map(|v| v.trim().to_owned())
        };
        match (
            text("username"),
            text("password"),
            text("clientId"),
            text("clientSecret"),
        ) {
            (_, _, Some(client_id), Some(client_secret)) => Ok(AdminCredentials::Client {
                client_id,
                client_secret,
            }),
            (Some(username), Some(password), _, _) => {
                Ok(AdminCredentials::Password { username, password })
            }
            _ => {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                Err(format!(
                    "it needs the keys username and password, or clientId and clientSecret (its keys: {keys:?})"
                ))
            }
        }
    }
}

/// What a client in Keycloak should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredClient {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    pub token_lifetime_seconds: Option<u32>,
}

impl DesiredClient {
    fn representation(&self, secret: Option<&str>) -> Value {
        let mappers: Vec<Value> = self
            .audience
            .iter()
            .map(|aud| {
                json!({
                    "name": format!("audience {aud}"),
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.custom.audience": aud, "access.token.claim": "true"},
                })
            })
            .collect();
        let mut attributes = json!({});
        if let Some(lifetime) = self.token_lifetime_seconds {
            attributes["access.token.lifespan"] = lifetime.to_string().into();
        }
        let mut client = json!({
            "clientId": self.client_id,
            "enabled": true,
            "protocol": "openid-connect",
            "publicClient": false,
            "serviceAccountsEnabled": true,
            "standardFlowEnabled": false,
            "implicitFlowEnabled": false,
            "directAccessGrantsEnabled": false,
            "clientAuthenticatorType": "client-secret",
            "defaultClientScopes": self.scopes,
            "protocolMappers": mappers,
            "attributes": attributes,
        });
        if let Some(secret) = secret {
            client["secret"] = secret.into();
        }
        client
    }
}

/// A logged-in admin session.
pub struct Admin {
    base: String,
    token: String,
}

fn ok(request: &Request, response: &Response, expected: &[u16]) -> Result<()> {
    if expected.contains(&response.status) {
        Ok(())
    } else {
        Err(backend::status_error(request, response))
    }
}

impl Admin {
    /// Gets an admin token from the admin realm.
    pub fn login(
        transport: &dyn Transport,
        spec: &KeycloakProvider,
        credentials: &AdminCredentials,
    ) -> Result<Admin> {
        let base = spec.url.trim_end_matches('/').to_owned();
        let body = match credentials {
            AdminCredentials::Password { username, password } => form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", username),
                ("password", password),
            ]),
            AdminCredentials::Client {
                client_id,
                client_secret,
            } => form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ]),
        };
        let request = Request::new(
            "POST",
            &format!(
                "{base}/realms/{}/protocol/openid-connect/token",
                urlencode(&spec.admin_realm)
            ),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body);
        let response = backend::send(transport, &request)?;
        if response.status != 200 {
            return Err(match backend::status_error(&request, &response) {
                // Keycloak answers a wrong password or secret with 400 or 401 depending on the
                // case and version: either way the credentials must change.
                Error::Refused(m) | Error::Auth(m) => Error::Auth(format!(
                    "{m}: the admin credentials in the IdentityProvider's Secret were refused"
                )),
                other => other,
            });
        }
        let token = backend::json_body(&request, &response)?["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::Server(format!("{} answered without access_token", request.url))
            })?;
        Ok(Admin { base, token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> Request {
        Request::new(method, &format!("{}/admin/realms{path}", self.base))
            .header("authorization", &format!("Bearer {}", self.token))
            .header("accept", "application/json")
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> Request {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// Creates the realm when missing; true when it was created.
    pub fn ensure_realm(&self, transport: &dyn Transport, name: &str) -> Result<bool> {
        let path = format!("/{}", urlencode(name));
        let request = self.request("GET", &path);
        let response = backend::send(transport, &request)?;
        match response.status {
            200 => return Ok(false),
            404 => {}
            _ => return Err(backend::status_error(&request, &response)),
        }
        let request = self.json("POST", "", &json!({"realm": name, "enabled": true}));
        let response = backend::send(transport, &request)?;
        match response.status {
            201 => Ok(true),
            // Created meanwhile by someone else: it exists, which is what was asked.
            409 => Ok(false),
            _ => Err(backend::status_error(&request, &response)),
        }
    }

    pub fn delete_realm(&self, transport: &dyn Transport, name: &str) -> Result<()> {
        let request = self.request("DELETE", &format!("/{}", urlencode(name)));
        let response = backend::send(transport, &request)?;
        ok(&request, &response, &[204, 404])
    }

    fn clients_path(realm: &str) -> String {
        format!("/{}/clients", urlencode(realm))
    }

    /// The client with this `clientId`, if any (Keycloak answers an array).
    fn find(
        &self,
        transport: &dyn Transport,
        realm: &str,
        client_id: &str,
    ) -> Result<Option<Value>> {
        let request = self.request(
            "GET",
            &format!(
                "{}?clientId={}",
                Self::clients_path(realm),
                urlencode(client_id)
            ),
        );
        let response = backend::send(transport, &request)?;
        ok(&request, &response, &[200])?;
        let found = backend::json_body(&request, &response)?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["clientId"].as_str() == Some(client_id))
            .cloned())
    }

    fn secret(&self, transport: &dyn Transport, realm: &str, id: &str) -> Result<String> {
        let request = self.request(
            "GET",
            &format!(
                "{}/{}/client-secret",
                Self::clients_path(realm),
                urlencode(id)
            ),
        );
        let response = backend::send(transport, &request)?;
        ok(&request, &response, &[200])?;
        backend::json_body(&request, &response)?["value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Server(format!("{} answered without a value", request.url)))
    }

    /// Creates the client, or brings an existing one in line; returns its internal id and
    /// secret. `secret`: the secret to set rather than Keycloak's.
    pub fn ensure_client(
        &self,
        transport: &dyn Transport,
        realm: &str,
        desired: &DesiredClient,
        secret: Option<String>,
    ) -> Result<(String, String)> {
        let representation = desired.representation(secret.as_deref());
        let id = match self.find(transport, realm, &desired.client_id)? {
            Some(existing) => {
                let id = existing["id"].as_str().unwrap_or_default().to_owned();
                let mut merged = existing;
                for (k, v) in representation.as_object().into_iter().flatten() {
                    merged[k] = v.clone();
                }
                let request = self.json(
                    "PUT",
                    &format!("{}/{}", Self::clients_path(realm), urlencode(&id)),
                    &merged,
                );
                let response = backend::send(transport, &request)?;
                ok(&request, &response, &[204, 200])?;
                id
            }
            None => {
                let request = self.json("POST", &Self::clients_path(realm), &representation);
                let response = backend::send(transport, &request)?;
                match response.status {
                    201 => response
                        .header("location")
                        .and_then(|l| l.rsplit('/').next())
                        .filter(|id| !id.is_empty())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            Error::Server(format!(
                                "POST {} answered 201 without a Location naming the client",
                                request.url
                            ))
                        })?,
                    409 => self
                        .find(transport, realm, &desired.client_id)?
                        .and_then(|c| c["id"].as_str().map(str::to_owned))
                        .ok_or_else(|| {
                            Error::Server(format!(
                                "POST {} answered 409 but no client {} is listed",
                                request.url, desired.client_id
                            ))
                        })?,
                    _ => return Err(backend::status_error(&request, &response)),
                }
            }
        };
        let secret = self.secret(transport, realm, &id)?;
        Ok((id, secret))
    }

    /// Whether the client exists with this secret (false: gone, or its secret was regenerated
    /// by hand, so the Secret must be brought up to date).
    pub fn check_client(
        &self,
        transport: &dyn Transport,
        realm: &str,
        desired: &DesiredClient,
        secret: &str,
    ) -> Result<bool> {
        let Some(existing) = self.find(transport, realm, &desired.client_id)? else {
            return Ok(false);
        };
        let id = existing["id"].as_str().unwrap_or_default();
        Ok(self.secret(transport, realm, id)? == secret)
    }

    pub fn delete_client(
        &self,
        transport: &dyn Transport,
        realm: &str,
        client_id: &str,
    ) -> Result<()> {
        let Some(existing) = self.find(transport, realm, client_id)? else {
            return Ok(());
        };
        let id = existing["id"].as_str().unwrap_or_default();
        let request = self.request(
            "DELETE",
            &format!("{}/{}", Self::clients_path(realm), urlencode(id)),
        );
        let response = backend::send(transport, &request)?;
        ok(&request, &response, &[204, 404])
    }
}
