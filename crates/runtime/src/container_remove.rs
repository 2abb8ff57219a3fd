//! RemoveContainer: libcontainer state and cgroup, rootfs mount, bundle.

use crate::error::RuntimeError;
use crate::{mounts, Runtime};
use peapod_shim::Request;

impl Runtime {
    pub fn remove_container(&self, uid: &str, id: &str) -> Result<(), RuntimeError> {
        self.shim(uid)
            .expect_ok(&Request::Delete { id: id.to_string() })?;
        let dir = self.paths.container_dir(uid, id);
        mounts::unmount_all_under(&dir)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Io {
                path: dir,
                source: e,
            }),
        }
    }
}
