//! Messages between the daemon and a pod's shim.
//!
//! Each connection carries one JSON request line and one JSON response line.
//! Responses that hand file descriptors over (an exec's stdio) carry them as
//! SCM_RIGHTS on a single trailing byte after the JSON line.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the shim needs to build a sandbox; written by the runtime to
/// `<pod dir>/sandbox.json` before the shim is started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub uid: String,
    pub hostname: String,
    /// Create a new network namespace (false: hostNetwork).
    pub new_net: bool,
    /// Create a new ipc namespace (false: hostIPC).
    pub new_ipc: bool,
    /// Create a new uts namespace (false: hostNetwork).
    pub new_uts: bool,
    /// Create a pod pid namespace whose PID 1 is the infra process
    /// (shareProcessNamespace: true).
    pub new_pid: bool,
    /// cgroup.procs files the shim writes itself to, first thing.
    pub shim_cgroup_procs: Vec<PathBuf>,
    /// cgroup.procs files the infra process is written to.
    pub infra_cgroup_procs: Vec<PathBuf>,
    /// libcontainer's state root for this pod's containers.
    pub container_root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Current state of the infra process, containers and execs.
    State,
    /// Like `State`, but waits until the state generation is greater than
    /// `since` (or `timeout_ms` passes).
    WaitChange {
        since: u64,
        timeout_ms: u64,
    },
    /// Create a container from an OCI bundle (its init waits for `Start`).
    Create(CreateRequest),
    Start {
        id: String,
    },
    /// Signal a container (all: every process of its cgroup).
    Kill {
        id: String,
        signal: i32,
        all: bool,
    },
    /// Remove a container's state and cgroup; it must have exited.
    Delete {
        id: String,
    },
    /// Run a process in a running container.
    Exec(ExecRequest),
    /// Wait for an exec'd process to exit.
    WaitExec {
        exec_id: String,
    },
    /// Kill the infra process, answer, and exit.
    Shutdown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    /// Allocate a pty (the spec's process.terminal must be true).
    pub tty: bool,
    /// Keep stdin open (a pipe the shim holds).
    pub stdin: bool,
    /// CRI-format log file for stdout/stderr.
    pub log_path: PathBuf,
    /// File with the container cgroup's OOM kill counter
    /// (v1 `memory.oom_control`, v2 `memory.events`).
    pub oom_events: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    pub id: String,
    /// An OCI `process` JSON (args, env, cwd, user, capabilities, terminal).
    pub process_json: PathBuf,
    pub tty: bool,
    pub stdin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    State(ShimState),
    Created {
        pid: i32,
    },
    /// The exec started; its stdio fds follow as SCM_RIGHTS, in the order
    /// given by `fds` ("stdin", "stdout", "stderr" or "pty").
    ExecStarted {
        exec_id: String,
        pid: i32,
        fds: Vec<String>,
    },
    Exited(ExitInfo),
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimState {
    pub generation: u64,
    pub shim_pid: i32,
    pub infra_pid: i32,
    /// Set once the infra process has exited.
    pub infra_exit: Option<ExitInfo>,
    pub containers: BTreeMap<String, ContainerState>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub pid: i32,
    pub status: ContainerStatus,
    /// RFC 3339 times.
    pub created_at: String,
    pub started_at: Option<String>,
    pub exit: Option<ExitInfo>,
    pub log_path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code as a shell reports it: the status, or 128 + signal.
    pub code: i32,
    pub signal: Option<i32>,
    pub finished_at: String,
    /// The cgroup saw an OOM kill while this process ran.
    pub oom_killed: bool,
}

/// Arguments of one helper run (`peapod shim-helper`), passed as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum HelperAction {
    /// Create a container. Its stdio are the helper's fds 3, 4, 5 unless
    /// `console_socket` is set.
    Create {
        root: PathBuf,
        id: String,
        bundle: PathBuf,
        console_socket: Option<PathBuf>,
    },
    Start {
        root: PathBuf,
        id: String,
    },
    Exec {
        root: PathBuf,
        id: String,
        process_json: PathBuf,
        console_socket: Option<PathBuf>,
    },
    Kill {
        root: PathBuf,
        id: String,
        signal: i32,
        all: bool,
    },
    Delete {
        root: PathBuf,
        id: String,
    },
}

/// What a helper prints on its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HelperResult {
    Ok { pid: Option<i32> },
    Error { message: String },
}
