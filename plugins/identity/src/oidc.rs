//! The `oidc` driver: any OpenID provider, found through discovery (OpenID Connect Discovery
//! 1.0), with clients created by OAuth 2.0 Dynamic Client Registration (RFC 7591) and read,
//! updated and deleted through its management protocol (RFC 7592) with the registration access
//! token each registration returns.
//!
//! RFC 7591/7592 give a client one secret, and a provider assigns the `client_id`: a rotation
//! therefore registers a new client beside the old one ([`crate::reconcile`] keeps both during
//! the overlap and deletes the old registration after it).

use corbel_sdk::http::Request;
use serde_json::{Value, json};

use crate::backend::{self, Error, Result, Transport};

/// What discovery says about a provider, as far as machine-to-machine clients care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub registration_endpoint: Option<String>,
    pub grant_types: Vec<String>,
    pub token_endpoint_auth_methods: Vec<String>,
    pub scopes: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Reads `<issuer>/.well-known/openid-configuration` and checks that it speaks for `issuer`.
pub fn discover(transport: &dyn Transport, issuer: &str) -> Result<Discovery> {
    let issuer = issuer.trim_end_matches('/');
    let request = Request::new("GET", &format!("{issuer}/.well-known/openid-configuration"))
        .header("accept", "application/json");
    let response = backend::send(transport, &request)?;
    if response.status != 200 {
        return Err(match backend::status_error(&request, &response) {
            // A 4xx here is not about credentials: the issuer URL is wrong.
            Error::Auth(m) | Error::Refused(m) => {
                Error::Refused(format!("{m}: is {issuer} the provider's issuer URL?"))
            }
            other => other,
        });
    }
    let body = backend::json_body(&request, &response)?;
    let field = |name: &str| -> Result<String> {
        body[name].as_str().map(str::to_owned).ok_or_else(|| {
            Error::Server(format!(
                "{} has no {name}: not an OpenID provider's discovery document",
                request.url
            ))
        })
    };
    let announced = field("issuer")?;
    // OpenID Connect Discovery §4.3: the issuer in the document must be the one asked for.
    if announced.trim_end_matches('/') != issuer {
        return Err(Error::Refused(format!(
            "{} announces issuer {announced}, not {issuer}: set spec.oidc.issuer to the provider's own issuer",
            request.url
        )));
    }
    Ok(Discovery {
        issuer: announced,
        token_endpoint: field("token_endpoint")?,
        jwks_uri: field("jwks_uri")?,
        registration_endpoint: body["registration_endpoint"].as_str().map(str::to_owned),
        grant_types: strings(&body["grant_types_supported"]),
        token_endpoint_auth_methods: strings(&body["token_endpoint_auth_methods_supported"]),
        scopes: strings(&body["scopes_supported"]),
    })
}

/// The metadata a machine-to-machine client is registered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub client_name: String,
    /// Space-separated, RFC 7591's `scope`; empty for none.
    pub scope: String,
}

impl Metadata {
    fn to_json(&self) -> Value {
        let mut body = json!({
            "client_name": self.client_name,
            "grant_types": ["client_credentials"],
            // A client-credentials client has no authorization endpoint flows.
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic",
        });
        if !self.scope.is_empty() {
            body["scope"] = self.scope.clone().into();
        }
        body
    }
}

/// A registered client and how to manage it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub client_id: String,
    pub client_secret: String,
    pub registration_client_uri: String,
    pub registration_access_token: String,
}

fn registration(request: &Request, body: &Value) -> Result<Registration> {
    let field = |name: &str| -> Result<String> {
        body[name].as_str().map(str::to_owned).ok_or_else(|| {
            Error::Server(format!(
                "{} {} answered without {name}{}",
                request.method,
                request.url,
                if name.starts_with("registration") {
                    ": the provider does not offer registration management (RFC 7592), which the controller needs to update and delete clients"
                } else {
                    ""
                }
            ))
        })
    };
    Ok(Registration {
        client_id: field("client_id")?,
        client_secret: field("client_secret")?,
        registration_client_uri: field("registration_client_uri")?,
        registration_access_token: field("registration_access_token")?,
    })
}

/// Registers a new client (RFC 7591 §3.1), with the initial access token when the provider
/// asks for one.
pub fn register(
    transport: &dyn Transport,
    endpoint: &str,
    initial_access_token: Option<&str>,
    metadata: &Metadata,
) -> Result<Registration> {
    let mut request = Request::new("POST", endpoint)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(metadata.to_json().to_string());
    if let Some(token) = initial_access_token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let response = backend::send(transport, &request)?;
    if response.status != 201 && response.status != 200 {
        return Err(backend::status_error(&request, &response));
    }
    registration(&request, &backend::json_body(&request, &response)?)
}

/// What a read of a registration found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The client exists with this metadata; a provider that rotates registration access tokens
    /// (RFC 7592 §3) returns a new one, which replaces the old.
    Exists {
        metadata: Metadata,
        registration_access_token: Option<String>,
    },
    /// The provider no longer knows the client (deleted by hand, or the provider lost it): RFC
    /// 7592 §2.1 answers 401 as for a bad token, or 403/404.
    Gone,
}

fn authorized(request: Request, registration: &Registration) -> Request {
    request
        .header(
            "authorization",
            &format!("Bearer {}", registration.registration_access_token),
        )
        .header("accept", "application/json")
}

/// Reads a registration (RFC 7592 §2.1).
pub fn read(transport: &dyn Transport, registration: &Registration) -> Result<Found> {
    let request = authorized(
        Request::new("GET", &registration.registration_client_uri),
        registration,
    );
    let response = backend::send(transport, &request)?;
    match response.status {
        200 => {
            let body = backend::json_body(&request, &response)?;
            Ok(Found::Exists {
                metadata: Metadata {
                    client_name: body["client_name"].as_str().unwrap_or_default().to_owned(),
                    scope: body["scope"].as_str().unwrap_or_default().to_owned(),
                },
                registration_access_token: body["registration_access_token"]
                    .as_str()
                    .filter(|t| *t != registration.registration_access_token)
                    .map(str::to_owned),
            })
        }
        401 | 403 | 404 => Ok(Found::Gone),
        _ => Err(backend::status_error(&request, &response)),
    }
}

/// Replaces the registration's metadata (RFC 7592 §2.2), keeping its id and secret. Returns
/// the new registration access token when the provider rotated it.
pub fn update(
    transport: &dyn Transport,
    registration: &Registration,
    metadata: &Metadata,
) -> Result<Option<String>> {
    let mut body = metadata.to_json();
    // §2.2: the request carries the client's id and secret as they are.
    body["client_id"] = registration.client_id.clone().into();
    body["client_secret"] = registration.client_secret.clone().into();
    let request = authorized(
        Request::new("PUT", &registration.registration_client_uri),
        registration,
    )
    .header("content-type", "application/json")
    .body(body.to_string());
    let response = backend::send(transport, &request)?;
    if response.status != 200 {
        return Err(backend::status_error(&request, &response));
    }
    let body = backend::json_body(&request, &response)?;
    Ok(body["registration_access_token"]
        .as_str()
        .filter(|t| *t != registration.registration_access_token)
        .map(str::to_owned))
}

/// Deletes a registration (RFC 7592 §2.3). A client the provider no longer knows is deleted.
pub fn delete(transport: &dyn Transport, registration: &Registration) -> Result<()> {
    let request = authorized(
        Request::new("DELETE", &registration.registration_client_uri),
        registration,
    );
    let response = backend::send(transport, &request)?;
    match response.status {
        200 | 204 | 401 | 403 | 404 => Ok(()),
        _ => Err(backend::status_error(&request, &response)),
    }
}
