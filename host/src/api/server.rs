//! Accepting TLS connections and serving HTTP/1.1 and HTTP/2 on them, with graceful shutdown:
//! on the signal, stop accepting, let requests in flight finish (up to a grace period), then return.
//!
//! The server is the cluster's guard as much as Corbel's: with `failurePolicy: Fail`, a webhook
//! that runs out of sockets stops every write of the cluster. So no client may hold a socket for
//! free ([`ConnectionLimits`]): a handshake has a deadline, HTTP/1.1 headers have one (hyper's
//! header-read timer), a connection with no request in flight is closed after an idle timeout (HTTP/2
//! included, which hyper has no timer for: [`Activity`] counts requests until their response body
//! ends, so a long watch of the embedded API is never idle), and connections past the cap are closed
//! as soon as they are accepted — a quick refusal the API server maps to its failure policy, rather
//! than a socket parked in the kernel's backlog until the client gives up.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::ConnectionLimits;

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max));
    let (stop, stopping) = watch::channel(false);
    let mut refused_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(socket);
            // A flood logs once a minute, not once a connection.
            if refused_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                refused_logged = Some(Instant::now());
                tracing::warn!(%peer, max = limits.max, "connection refused: the server holds connections.max connections (raise it, or find the client that holds them)");
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let stream = tokio::select! {
                accepted = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(socket)) => match accepted {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                },
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            let activity = Activity::new();
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let active = activity.begin();
                    let call = router.clone().oneshot(request.map(Body::new));
                    async move {
                        let response = call.await?;
                        Ok::<_, std::convert::Infallible>(response.map(|body| {
                            Body::new(Tracked {
                                body,
                                _active: active,
                            })
                        }))
                    }
                })
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let mut closing = false;
            // After an idle close starts, the peer gets one more idle timeout to go: HTTP/2's
            // graceful close waits for the answer to a PING, which a hostile client never sends.
            let mut deadline: Option<Instant> = None;
            loop {
                let idle_deadline = activity.idle_deadline(limits.idle_timeout);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    // While a request is in flight, look again after a timeout's worth.
                    () = tokio::time::sleep_until(idle_deadline.unwrap_or_else(|| Instant::now() + limits.idle_timeout)), if !closing => {
                        if activity.idle_deadline(limits.idle_timeout).is_some_and(|at| at <= Instant::now()) {
                            tracing::debug!(%peer, "closing an idle connection");
                            closing = true;
                            deadline = Some(Instant::now() + limits.idle_timeout);
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                        return tracing::debug!(%peer, "closed an idle connection that did not close itself");
                    }
                    _ = stopping.wait_for(|stop| *stop), if !closing => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    let _ = stop.send(true);
    // Every connection task holds a slot: when all are back, every connection has closed.
    let all_closed = slots.acquire_many(limits.max as u32);
    tokio::select! {
        _ = all_closed => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; closing the remaining connections"),
    }
    Ok(())
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Clone)]
struct Activity(Arc<(AtomicUsize, Mutex<Instant>)>);

impl Activity {
    fn new() -> Self {
        Self(Arc::new((AtomicUsize::new(0), Mutex::new(Instant::now()))))
    }

    fn begin(&self) -> Active {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        Active(self.clone())
    }

    /// When the connection becomes idle for `timeout`, or `None` while a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let since = *self.0.1.lock().unwrap();
        (self.0.0.load(Ordering::SeqCst) == 0).then(|| since + timeout)
    }
}

/// One request in flight, until its response body is dropped (sent, or the stream reset).
struct Active(Activity);

impl Drop for Active {
    fn drop(&mut self) {
        *self.0.0.1.lock().unwrap() = Instant::now();
        self.0.0.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight while it streams.
struct Tracked {
    body: Body,
    _active: Active,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
