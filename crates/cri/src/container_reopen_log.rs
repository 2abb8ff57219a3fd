//! ReopenContainerLog: the shim reopens the log file (after kubelet
//! rotated it). The container must be running.

use crate::{pb, require_id, Cri};
use tonic::Status;

pub async fn reopen_container_log(
    cri: &Cri,
    req: pb::ReopenContainerLogRequest,
) -> Result<pb::ReopenContainerLogResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let cid = req.container_id;
    cri.blocking(move |rt| {
        let st = rt.container_status(&cid)?;
        if st.state != peapod_runtime::ContainerState::Running {
            return Err(peapod_runtime::RuntimeError::Config(format!(
                "container {cid} is not running; only a running container's log can be reopened"
            )));
        }
        rt.reopen_container_log(&cid)
    })
    .await?;
    Ok(pb::ReopenContainerLogResponse {})
}
