//! Exec, Attach, PortForward: check the request, hand out a one-time URL
//! of the streaming server (see [`crate::streaming`]).

use crate::streaming::Pending;
use crate::{pb, require_id, Cri};
use peapod_runtime::ContainerState;
use tonic::Status;

/// The container exists and runs (NotFound / FailedPrecondition else).
async fn running(cri: &Cri, cid: &str, what: &str) -> Result<(), Status> {
    let id = cid.to_string();
    let st = cri.blocking(move |rt| rt.container_status(&id)).await?;
    if st.state != ContainerState::Running {
        return Err(Status::failed_precondition(format!(
            "{what}: container {cid} is {:?}, not running; start it first",
            st.state
        )));
    }
    Ok(())
}

fn streams_asked(stdin: bool, stdout: bool, stderr: bool) -> Result<(), Status> {
    if !(stdin || stdout || stderr) {
        return Err(Status::invalid_argument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

pub async fn exec(cri: &Cri, req: pb::ExecRequest) -> Result<pb::ExecResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("cmd: required"));
    }
    streams_asked(req.stdin, req.stdout, req.stderr)?;
    if req.tty && req.stderr {
        // As kubelet: a terminal merges stderr into stdout.
        tracing::debug!("exec: stderr is not separate with tty; it goes to stdout");
    }
    running(cri, &req.container_id, "Exec").await?;
    let url = cri.streaming.url_for(Pending::Exec(req))?;
    Ok(pb::ExecResponse { url })
}

pub async fn attach(cri: &Cri, req: pb::AttachRequest) -> Result<pb::AttachResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    streams_asked(req.stdin, req.stdout, req.stderr)?;
    running(cri, &req.container_id, "Attach").await?;
    let url = cri.streaming.url_for(Pending::Attach(req))?;
    Ok(pb::AttachResponse { url })
}

pub async fn port_forward(
    cri: &Cri,
    req: pb::PortForwardRequest,
) -> Result<pb::PortForwardResponse, Status> {
    require_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    if let Some(p) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
        return Err(Status::invalid_argument(format!(
            "port: {p} is not a valid port (1-65535)"
        )));
    }
    let sid = req.pod_sandbox_id.clone();
    let st = cri.blocking(move |rt| rt.pod_sandbox_status(&sid)).await?;
    if st.state != peapod_runtime::SandboxState::Ready {
        return Err(Status::failed_precondition(format!(
            "PortForward: sandbox {} is not ready",
            req.pod_sandbox_id
        )));
    }
    let url = cri.streaming.url_for(Pending::PortForward(req))?;
    Ok(pb::PortForwardResponse { url })
}
