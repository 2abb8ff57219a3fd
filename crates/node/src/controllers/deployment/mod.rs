//! The Deployment controller (kube-controller-manager's
//! `pkg/controller/deployment`): one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, its pods labelled with the hash.
//! RollingUpdate grows the new ReplicaSet and shrinks the old ones within
//! maxSurge / maxUnavailable ([`rolling`]); Recreate scales the old ones
//! to 0, waits until their pods are gone, then scales up the new one.
//! Revisions (`deployment.kubernetes.io/revision`) number the templates;
//! old idle ReplicaSets beyond `revisionHistoryLimit` are deleted once a
//! rollout completes. A paused Deployment only scales. Status and the
//! Available / Progressing conditions are computed in [`progress`].
//! Rollback (`rollout undo`) is the client's: it copies an old
//! ReplicaSet's template into the Deployment, as kubectl does.

pub mod progress;
pub mod rolling;

use super::{owner, Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::server::objects::{delete_object, Propagation};
use crate::store::{Change, StoreError};
use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use peapod_api::selector::LabelSelector;
use progress::Event;
use rolling::RsCounts;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct DeploymentController;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

const ABOUT: About = About {
    kind: "Deployment",
    api_version: "apps/v1",
    component: "deployment-controller",
};

impl Controller for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }
    fn primary_prefix(&self) -> &'static str {
        "deployments/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["replicasets/", "pods/"]
    }
    fn keys_for(&self, node: &Node, change: &Change) -> Vec<String> {
        if change.key.starts_with("deployments/") {
            return vec![change.key.clone()];
        }
        if change.key.starts_with("replicasets/") {
            if let Some(k) = owner::controller_key(change, "Deployment", "deployments") {
                return vec![k];
            }
            if owner::has_controller(change) || change.event == "DELETED" {
                return Vec::new();
            }
            return owner::selecting::<Deployment>(node, change, "deployments", |d| {
                LabelSelector::from_meta(&d.spec.as_ref()?.selector).ok()
            });
        }
        // A pod gone: a Recreate may wait for it.
        if change.event != "DELETED" {
            return Vec::new();
        }
        let Some(rs_key) = owner::controller_key(change, "ReplicaSet", "replicasets") else {
            return Vec::new();
        };
        let Ok(Some(rs)) = node.store.get::<ReplicaSet>(&rs_key) else {
            return Vec::new();
        };
        match owner::controller_ref(&rs.metadata) {
            Some(r) if r.kind == "Deployment" => {
                let ns = super::change_namespace(change);
                vec![crate::store::key("deployments", &ns, &r.name)]
            }
            _ => Vec::new(),
        }
    }
    fn workers(&self) -> usize {
        2
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let Some(d) = node
            .store
            .get::<Deployment>(key)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        Sync::new(node, key, d)?.run()
    }
}

/// FNV-1a, 32 bits.
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// The pod-template-hash of a template (without its own hash label) and
/// the collision count, encoded as the API server's `SafeEncodeString`
/// of its decimal digits.
pub fn template_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(HASH_LABEL);
    }
    let mut bytes = serde_json::to_vec(&t).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&c.to_le_bytes());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv32a(&bytes)
        .to_string()
        .bytes()
        .map(|b| ALPHANUMS[b as usize % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether two templates are the same but for the pod-template-hash label
/// (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut() {
            if let Some(l) = m.labels.as_mut() {
                l.remove(HASH_LABEL);
                if l.is_empty() {
                    m.labels = None;
                }
            }
            if *m == ObjectMeta::default() {
                t.metadata = None;
            }
        }
        t
    };
    strip(a) == strip(b)
}

pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// The pods a ReplicaSet has or will have: its `spec.replicas`, or more
/// while pods it was scaled down from are not deleted yet (its
/// `status.replicas`): so maxSurge holds for the pods that run, not only
/// for the specs.
fn pods_counted(rs: &ReplicaSet) -> i32 {
    spec_replicas(rs).max(rs.status.as_ref().map_or(0, |s| s.replicas))
}

/// A ReplicaSet's counts for the rolling decisions. Its available pods
/// are at most its `spec.replicas`: one just scaled down still reports
/// the pods it is about to delete (the status lags the spec), and
/// counting them would let the next step take away more than
/// maxUnavailable allows.
fn counts(rs: &ReplicaSet) -> RsCounts {
    let spec = spec_replicas(rs);
    RsCounts {
        spec,
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            .min(spec),
    }
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// One reconcile of one Deployment.
struct Sync<'a> {
    node: &'a Arc<Node>,
    key: &'a str,
    ns: String,
    d: Deployment,
    /// Its ReplicaSets, oldest first.
    all: Vec<ReplicaSet>,
    event: Event,
}

impl<'a> Sync<'a> {
    fn new(node: &'a Arc<Node>, key: &'a str, d: Deployment) -> Result<Self, String> {
        let ns = crate::node::namespace_of(&d.metadata);
        let spec = d.spec.clone().unwrap_or_default();
        let sel = LabelSelector::from_meta(&spec.selector).map_err(|e| {
            format!(
                "Deployment {ns}/{}: spec.selector: {e}",
                name_of(&d.metadata)
            )
        })?;
        let oref = owner::controller_ref_to("apps/v1", "Deployment", &d.metadata);
        let rss = node
            .store
            .list::<ReplicaSet>(&format!("replicasets/{ns}/"))
            .map_err(|e| e.to_string())?;
        let mut all = owner::claim(
            node,
            &oref,
            d.metadata.deletion_timestamp.is_some(),
            &sel,
            rss,
            |rs: &ReplicaSet| {
                crate::store::key(
                    "replicasets",
                    &ns,
                    rs.metadata.name.as_deref().unwrap_or(""),
                )
            },
        )?;
        all.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        });
        Ok(Sync {
            node,
            key,
            ns,
            d,
            all,
            event: Event::Nothing,
        })
    }

    fn spec(&self) -> k8s_openapi::api::apps::v1::DeploymentSpec {
        self.d.spec.clone().unwrap_or_default()
    }

    fn want(&self) -> i32 {
        self.spec().replicas.unwrap_or(1).max(0)
    }

    fn name(&self) -> String {
        name_of(&self.d.metadata)
    }

    fn new_index(&self) -> Option<usize> {
        let t = self.spec().template;
        // The newest matching one, should there be several.
        self.all.iter().rposition(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|x| equal_ignore_hash(x, &t))
        })
    }

    fn fenceposts(&self) -> Result<(i32, i32), String> {
        let st = self.spec().strategy.unwrap_or_default();
        if st.type_.as_deref() == Some("Recreate") {
            return Ok((0, self.want()));
        }
        let ru = st.rolling_update.unwrap_or_default();
        rolling::fenceposts(
            self.want(),
            ru.max_surge.as_ref(),
            ru.max_unavailable.as_ref(),
        )
        .map_err(|e| format!("Deployment {}/{}: {e}", self.ns, self.name()))
    }

    fn run(mut self) -> Reconciled {
        if self.d.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let paused = self.spec().paused.unwrap_or(false);
        let recreate = self.spec().strategy.and_then(|s| s.type_).as_deref() == Some("Recreate");
        if paused {
            self.scale_all()?;
        } else if recreate {
            self.recreate()?;
        } else if self.scaling_event() {
            // Only a resize (kube's `sync`): the rollout goes on at the
            // next reconcile, which the resize's writes bring.
            self.scale_all()?;
        } else {
            self.rolling()?;
        }
        self.write_status()
    }

    /// The new ReplicaSet, created (with `replicas`) if there is none and
    /// `create`; its revision made the newest.
    fn new_rs(
        &mut self,
        create: bool,
        replicas: impl Fn(&Self) -> i32,
    ) -> Result<Option<usize>, String> {
        let max_old = self
            .all
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.new_index())
            .map(|(_, rs)| revision(&rs.metadata))
            .max()
            .unwrap_or(0);
        if let Some(i) = self.new_index() {
            let rev = revision(&self.all[i].metadata);
            if rev <= max_old {
                // An old template came back (undo): it is the newest now.
                let key = self.rs_key(&self.all[i]);
                let updated = self
                    .node
                    .store
                    .update_with::<ReplicaSet>(&key, |rs| {
                        rs.metadata
                            .annotations
                            .get_or_insert_with(Default::default)
                            .insert(REVISION.into(), (max_old + 1).to_string());
                        true
                    })
                    .map_err(|e| e.to_string())?;
                if let Some(u) = updated {
                    self.all[i] = u;
                }
                self.event = Event::FoundNewReplicaSet;
            }
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let spec = self.spec();
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let (_, max_unavailable) = self.fenceposts()?;
        let mut annotations = BTreeMap::from([
            (REVISION.to_string(), (max_old + 1).to_string()),
            (DESIRED_REPLICAS.to_string(), self.want().to_string()),
            (
                MAX_REPLICAS.to_string(),
                (self.want() + self.fenceposts()?.0).to_string(),
            ),
        ]);
        let _ = max_unavailable;
        if let Some(cause) = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE))
        {
            annotations.insert(CHANGE_CAUSE.into(), cause.clone());
        }
        let rs_name = format!("{}-{hash}", self.name());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(self.ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![owner::controller_ref_to(
                    "apps/v1",
                    "Deployment",
                    &self.d.metadata,
                )]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas(self)),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match self.node.store.create(rs) {
            Ok(rs) => {
                let n = spec_replicas(&rs);
                self.node.events.record_for(
                    &ABOUT,
                    &self.d.metadata,
                    "Normal",
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {rs_name} from 0 to {n}"),
                );
                self.all.push(rs);
                self.event = Event::NewReplicaSetCreated;
                Ok(Some(self.all.len() - 1))
            }
            Err(StoreError::AlreadyExists { .. }) => {
                // A hash collision with a ReplicaSet of another template:
                // count it, so the next hash differs.
                self.node
                    .store
                    .update_with::<Deployment>(self.key, |d| {
                        let st = d.status.get_or_insert_with(Default::default);
                        st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                        true
                    })
                    .map_err(|e| e.to_string())?;
                Err(format!(
                    "Deployment {}/{}: replica set {rs_name} exists with another template; trying another name",
                    self.ns,
                    self.name()
                ))
            }
            Err(e) => Err(format!(
                "Deployment {}/{}: creating replica set {rs_name}: {e}",
                self.ns,
                self.name()
            )),
        }
    }

    fn rs_key(&self, rs: &ReplicaSet) -> String {
        crate::store::key(
            "replicasets",
            &self.ns,
            rs.metadata.name.as_deref().unwrap_or(""),
        )
    }

    /// Set `spec.replicas` of ReplicaSet `i` (and its desired/max
    /// annotations); true when it changed.
    fn scale(&mut self, i: usize, to: i32) -> Result<bool, String> {
        let from = spec_replicas(&self.all[i]);
        let want = self.want();
        let (surge, _) = self.fenceposts()?;
        let key = self.rs_key(&self.all[i]);
        let updated = self
            .node
            .store
            .update_with::<ReplicaSet>(&key, |rs| {
                let spec = rs.spec.get_or_insert_with(Default::default);
                let mut changed = spec.replicas != Some(to);
                spec.replicas = Some(to);
                let a = rs.metadata.annotations.get_or_insert_with(Default::default);
                for (k, v) in [
                    (DESIRED_REPLICAS, want.to_string()),
                    (MAX_REPLICAS, (want + surge).to_string()),
                ] {
                    if a.get(k) != Some(&v) {
                        a.insert(k.to_string(), v);
                        changed = true;
                    }
                }
                changed
            })
            .map_err(|e| e.to_string())?;
        let Some(u) = updated else {
            return Ok(false);
        };
        self.all[i] = u;
        if from == to {
            return Ok(false);
        }
        let dir = if to > from { "up" } else { "down" };
        self.node.events.record_for(
            &ABOUT,
            &self.d.metadata,
            "Normal",
            "ScalingReplicaSet",
            format!(
                "Scaled {dir} replica set {} from {from} to {to}",
                name_of(&self.all[i].metadata)
            ),
        );
        Ok(true)
    }

    fn rolling(&mut self) -> Result<(), String> {
        let want = self.want();
        let (surge, unavailable) = self.fenceposts()?;
        let Some(ni) = self.new_rs(true, |s| {
            let all: i32 = s.all.iter().map(pods_counted).sum();
            rolling::new_rs_replicas(s.want(), surge, all, 0)
        })?
        else {
            return Ok(());
        };
        if self.event == Event::NewReplicaSetCreated {
            return Ok(());
        }
        // The new ReplicaSet first.
        let new_spec = spec_replicas(&self.all[ni]);
        if new_spec > want {
            self.scale(ni, want)?;
            return Ok(());
        }
        if new_spec < want {
            let all: i32 = self.all.iter().map(pods_counted).sum();
            let target = rolling::new_rs_replicas(want, surge, all, new_spec);
            if target != new_spec && self.scale(ni, target)? {
                return Ok(());
            }
        }
        // Then the old ones, oldest first.
        let olds: Vec<usize> = (0..self.all.len()).filter(|i| *i != ni).collect();
        let old_counts: Vec<RsCounts> = olds.iter().map(|i| counts(&self.all[*i])).collect();
        let targets =
            rolling::old_rs_targets(want, unavailable, &counts(&self.all[ni]), &old_counts);
        let mut scaled = false;
        for (i, t) in olds.iter().zip(targets) {
            if t != spec_replicas(&self.all[*i]) {
                scaled |= self.scale(*i, t)?;
            }
        }
        if scaled {
            return Ok(());
        }
        self.cleanup_if_complete(Some(ni))
    }

    fn recreate(&mut self) -> Result<(), String> {
        let ni = self.new_rs(false, |_| 0)?;
        // Old ones to 0 first.
        let mut scaled = false;
        for i in 0..self.all.len() {
            if Some(i) != ni && spec_replicas(&self.all[i]) > 0 {
                scaled |= self.scale(i, 0)?;
            }
        }
        if scaled {
            return Ok(());
        }
        // Then wait until none of their pods runs (terminating included).
        let old_uids: Vec<String> = (0..self.all.len())
            .filter(|i| Some(*i) != ni)
            .filter_map(|i| self.all[i].metadata.uid.clone())
            .collect();
        let pods = self
            .node
            .list_pods(Some(&self.ns))
            .map_err(|e| e.to_string())?;
        let running = pods.iter().any(|p: &Pod| {
            let terminal = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            !terminal
                && owner::controller_ref(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid))
        });
        if running {
            return Ok(());
        }
        let want = self.want();
        let ni = match ni {
            Some(i) => i,
            None => match self.new_rs(true, |s| s.want())? {
                Some(i) => i,
                None => return Ok(()),
            },
        };
        if spec_replicas(&self.all[ni]) != want {
            self.scale(ni, want)?;
            return Ok(());
        }
        self.cleanup_if_complete(Some(ni))
    }

    /// Whether `replicas` changed since the active ReplicaSets were sized
    /// (their desired-replicas annotation; `isScalingEvent`).
    fn scaling_event(&self) -> bool {
        let want = self.want().to_string();
        self.all
            .iter()
            .filter(|rs| spec_replicas(rs) > 0)
            .any(|rs| {
                rs.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DESIRED_REPLICAS))
                    .is_some_and(|d| *d != want)
            })
    }

    /// Resize the ReplicaSets to `replicas` (kube's `scale`): the one
    /// active (or the newest) takes them all; with several, a saturated
    /// new one leaves the old ones nothing, else (RollingUpdate) they
    /// share `replicas + maxSurge` in proportion to their sizes.
    fn scale_all(&mut self) -> Result<(), String> {
        let want = self.want();
        let ni = self.new_index();
        let active: Vec<usize> = (0..self.all.len())
            .filter(|i| spec_replicas(&self.all[*i]) > 0)
            .collect();
        let single = match active.as_slice() {
            [one] => Some(*one),
            [] => ni.or_else(|| self.all.len().checked_sub(1)),
            _ => None,
        };
        if let Some(i) = single {
            if spec_replicas(&self.all[i]) != want {
                self.scale(i, want)?;
            }
            return Ok(());
        }
        if let Some(n) = ni {
            let new = counts(&self.all[n]);
            if new.spec == want && new.available >= want {
                for i in active.into_iter().filter(|i| *i != n) {
                    self.scale(i, 0)?;
                }
                return Ok(());
            }
        }
        let recreate = self.spec().strategy.and_then(|s| s.type_).as_deref() == Some("Recreate");
        if recreate {
            return Ok(());
        }
        let (surge, _) = self.fenceposts()?;
        let sets: Vec<rolling::Sized> = active
            .iter()
            .map(|&i| rolling::Sized {
                spec: spec_replicas(&self.all[i]),
                max_replicas: self.all[i]
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(MAX_REPLICAS))
                    .and_then(|m| m.parse().ok()),
                age_rank: i,
            })
            .collect();
        let status_replicas = self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let targets = rolling::proportional_targets(want, surge, status_replicas, &sets);
        for (i, t) in active.into_iter().zip(targets) {
            self.scale(i, t)?;
        }
        Ok(())
    }

    /// Once the rollout is complete, delete the oldest idle ReplicaSets
    /// beyond revisionHistoryLimit.
    fn cleanup_if_complete(&mut self, ni: Option<usize>) -> Result<(), String> {
        let (_, unavailable) = self.fenceposts()?;
        let new = ni.map(|i| self.all[i].clone());
        let (st, _) = progress::compute(
            &self.d,
            new.as_ref(),
            &self.all,
            unavailable,
            self.event,
            Utc::now(),
        );
        if !progress::complete(&self.d, &st) {
            return Ok(());
        }
        let limit = self.spec().revision_history_limit.unwrap_or(10);
        let mut idle: Vec<&ReplicaSet> = self
            .all
            .iter()
            .enumerate()
            .filter(|(i, rs)| {
                Some(*i) != ni
                    && spec_replicas(rs) == 0
                    && rs.status.as_ref().map_or(0, |s| s.replicas) == 0
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .map(|(_, rs)| rs)
            .collect();
        idle.sort_by_key(|rs| revision(&rs.metadata));
        let n = rolling::history_to_delete(idle.len(), limit);
        let keys: Vec<String> = idle.iter().take(n).map(|rs| self.rs_key(rs)).collect();
        for k in keys {
            match delete_object(self.node, &k, Propagation::Background) {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(format!("deleting old replica set {k}: {e}")),
            }
        }
        Ok(())
    }

    /// Write the status and the revision annotation; when to look again.
    fn write_status(&self) -> Reconciled {
        let (_, unavailable) = self.fenceposts()?;
        let ni = self.new_index();
        let new = ni.map(|i| self.all[i].clone());
        let (st, again) = progress::compute(
            &self.d,
            new.as_ref(),
            &self.all,
            unavailable,
            self.event,
            Utc::now(),
        );
        let rev = new.as_ref().map(|rs| revision(&rs.metadata));
        let uid = self.d.metadata.uid.clone();
        let prev_progress = self
            .d
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
            .map(|c| c.reason.clone());
        let now_progress = st
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
            .map(|c| c.reason.clone());
        if now_progress != prev_progress
            && now_progress
                .as_ref()
                .is_some_and(|r| r.as_deref() == Some("ProgressDeadlineExceeded"))
        {
            self.node.events.record_for(
                &ABOUT,
                &self.d.metadata,
                "Warning",
                "ProgressDeadlineExceeded",
                format!("Deployment {:?} has timed out progressing.", self.name()),
            );
        }
        // Status is recomputed after a restart: no fsync for it (the
        // revision annotation is too, from the ReplicaSets).
        self.node
            .store
            .update_with_sync::<Deployment>(self.key, crate::store::Sync::Lazy, |d| {
                if d.metadata.uid != uid || d.metadata.generation != self.d.metadata.generation {
                    // Changed meanwhile: its own reconcile follows.
                    return false;
                }
                let mut changed = false;
                if let Some(r) = rev.filter(|r| *r > 0) {
                    let a = d.metadata.annotations.get_or_insert_with(Default::default);
                    if a.get(REVISION) != Some(&r.to_string()) {
                        a.insert(REVISION.into(), r.to_string());
                        changed = true;
                    }
                }
                let mut st = st.clone();
                st.collision_count = d.status.as_ref().and_then(|s| s.collision_count);
                if d.status.as_ref() != Some(&st) {
                    d.status = Some(st);
                    changed = true;
                }
                changed
            })
            .map_err(|e| e.to_string())?;
        Ok(again)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str, hash: Option<&str>) -> PodTemplateSpec {
        let mut labels = serde_json::json!({ "app": "web" });
        if let Some(h) = hash {
            labels[HASH_LABEL] = h.into();
        }
        serde_json::from_value(serde_json::json!({
            "metadata": { "labels": labels },
            "spec": { "containers": [{ "name": "c", "image": image }] }
        }))
        .expect("template")
    }

    #[test]
    fn hash_ignores_its_own_label_and_changes_with_the_template_and_collisions() {
        let a = template("busybox:1", None);
        let h = template_hash(&a, None);
        assert!(
            !h.is_empty()
                && h.bytes()
                    .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
            "{h}"
        );
        assert_eq!(template_hash(&template("busybox:1", Some(&h)), None), h);
        assert_ne!(template_hash(&template("busybox:2", None), None), h);
        assert_ne!(template_hash(&a, Some(1)), h);
        assert!(equal_ignore_hash(&a, &template("busybox:1", Some(&h))));
        assert!(!equal_ignore_hash(&a, &template("busybox:2", Some(&h))));
    }

    #[test]
    fn a_scaled_down_replica_set_counts_its_pods_not_yet_deleted() {
        let rs: ReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web-a" },
            "spec": { "replicas": 2, "selector": {} },
            "status": { "replicas": 3, "availableReplicas": 3 },
        }))
        .expect("rs");
        // For maxSurge: the 3 pods still there; for maxUnavailable: at
        // most the 2 that will stay.
        assert_eq!(pods_counted(&rs), 3);
        assert_eq!(
            counts(&rs),
            RsCounts {
                spec: 2,
                available: 2
            }
        );
    }

    #[test]
    fn revisions_read_from_the_annotation() {
        let meta = ObjectMeta {
            annotations: Some([(REVISION.to_string(), "7".to_string())].into()),
            ..Default::default()
        };
        assert_eq!(revision(&meta), 7);
        assert_eq!(revision(&ObjectMeta::default()), 0);
    }
}
