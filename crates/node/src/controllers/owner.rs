//! ownerReferences: the controller reference of an object, the key of a
//! change's controller, and claiming dependents as client-go's
//! `ControllerRefManager` does: adopt an orphan the selector matches
//! (give it a controllerRef), release one whose labels no longer match
//! (remove the ref), ignore one another controller owns.

use crate::node::Node;
use crate::store::{Change, Object};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use peapod_api::selector::LabelSelector;

/// The controlling ownerReference of `meta` (`controller: true`).
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// An ownerReference to `owner` (of `api_version`/`kind`) as a controller
/// sets it: controller and blockOwnerDeletion true.
pub fn controller_ref_to(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_ref(meta).is_some_and(|r| r.uid == uid)
}

/// The store key (`<plural>/<ns>/<name>`) of the controller of a change's
/// object, when that controller is of `kind`.
pub fn controller_key(change: &Change, kind: &str, plural: &str) -> Option<String> {
    let refs = change
        .object
        .pointer("/metadata/ownerReferences")?
        .as_array()?;
    let r = refs
        .iter()
        .find(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true))?;
    if r.get("kind")?.as_str()? != kind {
        return None;
    }
    let name = r.get("name")?.as_str()?;
    Some(crate::store::key(
        plural,
        &super::change_namespace(change),
        name,
    ))
}

/// The keys a change concerns for the controller of `kind`/`plural`: the
/// changed object itself when it is one of `plural`, else its controller
/// when that is of `kind` (kube's "enqueue the owner").
pub fn self_or_controller(change: &Change, kind: &str, plural: &str) -> Vec<String> {
    if change
        .key
        .strip_prefix(plural)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return vec![change.key.clone()];
    }
    controller_key(change, kind, plural).into_iter().collect()
}

/// Whether a change's object has a controller at all.
pub fn has_controller(change: &Change) -> bool {
    change
        .object
        .pointer("/metadata/ownerReferences")
        .and_then(|r| r.as_array())
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("controller").and_then(|c| c.as_bool()) == Some(true))
        })
}

/// The labels of a change's object.
pub fn change_labels(change: &Change) -> std::collections::BTreeMap<String, String> {
    change
        .object
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// Keys of the objects under `prefix` in the change's namespace whose
/// selector (read by `selector_of`) matches the labels of the change's
/// object: the controllers that may adopt an orphan.
pub fn selecting<T: Object>(
    node: &Node,
    change: &Change,
    plural: &str,
    selector_of: impl Fn(&T) -> Option<LabelSelector>,
) -> Vec<String> {
    let ns = super::change_namespace(change);
    let labels = change_labels(change);
    let Ok(owners) = node.store.list::<T>(&format!("{plural}/{ns}/")) else {
        return Vec::new();
    };
    owners
        .iter()
        .filter(|o| selector_of(o).is_some_and(|s| !s.is_empty() && s.matches(Some(&labels))))
        .filter_map(|o| {
            o.metadata()
                .name
                .as_deref()
                .map(|n| crate::store::key(plural, &ns, n))
        })
        .collect()
}

/// Claim the `candidates` (objects of the owner's namespace) for the owner
/// `oref`: those it controls and `selector` matches are kept; an orphan it
/// matches is adopted (unless it or the owner is being deleted); one it
/// controls that no longer matches is released. Adoption and release are
/// compare-and-swap writes at `key_of(obj)`; an object that changed
/// meanwhile is simply left for the next reconcile. Returns the claimed
/// objects as stored.
pub fn claim<T: Object>(
    node: &Node,
    oref: &OwnerReference,
    owner_deleting: bool,
    selector: &LabelSelector,
    candidates: Vec<T>,
    key_of: impl Fn(&T) -> String,
) -> Result<Vec<T>, String> {
    let mut claimed = Vec::new();
    for obj in candidates {
        let meta = obj.metadata();
        let matches = selector.matches(meta.labels.as_ref());
        match controller_ref(meta) {
            Some(r) if r.uid == oref.uid => {
                if matches || owner_deleting {
                    claimed.push(obj);
                    continue;
                }
                // Release.
                let uid = oref.uid.clone();
                let updated = node
                    .store
                    .update_with::<T>(&key_of(&obj), |o| {
                        let m = o.metadata_mut();
                        let before = m.owner_references.as_ref().map_or(0, Vec::len);
                        if let Some(refs) = m.owner_references.as_mut() {
                            refs.retain(|r| r.uid != uid);
                        }
                        if m.owner_references.as_ref().is_some_and(Vec::is_empty) {
                            m.owner_references = None;
                        }
                        before != m.owner_references.as_ref().map_or(0, Vec::len)
                    })
                    .map_err(|e| e.to_string())?;
                drop(updated);
            }
            Some(_) => {}
            None => {
                if !matches || owner_deleting || meta.deletion_timestamp.is_some() {
                    continue;
                }
                // Adopt.
                let r = oref.clone();
                let adopted = node
                    .store
                    .update_with::<T>(&key_of(&obj), |o| {
                        let m = o.metadata_mut();
                        if controller_ref(m).is_some() || m.deletion_timestamp.is_some() {
                            return false;
                        }
                        m.owner_references
                            .get_or_insert_with(Vec::new)
                            .push(r.clone());
                        true
                    })
                    .map_err(|e| e.to_string())?;
                if let Some(a) = adopted {
                    if is_controlled_by(a.metadata(), &oref.uid) {
                        claimed.push(a);
                    }
                }
            }
        }
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn change(obj: serde_json::Value) -> Change {
        Change {
            rv: 1,
            key: "pods/ns1/p".into(),
            event: "MODIFIED",
            object: Arc::new(obj),
        }
    }

    #[test]
    fn a_change_maps_to_its_controllers_key() {
        let c = change(serde_json::json!({
            "metadata": { "name": "p", "namespace": "ns1", "ownerReferences": [
                { "apiVersion": "v1", "kind": "Other", "name": "x", "uid": "1" },
                { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc", "uid": "2", "controller": true },
            ]}
        }));
        assert_eq!(
            controller_key(&c, "ReplicaSet", "replicasets").as_deref(),
            Some("replicasets/ns1/web-abc")
        );
        assert_eq!(controller_key(&c, "Job", "jobs"), None);
        assert!(has_controller(&c));
        let orphan =
            change(serde_json::json!({ "metadata": { "name": "p", "labels": { "a": "b" } } }));
        assert!(!has_controller(&orphan));
        assert_eq!(
            change_labels(&orphan).get("a").map(String::as_str),
            Some("b")
        );
    }

    #[test]
    fn controller_refs_block_owner_deletion() {
        let meta = ObjectMeta {
            name: Some("web".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let r = controller_ref_to("apps/v1", "ReplicaSet", &meta);
        assert_eq!(r.controller, Some(true));
        assert_eq!(r.block_owner_deletion, Some(true));
        let dep = ObjectMeta {
            owner_references: Some(vec![r]),
            ..Default::default()
        };
        assert!(is_controlled_by(&dep, "u1"));
        assert!(!is_controlled_by(&dep, "u2"));
    }
}
