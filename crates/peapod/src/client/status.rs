//! The READY, STATUS and RESTARTS columns of `get pods`: kubectl's
//! `printPod` (pkg/printers/internalversion/printers.go), line for line.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::table::{human_duration, to_chrono};

/// What `printPod` computes for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// Ready containers (app containers and started restartable init
    /// containers).
    pub ready: usize,
    /// App containers plus restartable init containers (sidecars).
    pub total: usize,
    /// The STATUS column.
    pub reason: String,
    /// The restart count shown.
    pub restarts: i64,
    /// When the last restarted container last terminated, if known.
    pub last_restart: Option<DateTime<Utc>>,
}

impl PodSummary {
    /// The RESTARTS column: `3`, or `3 (2m ago)` when the last restart's
    /// time is known.
    pub fn restarts_column(&self, now: DateTime<Utc>) -> String {
        match self.last_restart {
            Some(t) if self.restarts != 0 => {
                format!("{} ({} ago)", self.restarts, human_duration(now - t))
            }
            _ => self.restarts.to_string(),
        }
    }
}

/// The STATUS column of `get pods` for `pod`, as kubectl computes it:
/// `Running`, `Pending`, `Init:0/2`, `Init:CrashLoopBackOff`,
/// `Init:ExitCode:1`, `CrashLoopBackOff`, `OOMKilled`, `Completed`,
/// `Terminating`, …
#[allow(dead_code)] // `get` uses `summarize`; kept for callers outside it.
pub fn pod_status_reason(pod: &Pod) -> String {
    summarize(pod).reason
}

/// The READY column of `get pods` as `(ready, total)`; `total` counts the
/// app containers and the restartable init containers (sidecars).
#[allow(dead_code)] // `get` uses `summarize`; kept for callers outside it.
pub fn pod_ready(pod: &Pod) -> (usize, usize) {
    let summary = summarize(pod);
    (summary.ready, summary.total)
}

/// kubectl's `printPod`, without the table row around it.
pub fn summarize(pod: &Pod) -> PodSummary {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let init_containers = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or(&[]);
    let container_statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);

    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut total = containers.len();
    let mut ready = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut sidecar_last_restart: Option<DateTime<Utc>> = None;

    let phase = status.and_then(|s| s.phase.clone()).unwrap_or_default();
    let mut reason = match status.and_then(|s| s.reason.as_deref()) {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.clone(),
    };

    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".to_string();
    }

    let sidecars: HashSet<&str> = init_containers
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    total += sidecars.len();

    let mut initializing = false;
    for (i, container) in init_statuses.iter().enumerate() {
        restarts += i64::from(container.restart_count);
        let finished = last_finished(container);
        later(&mut last_restart, finished);
        let is_sidecar = sidecars.contains(container.name.as_str());
        if is_sidecar {
            sidecar_restarts += i64::from(container.restart_count);
            later(&mut sidecar_last_restart, finished);
        }
        let state = container.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting = state.and_then(|s| s.waiting.as_ref());

        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_sidecar && container.started == Some(true) {
            if container.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            // Initialisation failed.
            reason = match non_empty(&t.reason) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal {
                    Some(signal) if signal != 0 => format!("Init:Signal:{signal}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(r) = waiting
            .and_then(|w| non_empty(&w.reason))
            .filter(|r| *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{i}/{}", init_containers.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for container in container_statuses.iter().rev() {
            restarts += i64::from(container.restart_count);
            later(&mut last_restart, last_finished(container));
            let state = container.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let waiting_reason = state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| non_empty(&w.reason));
            if let Some(r) = waiting_reason {
                reason = r.to_string();
            } else if let Some(t) = terminated {
                reason = match non_empty(&t.reason) {
                    Some(r) => r.to_string(),
                    None => match t.signal {
                        Some(signal) if signal != 0 => format!("Signal:{signal}"),
                        _ => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if container.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }

        // Back to "Running" if at least one container still runs.
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.and_then(|s| s.reason.as_deref()) == Some("NodeLost") {
            reason = "Unknown".to_string();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".to_string();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// When the container's previous run finished.
fn last_finished(c: &ContainerStatus) -> Option<DateTime<Utc>> {
    c.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .and_then(to_chrono)
}

fn later(current: &mut Option<DateTime<Utc>>, candidate: Option<DateTime<Utc>>) {
    if let Some(c) = candidate {
        if current.is_none_or(|cur| cur < c) {
            *current = Some(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        match serde_json::from_value(value) {
            Ok(pod) => pod,
            Err(e) => panic!("bad test pod: {e}"),
        }
    }

    fn two_containers() -> serde_json::Value {
        json!([{"name": "a", "image": "x"}, {"name": "b", "image": "x"}])
    }

    #[test]
    fn running() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}
            ]}
        }));
        assert_eq!(pod_status_reason(&p), "Running");
        assert_eq!(pod_ready(&p), (1, 1));
    }

    #[test]
    fn pending_without_status() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Pending"}
        }));
        assert_eq!(pod_status_reason(&p), "Pending");
        assert_eq!(pod_ready(&p), (0, 1));
    }

    #[test]
    fn init_progress() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"initContainers": two_containers(), "containers": [{"name": "web", "image": "x"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}}
            ], "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "PodInitializing"}}}
            ]}
        }));
        assert_eq!(pod_status_reason(&p), "Init:1/2");
        assert_eq!(pod_ready(&p), (0, 1));
    }

    #[test]
    fn inits_done_app_not_made_is_pod_initializing() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"initContainers": [{"name": "a", "image": "x"}], "containers": [{"name": "web", "image": "x"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ], "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "PodInitializing"}}}
            ]}
        }));
        assert_eq!(pod_status_reason(&p), "PodInitializing");
        assert_eq!(pod_ready(&p), (0, 1));
    }

    #[test]
    fn init_waiting_pod_initializing_counts() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"initContainers": two_containers(), "containers": [{"name": "web", "image": "x"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"waiting": {"reason": "PodInitializing"}}}
            ]}
        }));
        assert_eq!(pod_status_reason(&p), "Init:0/2");
    }

    #[test]
    fn init_failures() {
        let with_state = |state: serde_json::Value, restarts: i32| {
            pod(json!({
                "metadata": {"name": "web"},
                "spec": {"initContainers": two_containers(), "containers": [{"name": "web", "image": "x"}]},
                "status": {"phase": "Pending", "initContainerStatuses": [
                    {"name": "a", "ready": false, "restartCount": restarts, "image": "", "imageID": "",
                     "state": state}
                ], "containerStatuses": [
                    {"name": "web", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                     "state": {"waiting": {"reason": "PodInitializing"}}}
                ]}
            }))
        };
        let p = with_state(json!({"terminated": {"exitCode": 1, "reason": "Error"}}), 0);
        assert_eq!(pod_status_reason(&p), "Init:Error");
        let p = with_state(json!({"terminated": {"exitCode": 3}}), 0);
        assert_eq!(pod_status_reason(&p), "Init:ExitCode:3");
        let p = with_state(json!({"terminated": {"exitCode": 137, "signal": 9}}), 0);
        assert_eq!(pod_status_reason(&p), "Init:Signal:9");
        let p = with_state(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 4);
        assert_eq!(pod_status_reason(&p), "Init:CrashLoopBackOff");
        assert_eq!(summarize(&p).restarts, 4);
    }

    #[test]
    fn completed_and_failed_app_containers() {
        let with_states = |phase: &str, a: serde_json::Value, b: serde_json::Value, ready: bool| {
            pod(json!({
                "metadata": {"name": "web"},
                "spec": {"containers": two_containers()},
                "status": {"phase": phase,
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "containerStatuses": [
                    {"name": "a", "ready": a.get("running").is_some(), "restartCount": 1, "image": "", "imageID": "", "state": a},
                    {"name": "b", "ready": b.get("running").is_some(), "restartCount": 2, "image": "", "imageID": "", "state": b}
                ]}
            }))
        };
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let running = json!({"running": {}});

        let p = with_states("Succeeded", done.clone(), done.clone(), false);
        assert_eq!(pod_status_reason(&p), "Completed");
        assert_eq!(pod_ready(&p), (0, 2));
        assert_eq!(summarize(&p).restarts, 3);

        // One container completed, the other still running: "Running".
        let p = with_states("Running", running.clone(), done.clone(), true);
        assert_eq!(pod_status_reason(&p), "Running");
        assert_eq!(pod_ready(&p), (1, 2));
        let p = with_states("Running", running.clone(), done.clone(), false);
        assert_eq!(pod_status_reason(&p), "NotReady");

        let oom = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
        let p = with_states("Running", running.clone(), oom, true);
        assert_eq!(pod_status_reason(&p), "OOMKilled");

        // The first container in spec order wins (containers are walked in
        // reverse).
        let crash = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let err = json!({"terminated": {"exitCode": 2, "reason": "Error"}});
        let p = with_states("Running", crash, err, false);
        assert_eq!(pod_status_reason(&p), "CrashLoopBackOff");

        let p = with_states(
            "Failed",
            json!({"terminated": {"exitCode": 2}}),
            running,
            false,
        );
        assert_eq!(pod_status_reason(&p), "ExitCode:2");
        let p = with_states(
            "Failed",
            json!({"terminated": {"exitCode": 143, "signal": 15}}),
            done,
            false,
        );
        assert_eq!(pod_status_reason(&p), "Signal:15");
    }

    #[test]
    fn terminating() {
        let p = pod(json!({
            "metadata": {"name": "web", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}}
            ]}
        }));
        assert_eq!(pod_status_reason(&p), "Terminating");
        // A finished pod being deleted keeps its terminal status.
        let p = pod(json!({
            "metadata": {"name": "web", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "web", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
            ]}
        }));
        assert_eq!(pod_status_reason(&p), "Completed");
    }

    #[test]
    fn sidecars_count_as_containers() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {
                "initContainers": [
                    {"name": "init", "image": "x"},
                    {"name": "log", "image": "x", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "web", "image": "x"}]
            },
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [
                {"name": "init", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "log", "ready": true, "started": true, "restartCount": 1, "image": "", "imageID": "",
                 "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:00Z"}}}
            ], "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}}
            ]}
        }));
        let s = summarize(&p);
        assert_eq!(s.reason, "Running");
        assert_eq!((s.ready, s.total), (2, 2));
        assert_eq!(s.restarts, 1);
        let now = match DateTime::parse_from_rfc3339("2024-01-01T00:02:05Z") {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(s.restarts_column(now), "1 (2m5s ago)");
    }

    #[test]
    fn status_reason_and_scheduling_gate() {
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Failed", "reason": "Evicted"}
        }));
        assert_eq!(pod_status_reason(&p), "Evicted");
        let p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
        }));
        assert_eq!(pod_status_reason(&p), "SchedulingGated");
    }
}
