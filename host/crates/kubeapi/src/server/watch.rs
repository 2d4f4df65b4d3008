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

pub(super) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
