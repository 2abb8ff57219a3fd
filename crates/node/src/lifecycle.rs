//! Lifecycle hooks and graceful stop, as kubelet's `killContainer` and
//! `executePreStopHook`: the `Killing` event, the preStop hook (bounded by
//! the grace period, its time counted against it), then StopContainer with
//! what is left of the grace period (at least 2 s) — the stop signal, then
//! SIGKILL. postStart runs right after a container starts; the container
//! counts as started only once it completed.

use crate::node::Node;
use crate::prober::handler::{Handler, Outcome, Target};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// kubelet's `minimumGracePeriodInSeconds`: the stop after a preStop hook
/// always gets this long.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// The message kubelet records when a hook fails.
fn hook_failure(h: &Handler, c: &Container, pod: &Pod, what: &str) -> String {
    let pod_name = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        crate::node::namespace_of(&pod.metadata),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    match h {
        Handler::Exec(cmd) => format!(
            "Exec lifecycle hook ({cmd:?}) for Container {:?} in Pod {pod_name:?} failed - error: {what}",
            c.name
        ),
        Handler::Http(g) => format!(
            "HTTP lifecycle hook ({}) for Container {:?} in Pod {pod_name:?} failed - error: {what}",
            g.path, c.name
        ),
        _ => format!(
            "lifecycle hook for Container {:?} in Pod {pod_name:?} failed - error: {what}",
            c.name
        ),
    }
}

/// Run hook `h` of container `c`; the failure message on failure.
/// Blocking.
pub fn run_hook(
    h: &LifecycleHandler,
    c: &Container,
    pod: &Pod,
    target: &Target,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let handler = match Handler::of_hook(h, c) {
        None => return Ok(()),
        Some(Err(e)) => return Err(e),
        Some(Ok(h)) => h,
    };
    match handler.run(target, timeout) {
        Outcome::Success(_) => Ok(()),
        Outcome::Failure(m) | Outcome::Error(m) => {
            Err(hook_failure(&handler, c, pod, m.trim_end()))
        }
    }
}

/// The grace period for stopping a container: the pod's deletion grace
/// period, else its terminationGracePeriodSeconds (30 s by default); a
/// probe's own terminationGracePeriodSeconds for a kill by that probe.
pub fn grace_period(pod: &Pod, probe_grace: Option<i64>) -> Duration {
    let spec = pod.spec.as_ref();
    let g = pod
        .metadata
        .deletion_grace_period_seconds
        .or(probe_grace)
        .or(spec.and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0);
    Duration::from_secs(g as u64)
}

/// kubelet's killContainer: the `Killing` event with `message`, preStop
/// (when the grace period is not zero), then StopContainer with the rest
/// of the grace period.
pub async fn kill_container(
    node: &Arc<Node>,
    pod: &Pod,
    cid: &str,
    name: &str,
    message: &str,
    grace: Duration,
    netns: Option<PathBuf>,
) {
    let c: Option<Container> = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    });
    node.events.record(pod, "Normal", "Killing", message);
    let mut left = grace;
    let pre_stop = c
        .as_ref()
        .and_then(|c| c.lifecycle.as_ref()?.pre_stop.clone());
    if let (Some(h), Some(c)) = (pre_stop, c.as_ref()) {
        if !grace.is_zero() {
            let t0 = Instant::now();
            let target = Target {
                runtime: node.runtime.clone(),
                container_id: cid.to_string(),
                netns,
            };
            let (p, c2) = (pod.clone(), c.clone());
            let hook =
                tokio::task::spawn_blocking(move || run_hook(&h, &c2, &p, &target, Some(grace)));
            match tokio::time::timeout(grace, hook).await {
                Ok(Ok(Err(msg))) => node.events.record(pod, "Warning", "FailedPreStopHook", msg),
                Ok(_) => {}
                Err(_) => tracing::info!(
                    pod = ?pod.metadata.name, container = %name,
                    "preStop hook not completed in the grace period"
                ),
            }
            // kubelet subtracts whole seconds.
            left = grace.saturating_sub(Duration::from_secs(t0.elapsed().as_secs()));
        }
    }
    if !grace.is_zero() {
        left = left.max(MIN_GRACE);
    }
    let rt = node.runtime.clone();
    let id = cid.to_string();
    let stop = tokio::task::spawn_blocking(move || rt.stop_container(&id, left, None));
    if let Ok(Err(e)) = stop.await {
        tracing::warn!(pod = ?pod.metadata.name, container = %name, "stop: {e}");
    }
}

/// What `kill_container` needs to know of a container to stop: id, name,
/// the Killing message, the grace period.
pub struct Kill {
    pub cid: String,
    pub name: String,
    pub message: String,
    pub grace: Duration,
}

/// Kill several containers at once (pod deletion, deadline).
pub async fn kill_all(node: &Arc<Node>, pod: &Pod, kills: Vec<Kill>, netns: Option<PathBuf>) {
    let tasks: Vec<_> = kills
        .into_iter()
        .map(|k| {
            let (node, pod, netns) = (node.clone(), pod.clone(), netns.clone());
            tokio::spawn(async move {
                kill_container(&node, &pod, &k.cid, &k.name, &k.message, k.grace, netns).await
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}
