//! PersistentVolumeClaims and a local provisioner (the PV controller and
//! a hostPath provisioner in one): a default StorageClass `local`
//! (provisioner `peapod.io/local`, reclaimPolicy Delete) exists from the
//! start; a Pending claim of that class (or of no class, which means the
//! default) gets a new PersistentVolume `pvc-<claim uid>` whose hostPath
//! is a directory `<root>/volumes/pv/<pv-name>`, and both are Bound. When
//! the claim is deleted its volume is Released; with reclaimPolicy Delete
//! the volume and its directory are removed, with Retain both are kept.
//! A claim whose class is not provisioned here binds to an Available
//! volume of its class with enough capacity, when there is one.

use super::{Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::store::Change;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimStatus, PersistentVolumeSpec, PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub struct VolumeController;

pub const PROVISIONER: &str = "peapod.io/local";
pub const DEFAULT_CLASS: &str = "local";
const DEFAULT_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

const ABOUT: About = About {
    kind: "PersistentVolumeClaim",
    api_version: "v1",
    component: "persistentvolume-controller",
};

/// The directory of volume `pv` under the node's root.
pub fn pv_dir(node: &Node, pv: &str) -> PathBuf {
    node.runtime
        .paths
        .root()
        .join("volumes")
        .join("pv")
        .join(pv)
}

/// The API server's defaults for a claim: Filesystem mode.
pub fn default_claim(c: &mut PersistentVolumeClaim) {
    let spec = c.spec.get_or_insert_with(Default::default);
    spec.volume_mode
        .get_or_insert_with(|| "Filesystem".to_string());
}

/// The API server's checks of a claim: access modes and a storage request.
pub fn validate_claim(c: &PersistentVolumeClaim) -> Result<(), String> {
    let spec = c.spec.as_ref().ok_or("spec: Required value")?;
    if spec.access_modes.as_ref().is_none_or(Vec::is_empty) {
        return Err("spec.accessModes: Required value: at least 1 access mode is required".into());
    }
    for m in spec.access_modes.iter().flatten() {
        if !matches!(
            m.as_str(),
            "ReadWriteOnce" | "ReadOnlyMany" | "ReadWriteMany" | "ReadWriteOncePod"
        ) {
            return Err(format!("spec.accessModes: Unsupported value: {m:?}: supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""));
        }
    }
    if request(c).is_none() {
        return Err("spec.resources[storage]: Required value".into());
    }
    Ok(())
}

fn request(c: &PersistentVolumeClaim) -> Option<Quantity> {
    c.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .cloned()
}

fn bytes(q: &Quantity) -> i64 {
    peapod_api::parse_quantity(&q.0)
        .map(|q| q.as_bytes())
        .unwrap_or(0)
}

/// Make sure the default StorageClass exists.
pub fn ensure_default_class(node: &Node) -> Result<(), String> {
    let key = format!("storageclasses/{DEFAULT_CLASS}");
    if node
        .store
        .get::<StorageClass>(&key)
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let sc = StorageClass {
        metadata: ObjectMeta {
            name: Some(DEFAULT_CLASS.into()),
            annotations: Some(BTreeMap::from([(
                DEFAULT_ANNOTATION.to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        allow_volume_expansion: Some(false),
        ..Default::default()
    };
    match node.store.create(sc) {
        Ok(_) | Err(crate::store::StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(format!(
            "creating the default StorageClass {DEFAULT_CLASS}: {e}"
        )),
    }
}

/// The default StorageClass's name, if any.
fn default_class(node: &Node) -> Option<String> {
    node.store
        .list::<StorageClass>("storageclasses/")
        .ok()?
        .into_iter()
        .find(|s| {
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
        .and_then(|s| s.metadata.name)
}

impl Controller for VolumeController {
    fn name(&self) -> &'static str {
        "persistentvolume"
    }
    fn primary_prefix(&self) -> &'static str {
        "persistentvolumeclaims/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["persistentvolumes/", "pods/"]
    }
    fn keys_for(&self, _node: &Node, change: &Change) -> Vec<String> {
        if change.key.starts_with("persistentvolumeclaims/") {
            return vec![change.key.clone()];
        }
        if change.key.starts_with("pods/") {
            // A pod's claims: one being deleted may be free now.
            let ns = super::change_namespace(change);
            return change
                .object
                .pointer("/spec/volumes")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str())
                .map(|c| crate::store::key("persistentvolumeclaims", &ns, c))
                .collect();
        }
        // A volume: its claim's key.
        let r = change.object.pointer("/spec/claimRef");
        match r.and_then(|r| Some((r.get("namespace")?.as_str()?, r.get("name")?.as_str()?))) {
            Some((ns, n)) => vec![crate::store::key("persistentvolumeclaims", ns, n)],
            None => Vec::new(),
        }
    }
    /// Every claim, and the claims of every bound volume (a claim deleted
    /// while the daemon was down releases its volume at start).
    fn resync_keys(&self, node: &Node) -> Result<Vec<String>, String> {
        ensure_default_class(node)?;
        let mut keys = node
            .store
            .keys(|k| k.starts_with("persistentvolumeclaims/"))
            .map_err(|e| e.to_string())?;
        for pv in node
            .store
            .list::<PersistentVolume>("persistentvolumes/")
            .map_err(|e| e.to_string())?
        {
            if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                if let (Some(ns), Some(n)) = (&r.namespace, &r.name) {
                    keys.push(crate::store::key("persistentvolumeclaims", ns, n));
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let (ns, name) = super::split_key(key).ok_or_else(|| format!("bad key {key}"))?;
        let claim = node
            .store
            .get::<PersistentVolumeClaim>(key)
            .map_err(|e| e.to_string())?;
        match claim {
            Some(c) if c.metadata.deletion_timestamp.is_none() => bind(node, key, c),
            Some(c) => unprotect(node, key, ns, name, c),
            None => release(node, ns, name, None),
        }
    }
    fn workers(&self) -> usize {
        1
    }
}

/// The finalizer that keeps a claim while pods use it.
pub const PROTECTION: &str = "kubernetes.io/pvc-protection";

/// Whether a pod that has not terminated uses claim `ns/name`.
fn in_use(node: &Node, ns: &str, name: &str) -> Result<bool, String> {
    Ok(node
        .list_pods(Some(ns))
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .any(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .into_iter()
                .flatten()
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == name)
                })
        }))
}

/// A claim being deleted: once no pod uses it, drop the protection
/// finalizer (and the claim, when that was the last one); its volume is
/// released when the claim is gone.
fn unprotect(
    node: &Arc<Node>,
    key: &str,
    ns: &str,
    name: &str,
    claim: PersistentVolumeClaim,
) -> Reconciled {
    let protected = claim
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == PROTECTION));
    if !protected {
        return Ok(None);
    }
    if in_use(node, ns, name)? {
        // Pods' changes bring the claim back here.
        return Ok(None);
    }
    let updated = node
        .store
        .update_with::<PersistentVolumeClaim>(key, |c| {
            let Some(f) = c.metadata.finalizers.as_mut() else {
                return false;
            };
            let before = f.len();
            f.retain(|x| x != PROTECTION);
            before != f.len()
        })
        .map_err(|e| e.to_string())?;
    if let Some(c) = updated {
        if c.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
            let uid = c.metadata.uid.clone();
            node.store
                .delete_if(key, crate::store::Sync::Durable, |m| m.uid == uid)
                .map_err(|e| format!("PersistentVolumeClaim {ns}/{name}: deleting it: {e}"))?;
        }
    }
    Ok(None)
}

/// Release the volumes bound to the claim `ns/name` (gone); reclaim them.
fn release(node: &Arc<Node>, ns: &str, name: &str, live_uid: Option<String>) -> Reconciled {
    let pvs = node
        .store
        .list::<PersistentVolume>("persistentvolumes/")
        .map_err(|e| e.to_string())?;
    for pv in pvs {
        let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
            continue;
        };
        if r.namespace.as_deref() != Some(ns) || r.name.as_deref() != Some(name) {
            continue;
        }
        if live_uid.is_some() && r.uid == live_uid {
            // The claim is being deleted but still there: wait.
            continue;
        }
        let pv_name = pv.metadata.name.clone().unwrap_or_default();
        let pv_key = format!("persistentvolumes/{pv_name}");
        let policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.clone())
            .unwrap_or_else(|| "Retain".into());
        if policy == "Delete" {
            let dir = pv_dir(node, &pv_name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| {
                    format!(
                        "PersistentVolume {pv_name}: removing its directory {}: {e}",
                        dir.display()
                    )
                })?;
            }
            node.store
                .delete("persistentvolumes", &pv_key)
                .map_err(|e| format!("PersistentVolume {pv_name}: deleting it: {e}"))?;
        } else {
            node.store
                .update_with::<PersistentVolume>(&pv_key, |v| {
                    let st = v.status.get_or_insert_with(Default::default);
                    if st.phase.as_deref() == Some("Released") {
                        return false;
                    }
                    st.phase = Some("Released".into());
                    true
                })
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(None)
}

fn bind(node: &Arc<Node>, key: &str, claim: PersistentVolumeClaim) -> Reconciled {
    let ns = crate::node::namespace_of(&claim.metadata);
    let name = claim.metadata.name.clone().unwrap_or_default();
    let spec = claim.spec.clone().unwrap_or_default();
    if let Some(v) = spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
            return Ok(None);
        }
        let pv = node
            .store
            .get::<PersistentVolume>(&format!("persistentvolumes/{v}"))
            .map_err(|e| e.to_string())?;
        return match pv {
            Some(pv) => mark_bound(node, key, &pv),
            None => {
                set_phase(node, key, "Lost")?;
                Ok(None)
            }
        };
    }
    let class = match spec.storage_class_name.clone() {
        Some(c) => c,
        None => default_class(node).unwrap_or_default(),
    };
    let want = request(&claim).map(|q| bytes(&q)).unwrap_or(0);
    // An Available volume of the class first.
    let pvs = node
        .store
        .list::<PersistentVolume>("persistentvolumes/")
        .map_err(|e| e.to_string())?;
    let free = pvs.into_iter().find(|pv| {
        let s = pv.spec.clone().unwrap_or_default();
        s.claim_ref.is_none()
            && s.storage_class_name.clone().unwrap_or_default() == class
            && s.capacity
                .as_ref()
                .and_then(|c| c.get("storage"))
                .is_some_and(|q| bytes(q) >= want)
    });
    let pv = match free {
        Some(pv) => pv,
        None => {
            let sc = node
                .store
                .get::<StorageClass>(&format!("storageclasses/{class}"))
                .map_err(|e| e.to_string())?;
            let Some(sc) = sc.filter(|s| s.provisioner == PROVISIONER) else {
                let msg = if class.is_empty() {
                    "no persistent volumes available for this claim and no storage class is set"
                        .to_string()
                } else {
                    format!("storageclass.storage.k8s.io {class:?} not found or not provisioned by {PROVISIONER}; create a PersistentVolume of that class or use storageClassName: {DEFAULT_CLASS}")
                };
                node.events.record_for(
                    &ABOUT,
                    &claim.metadata,
                    "Warning",
                    if class.is_empty() {
                        "FailedBinding"
                    } else {
                        "ProvisioningFailed"
                    },
                    msg,
                );
                set_phase(node, key, "Pending")?;
                return Ok(None);
            };
            provision(node, &claim, &sc, &class)?
        }
    };
    // Bind the volume to the claim, then the claim to the volume.
    let pv_name = pv.metadata.name.clone().unwrap_or_default();
    let cref = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: Some(name.clone()),
        namespace: Some(ns.clone()),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..Default::default()
    };
    let pv = node
        .store
        .update_with::<PersistentVolume>(&format!("persistentvolumes/{pv_name}"), |v| {
            let s = v.spec.get_or_insert_with(Default::default);
            if s.claim_ref.is_some() && s.claim_ref.as_ref().map(|r| &r.uid) != Some(&cref.uid) {
                return false;
            }
            s.claim_ref = Some(cref.clone());
            v.status = Some(PersistentVolumeStatus {
                phase: Some("Bound".into()),
                ..Default::default()
            });
            true
        })
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("PersistentVolume {pv_name} vanished while binding"))?;
    if pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .map(|r| &r.uid)
        != Some(&claim.metadata.uid)
    {
        return Err(format!(
            "PersistentVolumeClaim {ns}/{name}: volume {pv_name} was bound to another claim"
        ));
    }
    node.store
        .update_with::<PersistentVolumeClaim>(key, |c| {
            let s = c.spec.get_or_insert_with(Default::default);
            s.volume_name = Some(pv_name.clone());
            if s.storage_class_name.is_none() && !class.is_empty() {
                s.storage_class_name = Some(class.clone());
            }
            let f = c.metadata.finalizers.get_or_insert_with(Vec::new);
            if !f.iter().any(|x| x == PROTECTION) {
                f.push(PROTECTION.into());
            }
            let a = c.metadata.annotations.get_or_insert_with(Default::default);
            a.insert("pv.kubernetes.io/bind-completed".into(), "yes".into());
            a.insert("pv.kubernetes.io/bound-by-controller".into(), "yes".into());
            true
        })
        .map_err(|e| e.to_string())?;
    mark_bound(node, key, &pv)
}

fn set_phase(node: &Node, key: &str, phase: &str) -> Result<(), String> {
    node.store
        .update_with::<PersistentVolumeClaim>(key, |c| {
            let st = c.status.get_or_insert_with(Default::default);
            if st.phase.as_deref() == Some(phase) {
                return false;
            }
            st.phase = Some(phase.into());
            true
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn mark_bound(node: &Node, key: &str, pv: &PersistentVolume) -> Reconciled {
    let s = pv.spec.clone().unwrap_or_default();
    node.store
        .update_with::<PersistentVolumeClaim>(key, |c| {
            let st = PersistentVolumeClaimStatus {
                phase: Some("Bound".into()),
                access_modes: s.access_modes.clone(),
                capacity: s.capacity.clone(),
                ..Default::default()
            };
            if c.status.as_ref() == Some(&st) {
                return false;
            }
            c.status = Some(st);
            true
        })
        .map_err(|e| e.to_string())?;
    Ok(None)
}

/// A new volume for `claim`: its directory and its PersistentVolume.
fn provision(
    node: &Arc<Node>,
    claim: &PersistentVolumeClaim,
    sc: &StorageClass,
    class: &str,
) -> Result<PersistentVolume, String> {
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let pv_name = format!("pvc-{uid}");
    let dir = pv_dir(node, &pv_name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "provisioning a volume for claim {}: creating {}: {e}",
            claim.metadata.name.as_deref().unwrap_or(""),
            dir.display()
        )
    })?;
    // Any container user may write to it, as an emptyDir.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
    let spec = claim.spec.clone().unwrap_or_default();
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.clone()),
            annotations: Some(BTreeMap::from([(
                "pv.kubernetes.io/provisioned-by".to_string(),
                PROVISIONER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity: request(claim).map(|q| BTreeMap::from([("storage".to_string(), q)])),
            host_path: Some(HostPathVolumeSource {
                path: dir.to_string_lossy().into_owned(),
                type_: Some("Directory".into()),
            }),
            persistent_volume_reclaim_policy: Some(
                sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: Some(class.to_string()),
            volume_mode: Some("Filesystem".into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some("Available".into()),
            ..Default::default()
        }),
    };
    let created = match node.store.create(pv) {
        Ok(pv) => pv,
        Err(crate::store::StoreError::AlreadyExists { .. }) => node
            .store
            .get::<PersistentVolume>(&format!("persistentvolumes/{pv_name}"))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("PersistentVolume {pv_name} vanished"))?,
        Err(e) => return Err(format!("creating PersistentVolume {pv_name}: {e}")),
    };
    node.events.record_for(
        &ABOUT,
        &claim.metadata,
        "Normal",
        "ProvisioningSucceeded",
        format!(
            "Successfully provisioned volume {pv_name} using {}",
            sc.provisioner
        ),
    );
    Ok(created)
}

/// The host directory of claim `ns/claim` for a pod's volume: the claim
/// must exist and be bound. The error is what the pod's FailedMount
/// event says.
pub fn claim_path(store: &crate::store::Store, ns: &str, claim: &str) -> Result<PathBuf, String> {
    let c = store
        .get::<PersistentVolumeClaim>(&crate::store::key("persistentvolumeclaims", ns, claim))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim {claim:?} not found"))?;
    let vol = c
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|_| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
        .ok_or_else(|| format!("pod has unbound immediate PersistentVolumeClaims: persistentvolumeclaim {claim:?} is not bound"))?;
    let pv = store
        .get::<PersistentVolume>(&format!("persistentvolumes/{vol}"))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolume {vol:?} of claim {claim:?} not found"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| format!("persistentvolume {vol:?} is neither hostPath nor local"))?;
    let p = PathBuf::from(path);
    if !p.is_dir() {
        return Err(format!(
            "persistentvolume {vol:?}: its directory {} does not exist",
            p.display()
        ));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_need_access_modes_and_a_request() {
        let mut c: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "data" },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
        }))
        .expect("claim");
        default_claim(&mut c);
        assert!(validate_claim(&c).is_ok());
        assert_eq!(bytes(&request(&c).expect("request")), 1 << 30);
        if let Some(s) = c.spec.as_mut() {
            s.access_modes = None;
        }
        assert!(validate_claim(&c)
            .expect_err("no modes")
            .contains("accessModes"));
    }
}
