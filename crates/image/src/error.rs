//! The crate's error type.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the image store. Every variant names what
/// it was working on (a path, a digest, a reference).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest { digest: String, reason: String },

    #[error("{what}: digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("blob {digest} not found ({context})")]
    BlobMissing { digest: String, context: String },

    #[error("invalid image archive: {0}")]
    InvalidArchive(String),

    #[error("archive has no image name; pass --name")]
    NoImageName,

    #[error("{context}: invalid JSON: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{context}: {source}")]
    Oci {
        context: String,
        #[source]
        source: oci_spec::OciSpecError,
    },

    #[error("layer {layer}: entry {entry:?} refused: {reason}")]
    UnsafeLayerEntry {
        layer: String,
        entry: String,
        reason: String,
    },

    #[error("layer {layer}: {context}: {source}")]
    Unpack {
        layer: String,
        context: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "layer {layer}: uncompressed content hashes to {actual}, but the image config lists diff id {expected}"
    )]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },

    #[error("layer {diff_id} is not unpacked at {}", path.display())]
    LayerMissing { diff_id: String, path: PathBuf },

    #[error("image {0:?} not found")]
    NotFound(String),

    #[error("image reference {reference:?} is ambiguous: it matches {matches}")]
    Ambiguous { reference: String, matches: String },

    #[error("unsupported: {0}")]
    Unsupported(String),

    #[error("mount {what} at {}: {source}", target.display())]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("image {reference} ({digest}) is in use by a container; delete the pod first")]
    InUse { reference: String, digest: String },

    #[error("unmount {}: {source}", target.display())]
    Unmount {
        target: PathBuf,
        #[source]
        source: nix::Error,
    },

    /// A registry refused or failed a request of a pull (or could not be
    /// reached). `registry` is the endpoint that was asked (a mirror or the
    /// upstream), `status` the HTTP status if there was a response, `message`
    /// the registry's own error message (or the transport error).
    #[error("pulling {reference} from {registry}{}: {message}", fmt_http_status(.status))]
    Registry {
        registry: String,
        reference: String,
        status: Option<u16>,
        message: String,
    },

    #[error("registry config {}: {message}", path.display())]
    RegistryConfig { path: PathBuf, message: String },

    #[error("image pull secret: {0}")]
    PullSecret(String),
}

fn fmt_http_status(status: &Option<u16>) -> String {
    match status {
        Some(s) => format!(" (HTTP {s})"),
        None => String::new(),
    }
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        ImageError::Json {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn oci(context: impl Into<String>, source: oci_spec::OciSpecError) -> Self {
        ImageError::Oci {
            context: context.into(),
            source,
        }
    }
}

/// `map_err` helper: wrap an `io::Error` with a verb and a path.
pub(crate) fn io_ctx(what: &str, path: &Path) -> impl FnOnce(io::Error) -> ImageError {
    let context = format!("{what} {}", path.display());
    move |e| ImageError::io(context, e)
}
