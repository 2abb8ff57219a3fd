//! Resource metrics, as metrics-server gives them to `kubectl top` and the
//! HorizontalPodAutoscaler: every `--metrics-interval` the pods' cgroups
//! (CPU time, memory working set) and the host's `/proc/stat` and
//! `/proc/meminfo` are read; CPU is the rate between two readings.
//!
//! Reading a few hundred cgroups costs a few percent of a core per round,
//! so the sampler runs only while someone uses the metrics: a metrics API
//! request or an HorizontalPodAutoscaler marks them wanted for
//! [`WANTED_FOR`]; the first request after a quiet spell wakes the sampler
//! at once and is answered as metrics-server answers before its first
//! window ("not available yet").
//!
//! The `metrics.k8s.io/v1beta1` objects are written here as small serde
//! structs: k8s-openapi covers only the core API groups, and the metrics
//! API lives in `k8s.io/metrics`, which has no Rust crate.

use crate::node::Node;
use peapod_runtime::types::{CgroupUsage, SandboxFilter, SandboxState};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// metrics-server's default `--metric-resolution`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// How long one use of the metrics keeps the sampler running.
pub const WANTED_FOR: Duration = Duration::from_secs(600);

/// One container's usage over the last window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    /// CPU in nanocores (1e9 = one core busy).
    pub nano_cpu: u64,
    /// Memory working set, bytes.
    pub memory: u64,
}

/// A pod's usage over the window that ended at `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub window: Duration,
    pub containers: Vec<ContainerUsage>,
}

impl PodUsage {
    pub fn nano_cpu(&self) -> u64 {
        self.containers.iter().map(|c| c.nano_cpu).sum()
    }
    pub fn memory(&self) -> u64 {
        self.containers.iter().map(|c| c.memory).sum()
    }
}

/// The node's usage over the last window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUsage {
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub window: Duration,
    pub nano_cpu: u64,
    pub memory: u64,
}

/// A cumulative CPU reading.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at_ns: i64,
    cpu_ns: u64,
}

#[derive(Default)]
struct State {
    /// Last CPU reading per container id, and per node.
    containers: HashMap<String, Reading>,
    node: Option<Reading>,
    /// Latest usage per pod uid.
    pods: HashMap<String, PodUsage>,
    node_usage: Option<NodeUsage>,
}

/// The latest readings (one per daemon).
pub struct Metrics {
    /// The sampling interval in milliseconds (`--metrics-interval`).
    interval_ms: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    /// When the metrics were last used (seconds since the epoch).
    wanted_at: std::sync::atomic::AtomicU64,
    /// Wakes an idle sampler.
    wake: tokio::sync::Notify,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL)
    }
}

/// CPU rate in nanocores between two readings (0 when time did not move
/// or the counter went back, as after a container restart).
fn rate(prev: Reading, now: Reading) -> Option<u64> {
    let dt = now.at_ns.checked_sub(prev.at_ns).filter(|d| *d > 0)?;
    let dc = now.cpu_ns.checked_sub(prev.cpu_ns)?;
    Some((dc as u128 * 1_000_000_000 / dt as u128) as u64)
}

impl Metrics {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval_ms: (interval.as_millis() as u64).into(),
            state: Mutex::new(State::default()),
            wanted_at: 0.into(),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(
            self.interval_ms
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(100),
        )
    }

    pub fn set_interval(&self, interval: Duration) {
        self.interval_ms.store(
            interval.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the metrics as in use (keeps or starts the sampler).
    pub fn want(&self) {
        let now = epoch_secs();
        let before = self
            .wanted_at
            .swap(now, std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(before) > WANTED_FOR.as_secs() {
            self.wake.notify_one();
        }
    }

    fn wanted(&self) -> bool {
        let at = self.wanted_at.load(std::sync::atomic::Ordering::Relaxed);
        epoch_secs().saturating_sub(at) <= WANTED_FOR.as_secs()
    }

    /// The latest usage of every pod that has one.
    pub fn pods(&self) -> Vec<PodUsage> {
        let mut pods: Vec<_> = self.state().pods.values().cloned().collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods
    }

    /// The latest usage of pod `uid`.
    pub fn pod(&self, uid: &str) -> Option<PodUsage> {
        self.state().pods.get(uid).cloned()
    }

    pub fn node(&self) -> Option<NodeUsage> {
        self.state().node_usage.clone()
    }

    /// Takes one round of readings.
    pub fn sample(&self, node: &Node) {
        let now = chrono::Utc::now();
        let window = self.interval();
        let sandboxes = node.runtime.list_pod_sandbox(&SandboxFilter {
            state: Some(SandboxState::Ready),
            ..Default::default()
        });
        let mut pods = HashMap::new();
        let mut seen = HashMap::new();
        for sb in sandboxes {
            let Ok(stats) = node.runtime.pod_sandbox_stats(&sb.id) else {
                continue;
            };
            let mut containers = Vec::new();
            let mut complete = true;
            for c in &stats.containers {
                let reading = reading(&c.usage);
                let prev = self.state().containers.get(&c.id).copied();
                if let Some(r) = reading {
                    seen.insert(c.id.clone(), r);
                }
                match (prev, reading) {
                    (Some(p), Some(r)) => containers.push(ContainerUsage {
                        name: c.metadata.name.clone(),
                        nano_cpu: rate(p, r).unwrap_or(0),
                        memory: c.usage.memory_working_set.unwrap_or(0),
                    }),
                    // A container seen for the first time has no rate
                    // yet; metrics-server leaves such pods out.
                    _ => complete = false,
                }
            }
            if complete && !containers.is_empty() {
                containers.sort_by(|a, b| a.name.cmp(&b.name));
                pods.insert(
                    stats.metadata.uid.clone(),
                    PodUsage {
                        namespace: stats.metadata.namespace.clone(),
                        name: stats.metadata.name.clone(),
                        uid: stats.metadata.uid.clone(),
                        timestamp: now,
                        window,
                        containers,
                    },
                );
            }
        }
        let node_reading = host_cpu().map(|cpu_ns| Reading {
            at_ns: now.timestamp_nanos_opt().unwrap_or(0),
            cpu_ns,
        });
        let mut state = self.state();
        state.containers = seen;
        state.pods = pods;
        if let (Some(prev), Some(r)) = (state.node, node_reading) {
            state.node_usage = Some(NodeUsage {
                timestamp: now,
                window,
                nano_cpu: rate(prev, r).unwrap_or(0),
                memory: host_memory_working_set().unwrap_or(0),
            });
        }
        state.node = node_reading;
    }
}

fn reading(usage: &CgroupUsage) -> Option<Reading> {
    Some(Reading {
        at_ns: usage.timestamp_ns,
        cpu_ns: usage.cpu_usage_ns?,
    })
}

/// The host's busy CPU time in nanoseconds (`/proc/stat`: everything but
/// idle and iowait).
fn host_cpu() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_proc_stat(&stat)
}

fn parse_proc_stat(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| f.get(i).copied().unwrap_or(0))
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(busy * (1_000_000_000 / hz))
}

/// The host's memory in use (MemTotal - MemAvailable), as metrics-server
/// reports a node's working set closely enough for `top node`.
fn host_memory_working_set() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| {
        info.lines().find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(field("MemTotal:")?.saturating_sub(field("MemAvailable:")?) * 1024)
}

/// Samples while the metrics are wanted, until the daemon stops.
pub async fn run(node: Arc<Node>) {
    loop {
        if !node.metrics.wanted() {
            // Old readings would give a rate over the idle spell.
            *node.metrics.state() = State::default();
            node.metrics.wake.notified().await;
        }
        let n = node.clone();
        let _ = tokio::task::spawn_blocking(move || n.metrics.sample(&n)).await;
        tokio::time::sleep(node.metrics.interval()).await;
    }
}

fn epoch_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `metrics.k8s.io/v1beta1` objects.
pub mod api {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Meta {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        pub creation_timestamp: String,
        #[serde(skip_serializing_if = "HashMap::is_empty")]
        pub labels: HashMap<String, String>,
    }

    #[derive(Serialize)]
    pub struct Usage {
        pub cpu: String,
        pub memory: String,
    }

    #[derive(Serialize)]
    pub struct Container {
        pub name: String,
        pub usage: Usage,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PodMetrics {
        pub kind: &'static str,
        pub api_version: &'static str,
        pub metadata: Meta,
        pub timestamp: String,
        pub window: String,
        pub containers: Vec<Container>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct NodeMetrics {
        pub kind: &'static str,
        pub api_version: &'static str,
        pub metadata: Meta,
        pub timestamp: String,
        pub window: String,
        pub usage: Usage,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct List<T> {
        pub kind: &'static str,
        pub api_version: &'static str,
        pub metadata: serde_json::Value,
        pub items: Vec<T>,
    }

    pub const API_VERSION: &str = "metrics.k8s.io/v1beta1";

    fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// metrics-server's forms: CPU in nanocores, memory in Ki.
    fn usage(nano_cpu: u64, memory: u64) -> Usage {
        Usage {
            cpu: format!("{nano_cpu}n"),
            memory: format!("{}Ki", memory / 1024),
        }
    }

    pub fn pod(p: &PodUsage, labels: HashMap<String, String>) -> PodMetrics {
        PodMetrics {
            kind: "PodMetrics",
            api_version: API_VERSION,
            metadata: Meta {
                name: p.name.clone(),
                namespace: Some(p.namespace.clone()),
                creation_timestamp: time(&chrono::Utc::now()),
                labels,
            },
            timestamp: time(&p.timestamp),
            window: format!("{}s", p.window.as_secs()),
            containers: p
                .containers
                .iter()
                .map(|c| Container {
                    name: c.name.clone(),
                    usage: usage(c.nano_cpu, c.memory),
                })
                .collect(),
        }
    }

    pub fn node(name: &str, n: &NodeUsage) -> NodeMetrics {
        NodeMetrics {
            kind: "NodeMetrics",
            api_version: API_VERSION,
            metadata: Meta {
                name: name.to_string(),
                namespace: None,
                creation_timestamp: time(&chrono::Utc::now()),
                labels: HashMap::new(),
            },
            timestamp: time(&n.timestamp),
            window: format!("{}s", n.window.as_secs()),
            usage: usage(n.nano_cpu, n.memory),
        }
    }

    pub fn list<T>(kind: &'static str, items: Vec<T>) -> List<T> {
        List {
            kind,
            api_version: API_VERSION,
            metadata: serde_json::json!({}),
            items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let a = Reading {
            at_ns: 1_000_000_000,
            cpu_ns: 500_000_000,
        };
        let b = Reading {
            at_ns: 3_000_000_000,
            cpu_ns: 1_500_000_000,
        };
        // 1 s of CPU in 2 s of wall time: half a core.
        assert_eq!(rate(a, b), Some(500_000_000));
        assert_eq!(rate(b, a), None);
        assert_eq!(rate(a, a), None);
    }

    #[test]
    fn proc_stat_busy_time() {
        let stat = "cpu  100 10 50 1000 40 5 5 0 0 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n";
        // SAFETY: as above.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(parse_proc_stat(stat), Some(170 * (1_000_000_000 / hz)));
        assert_eq!(parse_proc_stat("intr 1\n"), None);
    }
}
