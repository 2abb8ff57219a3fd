//! The object store: desired state and last known status, written durably
//! (redb) before anything acts on it, with the API server's semantics:
//!
//! - every write takes the next `resourceVersion` of one counter, kept in
//!   redb with the objects (so it only grows, across daemon restarts too);
//! - `create` refuses an existing key (AlreadyExists), `update` is a
//!   compare-and-swap on the resourceVersion the caller read (Conflict when
//!   stale), `update_with` re-reads and retries on Conflict;
//! - `metadata.uid`, `creationTimestamp`, `generation` and
//!   `resourceVersion` are set here, never taken from the caller;
//! - a bounded in-memory history of changes lets a watch resume from a
//!   resourceVersion; one older than the history is `Gone` (410), and a
//!   watcher that falls behind is ended the same way, so it lists again.
//!
//! Keys are `<resource>/<namespace>/<name>` for namespaced kinds
//! (`pods/default/web`) and `<resource>/<name>` for cluster-scoped ones
//! (`namespaces/default`, `nodes/host`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, NamespaceResourceScope, Resource};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const RV_KEY: &str = "resourceVersion";

/// Changes kept for watches that resume from a resourceVersion.
pub const HISTORY: usize = 1000;
/// Changes a watcher may fall behind before it is ended with `Expired`.
const BROADCAST: usize = 1024;
/// Times `update_with` re-reads after a Conflict before giving up.
const RETRIES: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store {path}: {message}")]
    Open { path: String, message: String },
    #[error("object store: {0}")]
    Db(String),
    #[error("object store: {key}: {source}")]
    Decode {
        key: String,
        source: serde_json::Error,
    },
    #[error("{} already exists", describe_key(.key))]
    AlreadyExists { key: String },
    #[error("{} not found", describe_key(.key))]
    NotFound { key: String },
    #[error("Operation cannot be fulfilled on {}: the object has been modified (resourceVersion {expected} was read, it is now {actual}); read it again and apply the change to the latest version", describe_key(.key))]
    Conflict {
        key: String,
        expected: String,
        actual: u64,
    },
    #[error("{}: {message}", describe_key(.key))]
    Invalid { key: String, message: String },
    #[error("too old resource version: {requested} (the oldest change kept is after {oldest}, the newest is {newest}); list again and watch from the list's resourceVersion")]
    Gone {
        requested: u64,
        oldest: u64,
        newest: u64,
    },
    #[error("the watch fell behind by {0} changes and was closed; list again and watch from the list's resourceVersion")]
    Lagged(u64),
}

impl StoreError {
    /// The Kubernetes `Status` reason and HTTP code of this error.
    pub fn reason_code(&self) -> (&'static str, u16) {
        match self {
            StoreError::AlreadyExists { .. } => ("AlreadyExists", 409),
            StoreError::NotFound { .. } => ("NotFound", 404),
            StoreError::Conflict { .. } => ("Conflict", 409),
            StoreError::Invalid { .. } => ("Invalid", 422),
            StoreError::Gone { .. } | StoreError::Lagged(_) => ("Expired", 410),
            _ => ("InternalError", 500),
        }
    }
}

/// `pods "web" in namespace "default"` for `pods/default/web`.
pub fn describe_key(key: &str) -> String {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(ns), Some(name)) => format!("{kind} \"{name}\" in namespace \"{ns}\""),
        (Some(kind), Some(name), None) => format!("{kind} \"{name}\""),
        _ => format!("\"{key}\""),
    }
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A stored Kubernetes object (Pod, Event, Namespace, Node, Secret, ...).
pub trait Object:
    Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + 'static
{
}
impl<T> Object for T where
    T: Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Clone + Send + 'static
{
}

/// Whether objects of kind `T` live in a namespace.
pub fn namespaced<T: Resource>() -> bool
where
    T::Scope: 'static,
{
    std::any::TypeId::of::<T::Scope>() == std::any::TypeId::of::<NamespaceResourceScope>()
}

/// The key of a namespaced object.
pub fn key(resource: &str, namespace: &str, name: &str) -> String {
    format!("{resource}/{namespace}/{name}")
}

/// The key of `obj`: its resource, namespace (`default` when unset, for
/// namespaced kinds) and name.
pub fn key_of<T: Object>(obj: &T) -> Result<String, StoreError>
where
    T::Scope: 'static,
{
    let meta = obj.metadata();
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() || name.contains('/') {
        return Err(StoreError::Invalid {
            key: format!("{}/{name}", T::URL_PATH_SEGMENT),
            message: "metadata.name: a non-empty name without '/' is required".into(),
        });
    }
    Ok(if namespaced::<T>() {
        key(T::URL_PATH_SEGMENT, &crate::node::namespace_of(meta), name)
    } else {
        format!("{}/{name}", T::URL_PATH_SEGMENT)
    })
}

/// A change to a stored object, as a Kubernetes watch event.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of this change.
    pub rv: u64,
    pub key: String,
    /// "ADDED", "MODIFIED" or "DELETED".
    pub event: &'static str,
    /// The object after the change (before it, for DELETED, with the
    /// resourceVersion of the deletion).
    pub object: Arc<serde_json::Value>,
}

/// The changes kept for resuming watches.
struct Log {
    /// The newest resourceVersion given out.
    rv: u64,
    /// Every change with a resourceVersion above this one is in `history`.
    start: u64,
    history: VecDeque<Change>,
    capacity: usize,
}

pub struct Store {
    db: Database,
    changes: broadcast::Sender<Change>,
    /// Held for the whole of each write, so resourceVersions, history and
    /// broadcasts are in one order.
    log: Mutex<Log>,
    /// A commit without fsync (events) is waiting for `flush`.
    unflushed: AtomicBool,
}

/// What a write does to its key.
enum Op {
    Put(Vec<u8>, &'static str),
    Delete,
    Nothing,
}

/// How durable one write must be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// On disk when the call returns (desired state).
    Durable,
    /// On disk at the next `flush` or durable write (events and pod status,
    /// which the node recomputes: losing the last second of them in a
    /// crash is acceptable, an fsync each is not).
    Lazy,
}

fn encode<T: Serialize>(key: &str, obj: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(obj).map_err(|source| StoreError::Decode {
        key: key.into(),
        source,
    })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        key: key.into(),
        source,
    })
}

fn parse_rv(key: &str, rv: Option<&str>) -> Result<u64, StoreError> {
    rv.and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Invalid {
            key: key.into(),
            message: format!(
                "metadata.resourceVersion: an update needs the resourceVersion the object was read at (got {rv:?}); read the object first"
            ),
        })
}

fn spec_of<T: Serialize>(obj: &T) -> Option<serde_json::Value> {
    serde_json::to_value(obj)
        .ok()
        .and_then(|mut v| v.get_mut("spec").map(serde_json::Value::take))
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_history(path, HISTORY)
    }

    /// Open with room for `history` changes to resume watches from.
    pub fn open_with_history(path: &Path, history: usize) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(OBJECTS).map_err(db_err)?;
        let rv = {
            let meta = txn.open_table(META).map_err(db_err)?;
            let rv = meta.get(RV_KEY).map_err(db_err)?.map(|v| v.value());
            rv.unwrap_or(0)
        };
        txn.commit().map_err(db_err)?;
        let (changes, _) = broadcast::channel(BROADCAST);
        Ok(Self {
            db,
            changes,
            log: Mutex::new(Log {
                rv,
                start: rv,
                history: VecDeque::new(),
                capacity: history.max(1),
            }),
            unflushed: AtomicBool::new(false),
        })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.log().rv
    }

    /// Changes from now on, of every key (see `watch` to resume).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OBJECTS).map_err(db_err)?;
        match table.get(key).map_err(db_err)? {
            Some(v) => decode(key, v.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Objects whose key starts with `prefix`, in key order.
    pub fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        self.list_at(prefix).map(|(items, _)| items)
    }

    /// Objects whose key starts with `prefix`, and the resourceVersion of
    /// that snapshot (to watch from).
    pub fn list_at<T: DeserializeOwned>(&self, prefix: &str) -> Result<(Vec<T>, u64), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OBJECTS).map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let rv = meta.get(RV_KEY).map_err(db_err)?.map(|v| v.value());
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(decode(k.value(), v.value())?);
        }
        Ok((out, rv.unwrap_or(0)))
    }

    /// The stored JSON of objects whose key starts with `prefix`, and the
    /// store's resourceVersion: a list answer is these bytes joined, with
    /// no decode and re-encode of every object.
    pub fn list_raw_at(&self, prefix: &str) -> Result<(Vec<Vec<u8>>, u64), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OBJECTS).map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let rv = meta.get(RV_KEY).map_err(db_err)?.map(|v| v.value());
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(v.value().to_vec());
        }
        Ok((out, rv.unwrap_or(0)))
    }

    /// Every stored key that `keep` accepts, in key order (namespace
    /// deletion finds everything in a namespace this way).
    pub fn keys(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OBJECTS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(db_err)? {
            let (k, _) = item.map_err(db_err)?;
            if keep(k.value()) {
                out.push(k.value().to_string());
            }
        }
        Ok(out)
    }

    /// One write transaction on `key`: `f` sees the stored bytes and the
    /// resourceVersion this write would take, and says what to do.
    fn write(
        &self,
        key: &str,
        sync: Sync,
        f: impl FnOnce(Option<&[u8]>, u64) -> Result<Op, StoreError>,
    ) -> Result<Option<Change>, StoreError> {
        let mut log = self.log();
        let mut txn = self.db.begin_write().map_err(db_err)?;
        if sync == Sync::Lazy {
            txn.set_durability(Durability::None).map_err(db_err)?;
        }
        let next = log.rv + 1;
        let change = {
            let mut table = txn.open_table(OBJECTS).map_err(db_err)?;
            let old: Option<Vec<u8>> = table.get(key).map_err(db_err)?.map(|v| v.value().to_vec());
            match f(old.as_deref(), next)? {
                Op::Nothing => return Ok(None),
                Op::Put(bytes, event) => {
                    table.insert(key, bytes.as_slice()).map_err(db_err)?;
                    Change {
                        rv: next,
                        key: key.into(),
                        event,
                        object: Arc::new(serde_json::from_slice(&bytes).unwrap_or_default()),
                    }
                }
                Op::Delete => {
                    let Some(old) = old else { return Ok(None) };
                    table.remove(key).map_err(db_err)?;
                    let mut object: serde_json::Value =
                        serde_json::from_slice(&old).unwrap_or_default();
                    if let Some(m) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                        m.insert("resourceVersion".into(), next.to_string().into());
                    }
                    Change {
                        rv: next,
                        key: key.into(),
                        event: "DELETED",
                        object: Arc::new(object),
                    }
                }
            }
        };
        txn.open_table(META)
            .map_err(db_err)?
            .insert(RV_KEY, next)
            .map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        match sync {
            Sync::Lazy => self.unflushed.store(true, Ordering::Release),
            Sync::Durable => self.unflushed.store(false, Ordering::Release),
        }
        log.rv = next;
        log.history.push_back(change.clone());
        while log.history.len() > log.capacity {
            if let Some(old) = log.history.pop_front() {
                log.start = old.rv;
            }
        }
        // No receivers is fine.
        let _ = self.changes.send(change.clone());
        Ok(Some(change))
    }

    /// Make every `Sync::Lazy` write durable (one fsync).
    pub fn flush(&self) -> Result<(), StoreError> {
        if !self.unflushed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let _log = self.log();
        let txn = self.db.begin_write().map_err(db_err)?;
        txn.commit().map_err(db_err)
    }

    /// Create `obj`; AlreadyExists when its key is taken. Sets uid,
    /// creationTimestamp, generation (objects with a spec) and
    /// resourceVersion, and clears what only deletion sets.
    pub fn create<T: Object>(&self, obj: T) -> Result<T, StoreError>
    where
        T::Scope: 'static,
    {
        self.create_with(obj, Sync::Durable)
    }

    pub fn create_with<T: Object>(&self, mut obj: T, sync: Sync) -> Result<T, StoreError>
    where
        T::Scope: 'static,
    {
        let key = key_of(&obj)?;
        let has_spec = spec_of(&obj).is_some();
        let meta = obj.metadata_mut();
        if namespaced::<T>() {
            meta.namespace = Some(crate::node::namespace_of(meta));
        } else {
            meta.namespace = None;
        }
        meta.uid = Some(uuid::Uuid::new_v4().to_string());
        meta.creation_timestamp = Some(crate::time::now());
        meta.generation = has_spec.then_some(1);
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        self.write(&key, sync, |old, rv| {
            if old.is_some() {
                return Err(StoreError::AlreadyExists { key: key.clone() });
            }
            obj.metadata_mut().resource_version = Some(rv.to_string());
            Ok(Op::Put(encode(&key, &obj)?, "ADDED"))
        })?;
        Ok(obj)
    }

    /// Replace the stored object by `obj` if it is still at the
    /// resourceVersion `obj` carries; Conflict if it changed since,
    /// NotFound if it is gone. uid and creationTimestamp stay the stored
    /// ones, generation goes up when the spec changes, a deletionTimestamp
    /// once set stays. Writing back an unchanged object writes nothing.
    pub fn update<T: Object>(&self, obj: T) -> Result<T, StoreError>
    where
        T::Scope: 'static,
    {
        self.update_sync(obj, Sync::Durable)
    }

    pub fn update_sync<T: Object>(&self, obj: T, sync: Sync) -> Result<T, StoreError>
    where
        T::Scope: 'static,
    {
        let key = key_of(&obj)?;
        self.update_at(&key, obj, sync)
    }

    /// [`Store::update_sync`] of the object at `key` (for objects read
    /// through a generic type whose key is not its own, as the garbage
    /// collector reads any kind).
    pub fn update_at<T: Object>(&self, key: &str, mut obj: T, sync: Sync) -> Result<T, StoreError> {
        let key = key.to_string();
        let expected = parse_rv(&key, obj.metadata().resource_version.as_deref())?;
        let mut result = None;
        self.write(&key, sync, |old, rv| {
            let Some(old) = old else {
                return Err(StoreError::NotFound { key: key.clone() });
            };
            let cur: T = decode(&key, old)?;
            let actual = parse_rv(&key, cur.metadata().resource_version.as_deref())?;
            if actual != expected {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: expected.to_string(),
                    actual,
                });
            }
            let spec_changed = spec_of(&cur) != spec_of(&obj);
            let c = cur.metadata();
            let m = obj.metadata_mut();
            m.uid = c.uid.clone();
            m.creation_timestamp = c.creation_timestamp.clone();
            m.namespace = c.namespace.clone();
            m.generation = match c.generation {
                Some(g) if spec_changed => Some(g + 1),
                g => g,
            };
            if c.deletion_timestamp.is_some() {
                m.deletion_timestamp = c.deletion_timestamp.clone();
                m.deletion_grace_period_seconds = match (
                    c.deletion_grace_period_seconds,
                    m.deletion_grace_period_seconds,
                ) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            if encode(&key, &obj)? == old {
                result = Some(cur);
                return Ok(Op::Nothing);
            }
            obj.metadata_mut().resource_version = Some(rv.to_string());
            Ok(Op::Put(encode(&key, &obj)?, "MODIFIED"))
        })?;
        Ok(result.unwrap_or(obj))
    }

    /// Read `key`, let `f` change it, and write it back as a
    /// compare-and-swap; on Conflict read the fresh object and call `f`
    /// again, so a concurrent change is never overwritten. `f` returns
    /// false to leave the object alone. None when there is no object.
    pub fn update_with<T: Object>(
        &self,
        key: &str,
        f: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError>
    where
        T::Scope: 'static,
    {
        self.update_with_sync(key, Sync::Durable, f)
    }

    pub fn update_with_sync<T: Object>(
        &self,
        key: &str,
        sync: Sync,
        mut f: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError>
    where
        T::Scope: 'static,
    {
        let mut last = None;
        for _ in 0..RETRIES {
            let Some(mut obj) = self.get::<T>(key)? else {
                return Ok(None);
            };
            if !f(&mut obj) {
                return Ok(Some(obj));
            }
            match self.update_at(key, obj, sync) {
                Ok(o) => return Ok(Some(o)),
                Err(e @ StoreError::Conflict { .. }) => last = Some(e),
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Db(format!("{key}: update retried too often"))))
    }

    /// Remove `key` whatever it holds; false when it was not there. (The
    /// resource is in the key; the argument stays for existing callers.)
    pub fn delete(&self, _resource: &'static str, key: &str) -> Result<bool, StoreError> {
        self.delete_if(key, Sync::Durable, |_| true)
    }

    /// Remove `key` if `precondition` holds for the stored object's
    /// metadata (e.g. its uid); false when it was not there or did not
    /// hold.
    pub fn delete_if(
        &self,
        key: &str,
        sync: Sync,
        precondition: impl FnOnce(&ObjectMeta) -> bool,
    ) -> Result<bool, StoreError> {
        #[derive(serde::Deserialize)]
        struct Meta {
            #[serde(default)]
            metadata: ObjectMeta,
        }
        let change = self.write(key, sync, |old, _| {
            let Some(old) = old else {
                return Ok(Op::Nothing);
            };
            let m: Meta = decode(key, old)?;
            Ok(if precondition(&m.metadata) {
                Op::Delete
            } else {
                Op::Nothing
            })
        })?;
        Ok(change.is_some())
    }

    /// Changes of keys under `prefix` after resourceVersion `since`: the
    /// ones still in the history first, then new ones as they happen.
    /// Gone when changes after `since` are no longer kept (or `since` is
    /// newer than any change, e.g. from before a crash).
    pub fn watch(&self, prefix: &str, since: u64) -> Result<Watch, StoreError> {
        let log = self.log();
        if since < log.start || since > log.rv {
            return Err(StoreError::Gone {
                requested: since,
                oldest: log.start,
                newest: log.rv,
            });
        }
        let rx = self.changes.subscribe();
        let replay = log
            .history
            .iter()
            .filter(|c| c.rv > since && c.key.starts_with(prefix))
            .cloned()
            .collect();
        Ok(Watch {
            prefix: prefix.into(),
            replay,
            rx,
        })
    }
}

/// A watch from `Store::watch`.
pub struct Watch {
    prefix: String,
    replay: VecDeque<Change>,
    rx: broadcast::Receiver<Change>,
}

impl Watch {
    /// The next change; `Lagged` when this watcher fell behind (it must
    /// list again); None when the store is gone.
    pub async fn next(&mut self) -> Option<Result<Change, StoreError>> {
        if let Some(c) = self.replay.pop_front() {
            return Some(Ok(c));
        }
        loop {
            match self.rx.recv().await {
                Ok(c) if c.key.starts_with(&self.prefix) => return Some(Ok(c)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(Err(StoreError::Lagged(n)))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Closing redb makes lazy commits durable too; say so if it fails.
        if let Err(e) = self.flush() {
            tracing::warn!("object store: flushing events on close: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, PodStatus};

    fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("db")).expect("open")
    }

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                // Never trusted from the caller:
                uid: Some("client-uid".into()),
                resource_version: Some("999".into()),
                generation: Some(7),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            ..Default::default()
        }
    }

    fn rv_of(p: &Pod) -> u64 {
        p.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("resourceVersion")
    }

    #[test]
    fn create_sets_server_fields_and_refuses_a_second_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        let p = s.create(pod("a")).expect("create");
        assert_ne!(p.metadata.uid.as_deref(), Some("client-uid"));
        assert!(p.metadata.creation_timestamp.is_some());
        assert_eq!(p.metadata.generation, Some(1));
        assert_eq!(rv_of(&p), 1);
        let e = s.create(pod("a")).expect_err("second create");
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "pods \"a\" in namespace \"default\" already exists"
        );
        // Cluster-scoped keys.
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ns = s.create(ns).expect("create namespace");
        assert_eq!(ns.metadata.namespace, None);
        assert!(s
            .get::<Namespace>("namespaces/default")
            .expect("get")
            .is_some());
    }

    #[test]
    fn stale_update_is_a_conflict_and_spec_changes_bump_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        let p = s.create(pod("a")).expect("create");
        let mut fresh = p.clone();
        fresh.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let fresh = s.update(fresh).expect("update");
        assert_eq!(rv_of(&fresh), 2);
        assert_eq!(fresh.metadata.generation, Some(1), "status is not spec");
        assert_eq!(fresh.metadata.uid, p.metadata.uid);

        let mut stale = p.clone();
        stale.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        let e = s.update(stale).expect_err("stale update");
        assert!(matches!(e, StoreError::Conflict { actual: 2, .. }), "{e}");
        let cur: Pod = s.get("pods/default/a").expect("get").expect("present");
        assert_eq!(cur, fresh, "the stale write changed nothing");

        let mut spec = cur.clone();
        spec.metadata.uid = Some("forged".into());
        if let Some(sp) = spec.spec.as_mut() {
            sp.hostname = Some("h".into());
        }
        let spec = s.update(spec).expect("spec update");
        assert_eq!(spec.metadata.generation, Some(2));
        assert_eq!(spec.metadata.uid, p.metadata.uid, "uid is the server's");
        // An unchanged write writes nothing.
        let same = s.update(spec.clone()).expect("no-op update");
        assert_eq!(rv_of(&same), rv_of(&spec));
        assert_eq!(s.resource_version(), rv_of(&spec));
    }

    #[test]
    fn racing_writers_never_lose_each_others_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Arc::new(open(&dir));
        s.create(pod("race")).expect("create");
        let n = 50;
        let writers: Vec<_> = ["w1", "w2"]
            .into_iter()
            .map(|w| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        s.update_with::<Pod>("pods/default/race", |p| {
                            p.metadata
                                .labels
                                .get_or_insert_with(Default::default)
                                .insert(format!("{w}-{i}"), "1".into());
                            true
                        })
                        .expect("update_with")
                        .expect("present");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let p: Pod = s.get("pods/default/race").expect("get").expect("present");
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.len(), 2 * n, "a change was lost: {labels:?}");
        assert_eq!(rv_of(&p), 1 + 2 * n as u64);
    }

    #[test]
    fn delete_and_status_write_race_keeps_the_deletion() {
        // The worker's status write against a delete request: whichever
        // lands second sees the first.
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        s.create(pod("d")).expect("create");
        let read: Pod = s.get("pods/default/d").expect("get").expect("present");
        s.update_with::<Pod>("pods/default/d", |p| {
            p.metadata.deletion_timestamp = Some(crate::time::now());
            true
        })
        .expect("delete request");
        let mut status = read.clone();
        status.status = Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert!(matches!(s.update(status), Err(StoreError::Conflict { .. })));
        let p = s
            .update_with::<Pod>("pods/default/d", |p| {
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    ..Default::default()
                });
                true
            })
            .expect("status")
            .expect("present");
        assert!(p.metadata.deletion_timestamp.is_some());
        assert!(s
            .delete_if("pods/default/d", Sync::Durable, |m| m.uid.as_deref()
                == Some("other"))
            .map(|deleted| !deleted)
            .expect("delete_if"));
        assert!(s.delete("pods", "pods/default/d").expect("delete"));
        assert!(!s.delete("pods", "pods/default/d").expect("delete again"));
    }

    #[tokio::test]
    async fn watch_resumes_after_a_resource_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        let a = s.create(pod("a")).expect("a");
        let (_, listed_at) = s.list_at::<Pod>("pods/").expect("list");
        assert_eq!(listed_at, rv_of(&a));
        s.create(pod("b")).expect("b");
        s.create(Namespace {
            metadata: ObjectMeta {
                name: Some("other".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .expect("namespace");
        s.update_with::<Pod>("pods/default/a", |p| {
            p.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
            true
        })
        .expect("update");
        s.delete("pods", "pods/default/b").expect("delete");

        let mut w = s.watch("pods/", listed_at).expect("watch");
        let mut got = Vec::new();
        for _ in 0..3 {
            let c = w.next().await.expect("open").expect("change");
            got.push((c.rv, c.event, c.key));
        }
        assert_eq!(
            got,
            vec![
                (2, "ADDED", "pods/default/b".to_string()),
                (4, "MODIFIED", "pods/default/a".to_string()),
                (5, "DELETED", "pods/default/b".to_string()),
            ]
        );
        // Then it streams what happens next, and only that.
        s.create(pod("c")).expect("c");
        let c = w.next().await.expect("open").expect("change");
        assert_eq!((c.rv, c.event), (6, "ADDED"));
        assert_eq!(c.object["metadata"]["resourceVersion"], "6");

        // Resuming from the newest version replays nothing.
        let mut w = s.watch("pods/", 6).expect("watch at head");
        s.create(pod("d")).expect("d");
        assert_eq!(w.next().await.expect("open").expect("change").rv, 7);
    }

    #[test]
    fn watch_from_a_version_older_than_the_history_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open_with_history(&dir.path().join("db"), 3).expect("open");
        for i in 0..6 {
            s.create(pod(&format!("p{i}"))).expect("create");
        }
        // Changes 4, 5, 6 are kept: resuming after 3 works, after 2 not.
        assert!(s.watch("pods/", 3).is_ok());
        let e = s.watch("pods/", 2).err().expect("gone");
        assert!(matches!(e, StoreError::Gone { requested: 2, .. }), "{e}");
        assert_eq!(e.reason_code(), ("Expired", 410));
        // A version from the future (e.g. before a crash) is gone too.
        assert!(matches!(
            s.watch("pods/", 100),
            Err(StoreError::Gone { .. })
        ));
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_to_list_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        let mut w = s.watch("pods/", 0).expect("watch");
        for i in 0..(BROADCAST + 10) {
            s.create_with(pod(&format!("p{i}")), Sync::Lazy)
                .expect("create");
        }
        let e = w.next().await.expect("open").expect_err("lagged");
        assert_eq!(e.reason_code(), ("Expired", 410));
    }

    #[test]
    fn resource_version_only_grows_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        s.create(pod("a")).expect("a");
        s.create_with(pod("b"), Sync::Lazy).expect("b");
        s.delete("pods", "pods/default/a").expect("delete");
        assert_eq!(s.resource_version(), 3);
        drop(s);
        let s = open(&dir);
        assert_eq!(s.resource_version(), 3);
        let (items, rv) = s.list_at::<Pod>("pods/").expect("list");
        assert_eq!(
            (items.len(), rv),
            (1, 3),
            "the lazy write survived the close"
        );
        let c = s.create(pod("c")).expect("c");
        assert_eq!(rv_of(&c), 4);
        // A fresh daemon's history starts now: older versions are gone.
        assert!(s.watch("pods/", 2).is_err());
        assert!(s.watch("pods/", 3).is_ok());
    }
}
