//! A controller plugin's manifest: the kinds it reconciles, owns and watches, and the
//! capabilities it requests. The plugin returns it from `manifest()`, so the component is the
//! whole plugin. Unknown fields are errors, like in the host's own configuration.
//!
//! ```yaml
//! reconciles:
//!   - apiVersion: storage.corbel.dev/v1alpha1
//!     kind: Bucket
//!     owns: [{apiVersion: v1, kind: ConfigMap}]
//!     # Secrets (in the object's namespace) its cleanup needs: held while an object names them
//!     holdsSecrets: [spec.credentialsSecretRef.name]
//!     watches:
//!       # an ObjectStore change reconciles the Buckets whose spec.objectStoreRef.name names it
//!       - {apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore, referencedBy: spec.objectStoreRef.name,
//!          statusFields: [conditions]}  # only its conditions of its status are read
//!       # a ConsumeRoute change reconciles the Route its spec.route names
//!       - {apiVersion: gateway.corbel.dev/v1alpha1, kind: ConsumeRoute, parentField: spec.route}
//! capabilities:
//!   secrets: true
//!   http: true
//!   resources: {read: [], write: [{apiVersion: v1, kind: ConfigMap}]}
//! ```

use serde::Deserialize;

use corbel_runtime::capabilities::{KindRef, Requests};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub reconciles: Vec<Reconciled>,
    #[serde(default)]
    pub capabilities: Requests,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reconciled {
    pub api_version: String,
    pub kind: String,
    /// Kinds this plugin creates as children: a change to a child reconciles its owner.
    #[serde(default)]
    pub owns: Vec<KindRef>,
    #[serde(default)]
    pub watches: Vec<Watch>,
    /// Dotted paths of the reconciled object naming Secrets in its namespace that its cleanup
    /// needs (the credentials of an external store): the host holds each with a finalizer while
    /// an object names it, so that deleting a namespace cannot take the credentials before the
    /// cleanups that need them have run.
    #[serde(default)]
    pub holds_secrets: Vec<String>,
}

impl Reconciled {
    pub fn kind_ref(&self) -> KindRef {
        KindRef {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
        }
    }
}

/// Another kind whose changes reconcile objects of this kind: in the same namespace, or in the
/// namespace that `namespaceField` of the reconciled object names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Watch {
    pub api_version: String,
    pub kind: String,
    /// A dotted path in the *reconciled* object holding the watched object's name.
    #[serde(default)]
    pub referenced_by: Option<String>,
    /// A dotted path in the *watched* object holding the reconciled object's name.
    #[serde(default)]
    pub parent_field: Option<String>,
    /// With `referencedBy`: a dotted path in the *reconciled* object holding the watched
    /// object's namespace, for references across namespaces (an API subscription naming an
    /// Application of another team). Absent: the reconciled object's own namespace.
    #[serde(default)]
    pub namespace_field: Option<String>,
    /// The fields of the watched object's `status` this reconcile reads (`conditions` by
    /// type, status and reason). Other status writes of the watched object then reconcile
    /// nothing; absent, any status change does. Spec, labels, annotations, generation and
    /// deletion always count.
    #[serde(default)]
    pub status_fields: Option<Vec<String>>,
}

impl Watch {
    pub fn kind_ref(&self) -> KindRef {
        KindRef {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
        }
    }
}

impl Manifest {
    /// Parses the manifest text (YAML or JSON) and checks it.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest =
            serde_yaml_ng::from_str(text).map_err(|e| format!("the manifest is not valid: {e}"))?;
        if manifest.reconciles.is_empty() {
            return Err(
                "the manifest reconciles no kind: list at least one in `reconciles`".into(),
            );
        }
        for reconciled in &manifest.reconciles {
            if reconciled.api_version.is_empty() || reconciled.kind.is_empty() {
                return Err("each entry of `reconciles` needs apiVersion and kind".into());
            }
            for path in &reconciled.holds_secrets {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return Err(format!(
                        "holdsSecrets of {}: {path:?} is not a dotted field path such as spec.credentialsSecretRef.name",
                        reconciled.kind
                    ));
                }
            }
            for watch in &reconciled.watches {
                let path = match (&watch.referenced_by, &watch.parent_field) {
                    (Some(p), None) | (None, Some(p)) => p,
                    _ => {
                        return Err(format!(
                            "watch of {} {}: give exactly one of referencedBy (a field of the {} naming it) and parentField (a field of it naming the {})",
                            watch.api_version, watch.kind, reconciled.kind, reconciled.kind
                        ));
                    }
                };
                if let Some(namespace) = &watch.namespace_field
                    && watch.referenced_by.is_none()
                {
                    return Err(format!(
                        "watch of {} {}: namespaceField {namespace:?} goes with referencedBy (the {} names the watched object's namespace and name); a parentField names the {} in the watched object's own namespace",
                        watch.api_version, watch.kind, reconciled.kind, reconciled.kind
                    ));
                }
                for path in std::iter::once(path).chain(&watch.namespace_field) {
                    if path.is_empty() || path.split('.').any(str::is_empty) {
                        return Err(format!(
                            "watch of {} {}: {path:?} is not a dotted field path such as spec.storeRef.name",
                            watch.api_version, watch.kind
                        ));
                    }
                }
            }
        }
        Ok(manifest)
    }
}

/// The string at a dotted path of a JSON object.
pub fn field<'a>(object: &'a serde_json::Value, path: &str) -> Option<&'a str> {
    path.split('.')
        .try_fold(object, |value, key| value.get(key))
        .and_then(|v| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_manifest_with_owns_watches_and_capabilities() {
        let manifest = Manifest::parse(
            r#"
reconciles:
  - apiVersion: storage.corbel.dev/v1alpha1
    kind: Bucket
    owns: [{apiVersion: v1, kind: ConfigMap}]
    watches:
      - {apiVersion: storage.corbel.dev/v1alpha1, kind: ObjectStore, referencedBy: spec.objectStoreRef.name}
capabilities:
  secrets: true
  http: true
  resources: {write: [{apiVersion: v1, kind: ConfigMap}]}
"#,
        )
        .unwrap();
        assert_eq!(manifest.reconciles[0].kind, "Bucket");
        assert_eq!(manifest.reconciles[0].owns[0].kind, "ConfigMap");
        assert!(manifest.capabilities.secrets && manifest.capabilities.http);
    }

    #[test]
    fn refuses_unknown_fields_and_ambiguous_watches() {
        let unknown =
            Manifest::parse("reconciles: [{apiVersion: v1, kind: X}]\nnetwork: true").unwrap_err();
        assert!(unknown.contains("unknown field `network`"), "{unknown}");
        let both = Manifest::parse(
            "reconciles: [{apiVersion: a/v1, kind: X, watches: [{apiVersion: a/v1, kind: Y, referencedBy: spec.y, parentField: spec.x}]}]",
        )
        .unwrap_err();
        assert!(both.contains("exactly one of referencedBy"), "{both}");
        let cross = Manifest::parse(
            "reconciles: [{apiVersion: a/v1, kind: X, watches: [{apiVersion: a/v1, kind: Y, referencedBy: spec.y.name, namespaceField: spec.y.namespace}]}]",
        )
        .unwrap();
        assert_eq!(
            cross.reconciles[0].watches[0].namespace_field.as_deref(),
            Some("spec.y.namespace")
        );
        let lone = Manifest::parse(
            "reconciles: [{apiVersion: a/v1, kind: X, watches: [{apiVersion: a/v1, kind: Y, parentField: spec.x, namespaceField: spec.ns}]}]",
        )
        .unwrap_err();
        assert!(
            lone.contains("namespaceField \"spec.ns\" goes with referencedBy"),
            "{lone}"
        );
        let dotted = Manifest::parse(
            "reconciles: [{apiVersion: a/v1, kind: X, watches: [{apiVersion: a/v1, kind: Y, referencedBy: spec.y, namespaceField: spec..ns}]}]",
        )
        .unwrap_err();
        assert!(dotted.contains("not a dotted field path"), "{dotted}");
        let empty = Manifest::parse("reconciles: []").unwrap_err();
        assert!(empty.contains("reconciles no kind"), "{empty}");
    }

    #[test]
    fn reads_dotted_fields() {
        let object = serde_json::json!({"spec": {"storeRef": {"name": "garage"}}});
        assert_eq!(field(&object, "spec.storeRef.name"), Some("garage"));
        assert_eq!(field(&object, "spec.missing.name"), None);
    }
}
