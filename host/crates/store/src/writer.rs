//! The single writer: applies creates, updates and deletes with Kubernetes' semantics, many per
//! transaction (group commit), and publishes their events only after the commit.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use redb::{Database, ReadableTable, Table};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::{
    EVENTS, Event, EventType, META, OBJECTS, OWNERS, ObjectKey, Op, Reply, Result, Retention,
    StoreError, UpdateMode, storage,
};

/// One write and where its answer goes.
type Request = (Op, Reply);

/// Writes folded into one transaction at most.
const BATCH: usize = 256;
/// How deep cascading deletion follows owner references.
const MAX_CASCADE_DEPTH: usize = 32;

pub(super) fn spawn(
    db: Arc<Database>,
    events: broadcast::Sender<Arc<Event>>,
    retention: Retention,
) -> Result<(SyncSender<Request>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
    let thread = std::thread::Builder::new()
        .name("corbel-store".into())
        .spawn(move || run(&db, &rx, &events, retention))
        .map_err(storage)?;
    Ok((tx, thread))
}

fn run(
    db: &Database,
    rx: &Receiver<Request>,
    events: &broadcast::Sender<Arc<Event>>,
    retention: Retention,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut emitted = Vec::new();
        let outcome = (|| -> Result<Vec<(Reply, Result<Value>)>> {
            let txn = db.begin_write().map_err(storage)?;
            let results = {
                let mut tx = Txn::open(&txn, &mut emitted, retention)?;
                let mut results = Vec::with_capacity(batch.len());
                for (op, reply) in batch.drain(..) {
                    let result = tx.apply(op);
                    if let Err(StoreError::Storage(e)) = &result {
                        return Err(StoreError::Storage(e.clone()));
                    }
                    results.push((reply, result));
                }
                tx.finish()?;
                results
            };
            txn.commit().map_err(storage)?;
            Ok(results)
        })();
        match outcome {
            Ok(results) => {
                for (reply, result) in results {
                    let _ = reply.send(result);
                }
                for event in emitted {
                    let _ = events.send(Arc::new(event));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a store transaction failed; its writes are not applied");
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Storage(e.to_string())));
                }
            }
        }
    }
}

struct Txn<'a> {
    objects: Table<'a, &'static str, &'static [u8]>,
    events: Table<'a, u64, &'static [u8]>,
    owners: Table<'a, &'static str, ()>,
    meta: Table<'a, &'static str, u64>,
    revision: u64,
    compacted: u64,
    /// The size of the events kept.
    retained_bytes: u64,
    /// How much of the event log is kept for watches to resume from.
    retention: Retention,
    emitted: &'a mut Vec<Event>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::now())
        .to_string()
}

fn metadata(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = json!({});
    }
    let root = object.as_object_mut().expect("made an object above");
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("made an object above")
}

fn meta_str<'v>(object: &'v Value, field: &str) -> Option<&'v str> {
    object
        .get("metadata")?
        .get(field)?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn finalizers(object: &Value) -> usize {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn owner_uids(object: &Value) -> Vec<String> {
    let mut uids: Vec<String> = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid")?.as_str().map(str::to_owned))
        .collect();
    uids.sort();
    uids.dedup();
    uids
}

/// The object without the parts that do not count as a change of its desired state.
fn desired(object: &Value, ignore_status: bool) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        if ignore_status {
            map.remove("status");
        }
    }
    copy
}

impl<'a> Txn<'a> {
    fn open(
        txn: &'a redb::WriteTransaction,
        emitted: &'a mut Vec<Event>,
        retention: Retention,
    ) -> Result<Self> {
        let meta = txn.open_table(META).map_err(storage)?;
        let revision = meta
            .get("revision")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0);
        let compacted = meta
            .get("compacted")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0);
        // Stores written before the byte limit have no count: their events are then dropped by
        // number only, until the first ones counted reach the limit.
        let retained_bytes = meta
            .get("retained_bytes")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0);
        Ok(Self {
            objects: txn.open_table(OBJECTS).map_err(storage)?,
            events: txn.open_table(EVENTS).map_err(storage)?,
            owners: txn.open_table(OWNERS).map_err(storage)?,
            meta,
            revision,
            compacted,
            retained_bytes,
            retention,
            emitted,
        })
    }

    fn finish(&mut self) -> Result<()> {
        self.meta
            .insert("revision", self.revision)
            .map_err(storage)?;
        self.meta
            .insert("compacted", self.compacted)
            .map_err(storage)?;
        self.meta
            .insert("retained_bytes", self.retained_bytes)
            .map_err(storage)?;
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<Value> {
        match op {
            Op::Create(key, object) => self.create(&key, object),
            Op::Update(key, object, mode) => self.update(&key, object, mode),
            Op::Delete(key, uid) => self.delete(&key, uid.as_deref(), 0),
        }
    }

    fn load(&self, key: &ObjectKey) -> Result<Option<Value>> {
        match self.objects.get(key.as_str()).map_err(storage)? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(bytes.value()).map_err(storage)?,
            )),
            None => Ok(None),
        }
    }

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn save(&mut self, key: &ObjectKey, object: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(object).map_err(storage)?;
        self.objects
            .insert(key.as_str(), bytes.as_slice())
            .map_err(storage)?;
        Ok(())
    }

    fn emit(&mut self, kind: EventType, key: &ObjectKey, object: &Value) -> Result<()> {
        let event = Event {
            rv: self.revision,
            kind,
            key: key.as_str().to_owned(),
            object: object.clone(),
        };
        let bytes = serde_json::to_vec(&event).map_err(storage)?;
        self.events
            .insert(self.revision, bytes.as_slice())
            .map_err(storage)?;
        self.retained_bytes += bytes.len() as u64;
        // Drop from the oldest end until both limits hold; the newest event always stays.
        let keep = self.retention.events.max(1);
        while self.compacted + 1 < self.revision
            && (self.revision - self.compacted > keep || self.retained_bytes > self.retention.bytes)
        {
            self.compacted += 1;
            if let Some(dropped) = self.events.remove(self.compacted).map_err(storage)? {
                self.retained_bytes = self
                    .retained_bytes
                    .saturating_sub(dropped.value().len() as u64);
            }
        }
        self.emitted.push(event);
        Ok(())
    }

    fn index_owners(
        &mut self,
        key: &ObjectKey,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        let old = before.map(owner_uids).unwrap_or_default();
        let new = after.map(owner_uids).unwrap_or_default();
        for uid in old.iter().filter(|u| !new.contains(u)) {
            self.owners
                .remove(format!("{uid}\n{}", key.as_str()).as_str())
                .map_err(storage)?;
        }
        for uid in new.iter().filter(|u| !old.contains(u)) {
            self.owners
                .insert(format!("{uid}\n{}", key.as_str()).as_str(), ())
                .map_err(storage)?;
        }
        Ok(())
    }

    fn create(&mut self, key: &ObjectKey, mut object: Value) -> Result<Value> {
        if self.load(key)?.is_some() {
            return Err(StoreError::AlreadyExists(key.describe()));
        }
        let revision = self.next_revision();
        let meta = metadata(&mut object);
        meta.insert("name".into(), key.name().into());
        match key.namespace() {
            Some(ns) => meta.insert("namespace".into(), ns.into()),
            None => meta.remove("namespace"),
        };
        meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        meta.insert("creationTimestamp".into(), now().into());
        meta.insert("resourceVersion".into(), revision.to_string().into());
        meta.insert("generation".into(), 1.into());
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        self.save(key, &object)?;
        self.index_owners(key, None, Some(&object))?;
        self.emit(EventType::Added, key, &object)?;
        Ok(object)
    }

    fn update(&mut self, key: &ObjectKey, new: Value, mode: UpdateMode) -> Result<Value> {
        let old = self
            .load(key)?
            .ok_or_else(|| StoreError::NotFound(key.describe()))?;
        let old_rv = meta_str(&old, "resourceVersion").unwrap_or("0").to_owned();
        if let Some(rv) = meta_str(&new, "resourceVersion")
            && rv != old_rv
        {
            return Err(StoreError::Conflict {
                key: key.describe(),
                reason: "the object has been modified; please apply your changes to the latest version and try again".into(),
            });
        }
        if let (Some(theirs), Some(ours)) = (meta_str(&new, "uid"), meta_str(&old, "uid"))
            && theirs != ours
        {
            return Err(StoreError::Conflict {
                key: key.describe(),
                reason: format!(
                    "Precondition failed: UID in precondition: {theirs}, UID in object meta: {ours}"
                ),
            });
        }
        let status_subresource = !matches!(
            mode,
            UpdateMode::Main {
                status_subresource: false
            }
        );
        let mut merged = match mode {
            UpdateMode::Status => {
                let mut merged = old.clone();
                match new.get("status") {
                    Some(status) => merged["status"] = status.clone(),
                    None => {
                        merged.as_object_mut().map(|m| m.remove("status"));
                    }
                }
                merged
            }
            UpdateMode::Main {
                status_subresource: true,
            } => {
                let mut merged = new;
                let map = merged
                    .as_object_mut()
                    .ok_or_else(|| StoreError::Invalid("the object is not a JSON object".into()))?;
                match old.get("status") {
                    Some(status) => map.insert("status".into(), status.clone()),
                    None => map.remove("status"),
                };
                merged
            }
            UpdateMode::Main {
                status_subresource: false,
            } => new,
        };
        // Fields of metadata the server owns.
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = metadata(&mut merged);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("managedFields");
        meta.insert("resourceVersion".into(), old_rv.clone().into());
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let changed = desired(&old, status_subresource) != desired(&merged, status_subresource);
        metadata(&mut merged).insert(
            "generation".into(),
            (generation + i64::from(changed)).into(),
        );
        if merged == old {
            return Ok(old); // nothing changed: no new resourceVersion, no event
        }
        let revision = self.next_revision();
        metadata(&mut merged).insert("resourceVersion".into(), revision.to_string().into());
        if merged.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&merged) == 0 {
            return self.remove(key, merged, 0);
        }
        self.save(key, &merged)?;
        self.index_owners(key, Some(&old), Some(&merged))?;
        self.emit(EventType::Modified, key, &merged)?;
        Ok(merged)
    }

    fn delete(&mut self, key: &ObjectKey, uid: Option<&str>, depth: usize) -> Result<Value> {
        let mut object = self
            .load(key)?
            .ok_or_else(|| StoreError::NotFound(key.describe()))?;
        if let (Some(theirs), Some(ours)) = (uid, meta_str(&object, "uid"))
            && theirs != ours
        {
            return Err(StoreError::Conflict {
                key: key.describe(),
                reason: format!(
                    "Precondition failed: UID in precondition: {theirs}, UID in object meta: {ours}"
                ),
            });
        }
        if finalizers(&object) > 0 {
            if object.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(object);
            }
            let revision = self.next_revision();
            let meta = metadata(&mut object);
            meta.insert("deletionTimestamp".into(), now().into());
            meta.insert("deletionGracePeriodSeconds".into(), 0.into());
            meta.insert("resourceVersion".into(), revision.to_string().into());
            self.save(key, &object)?;
            self.emit(EventType::Modified, key, &object)?;
            return Ok(object);
        }
        self.remove(key, object, depth)
    }

    /// Removes an object and, in the background sense of Kubernetes' garbage collector (the
    /// owner is gone before its dependents), deletes its dependents and a namespace's contents.
    fn remove(&mut self, key: &ObjectKey, mut object: Value, depth: usize) -> Result<Value> {
        let revision = self.next_revision();
        metadata(&mut object).insert("resourceVersion".into(), revision.to_string().into());
        self.objects.remove(key.as_str()).map_err(storage)?;
        self.index_owners(key, Some(&object), None)?;
        self.emit(EventType::Deleted, key, &object)?;
        if depth >= MAX_CASCADE_DEPTH {
            tracing::warn!(
                key = key.as_str(),
                "owner references nest deeper than {MAX_CASCADE_DEPTH}; not following further"
            );
            return Ok(object);
        }
        let mut dependents = Vec::new();
        if let Some(uid) = meta_str(&object, "uid") {
            let prefix = format!("{uid}\n");
            for entry in self.owners.range(prefix.as_str()..).map_err(storage)? {
                let (k, _) = entry.map_err(storage)?;
                let Some(dependent) = k.value().strip_prefix(&prefix) else {
                    break;
                };
                dependents.push(ObjectKey::from_string(dependent.to_owned()));
            }
        }
        if key.group().is_empty() && key.resource() == "namespaces" {
            let namespace = key.name().to_owned();
            for entry in self.objects.iter().map_err(storage)? {
                let (k, _) = entry.map_err(storage)?;
                let k = ObjectKey::from_string(k.value().to_owned());
                if k.namespace() == Some(namespace.as_str()) {
                    dependents.push(k);
                }
            }
        }
        for dependent in dependents {
            match self.delete(&dependent, None, depth + 1) {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(object)
    }
}
