//! ReopenContainerLog: the shim writes and rotates container logs; whoever
//! rotates them from outside (kubelet over CRI) asks it to reopen the path.

use crate::error::RuntimeError;
use crate::Runtime;

impl Runtime {
    /// Make the shim close container `id`'s log file and open its path
    /// again.
    pub fn reopen_container_log(&self, uid: &str, id: &str) -> Result<(), RuntimeError> {
        Ok(self.shim(uid).reopen_log(id)?)
    }
}
