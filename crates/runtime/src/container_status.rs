//! ContainerStatus and ListContainers, read from what is on disk: the
//! runtime's record of the container and the state the shim persists at
//! create, start and exit. An exited container's status therefore outlives
//! StopPodSandbox, the shim and the daemon, until RemoveContainer or
//! RemovePodSandbox.

use crate::error::RuntimeError;
use crate::types::{ContainerFilter, ContainerMetadata, ContainerState, ContainerStatus};
use crate::Runtime;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the runtime keeps of a container, at
/// `<root>/sandboxes/<sid>/containers/<cid>/container.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub metadata: ContainerMetadata,
    pub image: String,
    pub image_ref: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Absolute path of the log file.
    pub log_path: PathBuf,
    pub created_at: String,
    /// The container's cgroup (relative to the hierarchy root).
    pub cgroup: String,
    /// The image's `StopSignal`, as a number (SIGTERM when None).
    #[serde(default)]
    pub stop_signal: Option<i32>,
    /// CRI `stdin_once`: the first attach's stdin is the container's.
    #[serde(default)]
    pub stdin_once: bool,
}

pub(crate) const RECORD: &str = "container.json";
pub(crate) const STATUS: &str = "status.json";

impl Runtime {
    /// The sandbox a container belongs to.
    pub(crate) fn sandbox_of(&self, cid: &str) -> Result<String, RuntimeError> {
        if let Some(sid) = self.index_get(cid) {
            return Ok(sid);
        }
        // Not in the index (made by another daemon instance on this root
        // before a restart): look on disk once.
        for sid in self.sandbox_ids() {
            if self.paths.container_dir(&sid, cid).join(RECORD).exists() {
                self.index_put(cid, &sid);
                return Ok(sid);
            }
        }
        Err(RuntimeError::NotFound(format!("container {cid}")))
    }

    pub fn container_record(&self, cid: &str) -> Result<ContainerRecord, RuntimeError> {
        let sid = self.sandbox_of(cid)?;
        crate::read_json(
            &self.paths.container_dir(&sid, cid).join(RECORD),
            &format!("container {cid}"),
        )
    }

    /// The records of a sandbox's containers.
    pub(crate) fn container_records(&self, sid: &str) -> Vec<ContainerRecord> {
        let Ok(rd) = std::fs::read_dir(self.paths.containers_dir(sid)) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| std::fs::read(e.path().join(RECORD)).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// The state the shim last persisted for `cid`.
    pub(crate) fn shim_container_state(
        &self,
        sid: &str,
        cid: &str,
    ) -> Option<peapod_shim::ContainerState> {
        let p = self.paths.container_dir(sid, cid).join(STATUS);
        std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub fn container_status(&self, cid: &str) -> Result<ContainerStatus, RuntimeError> {
        let rec = self.container_record(cid)?;
        let shim_alive = self.shim_pid(&rec.sandbox_id).is_some();
        let st = self.shim_container_state(&rec.sandbox_id, cid);
        Ok(status_from(&rec, st.as_ref(), shim_alive))
    }

    pub fn list_containers(&self, filter: &ContainerFilter) -> Vec<ContainerStatus> {
        let sids = match &filter.sandbox_id {
            Some(s) => vec![s.clone()],
            None => self.sandbox_ids(),
        };
        let mut out = Vec::new();
        for sid in sids {
            let shim_alive = self.shim_pid(&sid).is_some();
            for rec in self.container_records(&sid) {
                let cid = rec.id.clone();
                if filter.id.as_ref().is_some_and(|id| id != &cid) {
                    continue;
                }
                self.index_put(&cid, &sid);
                let st = self.shim_container_state(&sid, &cid);
                let status = status_from(&rec, st.as_ref(), shim_alive);
                if filter.matches(&status) {
                    out.push(status);
                }
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }
}

/// Merge the record and the shim's persisted state. A container the shim
/// never recorded as exited, whose shim is gone, is `Unknown` until
/// StopPodSandbox kills what is left and records its end.
pub(crate) fn status_from(
    rec: &ContainerRecord,
    st: Option<&peapod_shim::ContainerState>,
    shim_alive: bool,
) -> ContainerStatus {
    use peapod_shim::ContainerStatus as S;
    let mut out = ContainerStatus {
        id: rec.id.clone(),
        sandbox_id: rec.sandbox_id.clone(),
        metadata: rec.metadata.clone(),
        state: ContainerState::Created,
        pid: None,
        created_at: rec.created_at.clone(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        signal: None,
        reason: None,
        message: None,
        image: rec.image.clone(),
        image_ref: rec.image_ref.clone(),
        log_path: rec.log_path.clone(),
        labels: rec.labels.clone(),
        annotations: rec.annotations.clone(),
    };
    let Some(st) = st else {
        // Created by the runtime but never handed to a shim that kept it.
        out.state = if shim_alive {
            ContainerState::Created
        } else {
            ContainerState::Unknown
        };
        return out;
    };
    out.started_at = st.started_at.clone();
    match (st.status, &st.exit) {
        (S::Exited, Some(exit)) | (_, Some(exit)) => {
            out.state = ContainerState::Exited;
            out.exit_code = Some(exit.code);
            out.signal = exit.signal;
            out.finished_at = Some(exit.finished_at.clone());
            out.reason = Some(
                if exit.oom_killed {
                    "OOMKilled"
                } else if exit.code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_string(),
            );
        }
        (S::Exited, None) => {
            out.state = ContainerState::Exited;
            out.exit_code = Some(255);
            out.reason = Some("Error".into());
        }
        (S::Running, None) if shim_alive => {
            out.state = ContainerState::Running;
            out.pid = Some(st.pid);
        }
        (S::Created, None) if shim_alive => {
            out.state = ContainerState::Created;
        }
        (_, None) => out.state = ContainerState::Unknown,
    }
    out
}
