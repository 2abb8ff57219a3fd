//! StartContainer.

use crate::{pb, require_id, Cri};
use tonic::Status;

pub async fn start_container(
    cri: &Cri,
    req: pb::StartContainerRequest,
) -> Result<pb::StartContainerResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let cid = req.container_id;
    cri.blocking(move |rt| {
        let st = rt.container_status(&cid)?;
        if st.state != peapod_runtime::ContainerState::Created {
            return Err(peapod_runtime::RuntimeError::Config(format!(
                "container {cid} is {:?}, not Created; only a created container can be started",
                st.state
            )));
        }
        rt.start_container(&cid)
    })
    .await?;
    Ok(pb::StartContainerResponse {})
}
