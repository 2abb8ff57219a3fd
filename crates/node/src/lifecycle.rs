//! Lifecycle hooks and graceful stop, as kubelet's `killContainer` and
//! `executePreStopHook`: the `Killing` event, the preStop hook (bounded by
//! the grace period, its time counted against it), then StopContainer with
//! what is left of the grace period (at least 2 s) — the stop signal, then
//! SIGKILL. postStart runs right after a container starts; the container
//! counts as started only once it completed.

use crate::node::Node;
use crate::pod_actions::PodView;
use crate::prober::handler::{Handler, Outcome, PodNet, Target};
use crate::prober::{ProbeType, Snapshot};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use peapod_runtime::{ContainerState, ContainerStatus};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

/// kubelet's killContainer: the `Killing` event with `k.message`, preStop
/// (when the grace period is not zero), then StopContainer with the rest
/// of the grace period. After preStop it waits (within the grace period,
/// which the wait uses up) until each of `turn` says its container is gone
/// (or its kill was dropped), as kubelet's terminationOrdering.
pub async fn kill_container(
    node: &Arc<Node>,
    pod: &Pod,
    k: &Kill,
    net: PodNet,
    turn: Vec<watch::Receiver<bool>>,
) {
    let (cid, name, grace) = (k.cid.as_str(), k.name.as_str(), k.grace);
    let c: Option<Container> = pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    });
    node.events.record(pod, "Normal", "Killing", &k.message);
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
                net,
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
    if !turn.is_empty() && !left.is_zero() {
        let t0 = Instant::now();
        let gone = futures_util::future::join_all(
            turn.into_iter()
                .map(|mut r| async move { r.wait_for(|gone| *gone).await.map(drop) }),
        );
        let _ = tokio::time::timeout(left, gone).await;
        left = left.saturating_sub(t0.elapsed());
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
/// the Killing message, the grace period, and the containers (of the same
/// kill) to be gone first.
pub struct Kill {
    pub cid: String,
    pub name: String,
    pub message: String,
    pub grace: Duration,
    pub after: Vec<String>,
}

/// Kill several containers at once (pod deletion, deadline), each after
/// those its `after` names. Dropping the future aborts the kills (a
/// shorter grace period starts them over).
pub async fn kill_all(node: &Arc<Node>, pod: &Pod, kills: Vec<Kill>, net: PodNet) {
    let mut gone: HashMap<String, (watch::Sender<bool>, watch::Receiver<bool>)> = kills
        .iter()
        .map(|k| (k.name.clone(), watch::channel(false)))
        .collect();
    let receivers: HashMap<String, watch::Receiver<bool>> = gone
        .iter()
        .map(|(n, (_, r))| (n.clone(), r.clone()))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for k in kills {
        let (node, pod, net) = (node.clone(), pod.clone(), net.clone());
        let turn = k
            .after
            .iter()
            .filter_map(|n| receivers.get(n).cloned())
            .collect();
        let done = gone.remove(&k.name).map(|(tx, _)| tx);
        tasks.spawn(async move {
            kill_container(&node, &pod, &k, net, turn).await;
            if let Some(tx) = done {
                let _ = tx.send(true);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Kill the running containers whose liveness or startup probe failed, as
/// kubelet's computePodActions; true if any was killed.
pub async fn kill_unhealthy(
    node: &Arc<Node>,
    pod: &Pod,
    view: &PodView,
    probes: &Snapshot,
) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut kills = Vec::new();
    for c in crate::prober::probed_containers(spec) {
        let Some(s) = view.current(&c.name) else {
            continue;
        };
        if s.state != ContainerState::Running {
            continue;
        }
        let Some((t, msg)) = probes.failed(&c.name, &s.id) else {
            continue;
        };
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        let message = if sidecar || policy != "Never" {
            format!("{msg}, will be restarted")
        } else {
            msg
        };
        let probe = match t {
            ProbeType::Startup => c.startup_probe.as_ref(),
            _ => c.liveness_probe.as_ref(),
        };
        kills.push(Kill {
            cid: s.id.clone(),
            name: c.name.clone(),
            message,
            grace: grace_period(pod, probe.and_then(|p| p.termination_grace_period_seconds)),
            after: Vec::new(),
        });
    }
    if kills.is_empty() {
        return false;
    }
    kill_all(node, pod, kills, PodNet::of(view.current_sandbox())).await;
    true
}

/// Graceful termination: every running container of the current sandbox
/// is stopped the kubelet way (preStop, stop signal, SIGKILL after the
/// grace period), all at once but for sidecars: as kubelet's
/// terminationOrdering, each sidecar (after its preStop) waits until the
/// app containers and the sidecars after it in initContainers are gone,
/// so they stop in reverse order, within what is left of the grace period.
pub async fn stop_pod(node: &Arc<Node>, pod: &Pod, view: &PodView) {
    let grace = grace_period(pod, None);
    let Some(sb) = view.current_sandbox() else {
        return;
    };
    let running: Vec<&ContainerStatus> = view
        .containers
        .iter()
        .filter(|c| c.sandbox_id == sb.id && c.state == ContainerState::Running)
        .collect();
    let kills = stop_order(pod, running.iter().map(|c| c.metadata.name.as_str()))
        .into_iter()
        .filter_map(|(name, after)| {
            let c = running.iter().find(|c| c.metadata.name == name)?;
            Some(Kill {
                cid: c.id.clone(),
                name: name.clone(),
                message: format!("Stopping container {name}"),
                grace,
                after,
            })
        })
        .collect();
    kill_all(node, pod, kills, PodNet::of(Some(sb))).await;
}

/// For each running container, those to be gone before it is stopped:
/// nothing for app containers (and init containers that are not
/// sidecars); for a sidecar, the running app containers and the running
/// sidecars defined after it.
pub fn stop_order<'a>(
    pod: &Pod,
    running: impl Iterator<Item = &'a str>,
) -> Vec<(String, Vec<String>)> {
    let running: Vec<&str> = running.collect();
    let spec = pod.spec.as_ref();
    let apps: Vec<&str> = spec
        .into_iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .collect();
    let sidecars: Vec<&str> = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    running
        .iter()
        .map(|name| {
            let after = match sidecars.iter().position(|s| s == name) {
                None => Vec::new(),
                Some(i) => running
                    .iter()
                    .filter(|r| apps.contains(r) || sidecars.iter().position(|s| s == *r) > Some(i))
                    .map(|r| r.to_string())
                    .collect(),
            };
            (name.to_string(), after)
        })
        .collect()
}

pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// How long the pod may still be active under `activeDeadlineSeconds`
/// (zero: past it), counted from its start time as kubelet does.
pub fn deadline_left(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    start: Option<&str>,
) -> Option<Duration> {
    let secs = spec.active_deadline_seconds?;
    let start = chrono::DateTime::parse_from_rfc3339(start?).ok()?;
    let end = start + chrono::Duration::seconds(secs.max(0));
    Some(
        (end.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
}

/// A pod that already failed its deadline (from its stored status, when a
/// restarted daemon adopts it).
pub fn deadline_failure(pod: &Pod) -> Option<(String, String)> {
    let st = pod.status.as_ref()?;
    (st.phase.as_deref() == Some("Failed") && st.reason.as_deref() == Some("DeadlineExceeded"))
        .then(|| ("DeadlineExceeded".to_string(), DEADLINE_MESSAGE.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn sidecars_stop_in_reverse_order_after_the_app_containers() {
        let p = pod("spec:
  initContainers:
  - {name: s1, restartPolicy: Always}
  - {name: init}
  - {name: s2, restartPolicy: Always}
  - {name: s3, restartPolicy: Always}
  containers: [{name: a}, {name: b}]");
        let order = stop_order(&p, ["a", "s1", "init", "s2", "s3", "b"].into_iter());
        let after = |n: &str| order.iter().find(|(c, _)| c == n).unwrap().1.clone();
        assert!(after("a").is_empty() && after("b").is_empty() && after("init").is_empty());
        assert_eq!(after("s3"), ["a", "b"]);
        assert_eq!(after("s2"), ["a", "s3", "b"]);
        assert_eq!(after("s1"), ["a", "s2", "s3", "b"]);
        // Only what runs is waited for.
        let order = stop_order(&p, ["s1", "s3"].into_iter());
        assert_eq!(
            order,
            [("s1".into(), vec!["s3".to_string()]), ("s3".into(), vec![])]
        );
    }

    #[test]
    fn grace_periods() {
        let secs = Duration::from_secs;
        // (what, pod, probe's terminationGracePeriodSeconds, grace)
        let cases = [
            ("default 30 s", "spec: {containers: []}", None, secs(30)),
            ("the pod's", "spec: {terminationGracePeriodSeconds: 5, containers: []}", None, secs(5)),
            ("a probe's overrides the pod's", "spec: {terminationGracePeriodSeconds: 60, containers: []}", Some(3), secs(3)),
            (
                "a deletion's overrides both",
                "metadata: {deletionGracePeriodSeconds: 0}\nspec: {terminationGracePeriodSeconds: 60, containers: []}",
                Some(3),
                secs(0),
            ),
        ];
        for (what, p, probe, want) in cases {
            assert_eq!(grace_period(&pod(p), probe), want, "{what}");
        }
    }

    #[test]
    fn active_deadline() {
        let spec = |d: &str| {
            pod(&format!(
                "spec: {{activeDeadlineSeconds: {d}, containers: []}}"
            ))
            .spec
            .unwrap()
        };
        let started = |ago: i64| (chrono::Utc::now() - chrono::Duration::seconds(ago)).to_rfc3339();
        assert_eq!(
            deadline_left(&spec("10"), Some(&started(20))),
            Some(Duration::ZERO)
        );
        let left = deadline_left(&spec("100"), Some(&started(40))).unwrap();
        assert!(
            left > Duration::from_secs(55) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(
            deadline_left(
                &pod("spec: {containers: []}").spec.unwrap(),
                Some(&started(1))
            ),
            None
        );
        assert_eq!(deadline_left(&spec("10"), None), None, "not started yet");
        let failed = pod("status: {phase: Failed, reason: DeadlineExceeded}");
        assert_eq!(
            deadline_failure(&failed),
            Some(("DeadlineExceeded".into(), DEADLINE_MESSAGE.into()))
        );
        assert_eq!(
            deadline_failure(&pod("status: {phase: Failed, reason: Evicted}")),
            None
        );
    }
}
