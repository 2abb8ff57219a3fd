//! StartContainer.

use crate::error::RuntimeError;
use crate::Runtime;
use peapod_shim::Request;

impl Runtime {
    pub fn start_container(&self, uid: &str, id: &str) -> Result<(), RuntimeError> {
        self.shim(uid)
            .expect_ok(&Request::Start { id: id.to_string() })?;
        Ok(())
    }
}
