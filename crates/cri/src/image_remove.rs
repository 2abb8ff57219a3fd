//! RemoveImage: every name of the image (by name, `name@digest` or id).
//! Idempotent: an image that is not stored is not an error. Blobs and
//! unpacked layers are left to `peapod image prune` / GC.

use crate::{image_status, pb, Cri};
use tonic::Status;

pub async fn remove_image(
    cri: &Cri,
    req: pb::RemoveImageRequest,
) -> Result<pb::RemoveImageResponse, Status> {
    let name = crate::required_image(req.image)?;
    let store = cri.images.clone();
    tokio::task::spawn_blocking(move || {
        let Some(rec) = store.get(&name).map_err(image_status)? else {
            return Ok(pb::RemoveImageResponse {});
        };
        // All names of the image, as containerd's RemoveImage does.
        match store.remove(&rec.config_digest) {
            Ok(()) | Err(peapod_image::ImageError::NotFound(_)) => Ok(pb::RemoveImageResponse {}),
            Err(e) => Err(image_status(e)),
        }
    })
    .await
    .map_err(|e| Status::internal(format!("image task failed: {e}")))?
}
