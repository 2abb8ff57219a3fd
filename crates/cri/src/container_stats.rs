//! ContainerStats / ListContainerStats: cpu and memory from the
//! container's cgroup.

use crate::{convert, pb, require_id, Cri};
use peapod_runtime::ContainerFilter;
use tonic::Status;

pub async fn container_stats(
    cri: &Cri,
    req: pb::ContainerStatsRequest,
) -> Result<pb::ContainerStatsResponse, Status> {
    require_id(&req.container_id, "container_id")?;
    let cid = req.container_id;
    let stats = cri
        .blocking(move |rt| {
            let st = rt.container_status(&cid)?;
            let s = rt.container_stats(&cid)?;
            Ok(convert::container_stats(&s, &st.labels, &st.annotations))
        })
        .await?;
    Ok(pb::ContainerStatsResponse { stats: Some(stats) })
}

pub async fn list_container_stats(
    cri: &Cri,
    req: pb::ListContainerStatsRequest,
) -> Result<pb::ListContainerStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let filter = ContainerFilter {
        id: (!f.id.is_empty()).then_some(f.id),
        sandbox_id: (!f.pod_sandbox_id.is_empty()).then_some(f.pod_sandbox_id),
        state: None,
        labels: convert::to_btree(&f.label_selector),
    };
    let stats = cri
        .blocking(move |rt| {
            Ok(rt
                .list_containers(&filter)
                .into_iter()
                .filter(|c| c.state == peapod_runtime::ContainerState::Running)
                .filter_map(|c| {
                    rt.container_stats(&c.id)
                        .ok()
                        .map(|s| convert::container_stats(&s, &c.labels, &c.annotations))
                })
                .collect())
        })
        .await?;
    Ok(pb::ListContainerStatsResponse { stats })
}
