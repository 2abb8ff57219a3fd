//! Where a pod's things live. Everything is keyed by pod UID.
//!
//! - `<state>/pods/<uid>/`: shim socket and config, pinned namespaces
//!   (`ns/`), libcontainer state (`lc/`), the pod's `/dev/shm` (`shm/`);
//! - `<root>/pods/<uid>/`: container bundles and rootfs (`c/<name>/`), logs
//!   (`logs/<name>/0.log`), volumes (`volumes/`), `/etc` files (`etc/`).
//! - cgroups: `<parent>/pod<uid>` (with `infra` and one child per
//!   container) and `<parent>/shim-<uid>`.

use std::path::{Path, PathBuf};

/// A unix socket path must fit in `sun_path` (108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
    state: PathBuf,
    cgroup_parent: String,
}

impl Paths {
    pub fn new(root: &Path, state: &Path, cgroup_parent: &str) -> Self {
        Self {
            root: root.to_path_buf(),
            state: state.to_path_buf(),
            cgroup_parent: cgroup_parent.trim_matches('/').to_string(),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn state(&self) -> &Path {
        &self.state
    }
    pub fn pods_state(&self) -> PathBuf {
        self.state.join("pods")
    }
    pub fn pods_data(&self) -> PathBuf {
        self.root.join("pods")
    }
    pub fn sandbox_state(&self, uid: &str) -> PathBuf {
        self.pods_state().join(uid)
    }
    pub fn sandbox_data(&self, uid: &str) -> PathBuf {
        self.pods_data().join(uid)
    }
    pub fn shim_socket(&self, uid: &str) -> PathBuf {
        self.sandbox_state(uid)
            .join(peapod_shim::server::SOCKET_NAME)
    }
    pub fn ns_dir(&self, uid: &str) -> PathBuf {
        self.sandbox_state(uid).join("ns")
    }
    pub fn container_root(&self, uid: &str) -> PathBuf {
        self.sandbox_state(uid).join("lc")
    }
    pub fn shm_dir(&self, uid: &str) -> PathBuf {
        self.sandbox_state(uid).join("shm")
    }
    pub fn etc_dir(&self, uid: &str) -> PathBuf {
        self.sandbox_data(uid).join("etc")
    }
    pub fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.sandbox_data(uid).join("volumes")
    }
    pub fn container_dir(&self, uid: &str, id: &str) -> PathBuf {
        self.sandbox_data(uid).join("c").join(id)
    }
    pub fn log_path(&self, uid: &str, container: &str, restart: u32) -> PathBuf {
        self.sandbox_data(uid)
            .join("logs")
            .join(container)
            .join(format!("{restart}.log"))
    }
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }
    pub fn pod_cgroup(&self, uid: &str) -> String {
        format!("{}/pod{uid}", self.cgroup_parent)
    }
    pub fn infra_cgroup(&self, uid: &str) -> String {
        format!("{}/infra", self.pod_cgroup(uid))
    }
    pub fn container_cgroup(&self, uid: &str, id: &str) -> String {
        format!("{}/{id}", self.pod_cgroup(uid))
    }
    pub fn shim_cgroup(&self, uid: &str) -> String {
        format!("{}/shim-{uid}", self.cgroup_parent)
    }
}
