//! `peapod inspect pod`: for the infra process and each container, its pid
//! and namespace inodes; and the pod's cgroup tree with limits.

use crate::{namespaces, Runtime};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// "(infra)" or the container name.
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
    pub sandbox_id: String,
    pub uid: String,
    pub shim_pid: Option<i32>,
    pub cgroup_version: u8,
    pub processes: Vec<ProcessInfo>,
    pub cgroups: Vec<CgroupInfo>,
    pub pinned: Vec<(String, Option<u64>)>,
    /// The pod's addresses from CNI.
    pub network: Option<crate::types::SandboxNetwork>,
}

impl Runtime {
    pub fn inspect_sandbox(&self, sid: &str) -> Result<SandboxInspect, crate::RuntimeError> {
        let sandbox = self.pod_sandbox_status(sid)?;
        let mut processes = Vec::new();
        let mut cgroups = vec![CgroupInfo {
            path: sandbox.cgroup_parent.clone(),
            limits: self.cgroups.read_limits(&sandbox.cgroup_parent),
        }];
        if let Some(pid) = sandbox.infra_pid {
            processes.push(ProcessInfo {
                name: "(infra)".into(),
                pid,
                namespaces: namespaces::process_inodes(pid),
            });
            let rel = crate::paths::container_cgroup(&sandbox.cgroup_parent, sid);
            cgroups.push(CgroupInfo {
                limits: self.cgroups.read_limits(&rel),
                path: rel,
            });
        }
        let containers = self.list_containers(&crate::ContainerFilter {
            sandbox_id: Some(sid.to_string()),
            ..Default::default()
        });
        for c in containers {
            let rec = self.container_record(&c.id)?;
            let pid = c.pid.unwrap_or(0);
            processes.push(ProcessInfo {
                name: c.metadata.name.clone(),
                pid,
                namespaces: if pid > 0 {
                    namespaces::process_inodes(pid)
                } else {
                    Vec::new()
                },
            });
            cgroups.push(CgroupInfo {
                limits: self.cgroups.read_limits(&rec.cgroup),
                path: rec.cgroup,
            });
        }
        let pinned = ["net", "ipc", "uts", "pid"]
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    namespaces::inode(&self.paths.ns_dir(sid).join(k)),
                )
            })
            .filter(|(_, i)| i.is_some())
            .collect();
        Ok(SandboxInspect {
            sandbox_id: sid.into(),
            uid: sandbox.metadata.uid.clone(),
            shim_pid: sandbox.shim_pid,
            cgroup_version: self.cgroups.version(),
            processes,
            cgroups,
            pinned,
            network: sandbox.network.clone(),
        })
    }
}
