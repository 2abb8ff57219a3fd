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
    // The image's id (its config digest), as ImageStatus reports it.
    let images = cri.images.clone();
    let image_ref = s.image_ref.clone();
    let image_id = tokio::task::spawn_blocking(move || images.get(&image_ref))
        .await
        .ok()
        .and_then(|r| r.ok().flatten())
        .map(|rec| rec.config_digest);
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        info.insert(
            "info".to_string(),
            serde_json::to_string(&s).unwrap_or_default(),
        );
    }
    let rt = cri.runtime.clone();
    let (sid, cid) = (s.sandbox_id.clone(), s.id.clone());
    let mounts =
        tokio::task::spawn_blocking(move || crate::container_create::kept_mounts(&rt, &sid, &cid))
            .await
            .unwrap_or_default();
    Ok(pb::ContainerStatusResponse {
        status: Some(pb::ContainerStatus {
            image_id: image_id.unwrap_or_else(|| s.image_ref.clone()),
            mounts,
            ..convert::container_status(&s)
        }),
        info,
    })
}
