//! Pod status from what the shim reports, the way kubelet computes it:
//! container states and reasons (`ContainerCreating`, `PodInitializing`,
//! `Completed`, `Error`, `OOMKilled`), the phase and the conditions.

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use peapod_shim::{ContainerState, ContainerStatus, ShimState};
use serde_json::{json, Value};
use std::collections::HashMap;

/// What the pod worker knows besides the shim's state.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub state: Option<ShimState>,
    /// Why a container is waiting: name → (reason, message).
    pub waiting: HashMap<String, (String, String)>,
    /// The pod's start time (RFC 3339), set once the worker takes it on.
    pub start_time: Option<String>,
    pub host_ip: Option<String>,
    pub pod_ip: Option<String>,
    /// Image ids by container name.
    pub image_ids: HashMap<String, String>,
    /// The pod is being deleted: running containers show as terminating.
    pub terminating: bool,
    /// Image pull back-off per image.
    pub pull_backoff: crate::image_pull::PullBackoff,
    /// The last sync step created or started something: look again at once
    /// instead of waiting for a change (the change may already be in).
    pub progressed: bool,
    /// The pod's volumes, prepared for the current sandbox.
    pub volumes: Option<crate::volumes::Prepared>,
    /// Containers whose "image present" event was recorded.
    pub pulled_noted: std::collections::HashSet<String>,
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

fn container_status(
    uid: &str,
    c: &Container,
    s: Option<&ContainerState>,
    obs: &Observed,
    default_wait: &str,
) -> Value {
    let id = format!("peapod://{uid}/{}", c.name);
    let image_id = obs.image_ids.get(&c.name).cloned().unwrap_or_default();
    let (state, ready, started, cid) = match s {
        Some(s) if s.status == ContainerStatus::Running => {
            let started_at = secs(s.started_at.as_deref().unwrap_or(&s.created_at));
            (
                json!({ "running": { "startedAt": started_at } }),
                true,
                true,
                Some(id),
            )
        }
        Some(s) if s.status == ContainerStatus::Exited => {
            let exit = s.exit.clone();
            let (code, signal, oom, finished) = exit
                .map(|e| (e.code, e.signal, e.oom_killed, e.finished_at))
                .unwrap_or((255, None, false, now()));
            let reason = if oom {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            };
            let mut t = json!({
                "exitCode": code,
                "reason": reason,
                "startedAt": secs(s.started_at.as_deref().unwrap_or(&s.created_at)),
                "finishedAt": secs(&finished),
                "containerID": id,
            });
            if let Some(sig) = signal {
                t["signal"] = json!(sig);
            }
            (json!({ "terminated": t }), false, false, Some(id))
        }
        other => {
            let (reason, message) = obs
                .waiting
                .get(&c.name)
                .cloned()
                .unwrap_or_else(|| (default_wait.to_string(), String::new()));
            let mut w = json!({ "reason": reason });
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            (json!({ "waiting": w }), false, false, other.map(|_| id))
        }
    };
    let mut v = json!({
        "name": c.name,
        "image": c.image.clone().unwrap_or_default(),
        "imageID": image_id,
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    });
    if let Some(cid) = cid {
        v["containerID"] = json!(cid);
    }
    v
}

/// Compute a pod's status.
pub fn compute(pod: &Pod, obs: &Observed) -> PodStatus {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = pod.spec.as_ref() else {
        return PodStatus::default();
    };
    let empty = ShimState::default();
    let st = obs.state.as_ref().unwrap_or(&empty);
    let get = |name: &str| st.containers.get(name);
    let inits = spec.init_containers.clone().unwrap_or_default();

    // Init containers: done when every regular one exited 0 and every
    // sidecar has started.
    let mut init_done = true;
    let mut init_failed = false;
    let mut init_statuses = Vec::new();
    for c in &inits {
        let s = get(&c.name);
        init_statuses.push(container_status(&uid, c, s, obs, "PodInitializing"));
        let ok = match s {
            Some(s) if is_sidecar(c) => s.status == ContainerStatus::Running,
            Some(s) => {
                s.status == ContainerStatus::Exited && s.exit.as_ref().map(|e| e.code) == Some(0)
            }
            None => false,
        };
        if s.map(|s| {
            s.status == ContainerStatus::Exited && s.exit.as_ref().map(|e| e.code) != Some(0)
        })
        .unwrap_or(false)
            && !is_sidecar(c)
        {
            init_failed = true;
        }
        if !ok {
            init_done = false;
        }
    }
    let app_wait = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let app_statuses: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| container_status(&uid, c, get(&c.name), obs, app_wait))
        .collect();

    let app_states: Vec<Option<&ContainerState>> =
        spec.containers.iter().map(|c| get(&c.name)).collect();
    let running = app_states
        .iter()
        .filter(|s| {
            s.map(|s| s.status == ContainerStatus::Running)
                .unwrap_or(false)
        })
        .count();
    let exited: Vec<&ContainerState> = app_states
        .iter()
        .flatten()
        .filter(|s| s.status == ContainerStatus::Exited)
        .copied()
        .collect();
    let all_exited = exited.len() == spec.containers.len() && !spec.containers.is_empty();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");

    let phase = if init_failed && restart_policy == "Never" {
        "Failed"
    } else if all_exited {
        if exited
            .iter()
            .all(|s| s.exit.as_ref().map(|e| e.code) == Some(0))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if init_done && running + exited.len() == spec.containers.len() && running > 0 {
        "Running"
    } else {
        "Pending"
    };

    let ready = init_done && running == spec.containers.len() && !obs.terminating;
    let sandbox_ready = obs
        .state
        .as_ref()
        .map(|s| s.infra_exit.is_none())
        .unwrap_or(false);
    let t = now();
    let cond = |typ: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({ "type": typ, "status": if ok { "True" } else { "False" }, "lastTransitionTime": t });
        if let Some(r) = reason.filter(|_| !ok) {
            c["reason"] = json!(r);
        }
        c
    };
    let conditions = vec![
        cond("PodReadyToStartContainers", sandbox_ready, None),
        cond("Initialized", init_done, Some("ContainersNotInitialized")),
        cond(
            "Ready",
            ready,
            Some(if phase == "Succeeded" || phase == "Failed" {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
        ),
        cond(
            "ContainersReady",
            ready,
            Some(if phase == "Succeeded" || phase == "Failed" {
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
    if let Some(ts) = &obs.start_time {
        status["startTime"] = json!(secs(ts));
    }
    if let Some(ip) = &obs.host_ip {
        status["hostIP"] = json!(ip);
        status["hostIPs"] = json!([{ "ip": ip }]);
    }
    if let Some(ip) = &obs.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{ "ip": ip }]);
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
    use peapod_shim::ExitInfo;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn cs(
        id: &str,
        status: ContainerStatus,
        exit: Option<(i32, bool)>,
    ) -> (String, ContainerState) {
        (
            id.to_string(),
            ContainerState {
                id: id.into(),
                pid: 1,
                status,
                created_at: "2024-01-01T00:00:00Z".into(),
                started_at: Some("2024-01-01T00:00:01.5Z".into()),
                exit: exit.map(|(code, oom)| ExitInfo {
                    code,
                    signal: None,
                    finished_at: "2024-01-01T00:00:02Z".into(),
                    oom_killed: oom,
                }),
                log_path: "/x".into(),
            },
        )
    }

    const POD: &str = "metadata: {name: p, uid: u1}\nspec:\n  initContainers: [{name: init, image: i}]\n  containers: [{name: a, image: i}, {name: b, image: i}]\n";

    #[test]
    fn init_running_keeps_pending() {
        let p = pod(POD);
        let obs = Observed {
            state: Some(ShimState {
                containers: [cs("init", ContainerStatus::Running, None)].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = compute(&p, &obs);
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
    fn running_and_oom() {
        let p = pod(POD);
        let obs = Observed {
            state: Some(ShimState {
                containers: [
                    cs("init", ContainerStatus::Exited, Some((0, false))),
                    cs("a", ContainerStatus::Running, None),
                    cs("b", ContainerStatus::Exited, Some((137, true))),
                ]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = compute(&p, &obs);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let b = &s.container_statuses.as_ref().unwrap()[1];
        let t = b.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(t.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(t.exit_code, 137);
        let init = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Completed")
        );
    }

    #[test]
    fn failed_init_with_never() {
        let mut p = pod(POD);
        p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        let obs = Observed {
            state: Some(ShimState {
                containers: [cs("init", ContainerStatus::Exited, Some((3, false)))].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = compute(&p, &obs);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let init = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("Error")
        );
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
}
