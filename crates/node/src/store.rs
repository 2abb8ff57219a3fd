//! The object store: desired state and last known status, written durably
//! (redb) before anything acts on it. Changes are broadcast to watchers.

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use tokio::sync::broadcast;

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");

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
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

/// A change to a stored object, as a Kubernetes watch event type.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: &'static str,
    pub key: String,
    /// "ADDED", "MODIFIED" or "DELETED".
    pub event: &'static str,
    pub object: serde_json::Value,
}

pub struct Store {
    db: Database,
    changes: broadcast::Sender<Change>,
}

pub fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(OBJECTS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        let (changes, _) = broadcast::channel(1024);
        Ok(Self { db, changes })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OBJECTS).map_err(db_err)?;
        match table.get(key).map_err(db_err)? {
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|source| StoreError::Decode {
                    key: key.into(),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// Objects whose key starts with `prefix`, in key order.
    pub fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(OBJECTS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in table.range(prefix..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(
                serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                    key: k.value().to_string(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    pub fn put<T: Serialize>(
        &self,
        kind: &'static str,
        key: &str,
        obj: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(obj).map_err(|source| StoreError::Decode {
            key: key.into(),
            source,
        })?;
        let txn = self.db.begin_write().map_err(db_err)?;
        let existed = {
            let mut table = txn.open_table(OBJECTS).map_err(db_err)?;
            let old = table.insert(key, bytes.as_slice()).map_err(db_err)?;
            old.is_some()
        };
        txn.commit().map_err(db_err)?;
        let object = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        let _ = self.changes.send(Change {
            kind,
            key: key.into(),
            event: if existed { "MODIFIED" } else { "ADDED" },
            object,
        });
        Ok(())
    }

    pub fn delete(&self, kind: &'static str, key: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let old: Option<Vec<u8>> = {
            let mut table = txn.open_table(OBJECTS).map_err(db_err)?;
            let old = table.remove(key).map_err(db_err)?;
            old.map(|v| v.value().to_vec())
        };
        txn.commit().map_err(db_err)?;
        if let Some(bytes) = &old {
            let object = serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null);
            let _ = self.changes.send(Change {
                kind,
                key: key.into(),
                event: "DELETED",
                object,
            });
        }
        Ok(old.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let mut rx = s.subscribe();
        s.put(
            "pods",
            &key("pods", "default", "a"),
            &serde_json::json!({"n": 1}),
        )
        .unwrap();
        s.put(
            "pods",
            &key("pods", "default", "b"),
            &serde_json::json!({"n": 2}),
        )
        .unwrap();
        s.put(
            "pods",
            &key("pods", "other", "c"),
            &serde_json::json!({"n": 3}),
        )
        .unwrap();
        s.put(
            "pods",
            &key("pods", "default", "a"),
            &serde_json::json!({"n": 4}),
        )
        .unwrap();
        let l: Vec<serde_json::Value> = s.list("pods/default/").unwrap();
        assert_eq!(
            l,
            vec![serde_json::json!({"n": 4}), serde_json::json!({"n": 2})]
        );
        assert_eq!(rx.try_recv().unwrap().event, "ADDED");
        assert!(s.delete("pods", "pods/default/a").unwrap());
        assert!(!s.delete("pods", "pods/default/a").unwrap());
        assert_eq!(s.get::<serde_json::Value>("pods/default/a").unwrap(), None);
        drop(s);
        let s = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(s.list::<serde_json::Value>("pods/").unwrap().len(), 2);
    }
}
