//! StopPodSandbox: stop every process and release the pod network.
//! Idempotent: an unknown or already stopped sandbox is not an error.

use crate::{pb, require_id, Cri};
use peapod_runtime::RuntimeError;
use tonic::Status;

pub async fn stop_pod_sandbox(
    cri: &Cri,
    req: pb::StopPodSandboxRequest,
) -> Result<pb::StopPodSandboxResponse, Status> {
    require_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let sid = req.pod_sandbox_id;
    cri.blocking(move |rt| match rt.stop_pod_sandbox(&sid) {
        Err(RuntimeError::NotFound(_)) => Ok(()),
        other => other,
    })
    .await?;
    Ok(pb::StopPodSandboxResponse {})
}
