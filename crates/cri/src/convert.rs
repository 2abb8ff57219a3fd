//! Conversions between the runtime's CRI-shaped types and the CRI's
//! protobuf messages.

use crate::pb;
use peapod_runtime as rt;
use std::collections::{BTreeMap, HashMap};

/// RFC 3339 → nanoseconds since the epoch (0 when absent or unreadable,
/// as the CRI reports "not set").
pub fn nanos(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

pub fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

pub fn to_map(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn to_btree(m: &HashMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn sandbox_metadata(m: &rt::PodSandboxMetadata) -> pb::PodSandboxMetadata {
    pb::PodSandboxMetadata {
        name: m.name.clone(),
        uid: m.uid.clone(),
        namespace: m.namespace.clone(),
        attempt: m.attempt,
    }
}

pub fn sandbox_state(s: rt::SandboxState) -> pb::PodSandboxState {
    match s {
        rt::SandboxState::Ready => pb::PodSandboxState::SandboxReady,
        rt::SandboxState::NotReady => pb::PodSandboxState::SandboxNotready,
    }
}

pub fn sandbox_state_from(v: i32) -> Option<rt::SandboxState> {
    match pb::PodSandboxState::try_from(v).ok()? {
        pb::PodSandboxState::SandboxReady => Some(rt::SandboxState::Ready),
        pb::PodSandboxState::SandboxNotready => Some(rt::SandboxState::NotReady),
    }
}

pub fn container_metadata(m: &rt::ContainerMetadata) -> pb::ContainerMetadata {
    pb::ContainerMetadata {
        name: m.name.clone(),
        attempt: m.attempt,
    }
}

pub fn container_state(s: rt::ContainerState) -> pb::ContainerState {
    match s {
        rt::ContainerState::Created => pb::ContainerState::ContainerCreated,
        rt::ContainerState::Running => pb::ContainerState::ContainerRunning,
        rt::ContainerState::Exited => pb::ContainerState::ContainerExited,
        rt::ContainerState::Unknown => pb::ContainerState::ContainerUnknown,
    }
}

pub fn container_state_from(v: i32) -> Option<rt::ContainerState> {
    Some(match pb::ContainerState::try_from(v).ok()? {
        pb::ContainerState::ContainerCreated => rt::ContainerState::Created,
        pb::ContainerState::ContainerRunning => rt::ContainerState::Running,
        pb::ContainerState::ContainerExited => rt::ContainerState::Exited,
        pb::ContainerState::ContainerUnknown => rt::ContainerState::Unknown,
    })
}

pub fn image_spec(image: &str) -> pb::ImageSpec {
    pb::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// The CRI's NamespaceOption of a sandbox.
pub fn namespace_option(s: &rt::PodSandboxStatus) -> pb::NamespaceOption {
    let mode = |host: bool, shared: bool| {
        if host {
            pb::NamespaceMode::Node
        } else if shared {
            pb::NamespaceMode::Pod
        } else {
            pb::NamespaceMode::Container
        }
    };
    pb::NamespaceOption {
        network: mode(s.host_network, true) as i32,
        pid: mode(s.host_pid, s.share_process_namespace) as i32,
        ipc: mode(s.host_ipc, true) as i32,
        ..Default::default()
    }
}

pub fn sandbox_status(s: &rt::PodSandboxStatus) -> pb::PodSandboxStatus {
    pb::PodSandboxStatus {
        id: s.id.clone(),
        metadata: Some(sandbox_metadata(&s.metadata)),
        state: sandbox_state(s.state) as i32,
        created_at: nanos(Some(&s.created_at)),
        network: s.network.as_ref().map(|n| pb::PodSandboxNetworkStatus {
            ip: n.ip.clone(),
            additional_ips: n
                .additional_ips
                .iter()
                .map(|ip| pb::PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(pb::LinuxPodSandboxStatus {
            namespaces: Some(pb::Namespace {
                options: Some(namespace_option(s)),
            }),
        }),
        labels: to_map(&s.labels),
        annotations: to_map(&s.annotations),
        runtime_handler: String::new(),
    }
}

pub fn sandbox(s: &rt::PodSandboxStatus) -> pb::PodSandbox {
    pb::PodSandbox {
        id: s.id.clone(),
        metadata: Some(sandbox_metadata(&s.metadata)),
        state: sandbox_state(s.state) as i32,
        created_at: nanos(Some(&s.created_at)),
        labels: to_map(&s.labels),
        annotations: to_map(&s.annotations),
        runtime_handler: String::new(),
    }
}

pub fn container(c: &rt::ContainerStatus) -> pb::Container {
    pb::Container {
        id: c.id.clone(),
        pod_sandbox_id: c.sandbox_id.clone(),
        metadata: Some(container_metadata(&c.metadata)),
        image: Some(image_spec(&c.image)),
        image_ref: c.image_ref.clone(),
        state: container_state(c.state) as i32,
        created_at: nanos(Some(&c.created_at)),
        labels: to_map(&c.labels),
        annotations: to_map(&c.annotations),
        image_id: c.image_ref.clone(),
    }
}

pub fn container_status(c: &rt::ContainerStatus) -> pb::ContainerStatus {
    let started_at = nanos(c.started_at.as_deref());
    // The shim stamps the start once the start call returns; a process
    // that exits at once may be stamped finished a moment earlier. A
    // container never finishes before it starts.
    let finished_at = match nanos(c.finished_at.as_deref()) {
        0 => 0,
        f => f.max(started_at),
    };
    pb::ContainerStatus {
        id: c.id.clone(),
        metadata: Some(container_metadata(&c.metadata)),
        state: container_state(c.state) as i32,
        created_at: nanos(Some(&c.created_at)),
        started_at,
        finished_at,
        exit_code: c.exit_code.unwrap_or(0),
        image: Some(image_spec(&c.image)),
        image_ref: c.image_ref.clone(),
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
        labels: to_map(&c.labels),
        annotations: to_map(&c.annotations),
        log_path: c.log_path.display().to_string(),
        image_id: c.image_ref.clone(),
        ..Default::default()
    }
}

fn usage_u64(v: Option<u64>) -> Option<pb::UInt64Value> {
    v.map(|value| pb::UInt64Value { value })
}

pub fn container_stats(
    s: &rt::ContainerStats,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> pb::ContainerStats {
    let ts = s.usage.timestamp_ns;
    pb::ContainerStats {
        attributes: Some(pb::ContainerAttributes {
            id: s.id.clone(),
            metadata: Some(container_metadata(&s.metadata)),
            labels: to_map(labels),
            annotations: to_map(annotations),
        }),
        cpu: Some(pb::CpuUsage {
            timestamp: ts,
            usage_core_nano_seconds: usage_u64(s.usage.cpu_usage_ns),
            ..Default::default()
        }),
        memory: Some(pb::MemoryUsage {
            timestamp: ts,
            working_set_bytes: usage_u64(s.usage.memory_working_set),
            usage_bytes: usage_u64(s.usage.memory_usage),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// CRI resources (shares, quota/period, bytes) → the runtime's request
/// (millicores, bytes).
pub fn resources(r: &pb::LinuxContainerResources) -> rt::cgroups::resources::Requested {
    let period = if r.cpu_period > 0 {
        r.cpu_period
    } else {
        100_000
    };
    rt::cgroups::resources::Requested {
        cpu_request_milli: (r.cpu_shares > 0).then(|| r.cpu_shares * 1000 / 1024),
        cpu_limit_milli: (r.cpu_quota > 0).then(|| r.cpu_quota * 1000 / period),
        memory_limit: (r.memory_limit_in_bytes > 0).then_some(r.memory_limit_in_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_becomes_nanoseconds_and_unset_is_zero() {
        assert_eq!(nanos(Some("1970-01-01T00:00:01.000000002Z")), 1_000_000_002);
        assert_eq!(nanos(None), 0);
        assert_eq!(nanos(Some("not a time")), 0);
    }

    #[test]
    fn cri_resources_become_millicores() {
        let r = resources(&pb::LinuxContainerResources {
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        });
        assert_eq!(r.cpu_request_milli, Some(500));
        assert_eq!(r.cpu_limit_milli, Some(500));
        assert_eq!(r.memory_limit, Some(64 << 20));
        let none = resources(&pb::LinuxContainerResources::default());
        assert_eq!(none.cpu_request_milli, None);
        assert_eq!(none.cpu_limit_milli, None);
        assert_eq!(none.memory_limit, None);
    }

    #[test]
    fn states_round_trip() {
        for s in [
            rt::ContainerState::Created,
            rt::ContainerState::Running,
            rt::ContainerState::Exited,
            rt::ContainerState::Unknown,
        ] {
            assert_eq!(container_state_from(container_state(s) as i32), Some(s));
        }
        for s in [rt::SandboxState::Ready, rt::SandboxState::NotReady] {
            assert_eq!(sandbox_state_from(sandbox_state(s) as i32), Some(s));
        }
        assert_eq!(container_state_from(42), None);
    }
}
