//! The pod worker: one task per pod that carries out what
//! [`pod_actions::compute`] decides, the way kubelet's pod workers do:
//! look at the runtime, decide, act, write the status, then wait for a
//! change (a shim's event, the shim's death seen through a pidfd, a
//! back-off expiring, a store change) or the periodic resync.
//!
//! Nothing here is cached that a fresh worker after a daemon restart would
//! lack: every pass reads the pod's sandboxes and containers from the
//! runtime, which reads them from disk.

use crate::config::{container_config, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::lifecycle::{self, Kill};
use crate::node::{pod_key, Node};
use crate::pod_actions::{self, Kind, PodActions, PodView};
use crate::prober::handler::PodNet;
use crate::prober::PodProber;
use crate::status::{self, Observed};
use crate::volumes;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use peapod_runtime::cgroups::resources::pod_values;
use peapod_runtime::{
    ContainerFilter, ContainerState, RuntimeError, SandboxCgroup, SandboxConfig, SandboxState,
    VolumeMount,
};
use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// How long a worker waits for news before looking again (kubelet's
/// `--sync-frequency` default). Changes arrive as events (shim datagrams,
/// the shim's pidfd, store writes, back-off timers); this only bounds how
/// stale a missed one can get, and keeps idle pods from costing CPU.
const RESYNC: Duration = Duration::from_secs(60);

/// How soon a step that failed is tried again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(2);

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The pod's sandboxes and their containers, from the runtime.
fn read_view(rt: &peapod_runtime::Runtime, sandbox_ids: &[String]) -> PodView {
    let mut view = PodView::default();
    for sid in sandbox_ids {
        if let Ok(s) = rt.pod_sandbox_status(sid) {
            view.containers.extend(rt.list_containers(&ContainerFilter {
                sandbox_id: Some(sid.clone()),
                ..Default::default()
            }));
            view.sandboxes.push(s);
        }
    }
    view.sandboxes.sort_by(peapod_runtime::by_attempt);
    view
}

/// A pidfd for `pid` (readable once the process exits).
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // the fd is owned here alone. Hand-written: nix 0.29 has no wrapper.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor from the kernel, owned by no one else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub async fn run(node: Arc<Node>, ns: String, name: String, uid: String, notify: Arc<Notify>) {
    let mut obs = Observed {
        host_ip: Some(host_ip()),
        ..Default::default()
    };
    // The pod's sandboxes: after a daemon restart the daemon found them
    // (one pass over the runtime for all pods); from then on the worker
    // tracks the ones it makes.
    let mut sandbox_ids = node.sandboxes_of(&uid);
    // The watched shim: (sandbox id, pid, pidfd).
    let mut watched: Option<(String, i32, AsyncFd<OwnedFd>)> = None;
    // The pod's probe workers (made on the first look at the pod, seeded
    // from its stored status).
    let mut prober: Option<PodProber> = None;
    loop {
        let pod = match node.get_pod(&ns, &name) {
            Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid.as_str()) => p,
            Ok(_) => {
                // Gone (or replaced by a pod of the same name): clean up.
                remove_all(&node, &ns, &name, &uid, &sandbox_ids).await;
                return;
            }
            Err(e) => {
                tracing::error!(pod = %name, "store: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let pr = prober.get_or_insert_with(|| {
            obs.failed = lifecycle::deadline_failure(&pod);
            PodProber::new(&pod)
        });
        look(&node, &pod, &sandbox_ids, pr, &notify, &mut obs).await;

        if pod.metadata.deletion_timestamp.is_some() {
            obs.terminating = true;
            let t0 = std::time::Instant::now();
            // Probes stop with the pod's termination.
            drop(prober.take());
            terminate(&node, &pod, &obs, &notify).await;
            let stopped = t0.elapsed();
            // The containers' ends are the pod's last status.
            let mut pr = PodProber::new(&pod);
            look(&node, &pod, &sandbox_ids, &mut pr, &notify, &mut obs).await;
            write_status(&node, &pod, &obs);
            remove_all(&node, &ns, &name, &uid, &sandbox_ids).await;
            if let Err(e) = node.store.delete("pods", &pod_key(&ns, &name)) {
                tracing::error!(pod = %name, "store delete: {e}");
            }
            tracing::debug!(pod = %name, ?stopped, removed = ?t0.elapsed(), "pod deleted");
            return;
        }
        if crate::admission::rejected(&pod) {
            // Rejected at admission: nothing is made for it; wait for its
            // deletion.
            notify.notified().await;
            continue;
        }
        if obs.start_time.is_none() {
            // Keep the recorded start time when a restarted daemon adopts
            // the pod.
            obs.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(|t| t.0.to_string())
                    .unwrap_or_else(crate::time::now_string),
            );
        }
        let Some(spec) = pod.spec.clone() else { return };
        let deadline = lifecycle::deadline_left(&spec, obs.start_time.as_deref());
        if obs.failed.is_none() && deadline == Some(Duration::ZERO) {
            deadline_exceeded(&node, &pod, &mut obs).await;
        }
        let mut actions = PodActions::default();
        let mut progressed = false;
        if obs.failed.is_none() {
            actions = pod_actions::compute(&spec, &obs.view, chrono::Utc::now());
            progressed = lifecycle::kill_unhealthy(&node, &pod, &obs.view, &obs.probes).await
                || execute(&node, &pod, &actions, &mut obs, &mut sandbox_ids).await;
        }
        let pr = prober.get_or_insert_with(|| PodProber::new(&pod));
        if progressed || obs.failed.is_some() {
            look(&node, &pod, &sandbox_ids, pr, &notify, &mut obs).await;
        }
        read_messages(&node, &pod, &mut obs).await;
        refresh_volumes(&node, &pod, &mut obs).await;
        write_status(&node, &pod, &obs);
        if progressed {
            continue;
        }

        // Watch the current sandbox's shim for death.
        let current = obs
            .view
            .current_sandbox()
            .filter(|s| s.state == SandboxState::Ready)
            .and_then(|s| s.shim_pid.map(|p| (s.id.clone(), p)));
        if current.as_ref().map(|(s, p)| (s, *p)) != watched.as_ref().map(|(s, p, _)| (s, *p)) {
            watched = current.and_then(|(sid, pid)| {
                let fd = pidfd_open(pid)?;
                // The pid was read from a file: it must still be that shim.
                (node.runtime.shim_pid(&sid) == Some(pid)).then_some(())?;
                // SAFETY: the OwnedFd is moved into the AsyncFd, which owns
                // it (and so keeps it open and unchanged) until dropped.
                let fd = unsafe { AsyncFd::register(fd) }.ok()?;
                Some((sid, pid, fd))
            });
        }
        let pull_retry = obs
            .pull_backoff
            .next_retry(std::time::Instant::now())
            .map(|t| t.saturating_duration_since(std::time::Instant::now()));
        // A failed step (sandbox, volume, container creation) is tried
        // again soon, as kubelet requeues a pod worker after an error; a
        // failed pull is looked at again soon too, to show
        // ImagePullBackOff while its back-off runs.
        let failed = obs.waiting.values().any(|(reason, _)| {
            matches!(
                reason.as_str(),
                "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "FailedCreatePodSandBox"
                    | "ErrImagePull"
            )
        }) || obs.sandbox_failed;
        let retry = failed.then_some(RETRY_AFTER_ERROR);
        let wait = actions
            .backoff
            .iter()
            .map(|(_, _, until)| (*until - chrono::Utc::now()).to_std().unwrap_or_default())
            .chain(pull_retry)
            .chain(retry)
            .chain(deadline.filter(|_| obs.failed.is_none()))
            .min()
            .map(|d| d + Duration::from_millis(50))
            .unwrap_or(RESYNC)
            .min(RESYNC);
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            r = async {
                match &watched {
                    Some((_, _, fd)) => fd.readable().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if r.is_ok() {
                    tracing::info!(pod = %name, "the pod's shim exited");
                }
                watched = None;
            }
        }
    }
}

/// Read the pod's sandboxes and containers from the runtime, and sync its
/// probe workers to them.
async fn look(
    node: &Arc<Node>,
    pod: &Pod,
    sandbox_ids: &[String],
    prober: &mut PodProber,
    notify: &Arc<Notify>,
    obs: &mut Observed,
) {
    let rt = node.runtime.clone();
    let ids = sandbox_ids.to_vec();
    obs.view = blocking(move || read_view(&rt, &ids))
        .await
        .unwrap_or_default();
    obs.probes = prober.sync(node, pod, &mut obs.view, notify);
}

/// activeDeadlineSeconds passed: the pod fails (`DeadlineExceeded`), its
/// containers are stopped gracefully and its sandbox stopped; nothing is
/// restarted any more.
async fn deadline_exceeded(node: &Arc<Node>, pod: &Pod, obs: &mut Observed) {
    let msg = lifecycle::DEADLINE_MESSAGE;
    node.events.record(pod, "Normal", "DeadlineExceeded", msg);
    obs.failed = Some(("DeadlineExceeded".into(), msg.into()));
    lifecycle::stop_pod(node, pod, &obs.view).await;
    if let Some(sid) = obs.view.current_sandbox().map(|s| s.id.clone()) {
        let rt = node.runtime.clone();
        if let Some(Err(e)) = blocking(move || rt.stop_pod_sandbox(&sid)).await {
            tracing::warn!(pod = ?pod.metadata.name, "stop sandbox: {e}");
        }
    }
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

fn sandbox_config(node: &Node, pod: &Pod, attempt: u32) -> SandboxConfig {
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
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let namespace = crate::node::namespace_of(&pod.metadata);
    let labels = BTreeMap::from([
        (LABEL_POD_UID.to_string(), uid.clone()),
        (LABEL_POD_NAME.to_string(), name.clone()),
        (LABEL_POD_NAMESPACE.to_string(), namespace.clone()),
    ]);
    let etc = crate::dns::pod_etc(node, pod);
    SandboxConfig {
        metadata: peapod_runtime::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: namespace.clone(),
            attempt,
        },
        hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
        labels,
        annotations: BTreeMap::new(),
        log_directory: node.pod_log_dir(&namespace, &name, &uid),
        cgroup_parent: format!("{}/pod{uid}", node.runtime.paths.cgroup_parent()),
        cgroup: SandboxCgroup {
            cpu_shares: v.cpu_shares,
            cpu_quota: v.cpu_quota,
            memory_limit: v.memory_limit,
        },
        host_network: spec.host_network.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        share_process_namespace: spec.share_process_namespace.unwrap_or(false),
        sysctls: spec
            .security_context
            .as_ref()
            .and_then(|s| s.sysctls.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name, s.value))
            .collect(),
        port_mappings: port_mappings(&spec),
        dns: etc.dns,
        host_aliases: etc.host_aliases,
        fqdn: etc.fqdn,
    }
}

/// The pod's hostPorts, for CNI's portmap (kubelet's MakePortMappings);
/// none with hostNetwork, where a container port is a host port already.
fn port_mappings(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<peapod_runtime::PortMapping> {
    if spec.host_network.unwrap_or(false) {
        return Vec::new();
    }
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| peapod_runtime::PortMapping {
            host_port: p.host_port.unwrap_or_default(),
            container_port: p.container_port,
            protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// Carry out `a`; true when something was made, started or stopped (look
/// again at once).
async fn execute(
    node: &Arc<Node>,
    pod: &Pod,
    a: &PodActions,
    obs: &mut Observed,
    sandbox_ids: &mut Vec<String>,
) -> bool {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut progressed = false;
    for sid in &a.remove_sandboxes {
        let rt = node.runtime.clone();
        let s = sid.clone();
        if let Some(Err(e)) = blocking(move || rt.remove_pod_sandbox(&s)).await {
            tracing::warn!(%uid, sandbox = %sid, "remove old sandbox: {e}");
        } else {
            sandbox_ids.retain(|x| x != sid);
            node.disown_sandbox(sid);
        }
    }
    if a.kill_pod {
        if let Some(cur) = obs.view.current_sandbox() {
            if a.create_sandbox.is_some() {
                node.events.record(
                    pod,
                    "Normal",
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                );
            }
            let rt = node.runtime.clone();
            let sid = cur.id.clone();
            // Kills what is left by cgroup and records the containers' ends.
            if let Some(Err(e)) = blocking(move || rt.stop_pod_sandbox(&sid)).await {
                tracing::warn!(%uid, "stop dead sandbox: {e}");
            }
        }
    }
    if let Some(attempt) = a.create_sandbox {
        if let Some(sid) = create_sandbox(node, pod, attempt, obs).await {
            sandbox_ids.push(sid.clone());
            node.own_sandbox(&sid, &uid);
            progressed = true;
        }
        return progressed;
    }
    let kills: Vec<Kill> = a
        .kill
        .iter()
        .map(|(cid, name, why)| Kill {
            cid: cid.clone(),
            name: name.clone(),
            message: format!("Stopping container {name}: {why}"),
            grace: lifecycle::grace_period(pod, None),
            after: Vec::new(),
        })
        .collect();
    for cid in &a.remove {
        obs.precreated.remove(cid);
        let rt = node.runtime.clone();
        let id = cid.clone();
        if let Some(Err(e)) = blocking(move || rt.remove_container(&id)).await {
            tracing::warn!(%uid, container = %cid, "remove unstarted container: {e}");
        }
        progressed = true;
    }
    if !kills.is_empty() {
        let net = PodNet::of(obs.view.current_sandbox());
        lifecycle::kill_all(node, pod, kills, net).await;
        progressed = true;
    }
    for (name, message, _) in &a.backoff {
        let pod_desc = format!(
            "{}_{}({uid})",
            pod.metadata.name.clone().unwrap_or_default(),
            crate::node::namespace_of(&pod.metadata)
        );
        let msg = format!("{message} pod={pod_desc}");
        if obs.waiting.get(name).map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
            node.events.record(
                pod,
                "Warning",
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod_desc}"),
            );
        }
        obs.waiting
            .insert(name.clone(), ("CrashLoopBackOff".into(), msg));
    }
    if !a.start.is_empty() && start_containers(node, pod, a, obs).await {
        progressed = true;
    }
    progressed
}

/// Images (per pull policy), volumes (once: they outlive sandboxes), then
/// RunPodSandbox. Errors become waiting reasons and events.
async fn create_sandbox(
    node: &Arc<Node>,
    pod: &Pod,
    attempt: u32,
    obs: &mut Observed,
) -> Option<String> {
    let spec = pod.spec.clone()?;
    let all: Vec<Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .cloned()
        .collect();
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
                    .is_some_and(|w| w.0.contains("Image"))
                {
                    obs.waiting.remove(&c.name);
                }
                if obs.pulled_noted.insert(c.name.clone()) {
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
                    && obs.waiting.get(&c.name).map(|w| w.0.as_str()) != Some("ErrImageNeverPull")
                {
                    node.events
                        .record(pod, "Warning", "ErrImageNeverPull", msg.clone());
                }
                obs.waiting.insert(c.name.clone(), (reason, msg));
            }
        }
    }
    if missing {
        return None;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if obs.volumes.is_none() {
        let p = pod.clone();
        let dir = node.pod_dir(&uid).join("volumes");
        let store = node.store.clone();
        let ctx = crate::projection::pod_context(node, pod, obs);
        match blocking(move || volumes::prepare(&p, &dir, &*store, &ctx)).await? {
            Ok(v) => obs.volumes = Some(v),
            Err(e) => {
                // The containers stay ContainerCreating (kubelet's
                // WaitForAttachAndMount); the worker tries again soon and
                // when a ConfigMap or Secret appears.
                obs.sandbox_failed = true;
                node.events
                    .record(pod, "Warning", "FailedMount", e.to_string());
                return None;
            }
        }
    }
    let cfg = sandbox_config(node, pod, attempt);
    let rt = node.runtime.clone();
    let t0 = std::time::Instant::now();
    let early = early_containers(node, pod, obs);
    let permit = node.starts.clone().acquire_owned().await.ok();
    let res = blocking(move || rt.run_pod_sandbox_then(&cfg, |sid| create_early(&rt, sid, early)))
        .await?;
    drop(permit);
    tracing::debug!(pod = ?pod.metadata.name, elapsed = ?t0.elapsed(), "run sandbox");
    obs.sandbox_failed = res.is_err();
    match res {
        Ok((sid, made)) => {
            obs.precreated.extend(made);
            Some(sid)
        }
        Err(e) => {
            node.events.record(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                format!("Failed to create pod sandbox: {e}"),
            );
            None
        }
    }
}

/// The node-owned file a container's termination message is written to.
fn termination_log(node: &Node, uid: &str, name: &str, attempt: u32) -> PathBuf {
    node.pod_dir(uid)
        .join("containers")
        .join(name)
        .join(attempt.to_string())
}

/// A container's config as it would be made now: env, mounts (an error is
/// kubelet's CreateContainerConfigError), and the node-owned file of its
/// termination message.
struct Prepared {
    container: Container,
    config: peapod_runtime::ContainerConfig,
    termination_log: PathBuf,
}

fn prepare(
    node: &Node,
    pod: &Pod,
    kind: Kind,
    index: usize,
    attempt: u32,
    obs: &Observed,
) -> Option<Result<Prepared, String>> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let c = spec_container(pod.spec.as_ref()?, kind, index)?.clone();
    let field = match kind {
        Kind::Init => format!("spec.initContainers[{index}]"),
        Kind::App => format!("spec.containers[{index}]"),
    };
    let prepared = obs.volumes.clone().unwrap_or_default();
    let vols = node.pod_dir(&uid).join("volumes");
    let made = container_env(node, pod, &c, obs)
        .map_err(|e| e.to_string())
        .and_then(|env| {
            volumes::container_mounts(&c, &prepared, &field, &vols, &env.vars)
                .map(|m| (env, m))
                .map_err(|e| e.to_string())
        });
    Some(made.map(|(env, mut mounts)| {
        let term = termination_log(node, &uid, &c.name, attempt);
        mounts.push(VolumeMount {
            container_path: c
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            host_path: term.clone(),
            readonly: false,
        });
        let mut cfg = container_config(pod, &c, attempt, mounts);
        (cfg.command, cfg.args) = crate::env::expand_command_and_args(&c, &env);
        cfg.env = env.vars;
        Prepared {
            container: c,
            config: cfg,
            termination_log: term,
        }
    }))
}

/// The init or app container at `index` of the spec.
fn spec_container(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    kind: Kind,
    index: usize,
) -> Option<&Container> {
    match kind {
        Kind::Init => spec.init_containers.as_ref()?.get(index),
        Kind::App => spec.containers.get(index),
    }
}

/// CreateContainer of a prepared container (its termination-message file
/// first: the container bind-mounts it).
fn create_prepared(
    rt: &peapod_runtime::Runtime,
    sid: &str,
    cfg: &peapod_runtime::ContainerConfig,
    term: &std::path::Path,
) -> Result<String, RuntimeError> {
    if let Some(dir) = term.parent() {
        std::fs::create_dir_all(dir).map_err(RuntimeError::io(dir))?;
    }
    std::fs::write(term, b"").map_err(RuntimeError::io(term))?;
    rt.create_container(sid, cfg)
}

/// Whether a container may be created before its turn comes: not when its
/// environment needs the pod's IP (unknown until CNI ADD is done), nor,
/// when `before_inits`, when it mounts a subPath (kubelet makes a missing
/// subPath when the container is created, which would get in the way of
/// an init container that writes it).
fn may_precreate(c: &Container, before_inits: bool) -> bool {
    let needs_ip = c.env.iter().flatten().any(|e| {
        e.value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .is_some_and(|f| f.field_path.starts_with("status.podIP"))
    });
    let sub_path = c.volume_mounts.iter().flatten().any(|m| {
        m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
            || m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
    });
    !(needs_ip || (before_inits && sub_path))
}

/// The containers a new sandbox's pod is made with ahead of their start:
/// the ones that start first (what `pod_actions::compute` would start in
/// the new sandbox), and with init containers also the app containers,
/// which then start the moment the last init container succeeds.
fn early_containers(node: &Node, pod: &Pod, obs: &Observed) -> Vec<Prepared> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let mut view = obs.view.clone();
    view.sandboxes.push(peapod_runtime::PodSandboxStatus {
        id: String::new(),
        state: SandboxState::Ready,
        ..Default::default()
    });
    let first = pod_actions::compute(spec, &view, chrono::Utc::now()).start;
    let has_inits = spec.init_containers.as_ref().is_some_and(|v| !v.is_empty());
    let mut want: Vec<(Kind, usize, u32, bool)> = first
        .iter()
        .map(|s| (s.kind, s.index, s.attempt, false))
        .collect();
    if has_inits {
        for (i, c) in spec.containers.iter().enumerate() {
            if !first.iter().any(|s| s.kind == Kind::App && s.index == i) {
                want.push((Kind::App, i, view.next_attempt(&c.name), true));
            }
        }
    }
    want.into_iter()
        // Checked before `prepare`, which stages subPath mounts.
        .filter(|(kind, index, _, before_inits)| {
            spec_container(spec, *kind, *index).is_some_and(|c| may_precreate(c, *before_inits))
        })
        .filter_map(|(kind, index, attempt, _)| prepare(node, pod, kind, index, attempt, obs)?.ok())
        .collect()
}

/// Create the `early` containers in sandbox `sid`, a few at a time; their
/// ids with the configs they were made with. One that fails is made
/// again (and its error reported) when its turn comes.
fn create_early(
    rt: &peapod_runtime::Runtime,
    sid: &str,
    early: Vec<Prepared>,
) -> Vec<(String, peapod_runtime::ContainerConfig)> {
    let mut made = Vec::new();
    for chunk in early.chunks(4) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|p| {
                    s.spawn(move || {
                        create_prepared(rt, sid, &p.config, &p.termination_log)
                            .map(|cid| (cid, p.config.clone()))
                            .map_err(|e| {
                                tracing::debug!(container = %p.config.name, "early create: {e}")
                            })
                    })
                })
                .collect();
            made.extend(handles.into_iter().filter_map(|h| h.join().ok()?.ok()));
        });
    }
    made
}

/// Create and start the containers `a.start` names, concurrently (each is
/// a few helper runs and an overlay mount); true if any started. A
/// container this worker created ahead of its turn is only started, if
/// its config is still what it would be made with now.
async fn start_containers(node: &Arc<Node>, pod: &Pod, a: &PodActions, obs: &mut Observed) -> bool {
    let Some(sid) = obs.view.current_sandbox().map(|s| s.id.clone()) else {
        return false;
    };
    let net = PodNet::of(obs.view.current_sandbox());
    let mut tasks = Vec::new();
    for s in &a.start {
        // Made ahead by this worker: its attempt, if its config holds.
        let ahead = s
            .created
            .as_ref()
            .and_then(|cid| obs.precreated.get(cid).map(|c| (cid.clone(), c.attempt)));
        let attempt = ahead.as_ref().map(|a| a.1).unwrap_or(s.attempt);
        let p = match prepare(node, pod, s.kind, s.index, attempt, obs) {
            None => continue,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                obs.waiting.insert(
                    s.name.clone(),
                    ("CreateContainerConfigError".into(), e.clone()),
                );
                node.events
                    .record(pod, "Warning", "Failed", format!("Error: {e}"));
                continue;
            }
        };
        let reuse = ahead
            .filter(|(cid, _)| obs.precreated.get(cid) == Some(&p.config))
            .map(|(cid, _)| cid);
        // Any other container of this name left `Created` (made ahead
        // with a config that changed since, or a start that failed
        // half-way) is removed first.
        let stale: Vec<String> = obs
            .view
            .containers
            .iter()
            .filter(|x| {
                x.sandbox_id == sid
                    && x.metadata.name == s.name
                    && x.state == ContainerState::Created
                    && Some(&x.id) != reuse.as_ref()
            })
            .map(|x| x.id.clone())
            .collect();
        for id in stale.iter().chain(reuse.iter()) {
            obs.precreated.remove(id);
        }
        let c = p.container;
        let rt = node.runtime.clone();
        let sid = sid.clone();
        let t0 = std::time::Instant::now();
        let permit = node.starts.clone().acquire_owned().await.ok();
        let post_start = c.lifecycle.as_ref().and_then(|l| l.post_start.clone());
        let (pod2, c2, net) = (pod.clone(), c.clone(), net.clone());
        let (cfg, term) = (p.config, p.termination_log);
        type Started = (String, Option<String>);
        let task = tokio::task::spawn_blocking(move || -> Result<Started, RuntimeError> {
            for id in stale {
                rt.remove_container(&id)?;
            }
            let cid = match reuse {
                Some(cid) => cid,
                None => create_prepared(&rt, &sid, &cfg, &term)?,
            };
            rt.start_container(&cid)?;
            drop(permit);
            // postStart: the container is not started (nor its status
            // written) until the hook completed.
            let failed = post_start.and_then(|h| {
                let target = crate::prober::handler::Target {
                    runtime: rt.clone(),
                    container_id: cid.clone(),
                    net,
                };
                lifecycle::run_hook(&h, &c2, &pod2, &target, None).err()
            });
            Ok((cid, failed))
        });
        tasks.push((c, t0, task));
    }
    let mut any = false;
    for (c, t0, task) in tasks {
        let res = task.await;
        tracing::debug!(pod = ?pod.metadata.name, container = %c.name, elapsed = ?t0.elapsed(), "create+start container");
        match res {
            Ok(Ok((cid, hook_failed))) => {
                node.events.record(
                    pod,
                    "Normal",
                    "Created",
                    format!("Created container {}", c.name),
                );
                node.events.record(
                    pod,
                    "Normal",
                    "Started",
                    format!("Started container {}", c.name),
                );
                obs.waiting.remove(&c.name);
                any = true;
                if let Some(msg) = hook_failed {
                    node.events
                        .record(pod, "Warning", "FailedPostStartHook", msg);
                    let kill = Kill {
                        cid: cid.clone(),
                        name: c.name.clone(),
                        message: "FailedPostStartHook".into(),
                        grace: lifecycle::grace_period(pod, None),
                        after: Vec::new(),
                    };
                    lifecycle::kill_container(node, pod, &kill, net.clone(), Vec::new()).await;
                }
            }
            Ok(Err(e)) => {
                let reason = match e {
                    RuntimeError::ContainerConfig { .. } => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                obs.waiting
                    .insert(c.name.clone(), (reason.into(), e.to_string()));
                node.events
                    .record(pod, "Warning", "Failed", format!("Error: {e}"));
            }
            Err(_) => {}
        }
    }
    any
}

/// The container's environment (env, envFrom, downward API); it expands
/// `command`, `args` and `subPathExpr`.
fn container_env(
    node: &Node,
    pod: &Pod,
    c: &Container,
    obs: &Observed,
) -> Result<crate::env::Environment, crate::env::EnvError> {
    let ctx = crate::projection::pod_context(node, pod, obs);
    let env = crate::env::make_environment(pod, c, &*node.store, &ctx)?;
    for w in &env.warnings {
        node.events
            .record(pod, "Warning", "InvalidEnvironmentVariableNames", w.clone());
    }
    Ok(env)
}

/// ConfigMap, Secret, downwardAPI and projected volumes follow their
/// sources (a no-op for pods without them). A pod adopted after a daemon
/// restart has its volumes found again first (preparing is idempotent).
async fn refresh_volumes(node: &Arc<Node>, pod: &Pod, obs: &mut Observed) {
    if pod.metadata.deletion_timestamp.is_some() {
        return;
    }
    let ctx = crate::projection::pod_context(node, pod, obs);
    let store = node.store.clone();
    if obs.volumes.is_none() && obs.view.current_sandbox().is_some() {
        let p = pod.clone();
        let dir = node
            .pod_dir(pod.metadata.uid.as_deref().unwrap_or_default())
            .join("volumes");
        let (store, ctx) = (store.clone(), ctx.clone());
        if let Some(Ok(v)) = blocking(move || volumes::prepare(&p, &dir, &*store, &ctx)).await {
            obs.volumes = Some(v);
        }
    }
    let Some(prepared) = obs.volumes.clone() else {
        return;
    };
    let has_any = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(crate::projection::is_projected);
    if !has_any {
        return;
    }
    let pod = pod.clone();
    blocking(move || crate::projection::refresh(&pod, &prepared, &*store, &ctx)).await;
}

/// Termination messages of exited containers: the file the container
/// wrote (4096 bytes at most), or with `FallbackToLogsOnError` and a
/// failure, the end of its log (80 lines, 2048 bytes), as kubelet does.
async fn read_messages(node: &Arc<Node>, pod: &Pod, obs: &mut Observed) {
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut todo = Vec::new();
    for c in &obs.view.containers {
        if c.state != ContainerState::Exited || obs.messages.contains_key(&c.id) {
            continue;
        }
        let fallback = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|x| x.name == c.metadata.name)
            .and_then(|x| x.termination_message_policy.as_deref())
            == Some("FallbackToLogsOnError");
        todo.push((
            c.id.clone(),
            termination_log(node, &uid, &c.metadata.name, c.metadata.attempt),
            (fallback && c.exit_code != Some(0)).then(|| c.log_path.clone()),
        ));
    }
    if todo.is_empty() {
        return;
    }
    let read = blocking(move || {
        todo.into_iter()
            .map(|(id, file, log)| {
                let mut msg = std::fs::read(&file)
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned())
                    .unwrap_or_default();
                if msg.is_empty() {
                    if let Some(log) = log {
                        msg = crate::server::logs::tail_text(&log, 80, 2048);
                    }
                }
                (id, msg)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    obs.messages.extend(read);
}

/// Graceful termination of the current sandbox's running containers, as
/// the runtime reports them (not a cache): see [`lifecycle::stop_pod`].
/// Graceful termination. A later delete with a shorter grace period (the
/// store only lets deletionGracePeriodSeconds decrease) starts the kills
/// over with it, as kubelet cancels a termination in progress for a
/// shorter one: the containers then get the stop signal again and are
/// killed when the shorter period ends.
async fn terminate(node: &Arc<Node>, pod: &Pod, obs: &Observed, notify: &Notify) {
    let (ns, name) = (
        crate::node::namespace_of(&pod.metadata),
        pod.metadata.name.clone(),
    );
    let mut pod = pod.clone();
    let mut view = obs.view.clone();
    loop {
        let grace = lifecycle::grace_period(&pod, None);
        let shorter = async {
            loop {
                notify.notified().await;
                if let Ok(Some(p)) = node.get_pod(&ns, name.as_deref().unwrap_or_default()) {
                    if p.metadata.uid == pod.metadata.uid
                        && lifecycle::grace_period(&p, None) < grace
                    {
                        return p;
                    }
                }
            }
        };
        let next = tokio::select! {
            _ = lifecycle::stop_pod(node, &pod, &view) => None,
            p = shorter => Some(p),
        };
        let Some(p) = next else { return };
        pod = p;
        // Only what still runs is stopped again.
        let rt = node.runtime.clone();
        let ids: Vec<String> = view.sandboxes.iter().map(|s| s.id.clone()).collect();
        if let Some(v) = blocking(move || read_view(&rt, &ids)).await {
            view = v;
        }
    }
}

/// Remove every sandbox of the pod and what the node keeps for it
/// (volumes, termination logs, logs).
async fn remove_all(node: &Arc<Node>, ns: &str, name: &str, uid: &str, sandbox_ids: &[String]) {
    let rt = node.runtime.clone();
    let ids = sandbox_ids.to_vec();
    let pod_dir = node.pod_dir(uid);
    let log_dir = Some(node.pod_log_dir(ns, name, uid));
    let u = uid.to_string();
    blocking(move || {
        for sid in &ids {
            if let Err(e) = rt.remove_pod_sandbox(sid) {
                tracing::error!(uid = %u, sandbox = %sid, "remove sandbox: {e}");
            }
        }
        if let Err(e) = volumes::remove_subpaths(&pod_dir.join("volumes"), None) {
            tracing::error!(uid = %u, "remove subPath mounts: {e}");
        }
        if let Err(e) = peapod_runtime::mounts::unmount_all_under(&pod_dir) {
            tracing::error!(uid = %u, "unmount pod volumes: {e}");
        }
        let _ = std::fs::remove_dir_all(&pod_dir);
        if let Some(d) = log_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    })
    .await;
    for sid in sandbox_ids {
        node.disown_sandbox(sid);
    }
    node.events.forget(uid);
}
