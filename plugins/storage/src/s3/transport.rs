//! The one thing the S3 client asks of its environment: send an HTTP request, return the answer.
//!
//! In the plugin this is wasi:http; in native tests a blocking HTTP client. Plain types keep the
//! client free of any HTTP crate, and a transport free of any S3 knowledge.

/// A request ready to send: signed, so nothing in it may change on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `HEAD`, `PUT`, `DELETE`, ...
    pub method: String,
    /// The full URL, scheme, authority, encoded path and query: `http://127.0.0.1:3900/b?cors`.
    pub url: String,
    /// Names are lowercase. `host` is among them because the signature covers it: a transport
    /// that sets the authority apart from the headers (wasi:http forbids a `host` header) must
    /// send the URL's authority, which is the same value, and may drop this header.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the store answered, whatever the status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The request did not get an HTTP answer: refused connection, DNS failure, timeout, reset, TLS.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    pub fn new(message: impl Into<String>) -> TransportError {
        TransportError {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> TransportError {
        TransportError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Sends one request and waits for the whole answer.
pub trait Transport {
    /// Called once per S3 operation, with a request signed for the current time. Any HTTP status
    /// is an `Ok` answer; `Err` only when no answer came back.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}
