//! `corbel:plugin/resources`: read the kinds granted for reading; create, update and delete
//! children of the reconciled object among the kinds granted for writing. The host sets the
//! ownerReference on what a plugin creates and refuses to touch what the object does not own.
//! A write grant alone reads only those children: a controller granted Secret writes (to deliver
//! credentials) does not thereby read every Secret; reading others is the `secrets` grant's job.
//! `list` of a kind the controller watches reads its watch ([`super::WatchedKinds`]), once that
//! holds the controller's own writes; `get` always asks the API server.

use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::Value;

use super::{CallContext, from_kube, kind_name};
use crate::Sandbox;
use crate::bindings::latest::{self, CapabilityError, resources};

type Result<T> = std::result::Result<T, CapabilityError>;

fn gvk(kind: &latest::GroupVersionKind) -> GroupVersionKind {
    GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind)
}

fn gvk_of(object: &Value) -> Result<GroupVersionKind> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        return Err(CapabilityError::Invalid(
            "resources: the object needs apiVersion and kind".into(),
        ));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(GroupVersionKind::gvk(group, version, kind))
}

fn parse(json: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| CapabilityError::Invalid(format!("resources: the object is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(CapabilityError::Invalid(
            "resources: the object is not a JSON object".into(),
        ));
    }
    Ok(value)
}

fn to_json(object: &DynamicObject) -> String {
    serde_json::to_string(object).expect("a DynamicObject serializes")
}

impl CallContext {
    /// `Ok(true)`: every object of the kind may be read; `Ok(false)`: only the reconciled
    /// object's children (the kind is granted for writing, not for reading).
    fn check_read(&self, gvk: &GroupVersionKind) -> Result<bool> {
        if self
            .grants
            .may_read_any(&gvk.group, &gvk.version, &gvk.kind)
        {
            return Ok(true);
        }
        if self.grants.may_read(&gvk.group, &gvk.version, &gvk.kind) {
            return Ok(false);
        }
        Err(CapabilityError::AccessDenied(format!(
            "resources: reading {} is not granted to plugin {}",
            kind_name(gvk),
            self.plugin
        )))
    }

    fn check_write(&self, gvk: &GroupVersionKind) -> Result<()> {
        if self.grants.may_write(&gvk.group, &gvk.version, &gvk.kind) {
            return Ok(());
        }
        Err(CapabilityError::AccessDenied(format!(
            "resources: writing {} is not granted to plugin {}",
            kind_name(gvk),
            self.plugin
        )))
    }

    /// The API for a kind in the namespace asked for (default: the reconciled object's).
    async fn api(
        &self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, Option<String>)> {
        let (resource, capabilities) = self.kinds.resolve(&self.client, gvk).await?;
        if capabilities.scope == Scope::Cluster {
            return Ok((Api::all_with(self.client.clone(), &resource), None));
        }
        let namespace = namespace
            .map(str::to_owned)
            .or_else(|| self.owner.namespace.clone())
            .ok_or_else(|| {
                CapabilityError::Invalid(format!(
                    "resources: {} is namespaced: name a namespace (the reconciled object is cluster-scoped)",
                    kind_name(gvk)
                ))
            })?;
        Ok((
            Api::namespaced_with(self.client.clone(), &namespace, &resource),
            Some(namespace),
        ))
    }

    /// Lets the next list of the kind wait until the controller's watch holds `written`.
    fn expect(&self, gvk: &GroupVersionKind, written: &DynamicObject) {
        self.watched.expect(
            gvk,
            written.metadata.namespace.as_deref(),
            written.metadata.name.as_deref().unwrap_or_default(),
            written.metadata.resource_version.clone(),
        );
    }

    fn owns(&self, object: &DynamicObject) -> bool {
        object
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.uid == self.owner.uid)
    }

    fn not_a_child(&self, gvk: &GroupVersionKind, name: &str) -> CapabilityError {
        CapabilityError::AccessDenied(format!(
            "resources: {} {name} is not owned by {} {}, so plugin {} may not change it",
            kind_name(gvk),
            self.owner.kind,
            self.owner.name,
            self.plugin
        ))
    }

    /// Adds the ownerReference to the reconciled object, keeping any others.
    fn adopt(&self, object: &mut Value, child_namespace: Option<&str>) -> Result<()> {
        if child_namespace.is_some() && child_namespace != self.owner.namespace.as_deref() {
            return Err(CapabilityError::Invalid(format!(
                "resources: a child must live in its owner's namespace ({}), not {}",
                self.owner.namespace.as_deref().unwrap_or("cluster scope"),
                child_namespace.unwrap_or_default()
            )));
        }
        if child_namespace.is_none() && self.owner.namespace.is_some() {
            return Err(CapabilityError::Invalid(
                "resources: a cluster-scoped object cannot be the child of a namespaced one".into(),
            ));
        }
        let reference = serde_json::json!({
            "apiVersion": self.owner.api_version,
            "kind": self.owner.kind,
            "name": self.owner.name,
            "uid": self.owner.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        });
        let metadata = object
            .as_object_mut()
            .expect("checked to be an object")
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        let Some(metadata) = metadata.as_object_mut() else {
            return Err(CapabilityError::Invalid(
                "resources: metadata is not an object".into(),
            ));
        };
        if let Some(namespace) = child_namespace {
            metadata.insert("namespace".into(), namespace.into());
        }
        let references = metadata
            .entry("ownerReferences")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(references) = references.as_array_mut() else {
            return Err(CapabilityError::Invalid(
                "resources: metadata.ownerReferences is not a list".into(),
            ));
        };
        if !references
            .iter()
            .any(|r| r["uid"].as_str() == Some(&self.owner.uid))
        {
            references.push(reference);
        }
        Ok(())
    }
}

fn name_of(object: &Value) -> Result<String> {
    object["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| CapabilityError::Invalid("resources: the object needs metadata.name".into()))
}

fn dynamic(object: Value) -> Result<DynamicObject> {
    serde_json::from_value(object)
        .map_err(|e| CapabilityError::Invalid(format!("resources: not a Kubernetes object: {e}")))
}

impl resources::Host for Sandbox {
    async fn get(
        &mut self,
        kind: latest::GroupVersionKind,
        namespace: Option<String>,
        name: String,
    ) -> Result<Option<String>> {
        let ctx = self.capabilities("resources")?;
        let gvk = gvk(&kind);
        let any = ctx.check_read(&gvk)?;
        let (api, _) = ctx.api(&gvk, namespace.as_deref()).await?;
        let found = api.get_opt(&name).await.map_err(from_kube)?;
        if let Some(object) = &found
            && !any
            && !ctx.owns(object)
        {
            return Err(CapabilityError::AccessDenied(format!(
                "resources: {} {name} is not owned by {} {}, and plugin {} is granted reading only the {} it owns",
                kind_name(&gvk),
                ctx.owner.kind,
                ctx.owner.name,
                ctx.plugin,
                gvk.kind
            )));
        }
        Ok(found.as_ref().map(to_json))
    }

    async fn list(
        &mut self,
        kind: latest::GroupVersionKind,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>> {
        let ctx = self.capabilities("resources")?;
        let gvk = gvk(&kind);
        let any = ctx.check_read(&gvk)?;
        let (api, namespace) = ctx.api(&gvk, namespace.as_deref()).await?;
        let watched = ctx
            .watched
            .list(&gvk, namespace.as_deref(), label_selector.as_deref())
            .await;
        let cached = watched.is_some();
        let mut items = match watched {
            Some(items) => items,
            None => {
                let mut params = ListParams::default();
                if let Some(selector) = &label_selector {
                    params = params.labels(selector);
                }
                let list = api.list(&params).await.map_err(from_kube)?;
                list.items.into_iter().map(std::sync::Arc::new).collect()
            }
        };
        if !any {
            items.retain(|object| ctx.owns(object));
        }
        // Sorted, so that a plugin that copies a list into status does not flap.
        items.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(items
            .iter()
            .map(|object| match cached {
                true => ctx.watched.json(&gvk, object),
                false => to_json(object),
            })
            .collect())
    }

    async fn create(&mut self, object: String) -> Result<String> {
        let ctx = self.capabilities("resources")?;
        let mut object = parse(&object)?;
        let gvk = gvk_of(&object)?;
        ctx.check_write(&gvk)?;
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let (api, namespace) = ctx.api(&gvk, namespace.as_deref()).await?;
        ctx.adopt(&mut object, namespace.as_deref())?;
        let created = api
            .create(&PostParams::default(), &dynamic(object)?)
            .await
            .map_err(from_kube)?;
        ctx.expect(&gvk, &created);
        Ok(to_json(&created))
    }

    async fn update(&mut self, object: String) -> Result<String> {
        let ctx = self.capabilities("resources")?;
        let mut object = parse(&object)?;
        let gvk = gvk_of(&object)?;
        ctx.check_write(&gvk)?;
        let name = name_of(&object)?;
        let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
        let (api, namespace) = ctx.api(&gvk, namespace.as_deref()).await?;
        let current = api
            .get_opt(&name)
            .await
            .map_err(from_kube)?
            .ok_or_else(|| {
                CapabilityError::NotFound(format!("{} {name} does not exist", kind_name(&gvk)))
            })?;
        if !ctx.owns(&current) {
            return Err(ctx.not_a_child(&gvk, &name));
        }
        ctx.adopt(&mut object, namespace.as_deref())?;
        let replaced = api
            .replace(&name, &PostParams::default(), &dynamic(object)?)
            .await
            .map_err(from_kube)?;
        ctx.expect(&gvk, &replaced);
        Ok(to_json(&replaced))
    }

    async fn delete(
        &mut self,
        kind: latest::GroupVersionKind,
        namespace: Option<String>,
        name: String,
    ) -> Result<bool> {
        let ctx = self.capabilities("resources")?;
        let gvk = gvk(&kind);
        ctx.check_write(&gvk)?;
        let (api, _) = ctx.api(&gvk, namespace.as_deref()).await?;
        let Some(current) = api.get_opt(&name).await.map_err(from_kube)? else {
            return Ok(false);
        };
        if !ctx.owns(&current) {
            return Err(ctx.not_a_child(&gvk, &name));
        }
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(either::Either::Left(finalizing)) => {
                ctx.expect(&gvk, &finalizing);
                Ok(true)
            }
            Ok(either::Either::Right(_)) => {
                let namespace = current.metadata.namespace.as_deref();
                ctx.watched.expect(&gvk, namespace, &name, None);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(from_kube(e)),
        }
    }
}
