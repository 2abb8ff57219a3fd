//! ContainerStats / ListContainerStats / PodSandboxStats: usage read from
//! the cgroups (cpu time, memory working set as kubelet defines it, pids).

use crate::error::RuntimeError;
use crate::types::{ContainerFilter, ContainerState, ContainerStats, PodSandboxStats};
use crate::Runtime;

impl Runtime {
    pub fn container_stats(&self, cid: &str) -> Result<ContainerStats, RuntimeError> {
        let rec = self.container_record(cid)?;
        Ok(ContainerStats {
            id: rec.id.clone(),
            metadata: rec.metadata.clone(),
            usage: self.cgroups.usage(&rec.cgroup),
        })
    }

    pub fn list_container_stats(&self, filter: &ContainerFilter) -> Vec<ContainerStats> {
        self.list_containers(filter)
            .into_iter()
            .filter(|c| c.state == ContainerState::Running)
            .filter_map(|c| self.container_stats(&c.id).ok())
            .collect()
    }

    pub fn pod_sandbox_stats(&self, sid: &str) -> Result<PodSandboxStats, RuntimeError> {
        let rec = self.sandbox_record(sid)?;
        let containers = self.list_container_stats(&ContainerFilter {
            sandbox_id: Some(sid.to_string()),
            ..Default::default()
        });
        Ok(PodSandboxStats {
            id: sid.to_string(),
            metadata: rec.config.metadata.clone(),
            usage: self.cgroups.usage(&rec.config.cgroup_parent),
            containers,
        })
    }
}
