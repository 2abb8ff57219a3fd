//! UpdateContainerResources: new cpu and memory values on a container's
//! cgroup, in place.

use crate::cgroups::resources::{container_values, Requested};
use crate::error::RuntimeError;
use crate::Runtime;

impl Runtime {
    pub fn update_container_resources(
        &self,
        cid: &str,
        resources: &Requested,
    ) -> Result<(), RuntimeError> {
        let rec = self.container_record(cid)?;
        let values = container_values(resources);
        self.cgroups.write_values(&rec.cgroup, &values)?;
        Ok(())
    }
}
