//! The StatefulSet controller (kube-controller-manager's
//! `pkg/controller/statefulset`): pods with stable names `<set>-0..N-1`,
//! hostname = pod name and subdomain = serviceName; with OrderedReady
//! (the default) a pod is created only when all lower ordinals are Running
//! and Ready, and scaled down highest ordinal first, one at a time; with
//! Parallel all at once. RollingUpdate replaces pods whose
//! `controller-revision-hash` differs from the template's, highest ordinal
//! first down to `partition`, one at a time; OnDelete leaves them until
//! the user deletes them. Each volumeClaimTemplate gives each pod a
//! PersistentVolumeClaim `<template>-<set>-<ordinal>`, created before the
//! pod and kept when the set scales down (retention policy Retain).
//!
//! Revisions are a hash label only (no ControllerRevision objects): a pod
//! re-created below the partition gets the current template.

use super::{owner, pod_template, Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::store::Change;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct StatefulSetController;

const ABOUT: About = About {
    kind: "StatefulSet",
    api_version: "apps/v1",
    component: "statefulset-controller",
};

pub const REVISION_LABEL: &str = "controller-revision-hash";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

impl Controller for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }
    fn primary_prefix(&self) -> &'static str {
        "statefulsets/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["pods/"]
    }
    fn keys_for(&self, _node: &Node, change: &Change) -> Vec<String> {
        owner::self_or_controller(change, "StatefulSet", "statefulsets")
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let Some(set) = node
            .store
            .get::<StatefulSet>(key)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        sync(node, key, set)
    }
}

/// A pod of the set as the decision sees it.
#[derive(Debug, Clone, Default)]
pub struct Member {
    pub ordinal: i32,
    pub name: String,
    /// Running and Ready.
    pub healthy: bool,
    pub terminating: bool,
    /// Succeeded or Failed: to be replaced.
    pub terminal: bool,
    pub revision: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create(i32),
    Delete(String),
}

/// The set's next steps (`StatefulSetControl.UpdateStatefulSet`):
/// `partition` is Some for RollingUpdate, None for OnDelete.
pub fn decide(
    replicas: i32,
    parallel: bool,
    partition: Option<i32>,
    update_revision: &str,
    pods: &[Member],
) -> Vec<Action> {
    let by_ord: BTreeMap<i32, &Member> = pods.iter().map(|m| (m.ordinal, m)).collect();
    let mut out = Vec::new();
    for i in 0..replicas.max(0) {
        match by_ord.get(&i) {
            None => {
                out.push(Action::Create(i));
                if !parallel {
                    return out;
                }
            }
            Some(m) if m.terminating || !m.healthy => {
                if m.terminal && !m.terminating {
                    out.push(Action::Delete(m.name.clone()));
                }
                if !parallel {
                    return out;
                }
            }
            Some(_) => {}
        }
    }
    // Scale down: highest ordinal first.
    for m in by_ord.range(replicas.max(0)..).rev().map(|(_, m)| *m) {
        if m.terminating {
            if !parallel {
                return out;
            }
            continue;
        }
        out.push(Action::Delete(m.name.clone()));
        if !parallel {
            return out;
        }
    }
    if !out.is_empty() {
        return out;
    }
    // Rolling update: highest ordinal first, down to the partition.
    if let Some(p) = partition {
        for i in (p.max(0)..replicas).rev() {
            let Some(m) = by_ord.get(&i) else {
                return out;
            };
            if m.revision != update_revision && !m.terminating {
                out.push(Action::Delete(m.name.clone()));
                return out;
            }
            if !m.healthy || m.terminating {
                return out;
            }
        }
    }
    out
}

/// The ordinal of `pod` in the set `set` (`web-3` → 3).
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse().ok().filter(|n: &i32| *n >= 0)
}

/// The revision of the set's template: `<set>-<hash>`.
pub fn revision(set: &StatefulSet) -> String {
    let t = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    format!(
        "{}-{}",
        set.metadata.name.as_deref().unwrap_or(""),
        super::deployment::template_hash(&t, None)
    )
}

/// The claim name of template `t` for ordinal `i` of `set`.
pub fn claim_name(template: &str, set: &str, i: i32) -> String {
    format!("{template}-{set}-{i}")
}

/// The API server's defaults for a StatefulSet.
pub fn default_statefulset(set: &mut StatefulSet) {
    let spec = set.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    spec.pod_management_policy
        .get_or_insert_with(|| "OrderedReady".into());
    spec.revision_history_limit.get_or_insert(10);
    let us = spec.update_strategy.get_or_insert_with(Default::default);
    let typ = us.type_.get_or_insert_with(|| "RollingUpdate".into());
    if typ == "RollingUpdate" {
        us.rolling_update
            .get_or_insert_with(Default::default)
            .partition
            .get_or_insert(0);
    }
    let pol = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(Default::default);
    pol.when_deleted.get_or_insert_with(|| "Retain".into());
    pol.when_scaled.get_or_insert_with(|| "Retain".into());
}

/// The API server's checks: a selector that matches the template's
/// labels, a known podManagementPolicy and update strategy.
pub fn validate_statefulset(set: &StatefulSet) -> Result<(), String> {
    let spec = set
        .spec
        .as_ref()
        .ok_or("spec: Required value: a StatefulSet needs a selector and a template")?;
    let sel = peapod_api::selector::LabelSelector::from_meta(&spec.selector)
        .map_err(|e| format!("spec.selector: {e}"))?;
    if sel.is_empty() {
        return Err(
            "spec.selector: Invalid value: empty selector is invalid for statefulset".into(),
        );
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    if !sel.matches(labels.as_ref()) {
        return Err("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into());
    }
    if let Some(p) = spec.pod_management_policy.as_deref() {
        if !matches!(p, "OrderedReady" | "Parallel") {
            return Err(format!("spec.podManagementPolicy: Unsupported value: {p:?}: supported values: \"OrderedReady\", \"Parallel\""));
        }
    }
    if let Some(t) = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
    {
        if !matches!(t, "RollingUpdate" | "OnDelete") {
            return Err(format!("spec.updateStrategy.type: Unsupported value: {t:?}: supported values: \"RollingUpdate\", \"OnDelete\""));
        }
    }
    if spec.replicas.is_some_and(|r| r < 0) {
        return Err("spec.replicas: Invalid value: must be greater than or equal to 0".into());
    }
    let rp = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if rp != "Always" {
        return Err(format!("spec.template.spec.restartPolicy: Unsupported value: {rp:?}: supported values: \"Always\""));
    }
    Ok(())
}

fn sync(node: &Arc<Node>, key: &str, set: StatefulSet) -> Reconciled {
    let (ns, name) = super::split_key(key).ok_or_else(|| format!("bad key {key}"))?;
    let (ns, name) = (ns.to_string(), name.to_string());
    let spec = set.spec.clone().unwrap_or_default();
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let pods: Vec<Pod> = node
        .list_pods(Some(&ns))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| owner::is_controlled_by(&p.metadata, &uid))
        .collect();
    let update_rev = revision(&set);
    let members: Vec<Member> = pods
        .iter()
        .filter_map(|p| {
            let pname = p.metadata.name.clone().unwrap_or_default();
            let ordinal = ordinal_of(&name, &pname)?;
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            Some(Member {
                ordinal,
                name: pname,
                healthy: phase == Some("Running")
                    && super::replicaset::is_ready(p)
                    && p.metadata.deletion_timestamp.is_none(),
                terminating: p.metadata.deletion_timestamp.is_some(),
                terminal: matches!(phase, Some("Succeeded" | "Failed")),
                revision: p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_LABEL))
                    .cloned()
                    .unwrap_or_default(),
            })
        })
        .collect();
    let replicas = spec.replicas.unwrap_or(1);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let partition = match spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
    {
        Some("OnDelete") => None,
        _ => Some(
            spec.update_strategy
                .as_ref()
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0),
        ),
    };
    let actions = if set.metadata.deletion_timestamp.is_some() {
        Vec::new()
    } else {
        decide(replicas, parallel, partition, &update_rev, &members)
    };
    let oref = owner::controller_ref_to("apps/v1", "StatefulSet", &set.metadata);
    let mut failure = None;
    for a in &actions {
        match a {
            Action::Create(i) => {
                if let Err(e) = create_member(node, &set, &ns, &name, *i, &update_rev, &oref) {
                    node.events.record_for(
                        &ABOUT,
                        &set.metadata,
                        "Warning",
                        "FailedCreate",
                        format!("create Pod {name}-{i} in StatefulSet {name} failed error: {e}"),
                    );
                    failure = Some(e);
                    break;
                }
                node.events.record_for(
                    &ABOUT,
                    &set.metadata,
                    "Normal",
                    "SuccessfulCreate",
                    format!("create Pod {name}-{i} in StatefulSet {name} successful"),
                );
            }
            Action::Delete(pname) => {
                crate::server::request_pod_delete(node, &ns, pname)
                    .map_err(|e| format!("StatefulSet {ns}/{name}: deleting pod {pname}: {e}"))?;
                node.events.record_for(
                    &ABOUT,
                    &set.metadata,
                    "Normal",
                    "SuccessfulDelete",
                    format!("delete Pod {pname} in StatefulSet {name} successful"),
                );
            }
        }
    }
    // Status.
    let live: Vec<&Member> = members.iter().filter(|m| !m.terminating).collect();
    let ready = members.iter().filter(|m| m.healthy).count() as i32;
    let updated = live.iter().filter(|m| m.revision == update_rev).count() as i32;
    node.store
        .update_with::<StatefulSet>(key, |cur| {
            if cur.metadata.uid != set.metadata.uid {
                return false;
            }
            let old = cur.status.clone().unwrap_or_default();
            let current_rev = if updated == live.len() as i32 && live.len() as i32 == replicas {
                Some(update_rev.clone())
            } else {
                old.current_revision.clone().or(Some(update_rev.clone()))
            };
            let current = live
                .iter()
                .filter(|m| Some(&m.revision) == current_rev.as_ref())
                .count() as i32;
            let st = StatefulSetStatus {
                replicas: live.len() as i32,
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                current_replicas: Some(current),
                updated_replicas: Some(updated),
                current_revision: current_rev,
                update_revision: Some(update_rev.clone()),
                observed_generation: set.metadata.generation,
                collision_count: Some(0),
                conditions: old.conditions.clone(),
            };
            if cur.status.as_ref() == Some(&st) {
                return false;
            }
            cur.status = Some(st);
            true
        })
        .map_err(|e| e.to_string())?;
    match failure {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Create the claims of ordinal `i` (when missing), then its pod.
fn create_member(
    node: &Arc<Node>,
    set: &StatefulSet,
    ns: &str,
    name: &str,
    i: i32,
    rev: &str,
    oref: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<(), String> {
    let spec = set.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let sel_labels: BTreeMap<String, String> =
        spec.selector.match_labels.clone().unwrap_or_default();
    let mut claim_volumes: HashMap<String, String> = HashMap::new();
    for t in spec.volume_claim_templates.iter().flatten() {
        let tname = t.metadata.name.clone().unwrap_or_default();
        let cname = claim_name(&tname, name, i);
        let ckey = crate::store::key("persistentvolumeclaims", ns, &cname);
        if node
            .store
            .get::<PersistentVolumeClaim>(&ckey)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(sel_labels.clone());
            let claim = PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(cname.clone()),
                    namespace: Some(ns.to_string()),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            };
            let mut claim = claim;
            super::volume::default_claim(&mut claim);
            match node.store.create(claim) {
                Ok(_) => node.events.record_for(
                    &ABOUT,
                    &set.metadata,
                    "Normal",
                    "SuccessfulCreate",
                    format!("create Claim {cname} Pod {name}-{i} in StatefulSet {name} success"),
                ),
                Err(crate::store::StoreError::AlreadyExists { .. }) => {}
                Err(e) => {
                    return Err(format!(
                        "StatefulSet {ns}/{name}: creating claim {cname}: {e}"
                    ))
                }
            }
        }
        claim_volumes.insert(tname, cname);
    }
    if let Some(ps) = template.spec.as_mut() {
        let vols = ps.volumes.get_or_insert_with(Vec::new);
        vols.retain(|v| !claim_volumes.contains_key(&v.name));
        for (tname, cname) in &claim_volumes {
            vols.push(Volume {
                name: tname.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: cname.clone(),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
        vols.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let pname = format!("{name}-{i}");
    let extras = pod_template::PodExtras {
        labels: BTreeMap::from([
            (REVISION_LABEL.to_string(), rev.to_string()),
            (POD_NAME_LABEL.to_string(), pname.clone()),
            (POD_INDEX_LABEL.to_string(), i.to_string()),
        ]),
        name: Some(pname.clone()),
        hostname: Some(pname),
        subdomain: spec.service_name.clone().filter(|s| !s.is_empty()),
        ..Default::default()
    };
    pod_template::create_pod(node, ns, &format!("{name}-"), &template, oref, &extras).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: i32, state: &str, rev: &str) -> Member {
        Member {
            ordinal: i,
            name: format!("web-{i}"),
            healthy: state == "ok",
            terminating: state == "del",
            terminal: state == "failed",
            revision: rev.into(),
        }
    }

    fn c(i: i32) -> Action {
        Action::Create(i)
    }
    fn d(i: i32) -> Action {
        Action::Delete(format!("web-{i}"))
    }

    #[test]
    fn ordered_ready_goes_one_at_a_time() {
        // (replicas, parallel, pods, actions)
        type Case = (i32, bool, Vec<Member>, Vec<Action>);
        let cases: Vec<Case> = vec![
            (3, false, vec![], vec![c(0)]),
            (3, false, vec![m(0, "pending", "r")], vec![]),
            (3, false, vec![m(0, "ok", "r")], vec![c(1)]),
            (3, false, vec![m(0, "ok", "r"), m(1, "ok", "r")], vec![c(2)]),
            (3, false, vec![m(0, "ok", "r"), m(2, "ok", "r")], vec![c(1)]),
            (3, true, vec![], vec![c(0), c(1), c(2)]),
            // Scale down: highest first, one at a time, after termination.
            (
                1,
                false,
                vec![m(0, "ok", "r"), m(1, "ok", "r"), m(2, "ok", "r")],
                vec![d(2)],
            ),
            (
                1,
                false,
                vec![m(0, "ok", "r"), m(1, "ok", "r"), m(2, "del", "r")],
                vec![],
            ),
            (1, false, vec![m(0, "ok", "r"), m(1, "ok", "r")], vec![d(1)]),
            (
                1,
                false,
                vec![m(0, "pending", "r"), m(1, "ok", "r")],
                vec![],
            ),
            (
                1,
                true,
                vec![m(0, "ok", "r"), m(1, "ok", "r"), m(2, "ok", "r")],
                vec![d(2), d(1)],
            ),
            // A failed pod is replaced.
            (
                2,
                false,
                vec![m(0, "failed", "r"), m(1, "ok", "r")],
                vec![d(0)],
            ),
        ];
        for (n, (replicas, parallel, pods, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(replicas, parallel, Some(0), "r", &pods),
                want,
                "case {n}"
            );
        }
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let all_old = vec![m(0, "ok", "a"), m(1, "ok", "a"), m(2, "ok", "a")];
        assert_eq!(decide(3, false, Some(0), "b", &all_old), vec![d(2)]);
        let two_new = vec![m(0, "ok", "a"), m(1, "ok", "a"), m(2, "ok", "b")];
        assert_eq!(decide(3, false, Some(0), "b", &two_new), vec![d(1)]);
        // Wait for the replaced pod to be ready.
        let waiting = vec![m(0, "ok", "a"), m(1, "ok", "a"), m(2, "pending", "b")];
        assert_eq!(decide(3, true, Some(0), "b", &waiting), vec![]);
        // partition 2: only ordinal 2 is updated.
        assert_eq!(decide(3, false, Some(2), "b", &two_new), vec![]);
        // OnDelete: nothing.
        assert_eq!(decide(3, false, None, "b", &all_old), vec![]);
    }

    #[test]
    fn ordinals_and_claim_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "webx-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(claim_name("data", "web", 1), "data-web-1");
    }
}
