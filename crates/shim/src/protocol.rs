//! Messages between the daemon and a pod's shim.
//!
//! Each connection carries one JSON request line and one JSON response line.
//! Responses that hand file descriptors over (an exec's stdio) carry them as
//! SCM_RIGHTS on a single trailing byte after the JSON line.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the shim needs to run a sandbox; written by the runtime to
/// `<sandbox state dir>/sandbox.json` before the shim is started.
///
/// The pod's net, ipc and uts namespaces are made and pinned by the runtime
/// before the shim starts: the shim owns no namespace. Only a pod that
/// shares its pid namespace gets an infra process, PID 1 of that namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// The sandbox's opaque id.
    pub id: String,
    /// The infra process, for `shareProcessNamespace: true` only.
    pub infra: Option<InfraConfig>,
    /// cgroup.procs files the shim writes itself to, first thing.
    pub shim_cgroup_procs: Vec<PathBuf>,
    /// libcontainer's state root for this sandbox's containers.
    pub container_root: PathBuf,
    /// The daemon's datagram socket: the shim sends `<id> <generation>` on
    /// every state change, best effort (the daemon may be down).
    #[serde(default)]
    pub events_socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfraConfig {
    /// Pinned namespace files the infra process joins (net, ipc, uts)
    /// before it execs; it is cloned into a new pid namespace.
    pub join: Vec<PathBuf>,
    /// cgroup.procs files the infra process is written to.
    pub cgroup_procs: Vec<PathBuf>,
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
    /// Signal an exec'd process (ExecSync's timeout).
    KillExec {
        exec_id: String,
        signal: i32,
    },
    /// Kill the infra process (if any), answer, and exit.
    Shutdown,
    /// Attach to a running container's input (CRI Attach): a copy of the
    /// write end of its stdin pipe, or of its pty master with a tty,
    /// answered as [`Response::Fds`].
    AttachStdin {
        id: String,
        /// CRI `stdin_once`: hand over the shim's own write end of the
        /// stdin pipe, so the container's stdin closes when this attach
        /// closes it; later attaches get none. (A pty is always shared.)
        #[serde(default)]
        once: bool,
    },
    /// Attach to a running container's output: the read ends of two
    /// pipes ("stdout", "stderr") that get a copy of what it writes from
    /// now on (a tty container's output is all "stdout"), answered as
    /// [`Response::Fds`]; they end when the container's output does.
    AttachOutput {
        id: String,
    },
    /// Reopen a container's log file at its path (CRI ReopenContainerLog:
    /// whoever renamed the file wants the next records in a new one).
    ReopenLog {
        id: String,
    },
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
    /// Where the shim keeps the container's [`ContainerState`] on disk
    /// (written atomically at create, start and exit), so an exited
    /// container's status outlives the shim.
    pub status_file: PathBuf,
    /// File with the container cgroup's OOM kill counter
    /// (v1 `memory.oom_control`, v2 `memory.events`).
    pub oom_events: Option<PathBuf>,
    /// When the log file is rotated (kubelet's `containerLogMaxSize` and
    /// `containerLogMaxFiles`).
    #[serde(default)]
    pub log_rotation: LogRotation,
}

/// Container log rotation, as kubelet's `containerLogMaxSize` /
/// `containerLogMaxFiles`: the live file is rotated once it would grow past
/// `max_size` bytes, and at most `max_files` files (the live one included)
/// are kept.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogRotation {
    /// Bytes; 0 turns rotation off.
    pub max_size: u64,
    /// Files kept, the live one included (kubelet requires at least 2).
    pub max_files: u32,
}

impl Default for LogRotation {
    /// kubelet's defaults: 10Mi and 5 files.
    fn default() -> Self {
        Self {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
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
    /// File descriptors follow as SCM_RIGHTS, named in order ("stdin" or
    /// "pty"); none when the container has no input to attach to.
    Fds {
        fds: Vec<String>,
    },
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimState {
    pub generation: u64,
    pub shim_pid: i32,
    /// The infra process (shareProcessNamespace only).
    pub infra_pid: Option<i32>,
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
