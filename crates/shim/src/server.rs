//! The shim's main loop: control socket, reaper and state.
//!
//! Single-threaded (a tokio current-thread runtime with a `LocalSet`), so
//! the state lives in an `Rc<RefCell<_>>` and no lock is held across an
//! await. Helper output and log pumps are async on that one thread.

use crate::fdpass;
use crate::infra;
use crate::logs;
use crate::protocol::*;
use chrono::{SecondsFormat, Utc};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, Pid};
use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};

pub const SOCKET_NAME: &str = "shim.sock";
pub const CONFIG_NAME: &str = "sandbox.json";

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

enum Proc {
    Infra,
    Container(String),
    Exec(String),
    Helper(oneshot::Sender<WaitStatus>),
}

struct ExecEntry {
    pid: i32,
    exit: Option<ExitInfo>,
}

/// What the shim holds for a container besides its state.
struct Attached {
    /// Where the container's state is kept on disk.
    status_file: PathBuf,
    /// The cgroup's OOM kill counter file.
    oom_file: Option<PathBuf>,
    /// Write end of a `stdin: true` container's stdin, held open while it runs.
    stdin: Option<OwnedFd>,
    /// A copy of a tty container's pty master, for attaching to its input.
    pty: Option<OwnedFd>,
    /// Attached clients' copies of the output.
    taps: logs::Taps,
    /// The log writer (for `ReopenLog`) while the container runs.
    log_writer: Option<logs::SharedWriter>,
}

struct Inner {
    dir: PathBuf,
    /// By container id.
    attached: HashMap<String, Attached>,
    events: Option<(std::os::unix::net::UnixDatagram, PathBuf)>,
    cfg: SandboxConfig,
    state: ShimState,
    procs: HashMap<i32, Proc>,
    /// Exits of processes reaped before they were registered.
    early_exits: HashMap<i32, WaitStatus>,
    execs: HashMap<String, ExecEntry>,
    changed: watch::Sender<u64>,
    next_exec: u64,
}

type Shared = Rc<RefCell<Inner>>;

impl Inner {
    fn bump(&mut self) {
        self.state.generation += 1;
        // send_replace: `send` drops the value when no receiver exists yet,
        // and a later WaitChange would then miss this change.
        self.changed.send_replace(self.state.generation);
        if let Some((sock, path)) = &self.events {
            // Best effort and non-blocking: a daemon that is down or slow
            // reads every shim's state when it comes back.
            let msg = format!("{} {}", self.cfg.id, self.state.generation);
            let _ = sock.send_to(msg.as_bytes(), path);
        }
    }

    /// Persist container `id`'s state (atomically: write, then rename).
    fn persist(&self, id: &str) {
        let (Some(c), Some(path)) = (
            self.state.containers.get(id),
            self.attached.get(id).map(|a| &a.status_file),
        ) else {
            return;
        };
        let written = serde_json::to_vec(c)
            .map_err(std::io::Error::other)
            .and_then(|body| write_atomic(path, &body));
        if let Err(e) = written {
            eprintln!("peapod shim: {}: {e}", path.display());
        }
    }
}

/// Replace `path`'s content at once (write a temporary file, rename it).
fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// The start time of process `pid` (field 22 of /proc/PID/stat, in clock
/// ticks since boot): with the pid, it names one process for good.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. Field 3 is the state, field 22 the start time.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// What `shim.pid` holds: the shim's pid and start time.
pub fn read_pid_file(path: &Path) -> Option<(i32, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The shim of `pid_file` if it still runs: the pid is only trusted when
/// its start time matches the recorded one (a reused pid does not).
pub fn running_shim(pid_file: &Path) -> Option<i32> {
    let (pid, start) = read_pid_file(pid_file)?;
    (alive(pid) && start_time(pid) == Some(start)).then_some(pid)
}

/// Leave the daemon: a new session (Ctrl-C on a foreground daemon spares
/// the pod), then a fork whose parent returns at once, so the shim is
/// re-parented to init (or the daemon's subreaper) and outlives the
/// daemon. Returns true in the shim, false in the parent that must exit.
fn detach() -> Result<bool, String> {
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: called first thing, while this process has one thread; the
    // child goes on with ordinary code, the parent only returns and exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => Ok(false),
        Ok(nix::unistd::ForkResult::Child) => Ok(true),
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Entry point of `peapod shim --dir POD_DIR`. Returns the exit code.
pub fn main(dir: &Path) -> i32 {
    match detach() {
        Ok(true) => {}
        Ok(false) => return 0,
        Err(e) => {
            eprintln!("peapod shim: cannot detach: {e}");
            return 1;
        }
    }
    let cfg: SandboxConfig = match std::fs::read(dir.join(CONFIG_NAME))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("peapod shim: {}: {e}", dir.join(CONFIG_NAME).display());
            return 1;
        }
    };
    for procs in &cfg.shim_cgroup_procs {
        if let Err(e) = std::fs::write(procs, std::process::id().to_string()) {
            eprintln!("peapod shim: cannot join cgroup {}: {e}", procs.display());
        }
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("peapod shim: cannot become child subreaper: {e}");
        return 1;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peapod shim: tokio: {e}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, serve(dir.to_path_buf(), cfg)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peapod shim: {e}");
            1
        }
    }
}

async fn serve(dir: PathBuf, cfg: SandboxConfig) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Listen for SIGCHLD before the first child exists.
    let mut sigchld = signal(SignalKind::child())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let _sigint = signal(SignalKind::interrupt())?; // ignore Ctrl-C of a foreground daemon

    let sock_path = dir.join(SOCKET_NAME);
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path)?;

    let mut procs = HashMap::new();
    let mut infra_pid = None;
    if let Some(infra_cfg) = &cfg.infra {
        let pid = infra::spawn(infra_cfg)?.as_raw();
        for f in &infra_cfg.cgroup_procs {
            if let Err(e) = std::fs::write(f, pid.to_string()) {
                eprintln!("peapod shim: infra cgroup {}: {e}", f.display());
            }
        }
        procs.insert(pid, Proc::Infra);
        infra_pid = Some(pid);
    }
    let events = match &cfg.events_socket {
        Some(path) => {
            let sock = std::os::unix::net::UnixDatagram::unbound()?;
            sock.set_nonblocking(true)?;
            Some((sock, path.clone()))
        }
        None => None,
    };
    let (changed, _) = watch::channel(0u64);
    let inner: Shared = Rc::new(RefCell::new(Inner {
        dir: dir.clone(),
        attached: HashMap::new(),
        events,
        cfg,
        state: ShimState {
            generation: 1,
            shim_pid: std::process::id() as i32,
            infra_pid,
            ..Default::default()
        },
        procs,
        early_exits: HashMap::new(),
        execs: HashMap::new(),
        changed,
        next_exec: 0,
    }));
    let me = std::process::id() as i32;
    let started = start_time(me).unwrap_or(0);
    write_atomic(&dir.join("shim.pid"), format!("{me} {started}").as_bytes())?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    {
        let inner = inner.clone();
        tokio::task::spawn_local(async move {
            while sigchld.recv().await.is_some() {
                reap(&inner);
            }
        });
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => { eprintln!("peapod shim: accept: {e}"); continue; }
                };
                let inner = inner.clone();
                let stop_tx = stop_tx.clone();
                tokio::task::spawn_local(async move {
                    if let Err(e) = handle_conn(inner, stream, stop_tx).await {
                        eprintln!("peapod shim: connection: {e}");
                    }
                });
            }
            _ = stop_rx.changed() => break,
            _ = sigterm.recv() => {
                // SIGTERM to the shim alone must not orphan the pod: only the
                // daemon's Shutdown request ends it.
                eprintln!("peapod shim: SIGTERM ignored; use the daemon to delete the pod");
            }
        }
    }
    let _ = std::fs::remove_file(&sock_path);
    let _ = std::fs::remove_file(dir.join("shim.pid"));
    Ok(())
}

fn exit_info(status: WaitStatus, oom_file: Option<&Path>) -> ExitInfo {
    let (code, signal) = match status {
        WaitStatus::Exited(_, c) => (c, None),
        WaitStatus::Signaled(_, s, _) => (128 + s as i32, Some(s as i32)),
        _ => (255, None),
    };
    let oom_killed = oom_file.map(oom_kills).unwrap_or(0) > 0;
    ExitInfo {
        code,
        signal,
        finished_at: now(),
        oom_killed,
    }
}

/// The `oom_kill` counter of a v1 `memory.oom_control` or v2 `memory.events`.
pub fn oom_kills(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
}

fn reap(inner: &Shared) {
    loop {
        let status = match waitpid(
            Pid::from_raw(-1),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(s) => s,
        };
        let Some(pid) = status.pid() else { continue };
        record_exit(inner, pid.as_raw(), status);
    }
}

fn record_exit(inner: &Shared, pid: i32, status: WaitStatus) {
    let mut g = inner.borrow_mut();
    match g.procs.remove(&pid) {
        Some(Proc::Helper(tx)) => {
            let _ = tx.send(status);
        }
        Some(Proc::Infra) => {
            g.state.infra_exit = Some(exit_info(status, None));
            g.bump();
        }
        Some(Proc::Container(id)) => {
            let oom = g.attached.get_mut(&id).and_then(|a| {
                a.stdin = None;
                a.pty = None;
                // The pumps keep the writer until their EOF; then the file
                // closes.
                a.log_writer = None;
                a.oom_file.clone()
            });
            let info = exit_info(status, oom.as_deref());
            if let Some(c) = g.state.containers.get_mut(&id) {
                c.status = ContainerStatus::Exited;
                c.exit = Some(info);
            }
            g.persist(&id);
            g.bump();
        }
        Some(Proc::Exec(id)) => {
            let info = exit_info(status, None);
            if let Some(e) = g.execs.get_mut(&id) {
                e.exit = Some(info);
            }
            g.bump();
        }
        None => {
            // An orphan of the pod, or a process we have not registered yet.
            if g.early_exits.len() > 1024 {
                g.early_exits.clear();
            }
            g.early_exits.insert(pid, status);
        }
    }
}

/// Register a process; if it was already reaped, record its exit now.
///
/// An early exit is only taken while the pid is not a live process: a live
/// process under that pid proves the recorded exit was another, earlier
/// process's (an orphan of the pod reaped before its pid was reused).
fn register(inner: &Shared, pid: i32, proc_: Proc) {
    let early = {
        let mut g = inner.borrow_mut();
        g.procs.insert(pid, proc_);
        let early = g.early_exits.remove(&pid);
        early.filter(|_| !alive(pid))
    };
    if let Some(status) = early {
        record_exit(inner, pid, status);
    }
}

async fn handle_conn(
    inner: Shared,
    stream: UnixStream,
    stop: watch::Sender<bool>,
) -> std::io::Result<()> {
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut stream = reader.into_inner();
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let resp = Response::Error {
                message: format!("bad request: {e}"),
            };
            return write_response(&mut stream, &resp, Vec::new()).await;
        }
    };
    let shutdown = matches!(req, Request::Shutdown);
    let (resp, fds) = match handle(&inner, req).await {
        Ok(r) => r,
        Err(message) => (Response::Error { message }, Vec::new()),
    };
    write_response(&mut stream, &resp, fds).await?;
    if shutdown {
        let _ = stop.send(true);
    }
    Ok(())
}

async fn write_response(
    stream: &mut UnixStream,
    resp: &Response,
    fds: Vec<OwnedFd>,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(resp).map_err(std::io::Error::other)?;
    line.push(b'\n');
    if fds.is_empty() {
        stream.write_all(&line).await?;
        return stream.flush().await;
    }
    // The JSON line and the fds go out in one sendmsg, so the client's
    // recvmsg gets both together.
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    loop {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            fdpass::send_with_fds(stream.as_raw_fd(), &line, &raw)
        }) {
            Ok(n) => {
                if n < line.len() {
                    stream.write_all(&line[n..]).await?;
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

type Handled = Result<(Response, Vec<OwnedFd>), String>;

async fn handle(inner: &Shared, req: Request) -> Handled {
    match req {
        Request::State => Ok((Response::State(inner.borrow().state.clone()), Vec::new())),
        Request::WaitChange { since, timeout_ms } => {
            let mut rx = inner.borrow().changed.subscribe();
            let wait = async {
                loop {
                    if *rx.borrow_and_update() > since {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), wait).await;
            Ok((Response::State(inner.borrow().state.clone()), Vec::new()))
        }
        Request::Create(c) => create(inner, c).await,
        Request::Start { id } => {
            let root = inner.borrow().cfg.container_root.clone();
            {
                let g = inner.borrow();
                match g.state.containers.get(&id) {
                    Some(c) if c.status == ContainerStatus::Created => {}
                    Some(_) => return Err(format!("container {id} is not in the created state")),
                    None => return Err(format!("container {id} not found")),
                }
            }
            run_helper(
                inner,
                &HelperAction::Start {
                    root,
                    id: id.clone(),
                },
                None,
            )
            .await?;
            let mut g = inner.borrow_mut();
            if let Some(c) = g.state.containers.get_mut(&id) {
                if c.status == ContainerStatus::Created {
                    c.status = ContainerStatus::Running;
                }
                c.started_at = Some(now());
            }
            g.persist(&id);
            g.bump();
            Ok((Response::Ok, Vec::new()))
        }
        Request::Kill { id, signal, all } => {
            let (root, pid, exited) = {
                let g = inner.borrow();
                let c = g
                    .state
                    .containers
                    .get(&id)
                    .ok_or_else(|| format!("container {id} not found"))?;
                (
                    g.cfg.container_root.clone(),
                    c.pid,
                    c.status == ContainerStatus::Exited,
                )
            };
            if exited {
                return Ok((Response::Ok, Vec::new()));
            }
            if all {
                run_helper(
                    inner,
                    &HelperAction::Kill {
                        root,
                        id,
                        signal,
                        all,
                    },
                    None,
                )
                .await?;
            } else {
                let sig = Signal::try_from(signal).map_err(|e| format!("signal {signal}: {e}"))?;
                match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Err(format!("container {id}: kill: {e}")),
                }
            }
            Ok((Response::Ok, Vec::new()))
        }
        Request::Delete { id } => {
            let root = inner.borrow().cfg.container_root.clone();
            run_helper(
                inner,
                &HelperAction::Delete {
                    root,
                    id: id.clone(),
                },
                None,
            )
            .await?;
            let mut g = inner.borrow_mut();
            g.state.containers.remove(&id);
            g.attached.remove(&id);
            g.bump();
            Ok((Response::Ok, Vec::new()))
        }
        Request::Exec(e) => exec(inner, e).await,
        Request::WaitExec { exec_id } => {
            let mut rx = inner.borrow().changed.subscribe();
            loop {
                {
                    let g = inner.borrow();
                    match g.execs.get(&exec_id) {
                        None => return Err(format!("exec {exec_id} not found")),
                        Some(ExecEntry {
                            exit: Some(info), ..
                        }) => {
                            let info = info.clone();
                            drop(g);
                            inner.borrow_mut().execs.remove(&exec_id);
                            return Ok((Response::Exited(info), Vec::new()));
                        }
                        Some(_) => {}
                    }
                }
                if rx.changed().await.is_err() {
                    return Err("shim is stopping".into());
                }
            }
        }
        Request::KillExec { exec_id, signal } => {
            let pid = {
                let g = inner.borrow();
                match g.execs.get(&exec_id) {
                    None => return Err(format!("exec {exec_id} not found")),
                    Some(e) if e.exit.is_some() => None,
                    Some(e) => Some(e.pid),
                }
            };
            if let Some(pid) = pid {
                // Not yet reaped by us, its subreaper: the pid is still its.
                let sig = Signal::try_from(signal).map_err(|e| format!("signal {signal}: {e}"))?;
                match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                    Err(e) => return Err(format!("exec {exec_id}: kill: {e}")),
                }
            }
            Ok((Response::Ok, Vec::new()))
        }
        Request::AttachStdin { id, once } => {
            let mut g = inner.borrow_mut();
            let a = g
                .attached
                .get_mut(&id)
                .ok_or_else(|| format!("container {id} not found"))?;
            if once {
                if let Some(fd) = a.stdin.take() {
                    return Ok((
                        Response::Fds {
                            fds: vec!["stdin".to_string()],
                        },
                        vec![fd],
                    ));
                }
            }
            let (name, fd) = match (&a.stdin, &a.pty) {
                (Some(fd), _) => ("stdin", fd),
                (None, Some(fd)) => ("pty", fd),
                (None, None) => return Ok((Response::Fds { fds: Vec::new() }, Vec::new())),
            };
            let dup = fd
                .try_clone()
                .map_err(|e| format!("container {id}: duplicate its {name} fd: {e}"))?;
            Ok((
                Response::Fds {
                    fds: vec![name.to_string()],
                },
                vec![dup],
            ))
        }
        Request::AttachOutput { id } => {
            let g = inner.borrow();
            // A container whose output ended would never end the copies.
            if g.state.containers.get(&id).map(|c| c.status) != Some(ContainerStatus::Running) {
                return Err(format!("container {id} is not running"));
            }
            let a = g
                .attached
                .get(&id)
                .ok_or_else(|| format!("container {id} not found"))?;
            let mut names = Vec::new();
            let mut fds = Vec::new();
            for stream in ["stdout", "stderr"] {
                let (r, w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
                    .map_err(|e| format!("container {id}: attach pipe: {e}"))?;
                a.taps.borrow_mut().push((stream, std::fs::File::from(w)));
                names.push(stream.to_string());
                fds.push(r);
            }
            Ok((Response::Fds { fds: names }, fds))
        }
        Request::ReopenLog { id } => {
            let writer = inner
                .borrow()
                .attached
                .get(&id)
                .and_then(|a| a.log_writer.clone());
            logs::reopen(writer.as_ref(), &id)?;
            Ok((Response::Ok, Vec::new()))
        }
        Request::Shutdown => {
            let infra = inner.borrow().state.infra_pid;
            if let (Some(pid), None) = (infra, &inner.borrow().state.infra_exit) {
                // Our child, not yet reaped: the pid cannot have been reused.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            Ok((Response::Ok, Vec::new()))
        }
    }
}

/// Stdio for a new process: pipes, or a console socket for a pty.
struct Stdio3 {
    /// Child ends for fds 3, 4, 5 of the helper.
    child: Option<[OwnedFd; 3]>,
    /// Our ends: (name, fd).
    ours: Vec<(&'static str, OwnedFd)>,
    console: Option<(PathBuf, std::os::unix::net::UnixListener)>,
}

/// A short unique tag for console socket names (a socket path must fit in
/// 108 bytes, and container names may be 63).
fn next_tag(inner: &Shared) -> String {
    let mut g = inner.borrow_mut();
    g.next_exec += 1;
    format!("t{}", g.next_exec)
}

fn make_stdio(dir: &Path, tag: &str, tty: bool, stdin: bool) -> Result<Stdio3, String> {
    if tty {
        let path = dir.join(format!("c-{tag}.sock"));
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path)
            .map_err(|e| format!("console socket {}: {e}", path.display()))?;
        return Ok(Stdio3 {
            child: None,
            ours: Vec::new(),
            console: Some((path, l)),
        });
    }
    let p = |what: &str| pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("{what} pipe: {e}"));
    let mut ours = Vec::new();
    let stdin_child = if stdin {
        let (r, w) = p("stdin")?;
        ours.push(("stdin", w));
        r
    } else {
        OwnedFd::from(std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?)
    };
    let (out_r, out_w) = p("stdout")?;
    let (err_r, err_w) = p("stderr")?;
    ours.push(("stdout", out_r));
    ours.push(("stderr", err_r));
    Ok(Stdio3 {
        child: Some([stdin_child, out_w, err_w]),
        ours,
        console: None,
    })
}

/// Accept the console socket connection and receive the pty master.
fn receive_pty(listener: std::os::unix::net::UnixListener) -> Result<OwnedFd, String> {
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("console socket accept: {e}"))?;
    let mut fds = fdpass::recv_fds(&conn).map_err(|e| format!("console socket: {e}"))?;
    let pty = fds.drain(..).next();
    pty.ok_or_else(|| "console socket: no pty".to_string())
}

/// Run the helper `action` (given the console socket path, if any) with
/// `stdio`; returns the pid it reports and our ends of the stdio, the pty
/// master included.
async fn run_with_stdio(
    inner: &Shared,
    mut stdio: Stdio3,
    action: impl FnOnce(Option<PathBuf>) -> HelperAction,
) -> Result<(Option<i32>, Vec<(&'static str, OwnedFd)>), String> {
    let console = stdio.console.take();
    let pty_task = console
        .as_ref()
        .map(|(_, l)| l.try_clone())
        .transpose()
        .map_err(|e| e.to_string())?
        .map(|l| tokio::task::spawn_blocking(move || receive_pty(l)));
    let action = action(console.as_ref().map(|(p, _)| p.clone()));
    let result = run_helper(inner, &action, stdio.child.take()).await;
    if let Some((p, _)) = &console {
        if result.is_err() {
            // Unblock the accept of a helper that never connected.
            let _ = std::os::unix::net::UnixStream::connect(p);
        }
        let _ = std::fs::remove_file(p);
    }
    let pid = result?;
    let mut ours = stdio.ours;
    if let Some(task) = pty_task {
        ours.push(("pty", task.await.map_err(|e| e.to_string())??));
    }
    Ok((pid, ours))
}

async fn create(inner: &Shared, c: CreateRequest) -> Handled {
    let (dir, root) = {
        let g = inner.borrow();
        if g.state.containers.contains_key(&c.id) {
            return Err(format!("container {} already exists", c.id));
        }
        (g.dir.clone(), g.cfg.container_root.clone())
    };
    let stdio = make_stdio(&dir, &next_tag(inner), c.tty, c.stdin)?;
    let (id, bundle) = (c.id.clone(), c.bundle.clone());
    let (pid, outputs) = run_with_stdio(inner, stdio, |console_socket| HelperAction::Create {
        root,
        id,
        bundle,
        console_socket,
    })
    .await?;
    let pid = pid.ok_or_else(|| format!("container {}: helper reported no pid", c.id))?;
    let writer = logs::LogWriter::shared(&c.log_path, c.log_rotation);
    let mut stdin = None;
    let mut pty = None;
    let taps = logs::Taps::default();
    for (name, fd) in outputs {
        if name == "stdin" {
            stdin = Some(fd);
            continue;
        }
        if name == "pty" && c.stdin {
            pty = fd.try_clone().ok();
        }
        let writer = writer.clone();
        let stream: &'static str = if name == "stderr" { "stderr" } else { "stdout" };
        tokio::task::spawn_local(logs::pump(fd, stream, writer, taps.clone()));
    }
    {
        let mut g = inner.borrow_mut();
        g.attached.insert(
            c.id.clone(),
            Attached {
                status_file: c.status_file.clone(),
                oom_file: c.oom_events.clone(),
                stdin,
                pty,
                taps,
                log_writer: Some(writer),
            },
        );
        g.state.containers.insert(
            c.id.clone(),
            ContainerState {
                id: c.id.clone(),
                pid,
                status: ContainerStatus::Created,
                created_at: now(),
                started_at: None,
                exit: None,
                log_path: c.log_path.clone(),
            },
        );
        g.persist(&c.id);
        g.bump();
    }
    register(inner, pid, Proc::Container(c.id.clone()));
    Ok((Response::Created { pid }, Vec::new()))
}

async fn exec(inner: &Shared, e: ExecRequest) -> Handled {
    let (dir, root, exec_id) = {
        let mut g = inner.borrow_mut();
        match g.state.containers.get(&e.id) {
            Some(c) if c.status == ContainerStatus::Running => {}
            Some(_) => return Err(format!("container {} is not running", e.id)),
            None => return Err(format!("container {} not found", e.id)),
        }
        g.next_exec += 1;
        (
            g.dir.clone(),
            g.cfg.container_root.clone(),
            format!("{}-x{}", e.id, g.next_exec),
        )
    };
    let stdio = make_stdio(&dir, &next_tag(inner), e.tty, e.stdin)?;
    let (id, process_json) = (e.id.clone(), e.process_json.clone());
    let (pid, ours) = run_with_stdio(inner, stdio, |console_socket| HelperAction::Exec {
        root,
        id,
        process_json,
        console_socket,
    })
    .await?;
    let pid = pid.ok_or_else(|| format!("exec in {}: helper reported no pid", e.id))?;
    inner
        .borrow_mut()
        .execs
        .insert(exec_id.clone(), ExecEntry { pid, exit: None });
    register(inner, pid, Proc::Exec(exec_id.clone()));
    let names = ours.iter().map(|(n, _)| n.to_string()).collect();
    let fds = ours.into_iter().map(|(_, f)| f).collect();
    Ok((
        Response::ExecStarted {
            exec_id,
            pid,
            fds: names,
        },
        fds,
    ))
}

/// Move an fd above the stdio range so the helper's dup2 to 3..=5 cannot
/// clobber another source fd.
fn lift(fd: &OwnedFd) -> Result<OwnedFd, String> {
    let raw =
        fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(|e| format!("dup: {e}"))?;
    // SAFETY: fcntl just returned this new descriptor; we own it alone.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Run `peapod shim-helper` for one action and return the pid it reports.
async fn run_helper(
    inner: &Shared,
    action: &HelperAction,
    stdio: Option<[OwnedFd; 3]>,
) -> Result<Option<i32>, String> {
    let json = serde_json::to_string(action).map_err(|e| e.to_string())?;
    let dir = inner.borrow().dir.clone();
    logs::bound_shim_logs(&dir);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("helper.log"))
        .map_err(|e| format!("helper log: {e}"))?;
    let lifted: Option<Vec<OwnedFd>> = match &stdio {
        Some(fds) => Some(fds.iter().map(lift).collect::<Result<_, _>>()?),
        None => None,
    };
    let raw: Vec<RawFd> = lifted.iter().flatten().map(|f| f.as_raw_fd()).collect();
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("peapod")
        .arg("shim-helper")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .current_dir(&dir);
    // SAFETY: the closure only calls dup2, which is async-signal-safe, on
    // descriptors that stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let (tx, rx) = oneshot::channel();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start helper: {e}"))?;
    register(inner, child.id() as i32, Proc::Helper(tx));
    drop(lifted);
    drop(stdio);
    let stdout = child.stdout.take().ok_or("helper has no stdout")?;
    // Read the helper's answer on this thread (no blocking-pool thread).
    let line = {
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(stdout))
            .map_err(|e| format!("helper stdout: {e}"))?;
        let mut line = String::new();
        let _ = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(pipe, 1 << 20))
            .read_line(&mut line)
            .await;
        line
    };
    let status = rx.await.map_err(|_| "helper exit was lost".to_string())?;
    match serde_json::from_str::<HelperResult>(&line) {
        Ok(HelperResult::Ok { pid }) => Ok(pid),
        Ok(HelperResult::Error { message }) => Err(message),
        Err(_) => {
            let tail = std::fs::read_to_string(dir.join("helper.log")).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            Err(format!(
                "helper failed ({status:?}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    }
}
