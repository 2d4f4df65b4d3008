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
