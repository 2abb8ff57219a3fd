//! Pod admission, as kubelet's admit handlers decide it
//! (pkg/kubelet/lifecycle/predicate.go, the scheduler's NodeResourcesFit
//! and NodePorts filters): a pod whose requests do not fit what the node
//! has left, or whose hostPort another pod holds, is rejected once, when
//! it arrives: it is stored `Failed` with kubelet's reason (`OutOfcpu`,
//! `OutOfmemory`, `OutOfpods`, `NodePorts`) and message, and nothing is
//! made for it.
//!
//! The decision and the store write happen under one lock, so pods
//! applied at the same time are admitted one after the other and never
//! both into the last free CPU.

use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;

/// What a pod asks of the node: milli-CPU and bytes of memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resources {
    fn add(self, o: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu + o.milli_cpu,
            memory: self.memory + o.memory,
        }
    }
    fn max(self, o: Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(o.milli_cpu),
            memory: self.memory.max(o.memory),
        }
    }
}

/// The node's allocatable resources and pod count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocatable {
    pub milli_cpu: i64,
    pub memory: i64,
    pub pods: i64,
}

/// A container's requests, or limits with `limits`.
fn container_resources(c: &Container, limits: bool) -> Resources {
    let req = c.resources.as_ref().and_then(|r| {
        if limits {
            r.limits.as_ref()
        } else {
            r.requests.as_ref()
        }
    });
    let get = |k: &str| {
        req.and_then(|r| r.get(k))
            .and_then(|q| peapod_api::parse_quantity(&q.0).ok())
    };
    Resources {
        milli_cpu: get("cpu").map(|q| q.as_millis()).unwrap_or(0),
        memory: get("memory").map(|q| q.as_bytes()).unwrap_or(0),
    }
}

/// The pod's effective requests (resourcehelper.PodRequests): the app
/// containers and sidecars together, or the largest init container step
/// (an init container plus the sidecars started before it), whichever is
/// more, per resource.
pub fn pod_requests(pod: &Pod) -> Resources {
    pod_resources(pod, false)
}

/// [`pod_requests`], or the same sum of limits with `limits`
/// (`PodRequestsAndLimits`, for `describe node`).
pub fn pod_resources(pod: &Pod, limits: bool) -> Resources {
    let container_requests = |c: &Container| container_resources(c, limits);
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut reqs = spec
        .containers
        .iter()
        .map(container_requests)
        .fold(Resources::default(), Resources::add);
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        let step = if c.restart_policy.as_deref() == Some("Always") {
            reqs = reqs.add(r);
            sidecars = sidecars.add(r);
            sidecars
        } else {
            r.add(sidecars)
        };
        init_max = init_max.max(step);
    }
    reqs.max(init_max)
}

/// A host port a pod holds: (protocol, host IP, port).
type HostPort = (String, String, i32);

fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|&h| h > 0)?;
            let ip = p
                .host_ip
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, port))
        })
        .collect()
}

fn ports_conflict(a: &HostPort, b: &HostPort) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

/// A pod that still holds node resources: not Succeeded or Failed.
pub fn active(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether `pod` was rejected at admission (and so is never run).
pub fn rejected(pod: &Pod) -> bool {
    let Some(s) = pod.status.as_ref() else {
        return false;
    };
    s.phase.as_deref() == Some("Failed")
        && s.message
            .as_deref()
            .is_some_and(|m| m.starts_with("Pod was rejected: "))
}

/// Kubelet's decision for `pod` against the `others` active on the node:
/// None to admit, or (reason, message) to reject. The message is the
/// event's; the pod's status message is "Pod was rejected: " + it.
pub fn decide(pod: &Pod, others: &[Pod], alloc: Allocatable) -> Option<(String, String)> {
    let others: Vec<&Pod> = others.iter().filter(|p| active(p)).collect();
    if others.len() as i64 + 1 > alloc.pods {
        return Some((
            "OutOfpods".into(),
            format!(
                "Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {}",
                others.len(),
                alloc.pods
            ),
        ));
    }
    let want = pod_requests(pod);
    let used = others
        .iter()
        .map(|p| pod_requests(p))
        .fold(Resources::default(), Resources::add);
    for (name, want, used, cap) in [
        ("cpu", want.milli_cpu, used.milli_cpu, alloc.milli_cpu),
        ("memory", want.memory, used.memory, alloc.memory),
    ] {
        if want > 0 && want > cap - used {
            return Some((
                format!("OutOf{name}"),
                format!(
                    "Node didn't have enough resource: {name}, requested: {want}, used: {used}, capacity: {cap}"
                ),
            ));
        }
    }
    let mine = host_ports(pod);
    let taken: Vec<HostPort> = others.iter().flat_map(|p| host_ports(p)).collect();
    if mine
        .iter()
        .any(|m| taken.iter().any(|t| ports_conflict(m, t)))
    {
        return Some((
            "NodePorts".into(),
            "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
                .into(),
        ));
    }
    None
}

/// This host's allocatable resources: every CPU, all memory (no
/// reservations are configured), and 250 pods (kubelet's default
/// maxPods is 110; a peapod host is the whole cluster, and 250 is the
/// most Kubernetes supports per node).
pub fn host_allocatable() -> Allocatable {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<i64>()
                    .ok()
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    Allocatable {
        milli_cpu: cpus * 1000,
        memory,
        pods: 250,
    }
}

/// The Node object's capacity and allocatable, as quantities.
pub fn quantities(
    a: Allocatable,
) -> BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let cpu = if a.milli_cpu % 1000 == 0 {
        (a.milli_cpu / 1000).to_string()
    } else {
        format!("{}m", a.milli_cpu)
    };
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu)),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", a.memory / 1024)),
        ),
        ("pods".to_string(), Quantity(a.pods.to_string())),
    ])
}

/// Serialises admission: decide and store one pod at a time.
pub static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn c(name: &str, cpu: &str, mem: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "image": "x", "resources": {"requests": {"cpu": cpu, "memory": mem}}})
    }

    const NODE: Allocatable = Allocatable {
        milli_cpu: 2000,
        memory: 1 << 30,
        pods: 110,
    };

    #[test]
    fn effective_requests_follow_kubelets_rules() {
        // App containers add up; a plain init container counts alone.
        let p = pod(serde_json::json!({"spec": {
            "containers": [c("a", "100m", "10Mi"), c("b", "200m", "10Mi")],
            "initContainers": [c("i", "500m", "5Mi")]}}));
        assert_eq!(
            pod_requests(&p),
            Resources {
                milli_cpu: 500,
                memory: 20 << 20
            }
        );
        // A sidecar adds to the app containers and to every init
        // container after it.
        let mut sidecar = c("s", "300m", "1Mi");
        sidecar["restartPolicy"] = "Always".into();
        let p = pod(serde_json::json!({"spec": {
            "containers": [c("a", "100m", "10Mi")],
            "initContainers": [c("i0", "250m", "1Mi"), sidecar, c("i1", "400m", "30Mi")]}}));
        assert_eq!(
            pod_requests(&p),
            Resources {
                milli_cpu: 700,
                memory: 31 << 20
            }
        );
    }

    #[test]
    fn admission_arithmetic_and_messages() {
        let running = pod(
            serde_json::json!({"spec": {"containers": [c("a", "100m", "100Mi")]},
            "status": {"phase": "Running"}}),
        );
        let done = pod(
            serde_json::json!({"spec": {"containers": [c("a", "1900m", "100Mi")]},
            "status": {"phase": "Succeeded"}}),
        );
        let big = pod(serde_json::json!({"spec": {"containers": [c("a", "2", "1Mi")]}}));
        assert_eq!(
            decide(&big, &[running.clone(), done.clone()], NODE),
            Some((
                "OutOfcpu".into(),
                "Node didn't have enough resource: cpu, requested: 2000, used: 100, capacity: 2000"
                    .into()
            ))
        );
        let fits = pod(serde_json::json!({"spec": {"containers": [c("a", "1900m", "1Mi")]}}));
        assert_eq!(decide(&fits, &[running.clone(), done], NODE), None);
        let mem = pod(serde_json::json!({"spec": {"containers": [c("a", "0", "1Gi")]}}));
        assert_eq!(
            decide(&mem, std::slice::from_ref(&running), NODE).map(|r| r.0),
            Some("OutOfmemory".into())
        );
        // No requests: only the pod count matters.
        let none = pod(serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x"}]}}));
        assert_eq!(
            decide(
                &none,
                std::slice::from_ref(&running),
                Allocatable { pods: 1, ..NODE }
            )
            .map(|r| r.0),
            Some("OutOfpods".into())
        );
    }

    #[test]
    fn host_ports_conflict_by_protocol_ip_and_port() {
        let with = |port: i32, ip: Option<&str>, proto: &str| {
            let mut p =
                serde_json::json!({"containerPort": 80, "hostPort": port, "protocol": proto});
            if let Some(ip) = ip {
                p["hostIP"] = ip.into();
            }
            pod(
                serde_json::json!({"spec": {"containers": [{"name": "a", "image": "x", "ports": [p]}]}}),
            )
        };
        let holder = with(8080, None, "TCP");
        let r = decide(
            &with(8080, None, "TCP"),
            std::slice::from_ref(&holder),
            NODE,
        );
        assert_eq!(
            r,
            Some((
                "NodePorts".into(),
                "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports".into()
            ))
        );
        assert!(decide(
            &with(8080, Some("127.0.0.1"), "TCP"),
            std::slice::from_ref(&holder),
            NODE
        )
        .is_some());
        assert!(decide(
            &with(8080, None, "UDP"),
            std::slice::from_ref(&holder),
            NODE
        )
        .is_none());
        assert!(decide(
            &with(8081, None, "TCP"),
            std::slice::from_ref(&holder),
            NODE
        )
        .is_none());
        let a = with(9090, Some("127.0.0.1"), "TCP");
        assert!(decide(&with(9090, Some("127.0.0.2"), "TCP"), &[a], NODE).is_none());
    }
}
