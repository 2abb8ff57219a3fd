//! The garbage collector, as kube-controller-manager's: dependents (by
//! ownerReferences uid) of an owner that is gone are deleted; an owner
//! deleted with `propagationPolicy: Foreground` (finalizer
//! `foregroundDeletion`) waits until its blocking dependents
//! (`blockOwnerDeletion`) are gone, which are deleted in the foreground
//! too; one deleted with `Orphan` (finalizer `orphan`) first has its
//! dependents' ownerReferences to it removed. A marked object
//! (deletionTimestamp) whose finalizers are all gone is removed.
//!
//! The work is per namespace: a key `gc/<namespace>` reconciles every
//! object of the namespace, so a restart (or a missed change) collects
//! what an owner deleted meanwhile left behind.

use super::{Controller, Reconciled};
use crate::node::Node;
use crate::server::objects::{
    delete_object, GenericObject, Propagation, FOREGROUND_FINALIZER, ORPHAN_FINALIZER,
};
use crate::store::{Change, StoreError, Sync};
use std::collections::HashMap;
use std::sync::Arc;

pub struct GarbageCollector;

/// Prefix of the collector's queue keys (no stored object has it).
const PREFIX: &str = "gc/";

/// Core kinds (v1) that may own or be owned, with their resources.
const CORE: &[(&str, &str)] = &[
    ("Pod", "pods"),
    ("ConfigMap", "configmaps"),
    ("Secret", "secrets"),
    ("Service", "services"),
];

/// Resources whose objects may own or be owned: the namespaced core ones
/// and the kinds of `peapod_api::KINDS` that live in a namespace.
fn resources() -> Vec<&'static str> {
    let mut r: Vec<&'static str> = CORE.iter().map(|(_, r)| *r).collect();
    r.extend(
        peapod_api::KINDS
            .iter()
            .filter(|k| k.namespaced)
            .map(|k| k.plural),
    );
    r
}

/// The resource of an ownerReference's kind.
fn resource_of_kind(api_version: &str, kind: &str) -> Option<&'static str> {
    if api_version == "v1" {
        if let Some((_, r)) = CORE.iter().find(|(k, _)| *k == kind) {
            return Some(r);
        }
    }
    peapod_api::find_kind(api_version, kind)
        .filter(|k| k.namespaced)
        .map(|k| k.plural)
}

/// Whether a change can leave garbage or finish a deletion: a removal, an
/// object marked for deletion, or a new dependent (its owner may be gone
/// already).
fn interesting(change: &Change) -> bool {
    let meta = change.object.get("metadata");
    let deleting = meta.and_then(|m| m.get("deletionTimestamp")).is_some();
    let owned = meta
        .and_then(|m| m.get("ownerReferences"))
        .and_then(|r| r.as_array())
        .is_some_and(|r| !r.is_empty());
    change.event == "DELETED" || deleting || (owned && change.event == "ADDED")
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbagecollector"
    }
    fn primary_prefix(&self) -> &'static str {
        PREFIX
    }
    fn watches(&self) -> &'static [&'static str] {
        // Every resource: filtered in keys_for.
        &[""]
    }
    fn keys_for(&self, node: &Node, change: &Change) -> Vec<String> {
        let res = change.key.split('/').next().unwrap_or("");
        if !resources().contains(&res) || !interesting(change) {
            return Vec::new();
        }
        if change.event == "DELETED" && res != "pods" {
            // Controllers' events about it are no longer correlated (pod
            // workers forget their pods' themselves).
            if let Some(uid) = change
                .object
                .pointer("/metadata/uid")
                .and_then(|u| u.as_str())
            {
                node.events.forget(uid);
            }
        }
        vec![format!("{PREFIX}{}", super::change_namespace(change))]
    }
    fn resync_keys(&self, node: &Node) -> Result<Vec<String>, String> {
        let ns = node
            .store
            .keys(|k| k.starts_with("namespaces/"))
            .map_err(|e| e.to_string())?;
        Ok(ns
            .iter()
            .filter_map(|k| k.strip_prefix("namespaces/"))
            .map(|n| format!("{PREFIX}{n}"))
            .collect())
    }
    fn workers(&self) -> usize {
        1
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let ns = key.strip_prefix(PREFIX).unwrap_or(key);
        collect(node, ns).map_err(|e| format!("namespace {ns}: {e}"))
    }
}

/// One stored object of the namespace.
struct Item {
    resource: &'static str,
    key: String,
    obj: GenericObject,
}

fn uid(o: &GenericObject) -> String {
    o.metadata.uid.clone().unwrap_or_default()
}

fn has_finalizer(o: &GenericObject, f: &str) -> bool {
    o.metadata.finalizers.iter().flatten().any(|x| x == f)
}

/// Delete `item` with `policy` (pods: gracefully, by their worker).
fn delete_item(node: &Arc<Node>, item: &Item, policy: Propagation) -> Result<(), StoreError> {
    if item.resource == "pods" {
        let ns = item.obj.metadata.namespace.clone().unwrap_or_default();
        let name = item.obj.metadata.name.clone().unwrap_or_default();
        crate::server::request_pod_delete(node, &ns, &name)?;
        return Ok(());
    }
    match delete_object(node, &item.key, policy) {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the owner an ownerReference names still exists (with that
/// uid), read from the store now.
fn owner_exists(
    node: &Node,
    ns: &str,
    r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<bool, StoreError> {
    let Some(res) = resource_of_kind(&r.api_version, &r.kind) else {
        // An owner of a kind peapod does not keep (cluster-scoped, or
        // unknown): never collect for it.
        return Ok(true);
    };
    let owner = node
        .store
        .get::<GenericObject>(&crate::store::key(res, ns, &r.name))?;
    Ok(owner.is_some_and(|o| uid(&o) == r.uid))
}

/// Remove the ownerReferences to `owner_uids` from the object at `key`.
fn remove_refs(node: &Node, key: &str, owner_uids: &[String]) -> Result<(), StoreError> {
    node.store
        .update_with_sync::<GenericObject>(key, Sync::Durable, |o| {
            let Some(refs) = o.metadata.owner_references.as_mut() else {
                return false;
            };
            let before = refs.len();
            refs.retain(|r| !owner_uids.contains(&r.uid));
            let changed = refs.len() != before;
            if refs.is_empty() {
                o.metadata.owner_references = None;
            }
            changed
        })
        .map(|_| ())
}

fn remove_finalizer(node: &Node, key: &str, f: &str) -> Result<(), StoreError> {
    node.store
        .update_with_sync::<GenericObject>(key, Sync::Durable, |o| {
            let Some(fins) = o.metadata.finalizers.as_mut() else {
                return false;
            };
            let before = fins.len();
            fins.retain(|x| x != f);
            let changed = fins.len() != before;
            if fins.is_empty() {
                o.metadata.finalizers = None;
            }
            changed
        })
        .map(|_| ())
}

/// One pass over namespace `ns`; asks to look again while an owner waits
/// for its dependents.
fn collect(node: &Arc<Node>, ns: &str) -> Reconciled {
    let e = |e: StoreError| e.to_string();
    let mut items = Vec::new();
    for res in resources() {
        let prefix = format!("{res}/{ns}/");
        for obj in node.store.list::<GenericObject>(&prefix).map_err(e)? {
            let name = obj.metadata.name.clone().unwrap_or_default();
            items.push(Item {
                resource: res,
                key: crate::store::key(res, ns, &name),
                obj,
            });
        }
    }
    // Dependents by owner uid.
    let mut dependents: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        for r in it.obj.metadata.owner_references.iter().flatten() {
            dependents.entry(r.uid.clone()).or_default().push(i);
        }
    }
    let mut again = false;

    // Owners being deleted.
    for it in items.iter().filter(|it| it.resource != "pods") {
        if it.obj.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let u = uid(&it.obj);
        let deps = dependents.get(&u).cloned().unwrap_or_default();
        if has_finalizer(&it.obj, ORPHAN_FINALIZER) {
            for &d in &deps {
                remove_refs(node, &items[d].key, std::slice::from_ref(&u)).map_err(e)?;
            }
            remove_finalizer(node, &it.key, ORPHAN_FINALIZER).map_err(e)?;
            again = true;
            continue;
        }
        if has_finalizer(&it.obj, FOREGROUND_FINALIZER) {
            let mut blocking = 0;
            for &d in &deps {
                let dep = &items[d];
                let blocks = dep
                    .obj
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == u && r.block_owner_deletion == Some(true));
                if blocks {
                    blocking += 1;
                }
                if dep.obj.metadata.deletion_timestamp.is_none() {
                    // The dependent's own dependents go first too.
                    let policy = if blocks {
                        Propagation::Foreground
                    } else {
                        Propagation::Background
                    };
                    delete_item(node, dep, policy).map_err(e)?;
                }
            }
            if blocking == 0 {
                remove_finalizer(node, &it.key, FOREGROUND_FINALIZER).map_err(e)?;
            } else {
                // Dependents are deleted: their removal wakes us, and a
                // slow look again covers one missed.
                again = true;
                continue;
            }
        }
        // No finalizer left (or only ours, just removed): remove it.
        let fresh = node.store.get::<GenericObject>(&it.key).map_err(e)?;
        if let Some(f) = fresh {
            if f.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
                node.store
                    .delete_if(&it.key, Sync::Durable, |m| m.uid == f.metadata.uid)
                    .map_err(e)?;
            }
        }
    }

    // Dependents whose owners are gone.
    let listed: std::collections::HashSet<String> = items.iter().map(|it| uid(&it.obj)).collect();
    for it in &items {
        let refs = it.obj.metadata.owner_references.clone().unwrap_or_default();
        if refs.is_empty() || it.obj.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let mut gone = Vec::new();
        for r in &refs {
            // Listed in this pass: it exists. Else read it now (it may be
            // newer than the listing of its kind).
            if listed.contains(r.uid.as_str()) {
                continue;
            }
            if !owner_exists(node, ns, r).map_err(e)? {
                gone.push(r.uid.clone());
            }
        }
        if gone.is_empty() {
            continue;
        }
        if gone.len() == refs.len() {
            tracing::info!(object = %it.key, "garbage collector: its owner is gone: deleting it");
            delete_item(node, it, Propagation::Background).map_err(e)?;
        } else {
            remove_refs(node, &it.key, &gone).map_err(e)?;
        }
    }
    Ok(again.then_some(std::time::Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(event: &'static str, obj: serde_json::Value) -> Change {
        Change {
            rv: 1,
            key: "pods/ns1/p".into(),
            event,
            object: Arc::new(obj),
        }
    }

    #[test]
    fn only_removals_deletions_and_new_dependents_wake_the_collector() {
        let plain = serde_json::json!({ "metadata": { "name": "p" } });
        let owned =
            serde_json::json!({ "metadata": { "name": "p", "ownerReferences": [{ "uid": "1" }] } });
        let deleting = serde_json::json!({ "metadata": { "name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z" } });
        assert!(interesting(&change("DELETED", plain.clone())));
        assert!(!interesting(&change("MODIFIED", plain.clone())));
        assert!(!interesting(&change("ADDED", plain)));
        assert!(interesting(&change("ADDED", owned.clone())));
        assert!(!interesting(&change("MODIFIED", owned)));
        assert!(interesting(&change("MODIFIED", deleting)));
    }

    #[test]
    fn owner_kinds_map_to_resources() {
        assert_eq!(
            resource_of_kind("apps/v1", "ReplicaSet"),
            Some("replicasets")
        );
        assert_eq!(resource_of_kind("v1", "Pod"), Some("pods"));
        assert_eq!(resource_of_kind("v1", "ConfigMap"), Some("configmaps"));
        assert_eq!(resource_of_kind("v1", "Node"), None);
        assert_eq!(resource_of_kind("v1", "PersistentVolume"), None);
    }
}
