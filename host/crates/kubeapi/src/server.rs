//! The HTTP side of the embedded API: paths and verbs as Kubernetes', so kubectl and kube-rs work
//! against it unchanged. Handlers parse the path, authenticate and authorize, then call the store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use super::KubeApi;
use super::registry::{CRD_GROUP, Kind};
use super::selectors::{FieldSelector, LabelSelector};
use corbel_auth::{RequestAttributes, UserInfo};
use corbel_store::{Deleted, EventType, ObjectKey, StoreError, UpdateMode};

/// The Kubernetes version the API presents itself as (discovery, `kubectl version`).
const MINOR: &str = "33";

pub fn router(api: Arc<KubeApi>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/apis", get(group_list))
        .route("/api/{*rest}", any(core))
        .route("/apis/{*rest}", any(apis))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*group_version}", get(openapi_group_version))
        .with_state(api)
}

// ---------------------------------------------------------------------------------------------
// Errors as Kubernetes Status objects.

pub(crate) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    fn invalid(kind: &Kind, name: &str, causes: Vec<(String, String, String)>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|(_, _, message)| message.clone())
            .collect();
        let message = format!(
            "{} {name:?} is invalid: {}",
            kind.qualified_kind(),
            summary.join(", ")
        );
        // A cause's message does not repeat its field, as in the API server's Status.
        let causes: Vec<Value> = causes
            .into_iter()
            .map(|(field, reason, message)| {
                let message = message
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&message)
                    .to_owned();
                json!({"field": field, "reason": reason, "message": message})
            })
            .collect();
        Self {
            code: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message,
            details: Some(
                json!({"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}),
            ),
        }
    }

    fn store(kind: &Kind, name: &str, error: StoreError) -> Self {
        let details = json!({"name": name, "group": kind.group, "kind": kind.plural});
        let with = |code, reason, message: String| Self {
            code,
            reason,
            message,
            details: Some(details.clone()),
        };
        match error {
            StoreError::NotFound(_) => with(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {name:?} not found", kind.qualified()),
            ),
            StoreError::AlreadyExists(_) => with(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {name:?} already exists", kind.qualified()),
            ),
            StoreError::Conflict { reason, .. } => with(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: {reason}",
                    kind.qualified()
                ),
            ),
            StoreError::Gone { requested, oldest } => Self::new(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {requested} ({oldest})"),
            ),
            StoreError::Invalid(message) => {
                with(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
            }
            StoreError::Storage(message) => {
                tracing::error!(error = %message, "store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "an internal error occurred; the server log has the details",
                )
            }
        }
    }

    fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, axum::Json(self.body())).into_response()
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

// ---------------------------------------------------------------------------------------------
// Discovery.

async fn version() -> Response {
    axum::Json(json!({
        "major": "1", "minor": MINOR, "gitVersion": format!("v1.{MINOR}.0-corbel.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "rustc", "platform": "linux/amd64",
    }))
    .into_response()
}

async fn core_versions() -> Response {
    axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}))
        .into_response()
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]})
}

async fn group_list(State(api): State<Arc<KubeApi>>) -> Response {
    let groups: Vec<Value> = api
        .registry
        .groups()
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

fn resource_list(api: &KubeApi, group: &str, version: &str) -> ApiResult {
    let kinds = api.registry.kinds_of(group, version);
    if kinds.is_empty() {
        return Err(ApiError::not_found(format!(
            "the server could not find the requested resource (group version {group}/{version})"
        )));
    }
    let mut resources = Vec::new();
    for k in &kinds {
        resources.push(json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": k.short_names,
        }));
        if k.status_subresource {
            resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(axum::Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})).into_response())
}

/// The OpenAPI v3 index: one document per group/version. kubectl reads it to learn that the server
/// validates fields itself (`fieldValidation`), and then leaves validation to the server.
async fn openapi_root(State(api): State<Arc<KubeApi>>) -> Response {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1"}),
    );
    for (group, versions) in api.registry.groups() {
        for version in versions {
            let path = format!("apis/{group}/{version}");
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
            );
        }
    }
    axum::Json(json!({"paths": paths})).into_response()
}

/// One group/version's document: a PATCH operation per kind with its group-version-kind and the
/// `fieldValidation` parameter. Schemas are not published (so `kubectl explain` does not work).
async fn openapi_group_version(
    State(api): State<Arc<KubeApi>>,
    Path(group_version): Path<String>,
) -> Response {
    let (group, version) = match group_version.split('/').collect::<Vec<_>>().as_slice() {
        ["api", "v1"] => (String::new(), "v1".to_owned()),
        ["apis", group, version] => ((*group).to_owned(), (*version).to_owned()),
        _ => return ApiError::not_found("no such OpenAPI document").into_response(),
    };
    let mut paths = serde_json::Map::new();
    for kind in api.registry.kinds_of(&group, &version) {
        let prefix = if group.is_empty() {
            "/api/v1".to_owned()
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if kind.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", kind.plural)
        } else {
            format!("{prefix}/{}/{{name}}", kind.plural)
        };
        let operation = json!({
            "x-kubernetes-group-version-kind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            "responses": {"200": {"description": "OK"}},
        });
        paths.insert(path, json!({"patch": operation.clone(), "put": operation}));
    }
    if paths.is_empty() {
        return ApiError::not_found(format!("no OpenAPI document for {group_version}"))
            .into_response();
    }
    axum::Json(json!({"openapi": "3.0.0", "info": {"title": "Corbel", "version": format!("v1.{MINOR}")}, "paths": paths})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Routing of resource paths.

async fn core(
    State(api): State<Arc<KubeApi>>,
    Path(rest): Path<String>,
    method: Method,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let result = match segments.as_slice() {
        ["v1"] => resource_list(&api, "", "v1"),
        ["v1", path @ ..] => resource(&api, "", "v1", path, method, &query, &headers, body).await,
        _ => Err(ApiError::not_found(
            "the server could not find the requested resource",
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn apis(
    State(api): State<Arc<KubeApi>>,
    Path(rest): Path<String>,
    method: Method,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let result = match segments.as_slice() {
        [group] => match api.registry.groups().get(*group) {
            Some(versions) => Ok(axum::Json(group_json(group, versions)).into_response()),
            None => Err(ApiError::not_found(format!(
                "the server could not find the requested resource (group {group})"
            ))),
        },
        [group, version] => resource_list(&api, group, version),
        [group, version, path @ ..] => {
            resource(&api, group, version, path, method, &query, &headers, body).await
        }
        _ => Err(ApiError::not_found(
            "the server could not find the requested resource",
        )),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A parsed resource path.
pub(crate) struct Target {
    pub(crate) kind: Arc<Kind>,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    /// The status subresource.
    pub(crate) status: bool,
}

fn parse_target(api: &KubeApi, group: &str, version: &str, path: &[&str]) -> ApiResult<Target> {
    let not_found = || ApiError::not_found("the server could not find the requested resource");
    // `/api/v1/namespaces/{name}/status` is the namespace's own subresource, not a resource "status".
    let namespace_subresource = group.is_empty()
        && path.len() == 3
        && path[0] == "namespaces"
        && matches!(path[2], "status" | "finalize");
    let (namespace, rest) = if path.len() >= 3 && path[0] == "namespaces" && !namespace_subresource
    {
        (Some(path[1].to_owned()), &path[2..])
    } else {
        (None, path)
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(not_found()),
    };
    let kind = api
        .registry
        .find(group, version, plural)
        .ok_or_else(not_found)?;
    let status = match sub {
        None => false,
        Some("status") if kind.status_subresource => true,
        Some(_) => return Err(not_found()),
    };
    if namespace.is_some() && !kind.namespaced {
        return Err(not_found());
    }
    if namespace.is_none() && kind.namespaced && name.is_some() {
        return Err(not_found());
    }
    Ok(Target {
        kind,
        namespace,
        name: name.map(str::to_owned),
        status,
    })
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    api: &Arc<KubeApi>,
    group: &str,
    version: &str,
    path: &[&str],
    method: Method,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult {
    let target = parse_target(api, group, version, path)?;
    if !body.is_empty() && method != Method::PATCH {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !matches!(essence, "application/json" | "application/yaml" | "") {
            // Protobuf and CBOR bodies: clients fall back to JSON when they get 415.
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {essence})"
                ),
            ));
        }
    }
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, false) if watching => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            ));
        }
    };
    let user = api.authenticate(headers).await?;
    api.authorize(
        &user,
        &RequestAttributes {
            verb,
            group,
            resource: &target.kind.plural,
            subresource: target.status.then_some("status"),
            namespace: target.namespace.as_deref(),
            name: target.name.as_deref(),
        },
    )?;
    match verb {
        "list" => list(api, &target, query, headers),
        "watch" => watch(api, &target, query),
        "get" => get_one(api, &target),
        "create" => create(api, &target, &user, query, &body).await,
        "update" => replace(api, &target, &user, &body).await,
        "patch" => patch(api, &target, &user, headers, &body).await,
        "delete" => delete(api, &target, &user, &body).await,
        _ => delete_collection(api, &target, &user, query).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Verbs.

fn key(target: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(
        &target.kind.group,
        &target.kind.plural,
        target.namespace.as_deref(),
        name,
    )
}

/// Sets apiVersion and kind for the version the client asked for (objects are stored once, in
/// whatever version wrote them last; versions of a CRD share one schema-less representation).
fn present(kind: &Kind, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), kind.api_version().into());
        map.insert("kind".into(), kind.kind.clone().into());
    }
    object
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).expect("JSON values serialize"),
    )
        .into_response()
}

fn filters(query: &BTreeMap<String, String>) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn object_labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .map(super::selectors::labels)
        .unwrap_or_default()
}

fn list(
    api: &KubeApi,
    target: &Target,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult {
    let (labels, fields) = filters(query)?;
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("limit {l:?} is not a number")))?,
        )
        .filter(|l| *l > 0),
        None => None,
    };
    use base64::Engine as _;
    let after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::bad_request("the continue token is not valid"))?,
        ),
        None => None,
    };
    let prefix = ObjectKey::prefix(
        &target.kind.group,
        &target.kind.plural,
        target.namespace.as_deref(),
    );
    let keep = |o: &Value| labels.matches(&object_labels(o)) && fields.matches(o);
    let page = api
        .store
        .list(&prefix, after.as_deref(), limit, &keep)
        .map_err(|e| ApiError::store(&target.kind, "", e))?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|o| present(&target.kind, o))
        .collect();
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(next) = page.next {
        metadata["continue"] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(next)
            .into();
    }
    let wants_table = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    if wants_table {
        return Ok(json_response(
            StatusCode::OK,
            &super::table::table(&target.kind, &items, metadata),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &list_of(&target.kind, metadata, items),
    ))
}

/// A `{Kind}List`. The items are moved in, not copied: `json!` would serialize a second copy of
/// every item, which for a large list doubles the peak memory of the answer.
fn list_of(kind: &Kind, metadata: Value, items: Vec<Value>) -> Value {
    let mut list = serde_json::Map::new();
    list.insert("apiVersion".into(), kind.api_version().into());
    list.insert("kind".into(), format!("{}List", kind.kind).into());
    list.insert("metadata".into(), metadata);
    list.insert("items".into(), Value::Array(items));
    Value::Object(list)
}

fn get_one(api: &KubeApi, target: &Target) -> ApiResult {
    let name = target.name.as_deref().unwrap_or_default();
    let object = api
        .store
        .get(&key(target, name))
        .map_err(|e| ApiError::store(&target.kind, name, e))?;
    Ok(json_response(
        StatusCode::OK,
        &present(&target.kind, object),
    ))
}

fn parse_body(body: &Bytes) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body)
        .or_else(|_| serde_yaml_ng::from_slice(body))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not a JSON or YAML object: {e}"
            ))
        })?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

/// Checks apiVersion, kind and namespace of a submitted object against the path, fills them in,
/// and for kinds with a schema applies defaults, prunes unknown fields and validates.
fn prepare(target: &Target, object: &mut Value, name: &str) -> ApiResult<()> {
    let kind = &target.kind;
    if let Some(v) = object.get("apiVersion").and_then(Value::as_str)
        && v != kind.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            kind.api_version()
        )));
    }
    if let Some(k) = object.get("kind").and_then(Value::as_str)
        && k != kind.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            kind.kind
        )));
    }
    if let Some(ns) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        && Some(ns) != target.namespace.as_deref()
        && kind.namespaced
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let object_map = object.as_object_mut().expect("checked to be an object");
    object_map.insert("apiVersion".into(), kind.api_version().into());
    object_map.insert("kind".into(), kind.kind.clone().into());
    if kind.group.is_empty() && kind.plural == "secrets" {
        secret_string_data(object);
    }
    if let Some(schema) = &kind.schema {
        schema.apply_defaults(object);
        schema.prune(object);
        let errors = schema.validate(object);
        if !errors.is_empty() {
            let causes = errors
                .into_iter()
                .map(|e| {
                    (
                        e.field.clone(),
                        e.kind.reason().to_owned(),
                        e.message.clone(),
                    )
                })
                .collect();
            return Err(ApiError::invalid(kind, name, causes));
        }
    }
    if kind.group == CRD_GROUP && kind.plural == "customresourcedefinitions" {
        check_crd(kind, object, name)?;
    }
    Ok(())
}

/// `stringData` is write-only sugar: its entries are base64-encoded into `data`.
fn secret_string_data(object: &mut Value) {
    use base64::Engine as _;
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                base64::engine::general_purpose::STANDARD
                    .encode(text)
                    .into(),
            );
        }
    }
}

fn check_crd(kind: &Kind, crd: &Value, name: &str) -> ApiResult<()> {
    let invalid = |field: &str, message: String| {
        ApiError::invalid(
            kind,
            name,
            vec![(
                field.into(),
                "FieldValueInvalid".into(),
                format!("{field}: {message}"),
            )],
        )
    };
    super::registry::kinds_of_crd(crd).map_err(|e| invalid("spec", e))?;
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

async fn create(
    api: &Arc<KubeApi>,
    target: &Target,
    user: &UserInfo,
    query: &BTreeMap<String, String>,
    body: &Bytes,
) -> ApiResult {
    let mut object = parse_body(body)?;
    let name = match object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(name) => name.to_owned(),
        None => match object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(prefix) => format!("{prefix}{}", random_suffix()),
            None => {
                return Err(ApiError::invalid(
                    &target.kind,
                    "",
                    vec![(
                        "metadata.name".into(),
                        "FieldValueRequired".into(),
                        "metadata.name: Required value: name or generateName is required".into(),
                    )],
                ));
            }
        },
    };
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            &target.kind,
            &name,
            vec![(
                "metadata.name".into(),
                "FieldValueInvalid".into(),
                format!(
                    "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            )],
        ));
    }
    prepare(target, &mut object, &name)?;
    if let Some(ns) = &target.namespace
        && api
            .store
            .get(&ObjectKey::new("", "namespaces", None, ns))
            .is_err()
    {
        return Err(ApiError::not_found(format!("namespaces {ns:?} not found")));
    }
    let object = api
        .admit(target, user, "CREATE", Some(&object), None, &name)
        .await?
        .unwrap_or(object);
    if query.get("dryRun").is_some_and(|d| d == "All") {
        return Ok(json_response(
            StatusCode::CREATED,
            &present(&target.kind, object),
        ));
    }
    let created = api
        .store
        .create(key(target, &name), object)
        .await
        .map_err(|e| ApiError::store(&target.kind, &name, e))?;
    let created = api.after_write(&target.kind, created).await;
    Ok(json_response(
        StatusCode::CREATED,
        &present(&target.kind, created),
    ))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn mode(target: &Target) -> UpdateMode {
    if target.status {
        UpdateMode::Status
    } else {
        UpdateMode::Main {
            status_subresource: target.kind.status_subresource,
        }
    }
}

async fn replace(api: &Arc<KubeApi>, target: &Target, user: &UserInfo, body: &Bytes) -> ApiResult {
    let mut object = parse_body(body)?;
    let name = target.name.clone().unwrap_or_default();
    if let Some(theirs) = object.pointer("/metadata/name").and_then(Value::as_str)
        && theirs != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({theirs}) does not match the name on the URL ({name})"
        )));
    }
    prepare(target, &mut object, &name)?;
    write(api, target, user, object).await
}

/// Admission, then the store's update, for PUT and PATCH alike.
async fn write(api: &Arc<KubeApi>, target: &Target, user: &UserInfo, object: Value) -> ApiResult {
    let name = target.name.clone().unwrap_or_default();
    // The old object is read only for inline admission; without bindings, the store alone checks.
    let object = if api.inline.is_empty() {
        object
    } else {
        let old = api
            .store
            .get(&key(target, &name))
            .map_err(|e| ApiError::store(&target.kind, &name, e))?;
        api.admit(target, user, "UPDATE", Some(&object), Some(&old), &name)
            .await?
            .unwrap_or(object)
    };
    let updated = api
        .store
        .update(key(target, &name), object, mode(target))
        .await
        .map_err(|e| ApiError::store(&target.kind, &name, e))?;
    let updated = api.after_write(&target.kind, updated).await;
    Ok(json_response(
        StatusCode::OK,
        &present(&target.kind, updated),
    ))
}

async fn patch(
    api: &Arc<KubeApi>,
    target: &Target,
    user: &UserInfo,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult {
    let name = target.name.clone().unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let key = key(target, &name);
    // A patch applies to the latest object; if another write lands in between, apply it again.
    for _ in 0..5 {
        let current = match api.store.get(&key) {
            Ok(current) => current,
            Err(StoreError::NotFound(_)) if content_type == "application/apply-patch+yaml" => {
                return create(api, target, user, &BTreeMap::new(), body).await;
            }
            Err(e) => return Err(ApiError::store(&target.kind, &name, e)),
        };
        let mut patched = present(&target.kind, current.clone());
        match content_type {
            "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/apply-patch+yaml" => {
                let patch = parse_body(body)?;
                json_patch::merge(&mut patched, &patch);
            }
            "application/json-patch+json" => {
                let mut patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("the body is not a JSON Patch: {e}"))
                })?;
                // The API server's JSON Patch treats a missing member as null for `test`, so
                // `test /metadata/finalizers == null` passes on an object without finalizers
                // (kube-runtime's finalizer helper relies on it). RFC 6902 would fail it.
                patch.0.retain(|op| match op {
                    json_patch::PatchOperation::Test(test) => {
                        !(test.value.is_null() && patched.pointer(test.path.as_str()).is_none())
                    }
                    _ => true,
                });
                json_patch::patch(&mut patched, &patch).map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        format!("the JSON Patch does not apply: {e}"),
                    )
                })?;
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    format!(
                        "the patch content type {other:?} is not supported: use application/merge-patch+json, application/json-patch+json, application/strategic-merge-patch+json or application/apply-patch+yaml"
                    ),
                ));
            }
        }
        // Without a resourceVersion in the patch, the patch applies to what was just read.
        let explicit_rv = patched.pointer("/metadata/resourceVersion")
            != current.pointer("/metadata/resourceVersion");
        if !explicit_rv {
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        }
        prepare(target, &mut patched, &name)?;
        match write(api, target, user, patched).await {
            Err(e) if e.reason == "Conflict" && !explicit_rv => continue,
            other => return other,
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "{} {name:?} kept changing while the patch was applied; retry",
            target.kind.qualified()
        ),
    ))
}

async fn delete(api: &Arc<KubeApi>, target: &Target, user: &UserInfo, body: &Bytes) -> ApiResult {
    let name = target.name.clone().unwrap_or_default();
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).unwrap_or_else(|_| json!({}))
    };
    if options.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan") {
        return Err(ApiError::bad_request(
            "propagationPolicy Orphan is not supported by the embedded API: dependents are always deleted",
        ));
    }
    let uid = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let key = key(target, &name);
    if !api.inline.is_empty() {
        let old = api
            .store
            .get(&key)
            .map_err(|e| ApiError::store(&target.kind, &name, e))?;
        api.admit(target, user, "DELETE", None, Some(&old), &name)
            .await?;
    }
    let outcome = api
        .store
        .delete(key, uid)
        .await
        .map_err(|e| ApiError::store(&target.kind, &name, e))?;
    let object = match outcome {
        Deleted::Removed(object) => {
            api.after_delete(&target.kind, &object).await;
            object
        }
        Deleted::Finalizing(object) => object,
    };
    Ok(json_response(
        StatusCode::OK,
        &present(&target.kind, object),
    ))
}

async fn delete_collection(
    api: &Arc<KubeApi>,
    target: &Target,
    user: &UserInfo,
    query: &BTreeMap<String, String>,
) -> ApiResult {
    let (labels, fields) = filters(query)?;
    let prefix = ObjectKey::prefix(
        &target.kind.group,
        &target.kind.plural,
        target.namespace.as_deref(),
    );
    let keep = |o: &Value| labels.matches(&object_labels(o)) && fields.matches(o);
    let page = api
        .store
        .list(&prefix, None, None, &keep)
        .map_err(|e| ApiError::store(&target.kind, "", e))?;
    let mut deleted = Vec::new();
    for object in page.items {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let one = Target {
            kind: target.kind.clone(),
            namespace: ns,
            name: Some(name),
            status: false,
        };
        delete(api, &one, user, &Bytes::new()).await?;
        deleted.push(object);
    }
    Ok(json_response(
        StatusCode::OK,
        &list_of(&target.kind, json!({}), deleted),
    ))
}

// ---------------------------------------------------------------------------------------------
// Watch: newline-delimited JSON events, as the API server streams them.

fn watch(api: &Arc<KubeApi>, target: &Target, query: &BTreeMap<String, String>) -> ApiResult {
    let (labels, fields) = filters(query)?;
    let prefix = ObjectKey::prefix(
        &target.kind.group,
        &target.kind.plural,
        target.namespace.as_deref(),
    );
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let kind = target.kind.clone();
    let keep = move |o: &Value| labels.matches(&object_labels(o)) && fields.matches(o);

    // No resourceVersion (or "0"): the current state as ADDED events first, then changes.
    let from = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0");
    let (initial, from) = match from {
        Some(rv) => (
            Vec::new(),
            rv.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion {rv:?} is not valid"))
            })?,
        ),
        None => {
            let page = api
                .store
                .list(&prefix, None, None, &keep)
                .map_err(|e| ApiError::store(&kind, "", e))?;
            (page.items, page.revision)
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let line = |kind_: &str, object: Value| {
        let mut bytes = serde_json::to_vec(&json!({"type": kind_, "object": object}))
            .expect("JSON values serialize");
        bytes.push(b'\n');
        Ok(Bytes::from(bytes))
    };
    let events = match api.store.watch(prefix, from) {
        Ok(events) => Ok(events),
        Err(StoreError::Gone { requested, oldest }) => Err(ApiError::new(
            StatusCode::GONE,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )),
        Err(e) => return Err(ApiError::store(&kind, "", e)),
    };
    let store = api.store.clone();
    tokio::spawn(async move {
        let mut events = match events {
            Ok(events) => events,
            Err(gone) => {
                // The API server reports an expired watch as an ERROR event carrying a 410 Status.
                let _ = tx.send(line("ERROR", gone.body())).await;
                return;
            }
        };
        for object in initial {
            if tx
                .send(line("ADDED", present(&kind, object)))
                .await
                .is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    if !keep(&event.object) {
                        continue;
                    }
                    let kind_name = match event.kind { EventType::Added => "ADDED", EventType::Modified => "MODIFIED", EventType::Deleted => "DELETED" };
                    if tx.send(line(kind_name, present(&kind, event.object.clone()))).await.is_err() {
                        return;
                    }
                }
                _ = tick.tick(), if bookmarks => {
                    let rv = store.revision().unwrap_or(0);
                    let bookmark = json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
                    if tx.send(line("BOOKMARK", bookmark)).await.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return,
                () = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream_from(rx);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("a valid response"))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
