use serde_json::Value;

use crate::bindings::exports::corbel::plugin::admission::AdmissionResponse;

/// A policy's answer: allowed or denied, with warnings, and for mutating policies the changed object.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Verdict {
    allowed: bool,
    message: Option<String>,
    code: Option<u16>,
    warnings: Vec<String>,
    mutated: Option<Value>,
}

impl Verdict {
    /// Admit the request unchanged.
    pub fn allow() -> Self {
        Self {
            allowed: true,
            message: None,
            code: None,
            warnings: Vec::new(),
            mutated: None,
        }
    }

    /// Refuse the request; `message` is what `kubectl` shows the user.
    pub fn deny(message: impl Into<String>) -> Self {
        Self {
            allowed: false,
            message: Some(message.into()),
            ..Self::allow()
        }
    }

    /// Admit the request with `object` in place of the submitted one. The host computes the JSON
    /// Patch from the difference; returning an unchanged object is the same as [`Verdict::allow`].
    pub fn mutate(object: Value) -> Self {
        Self {
            mutated: Some(object),
            ..Self::allow()
        }
    }

    /// Adds a warning, shown to the user whether or not the request is admitted.
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Sets the HTTP status code of a denial (403 when not set).
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = Some(code);
        self
    }

    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn code(&self) -> Option<u16> {
        self.code
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The changed object, for a mutation.
    pub fn mutated_object(&self) -> Option<&Value> {
        self.mutated.as_ref()
    }

    pub(crate) fn into_wit(self, mutating: bool) -> AdmissionResponse {
        AdmissionResponse {
            allowed: self.allowed,
            message: self.message,
            code: self.code,
            warnings: self.warnings,
            mutated_object: if mutating {
                self.mutated.map(|o| o.to_string())
            } else {
                None
            },
        }
    }
}
