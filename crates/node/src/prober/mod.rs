//! Probes (liveness, readiness, startup), as kubelet's prober manager:
//! one worker task per probe of each running container (`worker` holds the
//! pure counting rules), results kept by container id, and the pod worker
//! woken whenever a published result changes.
//!
//! Handlers: `exec` through the runtime's ExecSync with the probe's
//! timeout; `httpGet`, `tcpSocket` and `grpc` (grpc.health.v1
//! Health/Check) connect from the host to the pod's IP as kubelet does
//! (`handler::PodNet`). HTTPS is not supported yet (apply warns).
//!
//! Results live in the daemon: after a daemon restart, the pod worker
//! seeds readiness and startup from the pod's stored status for the same
//! container, so a Ready pod does not flap to unready.

pub mod grpc;
pub mod handler;
pub mod http;
pub mod netns;
pub mod tcp;
pub mod worker;

use crate::node::Node;
use crate::pod_actions::PodView;
use handler::{Handler, Outcome, Target};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};
use peapod_runtime::ContainerState;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
pub use worker::{Counter, ProbeResult, ProbeType, Tick, Timing};

type Results = Arc<Mutex<HashMap<(String, ProbeType), ProbeResult>>>;

/// Published probe results of a pod's containers, by container id.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    results: HashMap<(String, ProbeType), ProbeResult>,
}

impl Snapshot {
    /// Set a result (for tables of status cases).
    pub fn set(&mut self, cid: &str, t: ProbeType, r: ProbeResult) {
        self.results.insert((cid.to_string(), t), r);
    }

    fn get(&self, cid: &str, t: ProbeType) -> Option<ProbeResult> {
        self.results.get(&(cid.to_string(), t)).copied()
    }

    /// kubelet's `started`: a running container without a startup probe
    /// has started; with one, once that probe succeeded.
    pub fn started(&self, c: &Container, cid: &str) -> bool {
        !has(&c.startup_probe) || self.get(cid, ProbeType::Startup) == Some(ProbeResult::Success)
    }

    /// kubelet's `ready`: started, and its readiness probe (if any)
    /// succeeded.
    pub fn ready(&self, c: &Container, cid: &str) -> bool {
        self.started(c, cid)
            && (!has(&c.readiness_probe)
                || self.get(cid, ProbeType::Readiness) == Some(ProbeResult::Success))
    }

    /// A liveness or startup failure: the container is to be killed
    /// (message as kubelet's, without ", will be restarted").
    pub fn failed(&self, name: &str, cid: &str) -> Option<(ProbeType, String)> {
        for t in [ProbeType::Liveness, ProbeType::Startup] {
            if self.get(cid, t) == Some(ProbeResult::Failure) {
                return Some((t, format!("Container {name} failed {} probe", t.lower())));
            }
        }
        None
    }
}

fn has(p: &Option<Probe>) -> bool {
    p.is_some()
}

fn probes(c: &Container) -> impl Iterator<Item = (ProbeType, &Probe)> {
    [
        (ProbeType::Liveness, c.liveness_probe.as_ref()),
        (ProbeType::Readiness, c.readiness_probe.as_ref()),
        (ProbeType::Startup, c.startup_probe.as_ref()),
    ]
    .into_iter()
    .filter_map(|(t, p)| Some((t, p?)))
}

/// Containers that run beside others and may have probes: app containers
/// and sidecars (init containers with restartPolicy Always).
pub fn probed_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .chain(spec.containers.iter())
}

/// One pod's probe workers. Dropping it stops them.
pub struct PodProber {
    results: Results,
    tasks: HashMap<(String, ProbeType), tokio::task::JoinHandle<()>>,
    /// From the stored status: container id → (ready, started).
    seeds: HashMap<String, (bool, bool)>,
}

impl Drop for PodProber {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

impl PodProber {
    /// A prober for `pod`; readiness and startup results are seeded from
    /// its stored status (a daemon restart picks up where it was).
    pub fn new(pod: &Pod) -> PodProber {
        let mut seeds = HashMap::new();
        let st = pod.status.as_ref();
        for s in st
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .chain(
                st.and_then(|s| s.init_container_statuses.as_ref())
                    .into_iter()
                    .flatten(),
            )
        {
            if let Some(id) = s
                .container_id
                .as_deref()
                .and_then(|i| i.strip_prefix("peapod://"))
            {
                seeds.insert(id.to_string(), (s.ready, s.started.unwrap_or(false)));
            }
        }
        PodProber {
            results: Arc::default(),
            tasks: HashMap::new(),
            seeds,
        }
    }

    /// Start probe workers for the running containers of the current
    /// sandbox, stop those of containers that are gone, drop their
    /// results; returns the results and marks, in `view.unstarted`, the
    /// running containers whose startup probe has not passed.
    pub fn sync(
        &mut self,
        node: &Arc<Node>,
        pod: &Pod,
        view: &mut PodView,
        notify: &Arc<Notify>,
    ) -> Snapshot {
        let Some(spec) = pod.spec.as_ref() else {
            return Snapshot::default();
        };
        let net = handler::PodNet::of(view.current_sandbox());
        let mut live: BTreeSet<(String, ProbeType)> = BTreeSet::new();
        for c in probed_containers(spec) {
            let Some(s) = view.current(&c.name) else {
                continue;
            };
            if s.state != ContainerState::Running {
                continue;
            }
            for (t, p) in probes(c) {
                let key = (s.id.clone(), t);
                live.insert(key.clone());
                if self.tasks.contains_key(&key) {
                    continue;
                }
                let seed = self.seeds.get(&s.id).and_then(|(ready, started)| match t {
                    ProbeType::Readiness if *ready => Some(ProbeResult::Success),
                    ProbeType::Startup if *started => Some(ProbeResult::Success),
                    _ => None,
                });
                let counter = Counter::new(t, Timing::of(p), seed);
                if let Some(r) = counter.published {
                    if let Ok(mut m) = self.results.lock() {
                        m.insert(key.clone(), r);
                    }
                }
                let task = ProbeTask {
                    node: node.clone(),
                    pod: pod.clone(),
                    container: c.clone(),
                    handler: Handler::of_probe(p, c),
                    target: Target {
                        runtime: node.runtime.clone(),
                        container_id: s.id.clone(),
                        net: net.clone(),
                    },
                    started_at: s
                        .started_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .unwrap_or_else(chrono::Utc::now),
                    results: self.results.clone(),
                    notify: notify.clone(),
                };
                self.tasks.insert(key, tokio::spawn(task.run(counter)));
            }
        }
        self.tasks.retain(|k, t| {
            let keep = live.contains(k);
            if !keep {
                t.abort();
            }
            keep
        });
        let snapshot = match self.results.lock() {
            Ok(mut m) => {
                // Results of containers that no longer run are dropped,
                // as kubelet removes them with the container's worker.
                m.retain(|k, _| live.contains(k));
                Snapshot { results: m.clone() }
            }
            Err(_) => Snapshot::default(),
        };
        view.unstarted = probed_containers(spec)
            .filter_map(|c| {
                let s = view.current(&c.name)?;
                (s.state == ContainerState::Running && !snapshot.started(c, &s.id))
                    .then(|| c.name.clone())
            })
            .collect();
        snapshot
    }
}

struct ProbeTask {
    node: Arc<Node>,
    pod: Pod,
    container: Container,
    handler: Option<Result<Handler, String>>,
    target: Target,
    started_at: chrono::DateTime<chrono::Utc>,
    results: Results,
    notify: Arc<Notify>,
}

impl ProbeTask {
    fn published(&self, t: ProbeType) -> Option<ProbeResult> {
        self.results
            .lock()
            .ok()
            .and_then(|m| m.get(&(self.target.container_id.clone(), t)).copied())
    }

    /// kubelet's worker loop: probe at once, then every period.
    async fn run(self, mut counter: Counter) {
        let t = counter.probe;
        let mut ticker = tokio::time::interval(counter.timing.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let started = !has(&self.container.startup_probe)
                || self.published(ProbeType::Startup) == Some(ProbeResult::Success);
            let running_for = (chrono::Utc::now() - self.started_at)
                .to_std()
                .unwrap_or_default();
            match counter.tick(running_for, started) {
                Tick::Stop => return,
                Tick::Wait => continue,
                Tick::Probe => {}
            }
            let outcome = match &self.handler {
                None => return,
                Some(Err(e)) => Outcome::Error(e.clone()),
                Some(Ok(h)) => {
                    let (h, target, timeout) =
                        (h.clone(), self.target.clone(), counter.timing.timeout);
                    tokio::task::spawn_blocking(move || h.run(&target, Some(timeout)))
                        .await
                        .unwrap_or_else(|e| Outcome::Error(e.to_string()))
                }
            };
            let result = match outcome {
                Outcome::Success(_) => ProbeResult::Success,
                Outcome::Failure(out) => {
                    self.node.events.record(
                        &self.pod,
                        "Warning",
                        "Unhealthy",
                        format!("{} probe failed: {}", t.title(), out.trim_end()),
                    );
                    ProbeResult::Failure
                }
                Outcome::Error(e) => {
                    // Not counted, as kubelet's probe errors.
                    self.node.events.record(
                        &self.pod,
                        "Warning",
                        "Unhealthy",
                        format!("{} probe errored: {e}", t.title()),
                    );
                    continue;
                }
            };
            if counter.observe(result) {
                if let Ok(mut m) = self.results.lock() {
                    m.insert((self.target.container_id.clone(), t), result);
                }
                self.notify.notify_one();
            }
        }
    }
}
