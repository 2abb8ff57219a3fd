//! The runtime's CRI-shaped verbs driven directly, as the CRI server and
//! the pod workers drive them: opaque ids, attempts that coexist, statuses
//! kept on disk through StopPodSandbox and a new runtime instance (a
//! daemon restart), ExecSync with a timeout, stats, resource updates,
//! removal. Real kernel, overlayfs, cgroups and shims.

mod common;

use common::*;
use peapod_runtime::{
    cgroups::resources::Requested, ContainerConfig, ContainerFilter, ContainerState, Runtime,
    RuntimeOptions, SandboxConfig, SandboxFilter, SandboxState,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Env {
    dir: PathBuf,
    cgroup_parent: String,
    rt: Option<Runtime>,
}

impl Env {
    fn new() -> Env {
        let id = format!(
            "{:x}{:x}",
            std::process::id() & 0xfff,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                & 0xffffff
        );
        let dir = PathBuf::from(format!("/tmp/pr-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut env = Env {
            dir,
            cgroup_parent: format!("peapod-rt-{id}"),
            rt: None,
        };
        env.rt = Some(env.runtime());
        let images = &env.rt().images;
        let f = std::fs::File::open(images_dir().join("busybox.tar")).unwrap();
        images
            .import(std::io::BufReader::new(f), Some(BUSYBOX))
            .unwrap();
        env
    }

    /// A runtime on this env's root: a second one is what a restarted
    /// daemon has.
    fn runtime(&self) -> Runtime {
        let root = self.dir.join("root");
        let images = Arc::new(peapod_image::ImageStore::open(&root.join("images")).unwrap());
        Runtime::new(
            RuntimeOptions {
                root,
                state: self.dir.join("s"),
                cgroup_parent: self.cgroup_parent.clone(),
                pod_max_pids: None,
                exe: PathBuf::from(env!("CARGO_BIN_EXE_peapod-shim")),
                log_rotation: Default::default(),
                network: None,
                egress: None,
            },
            images,
        )
        .unwrap()
    }

    fn rt(&self) -> &Runtime {
        self.rt.as_ref().unwrap()
    }

    fn sandbox_config(&self, name: &str) -> SandboxConfig {
        SandboxConfig {
            metadata: peapod_runtime::PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            },
            hostname: name.into(),
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
            log_directory: self.dir.join("logs").join(name),
            cgroup_parent: format!("{}/pod-{name}", self.cgroup_parent),
            ..Default::default()
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(rt) = &self.rt {
            for s in rt.list_pod_sandbox(&SandboxFilter::default()) {
                let _ = rt.remove_pod_sandbox(&s.id);
            }
        }
        let leftovers: Vec<String> = std::fs::read_dir(self.dir.join("root/sandboxes"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path().display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        // The parent, in every hierarchy (the runtime makes its cgroups in
        // all of them on v1); whatever is left below it is a leak.
        let mut leaked = Vec::new();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = h.path().join(&self.cgroup_parent);
            for c in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                if c.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    // The shims' shared cgroup is the runtime's own.
                    if c.file_name() != "shims" || !all_pids_in(&c.path()).is_empty() {
                        leaked.push(c.path().display().to_string());
                    }
                    let _ = std::fs::remove_dir(c.path());
                }
            }
            let _ = std::fs::remove_dir(&p);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if !std::thread::panicking() {
            assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
            assert!(leaked.is_empty(), "cgroups left behind: {leaked:?}");
        }
    }
}

fn container(name: &str, attempt: u32, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        attempt,
        image: BUSYBOX.into(),
        log_path: format!("{name}/{attempt}.log").into(),
        labels: BTreeMap::from([("container".to_string(), name.to_string())]),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    }
}

fn wait_state(rt: &Runtime, cid: &str, want: ContainerState) -> peapod_runtime::ContainerStatus {
    let start = Instant::now();
    loop {
        let s = rt.container_status(cid).unwrap();
        if s.state == want {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "container {cid} never reached {want:?}: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn attempts_coexist_and_statuses_outlive_the_sandbox_and_the_runtime() {
    let mut env = Env::new();
    let rt = env.rt();
    let sid = rt.run_pod_sandbox(&env.sandbox_config("web")).unwrap();
    assert_eq!(sid.len(), 32, "an opaque id, not the pod uid: {sid}");
    let s = rt.pod_sandbox_status(&sid).unwrap();
    assert_eq!(s.state, SandboxState::Ready);
    assert!(
        s.infra_pid.is_none(),
        "no infra process without a shared pid namespace"
    );

    // Attempt 0 fails; attempt 1 of the same name runs beside its status.
    let c0 = rt
        .create_container(&sid, &container("app", 0, "echo first; exit 3"))
        .unwrap();
    rt.start_container(&c0).unwrap();
    let st0 = wait_state(rt, &c0, ContainerState::Exited);
    assert_eq!(st0.exit_code, Some(3));
    assert_eq!(st0.reason.as_deref(), Some("Error"));
    let c1 = rt
        .create_container(&sid, &container("app", 1, "echo second; exec sleep 3600"))
        .unwrap();
    assert_ne!(c0, c1);
    rt.start_container(&c1).unwrap();
    wait_state(rt, &c1, ContainerState::Running);
    let all = rt.list_containers(&ContainerFilter {
        sandbox_id: Some(sid.clone()),
        ..Default::default()
    });
    let mut attempts: Vec<(u32, ContainerState)> =
        all.iter().map(|c| (c.metadata.attempt, c.state)).collect();
    attempts.sort_by_key(|a| a.0);
    assert_eq!(
        attempts,
        [(0, ContainerState::Exited), (1, ContainerState::Running)]
    );
    // Filters: by state and by label.
    let running = rt.list_containers(&ContainerFilter {
        state: Some(ContainerState::Running),
        labels: BTreeMap::from([("container".to_string(), "app".to_string())]),
        ..Default::default()
    });
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].id, c1);
    // Each attempt has its log at the caller's path.
    let logs = env.dir.join("logs/web/app");
    assert!(log_text(&logs.join("0.log")).contains("first"));
    let start = Instant::now();
    while !log_text(&logs.join("1.log")).contains("second") {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    }

    // ExecSync: output, exit code, and a timeout that kills.
    let r = rt
        .exec_sync(
            &c1,
            &[
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 4".into(),
            ],
            Some(Duration::from_secs(5)),
        )
        .unwrap();
    assert_eq!(
        (
            r.stdout.as_slice(),
            r.stderr.as_slice(),
            r.exit_code,
            r.timed_out
        ),
        (&b"out\n"[..], &b"err\n"[..], 4, false)
    );
    let t0 = Instant::now();
    let r = rt
        .exec_sync(
            &c1,
            &["sleep".into(), "30".into()],
            Some(Duration::from_millis(300)),
        )
        .unwrap();
    assert!(
        r.timed_out && t0.elapsed() < Duration::from_secs(10),
        "{r:?}"
    );

    // Stats and a resource update, from and to the container's cgroup.
    let stats = rt.container_stats(&c1).unwrap();
    assert!(stats.usage.memory_working_set.unwrap_or(0) > 0, "{stats:?}");
    assert!(stats.usage.cpu_usage_ns.is_some(), "{stats:?}");
    // sh and the exec'd sleep may both be there; at least the shell.
    assert!(stats.usage.pids.unwrap_or(0) >= 1, "{stats:?}");
    rt.update_container_resources(
        &c1,
        &Requested {
            memory_limit: Some(50 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    let cg = rt.container_record(&c1).unwrap().cgroup;
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes"))
            .unwrap();
    assert_eq!(limit.trim(), (50u64 << 20).to_string());
    let pod_stats = rt.pod_sandbox_stats(&sid).unwrap();
    assert_eq!(pod_stats.containers.len(), 1);
    // The pod's cgroup holds the container's: at least as much of all.
    let (pod, c) = (&pod_stats.usage, &pod_stats.containers[0].usage);
    assert!(pod.pids >= c.pids && pod.pids.is_some(), "{pod_stats:?}");
    assert!(
        pod.memory_usage.is_some() && pod.cpu_usage_ns.is_some(),
        "{pod_stats:?}"
    );

    // StopPodSandbox: the sandbox is NotReady, both statuses stay.
    rt.stop_pod_sandbox(&sid).unwrap();
    assert_eq!(
        rt.pod_sandbox_status(&sid).unwrap().state,
        SandboxState::NotReady
    );
    let st1 = rt.container_status(&c1).unwrap();
    assert_eq!(st1.state, ContainerState::Exited);
    assert_eq!(st1.exit_code, Some(137));
    assert_eq!(rt.container_status(&c0).unwrap().exit_code, Some(3));

    // A new runtime on the same root (a daemon restart) sees the same.
    env.rt = Some(env.runtime());
    let rt = env.rt();
    let s0 = rt.container_status(&c0).unwrap();
    assert_eq!((s0.metadata.attempt, s0.exit_code), (0, Some(3)));
    let listed = rt.list_pod_sandbox(&SandboxFilter {
        labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        ..Default::default()
    });
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SandboxState::NotReady);

    // RemoveContainer, then RemovePodSandbox: statuses go, logs stay.
    rt.remove_container(&c0).unwrap();
    assert!(matches!(
        rt.container_status(&c0),
        Err(peapod_runtime::RuntimeError::NotFound(_))
    ));
    rt.remove_pod_sandbox(&sid).unwrap();
    assert!(rt.list_pod_sandbox(&SandboxFilter::default()).is_empty());
    assert!(logs.join("0.log").exists(), "logs are the caller's");
    for ctrl in ["memory", "pids"] {
        let p = format!("/sys/fs/cgroup/{ctrl}/{}/pod-web", env.cgroup_parent);
        assert!(!Path::new(&p).exists(), "{p} left");
    }
}

#[test]
fn unknown_ids_are_not_found_and_bad_sysctls_make_nothing() {
    let env = Env::new();
    let rt = env.rt();
    assert!(matches!(
        rt.container_status("0123"),
        Err(peapod_runtime::RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        rt.pod_sandbox_status("0123"),
        Err(peapod_runtime::RuntimeError::NotFound(_))
    ));
    let mut cfg = env.sandbox_config("hostnet");
    cfg.host_network = true;
    cfg.sysctls = vec![("net.ipv4.ip_forward".into(), "1".into())];
    let before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let err = rt.run_pod_sandbox(&cfg).unwrap_err().to_string();
    assert!(err.contains("hostNetwork"), "{err}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        before
    );
    assert!(rt.list_pod_sandbox(&SandboxFilter::default()).is_empty());
}

#[test]
fn reopen_container_log_moves_writes_to_a_new_file() {
    let env = Env::new();
    let rt = env.rt();
    let sid = rt.run_pod_sandbox(&env.sandbox_config("reopen")).unwrap();
    let script = "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.02; done";
    let cid = rt
        .create_container(&sid, &container("app", 0, script))
        .unwrap();
    rt.start_container(&cid).unwrap();
    wait_state(rt, &cid, ContainerState::Running);
    let log = env.dir.join("logs/reopen/app/0.log");
    let start = Instant::now();
    while !log_text(&log).contains("line-3") {
        assert!(start.elapsed() < Duration::from_secs(5), "no output");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Rotated from outside, as kubelet does, then ReopenContainerLog.
    let moved = log.with_file_name("0.log.20000101-000000");
    std::fs::rename(&log, &moved).unwrap();
    rt.reopen_container_log(&cid).unwrap();
    let start = Instant::now();
    while log_text(&log).lines().count() < 3 {
        assert!(start.elapsed() < Duration::from_secs(5), "no new log file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = |l: &str| -> u64 { l.rsplit('-').next().unwrap().parse().unwrap() };
    let old = log_text(&moved);
    let last_old = n(old.lines().last().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log_text(&moved), old, "the renamed file no longer grows");
    let first_new = n(log_text(&log).lines().next().unwrap());
    assert_eq!(first_new, last_old + 1, "no line lost or repeated");

    assert!(matches!(
        rt.reopen_container_log("nope"),
        Err(peapod_runtime::RuntimeError::NotFound(_))
    ));
    rt.stop_container(&cid, Duration::ZERO, None).unwrap();
    wait_state(rt, &cid, ContainerState::Exited);
    assert!(rt.reopen_container_log(&cid).is_err());
}

/// A daemon killed in the middle of RunPodSandbox leaves a record that was
/// never finished (here: the shim runs, the pod's /etc files were not yet
/// written). The next runtime reports that sandbox NotReady, so its pod
/// gets a new one instead of failing to create containers in it forever,
/// and stop and remove take everything it had.
#[test]
fn a_sandbox_left_half_made_by_a_crash_is_not_ready_and_is_removed_whole() {
    let mut env = Env::new();
    let sid = env
        .rt()
        .run_pod_sandbox(&env.sandbox_config("half"))
        .unwrap();
    let record = env
        .dir
        .join("root/sandboxes")
        .join(&sid)
        .join("sandbox.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(rec["finished"], true);
    rec["finished"] = false.into();
    std::fs::write(&record, serde_json::to_vec(&rec).unwrap()).unwrap();
    std::fs::remove_dir_all(env.dir.join("root/sandboxes").join(&sid).join("etc")).unwrap();

    env.rt = Some(env.runtime());
    let rt = env.rt();
    let st = rt.pod_sandbox_status(&sid).unwrap();
    assert_eq!(st.state, SandboxState::NotReady);
    assert!(
        st.not_ready_reason
            .as_deref()
            .unwrap_or_default()
            .contains("never finished"),
        "{:?}",
        st.not_ready_reason
    );
    let shim = st
        .shim_pid
        .expect("the half-made sandbox's shim still runs");
    rt.stop_pod_sandbox(&sid).unwrap();
    rt.remove_pod_sandbox(&sid).unwrap();
    assert!(
        !Path::new(&format!("/proc/{shim}")).exists()
            || std::fs::read_to_string(format!("/proc/{shim}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "the shim {shim} still runs"
    );
    assert!(rt.list_pod_sandbox(&SandboxFilter::default()).is_empty());
    // Env's drop checks that no sandbox directory or cgroup is left.
}
