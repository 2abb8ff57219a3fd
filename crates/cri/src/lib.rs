//! peapod-cri: the CRI v1 RuntimeService and ImageService over gRPC, what
//! kubelet and crictl speak.
//!
//! A thin translation over the same runtime (`peapod-runtime`), image
//! store and puller (`peapod-image`) and pod network that peapod's own pods
//! use; one file per RPC, as CRI-O's `server/cri/v1/rpc_*.go`.
//!
//! Ownership: the CRI has its own runtime instance, rooted at
//! `<root>/cri` and `<state>/cri` (as containerd's `k8s.io` namespace), so
//! ListPodSandbox over the CRI never lists peapod's own sandboxes and the
//! daemon's start-up adoption (which walks `<root>/sandboxes`) never
//! touches the CRI's. Images are shared: an image imported or pulled by
//! peapod is visible to the CRI and the other way round.
//!
//! Exec, Attach and PortForward return URLs of the streaming server
//! ([`streaming`], 127.0.0.1 on an ephemeral port); GetContainerEvents
//! streams the container lifecycle events of this server's RPCs
//! ([`events`]). Not here: checkpoints, metrics.

pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("runtime.v1");
}

mod container_create;
mod container_list;
mod container_remove;
mod container_reopen_log;
mod container_start;
mod container_stats;
mod container_status;
mod container_stop;
mod container_update;
mod convert;
mod events;
mod exec;
mod exec_sync;
mod image_fs_info;
mod image_list;
mod image_pull;
mod image_remove;
mod image_status;
mod sandbox_list;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_stats;
mod sandbox_status;
mod sandbox_stop;
mod service;
mod status;
pub mod streaming;
mod version;

use peapod_image::{ImageError, ImageStore, Puller};
use peapod_runtime::{Runtime, RuntimeError, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::Status;

/// The socket's file name under the daemon's `--state`.
pub const SOCKET_NAME: &str = "cri.sock";

/// The CRI's ownership namespace below `--root` and `--state`.
pub const NAMESPACE_DIR: &str = "cri";

/// The CRI server's state: its own runtime, the shared image store and
/// puller.
pub struct Cri {
    pub runtime: Arc<Runtime>,
    pub images: Arc<ImageStore>,
    pub puller: Arc<Puller>,
    /// Tokens of the streaming URLs handed out.
    pub streaming: streaming::Streaming,
    /// Container lifecycle events for GetContainerEvents.
    pub events: events::Events,
}

impl Cri {
    /// The CRI's runtime options from the daemon's: the same cgroup
    /// parent, shim binary, log rotation and pod network, with root and
    /// state in the CRI's own subdirectories.
    pub fn runtime_options(base: &RuntimeOptions) -> RuntimeOptions {
        RuntimeOptions {
            root: base.root.join(NAMESPACE_DIR),
            state: base.state.join(NAMESPACE_DIR),
            ..base.clone()
        }
    }

    /// Open the CRI's runtime next to the daemon's.
    pub fn new(
        base: &RuntimeOptions,
        images: Arc<ImageStore>,
        puller: Arc<Puller>,
    ) -> Result<Self, RuntimeError> {
        let runtime = Arc::new(Runtime::new(Self::runtime_options(base), images.clone())?);
        Ok(Self {
            runtime,
            images,
            puller,
            streaming: Default::default(),
            events: Default::default(),
        })
    }

    /// Run blocking runtime work off the async threads.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Runtime) -> Result<T, RuntimeError> + Send + 'static,
    {
        let rt = self.runtime.clone();
        tokio::task::spawn_blocking(move || f(&rt))
            .await
            .map_err(|e| Status::internal(format!("runtime task failed: {e}")))?
            .map_err(runtime_status)
    }
}

/// Serve the CRI on `socket` until `shutdown` resolves; the socket file
/// is removed before binding and after serving.
pub async fn serve(
    cri: Arc<Cri>,
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), std::io::Error> {
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    // The streaming server: loopback only, an ephemeral port.
    let stream_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let streaming = tokio::spawn(streaming::serve(cri.clone(), stream_listener, async {
        let _ = stop_rx.await;
    }));
    let watcher = tokio::spawn(events::watch_exits(Arc::downgrade(&cri)));
    let svc = service::CriService(cri);
    let res = tonic::transport::Server::builder()
        .add_service(pb::runtime_service_server::RuntimeServiceServer::new(
            svc.clone(),
        ))
        .add_service(pb::image_service_server::ImageServiceServer::new(svc))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = stop_tx.send(());
    watcher.abort();
    // Sessions still open do not hold the daemon's exit.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), streaming).await;
    let _ = std::fs::remove_file(socket);
    res.map_err(std::io::Error::other)
}

/// `<state>/cri.sock`.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join(SOCKET_NAME)
}

/// The gRPC code kubelet expects for a runtime error.
pub(crate) fn runtime_status(e: RuntimeError) -> Status {
    match &e {
        RuntimeError::NotFound(_) => Status::not_found(e.to_string()),
        RuntimeError::Config(_) | RuntimeError::ContainerConfig { .. } => {
            Status::invalid_argument(e.to_string())
        }
        RuntimeError::Image(ie) => image_code(ie, e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

/// The image name of an ImageService request (`image.image`), required.
pub(crate) fn required_image(spec: Option<pb::ImageSpec>) -> Result<String, Status> {
    match spec.map(|i| i.image) {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(Status::invalid_argument("image.image: required")),
    }
}

pub(crate) fn image_status(e: ImageError) -> Status {
    let msg = e.to_string();
    image_code(&e, msg)
}

fn image_code(e: &ImageError, msg: String) -> Status {
    match e {
        ImageError::NotFound(_) => Status::not_found(msg),
        ImageError::InvalidReference { .. }
        | ImageError::InvalidDigest { .. }
        | ImageError::Ambiguous { .. } => Status::invalid_argument(msg),
        ImageError::InUse { .. } => Status::failed_precondition(msg),
        ImageError::Registry { .. } => Status::unavailable(msg),
        _ => Status::internal(msg),
    }
}

/// A required id field is empty: InvalidArgument naming the field.
pub(crate) fn require_id(value: &str, field: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field}: required; pass the id ListPodSandbox/ListContainers gives"
        )));
    }
    Ok(())
}
