//! Routing of resource paths to a target and a verb.

#[allow(unused_imports)]
use super::*;

pub(super) async fn core(
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

pub(super) async fn apis(
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

pub(super) fn parse_target(
    api: &KubeApi,
    group: &str,
    version: &str,
    path: &[&str],
) -> ApiResult<Target> {
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
pub(super) async fn resource(
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
