//! Pod events (`describe` shows them), kept in memory per pod.

use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most events kept per pod.
const PER_POD: usize = 100;

#[derive(Default)]
pub struct Events {
    by_pod: Mutex<HashMap<String, Vec<Event>>>,
}

impl Events {
    /// Record an event; a repeat of the last one bumps its count.
    pub fn record(&self, pod: &Pod, typ: &str, reason: &str, message: impl Into<String>) {
        let message = message.into();
        let ns = crate::node::namespace_of(&pod.metadata);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let now = crate::time::now();
        let Ok(mut map) = self.by_pod.lock() else {
            return;
        };
        let list = map.entry(uid.clone()).or_default();
        if let Some(last) = list.last_mut() {
            if last.reason.as_deref() == Some(reason)
                && last.message.as_deref() == Some(message.as_str())
            {
                last.count = Some(last.count.unwrap_or(1) + 1);
                last.last_timestamp = Some(now);
                return;
            }
        }
        let seq = list.len();
        list.push(Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{seq:x}")),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: Some(name),
                namespace: Some(ns),
                uid: Some(uid),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(typ.into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some("kubelet".into()),
                host: None,
            }),
            ..Default::default()
        });
        if list.len() > PER_POD {
            list.remove(0);
        }
    }

    /// Events of pods named `name` in `ns` (all pods if `name` is None).
    pub fn list(&self, ns: &str, name: Option<&str>) -> Vec<Event> {
        let Ok(map) = self.by_pod.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Event> = map
            .values()
            .flatten()
            .filter(|e| e.involved_object.namespace.as_deref() == Some(ns))
            .filter(|e| name.is_none() || e.involved_object.name.as_deref() == name)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.first_timestamp.cmp(&b.first_timestamp));
        out
    }

    pub fn forget(&self, uid: &str) {
        if let Ok(mut map) = self.by_pod.lock() {
            map.remove(uid);
        }
    }
}
