//! The kinds the embedded API serves: a fixed set of built-ins (Namespace, Secret, ConfigMap,
//! Event, Lease, CustomResourceDefinition) and every served version of every
//! CustomResourceDefinition in the store, rebuilt whenever a CRD changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;

use super::schema::Schema;

/// One resource of one API version.
#[derive(Debug)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// CRDs: the version's openAPIV3Schema, compiled.
    pub schema: Option<Arc<Schema>>,
    /// Extra printer columns of a CRD version, for `kubectl get`.
    pub columns: Vec<Value>,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, as Kubernetes names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The `kind` for messages: `Kind.group` (or `Kind` for the core group).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
) -> Kind {
    Kind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        namespaced,
        status_subresource: status,
        schema: None,
        columns: Vec::new(),
    }
}

/// Every kind, by (group, version, plural). Swapped whole on change.
#[derive(Default)]
pub struct Registry {
    kinds: ArcSwap<BTreeMap<(String, String, String), Arc<Kind>>>,
}

pub const CRD_GROUP: &str = "apiextensions.k8s.io";

impl Registry {
    pub fn new(crds: &[Value]) -> Self {
        let registry = Self::default();
        registry.rebuild(crds);
        registry
    }

    fn builtins() -> Vec<Kind> {
        vec![
            builtin("", "v1", "Namespace", "namespaces", false, &["ns"], true),
            builtin("", "v1", "Secret", "secrets", true, &[], false),
            builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
            builtin("", "v1", "Event", "events", true, &["ev"], false),
            // What kube-runtime's event recorder (and `kubectl events`) write and read.
            builtin("events.k8s.io", "v1", "Event", "events", true, &[], false),
            builtin(
                "coordination.k8s.io",
                "v1",
                "Lease",
                "leases",
                true,
                &[],
                false,
            ),
            builtin(
                CRD_GROUP,
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                &["crd", "crds"],
                true,
            ),
        ]
    }

    /// Rebuilds from the CRDs in the store. A CRD whose schema does not compile is skipped with a
    /// log line (its creation was refused already; this guards against older stores).
    pub fn rebuild(&self, crds: &[Value]) {
        let mut kinds: BTreeMap<_, _> = Self::builtins()
            .into_iter()
            .map(|k| {
                (
                    (k.group.clone(), k.version.clone(), k.plural.clone()),
                    Arc::new(k),
                )
            })
            .collect();
        for crd in crds {
            if crd.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            match kinds_of_crd(crd) {
                Ok(list) => {
                    for k in list {
                        kinds.insert(
                            (k.group.clone(), k.version.clone(), k.plural.clone()),
                            Arc::new(k),
                        );
                    }
                }
                Err(e) => {
                    let name = crd
                        .pointer("/metadata/name")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("");
                    tracing::warn!(crd = name, error = %e, "CRD not served");
                }
            }
        }
        self.kinds.store(Arc::new(kinds));
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Kind>> {
        self.kinds
            .load()
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// Whether any version of `group` is served.
    pub fn has_group(&self, group: &str) -> bool {
        self.kinds.load().keys().any(|(g, _, _)| g == group)
    }

    /// Kinds of one group/version.
    pub fn kinds_of(&self, group: &str, version: &str) -> Vec<Arc<Kind>> {
        self.kinds
            .load()
            .iter()
            .filter(|((g, v, _), _)| g == group && v == version)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Served groups (not the core group) with their versions, preferred version first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (g, v, _) in self.kinds.load().keys() {
            if g.is_empty() {
                continue;
            }
            let versions = groups.entry(g.clone()).or_default();
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
        for versions in groups.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups
    }
}

/// Kubernetes' version ordering: GA above beta above alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, minor) = if tail.is_empty() {
        (3, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n.parse().unwrap_or(0))
    } else {
        (0, 0)
    };
    (stage, major, minor)
}

/// The kinds a CRD defines: one per served version.
pub fn kinds_of_crd(crd: &Value) -> Result<Vec<Kind>, String> {
    let spec = crd.get("spec").ok_or("spec is required")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_owned);
    let plural = text(names, "plural").ok_or("spec.names.plural is required")?;
    let kind = text(names, "kind").ok_or("spec.names.kind is required")?;
    let singular = text(names, "singular").unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(format!(
                "spec.scope must be Namespaced or Cluster, not {other:?}"
            ));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let mut kinds = Vec::new();
    for version in versions {
        if version.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = text(version, "name").ok_or("spec.versions[].name is required")?;
        let schema = match version.pointer("/schema/openAPIV3Schema") {
            Some(s) => Some(Arc::new(Schema::compile(s).map_err(|e| {
                format!("spec.versions[{name}].schema.openAPIV3Schema: {e}")
            })?)),
            None => None,
        };
        kinds.push(Kind {
            group: group.to_owned(),
            version: name,
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            short_names: short_names.clone(),
            namespaced,
            status_subresource: version.pointer("/subresources/status").is_some(),
            schema,
            columns: version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        });
    }
    if kinds.is_empty() {
        return Err("no served version".into());
    }
    Ok(kinds)
}
