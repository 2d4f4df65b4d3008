//! The host side of each capability a controller plugin may be granted, one file each:
//! [`secrets`], [`resources`] and [`http`] (outbound `wasi:http`). The plugin's manifest asks,
//! the operator's configuration grants ([`Grants`]), and every call checks both: a call beyond
//! the grant returns the WIT `access-denied` error naming the capability, never a trap.
//!
//! Lifecycle: the imports are linked once into the controller linker (`runtime`); grants are
//! checked against the manifest when a controller loads ([`Grants::check_against`]); a
//! [`CallContext`] is built for each sandbox, naming the object being reconciled.

mod grants;
pub mod http;
mod resources;
mod secrets;
mod watched;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use grants::{
    Grants, GrantsConfig, HttpGrant, KindRef, Requests, ResourceRequests, SecretGrant,
};
pub use watched::WatchedKinds;

use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::ApiCapabilities;

use crate::bindings::latest::CapabilityError;

/// What the capability imports of one sandbox act on: the API, the grants, and the object being
/// reconciled (the owner of whatever the plugin creates, and the default namespace).
pub struct CallContext {
    pub client: kube::Client,
    pub grants: Arc<Grants>,
    pub owner: Owner,
    pub kinds: Arc<KindCache>,
    /// The controller's synced watches, which answer `list` for the kinds they hold.
    pub watched: Arc<WatchedKinds>,
    pub plugin: String,
}

/// The reconciled object, as children's ownerReferences name it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub namespace: Option<String>,
}

/// Group, version and kind.
type GvkKey = (String, String, String);

/// Resolved API resources (plural names, scope), shared by a controller's sandboxes so that
/// discovery runs once per kind rather than once per call.
#[derive(Default)]
pub struct KindCache {
    resolved: Mutex<HashMap<GvkKey, (ApiResource, ApiCapabilities)>>,
}

impl KindCache {
    pub async fn resolve(
        &self,
        client: &kube::Client,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), CapabilityError> {
        let key = (gvk.group.clone(), gvk.version.clone(), gvk.kind.clone());
        if let Some(found) = self.resolved.lock().unwrap().get(&key) {
            return Ok(found.clone());
        }
        let found = kube::discovery::pinned_kind(client, gvk)
            .await
            .map_err(|e| match e {
                kube::Error::Discovery(_) => CapabilityError::NotFound(format!(
                    "the API serves no kind {}: {e}",
                    kind_name(gvk)
                )),
                other => unavailable(other),
            })?;
        self.resolved.lock().unwrap().insert(key, found.clone());
        Ok(found)
    }
}

/// `apps/v1 Deployment`, or `v1 Secret` for the core group.
pub fn kind_name(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{} {}", gvk.version, gvk.kind)
    } else {
        format!("{}/{} {}", gvk.group, gvk.version, gvk.kind)
    }
}

/// Maps an API error to the WIT error a plugin can act on.
pub(crate) fn from_kube(e: kube::Error) -> CapabilityError {
    match &e {
        kube::Error::Api(status) => match status.code {
            404 => CapabilityError::NotFound(status.message.clone()),
            409 => CapabilityError::Conflict(status.message.clone()),
            400 | 422 => CapabilityError::Invalid(status.message.clone()),
            401 | 403 => CapabilityError::AccessDenied(format!(
                "the API refused the host's own credentials: {}",
                status.message
            )),
            _ => unavailable(e),
        },
        _ => unavailable(e),
    }
}

fn unavailable(e: kube::Error) -> CapabilityError {
    CapabilityError::Unavailable(format!("{e}"))
}
