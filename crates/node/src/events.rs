//! Events are objects in the store (`events/<ns>/<name>`, core/v1 Event),
//! as with the API server: they survive a daemon restart, `describe` and
//! the events route list them, a watch sees them.
//!
//! Like kubelet's event correlator, a repeat of the same type, reason and
//! message for the same object bumps the count and lastTimestamp of the
//! event already recorded instead of adding one. They are bounded like
//! kube-apiserver's: at most `PER_OBJECT` per involved object (the oldest go
//! first) and none older than `TTL` (`--event-ttl`, 1 h), removed by
//! `sweep`.
//!
//! Event writes are `Sync::Lazy`: committed without an fsync, made durable
//! by the next `Store::flush` (the daemon flushes every second and on
//! shutdown) or the next durable write. An fsync per event would put disk
//! latency on every pod step (measured on this machine's ext4: a durable
//! redb write takes ~3.8 ms, a lazy one ~0.07 ms); losing the last second of events in a crash
//! is what kubelet's own event buffering accepts too.

use crate::store::{Store, StoreError, Sync};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Most events kept per involved object.
pub const PER_OBJECT: usize = 100;
/// How long an event is kept after it last happened.
pub const TTL: Duration = Duration::from_secs(3600);

/// What identifies a repeat: type, reason, message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Signature {
    type_: String,
    reason: String,
    message: String,
}

/// An event already stored for an object.
#[derive(Debug, Clone)]
struct Recorded {
    key: String,
    signature: Signature,
}

/// What an event is about: the involved object's kind and who reports.
pub struct About {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub component: &'static str,
}

pub struct Events {
    store: Arc<Store>,
    host: String,
    /// Events in the store by involved object uid, oldest first.
    by_object: Mutex<HashMap<String, Vec<Recorded>>>,
    seq: AtomicU64,
}

fn signature(e: &Event) -> Signature {
    Signature {
        type_: e.type_.clone().unwrap_or_default(),
        reason: e.reason.clone().unwrap_or_default(),
        message: e.message.clone().unwrap_or_default(),
    }
}

fn event_key(e: &Event) -> String {
    crate::store::key(
        "events",
        &crate::node::namespace_of(&e.metadata),
        e.metadata.name.as_deref().unwrap_or_default(),
    )
}

impl Events {
    /// Events over `store`, indexing those it already holds.
    pub fn load(store: Arc<Store>, host: &str) -> Result<Self, StoreError> {
        let mut events: Vec<Event> = store.list("events/")?;
        events.sort_by(|a, b| {
            (&a.first_timestamp, &a.metadata.name).cmp(&(&b.first_timestamp, &b.metadata.name))
        });
        let mut by_object: HashMap<String, Vec<Recorded>> = HashMap::new();
        for e in &events {
            let uid = e.involved_object.uid.clone().unwrap_or_default();
            by_object.entry(uid).or_default().push(Recorded {
                key: event_key(e),
                signature: signature(e),
            });
        }
        Ok(Self {
            store,
            host: host.into(),
            by_object: Mutex::new(by_object),
            seq: AtomicU64::new(0),
        })
    }

    /// Record an event about `pod`; a repeat bumps the count of the one
    /// already recorded. Failures are logged: an event is never worth
    /// failing the step that made it.
    pub fn record(&self, pod: &Pod, typ: &str, reason: &str, message: impl Into<String>) {
        let about = About {
            kind: "Pod",
            api_version: "v1",
            component: "kubelet",
        };
        if let Err(e) = self.try_record(&about, &pod.metadata, typ, reason, message.into()) {
            tracing::warn!(pod = ?pod.metadata.name, %reason, "recording event: {e}");
        }
    }

    /// An event about another kind of object (a controller's:
    /// `SuccessfulCreate` on a ReplicaSet, `ScalingReplicaSet` on a
    /// Deployment), from `component` (`replicaset-controller`).
    pub fn record_for(
        &self,
        about: &About,
        meta: &ObjectMeta,
        typ: &str,
        reason: &str,
        message: impl Into<String>,
    ) {
        if let Err(e) = self.try_record(about, meta, typ, reason, message.into()) {
            tracing::warn!(object = ?meta.name, kind = about.kind, %reason, "recording event: {e}");
        }
    }

    fn try_record(
        &self,
        about: &About,
        meta: &ObjectMeta,
        typ: &str,
        reason: &str,
        message: String,
    ) -> Result<(), StoreError> {
        let ns = crate::node::namespace_of(meta);
        let name = meta.name.clone().unwrap_or_default();
        let uid = meta.uid.clone().unwrap_or_default();
        let sig = Signature {
            type_: typ.into(),
            reason: reason.into(),
            message,
        };
        let now = crate::time::now();
        let mut map = self.by_object.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(uid.clone()).or_default();
        if let Some(pos) = list.iter().position(|r| r.signature == sig) {
            let key = list[pos].key.clone();
            let bumped = self
                .store
                .update_with_sync::<Event>(&key, Sync::Lazy, |e| {
                    e.count = Some(e.count.unwrap_or(1) + 1);
                    e.last_timestamp = Some(now.clone());
                    true
                })?;
            if bumped.is_some() {
                // Most recent last, so the bound drops the stalest.
                let r = list.remove(pos);
                list.push(r);
                return Ok(());
            }
            list.remove(pos);
        }
        // kubelet names events `<object>.<unix nanos in hex>`.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", nanos.wrapping_add(seq))),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some(about.kind.into()),
                api_version: Some(about.api_version.into()),
                name: Some(name),
                namespace: Some(ns),
                uid: Some(uid),
                resource_version: meta.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(sig.reason.clone()),
            message: Some(sig.message.clone()),
            type_: Some(sig.type_.clone()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(about.component.into()),
                host: Some(self.host.clone()),
            }),
            reporting_component: Some(about.component.into()),
            reporting_instance: Some(self.host.clone()),
            ..Default::default()
        };
        let event = self.store.create_with(event, Sync::Lazy)?;
        list.push(Recorded {
            key: event_key(&event),
            signature: sig,
        });
        while list.len() > PER_OBJECT {
            let old = list.remove(0);
            self.store.delete_if(&old.key, Sync::Lazy, |_| true)?;
        }
        Ok(())
    }

    /// Events in `ns` about objects named `name` (all if None), oldest
    /// first.
    pub fn list(&self, ns: &str, name: Option<&str>) -> Result<(Vec<Event>, u64), StoreError> {
        let (events, rv) = self.store.list_at::<Event>(&format!("events/{ns}/"))?;
        let mut out: Vec<Event> = events
            .into_iter()
            .filter(|e| name.is_none() || e.involved_object.name.as_deref() == name)
            .collect();
        out.sort_by(|a, b| {
            (&a.first_timestamp, &a.metadata.name).cmp(&(&b.first_timestamp, &b.metadata.name))
        });
        Ok((out, rv))
    }

    /// The pod `uid` is gone: stop correlating its events. They stay in the
    /// store until they expire, as with the API server.
    pub fn forget(&self, uid: &str) {
        let mut map = self.by_object.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(uid);
    }

    /// Remove events that last happened more than `ttl` ago; how many.
    pub fn sweep(&self, ttl: Duration) -> Result<usize, StoreError> {
        let cutoff = crate::time::now_ts().as_second() - ttl.as_secs() as i64;
        let events: Vec<Event> = self.store.list("events/")?;
        let mut removed = 0;
        let mut map = self.by_object.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            let last = e
                .last_timestamp
                .as_ref()
                .or(e.first_timestamp.as_ref())
                .map(|t| t.0.as_second())
                .unwrap_or(0);
            if last >= cutoff {
                continue;
            }
            let key = event_key(&e);
            let rv = e.metadata.resource_version.clone();
            // Only if it did not happen again meanwhile.
            if self
                .store
                .delete_if(&key, Sync::Lazy, |m| m.resource_version == rv)?
            {
                removed += 1;
                if let Some(list) = e
                    .involved_object
                    .uid
                    .as_ref()
                    .and_then(|uid| map.get_mut(uid))
                {
                    list.retain(|r| r.key != key);
                }
            }
        }
        map.retain(|_, list| !list.is_empty());
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn repeats_bump_count_bounded_per_object_and_kept_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = Arc::new(Store::open(&path).expect("open"));
        let events = Events::load(store.clone(), "host").expect("load");
        let p = pod("web", "u1");
        events.record(&p, "Normal", "Pulled", "image present");
        events.record(&p, "Normal", "Started", "Started container c");
        events.record(&p, "Normal", "Pulled", "image present");
        let (list, _) = events.list("default", Some("web")).expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].reason.as_deref(), Some("Pulled"));
        assert_eq!(list[0].count, Some(2));
        assert_eq!(list[1].count, Some(1));
        for i in 0..(PER_OBJECT + 5) {
            events.record(&p, "Warning", "Failed", format!("attempt {i}"));
        }
        let (list, _) = events.list("default", Some("web")).expect("list");
        assert_eq!(list.len(), PER_OBJECT);
        assert!(list
            .iter()
            .all(|e| e.message.as_deref() != Some("image present")));
        drop(events);
        drop(store);

        let store = Arc::new(Store::open(&path).expect("reopen"));
        let events = Events::load(store.clone(), "host").expect("load");
        let (list, _) = events.list("default", Some("web")).expect("list");
        assert_eq!(list.len(), PER_OBJECT, "events survive a reopen");
        // The repeat of a stored event still bumps it after the reopen.
        let last = list
            .last()
            .and_then(|e| e.message.clone())
            .expect("message");
        events.record(&p, "Warning", "Failed", last.clone());
        let (list, _) = events.list("default", Some("web")).expect("list");
        let bumped = list.iter().find(|e| e.message.as_ref() == Some(&last));
        assert_eq!(bumped.and_then(|e| e.count), Some(2));
        assert_eq!(events.sweep(TTL).expect("sweep"), 0);
        // One that last happened two hours ago expires.
        let old =
            k8s_openapi::jiff::Timestamp::from_second(crate::time::now_ts().as_second() - 7200)
                .expect("time");
        let mut stale = list[0].clone();
        stale.metadata.name = Some("web.old".into());
        stale.last_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(old));
        store.create(stale).expect("create");
        assert_eq!(events.sweep(TTL).expect("sweep"), 1);
        let (list, _) = events.list("default", Some("web")).expect("list");
        assert_eq!(list.len(), PER_OBJECT);
    }
}
