//! Version: the runtime's name and version, and the CRI version it speaks.

use crate::pb;
use tonic::Status;

/// The CRI API version served.
pub const RUNTIME_API_VERSION: &str = "v1";
/// The runtime's name as kubelet and crictl show it.
pub const RUNTIME_NAME: &str = "peapod";

pub fn version(_req: pb::VersionRequest) -> Result<pb::VersionResponse, Status> {
    Ok(pb::VersionResponse {
        // The version of the kubelet runtime API (always "0.1.0").
        version: "0.1.0".into(),
        runtime_name: RUNTIME_NAME.into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: RUNTIME_API_VERSION.into(),
    })
}
