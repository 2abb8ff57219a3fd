//! RemovePodSandbox: everything the sandbox made: processes, containers
//! and their kept statuses, mounts, pinned namespaces, cgroups, files.
//! What the caller owns (the log directory, volumes) stays. Idempotent; it
//! also takes a sandbox half-made when a crash interrupted RunPodSandbox.

use crate::error::RuntimeError;
use crate::{mounts, Runtime};

impl Runtime {
    pub fn remove_pod_sandbox(&self, sid: &str) -> Result<(), RuntimeError> {
        let rec = self.sandbox_record(sid).ok();
        self.stop_processes(sid);
        for c in self.container_records(sid) {
            self.cgroups.remove(&c.cgroup)?;
            self.index_remove(&c.id);
        }
        let state_dir = self.paths.sandbox_state(sid);
        let data_dir = self.paths.sandbox_data(sid);
        mounts::unmount_all_under(&state_dir)?;
        mounts::unmount_all_under(&data_dir)?;
        if let Some(rec) = &rec {
            let parent = rec.config.cgroup_parent.trim_matches('/');
            self.cgroups
                .remove(&crate::paths::container_cgroup(parent, sid))?;
            if rec.created_cgroup {
                // Another sandbox of the same pod (a newer attempt) may use
                // the same parent: it inherits the parent, which goes with
                // the last of them.
                let heir = self
                    .sandbox_ids()
                    .into_iter()
                    .filter(|other| other != sid)
                    .filter_map(|other| self.sandbox_record(&other).ok())
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
