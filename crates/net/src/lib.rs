//! peapod-net: pod networking through the real CNI plugins.
//!
//! - `cni/`: the CNI specification, the runtime's side (run a plugin,
//!   run a configuration list in order, read a result);
//! - `config`: the pod network's configuration under `--config-dir`
//!   (`net.d/`), and the default written on first start;
//! - `pod`: a sandbox on the pod network: attach (ADD), detach (DEL),
//!   check (CHECK), hostPorts.
//!
//! The runtime calls it inside RunPodSandbox (after the sandbox's
//! namespaces are pinned) and StopPodSandbox / RemovePodSandbox, as
//! containerd does for kubelet.

pub mod cni;
pub mod config;
pub mod egress;
pub mod error;
pub mod pod;

pub use cni::result::PodIp;
pub use error::NetError;
pub use pod::{Attachment, PodNetwork, PodNetworkStatus, PodRef, PortMapping};
