//! Errors of pod networking, naming the file, network or plugin concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A network configuration file that cannot be used.
    #[error("network configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(
        "CNI plugin {plugin:?} (network {network:?}) not found in {search}; install Debian's containernetworking-plugins or fix \"type\" in the network configuration"
    )]
    PluginNotFound {
        plugin: String,
        network: String,
        search: String,
    },
    /// The plugin ran and reported an error (CNI error JSON, or its exit
    /// status and stderr).
    #[error("CNI plugin {plugin:?} failed ({command} on network {network:?}): {message}")]
    Plugin {
        plugin: String,
        network: String,
        command: &'static str,
        /// The CNI error code (0 when the plugin gave none).
        code: u32,
        message: String,
    },
    /// The plugin could not be run or its answer not read.
    #[error("CNI plugin {plugin:?} ({command} on network {network:?}): {message}")]
    Exec {
        plugin: String,
        network: String,
        command: &'static str,
        message: String,
    },
}

impl NetError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NetError {
        let path = path.into();
        move |source| NetError::Io { path, source }
    }
}
