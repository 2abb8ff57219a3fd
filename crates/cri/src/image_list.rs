//! ListImages: every stored image, one entry per image (digest) with all
//! its names, as the CRI's Image.

use crate::{image_status, pb, Cri};
use peapod_image::{ImageRecord, ImageStore};
use std::collections::BTreeMap;
use tonic::Status;

/// The CRI's Image for the records (names) of one image.
pub(crate) fn to_image(store: &ImageStore, recs: &[ImageRecord]) -> Option<pb::Image> {
    let first = recs.first()?;
    let mut repo_tags: Vec<String> = Vec::new();
    let mut repo_digests: Vec<String> = Vec::new();
    for r in recs {
        if let Ok(reference) = peapod_image::Reference::parse(&r.name) {
            let digest = format!("{}@{}", reference.name(), r.digest);
            if !repo_digests.contains(&digest) {
                repo_digests.push(digest);
            }
            if reference.tag.is_some() && !repo_tags.contains(&r.name) {
                repo_tags.push(r.name.clone());
            }
        }
    }
    let (uid, username) = match store.config(first).ok().and_then(|c| c.user) {
        Some(user) => {
            let u = user.split(':').next().unwrap_or_default().to_string();
            match u.parse::<i64>() {
                Ok(n) => (Some(pb::Int64Value { value: n }), String::new()),
                Err(_) if u.is_empty() => (None, String::new()),
                Err(_) => (None, u),
            }
        }
        None => (None, String::new()),
    };
    Some(pb::Image {
        id: first.config_digest.clone(),
        repo_tags,
        repo_digests,
        size: first.size,
        uid,
        username,
        spec: Some(crate::convert::image_spec(&first.config_digest)),
        pinned: false,
    })
}

/// Stored records grouped by image (config digest).
pub(crate) fn grouped(store: &ImageStore) -> Result<BTreeMap<String, Vec<ImageRecord>>, Status> {
    let mut by_id: BTreeMap<String, Vec<ImageRecord>> = BTreeMap::new();
    for r in store.list().map_err(image_status)? {
        by_id.entry(r.config_digest.clone()).or_default().push(r);
    }
    Ok(by_id)
}

pub async fn list_images(
    cri: &Cri,
    req: pb::ListImagesRequest,
) -> Result<pb::ListImagesResponse, Status> {
    let store = cri.images.clone();
    let wanted = req
        .filter
        .and_then(|f| f.image)
        .map(|i| i.image)
        .filter(|s| !s.is_empty());
    tokio::task::spawn_blocking(move || {
        let wanted_id = match &wanted {
            Some(w) => match store.get(w).map_err(image_status)? {
                Some(rec) => Some(rec.config_digest),
                None => return Ok(pb::ListImagesResponse { images: Vec::new() }),
            },
            None => None,
        };
        let images = grouped(&store)?
            .into_iter()
            .filter(|(id, _)| wanted_id.as_ref().is_none_or(|w| w == id))
            .filter_map(|(_, recs)| to_image(&store, &recs))
            .collect();
        Ok(pb::ListImagesResponse { images })
    })
    .await
    .map_err(|e| Status::internal(format!("image task failed: {e}")))?
}
