//! ImageStatus: the image by name, `name@digest` or id; an image that is
//! not stored is not an error: the response's image is empty (as the CRI
//! asks).

use crate::{image_status, pb, Cri};
use tonic::Status;

pub async fn image_status_rpc(
    cri: &Cri,
    req: pb::ImageStatusRequest,
) -> Result<pb::ImageStatusResponse, Status> {
    let name = crate::required_image(req.image)?;
    let store = cri.images.clone();
    tokio::task::spawn_blocking(move || {
        let Some(rec) = store.get(&name).map_err(image_status)? else {
            return Ok(pb::ImageStatusResponse::default());
        };
        let groups = crate::image_list::grouped(&store)?;
        let recs = groups.get(&rec.config_digest).cloned().unwrap_or_default();
        let image = crate::image_list::to_image(&store, &recs);
        let mut info = std::collections::HashMap::new();
        if req.verbose {
            if let Ok(cfg) = store.config(&rec) {
                info.insert(
                    "info".to_string(),
                    serde_json::json!({ "imageSpec": {
                        "entrypoint": cfg.entrypoint, "cmd": cfg.cmd, "env": cfg.env,
                        "workingDir": cfg.working_dir, "user": cfg.user, "labels": cfg.labels,
                    }})
                    .to_string(),
                );
            }
        }
        Ok(pb::ImageStatusResponse { image, info })
    })
    .await
    .map_err(|e| Status::internal(format!("image task failed: {e}")))?
}
