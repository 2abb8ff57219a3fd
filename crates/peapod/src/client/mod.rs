//! The client side of the `peapod` CLI: every verb but `serve` talks to the
//! daemon over its unix socket, with Kubernetes-shaped paths and JSON, and
//! prints what kubectl would.
//!
//! Errors are returned as `anyhow` errors whose message is the complete
//! text to print on stderr (no further prefix): daemon errors read
//! `Error from server (NotFound): pods "web" not found`, local ones start
//! with `error: ` (or `The Pod "x" is invalid: …` for validation), and one
//! error may span several lines. `Warning` headers and manifest warnings are
//! printed to stderr as they come.

mod apply;
mod cluster;
pub mod config;
mod delete;
mod describe;
mod exec;
mod get;
mod images;
mod inspect;
pub mod kustomize;
mod logs;
mod port_forward;
mod pull;
pub mod rollout;
pub mod services;
mod status;
mod table;
pub mod top;
mod transport;
pub mod wait;
pub mod workloads;
mod workloads_b;

pub use apply::{apply, apply_kustomization};
pub use cluster::{create_namespace, describe_node, get_cluster, Kind};
pub use delete::{delete, delete_targets_from_file, parse_timeout, Cascade};
pub use describe::describe;
pub use exec::exec;
pub use get::{get, pod_names, GetArgs, Output};
pub use images::{image_export, image_import, image_prune, image_rm, images};
pub use inspect::inspect;
pub use logs::logs;
pub use port_forward::port_forward;
pub use pull::pull;
// kubectl's READY and STATUS columns, for whoever needs them besides `get`.
#[allow(unused_imports)]
pub use status::{pod_ready, pod_status_reason};
pub use transport::Client;
