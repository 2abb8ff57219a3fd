//! peapod-runtime: the node runtime, shaped like CRI.
//!
//! Sandboxes (`sandbox_*`), containers (`container_*`), exec, status and
//! inspection, on top of the per-pod shim, youki's libcontainer, overlayfs
//! image rootfs and cgroups v1/v2. The node (kubelet part) drives pods only
//! through this interface, the way kubelet drives containerd. The API is
//! blocking; async callers use `spawn_blocking`.

pub mod cgroups;
mod container_create;
mod container_exec;
mod container_remove;
mod container_start;
mod container_stop;
pub mod error;
pub mod etc_files;
pub mod inspect;
pub mod mounts;
pub mod namespaces;
pub mod paths;
mod sandbox_remove;
pub mod sandbox_run;
pub mod security;
pub mod spec;
pub mod user;

pub use container_create::{ContainerConfig, SeccompConfig, SecurityConfig, VolumeMount};
pub use container_exec::ExecSession;
pub use error::RuntimeError;
pub use paths::Paths;
pub use sandbox_run::SandboxConfig;

use cgroups::Cgroups;
use peapod_image::ImageStore;
use peapod_shim::{ShimClient, ShimState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Durable data: `--root`.
    pub root: PathBuf,
    /// Runtime state: `--state` (sockets, pinned namespaces).
    pub state: PathBuf,
    /// `--cgroup-parent`.
    pub cgroup_parent: String,
    /// `--pod-max-pids`.
    pub pod_max_pids: Option<i64>,
    /// The binary run as `shim`, `shim-helper` and `infra` (`peapod-shim`,
    /// or `peapod` itself).
    pub exe: PathBuf,
}

pub struct Runtime {
    pub opts: RuntimeOptions,
    pub paths: Paths,
    pub cgroups: Cgroups,
    pub images: Arc<ImageStore>,
}

impl Runtime {
    pub fn new(opts: RuntimeOptions, images: Arc<ImageStore>) -> Result<Self, RuntimeError> {
        let cgroups = Cgroups::detect()?;
        let paths = Paths::new(&opts.root, &opts.state, &opts.cgroup_parent);
        std::fs::create_dir_all(paths.pods_state())
            .map_err(RuntimeError::io(paths.pods_state()))?;
        std::fs::create_dir_all(paths.pods_data()).map_err(RuntimeError::io(paths.pods_data()))?;
        Ok(Self {
            opts,
            paths,
            cgroups,
            images,
        })
    }

    pub fn shim(&self, uid: &str) -> ShimClient {
        ShimClient::new(self.paths.shim_socket(uid))
    }

    /// The shim's view of a sandbox: infra process, containers, exits.
    pub fn sandbox_state(&self, uid: &str) -> Result<ShimState, RuntimeError> {
        Ok(self.shim(uid).state()?)
    }

    /// Wait (up to `timeout`) for the sandbox state to change after `since`.
    pub fn wait_change(
        &self,
        uid: &str,
        since: u64,
        timeout: Duration,
    ) -> Result<ShimState, RuntimeError> {
        Ok(self.shim(uid).wait_change(since, timeout)?)
    }

    /// UIDs of sandboxes whose state directory exists (for adoption and
    /// clean-up after a daemon restart).
    pub fn list_sandboxes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in [self.paths.pods_state(), self.paths.pods_data()] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if let Some(name) = e.file_name().to_str() {
                        if !out.iter().any(|u: &String| u == name) {
                            out.push(name.to_string());
                        }
                    }
                }
            }
        }
        out
    }
}
