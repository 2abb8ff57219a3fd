//! StopContainer: the stop signal, a wait of up to the timeout, then
//! SIGKILL to every process of the container.

use crate::error::RuntimeError;
use crate::types::ContainerState;
use crate::Runtime;
use peapod_shim::{ContainerStatus, Request, ShimClient, ShimState};
use std::time::{Duration, Instant};

fn exited(s: &ShimState, id: &str) -> bool {
    s.containers
        .get(id)
        .map(|c| c.status == ContainerStatus::Exited)
        .unwrap_or(true)
}

/// Follow the shim's state from `state` until `done` holds (true) or
/// `timeout` passes (false).
pub(crate) fn wait_shim(
    shim: &ShimClient,
    mut state: ShimState,
    timeout: Duration,
    done: impl Fn(&ShimState) -> bool,
) -> Result<bool, RuntimeError> {
    let start = Instant::now();
    while !done(&state) {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        state = shim.wait_change(state.generation, left.min(Duration::from_secs(5)))?;
    }
    Ok(true)
}

impl Runtime {
    /// Wait until container `cid` has exited or `timeout` passes.
    pub fn wait_container_exit(&self, cid: &str, timeout: Duration) -> Result<bool, RuntimeError> {
        let shim = self.shim(&self.sandbox_of(cid)?);
        let state = shim.state()?;
        wait_shim(&shim, state, timeout, |s| exited(s, cid))
    }

    /// StopContainer: `signal` first (else the image's `StopSignal`, else
    /// SIGTERM) and SIGKILL after `timeout`.
    pub fn stop_container(
        &self,
        cid: &str,
        timeout: Duration,
        signal: Option<i32>,
    ) -> Result<(), RuntimeError> {
        let status = self.container_status(cid)?;
        match status.state {
            ContainerState::Exited => return Ok(()),
            ContainerState::Unknown => {
                // The shim is gone: its sandbox's stop kills what is left.
                return Ok(());
            }
            _ => {}
        }
        let sid = status.sandbox_id.clone();
        let shim = self.shim(&sid);
        // A created-but-never-started container has nothing to terminate
        // gracefully.
        if status.state == ContainerState::Running && !timeout.is_zero() {
            shim.expect_ok(&Request::Kill {
                id: cid.to_string(),
                signal: signal
                    .or(self.container_record(cid)?.stop_signal)
                    .unwrap_or(libc::SIGTERM),
                all: false,
            })?;
            if self.wait_container_exit(cid, timeout)? {
                return Ok(());
            }
        }
        shim.expect_ok(&Request::Kill {
            id: cid.to_string(),
            signal: libc::SIGKILL,
            all: true,
        })?;
        if !self.wait_container_exit(cid, Duration::from_secs(10))? {
            return Err(RuntimeError::Container {
                name: status.metadata.name,
                message: "did not exit after SIGKILL".into(),
            });
        }
        Ok(())
    }
}
