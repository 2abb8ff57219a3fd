//! What a pod worker does next, decided by a pure function from the pod's
//! spec and what the runtime reports, the way kubelet's
//! `computePodActions` decides: kill the pod, (re)create its sandbox,
//! start the next init container or the app containers, restart exited
//! ones per `restartPolicy` with back-off, stop sidecars once the app
//! containers are done. The worker (`worker.rs`) carries the actions out.
//!
//! Only an observed dead sandbox (`NotReady`) recreates a pod; the caller
//! passes nothing else that could.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use peapod_runtime::{ContainerState, ContainerStatus, PodSandboxStatus, SandboxState};
use std::time::Duration;

/// Back-off of restarts: 10 s doubling to 5 min, as kubelet's.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting restarts without delay.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// What the runtime holds for one pod.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    /// Oldest first.
    pub sandboxes: Vec<PodSandboxStatus>,
    /// Every attempt of every container, in every sandbox of the pod.
    pub containers: Vec<ContainerStatus>,
    /// Running containers whose startup probe has not passed yet (from
    /// the prober): a sidecar among them holds back the next init
    /// container.
    pub unstarted: std::collections::BTreeSet<String>,
}

impl PodView {
    pub fn current_sandbox(&self) -> Option<&PodSandboxStatus> {
        self.sandboxes.last()
    }

    /// The latest attempt of container `name`, in any sandbox.
    pub fn latest(&self, name: &str) -> Option<&ContainerStatus> {
        self.containers
            .iter()
            .filter(|c| c.metadata.name == name)
            .max_by(peapod_runtime::by_attempt)
    }

    /// The latest attempt of `name` in the current sandbox.
    pub fn current(&self, name: &str) -> Option<&ContainerStatus> {
        let sid = &self.current_sandbox()?.id;
        self.latest(name).filter(|c| &c.sandbox_id == sid)
    }

    /// The attempt before the latest (its end is `lastState`).
    pub fn previous(&self, name: &str) -> Option<&ContainerStatus> {
        let latest = self.latest(name)?;
        self.containers
            .iter()
            .filter(|c| c.metadata.name == name && c.metadata.attempt < latest.metadata.attempt)
            .max_by_key(|c| c.metadata.attempt)
    }

    /// The attempt number for a new run of `name`.
    pub fn next_attempt(&self, name: &str) -> u32 {
        self.latest(name)
            .map(|c| c.metadata.attempt + 1)
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    App,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub kind: Kind,
    /// Index in `initContainers` or `containers`.
    pub index: usize,
    pub name: String,
    pub attempt: u32,
    /// The container's latest attempt in the current sandbox is only
    /// `Created` (made ahead of its turn, or a start that failed
    /// half-way): its id. The worker starts it if it made it itself with
    /// the config the container would get now; otherwise it removes it
    /// and makes `attempt`.
    pub created: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop everything of the pod (its sandbox is dead and will not be
    /// recreated, or is being replaced).
    pub kill_pod: bool,
    /// Make a new sandbox with this attempt number.
    pub create_sandbox: Option<u32>,
    pub start: Vec<Start>,
    /// Containers to stop: (container id, name, why).
    pub kill: Vec<(String, String, String)>,
    /// Containers waiting out a restart back-off: (name, message, until).
    pub backoff: Vec<(String, String, DateTime<Utc>)>,
    /// Older sandboxes to remove (one stopped sandbox is kept for the
    /// statuses of its containers).
    pub remove_sandboxes: Vec<String>,
    /// Containers made ahead of their turn that will never start now (the
    /// pod failed): removed, so they show as never made.
    pub remove: Vec<String>,
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn ts(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// When an exited container may restart: kubelet restarts the first time
/// at once, then waits 10 s, 20 s, ... up to 5 min after the last exit; a
/// run of 10 min or more resets the back-off.
pub fn restart_not_before(c: &ContainerStatus) -> Option<DateTime<Utc>> {
    let finished = ts(c.finished_at.as_deref())?;
    if let Some(started) = ts(c.started_at.as_deref()) {
        if (finished - started).to_std().unwrap_or_default() >= BACKOFF_RESET {
            return None;
        }
    }
    if c.metadata.attempt == 0 {
        return None;
    }
    let shift = (c.metadata.attempt - 1).min(10);
    let delay = (BACKOFF_INITIAL * 2u32.pow(shift)).min(BACKOFF_MAX);
    Some(finished + chrono::Duration::from_std(delay).unwrap_or_default())
}

/// Whether an exited app container is restarted under `policy`.
fn should_restart(policy: &str, c: &ContainerStatus) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => c.exit_code != Some(0),
        _ => true,
    }
}

fn terminal(c: &ContainerStatus) -> bool {
    matches!(c.state, ContainerState::Exited | ContainerState::Unknown)
}

/// Decide the pod's next actions. `now` is passed in so tables of cases
/// can test back-off.
pub fn compute(spec: &PodSpec, view: &PodView, now: DateTime<Utc>) -> PodActions {
    let mut a = PodActions::default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let inits = spec.init_containers.as_deref().unwrap_or_default();

    // Sandboxes older than the current one and the last stopped one go.
    let n = view.sandboxes.len();
    if n > 2 {
        a.remove_sandboxes = view.sandboxes[..n - 2]
            .iter()
            .map(|s| s.id.clone())
            .collect();
    }

    let ready = view
        .current_sandbox()
        .is_some_and(|s| s.state == SandboxState::Ready);
    if !ready {
        let previous = view.current_sandbox();
        if let Some(prev) = previous {
            // The old sandbox is dead: stop what is left of it.
            a.kill_pod = true;
            // kubelet: a Never pod whose containers already ran is over;
            // its sandbox is not recreated.
            if policy == "Never" && !view.containers.is_empty() {
                return a;
            }
            a.create_sandbox = Some(prev.metadata.attempt + 1);
        } else {
            a.create_sandbox = Some(0);
        }
        return a;
    }

    let restart_or_wait =
        |a: &mut PodActions, kind, index, c: &Container, cur: &ContainerStatus| {
            match restart_not_before(cur) {
                Some(t) if t > now => a.backoff.push((
                    c.name.clone(),
                    format!(
                        "back-off {}s restarting failed container={}",
                        (t - cur_finished(cur).unwrap_or(now)).num_seconds().max(0),
                        c.name
                    ),
                    t,
                )),
                _ => a.start.push(Start {
                    kind,
                    index,
                    name: c.name.clone(),
                    attempt: view.next_attempt(&c.name),
                    created: None,
                }),
            }
        };

    // Init containers, in order; sidecars keep running beside the rest.
    for (i, c) in inits.iter().enumerate() {
        let cur = view.current(&c.name);
        let new = |created: Option<&ContainerStatus>| Start {
            kind: Kind::Init,
            index: i,
            name: c.name.clone(),
            attempt: view.next_attempt(&c.name),
            created: created.map(|s| s.id.clone()),
        };
        match cur {
            None => {
                a.start.push(new(None));
                return a;
            }
            Some(s) if s.state == ContainerState::Created => {
                a.start.push(new(Some(s)));
                return a;
            }
            Some(s) if s.state == ContainerState::Running => {
                if is_sidecar(c) && !view.unstarted.contains(&c.name) {
                    continue;
                }
                return a;
            }
            Some(s) => {
                // Exited (or Unknown).
                if is_sidecar(c) {
                    restart_or_wait(&mut a, Kind::Init, i, c, s);
                    continue;
                }
                if s.exit_code == Some(0) {
                    continue;
                }
                if policy == "Never" {
                    // The pod has failed: stop what still runs.
                    kill_running(&mut a, view, "init container failed");
                    return a;
                }
                restart_or_wait(&mut a, Kind::Init, i, c, s);
                return a;
            }
        }
    }

    // App containers.
    let mut all_done = true;
    for (i, c) in spec.containers.iter().enumerate() {
        match view.current(&c.name) {
            None => {
                all_done = false;
                a.start.push(Start {
                    kind: Kind::App,
                    index: i,
                    name: c.name.clone(),
                    attempt: view.next_attempt(&c.name),
                    created: None,
                });
            }
            Some(s) if s.state == ContainerState::Created => {
                all_done = false;
                a.start.push(Start {
                    kind: Kind::App,
                    index: i,
                    name: c.name.clone(),
                    attempt: view.next_attempt(&c.name),
                    created: Some(s.id.clone()),
                });
            }
            Some(s) if s.state == ContainerState::Running => all_done = false,
            Some(s) => {
                if should_restart(policy, s) {
                    all_done = false;
                    restart_or_wait(&mut a, Kind::App, i, c, s);
                }
            }
        }
    }
    // A pod whose app containers are all done (and stay done) stops its
    // sidecars, so a Job-style pod completes.
    if all_done && !spec.containers.is_empty() {
        a.backoff
            .retain(|(name, _, _)| !inits.iter().any(|c| &c.name == name));
        a.start.retain(|s| s.kind == Kind::App);
        for c in inits.iter().filter(|c| is_sidecar(c)) {
            if let Some(s) = view.current(&c.name) {
                if !terminal(s) {
                    a.kill.push((
                        s.id.clone(),
                        c.name.clone(),
                        "the pod's containers completed".into(),
                    ));
                }
            }
        }
    }
    a
}

fn cur_finished(c: &ContainerStatus) -> Option<DateTime<Utc>> {
    ts(c.finished_at.as_deref())
}

fn kill_running(a: &mut PodActions, view: &PodView, why: &str) {
    let Some(sid) = view.current_sandbox().map(|s| s.id.clone()) else {
        return;
    };
    for c in &view.containers {
        if c.sandbox_id == sid && c.state == ContainerState::Created {
            a.remove.push(c.id.clone());
        } else if c.sandbox_id == sid && !terminal(c) {
            a.kill
                .push((c.id.clone(), c.metadata.name.clone(), why.to_string()));
        }
    }
}

/// Runtime statuses for tables of test cases (here and in `status`).
#[cfg(test)]
pub(crate) mod fixtures {
    use peapod_runtime::{
        ContainerMetadata, ContainerState, ContainerStatus, PodSandboxMetadata, PodSandboxStatus,
        SandboxState,
    };

    pub fn sandbox(id: &str, attempt: u32, ready: bool) -> PodSandboxStatus {
        PodSandboxStatus {
            id: id.into(),
            metadata: PodSandboxMetadata {
                attempt,
                ..Default::default()
            },
            state: if ready {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: format!("2024-01-01T00:00:0{attempt}Z"),
            labels: Default::default(),
            annotations: Default::default(),
            netns: None,
            cgroup_parent: String::new(),
            host_network: false,
            host_pid: false,
            host_ipc: false,
            share_process_namespace: false,
            shim_pid: None,
            infra_pid: None,
            not_ready_reason: None,
            network: None,
        }
    }

    /// A container status: `state` is "running", "created" or "exit:N".
    pub fn ctr(sid: &str, name: &str, attempt: u32, state: &str) -> ContainerStatus {
        let (st, code) = match state {
            "running" => (ContainerState::Running, None),
            "created" => (ContainerState::Created, None),
            s => (
                ContainerState::Exited,
                s.strip_prefix("exit:").and_then(|c| c.parse().ok()),
            ),
        };
        ContainerStatus {
            id: format!("{name}-{attempt}"),
            sandbox_id: sid.into(),
            metadata: ContainerMetadata {
                name: name.into(),
                attempt,
            },
            state: st,
            pid: None,
            created_at: format!("2024-01-01T00:01:0{attempt}Z"),
            started_at: Some("2024-01-01T00:02:00Z".into()),
            finished_at: code.map(|_| "2024-01-01T00:02:10Z".into()),
            exit_code: code,
            signal: None,
            reason: None,
            message: None,
            image: String::new(),
            image_ref: String::new(),
            log_path: Default::default(),
            labels: Default::default(),
            annotations: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{ctr, sandbox};
    use super::*;

    fn spec(yaml: &str) -> PodSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn starts(a: &PodActions) -> Vec<(String, u32)> {
        a.start
            .iter()
            .map(|s| (s.name.clone(), s.attempt))
            .collect()
    }

    const TWO: &str = "containers: [{name: a}, {name: b}]";
    const INIT: &str = "initContainers: [{name: i1}, {name: side, restartPolicy: Always}, {name: i2}]\ncontainers: [{name: a}]";

    #[test]
    fn table() {
        let now = at("2024-01-01T00:02:15Z");
        struct Case {
            what: &'static str,
            spec: &'static str,
            policy: Option<&'static str>,
            sandboxes: Vec<PodSandboxStatus>,
            containers: Vec<ContainerStatus>,
            create: Option<u32>,
            kill_pod: bool,
            start: Vec<(&'static str, u32)>,
            kill: Vec<&'static str>,
            backoff: Vec<&'static str>,
        }
        let s0 = || sandbox("s0", 0, true);
        let cases = vec![
            Case {
                what: "new pod: make a sandbox",
                spec: TWO,
                policy: None,
                sandboxes: vec![],
                containers: vec![],
                create: Some(0),
                kill_pod: false,
                start: vec![],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "sandbox ready: start every app container",
                spec: TWO,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![],
                create: None,
                kill_pod: false,
                start: vec![("a", 0), ("b", 0)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "running pod: nothing to do",
                spec: TWO,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "a", 0, "running"), ctr("s0", "b", 0, "running")],
                create: None,
                kill_pod: false,
                start: vec![],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "dead sandbox: recreate with the next attempt",
                spec: TWO,
                policy: None,
                sandboxes: vec![sandbox("s0", 0, false)],
                containers: vec![ctr("s0", "a", 0, "exit:137")],
                create: Some(1),
                kill_pod: true,
                start: vec![],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "dead sandbox, Never, containers ran: not recreated",
                spec: TWO,
                policy: Some("Never"),
                sandboxes: vec![sandbox("s0", 0, false)],
                containers: vec![ctr("s0", "a", 0, "exit:137")],
                create: None,
                kill_pod: true,
                start: vec![],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "new sandbox after a dead one: containers get the next attempt",
                spec: TWO,
                policy: None,
                sandboxes: vec![sandbox("s0", 0, false), sandbox("s1", 1, true)],
                containers: vec![ctr("s0", "a", 0, "exit:137"), ctr("s0", "b", 0, "exit:137")],
                create: None,
                kill_pod: false,
                start: vec![("a", 1), ("b", 1)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "first init container first",
                spec: INIT,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![],
                create: None,
                kill_pod: false,
                start: vec![("i1", 0)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "init running: wait",
                spec: INIT,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "i1", 0, "running")],
                create: None,
                kill_pod: false,
                start: vec![],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "init done: the sidecar next",
                spec: INIT,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "i1", 0, "exit:0")],
                create: None,
                kill_pod: false,
                start: vec![("side", 0)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "sidecar running: the next init starts beside it",
                spec: INIT,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![
                    ctr("s0", "i1", 0, "exit:0"),
                    ctr("s0", "side", 0, "running"),
                ],
                create: None,
                kill_pod: false,
                start: vec![("i2", 0)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "all inits done: app containers",
                spec: INIT,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![
                    ctr("s0", "i1", 0, "exit:0"),
                    ctr("s0", "side", 0, "running"),
                    ctr("s0", "i2", 0, "exit:0"),
                ],
                create: None,
                kill_pod: false,
                start: vec![("a", 0)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "failed init with Never: the pod fails, nothing more starts",
                spec: INIT,
                policy: Some("Never"),
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "i1", 0, "exit:1")],
                create: None,
                kill_pod: false,
                start: vec![],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "failed init with Always: restarted at once the first time",
                spec: INIT,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "i1", 0, "exit:1")],
                create: None,
                kill_pod: false,
                start: vec![("i1", 1)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "second failure within 10 s: back-off",
                spec: TWO,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "a", 1, "exit:1"), ctr("s0", "b", 0, "running")],
                create: None,
                kill_pod: false,
                start: vec![],
                kill: vec![],
                backoff: vec!["a"],
            },
            Case {
                what: "OnFailure: a zero exit stays done",
                spec: TWO,
                policy: Some("OnFailure"),
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "a", 0, "exit:0"), ctr("s0", "b", 0, "exit:2")],
                create: None,
                kill_pod: false,
                start: vec![("b", 1)],
                kill: vec![],
                backoff: vec![],
            },
            Case {
                what: "Never with a sidecar: app done, the sidecar is stopped",
                spec:
                    "initContainers: [{name: side, restartPolicy: Always}]\ncontainers: [{name: a}]",
                policy: Some("Never"),
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "side", 0, "running"), ctr("s0", "a", 0, "exit:0")],
                create: None,
                kill_pod: false,
                start: vec![],
                kill: vec!["side"],
                backoff: vec![],
            },
            Case {
                what: "created but never started: a new attempt",
                spec: TWO,
                policy: None,
                sandboxes: vec![s0()],
                containers: vec![ctr("s0", "a", 0, "created"), ctr("s0", "b", 0, "running")],
                create: None,
                kill_pod: false,
                start: vec![("a", 1)],
                kill: vec![],
                backoff: vec![],
            },
        ];
        for c in cases {
            let mut sp = spec(c.spec);
            sp.restart_policy = c.policy.map(str::to_string);
            let view = PodView {
                sandboxes: c.sandboxes,
                containers: c.containers,
                ..Default::default()
            };
            let a = compute(&sp, &view, now);
            assert_eq!(a.create_sandbox, c.create, "{}: create", c.what);
            assert_eq!(a.kill_pod, c.kill_pod, "{}: kill_pod", c.what);
            let want: Vec<(String, u32)> =
                c.start.iter().map(|(n, a)| (n.to_string(), *a)).collect();
            assert_eq!(starts(&a), want, "{}: start", c.what);
            let kill: Vec<&str> = a.kill.iter().map(|k| k.1.as_str()).collect();
            assert_eq!(kill, c.kill, "{}: kill", c.what);
            let backoff: Vec<&str> = a.backoff.iter().map(|b| b.0.as_str()).collect();
            assert_eq!(backoff, c.backoff, "{}: backoff", c.what);
        }
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let mut c = ctr("s", "a", 1, "exit:1");
        let fin = at("2024-01-01T00:02:10Z");
        let delay = |c: &ContainerStatus| (restart_not_before(c).unwrap() - fin).num_seconds();
        assert_eq!(delay(&c), 10);
        c.metadata.attempt = 2;
        assert_eq!(delay(&c), 20);
        c.metadata.attempt = 6;
        assert_eq!(delay(&c), 300);
        c.metadata.attempt = 0;
        assert!(restart_not_before(&c).is_none(), "first restart is at once");
        c.metadata.attempt = 3;
        c.started_at = Some("2024-01-01T00:00:00Z".into());
        c.finished_at = Some("2024-01-01T00:20:00Z".into());
        assert!(restart_not_before(&c).is_none(), "a long run resets");
    }

    #[test]
    fn old_sandboxes_are_removed_but_the_last_stopped_one() {
        let view = PodView {
            sandboxes: vec![
                sandbox("s0", 0, false),
                sandbox("s1", 1, false),
                sandbox("s2", 2, true),
            ],
            ..Default::default()
        };
        let a = compute(&spec(TWO), &view, Utc::now());
        assert_eq!(a.remove_sandboxes, vec!["s0".to_string()]);
    }

    #[test]
    fn a_sidecar_gates_the_next_init_container_until_its_startup_probe_passed() {
        let mut view = PodView {
            sandboxes: vec![sandbox("s0", 0, true)],
            containers: vec![
                ctr("s0", "i1", 0, "exit:0"),
                ctr("s0", "side", 0, "running"),
            ],
            ..Default::default()
        };
        view.unstarted.insert("side".into());
        let now = Utc::now();
        assert_eq!(starts(&compute(&spec(INIT), &view, now)), vec![]);
        view.unstarted.clear();
        assert_eq!(
            starts(&compute(&spec(INIT), &view, now)),
            vec![("i2".to_string(), 0)]
        );
    }
}
