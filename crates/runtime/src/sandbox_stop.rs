//! StopPodSandbox: every container's processes are killed (graceful stop
//! is the caller's, before this), their ends are recorded on disk, the
//! shim exits, the pod network is released (CNI DEL) and the sandbox is
//! `NotReady`. Container statuses stay until
//! removal. Idempotent, and works whether or not the shim still answers:
//! it is also how a dead shim's leftovers are cleaned up.

use crate::container_status::STATUS;
use crate::error::RuntimeError;
use crate::Runtime;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use peapod_shim::{ContainerStatus, ExitInfo, Request};
use std::time::{Duration, Instant};

impl Runtime {
    pub fn stop_pod_sandbox(&self, sid: &str) -> Result<(), RuntimeError> {
        let mut rec = self.sandbox_record(sid)?;
        self.stop_processes(sid);
        // Whatever the shim did not see end (it died first) ended now, by
        // SIGKILL: record it so the status is honest and kept.
        for c in self.container_records(sid) {
            let path = self.paths.container_dir(sid, &c.id).join(STATUS);
            if let Some(mut st) = self.shim_container_state(sid, &c.id) {
                if st.status != ContainerStatus::Exited {
                    st.status = ContainerStatus::Exited;
                    st.exit = Some(ExitInfo {
                        code: 128 + libc::SIGKILL,
                        signal: Some(libc::SIGKILL),
                        finished_at: crate::now(),
                        oom_killed: false,
                    });
                    crate::write_json_atomic(&path, &st)?;
                }
            }
        }
        if !rec.stopped {
            rec.stopped = true;
            self.write_sandbox_record(&rec)?;
        }
        // CNI DEL: the pod's address, veth and hostPorts are released.
        self.network_teardown(&mut rec)
    }

    /// Kill every process of the sandbox and end its shim.
    pub(crate) fn stop_processes(&self, sid: &str) {
        let shim_pid = self.shim_pid(sid);
        if shim_pid.is_some() {
            let shim = self.shim(sid);
            if let Ok(state) = shim.state() {
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
                if killed {
                    // Let the shim reap and record the exits.
                    let _ = crate::container_stop::wait_shim(
                        &shim,
                        state,
                        Duration::from_secs(5),
                        |s| {
                            s.containers
                                .values()
                                .all(|c| c.status == ContainerStatus::Exited)
                        },
                    );
                }
                let _ = shim.expect_ok(&Request::Shutdown);
            }
        }
        // Anything left in the containers' cgroups (the shim died, or a
        // process escaped the kill) is killed by cgroup.
        let parent = self
            .sandbox_record(sid)
            .map(|r| r.config.cgroup_parent)
            .ok();
        for c in self.container_records(sid) {
            self.kill_cgroup(&c.cgroup);
        }
        if let Some(parent) = &parent {
            self.kill_cgroup(&crate::paths::container_cgroup(parent, sid));
        }
        if let Some(pid) = shim_pid {
            let start = Instant::now();
            while self.shim_pid(sid).is_some() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.shim_pid(sid) == Some(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}
