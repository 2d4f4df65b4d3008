//! Snapshots: one node group's resources at one version, the current one per group, and the
//! union that makes a group's snapshot out of every publication (object) naming that group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// One resource as published: its name, the opaque `sources` the publisher tagged it with (so a
/// NACK can say which of them changed since the last accepted version) and the protobuf, with a
/// digest of its type, name and bytes (computed once, so that a group's version is a digest of
/// digests and costs nothing like hashing megabytes on every change).
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub sources: Vec<String>,
    pub any: Any,
    digest: [u8; 32],
}

impl Resource {
    pub fn new(name: impl Into<String>, sources: Vec<String>, any: Any) -> Resource {
        let name = name.into();
        let mut digest = Sha256::new();
        for part in [any.type_url.as_bytes(), name.as_bytes(), &any.value] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Resource {
            name,
            sources,
            any,
            digest: digest.finalize().into(),
        }
    }

    pub fn type_url(&self) -> &str {
        &self.any.type_url
    }
}

fn hex(digest: Sha256) -> String {
    digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A node group's resources by type URL and name, at a version derived from the content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// A digest of every resource (type, name, bytes); empty only for "nothing published yet".
    pub version: String,
    /// A digest of each type's resources: a type whose digest did not change is not sent again.
    pub type_versions: BTreeMap<String, String>,
    /// Set by [`Snapshots::set`]: increases with each snapshot published, so that "this version
    /// or a later one" can be told apart (versions are digests and do not order).
    pub serial: u64,
    pub resources: BTreeMap<String, BTreeMap<String, Arc<Resource>>>,
}

impl Snapshot {
    /// The version is a digest of the resources, so the same content always has the same
    /// version: a restarted host re-publishing the same objects causes no update in Envoy.
    pub fn new(resources: Vec<Resource>) -> Snapshot {
        Snapshot::of(resources.into_iter().map(Arc::new))
    }

    /// As [`Snapshot::new`], from shared resources (a union shares its objects' resources).
    /// A later resource of the same type and name replaces an earlier one; [`Publications`]
    /// finds such duplicates before they get here.
    pub fn of(resources: impl IntoIterator<Item = Arc<Resource>>) -> Snapshot {
        let mut by_type: BTreeMap<String, BTreeMap<String, Arc<Resource>>> = BTreeMap::new();
        for resource in resources {
            by_type
                .entry(resource.any.type_url.clone())
                .or_default()
                .insert(resource.name.clone(), resource);
        }
        let mut all = Sha256::new();
        let mut type_versions = BTreeMap::new();
        for (type_url, resources) in &by_type {
            let mut of_type = Sha256::new();
            for resource in resources.values() {
                all.update(resource.digest);
                of_type.update(resource.digest);
            }
            type_versions.insert(type_url.clone(), hex(of_type));
        }
        Snapshot {
            version: hex(all),
            type_versions,
            serial: 0,
            resources: by_type,
        }
    }

    /// The digest of one type's resources ("" when it has none).
    pub fn type_version(&self, type_url: &str) -> &str {
        self.type_versions
            .get(type_url)
            .map(String::as_str)
            .unwrap_or("")
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
            .map(|r| r.as_ref())
    }

    /// Sources of this snapshot's resources of `type_url` that no resource of that type in
    /// `accepted` carries: what changed in that type since the version the instance last
    /// accepted. Per type: a Route's new cluster, accepted a moment before its route entry was
    /// refused, must not make the entry look old.
    pub fn new_sources(&self, type_url: &str, accepted: Option<&Snapshot>) -> Vec<String> {
        let old: BTreeSet<&String> = accepted
            .and_then(|s| s.resources.get(type_url))
            .into_iter()
            .flat_map(|r| r.values())
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
    serials: Arc<AtomicU64>,
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

    /// Publishes a group's snapshot; connected instances get it at once. Returns the snapshot
    /// now current (the one given, with its serial, or the current one when the version is the
    /// same).
    pub fn set(&self, group: &str, mut snapshot: Snapshot) -> Arc<Snapshot> {
        let sender = self.sender(group);
        sender.send_if_modified(|current| {
            if current.version == snapshot.version {
                return false;
            }
            snapshot.serial = self.serials.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(group, version = %snapshot.version, "xds snapshot published");
            *current = Arc::new(std::mem::take(&mut snapshot));
            true
        });
        sender.borrow().clone()
    }

    pub fn get(&self, group: &str) -> Arc<Snapshot> {
        self.sender(group).borrow().clone()
    }

    pub fn subscribe(&self, group: &str) -> watch::Receiver<Arc<Snapshot>> {
        self.sender(group).subscribe()
    }
}

/// What one publisher (one `XdsSnapshot` object) publishes: its node group and resources.
#[derive(Debug, Clone, Default)]
pub struct Publication {
    pub group: String,
    pub resources: Vec<Arc<Resource>>,
}

/// A resource that two publications of one group both name: the one first in key order serves
/// it, the other is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub type_url: String,
    pub name: String,
    /// The key of the publication that serves it.
    pub served_by: String,
    /// The sources the refused copy carried.
    pub sources: Vec<String>,
}

/// A group's snapshot as the union of its publications, and the duplicates left out of it, by
/// the key of the publication they were left out of.
#[derive(Debug, Clone, Default)]
pub struct Union {
    pub snapshot: Snapshot,
    pub duplicates: BTreeMap<String, Vec<Duplicate>>,
}

/// Every publication by key (such as `namespace/name` of its object). A node group is served the
/// union of the publications naming it: each publisher writes a part (a Gateway's listener and
/// route table in one object, each Route's clusters in another), and a change rewrites, converts
/// and hashes only the parts that changed. Two publications of a group naming the same resource
/// (type and name) are an error, never merged: the one whose key sorts first keeps serving it
/// (so the choice survives a restart), and [`Union::duplicates`] names the others.
#[derive(Debug, Default)]
pub struct Publications {
    by_key: BTreeMap<String, Publication>,
}

impl Publications {
    /// Sets a publication; returns the groups whose union changed (its group, and the group it
    /// published before when it moved).
    pub fn set(&mut self, key: &str, publication: Publication) -> Vec<String> {
        let mut groups = vec![publication.group.clone()];
        if let Some(old) = self.by_key.insert(key.to_string(), publication)
            && old.group != groups[0]
        {
            groups.push(old.group);
        }
        groups
    }

    /// Removes a publication; returns the group whose union changed.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.by_key.remove(key).map(|p| p.group)
    }

    pub fn get(&self, key: &str) -> Option<&Publication> {
        self.by_key.get(key)
    }

    /// The keys of a group's publications, in order.
    pub fn keys_of<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a String> {
        self.by_key
            .iter()
            .filter(move |(_, p)| p.group == group)
            .map(|(k, _)| k)
    }

    /// The union of a group's publications. A group without any publication is an empty
    /// snapshot with a version (served: every publisher of the group is gone).
    pub fn union(&self, group: &str) -> Union {
        let mut served: HashMap<(&str, &str), &str> = HashMap::new();
        let mut resources = Vec::new();
        let mut duplicates: BTreeMap<String, Vec<Duplicate>> = BTreeMap::new();
        for (key, publication) in self.by_key.iter().filter(|(_, p)| p.group == group) {
            for resource in &publication.resources {
                match served.get(&(resource.type_url(), resource.name.as_str())) {
                    Some(first) => duplicates.entry(key.clone()).or_default().push(Duplicate {
                        type_url: resource.type_url().to_string(),
                        name: resource.name.clone(),
                        served_by: first.to_string(),
                        sources: resource.sources.clone(),
                    }),
                    None => {
                        served.insert((resource.type_url(), &resource.name), key);
                        resources.push(resource.clone());
                    }
                }
            }
        }
        Union {
            snapshot: Snapshot::of(resources),
            duplicates,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

    fn resource(type_url: &str, name: &str, bytes: &[u8], source: &str) -> Arc<Resource> {
        Arc::new(Resource::new(
            name,
            vec![source.to_string()],
            Any {
                type_url: type_url.into(),
                value: bytes.to_vec(),
            },
        ))
    }

    fn publication(group: &str, resources: Vec<Arc<Resource>>) -> Publication {
        Publication {
            group: group.into(),
            resources,
        }
    }

    #[test]
    fn a_group_is_served_the_union_of_its_publications() {
        let mut all = Publications::default();
        all.set(
            "shop/public",
            publication("g", vec![resource(LISTENER, "l", b"l", "")]),
        );
        all.set(
            "shop/public.route.a",
            publication("g", vec![resource(CLUSTER, "a", b"a", "Route/a@1")]),
        );
        all.set(
            "shop/other",
            publication("h", vec![resource(CLUSTER, "x", b"x", "")]),
        );
        let union = all.union("g");
        assert!(union.duplicates.is_empty());
        let names: Vec<(&String, Vec<&String>)> = union
            .snapshot
            .resources
            .iter()
            .map(|(t, r)| (t, r.keys().collect()))
            .collect();
        assert_eq!(
            names,
            [
                (&CLUSTER.to_string(), vec![&"a".to_string()]),
                (&LISTENER.to_string(), vec![&"l".to_string()])
            ]
        );
        assert_eq!(
            all.keys_of("g").collect::<Vec<_>>(),
            ["shop/public", "shop/public.route.a"]
        );
    }

    #[test]
    fn the_version_is_a_digest_of_the_served_content_whoever_published_it() {
        let mut one = Publications::default();
        one.set(
            "a",
            publication(
                "g",
                vec![
                    resource(CLUSTER, "a", b"1", "s"),
                    resource(CLUSTER, "b", b"2", "s"),
                ],
            ),
        );
        let mut two = Publications::default();
        two.set(
            "y",
            publication("g", vec![resource(CLUSTER, "b", b"2", "other")]),
        );
        two.set(
            "x",
            publication("g", vec![resource(CLUSTER, "a", b"1", "tags")]),
        );
        let (v1, v2) = (one.union("g").snapshot, two.union("g").snapshot);
        assert_eq!(v1.version, v2.version, "same content, same version");
        assert_eq!(v1.type_version(CLUSTER), v2.type_version(CLUSTER));

        // One byte of one resource changes the group's version and that type's only.
        two.set(
            "z",
            publication("g", vec![resource(LISTENER, "l", b"l", "")]),
        );
        let v3 = two.union("g").snapshot;
        assert_ne!(v3.version, v2.version);
        assert_eq!(v3.type_version(CLUSTER), v2.type_version(CLUSTER));
        two.set(
            "x",
            publication("g", vec![resource(CLUSTER, "a", b"changed", "tags")]),
        );
        let v4 = two.union("g").snapshot;
        assert_ne!(v4.type_version(CLUSTER), v3.type_version(CLUSTER));
        assert_eq!(v4.type_version(LISTENER), v3.type_version(LISTENER));
    }

    #[test]
    fn a_name_published_twice_in_a_group_is_served_once_and_reported() {
        let mut all = Publications::default();
        all.set(
            "shop/b",
            publication("g", vec![resource(CLUSTER, "same", b"from b", "Route/b@1")]),
        );
        all.set(
            "shop/a",
            publication("g", vec![resource(CLUSTER, "same", b"from a", "Route/a@1")]),
        );
        // The same name in another group, or of another type, is no duplicate.
        all.set(
            "shop/c",
            publication("h", vec![resource(CLUSTER, "same", b"c", "")]),
        );
        all.set(
            "shop/d",
            publication("g", vec![resource(LISTENER, "same", b"d", "")]),
        );
        let union = all.union("g");
        let served = &union.snapshot.resources[CLUSTER]["same"];
        assert_eq!(
            served.any.value, b"from a",
            "the first key in order serves it"
        );
        assert_eq!(
            union.duplicates.keys().collect::<Vec<_>>(),
            ["shop/b"],
            "{:?}",
            union.duplicates
        );
        let duplicate = &union.duplicates["shop/b"][0];
        assert_eq!(
            (
                duplicate.name.as_str(),
                duplicate.served_by.as_str(),
                duplicate.sources.clone()
            ),
            ("same", "shop/a", vec!["Route/b@1".to_string()])
        );
        assert!(all.union("h").duplicates.is_empty());
    }

    #[test]
    fn deleting_one_publication_leaves_the_others_served() {
        let mut all = Publications::default();
        all.set(
            "head",
            publication("g", vec![resource(LISTENER, "l", b"l", "")]),
        );
        all.set(
            "route.a",
            publication("g", vec![resource(CLUSTER, "a", b"a", "Route/a@1")]),
        );
        let before = all.union("g").snapshot;
        assert_eq!(all.remove("route.a").as_deref(), Some("g"));
        let after = all.union("g").snapshot;
        assert_ne!(after.version, before.version);
        assert!(!after.resources.contains_key(CLUSTER));
        assert_eq!(after.resources[LISTENER].len(), 1);
        assert_eq!(after.type_version(LISTENER), before.type_version(LISTENER));

        // The last one gone: an empty snapshot, still a version (served: the group is empty).
        all.remove("head");
        let empty = all.union("g").snapshot;
        assert!(empty.resources.is_empty());
        assert!(!empty.version.is_empty());
        assert_eq!(all.remove("head"), None);
    }

    #[test]
    fn a_publication_moved_to_another_group_changes_both() {
        let mut all = Publications::default();
        all.set(
            "x",
            publication("g", vec![resource(CLUSTER, "a", b"a", "")]),
        );
        let groups = all.set(
            "x",
            publication("h", vec![resource(CLUSTER, "a", b"a", "")]),
        );
        assert_eq!(groups, ["h", "g"]);
        assert!(all.union("g").snapshot.resources.is_empty());
    }

    #[test]
    fn a_refusal_names_what_changed_in_the_refused_type() {
        const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
        // The new Route's cluster was accepted (a version of its own), then its entry refused.
        let accepted = Snapshot::of([
            resource(CLUSTER, "a", b"a", "Route/a@1"),
            resource(CLUSTER, "new", b"n", "Route/new@1"),
            resource(ROUTES, "table", b"a", "Route/a@1"),
        ]);
        let refused = Snapshot::of([
            resource(CLUSTER, "a", b"a", "Route/a@1"),
            resource(CLUSTER, "new", b"n", "Route/new@1"),
            Arc::new(Resource::new(
                "table",
                vec!["Route/a@1".into(), "Route/new@1".into()],
                Any {
                    type_url: ROUTES.into(),
                    value: b"a+new".to_vec(),
                },
            )),
        ]);
        assert_eq!(
            refused.new_sources(ROUTES, Some(&accepted)),
            ["Route/new@1"]
        );
        assert!(refused.new_sources(CLUSTER, Some(&accepted)).is_empty());
        assert_eq!(
            refused.new_sources(ROUTES, None),
            ["Route/a@1", "Route/new@1"],
            "nothing accepted yet: everything is new"
        );
    }

    #[test]
    fn serials_increase_with_each_new_version() {
        let snapshots = Snapshots::default();
        let a = snapshots.set("g", Snapshot::new(vec![]));
        let same = snapshots.set("g", Snapshot::new(vec![]));
        assert_eq!(
            a.serial, same.serial,
            "the same version is not published again"
        );
        let b = snapshots.set("g", Snapshot::of([resource(CLUSTER, "a", b"a", "")]));
        assert!(b.serial > a.serial);
    }
}
