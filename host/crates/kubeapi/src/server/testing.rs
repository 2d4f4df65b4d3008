//! What the server's unit tests share: an API over a fresh store in a temporary folder, calls
//! through the same route handlers the router uses, and answers read back as JSON. (The
//! end-to-end tests in `tests/embedded.rs` drive the real binary; these drive one file's
//! behaviour each.)

use std::path::PathBuf;

use arc_swap::ArcSwap;
use corbel_auth::{AuthConfig, Authenticator, Authorizer};
use corbel_store::{Retention, Store};

#[allow(unused_imports)]
use super::*;

/// The bearer token of the test's user, who may do anything.
pub(crate) const TOKEN: &str = "kubeapi-unit-test-token";

/// An API over a store in a temporary folder, removed when dropped.
pub(crate) struct TestApi {
    pub(crate) api: Arc<KubeApi>,
    dir: PathBuf,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh API with the built-in kinds, the `default` namespace and no bindings.
pub(crate) async fn api() -> TestApi {
    api_with(Retention::default()).await
}

/// [`api`] whose store keeps `retention` of its event log for watches to resume from.
pub(crate) async fn api_with(retention: Retention) -> TestApi {
    let dir = std::env::temp_dir().join(format!("corbel-kubeapi-test-{}", uuid::Uuid::new_v4()));
    let store =
        Store::open_with_retention(&dir, retention).expect("a store in a temporary folder opens");
    let (user, rule) = corbel_auth::host_identity();
    let authenticator = Authenticator::new(&AuthConfig::default(), vec![(TOKEN.to_owned(), user)])
        .await
        .expect("a static token is accepted");
    let api = KubeApi::new(
        store,
        authenticator,
        Authorizer::new(vec![rule]),
        Arc::new(ArcSwap::from_pointee(None)),
        Vec::new(),
        None,
    )
    .await
    .expect("the API opens");
    TestApi { api, dir }
}

/// A request to `/api/...` or `/apis/...`, as the router would hand it to its handler.
pub(crate) struct Call {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

/// A call with the test user's token.
pub(crate) fn call(method: Method, path: &str) -> Call {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().expect("a valid header"),
    );
    Call {
        method,
        path: path.to_owned(),
        query: BTreeMap::new(),
        headers,
        body: Bytes::new(),
    }
}

impl Call {
    pub(crate) fn query(mut self, key: &str, value: &str) -> Self {
        self.query.insert(key.to_owned(), value.to_owned());
        self
    }

    pub(crate) fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        self.headers
            .insert(name, value.parse().expect("a valid header"));
        self
    }

    pub(crate) fn without_token(mut self) -> Self {
        self.headers.remove(header::AUTHORIZATION);
        self
    }

    pub(crate) fn body(mut self, body: impl ToString) -> Self {
        self.body = Bytes::from(body.to_string());
        self
    }

    /// The handler's response.
    pub(crate) async fn send(self, api: &TestApi) -> Response {
        let state = State(api.api.clone());
        let query = Query(self.query);
        if let Some(rest) = self.path.strip_prefix("/api/") {
            routes::core(
                state,
                Path(rest.to_owned()),
                self.method,
                query,
                self.headers,
                self.body,
            )
            .await
        } else if let Some(rest) = self.path.strip_prefix("/apis/") {
            routes::apis(
                state,
                Path(rest.to_owned()),
                self.method,
                query,
                self.headers,
                self.body,
            )
            .await
        } else {
            panic!("{} is not an API path", self.path)
        }
    }

    /// Sends the call, checks that it was refused with `code` and a Status, and returns the
    /// Status's message.
    pub(crate) async fn refused(self, api: &TestApi, code: StatusCode) -> String {
        let (got, body) = self.json(api).await;
        assert_eq!(got, code, "{body}");
        assert_eq!(body["kind"], "Status", "{body}");
        body["message"].as_str().unwrap_or_default().to_owned()
    }

    /// The status code and the JSON body of the handler's response.
    pub(crate) async fn json(self, api: &TestApi) -> (StatusCode, Value) {
        read(self.send(api).await).await
    }
}

/// A response's status code and JSON body.
pub(crate) async fn read(response: Response) -> (StatusCode, Value) {
    let code = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body is read");
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "the body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (code, value)
}

/// The ConfigMaps of the `default` namespace.
pub(crate) const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// Creates a ConfigMap in `default` from `body`, which must succeed; returns what was stored.
pub(crate) async fn create_configmap(api: &TestApi, body: Value) -> Value {
    let (code, object) = call(Method::POST, CONFIGMAPS).body(body).json(api).await;
    assert_eq!(code, StatusCode::CREATED, "{object}");
    object
}

/// A kind as the registry would hold it, for tests that need one without an API.
pub(crate) fn kind(group: &str, kind: &str, plural: &str, namespaced: bool) -> Kind {
    Kind {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: Vec::new(),
        namespaced,
        status_subresource: false,
        schema: None,
        columns: Vec::new(),
    }
}

/// The lines of a streamed (watch) response, as JSON, until `count` have come or a second
/// passes without one.
pub(crate) async fn lines(response: Response, count: usize) -> Vec<Value> {
    use futures::StreamExt as _;
    let mut stream = response.into_body().into_data_stream();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    while out.len() < count {
        let chunk = match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
            Ok(Some(chunk)) => chunk.expect("the stream does not fail"),
            Ok(None) | Err(_) => break,
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            out.push(serde_json::from_slice(&line).expect("each line is JSON"));
        }
    }
    out
}
