//! Pod status from what the runtime reports, the way kubelet computes it:
//! container states and reasons (`ContainerCreating`, `PodInitializing`,
//! `Completed`, `Error`, `OOMKilled`), the phase and the conditions.

use crate::pod_actions::PodView;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use peapod_runtime::{ContainerState, ContainerStatus, SandboxState};
use serde_json::{json, Value};
use std::collections::HashMap;

/// What the pod worker knows: the runtime's view of the pod and its own
/// notes (why containers wait, image ids, back-offs).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The pod's sandboxes and containers as the runtime reports them.
    pub view: PodView,
    /// Why a container is waiting: name → (reason, message).
    pub waiting: HashMap<String, (String, String)>,
    /// The pod's start time (RFC 3339), set once the worker takes it on.
    pub start_time: Option<String>,
    pub host_ip: Option<String>,
    /// Image ids by container name.
    pub image_ids: HashMap<String, String>,
    /// The pod is being deleted: running containers show as terminating.
    pub terminating: bool,
    /// Image pull back-off per image.
    pub pull_backoff: crate::image_pull::PullBackoff,
    /// The pod's volumes, prepared once (they outlive sandboxes).
    pub volumes: Option<crate::volumes::Prepared>,
    /// Containers whose "image present" event was recorded.
    pub pulled_noted: std::collections::HashSet<String>,
    /// Termination messages of exited containers, by container id.
    pub messages: HashMap<String, String>,
    /// The last RunPodSandbox failed (retry soon).
    pub sandbox_failed: bool,
    /// Probe results of the running containers.
    pub probes: crate::prober::Snapshot,
    /// The pod failed as a whole: (reason, message), e.g.
    /// `DeadlineExceeded`.
    pub failed: Option<(String, String)>,
    /// Containers this worker created ahead of their start (while the
    /// sandbox's network was set up, or while init containers ran), by
    /// id, with the config each was made with.
    pub precreated: HashMap<String, peapod_runtime::ContainerConfig>,
}

impl Observed {
    /// The pod's addresses, primary first: those CNI gave its current
    /// sandbox; a hostNetwork pod has the host's, as kubelet reports. The
    /// one source of `status.podIP(s)` and the downward API; probes and
    /// hooks take the same sandbox address (`prober::handler::PodNet`).
    pub fn pod_ips(&self, pod: &Pod) -> Vec<String> {
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        match self.view.current_sandbox().and_then(|s| s.network.as_ref()) {
            Some(n) => std::iter::once(n.ip.clone())
                .chain(n.additional_ips.iter().cloned())
                .collect(),
            None if host_network => self.host_ip.iter().cloned().collect(),
            None => Vec::new(),
        }
    }
}

/// Seconds precision, as the API server stores times.
fn secs(t: &str) -> String {
    t.parse::<k8s_openapi::jiff::Timestamp>()
        .map(|ts| ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn now() -> String {
    crate::time::now_string()
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn container_id(c: &ContainerStatus) -> String {
    format!("peapod://{}", c.id)
}

fn terminated(c: &ContainerStatus, obs: &Observed) -> Value {
    let mut t = json!({
        "exitCode": c.exit_code.unwrap_or(255),
        "reason": c.reason.clone().unwrap_or_else(|| "Error".into()),
        "startedAt": secs(c.started_at.as_deref().unwrap_or(&c.created_at)),
        "finishedAt": secs(c.finished_at.as_deref().unwrap_or(&c.created_at)),
        "containerID": container_id(c),
    });
    if let Some(sig) = c.signal {
        t["signal"] = json!(sig);
    }
    if let Some(m) = obs.messages.get(&c.id).filter(|m| !m.is_empty()) {
        t["message"] = json!(m);
    }
    t
}

fn container_status(c: &Container, obs: &Observed, default_wait: &str) -> Value {
    let latest = obs.view.latest(&c.name);
    let image_id = latest
        .map(|s| s.image_ref.clone())
        .filter(|r| !r.is_empty())
        .or_else(|| obs.image_ids.get(&c.name).cloned())
        .unwrap_or_default();
    let waiting = obs.waiting.get(&c.name).cloned();
    let (state, ready, started) = match (latest, &waiting) {
        (Some(s), _) if s.state == ContainerState::Running => {
            let started_at = secs(s.started_at.as_deref().unwrap_or(&s.created_at));
            (
                json!({ "running": { "startedAt": started_at } }),
                obs.probes.ready(c, &s.id),
                obs.probes.started(c, &s.id),
            )
        }
        // A container waiting for a restart shows why (CrashLoopBackOff).
        (Some(s), None) if matches!(s.state, ContainerState::Exited | ContainerState::Unknown) => {
            (json!({ "terminated": terminated(s, obs) }), false, false)
        }
        _ => {
            let (reason, message) =
                waiting.unwrap_or_else(|| (default_wait.to_string(), String::new()));
            let mut w = json!({ "reason": reason });
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            (json!({ "waiting": w }), false, false)
        }
    };
    let mut last_state = json!({});
    if let Some(s) = latest {
        if matches!(s.state, ContainerState::Exited | ContainerState::Unknown)
            && state.get("waiting").is_some()
        {
            last_state = json!({ "terminated": terminated(s, obs) });
        } else if let Some(p) = obs.view.previous(&c.name) {
            last_state = json!({ "terminated": terminated(p, obs) });
        }
    }
    let mut v = json!({
        "name": c.name,
        "image": c.image.clone().unwrap_or_default(),
        "imageID": image_id,
        "ready": ready,
        "started": started,
        "restartCount": latest.map(|s| s.metadata.attempt).unwrap_or(0),
        "state": state,
        "lastState": last_state,
    });
    if let Some(s) = latest {
        v["containerID"] = json!(container_id(s));
    }
    v
}

/// Compute a pod's status.
pub fn compute(pod: &Pod, obs: &Observed) -> PodStatus {
    let Some(spec) = pod.spec.as_ref() else {
        return PodStatus::default();
    };
    let get = |name: &str| obs.view.latest(name);
    let inits = spec.init_containers.clone().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let exited =
        |s: &ContainerStatus| matches!(s.state, ContainerState::Exited | ContainerState::Unknown);

    // Init containers: done when every regular one exited 0 and every
    // sidecar has started.
    let mut init_done = true;
    let mut init_failed = false;
    let mut init_statuses = Vec::new();
    for c in &inits {
        let s = get(&c.name);
        init_statuses.push(container_status(c, obs, "PodInitializing"));
        let ok = match s {
            Some(s) if is_sidecar(c) => {
                s.started_at.is_some()
                    && (s.state != ContainerState::Running || obs.probes.started(c, &s.id))
            }
            Some(s) => exited(s) && s.exit_code == Some(0),
            None => false,
        };
        if !is_sidecar(c) && s.is_some_and(|s| exited(s) && s.exit_code != Some(0)) {
            init_failed = true;
        }
        if !ok {
            init_done = false;
        }
    }
    // kubelet's default waiting reason of a container not yet made:
    // PodInitializing in a pod with init containers (also once they are
    // done), ContainerCreating otherwise.
    let app_wait = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let app_statuses: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| container_status(c, obs, app_wait))
        .collect();

    let app_states: Vec<Option<&ContainerStatus>> =
        spec.containers.iter().map(|c| get(&c.name)).collect();
    let running = app_states
        .iter()
        .filter(|s| s.is_some_and(|s| s.state == ContainerState::Running))
        .count();
    let done: Vec<&ContainerStatus> = app_states
        .iter()
        .flatten()
        .filter(|s| exited(s))
        .copied()
        .collect();
    // Terminal only when no exited container will be restarted.
    let will_restart = |s: &ContainerStatus| match restart_policy {
        "Never" => false,
        "OnFailure" => s.exit_code != Some(0),
        _ => true,
    };
    let all_done = done.len() == spec.containers.len()
        && !spec.containers.is_empty()
        && !done.iter().any(|s| will_restart(s));

    let phase = if obs.failed.is_some() || (init_failed && restart_policy == "Never") {
        "Failed"
    } else if all_done {
        if done.iter().all(|s| s.exit_code == Some(0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if init_done && running > 0 {
        "Running"
    } else {
        "Pending"
    };

    // Ready: every app container and sidecar runs and is ready.
    let is_ready = |c: &Container| {
        get(&c.name)
            .is_some_and(|s| s.state == ContainerState::Running && obs.probes.ready(c, &s.id))
    };
    let ready = init_done
        && running == spec.containers.len()
        && spec.containers.iter().all(is_ready)
        && inits.iter().filter(|c| is_sidecar(c)).all(is_ready)
        && !obs.terminating
        && obs.failed.is_none();
    let sandbox_ready = obs
        .view
        .current_sandbox()
        .is_some_and(|s| s.state == SandboxState::Ready);
    let t = now();
    let cond = |typ: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({ "type": typ, "status": if ok { "True" } else { "False" }, "lastTransitionTime": t });
        if let Some(r) = reason.filter(|_| !ok) {
            c["reason"] = json!(r);
        }
        c
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let conditions = vec![
        cond("PodReadyToStartContainers", sandbox_ready, None),
        cond("Initialized", init_done, Some("ContainersNotInitialized")),
        cond(
            "Ready",
            ready,
            Some(if completed {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
        ),
        cond(
            "ContainersReady",
            ready,
            Some(if completed {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
        ),
        cond("PodScheduled", true, None),
    ];
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": app_statuses,
        "qosClass": qos_class(pod),
    });
    if !inits.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    if let Some((reason, message)) = &obs.failed {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    if let Some(ts) = &obs.start_time {
        status["startTime"] = json!(secs(ts));
    }
    if let Some(ip) = &obs.host_ip {
        status["hostIP"] = json!(ip);
        status["hostIPs"] = json!([{ "ip": ip }]);
    }
    let ips = obs.pod_ips(pod);
    if let Some(ip) = ips.first() {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!(ips.iter().map(|ip| json!({ "ip": ip })).collect::<Vec<_>>());
    }
    serde_json::from_value(status).unwrap_or_default()
}

/// Kubernetes QoS class from requests and limits.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let r = c.resources.as_ref();
        let limits = r.and_then(|r| r.limits.as_ref());
        let requests = r.and_then(|r| r.requests.as_ref());
        if limits.map(|l| !l.is_empty()).unwrap_or(false)
            || requests.map(|l| !l.is_empty()).unwrap_or(false)
        {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = limits.and_then(|l| l.get(res));
            let q = requests.and_then(|q| q.get(res)).or(l);
            if l.is_none() || q.map(|q| &q.0) != l.map(|l| &l.0) {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peapod_runtime::ContainerMetadata;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn cs(
        name: &str,
        attempt: u32,
        state: ContainerState,
        exit: Option<(i32, &str)>,
    ) -> ContainerStatus {
        ContainerStatus {
            id: format!("{name}{attempt}"),
            sandbox_id: "s".into(),
            metadata: ContainerMetadata {
                name: name.into(),
                attempt,
            },
            state,
            pid: None,
            created_at: "2024-01-01T00:00:00Z".into(),
            started_at: Some("2024-01-01T00:00:01.5Z".into()),
            finished_at: exit.map(|_| "2024-01-01T00:00:02Z".into()),
            exit_code: exit.map(|e| e.0),
            signal: None,
            reason: exit.map(|e| e.1.to_string()),
            message: None,
            image: "i".into(),
            image_ref: "i@sha256:x".into(),
            log_path: "/x".into(),
            labels: Default::default(),
            annotations: Default::default(),
        }
    }

    fn obs(containers: Vec<ContainerStatus>) -> Observed {
        let mut sandbox = crate::pod_actions::fixtures::sandbox("s", 0, true);
        sandbox.created_at = String::new();
        Observed {
            view: PodView {
                sandboxes: vec![sandbox],
                containers,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const POD: &str = "metadata: {name: p, uid: u1}\nspec:\n  initContainers: [{name: init, image: i}]\n  containers: [{name: a, image: i}, {name: b, image: i}]\n";

    #[test]
    fn init_running_keeps_pending() {
        let p = pod(POD);
        let s = compute(&p, &obs(vec![cs("init", 0, ContainerState::Running, None)]));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
    }

    #[test]
    fn app_containers_not_yet_made_wait_pod_initializing_once_inits_are_done() {
        // kubelet's default waiting reason in a pod with init containers.
        let p = pod(POD);
        let s = compute(
            &p,
            &obs(vec![cs(
                "init",
                0,
                ContainerState::Exited,
                Some((0, "Completed")),
            )]),
        );
        let reasons: Vec<Option<String>> = s
            .container_statuses
            .iter()
            .flatten()
            .map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect();
        assert!(!reasons.is_empty());
        assert!(
            reasons
                .iter()
                .all(|r| r.as_deref() == Some("PodInitializing")),
            "{reasons:?}"
        );
    }

    #[test]
    fn running_and_oom_and_restarts() {
        let p = pod(POD);
        let o = obs(vec![
            cs("init", 0, ContainerState::Exited, Some((0, "Completed"))),
            cs("a", 0, ContainerState::Exited, Some((1, "Error"))),
            cs("a", 1, ContainerState::Running, None),
            cs("b", 0, ContainerState::Exited, Some((137, "OOMKilled"))),
        ]);
        let s = compute(&p, &o);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.restart_count, 1);
        let last = a.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        let b = &s.container_statuses.as_ref().unwrap()[1];
        let t = b.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(t.exit_code, 137);
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let p = pod(POD);
        let mut o = obs(vec![
            cs("init", 0, ContainerState::Exited, Some((0, "Completed"))),
            cs("a", 2, ContainerState::Exited, Some((3, "Error"))),
        ]);
        o.waiting.insert(
            "a".into(),
            ("CrashLoopBackOff".into(), "back-off 20s".into()),
        );
        let s = compute(&p, &o);
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            a.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            3
        );
        assert_eq!(a.restart_count, 2);
    }

    #[test]
    fn failed_init_with_never() {
        let mut p = pod(POD);
        p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        let s = compute(
            &p,
            &obs(vec![cs(
                "init",
                0,
                ContainerState::Exited,
                Some((3, "Error")),
            )]),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn never_pod_completes() {
        let mut p = pod(POD);
        p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        let s = compute(
            &p,
            &obs(vec![
                cs("init", 0, ContainerState::Exited, Some((0, "Completed"))),
                cs("a", 0, ContainerState::Exited, Some((0, "Completed"))),
                cs("b", 0, ContainerState::Exited, Some((0, "Completed"))),
            ]),
        );
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&pod("metadata: {name: p}\nspec: {containers: [{name: a}]}")),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&pod("metadata: {name: p}\nspec: {containers: [{name: a, resources: {limits: {cpu: 1, memory: 1Gi}}}]}")),
            "Guaranteed"
        );
        assert_eq!(qos_class(&pod("metadata: {name: p}\nspec: {containers: [{name: a, resources: {limits: {memory: 1Gi}}}]}")), "Burstable");
    }

    #[test]
    fn readiness_and_startup_probes_drive_ready_and_started() {
        let p = pod("metadata: {name: p, uid: u1}\nspec:\n  containers:\n  - {name: a, image: i, readinessProbe: {exec: {command: [x]}}}\n  - {name: b, image: i, startupProbe: {exec: {command: [x]}}}\n");
        let mut o = obs(vec![
            cs("a", 0, ContainerState::Running, None),
            cs("b", 0, ContainerState::Running, None),
        ]);
        let flags = |st: &PodStatus| {
            let cs = st.container_statuses.clone().unwrap();
            let ready = st
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .status
                .clone();
            (
                cs.iter()
                    .map(|c| (c.ready, c.started.unwrap()))
                    .collect::<Vec<_>>(),
                ready,
            )
        };
        // No results yet: not ready, b not started.
        assert_eq!(
            flags(&compute(&p, &o)),
            (vec![(false, true), (false, false)], "False".to_string())
        );
        use crate::prober::{ProbeResult, ProbeType};
        o.probes
            .set("a0", ProbeType::Readiness, ProbeResult::Success);
        o.probes.set("b0", ProbeType::Startup, ProbeResult::Success);
        let st = compute(&p, &o);
        assert_eq!(
            flags(&st),
            (vec![(true, true), (true, true)], "True".to_string())
        );
        assert_eq!(st.phase.as_deref(), Some("Running"));
        o.probes
            .set("a0", ProbeType::Readiness, ProbeResult::Failure);
        assert_eq!(
            flags(&compute(&p, &o)),
            (vec![(false, true), (true, true)], "False".to_string())
        );
    }

    #[test]
    fn deadline_exceeded_fails_the_pod() {
        let p = pod(POD);
        let mut o = obs(vec![cs(
            "init",
            0,
            ContainerState::Exited,
            Some((0, "Completed")),
        )]);
        o.failed = Some((
            "DeadlineExceeded".into(),
            "Pod was active on the node longer than the specified deadline".into(),
        ));
        let st = compute(&p, &o);
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(
            st.message.as_deref(),
            Some("Pod was active on the node longer than the specified deadline")
        );
    }

    #[test]
    fn https_probes_hold_readiness_until_they_pass() {
        // HTTPS probes are run (no longer ignored): no result yet, so
        // neither started nor ready.
        let p = pod("metadata: {name: p, uid: u1}\nspec:\n  containers:\n  - {name: a, image: i, readinessProbe: {httpGet: {port: 9, scheme: HTTPS}}, startupProbe: {httpGet: {port: 9, scheme: HTTPS}}}\n");
        let o = obs(vec![cs("a", 0, ContainerState::Running, None)]);
        let st = compute(&p, &o);
        let c = &st.container_statuses.unwrap()[0];
        assert!(!c.ready && c.started == Some(false));
    }
}
