//! RemovePodSandbox: everything the sandbox made: processes, the pod
//! network (CNI DEL), containers and their kept statuses, mounts, pinned
//! namespaces, cgroups, files.
//! What the caller owns (the log directory, volumes) stays. Idempotent; it
//! also takes a sandbox half-made when a crash interrupted RunPodSandbox.

use crate::error::RuntimeError;
use crate::{mounts, Runtime};

impl Runtime {
    pub fn remove_pod_sandbox(&self, sid: &str) -> Result<(), RuntimeError> {
        let rec = self.sandbox_record(sid).ok();
        self.stop_processes(sid);
        // CNI DEL unless StopPodSandbox did it. A sandbox with no record
        // never reached ADD (the record is written first). A DEL that
        // fails must not keep the rest here: removing the netns takes the
        // pod's interface with it.
        if let Some(mut r) = rec.clone() {
            if let Err(e) = self.network_teardown(&mut r) {
                tracing::warn!(sandbox = %sid, "releasing the pod network: {e}");
            }
        }
        for c in self.container_records(sid) {
            self.cgroups.remove(&c.cgroup)?;
            self.index_remove(&c.id);
        }
        let state_dir = self.paths.sandbox_state(sid);
        let data_dir = self.paths.sandbox_data(sid);
        // The mounts the sandbox made, at the paths it made them.
        for c in self.container_records(sid) {
            mounts::detach(&self.paths.container_dir(sid, &c.id).join("rootfs"))?;
        }
        for kind in ["net", "ipc", "uts", "pid"] {
            mounts::detach(&self.paths.ns_dir(sid).join(kind))?;
        }
        mounts::detach(&self.paths.shm_dir(sid))?;
        if let Some(rec) = &rec {
            let parent = rec.config.cgroup_parent.trim_matches('/');
            self.cgroups
                .remove(&crate::paths::container_cgroup(parent, sid))?;
            let others = self.parent_remove(parent, sid);
            if rec.created_cgroup {
                // Another sandbox of the same pod (a newer attempt) may use
                // the same parent: it inherits the parent, which goes with
                // the last of them.
                let heir = others
                    .iter()
                    .filter_map(|other| self.sandbox_record(other).ok())
                    .find(|o| o.config.cgroup_parent.trim_matches('/') == parent);
                match heir {
                    Some(mut h) => {
                        h.created_cgroup = true;
                        self.write_sandbox_record(&h)?;
                    }
                    None => {
                        self.kill_cgroup(parent);
                        self.cgroups.remove(parent)?;
                    }
                }
            }
        }
        for d in [&state_dir, &data_dir] {
            mounts::remove_tree(d)?;
        }
        Ok(())
    }
}
