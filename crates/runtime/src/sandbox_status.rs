//! PodSandboxStatus and ListPodSandbox. A sandbox is `NotReady` only when
//! that is observed: it was stopped, its shim is proven gone (pid and start
//! time), or its infra process exited. A shim that is slow to answer is
//! still `Ready`: only an observed death recreates a pod.

use crate::error::RuntimeError;
use crate::sandbox_run::SandboxRecord;
use crate::types::{PodSandboxStatus, SandboxFilter, SandboxState};
use crate::Runtime;

impl Runtime {
    /// The shim's pid, if it runs (proven by its start time).
    pub fn shim_pid(&self, sid: &str) -> Option<i32> {
        peapod_shim::server::running_shim(&self.paths.shim_pid_file(sid))
    }

    pub fn pod_sandbox_status(&self, sid: &str) -> Result<PodSandboxStatus, RuntimeError> {
        let rec = self.sandbox_record(sid)?;
        Ok(self.status_of(&rec))
    }

    fn status_of(&self, rec: &SandboxRecord) -> PodSandboxStatus {
        let sid = rec.id.as_str();
        let cfg = &rec.config;
        let shim_pid = if rec.stopped {
            None
        } else {
            self.shim_pid(sid)
        };
        let mut infra_pid = None;
        let not_ready_reason = if rec.stopped {
            Some("the sandbox was stopped".to_string())
        } else if !rec.finished {
            Some("the sandbox was never finished: the daemon stopped while making it".to_string())
        } else if shim_pid.is_none() {
            Some("the pod's shim is not running".to_string())
        } else if cfg.share_process_namespace && !cfg.host_pid {
            // Only the shim knows whether the infra process still runs; a
            // shim that does not answer is not proof of anything.
            match self.shim(sid).state() {
                Ok(st) if st.infra_exit.is_some() => {
                    Some("the infra process (PID 1 of the pod) exited".to_string())
                }
                Ok(st) => {
                    infra_pid = st.infra_pid;
                    None
                }
                Err(_) => None,
            }
        } else {
            None
        };
        PodSandboxStatus {
            id: rec.id.clone(),
            metadata: cfg.metadata.clone(),
            state: if not_ready_reason.is_none() {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: rec.created_at.clone(),
            labels: cfg.labels.clone(),
            annotations: cfg.annotations.clone(),
            netns: (!cfg.host_network).then(|| self.paths.ns_dir(sid).join("net")),
            cgroup_parent: cfg.cgroup_parent.clone(),
            host_network: cfg.host_network,
            host_pid: cfg.host_pid,
            host_ipc: cfg.host_ipc,
            share_process_namespace: cfg.share_process_namespace,
            shim_pid,
            infra_pid,
            not_ready_reason,
            network: rec
                .network
                .as_ref()
                .and_then(crate::sandbox_network::sandbox_network),
        }
    }

    /// Ids of every sandbox with a record.
    pub fn sandbox_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.paths.sandboxes_data()) {
            for e in rd.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Ids of sandboxes with a state directory but no record: left by a
    /// crash in the middle of RunPodSandbox; `remove_pod_sandbox` takes
    /// them.
    pub fn orphaned_sandbox_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.paths.sandboxes_state()) {
            for e in rd.flatten() {
                if let Some(name) = e.file_name().to_str() {
                    if !self.paths.sandbox_record(name).exists() {
                        out.push(name.to_string());
                    }
                }
            }
        }
        out
    }

    pub fn list_pod_sandbox(&self, filter: &SandboxFilter) -> Vec<PodSandboxStatus> {
        let ids = match &filter.id {
            Some(id) => vec![id.clone()],
            None => self.sandbox_ids(),
        };
        let mut out: Vec<PodSandboxStatus> = ids
            .iter()
            .filter_map(|id| self.sandbox_record(id).ok())
            .filter(|rec| {
                filter
                    .labels
                    .iter()
                    .all(|(k, v)| rec.config.labels.get(k) == Some(v))
            })
            .map(|rec| self.status_of(&rec))
            .filter(|s| filter.matches(s))
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }
}
