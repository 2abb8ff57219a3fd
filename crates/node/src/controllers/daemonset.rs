//! The DaemonSet controller (kube-controller-manager's
//! `pkg/controller/daemon`) for the one node peapod is: one pod of the
//! template on this node when the template's nodeSelector matches the
//! node's labels and its tolerations tolerate the node's NoSchedule and
//! NoExecute taints, none otherwise. Updates: RollingUpdate (with
//! maxSurge a new pod starts before the old one goes, else the old one
//! goes first, as maxUnavailable 1 allows on one node) and OnDelete. Pods
//! carry the template's `controller-revision-hash`.

use super::{owner, pod_template, Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::store::Change;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod, Taint, Toleration};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct DaemonSetController;

const ABOUT: About = About {
    kind: "DaemonSet",
    api_version: "apps/v1",
    component: "daemonset-controller",
};

pub const REVISION_LABEL: &str = "controller-revision-hash";

impl Controller for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }
    fn primary_prefix(&self) -> &'static str {
        "daemonsets/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["pods/", "nodes/"]
    }
    fn keys_for(&self, node: &Node, change: &Change) -> Vec<String> {
        if change.key.starts_with("nodes/") {
            // Labels or taints may have changed: every set.
            return self.resync_keys(node).unwrap_or_default();
        }
        owner::self_or_controller(change, "DaemonSet", "daemonsets")
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let Some(ds) = node
            .store
            .get::<DaemonSet>(key)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        sync(node, key, ds)
    }
}

/// Whether `t` tolerates `taint` (`Toleration.ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether a pod with this nodeSelector and these tolerations may run on
/// a node with these labels and taints (PreferNoSchedule taints do not
/// keep it off).
pub fn fits(
    selector: Option<&BTreeMap<String, String>>,
    tolerations: &[Toleration],
    labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> bool {
    let selected = selector
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let tolerated = taints
        .iter()
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)));
    selected && tolerated
}

/// A pod of the set as the decision sees it.
#[derive(Debug, Clone, Default)]
pub struct Member {
    pub name: String,
    pub revision: String,
    pub ready: bool,
    pub terminating: bool,
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Delete(String),
}

/// What to do on this node. `strategy`: None for OnDelete, Some(surge)
/// for RollingUpdate.
pub fn decide(fits: bool, rev: &str, strategy: Option<bool>, pods: &[Member]) -> Vec<Action> {
    let mut out: Vec<Action> = pods
        .iter()
        .filter(|m| m.terminal && !m.terminating)
        .map(|m| Action::Delete(m.name.clone()))
        .collect();
    let live: Vec<&Member> = pods
        .iter()
        .filter(|m| !m.terminating && !m.terminal)
        .collect();
    if !fits {
        out.extend(live.iter().map(|m| Action::Delete(m.name.clone())));
        return out;
    }
    let terminating = pods.iter().any(|m| m.terminating);
    let (new, old): (Vec<&&Member>, Vec<&&Member>) = live.iter().partition(|m| m.revision == rev);
    match strategy {
        None => {
            // OnDelete: keep one pod, whatever its revision.
            if live.is_empty() && !terminating {
                out.push(Action::Create);
            }
            out.extend(live.iter().skip(1).map(|m| Action::Delete(m.name.clone())));
        }
        Some(surge) => {
            out.extend(new.iter().skip(1).map(|m| Action::Delete(m.name.clone())));
            if new.is_empty() {
                if old.is_empty() {
                    if !terminating || surge {
                        out.push(Action::Create);
                    }
                } else if surge {
                    out.push(Action::Create);
                } else {
                    out.extend(old.iter().map(|m| Action::Delete(m.name.clone())));
                }
            } else if new[0].ready || !surge {
                out.extend(old.iter().map(|m| Action::Delete(m.name.clone())));
            }
        }
    }
    out
}

/// The tolerations the DaemonSet controller adds to its pods.
fn default_tolerations() -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// The API server's defaults for a DaemonSet.
pub fn default_daemonset(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_with(Default::default);
    spec.revision_history_limit.get_or_insert(10);
    let us = spec.update_strategy.get_or_insert_with(Default::default);
    let typ = us.type_.get_or_insert_with(|| "RollingUpdate".into());
    if typ == "RollingUpdate" {
        let ru = us.rolling_update.get_or_insert_with(Default::default);
        ru.max_unavailable
            .get_or_insert(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1));
        ru.max_surge
            .get_or_insert(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0));
    }
}

/// The API server's checks: a selector that matches the template's labels
/// and restartPolicy Always.
pub fn validate_daemonset(ds: &DaemonSet) -> Result<(), String> {
    let spec = ds
        .spec
        .as_ref()
        .ok_or("spec: Required value: a DaemonSet needs a selector and a template")?;
    let sel = peapod_api::selector::LabelSelector::from_meta(&spec.selector)
        .map_err(|e| format!("spec.selector: {e}"))?;
    if sel.is_empty() {
        return Err("spec.selector: Invalid value: empty selector is invalid for daemonset".into());
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    if !sel.matches(labels.as_ref()) {
        return Err("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into());
    }
    if let Some(t) = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
    {
        if !matches!(t, "RollingUpdate" | "OnDelete") {
            return Err(format!("spec.updateStrategy.type: Unsupported value: {t:?}: supported values: \"OnDelete\", \"RollingUpdate\""));
        }
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

fn sync(node: &Arc<Node>, key: &str, ds: DaemonSet) -> Reconciled {
    let (ns, name) = super::split_key(key).ok_or_else(|| format!("bad key {key}"))?;
    let (ns, name) = (ns.to_string(), name.to_string());
    let spec = ds.spec.clone().unwrap_or_default();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let nobj = node
        .store
        .get::<NodeObject>(&format!("nodes/{}", node.hostname))
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let labels = nobj.metadata.labels.clone().unwrap_or_default();
    let taints = nobj
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let pspec = spec.template.spec.clone().unwrap_or_default();
    let mut tolerations = pspec.tolerations.clone().unwrap_or_default();
    tolerations.extend(default_tolerations());
    let fit = fits(pspec.node_selector.as_ref(), &tolerations, &labels, &taints);
    let rev = super::deployment::template_hash(&spec.template, None);
    let pods: Vec<Pod> = node
        .list_pods(Some(&ns))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| owner::is_controlled_by(&p.metadata, &uid))
        .collect();
    let members: Vec<Member> = pods
        .iter()
        .map(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            Member {
                name: p.metadata.name.clone().unwrap_or_default(),
                revision: p
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_LABEL))
                    .cloned()
                    .unwrap_or_default(),
                ready: super::replicaset::is_ready(p),
                terminating: p.metadata.deletion_timestamp.is_some(),
                terminal: matches!(phase, Some("Succeeded" | "Failed")),
            }
        })
        .collect();
    let us = spec.update_strategy.clone().unwrap_or_default();
    let strategy = match us.type_.as_deref() {
        Some("OnDelete") => None,
        _ => Some(
            us.rolling_update
                .as_ref()
                .and_then(|r| r.max_surge.as_ref())
                .and_then(|s| peapod_api::scaled_value(s, 1, true).ok())
                .unwrap_or(0)
                > 0,
        ),
    };
    let actions = if ds.metadata.deletion_timestamp.is_some() {
        Vec::new()
    } else {
        decide(fit, &rev, strategy, &members)
    };
    let oref = owner::controller_ref_to("apps/v1", "DaemonSet", &ds.metadata);
    let mut failure = None;
    for a in &actions {
        match a {
            Action::Create => {
                let mut template = spec.template.clone();
                if let Some(ps) = template.spec.as_mut() {
                    ps.tolerations = Some(tolerations.clone());
                    ps.node_name = Some(node.hostname.clone());
                }
                let extras = pod_template::PodExtras {
                    labels: BTreeMap::from([(REVISION_LABEL.to_string(), rev.clone())]),
                    ..Default::default()
                };
                match pod_template::create_pod(
                    node,
                    &ns,
                    &format!("{name}-"),
                    &template,
                    &oref,
                    &extras,
                ) {
                    Ok(p) => node.events.record_for(
                        &ABOUT,
                        &ds.metadata,
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.metadata.name.as_deref().unwrap_or("")),
                    ),
                    Err(e) => {
                        node.events.record_for(
                            &ABOUT,
                            &ds.metadata,
                            "Warning",
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        );
                        failure = Some(e);
                    }
                }
            }
            Action::Delete(pname) => {
                crate::server::request_pod_delete(node, &ns, pname)
                    .map_err(|e| format!("DaemonSet {ns}/{name}: deleting pod {pname}: {e}"))?;
                node.events.record_for(
                    &ABOUT,
                    &ds.metadata,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {pname}"),
                );
            }
        }
    }
    let live: Vec<&Member> = members
        .iter()
        .filter(|m| !m.terminating && !m.terminal)
        .collect();
    let scheduled = (!live.is_empty()) as i32;
    let ready = live.iter().any(|m| m.ready) as i32;
    let updated = live.iter().any(|m| m.revision == rev) as i32;
    let desired = fit as i32;
    let st = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: if fit { scheduled } else { 0 },
        number_misscheduled: if fit { 0 } else { scheduled },
        number_ready: ready,
        number_available: Some(ready),
        number_unavailable: Some((desired - ready).max(0)),
        updated_number_scheduled: Some(updated),
        observed_generation: ds.metadata.generation,
        collision_count: None,
        conditions: None,
    };
    node.store
        .update_with::<DaemonSet>(key, |cur| {
            if cur.metadata.uid != ds.metadata.uid || cur.status.as_ref() == Some(&st) {
                return false;
            }
            cur.status = Some(st.clone());
            true
        })
        .map_err(|e| e.to_string())?;
    match failure {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: None,
        }
    }

    #[test]
    fn node_selectors_and_taints() {
        let labels: BTreeMap<String, String> = [
            ("kubernetes.io/hostname".to_string(), "box".to_string()),
            ("disk".to_string(), "ssd".to_string()),
        ]
        .into();
        let sel = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        let gpu = [taint("gpu", "yes", "NoSchedule")];
        let soft = [taint("gpu", "yes", "PreferNoSchedule")];
        // (selector, tolerations, taints, fits)
        type Case<'a> = (
            Option<BTreeMap<String, String>>,
            Vec<Toleration>,
            &'a [Taint],
            bool,
        );
        let cases: Vec<Case> = vec![
            (None, vec![], &[], true),
            (Some(sel("disk", "ssd")), vec![], &[], true),
            (Some(sel("disk", "hdd")), vec![], &[], false),
            (Some(sel("zone", "a")), vec![], &[], false),
            (None, vec![], &gpu, false),
            (None, vec![], &soft, true),
            (
                None,
                vec![tol("gpu", "Equal", "yes", "NoSchedule")],
                &gpu,
                true,
            ),
            (
                None,
                vec![tol("gpu", "Equal", "no", "NoSchedule")],
                &gpu,
                false,
            ),
            (None, vec![tol("gpu", "Exists", "", "")], &gpu, true),
            (None, vec![tol("", "Exists", "", "")], &gpu, true),
            (
                None,
                vec![tol("gpu", "Exists", "", "NoExecute")],
                &gpu,
                false,
            ),
        ];
        for (i, (s, t, taints, want)) in cases.into_iter().enumerate() {
            assert_eq!(fits(s.as_ref(), &t, &labels, taints), want, "case {i}");
        }
    }

    fn m(name: &str, rev: &str, state: &str) -> Member {
        Member {
            name: name.into(),
            revision: rev.into(),
            ready: state == "ready",
            terminating: state == "del",
            terminal: state == "failed",
        }
    }

    #[test]
    fn one_pod_and_its_updates() {
        let del = |n: &str| Action::Delete(n.into());
        // (fits, strategy, pods, actions)
        type Case = (bool, Option<bool>, Vec<Member>, Vec<Action>);
        let cases: Vec<Case> = vec![
            (true, Some(false), vec![], vec![Action::Create]),
            (true, Some(false), vec![m("a", "r1", "ready")], vec![]),
            (
                false,
                Some(false),
                vec![m("a", "r1", "ready")],
                vec![del("a")],
            ),
            (false, Some(false), vec![], vec![]),
            // Rolling without surge: the old goes first, then the new comes.
            (
                true,
                Some(false),
                vec![m("a", "r0", "ready")],
                vec![del("a")],
            ),
            (true, Some(false), vec![m("a", "r0", "del")], vec![]),
            // With surge: the new first, the old once the new is ready.
            (
                true,
                Some(true),
                vec![m("a", "r0", "ready")],
                vec![Action::Create],
            ),
            (
                true,
                Some(true),
                vec![m("a", "r0", "ready"), m("b", "r1", "pending")],
                vec![],
            ),
            (
                true,
                Some(true),
                vec![m("a", "r0", "ready"), m("b", "r1", "ready")],
                vec![del("a")],
            ),
            // OnDelete keeps the old pod.
            (true, None, vec![m("a", "r0", "ready")], vec![]),
            (true, None, vec![], vec![Action::Create]),
            // A failed pod is replaced.
            (
                true,
                Some(false),
                vec![m("a", "r1", "failed")],
                vec![del("a"), Action::Create],
            ),
        ];
        for (i, (fit, strategy, pods, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(fit, "r1", strategy, &pods), want, "case {i}");
        }
    }
}
