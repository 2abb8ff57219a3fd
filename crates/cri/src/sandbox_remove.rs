//! RemovePodSandbox: its containers, namespaces, cgroups and files.
//! Idempotent: an already removed sandbox is not an error.

use crate::{pb, require_id, Cri};
use peapod_runtime::RuntimeError;
use tonic::Status;

pub async fn remove_pod_sandbox(
    cri: &Cri,
    req: pb::RemovePodSandboxRequest,
) -> Result<pb::RemovePodSandboxResponse, Status> {
    require_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let sid = req.pod_sandbox_id;
    cri.blocking(move |rt| match rt.remove_pod_sandbox(&sid) {
        Err(RuntimeError::NotFound(_)) => Ok(()),
        other => other,
    })
    .await?;
    Ok(pb::RemovePodSandboxResponse {})
}
