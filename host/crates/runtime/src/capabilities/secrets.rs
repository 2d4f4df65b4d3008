//! `corbel:plugin/secrets`: read Secrets, limited to the granted namespaces and names.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::from_kube;
use crate::Sandbox;
use crate::bindings::latest::{CapabilityError, secrets};

impl secrets::Host for Sandbox {
    async fn get(
        &mut self,
        namespace: Option<String>,
        name: String,
    ) -> Result<Vec<secrets::Entry>, CapabilityError> {
        let ctx = self.capabilities("secrets")?;
        let own = ctx.owner.namespace.as_deref();
        let namespace = namespace
            .or_else(|| own.map(str::to_owned))
            .ok_or_else(|| {
                CapabilityError::Invalid(
                    "secrets: name a namespace (the reconciled object is cluster-scoped)".into(),
                )
            })?;
        if !ctx
            .grants
            .secrets
            .iter()
            .any(|g| g.allows(own, &namespace, &name))
        {
            return Err(CapabilityError::AccessDenied(format!(
                "secrets: reading {namespace}/{name} is not granted to plugin {}",
                ctx.plugin
            )));
        }
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let secret = api
            .get_opt(&name)
            .await
            .map_err(from_kube)?
            .ok_or_else(|| {
                CapabilityError::NotFound(format!("secret {namespace}/{name} does not exist"))
            })?;
        let mut entries: Vec<secrets::Entry> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| secrets::Entry {
                key,
                value: value.0,
            })
            .collect();
        // `stringData` is write-only in Kubernetes, but an API that stores it as given should
        // not hide it from the reader.
        for (key, value) in secret.string_data.unwrap_or_default() {
            if !entries.iter().any(|e| e.key == key) {
                entries.push(secrets::Entry {
                    key,
                    value: value.into_bytes(),
                });
            }
        }
        Ok(entries)
    }
}
