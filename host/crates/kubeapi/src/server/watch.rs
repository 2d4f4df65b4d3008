//! Watch: newline-delimited JSON events, as the API server streams them.

#[allow(unused_imports)]
use super::*;

pub(super) fn watch(
    api: &Arc<KubeApi>,
    target: &Target,
    query: &BTreeMap<String, String>,
) -> ApiResult {
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
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return };
                    if !keep(&event.object) {
                        continue;
                    }
                    if tx.send(line(event_type(event.kind), present(&kind, event.object.clone()))).await.is_err() {
                        return;
                    }
                }
                _ = tick.tick(), if bookmarks => {
                    let rv = store.revision().unwrap_or(0);
                    if tx.send(line("BOOKMARK", bookmark(&kind, rv))).await.is_err() {
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

/// How often a watch that asked for bookmarks (`allowWatchBookmarks=true`) gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// One event of the stream: `{"type": ..., "object": ...}` on a line of its own.
fn line(event_type: &str, object: Value) -> Result<Bytes, std::io::Error> {
    let mut bytes = serde_json::to_vec(&json!({"type": event_type, "object": object}))
        .expect("JSON values serialize");
    bytes.push(b'\n');
    Ok(Bytes::from(bytes))
}

fn event_type(kind: EventType) -> &'static str {
    match kind {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

/// A BOOKMARK's object: only the kind and the store's current resourceVersion, which a client
/// resumes from without relisting.
fn bookmark(kind: &Kind, revision: u64) -> Value {
    json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {"resourceVersion": revision.to_string()}})
}

pub(super) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{
        CONFIGMAPS, TestApi, api, api_with, call, create_configmap, kind, lines,
    };
    use super::*;

    async fn create(t: &TestApi, name: &str, labels: Value) -> Value {
        create_configmap(
            t,
            json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
        )
        .await
    }

    #[test]
    fn each_event_is_one_json_line() {
        let bytes = line("ADDED", json!({"a": "x\ny"})).unwrap();
        assert_eq!(
            &bytes[..],
            b"{\"object\":{\"a\":\"x\\ny\"},\"type\":\"ADDED\"}\n"
        );
        assert_eq!(event_type(EventType::Added), "ADDED");
        assert_eq!(event_type(EventType::Modified), "MODIFIED");
        assert_eq!(event_type(EventType::Deleted), "DELETED");
    }

    #[test]
    fn a_bookmark_carries_only_the_kind_and_the_resource_version() {
        let leases = kind("coordination.k8s.io", "Lease", "leases", true);
        assert_eq!(
            bookmark(&leases, 42),
            json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1", "metadata": {"resourceVersion": "42"}})
        );
    }

    #[tokio::test]
    async fn a_watch_without_a_version_starts_with_the_current_objects_then_follows_changes() {
        let t = api().await;
        create(&t, "before", json!({"app": "web"})).await;
        let response = call(Method::GET, CONFIGMAPS)
            .query("watch", "true")
            .send(&t)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-cache, private"
        );
        let watching = tokio::spawn(lines(response, 3));
        create(&t, "after", json!({})).await;
        let (code, _) = call(Method::DELETE, &format!("{CONFIGMAPS}/before"))
            .json(&t)
            .await;
        assert_eq!(code, StatusCode::OK);
        let events = watching.await.unwrap();
        let seen: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap(),
                    e["object"]["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("ADDED", "before"),
                ("ADDED", "after"),
                ("DELETED", "before")
            ]
        );
        // Objects come with their apiVersion and kind, as in a list.
        assert_eq!(events[0]["object"]["kind"], "ConfigMap");
        assert_eq!(events[0]["object"]["apiVersion"], "v1");
    }

    #[tokio::test]
    async fn a_watch_from_a_version_sends_only_later_changes_that_match_its_selectors() {
        let t = api().await;
        let first = create(&t, "one", json!({"app": "web"})).await;
        let rv = first["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        let response = call(Method::GET, CONFIGMAPS)
            .query("watch", "1")
            .query("resourceVersion", &rv)
            .query("labelSelector", "app=web")
            .send(&t)
            .await;
        let watching = tokio::spawn(lines(response, 2));
        create(&t, "two", json!({"app": "db"})).await;
        create(&t, "three", json!({"app": "web"})).await;
        let events = watching.await.unwrap();
        let names: Vec<&str> = events
            .iter()
            .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["three"], "{events:?}");
    }

    #[tokio::test]
    async fn bad_versions_and_selectors_are_refused_before_the_stream_starts() {
        let t = api().await;
        let message = call(Method::GET, CONFIGMAPS)
            .query("watch", "true")
            .query("resourceVersion", "ten")
            .refused(&t, StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(message, "resourceVersion \"ten\" is not valid");
        let message = call(Method::GET, CONFIGMAPS)
            .query("watch", "true")
            .query("fieldSelector", "spec.x=1")
            .refused(&t, StatusCode::BAD_REQUEST)
            .await;
        assert_eq!(message, "field label not supported: spec.x");
    }

    #[tokio::test]
    async fn a_version_that_is_too_old_is_an_error_event_with_a_410_status() {
        let t = api_with(corbel_store::Retention {
            events: 1,
            bytes: u64::MAX,
        })
        .await;
        for name in ["a", "b", "c"] {
            create(&t, name, json!({})).await;
        }
        let response = call(Method::GET, CONFIGMAPS)
            .query("watch", "true")
            .query("resourceVersion", "1")
            .send(&t)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let events = lines(response, 2).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "ERROR");
        let status = &events[0]["object"];
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 410);
        assert_eq!(status["reason"], "Expired");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("too old resource version: 1 ("),
            "{status}"
        );
    }

    #[tokio::test]
    async fn a_watch_ends_at_its_timeout() {
        let t = api().await;
        let response = call(Method::GET, CONFIGMAPS)
            .query("watch", "true")
            .query("timeoutSeconds", "0")
            .send(&t)
            .await;
        let (code, body) = tokio::time::timeout(Duration::from_secs(5), async {
            let code = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (code, body)
        })
        .await
        .expect("the stream ends");
        assert_eq!(code, StatusCode::OK);
        assert!(body.is_empty(), "no configmaps, so no events");
    }
}
