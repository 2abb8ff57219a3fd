//! StopPodSandbox and RemovePodSandbox. Removal is idempotent and works
//! whether or not the shim still answers: it is also how a daemon cleans up
//! a pod it finds half-made after a crash.

use crate::error::RuntimeError;
use crate::{mounts, Runtime};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use peapod_shim::{ContainerStatus, Request};
use std::time::{Duration, Instant};

fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // A zombie has exited; its parent just has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .map(|r| !r.trim_start().starts_with('Z'))
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

/// SIGKILL every process of every container that has not exited; true if
/// any was signalled.
fn kill_all(shim: &peapod_shim::ShimClient, state: &peapod_shim::ShimState) -> bool {
    let mut killed = false;
    for (id, c) in &state.containers {
        if c.status != ContainerStatus::Exited {
            killed = true;
            let _ = shim.expect_ok(&Request::Kill {
                id: id.clone(),
                signal: libc::SIGKILL,
                all: true,
            });
        }
    }
    killed
}

impl Runtime {
    /// Stop the sandbox: the infra process ends (containers are stopped by
    /// the caller first) and the shim exits.
    pub fn stop_sandbox(&self, uid: &str) -> Result<(), RuntimeError> {
        let shim = self.shim(uid);
        if let Ok(state) = shim.state() {
            let _ = kill_all(&shim, &state);
            let _ = shim.expect_ok(&Request::Shutdown);
        }
        Ok(())
    }

    /// Remove everything the sandbox made: processes, mounts, pinned
    /// namespaces, cgroups, files.
    pub fn remove_sandbox(&self, uid: &str) -> Result<(), RuntimeError> {
        let shim = self.shim(uid);
        if let Ok(state) = shim.state() {
            if kill_all(&shim, &state) {
                // Give the shim a moment to reap, then let libcontainer delete.
                let _ = shim.wait_change(state.generation, Duration::from_millis(200));
            }
            for id in state.containers.keys() {
                if let Err(e) = shim.expect_ok(&Request::Delete { id: id.clone() }) {
                    tracing::warn!(uid, container = %id, "delete: {e}");
                }
            }
            let _ = shim.expect_ok(&Request::Shutdown);
        }
        let state_dir = self.paths.sandbox_state(uid);
        if let Some(pid) = std::fs::read_to_string(state_dir.join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let start = Instant::now();
            while alive(pid) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if alive(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        // Anything still in the pod's or shim's cgroups is killed.
        for rel in [self.paths.pod_cgroup(uid), self.paths.shim_cgroup(uid)] {
            let start = Instant::now();
            loop {
                let pids = self.cgroups.all_pids(&rel);
                if pids.is_empty() || start.elapsed() > Duration::from_secs(5) {
                    break;
                }
                for p in pids {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let data_dir = self.paths.sandbox_data(uid);
        mounts::unmount_all_under(&state_dir)?;
        mounts::unmount_all_under(&data_dir)?;
        self.cgroups.remove(&self.paths.pod_cgroup(uid))?;
        self.cgroups.remove(&self.paths.shim_cgroup(uid))?;
        for d in [&state_dir, &data_dir] {
            match std::fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(RuntimeError::Io {
                        path: d.clone(),
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }
}
