//! Snapshots: one node group's resources at one version, and the current one per group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// One resource as published: its name, the opaque `sources` the publisher tagged it with (so a
/// NACK can say which of them changed since the last accepted version) and the protobuf.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub sources: Vec<String>,
    pub any: Any,
}

/// A node group's resources by type URL and name, at a version derived from the content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub version: String,
    pub resources: BTreeMap<String, BTreeMap<String, Resource>>,
}

impl Snapshot {
    /// The version is a digest of the resources, so the same content always has the same
    /// version: a restarted host re-publishing the same objects causes no update in Envoy.
    pub fn new(resources: Vec<Resource>) -> Snapshot {
        let mut by_type: BTreeMap<String, BTreeMap<String, Resource>> = BTreeMap::new();
        for resource in resources {
            by_type
                .entry(resource.any.type_url.clone())
                .or_default()
                .insert(resource.name.clone(), resource);
        }
        let mut digest = Sha256::new();
        for (type_url, resources) in &by_type {
            for (name, resource) in resources {
                for part in [type_url.as_bytes(), name.as_bytes(), &resource.any.value] {
                    digest.update((part.len() as u64).to_be_bytes());
                    digest.update(part);
                }
            }
        }
        let hex: String = digest.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Snapshot {
            version: hex,
            resources: by_type,
        }
    }

    /// The resources of one type, limited to `names` unless it is empty (a wildcard request).
    pub fn of_type<'a>(
        &'a self,
        type_url: &str,
        names: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a Resource> {
        self.resources
            .get(type_url)
            .into_iter()
            .flat_map(|r| r.values())
            .filter(move |r| names.is_empty() || names.contains(&r.name))
    }

    /// Sources of this snapshot's resources of `type_url` that no resource of `accepted` carries:
    /// what changed since the version the instance last accepted.
    pub fn new_sources(&self, type_url: &str, accepted: Option<&Snapshot>) -> Vec<String> {
        let old: BTreeSet<&String> = accepted
            .iter()
            .flat_map(|s| s.resources.values().flat_map(|r| r.values()))
            .flat_map(|r| &r.sources)
            .collect();
        let new: BTreeSet<&String> = self
            .resources
            .get(type_url)
            .into_iter()
            .flat_map(|r| r.values())
            .flat_map(|r| &r.sources)
            .filter(|s| !old.contains(s))
            .collect();
        new.into_iter().cloned().collect()
    }
}

/// The current snapshot of each node group. Streams of a group watch its entry; a group nobody
/// published yet is watched too, and served once something is published.
#[derive(Default, Clone)]
pub struct Snapshots {
    groups: Arc<Mutex<HashMap<String, watch::Sender<Arc<Snapshot>>>>>,
}

impl Snapshots {
    fn sender(&self, group: &str) -> watch::Sender<Arc<Snapshot>> {
        let mut groups = self
            .groups
            .lock()
            .expect("the snapshot map is never poisoned");
        groups
            .entry(group.to_string())
            .or_insert_with(|| watch::channel(Arc::new(Snapshot::default())).0)
            .clone()
    }

    /// Publishes a group's snapshot; connected instances get it at once.
    pub fn set(&self, group: &str, snapshot: Snapshot) {
        self.sender(group).send_if_modified(|current| {
            if current.version == snapshot.version {
                return false;
            }
            tracing::info!(group, version = %snapshot.version, "xds snapshot published");
            *current = Arc::new(snapshot);
            true
        });
    }

    pub fn get(&self, group: &str) -> Arc<Snapshot> {
        self.sender(group).borrow().clone()
    }

    pub fn subscribe(&self, group: &str) -> watch::Receiver<Arc<Snapshot>> {
        self.sender(group).subscribe()
    }
}
