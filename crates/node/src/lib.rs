//! peapod-node: the kubelet part of peapod.
//!
//! Pod workers drive each stored pod to its desired state through the
//! runtime (`worker`), volumes are prepared on the host (`volumes`), status
//! is computed the kubelet way (`status`), objects are kept durably
//! (`store`), and the daemon serves the Kubernetes-shaped API on a unix
//! socket (`server`, `daemon`).

pub mod admission;
pub mod autoscaling;
pub mod config;
pub mod controllers;
pub mod daemon;
pub mod dns;
pub mod env;
pub mod events;
pub mod image_pull;
pub mod lifecycle;
pub mod logfile;
pub mod metrics;
pub mod node;
pub mod pod_actions;
pub mod prober;
pub mod projection;
pub mod server;
pub mod services;
pub mod status;
pub mod store;
pub mod time;
pub mod volumes;
pub mod worker;

pub use daemon::{serve, DaemonOptions};
pub use node::Node;
