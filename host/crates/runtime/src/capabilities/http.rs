//! Outbound `wasi:http`, limited to the granted `scheme://host:port` origins. A request anywhere
//! else is refused before any connection is made, with `HTTP-request-denied`, and logged with
//! the origin so the operator sees which grant is missing.

use std::sync::Arc;

use wasmtime_wasi_http::{RequestOptions, WasiHttpHooks};

use super::HttpGrant;

/// The `wasi:http` hooks of one sandbox.
pub struct Hooks {
    pub grants: Arc<[HttpGrant]>,
    pub plugin: Arc<str>,
}

impl Hooks {
    pub fn deny_all(plugin: Arc<str>) -> Hooks {
        Hooks {
            grants: Arc::from(Vec::new()),
            plugin,
        }
    }

    fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.grants.iter().any(|g| g.allows(scheme, host, port))
    }
}

type Response = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<wasmtime_wasi_http::WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Response {
        if !self.allows(request.uri()) {
            let uri = request.uri();
            tracing::warn!(
                plugin = %self.plugin,
                method = %request.method(),
                origin = format!("{}://{}", uri.scheme_str().unwrap_or("https"), uri.authority().map(|a| a.as_str()).unwrap_or("")),
                "http: request refused: this origin is not granted to the plugin (add it to the controller's grants.http)"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
