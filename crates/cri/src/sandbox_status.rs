//! PodSandboxStatus: state, creation time, the CNI address, namespaces;
//! with `verbose`, the runtime's own view as JSON under `info`.

use crate::{convert, pb, require_id, Cri};
use tonic::Status;

pub async fn pod_sandbox_status(
    cri: &Cri,
    req: pb::PodSandboxStatusRequest,
) -> Result<pb::PodSandboxStatusResponse, Status> {
    require_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let sid = req.pod_sandbox_id;
    let s = cri.blocking(move |rt| rt.pod_sandbox_status(&sid)).await?;
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        info.insert(
            "info".to_string(),
            serde_json::to_string(&s).unwrap_or_default(),
        );
    }
    Ok(pb::PodSandboxStatusResponse {
        status: Some(convert::sandbox_status(&s)),
        info,
        containers_statuses: Vec::new(),
        timestamp: convert::now_nanos(),
    })
}
