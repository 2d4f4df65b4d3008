//! The embedded store: Kubernetes objects kept in redb, with the semantics the API server gives
//! them — a global resourceVersion, optimistic concurrency, generation, finalizers, cascading
//! deletion of dependents — and a bounded event log from which watches resume.
//!
//! Why redb: a pure-Rust, embedded, transactional B-tree store whose commits are durable
//! (copy-on-write pages, checksummed, fsync on commit) and which reopens cleanly after a crash,
//! with no server process and no C toolchain. SQLite would work too; redb keeps the host one
//! Rust binary and its key-ordered tables map directly onto Kubernetes' key layout.
//!
//! Every write goes through one writer thread that folds the writes waiting at that moment into a
//! single transaction (group commit): one fsync acknowledges many writes, and a write is only
//! acknowledged after its transaction committed, so nothing acknowledged is ever lost.

mod key;
mod writer;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use key::ObjectKey;

/// key → object JSON.
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// resourceVersion → event JSON, the last writes within the [`Retention`] limits.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// "{owner uid}\n{dependent key}" → (), to find dependents when an owner goes.
const OWNERS: TableDefinition<&str, ()> = TableDefinition::new("owners");
/// "revision" (the last resourceVersion), "compacted" (the oldest resumable one) and
/// "retained_bytes" (the size of the events kept).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Events kept for watches to resume from; older resourceVersions get 410 Gone.
pub const EVENT_RETENTION: u64 = 50_000;

/// Bytes of events kept, whatever their number. An event carries the whole object, so a few
/// large objects written often (an xDS snapshot of 1,000 routes is ~2 MB, rewritten on every
/// change) would otherwise keep gigabytes on disk and in redb's cache: 200 changes of one such
/// object grew the data directory to 649 MiB and the host to ~950 MiB RSS before this limit.
pub const EVENT_RETENTION_BYTES: u64 = 64 * 1024 * 1024;

/// redb's page cache. Its default (1 GiB) is sized for a database server; the host's working set
/// is the objects plus the tail of the event log, and every page it caches is resident memory.
/// Pages beyond it are read again from the file, which the kernel's page cache holds. 16 MiB
/// rather than 64 (measured twice each, back to back, `cargo bench -p corbel --bench store` and
/// the gateway bench): creates/s the same within noise, a paged LIST of 100,000 objects 11 %
/// slower (630 → 700 ms); the server's RSS 62 → 49 MiB after the write phases, 115 → 53 MiB after
/// the LISTs, 106 → 45 MiB idle after a restart from a crash, and the gateway bench's highest
/// 216 → 197 MiB. Controllers list from their watches, not from here (`WatchedKinds`).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How much of the event log the store keeps for watches to resume from: the last `events`
/// writes, and no more than `bytes` of them (the newest event is always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub events: u64,
    pub bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: EVENT_RETENTION,
            bytes: EVENT_RETENTION_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("Operation cannot be fulfilled on {key}: {reason}")]
    Conflict { key: String, reason: String },
    #[error("too old resource version: {requested} (oldest available: {oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("{0}")]
    Invalid(String),
    #[error("the store failed: {0}")]
    Storage(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

/// What a watch sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub rv: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub key: String,
    pub object: Value,
}

/// How an update treats `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// The whole object; `status` too, unless the kind has a status subresource.
    Main { status_subresource: bool },
    /// Only `status` (the status subresource).
    Status,
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Gone, with its last state.
    Removed(Value),
    /// Finalizers hold it: it now carries a deletionTimestamp.
    Finalizing(Value),
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    /// The store's resourceVersion when the page was read.
    pub revision: u64,
    /// The key to continue after, when `limit` cut the page short.
    pub next: Option<String>,
}

pub(crate) enum Op {
    Create(ObjectKey, Value),
    Update(ObjectKey, Value, UpdateMode),
    Delete(ObjectKey, Option<String>),
}

pub(crate) type Reply = oneshot::Sender<Result<Value>>;

/// The store. Cheap to clone; all clones share one database and one writer. When the last clone
/// drops, the writer finishes what it was given and the database is closed, so the same directory
/// can be opened again at once.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Arc<Writer>,
    events: broadcast::Sender<Arc<Event>>,
}

struct Writer {
    writes: Option<std::sync::mpsc::SyncSender<(Op, Reply)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. A store left by a crash opens with every committed write.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_retention(dir, Retention::default())
    }

    /// Like [`Store::open`], keeping the event log within `retention` for watches to resume from.
    pub fn open_with_retention(dir: &Path, retention: Retention) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Storage(format!("failed to create {}: {e}", dir.display())))?;
        let path = dir.join("corbel.redb");
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| StoreError::Storage(format!("failed to open {}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(storage)?;
        {
            txn.open_table(OBJECTS).map_err(storage)?;
            txn.open_table(EVENTS).map_err(storage)?;
            txn.open_table(OWNERS).map_err(storage)?;
            txn.open_table(META).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        let db = Arc::new(db);
        let (events, _) = broadcast::channel(4096);
        let (writes, thread) = writer::spawn(db.clone(), events.clone(), retention)?;
        Ok(Self {
            db,
            writer: Arc::new(Writer {
                writes: Some(writes),
                thread: Some(thread),
            }),
            events,
        })
    }

    async fn write(&self, op: Op) -> Result<Value> {
        let (reply, answer) = oneshot::channel();
        let writes = self
            .writer
            .writes
            .clone()
            .expect("the writer lives as long as the store");
        let stopped = || StoreError::Storage("the writer has stopped".into());
        // The channel is bounded: when it is full (a storm), the sender waits on a blocking
        // thread rather than queue without limit; otherwise the write is handed over at once.
        match writes.try_send((op, reply)) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(request)) => {
                tokio::task::spawn_blocking(move || writes.send(request))
                    .await
                    .map_err(storage)?
                    .map_err(|_| stopped())?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        answer.await.map_err(|_| stopped())?
    }

    /// Creates an object; sets uid, creationTimestamp, resourceVersion and generation.
    pub async fn create(&self, key: ObjectKey, object: Value) -> Result<Value> {
        self.write(Op::Create(key, object)).await
    }

    /// Replaces an object. A `metadata.resourceVersion` in `object` must match the stored one.
    pub async fn update(&self, key: ObjectKey, object: Value, mode: UpdateMode) -> Result<Value> {
        self.write(Op::Update(key, object, mode)).await
    }

    /// Deletes an object, or marks it for deletion while finalizers remain. `uid` is a precondition.
    pub async fn delete(&self, key: ObjectKey, uid: Option<String>) -> Result<Deleted> {
        let object = self.write(Op::Delete(key, uid)).await?;
        // The writer marks a finalizing object by leaving it in place with a deletionTimestamp.
        let finalizing = object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        Ok(if finalizing {
            Deleted::Finalizing(object)
        } else {
            Deleted::Removed(object)
        })
    }

    pub fn get(&self, key: &ObjectKey) -> Result<Value> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(OBJECTS).map_err(storage)?;
        let value = table
            .get(key.as_str())
            .map_err(storage)?
            .ok_or_else(|| StoreError::NotFound(key.describe()))?;
        serde_json::from_slice(value.value()).map_err(storage)
    }

    /// Objects whose key starts with `prefix` (see [`ObjectKey::prefix`]), in key order, after
    /// `after`, at most `limit`, those `keep` accepts.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
        keep: &dyn Fn(&Value) -> bool,
    ) -> Result<ListPage> {
        let txn = self.db.begin_read().map_err(storage)?;
        let revision = txn
            .open_table(META)
            .map_err(storage)?
            .get("revision")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0);
        let table = txn.open_table(OBJECTS).map_err(storage)?;
        let mut items = Vec::new();
        let mut next = None;
        let mut last_key = String::new();
        let start = after
            .map(|a| format!("{a}\0"))
            .unwrap_or_else(|| prefix.to_owned());
        for entry in table.range(start.as_str()..).map_err(storage)? {
            let (k, v) = entry.map_err(storage)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                next = Some(last_key);
                break;
            }
            let object: Value = serde_json::from_slice(v.value()).map_err(storage)?;
            if keep(&object) {
                items.push(object);
                last_key = k.value().to_owned();
            }
        }
        Ok(ListPage {
            items,
            revision,
            next,
        })
    }

    /// The current resourceVersion.
    pub fn revision(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(storage)?;
        Ok(txn
            .open_table(META)
            .map_err(storage)?
            .get("revision")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// Events for keys under `prefix` after resourceVersion `from`, then live ones, in order.
    /// Gone when `from` is older than the retained log.
    pub fn watch(&self, prefix: String, from: u64) -> Result<mpsc::Receiver<Arc<Event>>> {
        // Subscribe before reading the log, so nothing committed in between is missed.
        let mut live = self.events.subscribe();
        let txn = self.db.begin_read().map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        let compacted = meta
            .get("compacted")
            .map_err(storage)?
            .map(|v| v.value())
            .unwrap_or(0);
        if from < compacted {
            return Err(StoreError::Gone {
                requested: from,
                oldest: compacted,
            });
        }
        let mut backlog = Vec::new();
        for entry in txn
            .open_table(EVENTS)
            .map_err(storage)?
            .range(from + 1..)
            .map_err(storage)?
        {
            let (_, v) = entry.map_err(storage)?;
            let event: Event = serde_json::from_slice(v.value()).map_err(storage)?;
            if event.key.starts_with(&prefix) {
                backlog.push(Arc::new(event));
            }
        }
        drop(txn);
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut last = from;
            for event in backlog {
                last = event.rv;
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(event) if event.rv > last && event.key.starts_with(&prefix) => {
                        last = event.rv;
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    // A watcher that falls this far behind is closed; its client re-lists, as with
                    // the Kubernetes API server.
                    Err(broadcast::error::RecvError::Lagged(_))
                    | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests;
