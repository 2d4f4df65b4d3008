//! Structured logging into the host's log, tagged there with the plugin and binding.
//!
//! On a native target (unit tests) records go to standard error instead.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one record with structured `fields`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::corbel::plugin::log as wit;
        use crate::bindings::corbel::plugin::types::Field;
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        let fields: Vec<Field> = fields
            .iter()
            .map(|(k, v)| Field {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect();
        wit::log(level, message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message} {fields:?}");
}

pub fn debug(message: &str) {
    log(Level::Debug, message, &[])
}

pub fn info(message: &str) {
    log(Level::Info, message, &[])
}

pub fn warn(message: &str) {
    log(Level::Warn, message, &[])
}

/// The message of the log record that carries checks (the host's `corbel_runtime::trace`): each
/// field is one check, its key the name and its value `pass` or `fail`, then `: detail` if any.
const CHECK_MESSAGE: &str = "corbel.check";

std::thread_local! {
    /// The checks of the current call, sent with its answer (see [`check`]).
    static CHECKS: std::cell::RefCell<Vec<(String, bool, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records a named check and its result, and returns `passed`, so that a policy can write
/// `if !check("labels", missing.is_empty(), &detail) { … }`. When the host traces the request
/// (`corbel eval --trace`, a binding with `trace: true`), a denial then says which check failed
/// and why ("why denied", docs/trace.md).
///
/// The checks are kept in the sandbox and sent to the host in one log record with the answer,
/// only when the answer is a denial or an error: an admitted request costs no host call. On a
/// native target (unit tests) they stay here: read them with [`take_checks`].
pub fn check(name: &str, passed: bool, detail: &str) -> bool {
    CHECKS.with(|c| {
        c.borrow_mut()
            .push((name.to_owned(), passed, detail.to_owned()))
    });
    passed
}

/// The checks recorded since the last call (and forgets them): for unit tests.
pub fn take_checks() -> Vec<(String, bool, String)> {
    CHECKS.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// Sends the call's checks to the host when `send`, and forgets them either way.
#[doc(hidden)]
pub fn flush_checks(send: bool) {
    let checks = take_checks();
    if !send || checks.is_empty() {
        return;
    }
    let values: Vec<String> = checks
        .iter()
        .map(|(_, passed, detail)| {
            let result = if *passed { "pass" } else { "fail" };
            if detail.is_empty() {
                result.to_owned()
            } else {
                format!("{result}: {detail}")
            }
        })
        .collect();
    let fields: Vec<(&str, &str)> = checks
        .iter()
        .zip(&values)
        .map(|((name, ..), value)| (name.as_str(), value.as_str()))
        .collect();
    log(Level::Debug, CHECK_MESSAGE, &fields);
}
