//! PodSandboxStats / ListPodSandboxStats: the pod cgroup's usage and its
//! running containers'.

use crate::{convert, pb, require_id, Cri};
use peapod_runtime::{PodSandboxStats, SandboxFilter};
use tonic::Status;

fn to_pb(cri: &Cri, s: &PodSandboxStats) -> pb::PodSandboxStats {
    let status = cri.runtime.pod_sandbox_status(&s.id).ok();
    let ts = s.usage.timestamp_ns;
    let containers = s
        .containers
        .iter()
        .map(|c| {
            let st = cri.runtime.container_status(&c.id).ok();
            let (labels, annotations) =
                st.map(|st| (st.labels, st.annotations)).unwrap_or_default();
            convert::container_stats(c, &labels, &annotations)
        })
        .collect();
    pb::PodSandboxStats {
        attributes: Some(pb::PodSandboxAttributes {
            id: s.id.clone(),
            metadata: Some(convert::sandbox_metadata(&s.metadata)),
            labels: status
                .as_ref()
                .map(|st| convert::to_map(&st.labels))
                .unwrap_or_default(),
            annotations: status
                .as_ref()
                .map(|st| convert::to_map(&st.annotations))
                .unwrap_or_default(),
        }),
        linux: Some(pb::LinuxPodSandboxStats {
            cpu: Some(pb::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: s
                    .usage
                    .cpu_usage_ns
                    .map(|value| pb::UInt64Value { value }),
                ..Default::default()
            }),
            memory: Some(pb::MemoryUsage {
                timestamp: ts,
                working_set_bytes: s
                    .usage
                    .memory_working_set
                    .map(|value| pb::UInt64Value { value }),
                usage_bytes: s.usage.memory_usage.map(|value| pb::UInt64Value { value }),
                ..Default::default()
            }),
            process: Some(pb::ProcessUsage {
                timestamp: ts,
                process_count: s.usage.pids.map(|value| pb::UInt64Value { value }),
            }),
            containers,
            ..Default::default()
        }),
        windows: None,
    }
}

pub async fn pod_sandbox_stats(
    cri: &std::sync::Arc<Cri>,
    req: pb::PodSandboxStatsRequest,
) -> Result<pb::PodSandboxStatsResponse, Status> {
    require_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let sid = req.pod_sandbox_id;
    let c = cri.clone();
    let stats = cri
        .blocking(move |rt| {
            let s = rt.pod_sandbox_stats(&sid)?;
            Ok(to_pb(&c, &s))
        })
        .await?;
    Ok(pb::PodSandboxStatsResponse { stats: Some(stats) })
}

pub async fn list_pod_sandbox_stats(
    cri: &std::sync::Arc<Cri>,
    req: pb::ListPodSandboxStatsRequest,
) -> Result<pb::ListPodSandboxStatsResponse, Status> {
    let f = req.filter.unwrap_or_default();
    let filter = SandboxFilter {
        id: (!f.id.is_empty()).then_some(f.id),
        state: Some(peapod_runtime::SandboxState::Ready),
        labels: convert::to_btree(&f.label_selector),
    };
    let c = cri.clone();
    let stats = cri
        .blocking(move |rt| {
            Ok(rt
                .list_pod_sandbox(&filter)
                .iter()
                .filter_map(|s| rt.pod_sandbox_stats(&s.id).ok())
                .map(|s| to_pb(&c, &s))
                .collect())
        })
        .await?;
    Ok(pb::ListPodSandboxStatsResponse { stats })
}
