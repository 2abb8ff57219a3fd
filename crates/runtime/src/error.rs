//! Runtime errors, with the path or object they concern.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Shim(#[from] peapod_shim::ShimError),
    #[error(transparent)]
    Image(#[from] peapod_image::ImageError),
    #[error("{0}")]
    Config(String),
    /// The pod network (a CNI plugin's error, a bad configuration).
    #[error("pod network: {0}")]
    Network(#[from] peapod_net::NetError),
    /// No such sandbox or container (CRI's NotFound).
    #[error("{0} not found")]
    NotFound(String),
    #[error("sandbox {uid}: {message}")]
    Sandbox { uid: String, message: String },
    /// The container's configuration cannot be satisfied
    /// (kubelet's CreateContainerConfigError).
    #[error("container {name}: {message}")]
    ContainerConfig { name: String, message: String },
    #[error("container {name}: {message}")]
    Container { name: String, message: String },
}

impl RuntimeError {
    pub fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let path = path.as_ref().to_path_buf();
        move |source| RuntimeError::Io { path, source }
    }
}
