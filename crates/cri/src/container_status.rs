//! ContainerStatus: state, times, exit code and reason, image, log path;
//! with `verbose`, the runtime's own view as JSON under `info`.

use crate::{convert, pb, require_id, Cri};
use tonic::Status;

pub async fn container_status(
    cri: &Cri,
    req: pb::ContainerStatusRequest,
) -> Result<pb::ContainerStatusResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let cid = req.container_id;
    let s = cri.blocking(move |rt| rt.container_status(&cid)).await?;
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        info.insert(
            "info".to_string(),
            serde_json::to_string(&s).unwrap_or_default(),
        );
    }
    Ok(pb::ContainerStatusResponse {
        status: Some(convert::container_status(&s)),
        info,
    })
}
