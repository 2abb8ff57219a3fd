//! ListContainers, with the CRI's filters: id, sandbox id, state, labels.

use crate::{convert, pb, Cri};
use peapod_runtime::ContainerFilter;
use tonic::Status;

pub async fn list_containers(
    cri: &Cri,
    req: pb::ListContainersRequest,
) -> Result<pb::ListContainersResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let state = match f.state {
        Some(v) => Some(convert::container_state_from(v.state).ok_or_else(|| {
            Status::invalid_argument(format!(
                "filter.state: {} is not CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED or CONTAINER_UNKNOWN",
                v.state
            ))
        })?),
        None => None,
    };
    let filter = ContainerFilter {
        id: (!f.id.is_empty()).then_some(f.id),
        sandbox_id: (!f.pod_sandbox_id.is_empty()).then_some(f.pod_sandbox_id),
        state,
        labels: convert::to_btree(&f.label_selector),
    };
    let list = cri
        .blocking(move |rt| Ok(rt.list_containers(&filter)))
        .await?;
    Ok(pb::ListContainersResponse {
        containers: list.iter().map(convert::container).collect(),
    })
}
