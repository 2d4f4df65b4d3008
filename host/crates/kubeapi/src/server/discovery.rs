//! Discovery: versions, groups, resource lists, OpenAPI.

#[allow(unused_imports)]
use super::*;

pub(super) async fn version() -> Response {
    axum::Json(json!({
        "major": "1", "minor": MINOR, "gitVersion": format!("v1.{MINOR}.0-corbel.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "rustc", "platform": "linux/amd64",
    }))
    .into_response()
}

pub(super) async fn core_versions() -> Response {
    axum::Json(json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}))
        .into_response()
}

pub(super) fn group_json(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": versions[0]})
}

pub(super) async fn group_list(State(api): State<Arc<KubeApi>>) -> Response {
    let groups: Vec<Value> = api
        .registry
        .groups()
        .iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

pub(super) fn resource_list(api: &KubeApi, group: &str, version: &str) -> ApiResult {
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
pub(super) async fn openapi_root(State(api): State<Arc<KubeApi>>) -> Response {
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
pub(super) async fn openapi_group_version(
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

#[cfg(test)]
mod tests {
    use super::super::testing::{api, read};
    use super::*;

    #[tokio::test]
    async fn the_version_is_a_kubernetes_minor_of_this_build() {
        let (code, body) = read(version().await).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["major"], "1");
        assert_eq!(body["minor"], MINOR);
        let git_version = body["gitVersion"].as_str().unwrap();
        assert!(
            git_version.starts_with(&format!("v1.{MINOR}.0-corbel.")),
            "{git_version}"
        );
        let (_, core) = read(core_versions().await).await;
        assert_eq!(core["kind"], "APIVersions");
        assert_eq!(core["versions"], json!(["v1"]));
    }

    #[test]
    fn a_group_prefers_its_first_version() {
        let group = group_json("example.com", &["v2".into(), "v1".into()]);
        assert_eq!(group["kind"], "APIGroup");
        assert_eq!(
            group["preferredVersion"],
            json!({"groupVersion": "example.com/v2", "version": "v2"})
        );
        assert_eq!(group["versions"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn groups_and_resources_list_the_registrys_kinds() {
        let t = api().await;
        let (_, list) = read(group_list(State(t.api.clone())).await).await;
        assert_eq!(list["kind"], "APIGroupList");
        let names: Vec<&str> = list["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap())
            .collect();
        for group in [CRD_GROUP, "coordination.k8s.io", "events.k8s.io"] {
            assert!(names.contains(&group), "{group} missing from {names:?}");
        }

        let (code, core) = read(resource_list(&t.api, "", "v1").unwrap()).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(core["groupVersion"], "v1");
        let resources = core["resources"].as_array().unwrap();
        let namespaces = resources
            .iter()
            .find(|r| r["name"] == "namespaces")
            .unwrap();
        assert_eq!(namespaces["namespaced"], false);
        assert_eq!(namespaces["shortNames"], json!(["ns"]));
        assert!(
            namespaces["verbs"]
                .as_array()
                .unwrap()
                .contains(&json!("watch"))
        );
        // A status subresource is listed beside its kind, with its own verbs.
        let status = resources
            .iter()
            .find(|r| r["name"] == "namespaces/status")
            .unwrap();
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
        assert!(!resources.iter().any(|r| r["name"] == "configmaps/status"));

        let (_, crds) = read(resource_list(&t.api, CRD_GROUP, "v1").unwrap()).await;
        assert_eq!(crds["groupVersion"], "apiextensions.k8s.io/v1");

        let e = resource_list(&t.api, "example.com", "v1").unwrap_err();
        assert_eq!(e.body()["code"], 404);
        assert_eq!(
            e.body()["message"],
            "the server could not find the requested resource (group version example.com/v1)"
        );
    }

    #[tokio::test]
    async fn openapi_documents_name_every_group_version_and_its_patchable_paths() {
        let t = api().await;
        let (_, root) = read(openapi_root(State(t.api.clone())).await).await;
        assert_eq!(
            root["paths"]["api/v1"],
            json!({"serverRelativeURL": "/openapi/v3/api/v1"})
        );
        assert_eq!(
            root["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"],
            "/openapi/v3/apis/coordination.k8s.io/v1"
        );

        let (code, core) =
            read(openapi_group_version(State(t.api.clone()), Path("api/v1".into())).await).await;
        assert_eq!(code, StatusCode::OK);
        let path = &core["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"];
        assert_eq!(
            path["patch"]["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(path["put"]["parameters"][0]["name"], "fieldValidation");
        // Cluster-scoped kinds have no namespace in their path.
        assert!(core["paths"]["/api/v1/namespaces/{name}"].is_object());

        for missing in ["apis/example.com/v1", "nonsense"] {
            let (code, body) =
                read(openapi_group_version(State(t.api.clone()), Path(missing.into())).await).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{missing}");
            assert_eq!(body["kind"], "Status");
        }
    }
}
