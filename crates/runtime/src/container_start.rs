//! StartContainer.

use crate::error::RuntimeError;
use crate::Runtime;
use peapod_shim::Request;

impl Runtime {
    pub fn start_container(&self, cid: &str) -> Result<(), RuntimeError> {
        let sid = self.sandbox_of(cid)?;
        self.shim(&sid).expect_ok(&Request::Start {
            id: cid.to_string(),
        })?;
        Ok(())
    }
}
