//! Outbound HTTP from a controller, through `wasi:http/outgoing-handler`. The host sends a
//! request only to the origins (`scheme://host:port`) the operator granted; any other is refused
//! before a connection is made ([`HttpError::Denied`]).

use std::fmt;

/// An HTTP request. Build it with [`Request::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// An absolute URL: `http://host:port/path?query`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no response came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The operator did not grant this origin to the plugin.
    Denied(String),
    /// The URL is not one this client can send to.
    InvalidUrl(String),
    /// Connecting, sending or receiving failed (refused, timed out, TLS, DNS...).
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(origin) => write!(
                f,
                "access denied: http to {origin} is not granted (the operator adds it to the controller's grants.http)"
            ),
            HttpError::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            HttpError::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// The parts of an absolute URL `wasi:http` wants.
fn split(url: &str) -> Result<(&str, &str, &str), HttpError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HttpError::InvalidUrl(format!("{url:?} has no scheme")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(format!("{url:?} has no host")));
    }
    Ok((scheme, authority, path))
}

/// Sends a request and waits for the whole response.
pub fn send(request: &Request) -> Result<Response, HttpError> {
    let (scheme, authority, path) = split(&request.url)?;
    #[cfg(all(target_arch = "wasm32", feature = "controller"))]
    {
        wasi::send(request, scheme, authority, path)
    }
    #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
    {
        let _ = (scheme, authority, path);
        Err(HttpError::Transport(
            "outbound HTTP exists only inside the Corbel host (a wasm32 build)".into(),
        ))
    }
}

#[cfg(all(target_arch = "wasm32", feature = "controller"))]
mod wasi {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
    use wasip2::io::streams::StreamError;

    use super::{HttpError, Request, Response};

    fn transport(e: ErrorCode, origin: &str) -> HttpError {
        match e {
            ErrorCode::HttpRequestDenied => HttpError::Denied(origin.to_owned()),
            other => HttpError::Transport(format!("{other:?}")),
        }
    }

    pub fn send(
        request: &Request,
        scheme: &str,
        authority: &str,
        path: &str,
    ) -> Result<Response, HttpError> {
        let origin = format!("{scheme}://{authority}");
        let headers: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&headers)
            .map_err(|e| HttpError::InvalidUrl(format!("a header is not allowed: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match request.method.to_ascii_uppercase().as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        let scheme = match scheme {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => Scheme::Other(other.to_owned()),
        };
        let bad =
            |what: &str| HttpError::InvalidUrl(format!("{what} of {:?} was refused", request.url));
        outgoing
            .set_method(&method)
            .map_err(|()| bad("the method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| bad("the scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|()| bad("the host"))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|()| bad("the path"))?;
        let body = outgoing.body().map_err(|()| bad("the body"))?;
        let future = outgoing_handler::handle(outgoing, None).map_err(|e| transport(e, &origin))?;
        {
            let stream = body.write().map_err(|()| bad("the body"))?;
            for chunk in request.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| HttpError::Transport(format!("sending the body failed: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| transport(e, &origin))?;
        let response = loop {
            match future.get() {
                Some(result) => break result,
                None => future.subscribe().block(),
            }
        };
        let response = response
            .map_err(|()| HttpError::Transport("the response was already taken".into()))?
            .map_err(|e| transport(e, &origin))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::Transport("the response body was already taken".into()))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming.stream().map_err(|()| {
                HttpError::Transport("the response body stream was already taken".into())
            })?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(HttpError::Transport(format!(
                            "reading the body failed: {}",
                            e.to_debug_string()
                        )));
                    }
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_absolute_urls() {
        assert_eq!(
            split("http://127.0.0.1:3900/bucket?lifecycle").unwrap(),
            ("http", "127.0.0.1:3900", "/bucket?lifecycle")
        );
        assert_eq!(
            split("https://example.com").unwrap(),
            ("https", "example.com", "/")
        );
        assert!(matches!(
            split("example.com/x"),
            Err(HttpError::InvalidUrl(_))
        ));
    }
}
