//! "Why denied": one call's log lines and checks, collected when the caller asks for them
//! (`corbel eval --trace`, a binding with `trace: true`), bounded in count and bytes.
//!
//! A check is a log record of a reserved shape, so the WIT (`corbel:plugin@0.1.0`, frozen once
//! released) needs no new function: the message is [`CHECK_MESSAGE`] and each field is one check,
//! its key the check's name and its value `pass` or `fail`, optionally followed by `: detail`.
//! Every SDK's check helper writes that record (`corbel_sdk::check` in Rust). A host that does not
//! trace logs it as an ordinary debug line, so a plugin using checks loads anywhere.
//!
//! The collection is per call (a fresh [`Trace`] per traced evaluation, shared with the sandbox's
//! log import and its stdout/stderr), so nothing is collected, allocated or locked when tracing is
//! off. When the bounds are reached, the oldest entry that is not a failed check makes room: a
//! failed check is what a denial's reader needs, and the last lines before it come next.

use std::collections::VecDeque;
use std::sync::Mutex;

/// The message of a log record that carries checks rather than a line of text.
pub const CHECK_MESSAGE: &str = "corbel.check";
/// Entries kept per call.
pub const MAX_ENTRIES: usize = 32;
/// Bytes of text kept per call, about what the Kubernetes API server keeps of a response's warnings.
pub const MAX_BYTES: usize = 4 << 10;
/// Bytes kept of one entry's text.
pub const MAX_ENTRY_BYTES: usize = 512;

/// One thing the plugin said during the call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    /// A named check and its result.
    Check {
        name: String,
        passed: bool,
        #[serde(skip_serializing_if = "String::is_empty")]
        detail: String,
    },
    /// A log line: from the `log` import (`trace` … `error`) or from `stdout`/`stderr`.
    Log { level: &'static str, text: String },
}

impl Entry {
    fn size(&self) -> usize {
        match self {
            Entry::Check { name, detail, .. } => name.len() + detail.len(),
            Entry::Log { text, .. } => text.len(),
        }
    }

    fn is_failed_check(&self) -> bool {
        matches!(self, Entry::Check { passed: false, .. })
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Check {
                name,
                passed,
                detail,
            } => {
                let result = if *passed { "passed" } else { "FAILED" };
                write!(f, "check {name:?} {result}")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            Entry::Log { level, text } => write!(f, "{level}: {text}"),
        }
    }
}

/// What a traced call collected: the entries in the order they came, and how many were dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Collected {
    pub entries: Vec<Entry>,
    pub dropped: usize,
}

impl Collected {
    /// The failed checks' names, in order.
    pub fn failed_checks(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Check {
                name,
                passed: false,
                ..
            } => Some(name.as_str()),
            _ => None,
        })
    }
}

/// One call's collection. Shared (`Arc`) between the caller and the sandbox.
#[derive(Debug, Default)]
pub struct Trace {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Entry>,
    bytes: usize,
    dropped: usize,
}

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was collected so far.
    pub fn collected(&self) -> Collected {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Collected {
            entries: inner.entries.iter().cloned().collect(),
            dropped: inner.dropped,
        }
    }

    pub(crate) fn log(&self, level: &'static str, text: &str) {
        self.push(Entry::Log {
            level,
            text: clip(text),
        });
    }

    /// The checks of a [`CHECK_MESSAGE`] record: one per field.
    pub(crate) fn checks<'a>(&self, fields: impl Iterator<Item = (&'a str, &'a str)>) {
        for (name, value) in fields {
            let (result, detail) = value.split_once(':').unwrap_or((value, ""));
            self.push(Entry::Check {
                name: clip(name),
                passed: result.trim() == "pass",
                detail: clip(detail.trim()),
            });
        }
    }

    fn push(&self, entry: Entry) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let size = entry.size();
        while inner.entries.len() >= MAX_ENTRIES || inner.bytes + size > MAX_BYTES {
            let Some(oldest) = inner.entries.iter().position(|e| !e.is_failed_check()) else {
                // Nothing but failed checks: they stay, the newcomer goes.
                inner.dropped += 1;
                return;
            };
            let evicted = inner.entries.remove(oldest).expect("a found position");
            inner.bytes -= evicted.size();
            inner.dropped += 1;
        }
        inner.bytes += size;
        inner.entries.push_back(entry);
    }
}

fn clip(text: &str) -> String {
    crate::output::clip(text, MAX_ENTRY_BYTES).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_record_reads_as_one_check_per_field() {
        let trace = Trace::new();
        trace.checks(
            [
                ("labels", "fail: missing team"),
                ("kind", "pass"),
                ("odd", "fail"),
            ]
            .into_iter(),
        );
        let collected = trace.collected();
        assert_eq!(collected.entries.len(), 3);
        assert_eq!(
            collected.entries[0].to_string(),
            "check \"labels\" FAILED: missing team"
        );
        assert_eq!(collected.entries[1].to_string(), "check \"kind\" passed");
        assert_eq!(
            collected.failed_checks().collect::<Vec<_>>(),
            ["labels", "odd"]
        );
    }

    #[test]
    fn over_the_bounds_the_oldest_lines_go_and_failed_checks_stay() {
        let trace = Trace::new();
        trace.checks([("early", "fail: first")].into_iter());
        for i in 0..100 {
            trace.log("info", &format!("line {i}"));
        }
        let collected = trace.collected();
        assert_eq!(collected.entries.len(), MAX_ENTRIES);
        assert_eq!(collected.dropped, 100 + 1 - MAX_ENTRIES);
        assert_eq!(collected.failed_checks().collect::<Vec<_>>(), ["early"]);
        assert_eq!(
            collected.entries.last().unwrap().to_string(),
            "info: line 99"
        );
    }

    #[test]
    fn the_bytes_are_bounded_and_each_entry_clipped() {
        let trace = Trace::new();
        let long = "x".repeat(10_000);
        for _ in 0..20 {
            trace.log("warn", &long);
        }
        let collected = trace.collected();
        let bytes: usize = collected.entries.iter().map(Entry::size).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        assert!(
            collected
                .entries
                .iter()
                .all(|e| e.size() <= MAX_ENTRY_BYTES + 40)
        );
        assert_eq!(collected.entries.len() + collected.dropped, 20);
    }
}
