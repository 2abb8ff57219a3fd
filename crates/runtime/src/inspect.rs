//! `peapod inspect pod`: for the infra process and each container, its pid
//! and namespace inodes; and the pod's cgroup tree with limits.

use crate::{namespaces, Runtime};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// "infra" or the container name.
    pub name: String,
    pub pid: i32,
    /// (kind, inode) for net, ipc, uts, pid, mnt, cgroup, user.
    pub namespaces: Vec<(String, Option<u64>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CgroupInfo {
    pub path: String,
    pub limits: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxInspect {
    pub uid: String,
    pub shim_pid: i32,
    pub cgroup_version: u8,
    pub processes: Vec<ProcessInfo>,
    pub cgroups: Vec<CgroupInfo>,
    pub pinned: Vec<(String, Option<u64>)>,
}

impl Runtime {
    pub fn inspect_sandbox(&self, uid: &str) -> Result<SandboxInspect, crate::RuntimeError> {
        let state = self.sandbox_state(uid)?;
        let mut processes = vec![ProcessInfo {
            name: "infra".into(),
            pid: state.infra_pid,
            namespaces: namespaces::process_inodes(state.infra_pid),
        }];
        let pod_cg = self.paths.pod_cgroup(uid);
        let mut cgroups = vec![
            CgroupInfo {
                path: pod_cg.clone(),
                limits: self.cgroups.read_limits(&pod_cg),
            },
            CgroupInfo {
                path: self.paths.infra_cgroup(uid),
                limits: self.cgroups.read_limits(&self.paths.infra_cgroup(uid)),
            },
        ];
        for (id, c) in &state.containers {
            let running = c.status == peapod_shim::ContainerStatus::Running;
            processes.push(ProcessInfo {
                name: id.clone(),
                pid: if running { c.pid } else { 0 },
                namespaces: if running {
                    namespaces::process_inodes(c.pid)
                } else {
                    Vec::new()
                },
            });
            let rel = self.paths.container_cgroup(uid, id);
            cgroups.push(CgroupInfo {
                path: rel.clone(),
                limits: self.cgroups.read_limits(&rel),
            });
        }
        let pinned = ["net", "ipc", "uts", "pid"]
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    namespaces::inode(&self.pinned_namespace(uid, k)),
                )
            })
            .filter(|(_, i)| i.is_some())
            .collect();
        Ok(SandboxInspect {
            uid: uid.into(),
            shim_pid: state.shim_pid,
            cgroup_version: self.cgroups.version(),
            processes,
            cgroups,
            pinned,
        })
    }
}
