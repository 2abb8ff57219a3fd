//! Workload controllers, run in the daemon as kube-controller-manager runs
//! them: informer-style reconcile loops over the object store.
//!
//! # How a controller plugs in
//!
//! 1. Implement [`Controller`] in its own file:
//!    - `name()`: for logs (`replicaset`, `job`);
//!    - `primary_prefix()`: the store prefix of the objects it owns the
//!      reconciliation of (`replicasets/`); every key under it is
//!      reconciled once at start (so a daemon restart reconciles
//!      everything) and whenever it changes;
//!    - `watches()`: the other prefixes whose changes matter (`pods/`);
//!    - `keys_for(node, change)`: the primary keys a change concerns. The
//!      default maps a change under `primary_prefix` to its own key; for a
//!      dependent use [`owner::controller_key`] (a Pod change → its
//!      controller's key through ownerReferences) and, for orphans, the
//!      primaries whose selector matches ([`owner::selecting`]);
//!    - `reconcile(node, key)`: level-triggered: read the primary and what
//!      it owns from the store, make the world match, write the status.
//!      It runs on a blocking thread (the store is synchronous) and may be
//!      called for a key whose object is gone (do nothing then; the
//!      garbage collector removes dependents). Return `Ok(Some(d))` to be
//!      called again after `d` (minReadySeconds, deadlines, schedules),
//!      `Err` to be retried with back-off (50 ms doubling up to 60 s).
//!      One key is never reconciled by two workers at once; keys added
//!      while one runs are merged into one more run.
//! 2. Add it to [`controllers`].
//!
//! Helpers: [`owner`] (controller refs, adoption and release by
//! selector), [`pod_template`] (a Pod from a PodTemplateSpec, created as
//! the API server and kubelet admit it). Deletion with
//! `propagationPolicy` and finalizers is `server::objects::delete_object`;
//! the garbage collector is [`gc`].

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod gc;
pub mod hpa;
pub mod job;
pub mod owner;
pub mod pod_template;
pub mod queue;
pub mod replicaset;
pub mod statefulset;
pub mod volume;

use crate::node::Node;
use crate::store::Change;
use queue::Queue;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// What a reconcile returns: when to look again, or why it failed.
pub type Reconciled = Result<Option<Duration>, String>;

/// One controller: see the module documentation.
pub trait Controller: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Store key prefix of the primary objects, e.g. `replicasets/`.
    fn primary_prefix(&self) -> &'static str;
    /// Prefixes of other objects whose changes concern primaries.
    fn watches(&self) -> &'static [&'static str] {
        &[]
    }
    /// The primary keys `change` concerns.
    fn keys_for(&self, _node: &Node, change: &Change) -> Vec<String> {
        if change.key.starts_with(self.primary_prefix()) {
            vec![change.key.clone()]
        } else {
            Vec::new()
        }
    }
    /// The keys reconciled at start and after a missed change (the watch
    /// fell behind): every primary.
    fn resync_keys(&self, node: &Node) -> Result<Vec<String>, String> {
        let prefix = self.primary_prefix();
        node.store
            .keys(|k| k.starts_with(prefix))
            .map_err(|e| e.to_string())
    }
    /// Make the world match the primary at `key` (see the module doc).
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled;
    /// Keys reconciled at the same time (different keys only).
    fn workers(&self) -> usize {
        2
    }
}

/// Every controller the daemon runs.
pub fn controllers() -> Vec<Arc<dyn Controller>> {
    vec![
        Arc::new(gc::GarbageCollector),
        Arc::new(replicaset::ReplicaSetController),
        Arc::new(deployment::DeploymentController),
        Arc::new(hpa::HpaController::default()),
        Arc::new(job::JobController),
        Arc::new(cronjob::CronJobController),
        Arc::new(statefulset::StatefulSetController),
        Arc::new(volume::VolumeController),
        Arc::new(daemonset::DaemonSetController),
    ]
}

/// Start every controller (from `daemon.rs`, after the store is open).
pub fn run_all(node: Arc<Node>) {
    for c in controllers() {
        tokio::spawn(run(node.clone(), c));
    }
}

fn concerns(c: &dyn Controller, key: &str) -> bool {
    key.starts_with(c.primary_prefix()) || c.watches().iter().any(|p| key.starts_with(p))
}

fn resync(node: &Node, c: &dyn Controller, q: &Queue) {
    match c.resync_keys(node) {
        Ok(keys) => keys.iter().for_each(|k| q.add(k)),
        Err(e) => tracing::warn!(controller = c.name(), "listing objects to reconcile: {e}"),
    }
}

/// One controller's informer loop and workers, until the store closes.
pub async fn run(node: Arc<Node>, c: Arc<dyn Controller>) {
    let q = Queue::new();
    // Subscribed before listing: nothing between the two is missed.
    let mut changes = node.store.subscribe();
    resync(&node, &*c, &q);
    for _ in 0..c.workers().max(1) {
        tokio::spawn(worker(node.clone(), c.clone(), q.clone()));
    }
    loop {
        match changes.recv().await {
            Ok(change) => {
                if concerns(&*c, &change.key) {
                    for k in c.keys_for(&node, &change) {
                        q.add(&k);
                    }
                }
            }
            Err(RecvError::Lagged(n)) => {
                tracing::info!(
                    controller = c.name(),
                    "missed {n} changes: reconciling everything"
                );
                resync(&node, &*c, &q);
            }
            Err(RecvError::Closed) => break,
        }
    }
    q.shutdown();
}

async fn worker(node: Arc<Node>, c: Arc<dyn Controller>, q: Arc<Queue>) {
    while let Some(key) = q.get().await {
        let (n, cc, k) = (node.clone(), c.clone(), key.clone());
        let res = tokio::task::spawn_blocking(move || cc.reconcile(&n, &k))
            .await
            .unwrap_or_else(|e| Err(format!("the reconcile task failed: {e}")));
        match res {
            Ok(again) => {
                q.forget(&key);
                if let Some(d) = again {
                    q.add_after(&key, d);
                }
            }
            Err(e) => {
                let delay = q.add_rate_limited(&key);
                tracing::warn!(
                    controller = c.name(),
                    key = %key,
                    "reconcile failed (retrying in {delay:?}): {e}"
                );
            }
        }
        q.done(&key);
    }
}

/// `namespace` and `name` of a `<resource>/<namespace>/<name>` key.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.splitn(3, '/');
    let (_, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some((ns, name))
}

/// The namespace of a change's object (`default` when unset).
pub fn change_namespace(change: &Change) -> String {
    change
        .object
        .pointer("/metadata/namespace")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_namespace_and_name() {
        assert_eq!(
            split_key("replicasets/default/web-abc"),
            Some(("default", "web-abc"))
        );
        assert_eq!(split_key("namespaces/default"), None);
    }
}
