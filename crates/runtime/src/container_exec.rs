//! ExecSync / Exec: a new process in a running container, from the
//! container's own process spec with other args.

use crate::error::RuntimeError;
use crate::types::{ExecExit, ExecSyncResult};
use crate::Runtime;
use peapod_shim::{ExecRequest, Request, Response};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A started exec: its stdio, by name ("stdin", "stdout", "stderr" or
/// "pty"), to pump; wait for its exit with [`Runtime::wait_exec`].
#[derive(Debug)]
pub struct ExecSession {
    pub exec_id: String,
    pub pid: i32,
    pub fds: Vec<(String, OwnedFd)>,
}

impl Runtime {
    /// Exec: start `command` in running container `cid`; the caller pumps
    /// its stdio and waits with [`Runtime::wait_exec`].
    pub fn exec(
        &self,
        cid: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession, RuntimeError> {
        let id = cid;
        let cerr = |message: String| RuntimeError::Container {
            name: id.into(),
            message,
        };
        if command.is_empty() {
            return Err(cerr("exec needs a command".into()));
        }
        let uid = self.sandbox_of(cid)?;
        let uid = uid.as_str();
        let dir = self.paths.container_dir(uid, id);
        let spec_path = dir.join("config.json");
        let spec = oci_spec::runtime::Spec::load(&spec_path)
            .map_err(|e| cerr(format!("{}: {e}", spec_path.display())))?;
        let mut process = spec
            .process()
            .clone()
            .ok_or_else(|| cerr("spec has no process".into()))?;
        process.set_args(Some(command.to_vec()));
        process.set_terminal(Some(tty));
        // The container's seccomp profile is applied to the exec'd process
        // after its capabilities are dropped (see peapod-shim's helper),
        // which the kernel allows only with no_new_privs.
        if spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .is_some()
        {
            process.set_no_new_privileges(Some(true));
        }
        if tty {
            let mut env = process.env().clone().unwrap_or_default();
            if !env.iter().any(|e| e.starts_with("TERM=")) {
                env.push("TERM=xterm".into());
            }
            process.set_env(Some(env));
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let process_json = dir.join(format!("exec-{}-{n}.json", std::process::id()));
        let body = serde_json::to_vec(&process).map_err(|e| cerr(e.to_string()))?;
        std::fs::write(&process_json, body).map_err(RuntimeError::io(&process_json))?;
        let req = Request::Exec(ExecRequest {
            id: id.to_string(),
            process_json: process_json.clone(),
            tty,
            stdin,
        });
        let result = self.shim(uid).call_with_fds(&req, None);
        let _ = std::fs::remove_file(&process_json);
        let (resp, fds) = result?;
        match resp {
            Response::ExecStarted {
                exec_id,
                pid,
                fds: names,
            } => {
                if names.len() != fds.len() {
                    return Err(cerr(format!("shim sent {} fds for {names:?}", fds.len())));
                }
                Ok(ExecSession {
                    exec_id,
                    pid,
                    fds: names.into_iter().zip(fds).collect(),
                })
            }
            other => Err(cerr(format!("unexpected shim response {other:?}"))),
        }
    }

    /// Attach: the running container `cid`'s input, from its shim: the
    /// write end of its stdin ("stdin") or its pty master ("pty"); None
    /// for a container created without `stdin`. A `stdin_once` container's
    /// first attach gets the shim's own stdin: closing it closes the
    /// container's; later attaches get none.
    pub fn attach_stdin(&self, cid: &str) -> Result<Option<(String, OwnedFd)>, RuntimeError> {
        let uid = self.sandbox_of(cid)?;
        let once = self.container_record(cid)?.stdin_once;
        let (resp, fds) = self.shim(&uid).call_with_fds(
            &Request::AttachStdin {
                id: cid.to_string(),
                once,
            },
            None,
        )?;
        match resp {
            Response::Fds { fds: names } => Ok(names.into_iter().zip(fds).next()),
            other => Err(RuntimeError::Container {
                name: cid.into(),
                message: format!("unexpected shim response {other:?}"),
            }),
        }
    }

    /// Attach: copies of the running container `cid`'s output from now on,
    /// by stream ("stdout", "stderr"), from its shim.
    pub fn attach_output(&self, cid: &str) -> Result<Vec<(String, OwnedFd)>, RuntimeError> {
        let uid = self.sandbox_of(cid)?;
        let (resp, fds) = self.shim(&uid).call_with_fds(
            &Request::AttachOutput {
                id: cid.to_string(),
            },
            None,
        )?;
        match resp {
            Response::Fds { fds: names } if names.len() == fds.len() => {
                Ok(names.into_iter().zip(fds).collect())
            }
            other => Err(RuntimeError::Container {
                name: cid.into(),
                message: format!("unexpected shim response {other:?}"),
            }),
        }
    }

    /// Block until an exec'd process of container `cid` exits.
    pub fn wait_exec(&self, cid: &str, exec_id: &str) -> Result<ExecExit, RuntimeError> {
        let uid = self.sandbox_of(cid)?;
        match self.shim(&uid).call(&Request::WaitExec {
            exec_id: exec_id.to_string(),
        })? {
            Response::Exited(info) => Ok(ExecExit {
                code: info.code,
                signal: info.signal,
            }),
            other => Err(RuntimeError::Sandbox {
                uid,
                message: format!("unexpected shim response {other:?}"),
            }),
        }
    }

    /// ExecSync: run `command` in container `cid`, capture its output (up
    /// to 16 MiB per stream, as CRI-O caps it) and its exit code; after
    /// `timeout` (if any) the process is killed and `timed_out` is set.
    pub fn exec_sync(
        &self,
        cid: &str,
        command: &[String],
        timeout: Option<Duration>,
    ) -> Result<ExecSyncResult, RuntimeError> {
        const MAX_OUTPUT: u64 = 16 << 20;
        let session = self.exec(cid, command, false, false)?;
        let sid = self.sandbox_of(cid)?;
        let mut readers = Vec::new();
        let mut stdout = None;
        let mut stderr = None;
        for (name, fd) in session.fds {
            let h = std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = std::fs::File::from(fd)
                    .take(MAX_OUTPUT)
                    .read_to_end(&mut buf);
                buf
            });
            match name.as_str() {
                "stdout" => stdout = Some(h),
                "stderr" => stderr = Some(h),
                _ => readers.push(h),
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let rt_shim = self.shim(&sid);
            let exec_id = session.exec_id.clone();
            std::thread::spawn(move || {
                let r = rt_shim.call(&Request::WaitExec { exec_id });
                let _ = tx.send(r);
            });
        }
        let mut timed_out = false;
        let resp = match timeout {
            Some(t) => match rx.recv_timeout(t) {
                Ok(r) => r,
                Err(_) => {
                    timed_out = true;
                    // What the command started goes too: a child that
                    // keeps the output pipes open would hold this call
                    // until it ends by itself.
                    kill_descendants(session.pid);
                    let _ = self.shim(&sid).expect_ok(&Request::KillExec {
                        exec_id: session.exec_id.clone(),
                        signal: libc::SIGKILL,
                    });
                    rx.recv().map_err(|_| RuntimeError::Container {
                        name: cid.into(),
                        message: "exec: lost the wait for the killed process".into(),
                    })?
                }
            },
            None => rx.recv().map_err(|_| RuntimeError::Container {
                name: cid.into(),
                message: "exec: lost the wait for the process".into(),
            })?,
        };
        let exit = match resp? {
            Response::Exited(info) => info,
            other => {
                return Err(RuntimeError::Container {
                    name: cid.into(),
                    message: format!("unexpected shim response {other:?}"),
                })
            }
        };
        let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        Ok(ExecSyncResult {
            stdout: join(stdout),
            stderr: join(stderr),
            exit_code: exit.code,
            timed_out,
        })
    }
}

/// Parent pid of `pid`, from `/proc/<pid>/stat` (the field after the
/// command name, which may itself hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// SIGKILL every descendant of `pid` (an exec'd process whose timeout
/// passed), with `pid` itself stopped first so it forks no more; the
/// caller then kills `pid`. Pids are the host's, as the shim reports them.
fn kill_descendants(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
    for _ in 0..3 {
        let mut parents: std::collections::HashMap<i32, i32> = std::collections::HashMap::new();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
                    if let Some(pp) = parent_of(p) {
                        parents.insert(p, pp);
                    }
                }
            }
        }
        let mut found: Vec<i32> = Vec::new();
        let mut frontier = vec![pid];
        while let Some(p) = frontier.pop() {
            for (&child, &pp) in &parents {
                if pp == p && !found.contains(&child) {
                    found.push(child);
                    frontier.push(child);
                }
            }
        }
        if found.is_empty() {
            return;
        }
        for child in found {
            let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        }
    }
}
