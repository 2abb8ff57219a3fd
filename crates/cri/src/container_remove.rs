//! RemoveContainer: a running container is killed first. Idempotent: an
//! already removed container is not an error.

use crate::{pb, require_id, Cri};
use peapod_runtime::RuntimeError;
use std::time::Duration;
use tonic::Status;

pub async fn remove_container(
    cri: &Cri,
    req: pb::RemoveContainerRequest,
) -> Result<pb::RemoveContainerResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let cid = req.container_id;
    cri.blocking(move |rt| {
        let res = rt.container_status(&cid).and_then(|st| {
            if st.state == peapod_runtime::ContainerState::Running {
                rt.stop_container(&cid, Duration::ZERO, None)?;
            }
            rt.remove_container(&cid)
        });
        match res {
            Err(RuntimeError::NotFound(_)) => Ok(()),
            other => other,
        }
    })
    .await?;
    Ok(pb::RemoveContainerResponse {})
}
