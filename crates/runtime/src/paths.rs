//! Where a sandbox's things live. Everything is keyed by opaque sandbox
//! and container ids, never by pod UID or container name, so any valid
//! container name (`infra`, `shim`, ...) is just a name.
//!
//! - `<state>/sandboxes/<sid>/`: shim socket, config and pid file, pinned
//!   namespaces (`ns/`), libcontainer state (`lc/`), the pod's `/dev/shm`
//!   (`shm/`);
//! - `<root>/sandboxes/<sid>/`: the sandbox record (`sandbox.json`), `/etc`
//!   files (`etc/`), and per container `containers/<cid>/`: its record
//!   (`container.json`), the status the shim keeps (`status.json`), the OCI
//!   bundle and rootfs.
//! - cgroups: the sandbox's cgroup parent (given by the caller) holds one
//!   child per container, named by its id, and the infra process's, named
//!   by the sandbox id; the shims share `<--cgroup-parent>/shims`.
//!
//! What the caller owns (logs, volumes) lives where the caller says.

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
    pub fn sandboxes_state(&self) -> PathBuf {
        self.state.join("sandboxes")
    }
    pub fn sandboxes_data(&self) -> PathBuf {
        self.root.join("sandboxes")
    }
    pub fn sandbox_state(&self, sid: &str) -> PathBuf {
        self.sandboxes_state().join(sid)
    }
    pub fn sandbox_data(&self, sid: &str) -> PathBuf {
        self.sandboxes_data().join(sid)
    }
    pub fn sandbox_record(&self, sid: &str) -> PathBuf {
        self.sandbox_data(sid).join("sandbox.json")
    }
    pub fn shim_socket(&self, sid: &str) -> PathBuf {
        self.sandbox_state(sid)
            .join(peapod_shim::server::SOCKET_NAME)
    }
    pub fn shim_pid_file(&self, sid: &str) -> PathBuf {
        self.sandbox_state(sid).join("shim.pid")
    }
    pub fn ns_dir(&self, sid: &str) -> PathBuf {
        self.sandbox_state(sid).join("ns")
    }
    pub fn container_root(&self, sid: &str) -> PathBuf {
        self.sandbox_state(sid).join("lc")
    }
    pub fn shm_dir(&self, sid: &str) -> PathBuf {
        self.sandbox_state(sid).join("shm")
    }
    pub fn etc_dir(&self, sid: &str) -> PathBuf {
        self.sandbox_data(sid).join("etc")
    }
    pub fn containers_dir(&self, sid: &str) -> PathBuf {
        self.sandbox_data(sid).join("containers")
    }
    pub fn container_dir(&self, sid: &str, cid: &str) -> PathBuf {
        self.containers_dir(sid).join(cid)
    }
    /// The daemon's datagram socket shims report state changes to.
    pub fn events_socket(&self) -> PathBuf {
        self.state.join("events.sock")
    }
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }
    /// The one cgroup every shim (and its short-lived helpers) runs in,
    /// as containerd's shims share one: a cgroup per shim would cost a
    /// cgroup creation in every v1 hierarchy per pod for nothing - a shim
    /// is ended by its proven pid, not by its cgroup.
    pub fn shims_cgroup(&self) -> String {
        format!("{}/shims", self.cgroup_parent)
    }
}

/// A container's cgroup: a child of its sandbox's parent, named by its id.
pub fn container_cgroup(sandbox_parent: &str, cid: &str) -> String {
    format!("{}/{cid}", sandbox_parent.trim_end_matches('/'))
}
