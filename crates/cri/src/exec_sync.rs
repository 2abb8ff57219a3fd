//! ExecSync: run a command in a running container, return its output and
//! exit code; with a timeout (seconds) the process is killed when it
//! passes and the call fails with DeadlineExceeded, as containerd does.

use crate::{pb, require_id, Cri};
use std::time::Duration;
use tonic::Status;

pub async fn exec_sync(
    cri: &Cri,
    req: pb::ExecSyncRequest,
) -> Result<pb::ExecSyncResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd: required"));
    }
    let cid = req.container_id;
    let cmd = req.cmd;
    let timeout = (req.timeout > 0).then(|| Duration::from_secs(req.timeout as u64));
    let res = cri
        .blocking(move |rt| {
            let st = rt.container_status(&cid)?;
            if st.state != peapod_runtime::ContainerState::Running {
                return Err(peapod_runtime::RuntimeError::Config(format!(
                    "container {cid} is not running; ExecSync needs a running container"
                )));
            }
            rt.exec_sync(&cid, &cmd, timeout)
        })
        .await?;
    if res.timed_out {
        return Err(Status::deadline_exceeded(format!(
            "command timed out after {}s and was killed",
            req.timeout
        )));
    }
    Ok(pb::ExecSyncResponse {
        stdout: res.stdout,
        stderr: res.stderr,
        exit_code: res.exit_code,
    })
}
