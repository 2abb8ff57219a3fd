//! The pod worker: one task per pod that drives it to its desired state
//! through the runtime, the way kubelet's pod workers do: sandbox, init
//! containers one at a time to success, then app containers and sidecars;
//! status written back to the store; graceful termination on delete.
//!
//! After a daemon restart a worker adopts the running sandbox it finds (the
//! shim holds the truth about processes) instead of making a new one.

use crate::config::container_config;
use crate::node::{pod_key, Node};
use crate::status::{self, Observed};
use crate::volumes;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use peapod_runtime::cgroups::resources::pod_values;
use peapod_runtime::sandbox_run::SandboxCgroup;
use peapod_runtime::{RuntimeError, SandboxConfig};
use peapod_shim::ContainerStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a worker waits for news before looking again.
const RESYNC: Duration = Duration::from_secs(2);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

pub async fn run(node: Arc<Node>, ns: String, name: String, uid: String, notify: Arc<Notify>) {
    let mut obs = Observed {
        host_ip: Some(host_ip()),
        ..Default::default()
    };
    loop {
        let pod = match node.get_pod(&ns, &name) {
            Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid.as_str()) => p,
            Ok(_) => {
                // Gone (or replaced by a pod of the same name): clean up.
                let rt = node.runtime.clone();
                let u = uid.clone();
                blocking(move || rt.remove_sandbox(&u)).await;
                node.events.forget(&uid);
                return;
            }
            Err(e) => {
                tracing::error!(pod = %name, "store: {e}");
                tokio::time::sleep(RESYNC).await;
                continue;
            }
        };
        if pod.metadata.deletion_timestamp.is_some() {
            obs.terminating = true;
            terminate(&node, &pod, &mut obs).await;
            if let Err(e) = node.store.delete("pods", &pod_key(&ns, &name)) {
                tracing::error!(pod = %name, "store delete: {e}");
            }
            node.events.forget(&uid);
            return;
        }
        if obs.start_time.is_none() {
            // Keep the recorded start time when a restarted daemon adopts
            // the pod.
            obs.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(now),
            );
        }
        obs.progressed = false;
        sync(&node, &pod, &mut obs).await;
        write_status(&node, &pod, &obs);
        if obs.progressed {
            let rt = node.runtime.clone();
            let u = uid.clone();
            if let Some(Ok(s)) = blocking(move || rt.sandbox_state(&u)).await {
                obs.state = Some(s);
            }
            continue;
        }

        let generation = obs.state.as_ref().map(|s| s.generation);
        let rt = node.runtime.clone();
        let u = uid.clone();
        tokio::select! {
            _ = notify.notified() => {}
            r = async move {
                match generation {
                    Some(g) => blocking(move || rt.wait_change(&u, g, RESYNC)).await,
                    None => { tokio::time::sleep(RESYNC).await; None }
                }
            } => {
                match r {
                    Some(Ok(s)) => obs.state = Some(s),
                    Some(Err(_)) => obs.state = None,
                    None => {}
                }
            }
        }
    }
}

fn now() -> String {
    crate::time::now_string()
}

fn host_ip() -> String {
    "127.0.0.1".into()
}

/// Keep a condition's lastTransitionTime while its status stays the same.
fn keep_transition_times(new: &mut PodStatus, old: Option<&PodStatus>) {
    let Some(old) = old.and_then(|o| o.conditions.as_ref()) else {
        return;
    };
    for c in new.conditions.iter_mut().flatten() {
        if let Some(o) = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

fn write_status(node: &Node, pod: &Pod, obs: &Observed) {
    let mut st = status::compute(pod, obs);
    keep_transition_times(&mut st, pod.status.as_ref());
    if pod.status.as_ref() == Some(&st) {
        return;
    }
    // A compare-and-swap on the stored pod: a concurrent delete request is
    // kept, a pod that replaced this one is left alone.
    let ns = crate::node::namespace_of(&pod.metadata);
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if let Err(e) = node.update_pod_status(&ns, name, uid, st) {
        tracing::error!(pod = %name, "status write: {e}");
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn sandbox_config(pod: &Pod) -> SandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let app: Vec<_> = spec
        .containers
        .iter()
        .map(crate::config::requested)
        .collect();
    let init: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .map(crate::config::requested)
        .collect();
    let v = pod_values(&app, &init, None);
    let name = pod.metadata.name.clone().unwrap_or_default();
    SandboxConfig {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        name: name.clone(),
        namespace: crate::node::namespace_of(&pod.metadata),
        hostname: name,
        host_network: spec.host_network.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        cgroup: SandboxCgroup {
            cpu_shares: v.cpu_shares,
            cpu_quota: v.cpu_quota,
            memory_limit: v.memory_limit,
        },
    }
}

/// One step toward the desired state. Errors become waiting reasons and
/// events; the next step retries.
async fn sync(node: &Arc<Node>, pod: &Pod, obs: &mut Observed) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = pod.spec.clone() else { return };
    let all: Vec<Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .cloned()
        .collect();

    // Adopt or make the sandbox.
    if obs.state.is_none() {
        let rt = node.runtime.clone();
        let u = uid.clone();
        if let Some(Ok(state)) = blocking(move || rt.sandbox_state(&u)).await {
            obs.state = Some(state);
        }
    }
    if let Some(st) = &obs.state {
        if st.infra_exit.is_some() {
            node.events.record(
                pod,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            );
            let rt = node.runtime.clone();
            let u = uid.clone();
            blocking(move || rt.remove_sandbox(&u)).await;
            obs.state = None;
        }
    }
    if obs.state.is_none() {
        // Images, per imagePullPolicy (pulls with the pod's pull secrets).
        let creds = crate::image_pull::pull_credentials(node, pod);
        let mut missing = false;
        for c in &all {
            let image = c.image.clone().unwrap_or_default();
            match crate::image_pull::ensure(node, pod, c, &creds, &mut obs.pull_backoff).await {
                crate::image_pull::Ensured::Present(rec) => {
                    obs.image_ids
                        .insert(c.name.clone(), format!("{}@{}", rec.name, rec.digest));
                    if obs
                        .waiting
                        .get(&c.name)
                        .map(|w| w.0.contains("Image"))
                        .unwrap_or(false)
                    {
                        obs.waiting.remove(&c.name);
                    }
                    if !obs.pulled_noted.contains(&c.name) {
                        obs.pulled_noted.insert(c.name.clone());
                        node.events.record(
                            pod,
                            "Normal",
                            "Pulled",
                            format!("Container image \"{image}\" already present on machine"),
                        );
                    }
                }
                crate::image_pull::Ensured::Waiting(reason, msg) => {
                    missing = true;
                    if reason == "ErrImageNeverPull"
                        && obs.waiting.get(&c.name).map(|w| w.0.as_str())
                            != Some("ErrImageNeverPull")
                    {
                        node.events
                            .record(pod, "Warning", "ErrImageNeverPull", msg.clone());
                    }
                    obs.waiting.insert(c.name.clone(), (reason, msg));
                }
            }
        }
        if missing {
            return;
        }
        let rt = node.runtime.clone();
        let cfg = sandbox_config(pod);
        let u = uid.clone();
        let leftovers = rt.paths.sandbox_state(&u).exists() || rt.paths.sandbox_data(&u).exists();
        if leftovers {
            let rt2 = rt.clone();
            let u2 = u.clone();
            blocking(move || rt2.remove_sandbox(&u2)).await;
        }
        let t0 = std::time::Instant::now();
        let res = blocking(move || rt.run_sandbox(&cfg).and_then(|_| rt.sandbox_state(&u))).await;
        tracing::debug!(pod = ?pod.metadata.name, elapsed = ?t0.elapsed(), "run sandbox");
        match res {
            Some(Ok(state)) => {
                obs.state = Some(state);
                obs.volumes = None;
            }
            Some(Err(e)) => {
                node.events.record(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                return;
            }
            None => return,
        }
    }

    // Volumes, once per sandbox (they live in its data directory).
    let prepared = match obs.volumes.clone() {
        Some(v) => v,
        None => {
            let rt = node.runtime.clone();
            let p = pod.clone();
            let u = uid.clone();
            match blocking(move || volumes::prepare(&p, &rt.paths.volumes_dir(&u))).await {
                Some(Ok(v)) => {
                    obs.volumes = Some(v.clone());
                    v
                }
                Some(Err(e)) => {
                    for c in &all {
                        obs.waiting.insert(
                            c.name.clone(),
                            ("CreateContainerConfigError".into(), e.to_string()),
                        );
                    }
                    node.events
                        .record(pod, "Warning", "FailedMount", e.to_string());
                    return;
                }
                None => return,
            }
        }
    };

    // Init containers, one at a time; sidecars start and stay.
    let inits = spec.init_containers.clone().unwrap_or_default();
    for (i, c) in inits.iter().enumerate() {
        let field = format!("spec.initContainers[{i}]");
        let st = obs
            .state
            .as_ref()
            .and_then(|s| s.containers.get(&c.name))
            .map(|c| (c.status, c.exit.as_ref().map(|e| e.code)));
        match st {
            None | Some((ContainerStatus::Created, _)) => {
                if !start(node, pod, c, &field, &prepared, obs).await || !is_sidecar(c) {
                    return;
                }
            }
            Some((ContainerStatus::Running, _)) if is_sidecar(c) => {}
            Some((ContainerStatus::Running, _)) => return,
            Some((ContainerStatus::Exited, Some(0))) => {}
            Some((ContainerStatus::Exited, _)) if is_sidecar(c) => {}
            Some((ContainerStatus::Exited, _)) => return,
        }
    }
    let mut to_start = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let st = obs
            .state
            .as_ref()
            .and_then(|s| s.containers.get(&c.name))
            .map(|c| c.status);
        if matches!(st, None | Some(ContainerStatus::Created)) {
            to_start.push((c, format!("spec.containers[{i}]")));
        }
    }
    if !to_start.is_empty() {
        start_many(node, pod, &to_start, &prepared, obs).await;
    }
}

/// Create (if needed) and start one container; false on failure.
async fn start(
    node: &Arc<Node>,
    pod: &Pod,
    c: &Container,
    field: &str,
    prepared: &volumes::Prepared,
    obs: &mut Observed,
) -> bool {
    start_many(node, pod, &[(c, field.to_string())], prepared, obs).await
}

/// Create (if needed) and start containers concurrently (each is a few
/// helper runs and an overlay mount); true when all started.
async fn start_many(
    node: &Arc<Node>,
    pod: &Pod,
    items: &[(&Container, String)],
    prepared: &volumes::Prepared,
    obs: &mut Observed,
) -> bool {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut all_ok = true;
    let mut tasks = Vec::new();
    for (c, field) in items {
        let mounts = match volumes::container_mounts(c, prepared, field) {
            Ok(m) => m,
            Err(e) => {
                obs.waiting.insert(
                    c.name.clone(),
                    ("CreateContainerConfigError".into(), e.to_string()),
                );
                node.events
                    .record(pod, "Warning", "Failed", format!("Error: {e}"));
                all_ok = false;
                continue;
            }
        };
        let cfg = container_config(pod, c, mounts);
        let exists = obs
            .state
            .as_ref()
            .map(|s| s.containers.contains_key(&c.name))
            .unwrap_or(false);
        let rt = node.runtime.clone();
        let u = uid.clone();
        let name = c.name.clone();
        let t0 = std::time::Instant::now();
        let task = tokio::task::spawn_blocking(move || -> Result<bool, RuntimeError> {
            let created = if exists {
                false
            } else {
                rt.create_container(&u, &cfg)?;
                true
            };
            rt.start_container(&u, &name)?;
            Ok(created)
        });
        tasks.push(((*c).clone(), t0, task));
    }
    for (c, t0, task) in tasks {
        let res = task.await;
        tracing::debug!(pod = ?pod.metadata.name, container = %c.name, elapsed = ?t0.elapsed(), "create+start container");
        match res {
            Ok(Ok(created)) => {
                if created {
                    node.events.record(
                        pod,
                        "Normal",
                        "Created",
                        format!("Created container {}", c.name),
                    );
                }
                node.events.record(
                    pod,
                    "Normal",
                    "Started",
                    format!("Started container {}", c.name),
                );
                obs.waiting.remove(&c.name);
                obs.progressed = true;
            }
            Ok(Err(e)) => {
                all_ok = false;
                let reason = match e {
                    RuntimeError::ContainerConfig { .. } => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                obs.waiting
                    .insert(c.name.clone(), (reason.into(), e.to_string()));
                node.events
                    .record(pod, "Warning", "Failed", format!("Error: {e}"));
                // A half-made container is removed so the next try starts clean.
                let rt = node.runtime.clone();
                let name = c.name.clone();
                let u = uid.clone();
                blocking(move || {
                    if let Ok(s) = rt.sandbox_state(&u) {
                        if s.containers
                            .get(&name)
                            .map(|c| c.status == ContainerStatus::Created)
                            .unwrap_or(false)
                        {
                            let _ = rt.remove_container(&u, &name);
                        }
                    }
                })
                .await;
            }
            Err(_) => all_ok = false,
        }
    }
    let rt = node.runtime.clone();
    if let Some(Ok(s)) = blocking(move || rt.sandbox_state(&uid)).await {
        obs.state = Some(s);
    }
    all_ok
}

/// Graceful termination: SIGTERM to every container, SIGKILL after the
/// grace period, then the sandbox and everything it made is removed.
async fn terminate(node: &Arc<Node>, pod: &Pod, obs: &mut Observed) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0) as u64;
    let names: Vec<String> = obs
        .state
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter(|(_, c)| c.status != ContainerStatus::Exited)
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for n in names {
        node.events
            .record(pod, "Normal", "Killing", format!("Stopping container {n}"));
        let rt = node.runtime.clone();
        let u = uid.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            rt.stop_container(&u, &n, Duration::from_secs(grace))
        }));
    }
    for t in tasks {
        if let Ok(Err(e)) = t.await {
            tracing::warn!(%uid, "stop: {e}");
        }
    }
    let rt = node.runtime.clone();
    let u = uid.clone();
    if let Some(Err(e)) =
        blocking(move || rt.stop_sandbox(&u).and_then(|_| rt.remove_sandbox(&u))).await
    {
        tracing::error!(%uid, "remove sandbox: {e}");
    }
}
