//! A small S3 client: AWS Signature V4 and the bucket operations the controller needs.
//!
//! [`Client`] signs each request and hands it to a [`Transport`], so the same code runs in the
//! plugin (wasi:http) and in native tests (a blocking HTTP client). Errors keep S3's own code
//! and message, sorted into [`Error`] variants by what a controller does about them.

mod client;
mod error;
mod sigv4;
mod transport;
mod xml;

pub use client::{Client, CorsRule, Credentials, LifecycleRule};
pub use error::{Error, Failure, Result};
pub use transport::{HttpRequest, HttpResponse, Transport, TransportError};
