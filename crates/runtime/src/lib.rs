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
mod container_log;
mod container_remove;
mod container_start;
mod container_stats;
pub mod container_status;
pub(crate) mod container_stop;
mod container_update;
pub mod error;
pub mod etc_files;
pub mod inspect;
pub mod mounts;
pub mod namespaces;
pub mod paths;
mod sandbox_network;
pub mod sandbox_port_forward;
mod sandbox_remove;
pub mod sandbox_run;
mod sandbox_status;
mod sandbox_stop;
pub mod security;
pub mod spec;
pub mod types;
pub mod user;

pub use container_create::{
    ContainerConfig, DeviceMapping, MountPropagation, SeccompConfig, SecurityConfig, VolumeMount,
};
pub use container_exec::ExecSession;
pub use error::RuntimeError;
pub use etc_files::{DnsConfig, HostAlias};
pub use paths::Paths;
pub use peapod_net::egress;
pub use peapod_net::{PodNetwork, PodNetworkStatus, PortMapping};
pub use sandbox_run::{SandboxCgroup, SandboxConfig};
pub use types::*;

use cgroups::Cgroups;
use peapod_image::ImageStore;
use peapod_shim::ShimClient;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Durable data: `--root`.
    pub root: PathBuf,
    /// Runtime state: `--state` (sockets, pinned namespaces).
    pub state: PathBuf,
    /// `--cgroup-parent`: where the shims' cgroups go.
    pub cgroup_parent: String,
    /// `--pod-max-pids`.
    pub pod_max_pids: Option<i64>,
    /// The binary run as `shim`, `shim-helper` and `infra` (`peapod-shim`,
    /// or `peapod` itself).
    pub exe: PathBuf,
    /// `--container-log-max-size` / `--container-log-max-files`.
    pub log_rotation: peapod_shim::LogRotation,
    /// The pod network (CNI); None: pods get only `lo`.
    pub network: Option<peapod_net::PodNetwork>,
    /// Masquerade of pod egress by peapod (a network whose bridge does
    /// not masquerade); shared with the CRI's runtime, so one table
    /// follows the sandboxes of both.
    pub egress: Option<Arc<peapod_net::egress::Egress>>,
}

pub struct Runtime {
    pub opts: RuntimeOptions,
    pub paths: Paths,
    pub cgroups: Cgroups,
    pub images: Arc<ImageStore>,
    /// Container id → sandbox id.
    index: Mutex<HashMap<String, String>>,
    /// Cgroup parent → the sandboxes in it (sandboxes of one pod share
    /// their pod's cgroup; the last one out removes it).
    parents: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
}

/// Now, RFC 3339 with nanoseconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Write `value` as JSON to `path` atomically (write, then rename).
pub(crate) fn write_json_atomic(
    path: &Path,
    value: &impl serde::Serialize,
) -> Result<(), RuntimeError> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::Config(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(RuntimeError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(RuntimeError::io(path))
}

/// Read a record the runtime wrote with [`write_json_atomic`]; a missing
/// file is CRI's NotFound for `what` ("sandbox ID", "container ID").
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<T, RuntimeError> {
    let b = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            RuntimeError::NotFound(what.to_string())
        } else {
            RuntimeError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    serde_json::from_slice(&b)
        .map_err(|e| RuntimeError::Config(format!("{what}: {}: {e}", path.display())))
}

impl Runtime {
    pub fn new(opts: RuntimeOptions, images: Arc<ImageStore>) -> Result<Self, RuntimeError> {
        let cgroups = Cgroups::detect()?;
        let paths = Paths::new(&opts.root, &opts.state, &opts.cgroup_parent);
        for d in [paths.sandboxes_state(), paths.sandboxes_data()] {
            std::fs::create_dir_all(&d).map_err(RuntimeError::io(&d))?;
        }
        cgroups.create(
            &paths.shims_cgroup(),
            &cgroups::resources::CgroupValues::default(),
        )?;
        let rt = Self {
            opts,
            paths,
            cgroups,
            images,
            index: Mutex::new(HashMap::new()),
            parents: Mutex::new(HashMap::new()),
        };
        // Build the container and cgroup-parent indexes from disk.
        let _ = rt.list_containers(&ContainerFilter::default());
        for sid in rt.sandbox_ids() {
            if let Ok(rec) = rt.sandbox_record(&sid) {
                rt.parent_put(&rec.config.cgroup_parent, &sid);
            }
        }
        rt.seed_egress();
        Ok(rt)
    }

    /// The daemon is stopping: remove the shims' shared cgroup and the
    /// cgroup parent when no pod uses them any more (pods keep running
    /// across a daemon restart, and then both stay).
    pub fn release(&self) {
        if let Some(e) = &self.opts.egress {
            if let Err(m) = e.release() {
                tracing::warn!(
                    "removing the pod egress masquerade (table ip {}): {m}",
                    e.table()
                );
            }
        }
        let shims = self.paths.shims_cgroup();
        if self.cgroups.all_pids(&shims).is_empty() && self.sandbox_ids().is_empty() {
            if let Err(e) = self.cgroups.remove(&shims) {
                tracing::warn!("removing the shims' cgroup: {e}");
            }
            // Fails harmlessly while a process still lives below it.
            if let Err(e) = self.cgroups.remove(self.paths.cgroup_parent()) {
                tracing::warn!("removing the cgroup parent: {e}");
            }
        }
    }

    pub fn shim(&self, sid: &str) -> ShimClient {
        ShimClient::new(self.paths.shim_socket(sid))
    }

    pub(crate) fn parent_put(&self, parent: &str, sid: &str) {
        if let Ok(mut m) = self.parents.lock() {
            m.entry(parent.trim_matches('/').to_string())
                .or_default()
                .insert(sid.to_string());
        }
    }

    /// Forget `sid` in `parent`; the other sandboxes still in it.
    pub(crate) fn parent_remove(&self, parent: &str, sid: &str) -> Vec<String> {
        let Ok(mut m) = self.parents.lock() else {
            return Vec::new();
        };
        let key = parent.trim_matches('/');
        let rest: Vec<String> = match m.get_mut(key) {
            Some(set) => {
                set.remove(sid);
                set.iter().cloned().collect()
            }
            None => Vec::new(),
        };
        if rest.is_empty() {
            m.remove(key);
        }
        rest
    }

    pub(crate) fn index_get(&self, cid: &str) -> Option<String> {
        self.index.lock().ok()?.get(cid).cloned()
    }

    pub(crate) fn index_put(&self, cid: &str, sid: &str) {
        if let Ok(mut m) = self.index.lock() {
            m.insert(cid.to_string(), sid.to_string());
        }
    }

    pub(crate) fn index_remove(&self, cid: &str) {
        if let Ok(mut m) = self.index.lock() {
            m.remove(cid);
        }
    }
}
