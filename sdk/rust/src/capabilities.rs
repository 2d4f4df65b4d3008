//! The capabilities a controller may be granted: [`secrets`], [`resources`] and [`http`]. Each
//! call is checked by the host against the operator's grants; a refusal is
//! [`CapabilityError::AccessDenied`] naming the capability. Outside a Wasm build with the
//! `controller` feature (unit tests, policies) every call returns [`CapabilityError::Unavailable`].

use std::fmt;

/// Why a capability call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityError {
    AccessDenied(String),
    NotFound(String),
    Conflict(String),
    Invalid(String),
    Unavailable(String),
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapabilityError::AccessDenied(m) => write!(f, "access denied: {m}"),
            CapabilityError::NotFound(m) => write!(f, "not found: {m}"),
            CapabilityError::Conflict(m) => write!(f, "conflict: {m}"),
            CapabilityError::Invalid(m) => write!(f, "invalid: {m}"),
            CapabilityError::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for CapabilityError {}

#[cfg(all(target_arch = "wasm32", feature = "controller"))]
fn from_wit(e: crate::bindings::corbel::plugin::types::CapabilityError) -> CapabilityError {
    use crate::bindings::corbel::plugin::types::CapabilityError as W;
    match e {
        W::AccessDenied(m) => CapabilityError::AccessDenied(m),
        W::NotFound(m) => CapabilityError::NotFound(m),
        W::Conflict(m) => CapabilityError::Conflict(m),
        W::Invalid(m) => CapabilityError::Invalid(m),
        W::Unavailable(m) => CapabilityError::Unavailable(m),
    }
}

#[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
fn native() -> CapabilityError {
    CapabilityError::Unavailable(
        "capabilities exist only inside the Corbel host (a wasm32 build)".into(),
    )
}

/// Read Secrets.
pub mod secrets {
    use std::collections::BTreeMap;

    use super::CapabilityError;

    /// The decoded data of a Secret. `namespace` `None`: the reconciled object's namespace.
    pub fn get(
        namespace: Option<&str>,
        name: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, CapabilityError> {
        #[cfg(all(target_arch = "wasm32", feature = "controller"))]
        {
            use crate::bindings::corbel::plugin::secrets as wit;
            wit::get(namespace, name)
                .map(|entries| entries.into_iter().map(|e| (e.key, e.value)).collect())
                .map_err(super::from_wit)
        }
        #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
        {
            let _ = (namespace, name);
            Err(super::native())
        }
    }
}

/// Read the granted kinds; create, update and delete children of the reconciled object.
pub mod resources {
    use serde_json::Value;

    use super::CapabilityError;
    use crate::GroupVersionKind;

    #[cfg(all(target_arch = "wasm32", feature = "controller"))]
    fn kind(gvk: &GroupVersionKind) -> crate::bindings::corbel::plugin::types::GroupVersionKind {
        crate::bindings::corbel::plugin::types::GroupVersionKind {
            group: gvk.group.clone(),
            version: gvk.version.clone(),
            kind: gvk.kind.clone(),
        }
    }

    fn parse(json: String) -> Result<Value, CapabilityError> {
        serde_json::from_str(&json)
            .map_err(|e| CapabilityError::Invalid(format!("the host returned bad JSON: {e}")))
    }

    /// One object, or `None` when it does not exist.
    pub fn get(
        kind: &GroupVersionKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, CapabilityError> {
        #[cfg(all(target_arch = "wasm32", feature = "controller"))]
        {
            use crate::bindings::corbel::plugin::resources as wit;
            match wit::get(&self::kind(kind), namespace, name).map_err(super::from_wit)? {
                Some(json) => parse(json).map(Some),
                None => Ok(None),
            }
        }
        #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
        {
            let _ = (kind, namespace, name);
            Err(super::native())
        }
    }

    /// Objects of a kind, sorted by name, optionally filtered by a label selector.
    pub fn list(
        kind: &GroupVersionKind,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, CapabilityError> {
        list_json(kind, namespace, label_selector)?
            .into_iter()
            .map(parse)
            .collect()
    }

    /// [`list`], each object as its JSON text: parse it into a type of your own to read only
    /// the fields you need (unknown fields are skipped, not built), which for large lists is
    /// much cheaper than a `Value` per object.
    pub fn list_json(
        kind: &GroupVersionKind,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, CapabilityError> {
        #[cfg(all(target_arch = "wasm32", feature = "controller"))]
        {
            use crate::bindings::corbel::plugin::resources as wit;
            wit::list(&self::kind(kind), namespace, label_selector).map_err(super::from_wit)
        }
        #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
        {
            let _ = (kind, namespace, label_selector);
            Err(super::native())
        }
    }

    /// Creates a child of the reconciled object (the host sets the ownerReference).
    pub fn create(object: &Value) -> Result<Value, CapabilityError> {
        #[cfg(all(target_arch = "wasm32", feature = "controller"))]
        {
            use crate::bindings::corbel::plugin::resources as wit;
            parse(wit::create(&object.to_string()).map_err(super::from_wit)?)
        }
        #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
        {
            let _ = object;
            Err(super::native())
        }
    }

    /// Replaces a child; a stale `metadata.resourceVersion` is a conflict.
    pub fn update(object: &Value) -> Result<Value, CapabilityError> {
        #[cfg(all(target_arch = "wasm32", feature = "controller"))]
        {
            use crate::bindings::corbel::plugin::resources as wit;
            parse(wit::update(&object.to_string()).map_err(super::from_wit)?)
        }
        #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
        {
            let _ = object;
            Err(super::native())
        }
    }

    /// Deletes a child; `false` when it did not exist.
    pub fn delete(
        kind: &GroupVersionKind,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<bool, CapabilityError> {
        #[cfg(all(target_arch = "wasm32", feature = "controller"))]
        {
            use crate::bindings::corbel::plugin::resources as wit;
            wit::delete(&self::kind(kind), namespace, name).map_err(super::from_wit)
        }
        #[cfg(not(all(target_arch = "wasm32", feature = "controller")))]
        {
            let _ = (kind, namespace, name);
            Err(super::native())
        }
    }
}
