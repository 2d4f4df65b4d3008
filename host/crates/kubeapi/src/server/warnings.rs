//! Warnings for the client, as the API server returns an admission webhook's warnings: one
//! `Warning: 299 - "<text>"` header each, which kubectl and client-go print.
//!
//! Inline admission runs deep inside a verb. Rather than thread a list through every verb's
//! result, a request's handler runs in a task-local scope ([`collecting`]) that admission adds to
//! ([`add`]); the headers are written when the handler has answered, whether it admitted or denied.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use axum::http::header::WARNING;
use axum::response::Response;

/// The longest warning text sent, as the API server truncates them; and the most sent.
const MAX_TEXT: usize = 4 << 10;
const MAX_WARNINGS: usize = 64;

tokio::task_local! {
    static WARNINGS: Arc<Mutex<Vec<String>>>;
}

/// Adds warnings to the answer of the request being handled; outside a request, does nothing.
pub(crate) fn add(warnings: impl IntoIterator<Item = String>) {
    let _ = WARNINGS.try_with(|list| {
        let mut list = list.lock().expect("the warnings lock is never poisoned");
        let room = MAX_WARNINGS.saturating_sub(list.len());
        list.extend(warnings.into_iter().take(room));
    });
}

/// Runs a request's handler, then writes the warnings it collected as `Warning` headers.
pub(crate) async fn collecting(handler: impl Future<Output = Response>) -> Response {
    let list = Arc::new(Mutex::new(Vec::new()));
    let mut response = WARNINGS.scope(list.clone(), handler).await;
    let list = std::mem::take(&mut *list.lock().expect("the warnings lock is never poisoned"));
    for text in list {
        response.headers_mut().append(WARNING, header(&text));
    }
    response
}

/// `299 - "<text>"` (RFC 7234 §5.5, the form Kubernetes sends): quotes and backslashes escaped,
/// control characters as spaces, UTF-8 kept (kubectl prints it), the text cut at [`MAX_TEXT`].
fn header(text: &str) -> HeaderValue {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut value = String::with_capacity(end + 8);
    value.push_str("299 - \"");
    for c in text[..end].chars() {
        match c {
            '"' | '\\' => {
                value.push('\\');
                value.push(c);
            }
            c if c.is_control() => value.push(' '),
            c => value.push(c),
        }
    }
    value.push('"');
    HeaderValue::from_bytes(value.as_bytes()).expect("no control characters are left")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_quoted_escaped_and_cut() {
        assert_eq!(
            header("binding \"labels\" would deny:\na\\b"),
            "299 - \"binding \\\"labels\\\" would deny: a\\\\b\""
        );
        let long = "é".repeat(MAX_TEXT);
        let value = header(&long);
        assert!(value.len() <= MAX_TEXT + 9, "{}", value.len());
    }

    #[tokio::test]
    async fn warnings_added_while_handling_become_headers_and_none_leak_outside() {
        add(["outside a request".to_owned()]);
        let response = collecting(async {
            add(["first".to_owned(), "second".to_owned()]);
            Response::new(axum::body::Body::empty())
        })
        .await;
        let values: Vec<_> = response.headers().get_all(WARNING).iter().collect();
        assert_eq!(values, ["299 - \"first\"", "299 - \"second\""]);
    }
}
