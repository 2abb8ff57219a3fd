//! StopContainer: the stop signal, then SIGKILL after `timeout` seconds.
//! Idempotent for a container that already exited.

use crate::{pb, require_id, Cri};
use std::time::Duration;
use tonic::Status;

pub async fn stop_container(
    cri: &Cri,
    req: pb::StopContainerRequest,
) -> Result<pb::StopContainerResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let cid = req.container_id;
    let timeout = Duration::from_secs(req.timeout.max(0) as u64);
    cri.blocking(move |rt| rt.stop_container(&cid, timeout, None))
        .await?;
    Ok(pb::StopContainerResponse {})
}
