//! peapod-image: a local OCI image store.
//!
//! * [`Reference`] parses and normalises image references the way docker and
//!   containerd do (`busybox` → `docker.io/library/busybox:latest`).
//! * [`ImageStore`] is a content store addressed by digest
//!   (`root/blobs/sha256/<hex>`), a set of unpacked layers shared by diff id
//!   (`root/layers/<first 12 hex of the diff id>`) and image records keyed by
//!   name (`root/images/<sha256 of the name>.json`).
//! * [`ImageStore::import`] reads OCI image-layout tars and `docker save` tars.
//!   A registry puller adds blobs with [`ImageStore::put_blob`] and then calls
//!   [`ImageStore::add_image`].
//! * [`mount_rootfs`] / [`mount_rootfs_readonly`] / [`unmount`] build a
//!   container's root file system as an overlay of the unpacked layers.

mod error;
mod export;
mod gc;
mod import;
mod mount;
mod pull;
mod reference;
mod registry;
mod store;
mod unpack;

pub use error::ImageError;
pub use export::ExportFormat;
pub use gc::{GcLock, GcReport, PruneReport, TMP_MAX_AGE};
pub use mount::{mount_rootfs, mount_rootfs_readonly, overlay_options, unmount};
pub use pull::{PullEvent, Puller};
pub use reference::Reference;
pub use registry::{
    credentials_from_dockerconfigjson, find_credential, is_loopback, Credential, Endpoint,
    RegistryConfig, RegistryHostConfig,
};
pub use store::{ImageConfig, ImageRecord, ImageStore};
pub use unpack::{unpack_layer, Compression, UnpackedLayer};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_gc;
