//! ListPodSandbox, with the CRI's filters: id, state, labels (all must
//! match). Only the CRI's own sandboxes are listed.

use crate::{convert, pb, Cri};
use peapod_runtime::SandboxFilter;
use tonic::Status;

pub async fn list_pod_sandbox(
    cri: &Cri,
    req: pb::ListPodSandboxRequest,
) -> Result<pb::ListPodSandboxResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let state = match f.state {
        Some(v) => Some(convert::sandbox_state_from(v.state).ok_or_else(|| {
            Status::invalid_argument(format!(
                "filter.state: {} is not SANDBOX_READY or SANDBOX_NOTREADY",
                v.state
            ))
        })?),
        None => None,
    };
    let filter = SandboxFilter {
        id: (!f.id.is_empty()).then_some(f.id),
        state,
        labels: convert::to_btree(&f.label_selector),
    };
    let list = cri
        .blocking(move |rt| Ok(rt.list_pod_sandbox(&filter)))
        .await?;
    Ok(pb::ListPodSandboxResponse {
        items: list.iter().map(convert::sandbox).collect(),
    })
}
