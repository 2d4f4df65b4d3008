//! What the drivers share: the HTTP [`Transport`] (wasi:http in the component, a fake or a
//! native client in tests), the [`Error`] every provider call ends in, sorted by what helps, and
//! the small encodings OAuth needs (form bodies, client_secret_basic).

use base64::Engine;
use corbel_sdk::http::{HttpError, Request, Response};
use serde_json::Value;

/// Sends one HTTP request and waits for the whole response.
pub trait Transport {
    fn send(&self, request: &Request) -> std::result::Result<Response, HttpError>;
}

/// Why a call to a provider did not do what was asked. Every message names the method and URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No answer (refused, timed out, DNS): the provider may come back.
    Unreachable(String),
    /// The host refused the origin: the operator has to grant it.
    Denied { origin: String, message: String },
    /// The provider refused the credentials (401/403 to an admin or registration call).
    Auth(String),
    /// The provider refused the request as invalid (other 4xx): the spec must change.
    Refused(String),
    /// The provider failed (5xx) or answered something this client cannot read.
    Server(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable(m)
            | Error::Auth(m)
            | Error::Refused(m)
            | Error::Server(m)
            | Error::Denied { message: m, .. } => f.write_str(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Sends `request`; a transport failure becomes [`Error::Unreachable`] or [`Error::Denied`].
pub fn send(transport: &dyn Transport, request: &Request) -> Result<Response> {
    let what = format!("{} {}", request.method, request.url);
    transport.send(request).map_err(|e| match e {
        HttpError::Denied(origin) => Error::Denied {
            message: format!(
                "{what}: the host refused the origin {origin}: grant it in the identity controller's grants.http"
            ),
            origin,
        },
        HttpError::InvalidUrl(m) => Error::Refused(format!("{what}: {m}")),
        HttpError::Transport(m) => Error::Unreachable(format!("{what}: {m}")),
    })
}

/// The error a non-success answer stands for, with the provider's own words (OAuth's
/// `error`/`error_description`, Keycloak's `errorMessage`) when it gave some.
pub fn status_error(request: &Request, response: &Response) -> Error {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let said = [
        body["error"].as_str(),
        body["error_description"].as_str(),
        body["errorMessage"].as_str(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(": ");
    let message = format!(
        "{} {} answered {}{}",
        request.method,
        request.url,
        response.status,
        if said.is_empty() {
            String::new()
        } else {
            format!(" ({said})")
        }
    );
    match response.status {
        401 | 403 => Error::Auth(message),
        400..=499 => Error::Refused(message),
        _ => Error::Server(message),
    }
}

/// The body as JSON, or [`Error::Server`] naming the request.
pub fn json_body(request: &Request, response: &Response) -> Result<Value> {
    serde_json::from_slice(&response.body).map_err(|e| {
        Error::Server(format!(
            "{} {} answered {} with a body that is not JSON: {e}",
            request.method, request.url, response.status
        ))
    })
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a form body or a query).
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Authorization: Basic …` for `client_secret_basic`: RFC 6749 §2.3.1 form-encodes both parts
/// before joining them.
pub fn basic(client_id: &str, client_secret: &str) -> String {
    let pair = format!("{}:{}", urlencode(client_id), urlencode(client_secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_encode_reserved_characters() {
        assert_eq!(
            form(&[("grant_type", "client_credentials"), ("scope", "a b/c")]),
            "grant_type=client_credentials&scope=a%20b%2Fc"
        );
    }

    #[test]
    fn status_errors_carry_the_providers_words() {
        let request = Request::new("POST", "http://idp.test/reg");
        let response = Response {
            status: 400,
            headers: Vec::new(),
            body: br#"{"error":"invalid_client_metadata","error_description":"scope must be a string"}"#.to_vec(),
        };
        let e = status_error(&request, &response);
        assert_eq!(
            e,
            Error::Refused(
                "POST http://idp.test/reg answered 400 (invalid_client_metadata: scope must be a string)".into()
            )
        );
    }
}
