//! StopContainer: SIGTERM, wait up to the grace period, then SIGKILL to
//! every process of the container.

use crate::error::RuntimeError;
use crate::Runtime;
use peapod_shim::{ContainerStatus, Request, ShimState};
use std::time::{Duration, Instant};

fn exited(s: &ShimState, id: &str) -> bool {
    s.containers
        .get(id)
        .map(|c| c.status == ContainerStatus::Exited)
        .unwrap_or(true)
}

impl Runtime {
    /// Wait until container `id` has exited or `timeout` passes.
    pub fn wait_container_exit(
        &self,
        uid: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<bool, RuntimeError> {
        let shim = self.shim(uid);
        let start = Instant::now();
        let mut state = shim.state()?;
        while !exited(&state, id) {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(false);
            }
            state = shim.wait_change(state.generation, left.min(Duration::from_secs(5)))?;
        }
        Ok(true)
    }

    pub fn stop_container(&self, uid: &str, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let shim = self.shim(uid);
        let state = shim.state()?;
        let Some(c) = state.containers.get(id) else {
            return Ok(());
        };
        if c.status == ContainerStatus::Exited {
            return Ok(());
        }
        // A created-but-never-started container has nothing to terminate
        // gracefully.
        if c.status == ContainerStatus::Running && !grace.is_zero() {
            shim.expect_ok(&Request::Kill {
                id: id.to_string(),
                signal: libc::SIGTERM,
                all: false,
            })?;
            if self.wait_container_exit(uid, id, grace)? {
                return Ok(());
            }
        }
        shim.expect_ok(&Request::Kill {
            id: id.to_string(),
            signal: libc::SIGKILL,
            all: true,
        })?;
        if !self.wait_container_exit(uid, id, Duration::from_secs(10))? {
            return Err(RuntimeError::Container {
                name: id.into(),
                message: "did not exit after SIGKILL".into(),
            });
        }
        Ok(())
    }
}
