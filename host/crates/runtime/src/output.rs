//! A plugin's stdout and stderr, routed into the host's log line by line, tagged with the binding
//! and plugin. Output past a cap is dropped (never an error, so a chatty plugin does not trap).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::LogContext;
use crate::trace::Trace;

/// Bytes of output kept per stream and call.
const CAP: usize = 64 << 10;

pub(super) struct LogStream {
    log: Arc<LogContext>,
    /// The call's trace, when traced: each line goes there too.
    trace: Option<Arc<Trace>>,
    stream: &'static str,
}

impl LogStream {
    pub(super) fn new(
        log: Arc<LogContext>,
        trace: Option<Arc<Trace>>,
        stream: &'static str,
    ) -> Self {
        Self { log, trace, stream }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.log.clone(),
            trace: self.trace.clone(),
            stream: self.stream,
            line: Vec::new(),
            taken: 0,
        })
    }
}

struct LineWriter {
    log: Arc<LogContext>,
    trace: Option<Arc<Trace>>,
    stream: &'static str,
    line: Vec<u8>,
    taken: usize,
}

impl LineWriter {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end_matches(['\r', '\n']);
        if let Some(trace) = &self.trace {
            trace.log(self.stream, text);
        }
        tracing::info!(target: "corbel::plugin", binding = %self.log.binding, plugin = %self.log.plugin, stream = self.stream, "{text}");
        self.line.clear();
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let room = CAP.saturating_sub(this.taken);
        if room == 0 {
            return Poll::Ready(Ok(buf.len()));
        }
        let kept = &buf[..buf.len().min(room)];
        this.taken += kept.len();
        for chunk in kept.split_inclusive(|b| *b == b'\n') {
            this.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                this.emit();
            }
        }
        if this.taken >= CAP {
            this.emit();
            tracing::warn!(target: "corbel::plugin", binding = %this.log.binding, plugin = %this.log.plugin, stream = this.stream, "output cap of {CAP} bytes reached: the rest is dropped");
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit();
    }
}

/// At most `max` bytes of `s`, cut on a character boundary, with a marker when cut.
pub(crate) fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    format!("{}… ({} bytes in all)", prefix(s, max), s.len()).into()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
