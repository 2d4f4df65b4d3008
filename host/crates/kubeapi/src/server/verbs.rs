//! The verbs: list, get, create, replace, patch, delete, deletecollection.

#[allow(unused_imports)]
use super::*;

pub(super) fn key(target: &Target, name: &str) -> ObjectKey {
    ObjectKey::new(
        &target.kind.group,
        &target.kind.plural,
        target.namespace.as_deref(),
        name,
    )
}

/// Sets apiVersion and kind for the version the client asked for (objects are stored once, in
/// whatever version wrote them last; versions of a CRD share one schema-less representation).
pub(super) fn present(kind: &Kind, mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), kind.api_version().into());
        map.insert("kind".into(), kind.kind.clone().into());
    }
    object
}

pub(super) fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).expect("JSON values serialize"),
    )
        .into_response()
}

pub(super) fn filters(
    query: &BTreeMap<String, String>,
) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
}

pub(super) fn list(
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
            &crate::table::table(&target.kind, &items, metadata),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &list_of(&target.kind, metadata, items),
    ))
}

/// A `{Kind}List`. The items are moved in, not copied: `json!` would serialize a second copy of
/// every item, which for a large list doubles the peak memory of the answer.
pub(super) fn list_of(kind: &Kind, metadata: Value, items: Vec<Value>) -> Value {
    let mut list = serde_json::Map::new();
    list.insert("apiVersion".into(), kind.api_version().into());
    list.insert("kind".into(), format!("{}List", kind.kind).into());
    list.insert("metadata".into(), metadata);
    list.insert("items".into(), Value::Array(items));
    Value::Object(list)
}

pub(super) fn get_one(api: &KubeApi, target: &Target) -> ApiResult {
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

pub(super) fn parse_body(body: &Bytes) -> ApiResult<Value> {
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
pub(super) fn prepare(target: &Target, object: &mut Value, name: &str) -> ApiResult<()> {
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
pub(super) fn secret_string_data(object: &mut Value) {
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

pub(super) fn check_crd(kind: &Kind, crd: &Value, name: &str) -> ApiResult<()> {
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
    crate::registry::kinds_of_crd(crd).map_err(|e| invalid("spec", e))?;
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

pub(super) fn valid_name(name: &str) -> bool {
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

pub(super) async fn create(
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

pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub(super) fn mode(target: &Target) -> UpdateMode {
    if target.status {
        UpdateMode::Status
    } else {
        UpdateMode::Main {
            status_subresource: target.kind.status_subresource,
        }
    }
}

pub(super) async fn replace(
    api: &Arc<KubeApi>,
    target: &Target,
    user: &UserInfo,
    body: &Bytes,
) -> ApiResult {
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
pub(super) async fn write(
    api: &Arc<KubeApi>,
    target: &Target,
    user: &UserInfo,
    object: Value,
) -> ApiResult {
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

pub(super) async fn patch(
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

pub(super) async fn delete(
    api: &Arc<KubeApi>,
    target: &Target,
    user: &UserInfo,
    body: &Bytes,
) -> ApiResult {
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

pub(super) async fn delete_collection(
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

#[cfg(test)]
mod tests {
    use super::super::testing::{CONFIGMAPS, TestApi, api, call, create_configmap, kind};
    use super::*;

    fn target(kind: Kind, namespace: Option<&str>) -> Target {
        Target {
            kind: Arc::new(kind),
            namespace: namespace.map(str::to_owned),
            name: None,
            status: false,
        }
    }

    async fn create(t: &TestApi, body: Value) -> (StatusCode, Value) {
        call(Method::POST, CONFIGMAPS).body(body).json(t).await
    }

    async fn names(t: &TestApi, query: &[(&str, &str)]) -> (Vec<String>, Value) {
        let mut c = call(Method::GET, CONFIGMAPS);
        for (k, v) in query {
            c = c.query(k, v);
        }
        let (code, list) = c.json(t).await;
        assert_eq!(code, StatusCode::OK, "{list}");
        let names = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        (names, list)
    }

    #[test]
    fn a_body_is_a_json_or_yaml_object() {
        assert_eq!(
            parse_body(&Bytes::from(r#"{"a": 1}"#)).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            parse_body(&Bytes::from("a: 1\nb: [x]\n")).unwrap(),
            json!({"a": 1, "b": ["x"]})
        );
        let e = parse_body(&Bytes::from("[1, 2]")).unwrap_err();
        assert_eq!(e.body()["message"], "the request body must be an object");
        let e = parse_body(&Bytes::from("{ nope")).unwrap_err();
        assert!(
            e.body()["message"]
                .as_str()
                .unwrap()
                .starts_with("the request body is not a JSON or YAML object: "),
            "{}",
            e.body()
        );
    }

    #[test]
    fn prepare_fills_in_the_type_and_refuses_what_contradicts_the_path() {
        let configmaps = target(kind("", "ConfigMap", "configmaps", true), Some("a"));
        let mut object = json!({"metadata": {"name": "c"}});
        prepare(&configmaps, &mut object, "c").unwrap();
        assert_eq!(object["apiVersion"], "v1");
        assert_eq!(object["kind"], "ConfigMap");
        let cases = [
            (
                json!({"apiVersion": "v2"}),
                "the API version in the data (v2) does not match the expected API version (v1)",
            ),
            (
                json!({"kind": "Secret"}),
                "the kind in the data (Secret) does not match the expected kind (ConfigMap)",
            ),
            (
                json!({"metadata": {"namespace": "b"}}),
                "the namespace of the provided object does not match the namespace sent on the request",
            ),
        ];
        for (mut object, message) in cases {
            let e = prepare(&configmaps, &mut object, "c").unwrap_err();
            assert_eq!(e.body()["code"], 400);
            assert_eq!(e.body()["message"], message);
        }
        // A cluster-scoped kind ignores a namespace in the object.
        let namespaces = target(kind("", "Namespace", "namespaces", false), None);
        prepare(
            &namespaces,
            &mut json!({"metadata": {"namespace": "x"}}),
            "n",
        )
        .unwrap();
    }

    #[test]
    fn secret_string_data_is_encoded_into_data() {
        let secrets = target(kind("", "Secret", "secrets", true), Some("a"));
        let mut object = json!({"data": {"old": "eA=="}, "stringData": {"new": "hello"}});
        prepare(&secrets, &mut object, "s").unwrap();
        assert_eq!(object["data"], json!({"old": "eA==", "new": "aGVsbG8="}));
        assert!(object.get("stringData").is_none());
    }

    #[test]
    fn names_are_rfc_1123_subdomains() {
        for ok in ["a", "a-b", "a.b", "0", &"a".repeat(253)] {
            assert!(valid_name(ok), "{ok:?}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", ".a", &"a".repeat(254)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn generated_suffixes_are_five_unambiguous_characters() {
        for _ in 0..20 {
            let suffix = random_suffix();
            assert_eq!(suffix.len(), 5);
            assert!(
                suffix
                    .chars()
                    .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
                "{suffix}"
            );
        }
    }

    #[test]
    fn the_status_subresource_writes_only_the_status() {
        let mut t = target(kind("", "Namespace", "namespaces", false), None);
        assert!(matches!(
            mode(&t),
            UpdateMode::Main {
                status_subresource: false
            }
        ));
        t.status = true;
        assert!(matches!(mode(&t), UpdateMode::Status));
    }

    #[test]
    fn a_list_moves_its_items_in_under_the_list_kind() {
        let list = list_of(
            &kind("example.com", "Widget", "widgets", true),
            json!({"resourceVersion": "7"}),
            vec![json!({"a": 1})],
        );
        assert_eq!(
            list,
            json!({"apiVersion": "example.com/v1", "kind": "WidgetList", "metadata": {"resourceVersion": "7"}, "items": [{"a": 1}]})
        );
    }

    #[test]
    fn bad_selectors_are_bad_requests_in_the_api_servers_words() {
        let query = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let e = filters(&query("labelSelector", "a in x")).unwrap_err();
        assert_eq!(e.body()["code"], 400);
        assert_eq!(
            e.body()["message"],
            "unable to parse requirement: found 'x' expected: '('"
        );
        let e = filters(&query("fieldSelector", "metadata.name")).unwrap_err();
        assert_eq!(
            e.body()["message"],
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        let (labels, fields) = filters(&BTreeMap::new()).unwrap();
        assert!(labels.is_empty() && fields.is_empty());
    }

    #[tokio::test]
    async fn lists_come_in_pages_with_a_continue_token() {
        let t = api().await;
        for name in ["a", "b", "c"] {
            create_configmap(&t, json!({"metadata": {"name": name}})).await;
        }
        let (first, list) = names(&t, &[("limit", "2")]).await;
        assert_eq!(first, ["a", "b"]);
        assert_eq!(list["kind"], "ConfigMapList");
        let token = list["metadata"]["continue"].as_str().unwrap().to_owned();
        let (rest, list) = names(&t, &[("limit", "2"), ("continue", &token)]).await;
        assert_eq!(rest, ["c"]);
        assert!(list["metadata"].get("continue").is_none());
        // limit=0 is no limit.
        assert_eq!(names(&t, &[("limit", "0")]).await.0, ["a", "b", "c"]);
        let (all, _) = names(&t, &[("fieldSelector", "metadata.name!=b")]).await;
        assert_eq!(all, ["a", "c"]);

        let message = call(Method::GET, CONFIGMAPS)
            .query("limit", "two")
            .refused(&t, StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(message, "limit \"two\" is not a number");
        let message = call(Method::GET, CONFIGMAPS)
            .query("continue", "%%%")
            .refused(&t, StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(message, "the continue token is not valid");
    }

    #[tokio::test]
    async fn a_list_is_a_table_when_the_client_asks_for_one() {
        let t = api().await;
        create_configmap(&t, json!({"metadata": {"name": "a"}})).await;
        let (code, table) = call(Method::GET, CONFIGMAPS)
            .header(
                header::ACCEPT,
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            )
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["rows"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn create_needs_a_valid_name_and_an_existing_namespace() {
        let t = api().await;
        let (code, object) = create(&t, json!({"metadata": {"generateName": "web-"}})).await;
        assert_eq!(code, StatusCode::CREATED);
        let name = object["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");

        let (code, body) = create(&t, json!({"data": {}})).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["details"]["causes"][0],
            json!({"field": "metadata.name", "reason": "FieldValueRequired", "message": "Required value: name or generateName is required"})
        );
        let (code, body) = create(&t, json!({"metadata": {"name": "Not_Valid"}})).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");

        let message = call(Method::POST, "/api/v1/namespaces/nowhere/configmaps")
            .body(json!({"metadata": {"name": "c"}}))
            .refused(&t, StatusCode::NOT_FOUND)
            .await;
        assert_eq!(message, "namespaces \"nowhere\" not found");

        // A dry run answers as a create would, and stores nothing.
        let (code, object) = call(Method::POST, CONFIGMAPS)
            .query("dryRun", "All")
            .body(json!({"metadata": {"name": "dry"}}))
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(object["kind"], "ConfigMap");
        let (code, _) = call(Method::GET, &format!("{CONFIGMAPS}/dry"))
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn replace_refuses_a_name_other_than_the_paths() {
        let t = api().await;
        create_configmap(&t, json!({"metadata": {"name": "a"}})).await;
        let message = call(Method::PUT, &format!("{CONFIGMAPS}/a"))
            .body(json!({"metadata": {"name": "b"}}))
            .refused(&t, StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(
            message,
            "the name of the object (b) does not match the name on the URL (a)"
        );
    }

    #[tokio::test]
    async fn patches_by_content_type() {
        let t = api().await;
        create_configmap(&t, json!({"metadata": {"name": "a"}, "data": {"x": "1"}})).await;
        let path = format!("{CONFIGMAPS}/a");
        let patch = |content_type: &str, body: &str| {
            call(Method::PATCH, &path)
                .header(header::CONTENT_TYPE, content_type)
                .body(body)
        };
        let (code, object) = patch(
            "application/merge-patch+json",
            r#"{"data": {"x": null, "y": "2"}}"#,
        )
        .json(&t)
        .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(object["data"], json!({"y": "2"}));

        // `test` of a missing member against null passes, as in the API server.
        let (code, object) = patch(
            "application/json-patch+json",
            r#"[{"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]"#,
        )
        .json(&t)
        .await;
        assert_eq!(code, StatusCode::OK, "{object}");
        assert_eq!(object["metadata"]["finalizers"], json!(["f"]));

        let (code, body) = patch(
            "application/json-patch+json",
            r#"[{"op": "test", "path": "/data/y", "value": "3"}]"#,
        )
        .json(&t)
        .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("the JSON Patch does not apply: "),
            "{body}"
        );
        let (code, body) = patch("application/json-patch+json", "{}").json(&t).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("the body is not a JSON Patch: ")
        );
        let (code, body) = patch("text/plain", "x").json(&t).await;
        assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("the patch content type \"text/plain\" is not supported"),
            "{body}"
        );

        // Server-side apply of an object that does not exist creates it.
        let (code, object) = call(Method::PATCH, &format!("{CONFIGMAPS}/applied"))
            .header(header::CONTENT_TYPE, "application/apply-patch+yaml")
            .body("metadata:\n  name: applied\ndata:\n  k: v\n")
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::CREATED, "{object}");
        assert_eq!(object["data"], json!({"k": "v"}));
    }

    #[tokio::test]
    async fn delete_refuses_orphaning_and_a_collection_delete_follows_its_selector() {
        let t = api().await;
        for (name, app) in [("a", "web"), ("b", "db"), ("c", "web")] {
            create_configmap(
                &t,
                json!({"metadata": {"name": name, "labels": {"app": app}}}),
            )
            .await;
        }
        let (code, body) = call(Method::DELETE, &format!("{CONFIGMAPS}/a"))
            .body(json!({"propagationPolicy": "Orphan"}))
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("propagationPolicy Orphan is not supported")
        );
        let (code, deleted) = call(Method::DELETE, CONFIGMAPS)
            .query("labelSelector", "app=web")
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(deleted["kind"], "ConfigMapList");
        let gone: Vec<&str> = deleted["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(gone, ["a", "c"]);
        assert_eq!(names(&t, &[]).await.0, ["b"]);
        let (code, _) = call(Method::DELETE, &format!("{CONFIGMAPS}/a"))
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
}
