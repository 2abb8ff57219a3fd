//! The runtime's own types, shaped like CRI's (`PodSandboxStatus`,
//! `ContainerStatus`, filters, stats), so the CRI server is a thin
//! translation and the node never sees the shim's wire types.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A new opaque id: 32 hex digits (sandboxes and containers alike).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodSandboxMetadata {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    #[default]
    NotReady,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodSandboxStatus {
    pub id: String,
    pub metadata: PodSandboxMetadata,
    pub state: SandboxState,
    /// RFC 3339.
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The pinned network namespace (None with hostNetwork).
    pub netns: Option<PathBuf>,
    pub cgroup_parent: String,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub share_process_namespace: bool,
    /// The shim, when it runs.
    pub shim_pid: Option<i32>,
    /// The infra process (shareProcessNamespace only), when it runs.
    pub infra_pid: Option<i32>,
    /// Why the sandbox is not ready (shim gone, infra exited, stopped).
    pub not_ready_reason: Option<String>,
    /// The pod's addresses from CNI (CRI's PodSandboxNetworkStatus);
    /// None with hostNetwork or before CNI ADD.
    #[serde(default)]
    pub network: Option<SandboxNetwork>,
}

/// CRI's PodSandboxNetworkStatus.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxNetwork {
    /// The primary address (IPv4 first).
    pub ip: String,
    pub additional_ips: Vec<String>,
    pub gateway: Option<String>,
    /// The CNI network's name and the pod's interface.
    pub network: String,
    pub interface: String,
}

/// Sandboxes and containers have attempts: newer means a higher attempt,
/// then a later creation.
pub trait Attempted {
    fn attempt(&self) -> u32;
    fn created_at(&self) -> &str;
}

/// Order by attempt, then creation time (`max_by(by_attempt)` is the
/// newest).
pub fn by_attempt<T: Attempted>(a: &T, b: &T) -> std::cmp::Ordering {
    a.attempt()
        .cmp(&b.attempt())
        .then_with(|| a.created_at().cmp(b.created_at()))
}

impl<T: Attempted> Attempted for &T {
    fn attempt(&self) -> u32 {
        (*self).attempt()
    }
    fn created_at(&self) -> &str {
        (*self).created_at()
    }
}

impl Attempted for PodSandboxStatus {
    fn attempt(&self) -> u32 {
        self.metadata.attempt
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
}

impl Attempted for ContainerStatus {
    fn attempt(&self) -> u32 {
        self.metadata.attempt
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
}

#[derive(Debug, Clone, Default)]
pub struct SandboxFilter {
    pub id: Option<String>,
    pub state: Option<SandboxState>,
    /// Every pair must match.
    pub labels: BTreeMap<String, String>,
}

impl SandboxFilter {
    pub fn matches(&self, s: &PodSandboxStatus) -> bool {
        self.id.as_ref().is_none_or(|id| &s.id == id)
            && self.state.is_none_or(|st| s.state == st)
            && self.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerMetadata {
    pub name: String,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub metadata: ContainerMetadata,
    pub state: ContainerState,
    /// The container's init process while it runs.
    pub pid: Option<i32>,
    /// RFC 3339 times.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// `OOMKilled`, `Completed`, `Error` once exited.
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The image as the config named it, and its `name@digest`.
    pub image: String,
    pub image_ref: String,
    /// Absolute path of the CRI-format log file.
    pub log_path: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    pub id: Option<String>,
    pub sandbox_id: Option<String>,
    pub state: Option<ContainerState>,
    pub labels: BTreeMap<String, String>,
}

impl ContainerFilter {
    pub fn matches(&self, c: &ContainerStatus) -> bool {
        self.id.as_ref().is_none_or(|id| &c.id == id)
            && self.sandbox_id.as_ref().is_none_or(|s| &c.sandbox_id == s)
            && self.state.is_none_or(|st| c.state == st)
            && self.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
    }
}

/// How an exec'd process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecExit {
    /// As a shell reports it: the status, or 128 + signal.
    pub code: i32,
    pub signal: Option<i32>,
}

/// ExecSync's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSyncResult {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    /// The timeout passed and the process was killed.
    pub timed_out: bool,
}

/// Usage read from a cgroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Nanoseconds since epoch of the reading.
    pub timestamp_ns: i64,
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory in use minus inactive file pages (kubelet's working set).
    pub memory_working_set: Option<u64>,
    pub memory_usage: Option<u64>,
    pub pids: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerStats {
    pub id: String,
    pub metadata: ContainerMetadata,
    pub usage: CgroupUsage,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodSandboxStats {
    pub id: String,
    pub metadata: PodSandboxMetadata,
    pub usage: CgroupUsage,
    pub containers: Vec<ContainerStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_opaque_and_unique() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
