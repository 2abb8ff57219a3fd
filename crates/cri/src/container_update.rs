//! UpdateContainerResources: new cpu and memory values, in place.

use crate::{convert, pb, require_id, Cri};
use tonic::Status;

pub async fn update_container_resources(
    cri: &Cri,
    req: pb::UpdateContainerResourcesRequest,
) -> Result<pb::UpdateContainerResourcesResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let Some(linux) = req.linux else {
        return Ok(pb::UpdateContainerResourcesResponse {});
    };
    let requested = convert::resources(&linux);
    let cid = req.container_id;
    cri.blocking(move |rt| rt.update_container_resources(&cid, &requested))
        .await?;
    Ok(pb::UpdateContainerResourcesResponse {})
}
