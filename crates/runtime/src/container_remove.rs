//! RemoveContainer: libcontainer state and cgroup, rootfs mount, bundle,
//! and the container's kept status. The log file is the caller's and stays.

use crate::error::RuntimeError;
use crate::types::ContainerState;
use crate::{mounts, Runtime};
use peapod_shim::Request;
use std::time::Duration;

impl Runtime {
    pub fn remove_container(&self, cid: &str) -> Result<(), RuntimeError> {
        let rec = match self.container_record(cid) {
            Ok(r) => r,
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let sid = rec.sandbox_id.clone();
        let status = self.container_status(cid)?;
        if matches!(status.state, ContainerState::Running) {
            return Err(RuntimeError::Container {
                name: rec.metadata.name,
                message: "is running; stop it before removing it".into(),
            });
        }
        if self.shim_pid(&sid).is_some() {
            self.shim(&sid).expect_ok(&Request::Delete {
                id: cid.to_string(),
            })?;
        } else {
            // No shim to ask: nothing may run in the container's cgroup
            // once it is removed.
            self.kill_cgroup(&rec.cgroup);
            let _ = std::fs::remove_dir_all(self.paths.container_root(&sid).join(cid));
        }
        self.cgroups.remove(&rec.cgroup)?;
        let dir = self.paths.container_dir(&sid, cid);
        mounts::detach(&dir.join("rootfs"))?;
        mounts::remove_tree(&dir)?;
        self.index_remove(cid);
        Ok(())
    }

    /// SIGKILL everything in cgroup `rel` until it is empty (5 s at most),
    /// freezing it first where it can ([`crate::cgroups::Cgroups::kill`]).
    pub(crate) fn kill_cgroup(&self, rel: &str) {
        self.cgroups.kill(rel, Duration::from_secs(5));
    }
}
