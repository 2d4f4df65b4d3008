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

#[cfg(test)]
mod tests {
    use super::super::testing::{api, call};
    use super::*;

    #[tokio::test]
    async fn paths_parse_to_a_kind_a_namespace_a_name_and_a_subresource() {
        let t = api().await;
        // (group, path, (plural, namespace, name, status))
        type Parsed = (
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
            bool,
        );
        let cases: &[(&str, &[&str], Parsed)] = &[
            ("", &["namespaces"], ("namespaces", None, None, false)),
            (
                "",
                &["namespaces", "a"],
                ("namespaces", None, Some("a"), false),
            ),
            // The namespace's own status, not a resource called "status" in namespace "a".
            (
                "",
                &["namespaces", "a", "status"],
                ("namespaces", None, Some("a"), true),
            ),
            (
                "",
                &["namespaces", "a", "configmaps"],
                ("configmaps", Some("a"), None, false),
            ),
            (
                "",
                &["namespaces", "a", "configmaps", "c"],
                ("configmaps", Some("a"), Some("c"), false),
            ),
            // Listing a namespaced kind across namespaces.
            ("", &["configmaps"], ("configmaps", None, None, false)),
            (
                "coordination.k8s.io",
                &["namespaces", "kube-system", "leases", "l"],
                ("leases", Some("kube-system"), Some("l"), false),
            ),
            (
                CRD_GROUP,
                &["customresourcedefinitions", "x.example.com", "status"],
                (
                    "customresourcedefinitions",
                    None,
                    Some("x.example.com"),
                    true,
                ),
            ),
        ];
        for (group, path, (plural, namespace, name, status)) in cases {
            let target = parse_target(&t.api, group, "v1", path)
                .unwrap_or_else(|e| panic!("{path:?}: {}", e.body()));
            assert_eq!(target.kind.plural, *plural, "{path:?}");
            assert_eq!(target.namespace.as_deref(), *namespace, "{path:?}");
            assert_eq!(target.name.as_deref(), *name, "{path:?}");
            assert_eq!(target.status, *status, "{path:?}");
        }
    }

    #[tokio::test]
    async fn paths_that_name_nothing_are_not_found() {
        let t = api().await;
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "v1", &["widgets"]),
            ("", "v2", &["configmaps"]),
            ("", "v1", &["configmaps", "c"]), // a namespaced object needs its namespace
            ("", "v1", &["namespaces", "a", "namespaces", "b"]), // a cluster kind has none
            ("", "v1", &["namespaces", "a", "configmaps", "c", "status"]), // no status here
            ("", "v1", &["namespaces", "a", "configmaps", "c", "scale"]),
            (
                "",
                "v1",
                &["namespaces", "a", "configmaps", "c", "status", "x"],
            ),
            ("example.com", "v1", &["widgets"]),
        ];
        for (group, version, path) in cases {
            match parse_target(&t.api, group, version, path) {
                Ok(target) => panic!("{path:?} should not parse, got {}", target.kind.plural),
                Err(e) => {
                    assert_eq!(e.body()["code"], 404, "{path:?}");
                    assert_eq!(
                        e.body()["message"],
                        "the server could not find the requested resource"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn group_and_version_paths_answer_discovery() {
        let t = api().await;
        let (code, group) = call(Method::GET, "/apis/coordination.k8s.io")
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(group["kind"], "APIGroup");
        let (code, list) = call(Method::GET, "/api/v1").json(&t).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(list["kind"], "APIResourceList");
        let (code, missing) = call(Method::GET, "/apis/example.com").json(&t).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(
            missing["message"],
            "the server could not find the requested resource (group example.com)"
        );
        let (code, _) = call(Method::GET, "/api/v2").json(&t).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_method_picks_the_verb_or_is_refused() {
        let t = api().await;
        let cases = [
            (Method::PUT, "/api/v1/namespaces/default/configmaps"),
            (Method::POST, "/api/v1/namespaces/default/configmaps/c"),
            (Method::PATCH, "/api/v1/namespaces/default/configmaps"),
            (Method::OPTIONS, "/api/v1/namespaces"),
        ];
        for (method, path) in cases {
            let (code, body) = call(method.clone(), path).json(&t).await;
            assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(body["reason"], "MethodNotAllowed");
            assert_eq!(body["message"], format!("{method} is not supported here"));
        }
    }

    #[tokio::test]
    async fn a_body_in_an_unknown_format_is_refused_before_anything_else() {
        let t = api().await;
        let (code, body) = call(Method::POST, "/api/v1/namespaces/default/configmaps")
            .header(header::CONTENT_TYPE, "application/vnd.kubernetes.protobuf")
            .body("\u{0}k8s")
            .without_token()
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .ends_with("(got application/vnd.kubernetes.protobuf)"),
            "{body}"
        );
        // JSON with parameters, and YAML, are accepted formats.
        for content_type in ["application/json; charset=utf-8", "application/yaml"] {
            let (code, _) = call(Method::POST, "/api/v1/namespaces/default/configmaps")
                .header(header::CONTENT_TYPE, content_type)
                .body(r#"{"metadata": {"name": "c"}}"#)
                .json(&t)
                .await;
            assert_eq!(code, StatusCode::CREATED, "{content_type}");
            let (code, _) = call(Method::DELETE, "/api/v1/namespaces/default/configmaps/c")
                .json(&t)
                .await;
            assert_eq!(code, StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn a_request_without_a_known_token_is_unauthorized() {
        let t = api().await;
        let (code, body) = call(Method::GET, "/api/v1/namespaces")
            .without_token()
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert_eq!(body["reason"], "Unauthorized");
        let (code, _) = call(Method::GET, "/api/v1/namespaces")
            .header(header::AUTHORIZATION, "Bearer not-the-token")
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }
}
