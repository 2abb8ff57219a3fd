//! ReopenContainerLog: the shim writes and rotates container logs; whoever
//! rotates them from outside (kubelet over CRI) asks it to reopen the path.

use crate::error::RuntimeError;
use crate::{ContainerState, Runtime};

impl Runtime {
    /// Make the shim close container `cid`'s log file and open its path
    /// again. As in containerd, only a running container has a log open.
    pub fn reopen_container_log(&self, cid: &str) -> Result<(), RuntimeError> {
        let status = self.container_status(cid)?;
        if status.state != ContainerState::Running {
            return Err(RuntimeError::Container {
                name: cid.to_string(),
                message: "is not running; only a running container's log can be reopened".into(),
            });
        }
        Ok(self.shim(&status.sandbox_id).reopen_log(cid)?)
    }
}
