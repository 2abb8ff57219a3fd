//! The ReplicaSet controller (kube-controller-manager's
//! `pkg/controller/replicaset`): keeps `spec.replicas` active pods that
//! match the selector. Missing pods are created in slow-start batches
//! (1, 2, 4, ... stopping at the first failure, so a broken template does
//! not flood the node with errors); surplus pods are deleted in the
//! Kubernetes order (not-ready before ready, ...). Orphans the selector
//! matches are adopted, owned pods that no longer match are released.
//! Terminal (Succeeded/Failed) and terminating pods do not count, so a pod
//! that dies is replaced. Status: replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas (ready for minReadySeconds),
//! observedGeneration, and a ReplicaFailure condition when creating fails.

use super::{owner, pod_template, Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::store::Change;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use peapod_api::selector::LabelSelector;
use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub struct ReplicaSetController;

/// Most pods created or deleted in one reconcile (kube's burstReplicas).
const BURST: usize = 500;

const ABOUT: About = About {
    kind: "ReplicaSet",
    api_version: "apps/v1",
    component: "replicaset-controller",
};

impl Controller for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset"
    }
    fn primary_prefix(&self) -> &'static str {
        "replicasets/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["pods/"]
    }
    fn keys_for(&self, node: &Node, change: &Change) -> Vec<String> {
        let keys = owner::self_or_controller(change, "ReplicaSet", "replicasets");
        if !keys.is_empty() {
            return keys;
        }
        if owner::has_controller(change) || change.event == "DELETED" {
            return Vec::new();
        }
        owner::selecting::<ReplicaSet>(node, change, "replicasets", |rs| {
            LabelSelector::from_meta(&rs.spec.as_ref()?.selector).ok()
        })
    }
    fn workers(&self) -> usize {
        4
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let Some(rs) = node
            .store
            .get::<ReplicaSet>(key)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        sync(node, key, rs)
    }
}

/// Whether a pod counts: not terminal and not being deleted
/// (`controller.FilterActivePods`).
pub fn is_active(p: &Pod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && p.metadata.deletion_timestamp.is_none()
}

/// When the pod became Ready, if it is.
pub fn ready_since(p: &Pod) -> Option<DateTime<Utc>> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if c.status != "True" {
        return None;
    }
    Some(
        c.last_transition_time
            .as_ref()
            .map(to_chrono)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    )
}

/// A Kubernetes time as chrono's.
pub fn to_chrono(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub fn is_ready(p: &Pod) -> bool {
    ready_since(p).is_some()
}

/// Ready for at least `min_ready` seconds at `now` (`podutil.IsPodAvailable`).
pub fn is_available(p: &Pod, min_ready: i32, now: DateTime<Utc>) -> bool {
    match ready_since(p) {
        None => false,
        Some(_) if min_ready <= 0 => true,
        Some(t) => now - t >= chrono::Duration::seconds(min_ready as i64),
    }
}

/// How long until a ready pod becomes available (None: never, or
/// already).
pub fn until_available(p: &Pod, min_ready: i32, now: DateTime<Utc>) -> Option<Duration> {
    let t = ready_since(p)?;
    if min_ready <= 0 {
        return None;
    }
    let at = t + chrono::Duration::seconds(min_ready as i64);
    (at > now).then(|| (at - now).to_std().unwrap_or_default())
}

fn phase_rank(p: &Pod) -> u8 {
    match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    }
}

fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn deletion_cost(p: &Pod) -> i64 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `controller.ActivePods` order: the pods to delete first come first —
/// pending before unknown before running, not ready before ready, lower
/// pod-deletion-cost first, ready for less time first, more restarts
/// first, newer first.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    phase_rank(a)
        .cmp(&phase_rank(b))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            // More recently ready first.
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(to_chrono);
            t(b).cmp(&t(a))
        })
}

/// Slow-start batch sizes for creating `n` pods: 1, 2, 4, ... (the last
/// one what is left).
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut left, mut size) = (n, 1usize);
    while left > 0 {
        let b = size.min(left);
        out.push(b);
        left -= b;
        size *= 2;
    }
    out
}

/// Whether the pod has every label of the template (fullyLabeledReplicas).
fn fully_labeled(p: &Pod, rs: &ReplicaSet) -> bool {
    let want = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let have = p.metadata.labels.clone().unwrap_or_default();
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// The status of `rs` with these active pods at `now`.
pub fn compute_status(
    rs: &ReplicaSet,
    pods: &[Pod],
    failure: Option<&str>,
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "ReplicaFailure")
        .collect();
    if let Some(msg) = failure {
        conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some(msg.to_string()),
            last_transition_time: Some(crate::time::now()),
        });
    }
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(pods.iter().filter(|p| fully_labeled(p, rs)).count() as i32),
        ready_replicas: Some(pods.iter().filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            pods.iter()
                .filter(|p| is_available(p, min_ready, now))
                .count() as i32,
        ),
        terminating_replicas: None,
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
    }
}

/// The pods of the namespace the ReplicaSet claims, active ones only.
pub fn claimed_pods(node: &Node, rs: &ReplicaSet, ns: &str) -> Result<Vec<Pod>, String> {
    let sel = rs
        .spec
        .as_ref()
        .map(|s| LabelSelector::from_meta(&s.selector))
        .transpose()
        .map_err(|e| format!("spec.selector: {e}"))?
        .unwrap_or_default();
    let oref = owner::controller_ref_to("apps/v1", "ReplicaSet", &rs.metadata);
    let pods: Vec<Pod> = node
        .list_pods(Some(ns))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(is_active)
        .collect();
    owner::claim(
        node,
        &oref,
        rs.metadata.deletion_timestamp.is_some(),
        &sel,
        pods,
        |p: &Pod| {
            crate::node::pod_key(
                &crate::node::namespace_of(&p.metadata),
                p.metadata.name.as_deref().unwrap_or(""),
            )
        },
    )
}

fn sync(node: &Arc<Node>, key: &str, rs: ReplicaSet) -> Reconciled {
    let (ns, name) = super::split_key(key).ok_or_else(|| format!("bad key {key}"))?;
    let (ns, name) = (ns.to_string(), name.to_string());
    let mut pods = claimed_pods(node, &rs, &ns)?;
    let want = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    let mut failure = None;
    if rs.metadata.deletion_timestamp.is_none() {
        if pods.len() < want {
            let n = (want - pods.len()).min(BURST);
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.clone())
                .unwrap_or_default();
            let oref = owner::controller_ref_to("apps/v1", "ReplicaSet", &rs.metadata);
            let extras = pod_template::PodExtras::default();
            'batches: for b in slow_start_batches(n) {
                for _ in 0..b {
                    match pod_template::create_pod(
                        node,
                        &ns,
                        &format!("{name}-"),
                        &template,
                        &oref,
                        &extras,
                    ) {
                        Ok(p) => {
                            node.events.record_for(
                                &ABOUT,
                                &rs.metadata,
                                "Normal",
                                "SuccessfulCreate",
                                format!(
                                    "Created pod: {}",
                                    p.metadata.name.as_deref().unwrap_or("")
                                ),
                            );
                            pods.push(p);
                        }
                        Err(e) => {
                            node.events.record_for(
                                &ABOUT,
                                &rs.metadata,
                                "Warning",
                                "FailedCreate",
                                format!("Error creating: {e}"),
                            );
                            failure = Some(e);
                            break 'batches;
                        }
                    }
                }
            }
        } else if pods.len() > want {
            let n = (pods.len() - want).min(BURST);
            pods.sort_by(deletion_order);
            for p in pods.drain(..n) {
                let pname = p.metadata.name.clone().unwrap_or_default();
                crate::server::request_pod_delete(node, &ns, &pname)
                    .map_err(|e| format!("ReplicaSet {ns}/{name}: deleting pod {pname}: {e}"))?;
                node.events.record_for(
                    &ABOUT,
                    &rs.metadata,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {pname}"),
                );
            }
        }
    }
    let now = Utc::now();
    let status = compute_status(&rs, &pods, failure.as_deref(), now);
    // Status is recomputed after a restart: no fsync for it.
    node.store
        .update_with_sync::<ReplicaSet>(key, crate::store::Sync::Lazy, |cur| {
            if cur.metadata.uid != rs.metadata.uid {
                return false;
            }
            let mut st = status.clone();
            st.observed_generation = rs.metadata.generation;
            // Keep the transition time of an unchanged failure.
            if let (Some(new), Some(old)) = (
                st.conditions.as_mut(),
                cur.status.as_ref().and_then(|s| s.conditions.as_ref()),
            ) {
                for c in new.iter_mut() {
                    if let Some(o) = old
                        .iter()
                        .find(|o| o.type_ == c.type_ && o.status == c.status)
                    {
                        c.last_transition_time = o.last_transition_time.clone();
                    }
                }
            }
            if cur.status.as_ref() == Some(&st) {
                return false;
            }
            cur.status = Some(st);
            true
        })
        .map_err(|e| e.to_string())?;
    if let Some(e) = failure {
        return Err(e);
    }
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    // Look again when a ready pod becomes available.
    Ok(pods
        .iter()
        .filter_map(|p| until_available(p, min_ready, now))
        .min()
        .map(|d| d + Duration::from_millis(50)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, ready_at: Option<i64>, restarts: i32, created: i64) -> Pod {
        let base = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("time");
        let mut v = serde_json::json!({
            "metadata": { "name": name, "creationTimestamp": base + chrono::Duration::seconds(created) },
            "status": { "phase": phase, "containerStatuses": [{ "name": "c", "ready": ready_at.is_some(), "restartCount": restarts, "image": "", "imageID": "" }] }
        });
        if let Some(t) = ready_at {
            v["status"]["conditions"] = serde_json::json!([{ "type": "Ready", "status": "True", "lastTransitionTime": (base + chrono::Duration::seconds(t)).to_rfc3339() }]);
        }
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(100).iter().sum::<usize>(), 100);
    }

    #[test]
    fn pods_are_deleted_in_the_kubernetes_order() {
        let mut pods = [
            pod("running-ready-old", "Running", Some(10), 0, 0),
            pod("pending", "Pending", None, 0, 5),
            pod("running-notready", "Running", None, 0, 1),
            pod("running-ready-recent", "Running", Some(50), 0, 2),
            pod("running-ready-restarts", "Running", Some(10), 3, 3),
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "pending",
                "running-notready",
                "running-ready-recent",
                "running-ready-restarts",
                "running-ready-old"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("a", "Running", Some(0), 0, 0);
        let ready = ready_since(&p).expect("ready");
        assert!(is_available(&p, 0, ready));
        assert!(!is_available(&p, 5, ready + chrono::Duration::seconds(4)));
        assert!(is_available(&p, 5, ready + chrono::Duration::seconds(5)));
        assert_eq!(
            until_available(&p, 5, ready + chrono::Duration::seconds(2)),
            Some(Duration::from_secs(3))
        );
        let not = pod("b", "Running", None, 0, 0);
        assert!(!is_available(&not, 0, ready));
        assert!(!is_active(&pod("c", "Failed", None, 0, 0)));
        assert!(is_active(&p));
    }

    #[test]
    fn status_counts_ready_available_and_labels() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web", "generation": 4 },
            "spec": { "replicas": 3, "minReadySeconds": 10, "selector": { "matchLabels": { "app": "web" } },
                      "template": { "metadata": { "labels": { "app": "web", "tier": "fe" } } } }
        }))
        .expect("rs");
        let mut a = pod("a", "Running", Some(0), 0, 0);
        a.metadata.labels = Some(
            [
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "fe".to_string()),
            ]
            .into(),
        );
        let b = pod("b", "Running", Some(95), 0, 0);
        let c = pod("c", "Pending", None, 0, 0);
        let now = ready_since(&a).expect("ready") + chrono::Duration::seconds(100);
        let st = compute_status(&rs, &[a, b, c], Some("boom"), now);
        assert_eq!(st.replicas, 3);
        assert_eq!(st.fully_labeled_replicas, Some(1));
        assert_eq!(st.ready_replicas, Some(2));
        assert_eq!(st.available_replicas, Some(1));
        assert_eq!(st.observed_generation, Some(4));
        let c = &st.conditions.expect("conditions")[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
    }
}
