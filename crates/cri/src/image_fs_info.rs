//! ImageFsInfo: the bytes and inodes the image store uses, on its
//! filesystem.

use crate::{convert, pb, Cri};
use std::path::Path;
use tonic::Status;

/// Allocated bytes and inodes under `dir` (hard links once).
fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if !seen.insert((md.dev(), md.ino())) {
                continue;
            }
            inodes += 1;
            bytes += md.blocks() * 512;
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

pub async fn image_fs_info(
    cri: &Cri,
    _req: pb::ImageFsInfoRequest,
) -> Result<pb::ImageFsInfoResponse, Status> {
    let root = cri.images.root().to_path_buf();
    let (bytes, inodes) = tokio::task::spawn_blocking({
        let root = root.clone();
        move || usage(&root)
    })
    .await
    .map_err(|e| Status::internal(format!("image task failed: {e}")))?;
    let fs = pb::FilesystemUsage {
        timestamp: convert::now_nanos(),
        fs_id: Some(pb::FilesystemIdentifier {
            mountpoint: root.display().to_string(),
        }),
        used_bytes: Some(pb::UInt64Value { value: bytes }),
        inodes_used: Some(pb::UInt64Value { value: inodes }),
    };
    Ok(pb::ImageFsInfoResponse {
        image_filesystems: vec![fs.clone()],
        container_filesystems: vec![fs],
    })
}
