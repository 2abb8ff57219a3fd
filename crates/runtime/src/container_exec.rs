//! ExecSync / Exec: a new process in a running container, from the
//! container's own process spec with other args.

use crate::error::RuntimeError;
use crate::Runtime;
use peapod_shim::{ExecRequest, ExitInfo, Request, Response};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub fn exec(
        &self,
        uid: &str,
        id: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<ExecSession, RuntimeError> {
        let cerr = |message: String| RuntimeError::Container {
            name: id.into(),
            message,
        };
        if command.is_empty() {
            return Err(cerr("exec needs a command".into()));
        }
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

    /// Block until an exec'd process exits.
    pub fn wait_exec(&self, uid: &str, exec_id: &str) -> Result<ExitInfo, RuntimeError> {
        match self.shim(uid).call(&Request::WaitExec {
            exec_id: exec_id.to_string(),
        })? {
            Response::Exited(info) => Ok(info),
            other => Err(RuntimeError::Sandbox {
                uid: uid.into(),
                message: format!("unexpected shim response {other:?}"),
            }),
        }
    }
}
