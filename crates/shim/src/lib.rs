//! peapod-shim: the per-pod supervisor.
//!
//! One shim process runs per pod. It is started by fork+exec from the daemon
//! (see `peapod-runtime`'s `sandbox_run`), lives in its own session and
//! cgroup, and is the child subreaper of every process of its pod: the infra
//! process, each container's init and each exec'd process. It records exit
//! codes, writes container logs in the CRI format and answers the daemon on a
//! unix control socket with a one-request-per-connection JSON protocol.
//!
//! Roles, one module each:
//! - [`server`]: the shim's main loop (control socket, reaper, state);
//! - [`infra`]: peapod's own pause process, which holds the pod namespaces;
//! - [`helper`]: the short-lived process that drives youki's libcontainer for
//!   one create / start / exec / kill / delete (libcontainer changes the
//!   process that calls it and forks, so it never runs inside the shim);
//! - [`client`]: what the daemon uses to talk to a shim;
//! - [`protocol`]: the messages.

pub mod client;
pub mod fdpass;
pub mod helper;
pub mod infra;
pub mod logs;
pub mod protocol;
pub mod server;

pub use client::{ShimClient, ShimError};
pub use protocol::*;
