//! The node: store, runtime, images, events and the pod workers.

use crate::events::Events;
use crate::store::{self, Store, StoreError};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use peapod_image::ImageStore;
use peapod_runtime::Runtime;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct Node {
    pub store: Arc<Store>,
    pub runtime: Arc<Runtime>,
    pub images: Arc<ImageStore>,
    pub puller: Arc<peapod_image::Puller>,
    pub events: Events,
    /// Running pod workers by pod UID; notifying one makes it look again.
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Sandbox id → pod UID, to route shims' events to pod workers.
    sandboxes: Mutex<HashMap<String, String>>,
    /// Bounds how many sandboxes and containers are being made at once:
    /// each is mostly kernel work (namespaces, mounts, cgroups) that
    /// contends on global locks, so hundreds at once on a few cores go
    /// slower in total than a few at a time.
    pub starts: Arc<tokio::sync::Semaphore>,
    pub hostname: String,
    /// What pods may request of this node (kubelet's allocatable).
    pub allocatable: crate::admission::Allocatable,
    /// The service range and nftables table (set once by `serve`).
    pub services: std::sync::OnceLock<Arc<crate::services::ServiceConfig>>,
    /// The pods' and the node's latest resource usage (`top`, HPA).
    pub metrics: crate::metrics::Metrics,
    /// The cluster domain and DNS server pods resolve with (set once by
    /// `serve`; unset: pods get the host's resolv.conf).
    pub dns: std::sync::OnceLock<Arc<crate::dns::ClusterDns>>,
}

/// An object's namespace, `default` when unset (as the API server fills
/// it in).
pub fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| peapod_api::DEFAULT_NAMESPACE.to_string())
}

pub fn pod_key(ns: &str, name: &str) -> String {
    store::key("pods", ns, name)
}

impl Node {
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        images: Arc<ImageStore>,
        puller: Arc<peapod_image::Puller>,
    ) -> Result<Self, StoreError> {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let store = Arc::new(store);
        Ok(Self {
            events: Events::load(store.clone(), &hostname)?,
            store,
            runtime,
            images,
            puller,
            workers: Mutex::new(HashMap::new()),
            sandboxes: Mutex::new(HashMap::new()),
            starts: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map(|n| n.get() * 2)
                    .unwrap_or(4),
            )),
            hostname,
            allocatable: crate::admission::host_allocatable(),
            services: Default::default(),
            metrics: Default::default(),
            dns: Default::default(),
        })
    }

    pub fn get_pod(&self, ns: &str, name: &str) -> Result<Option<Pod>, StoreError> {
        self.store.get(&pod_key(ns, name))
    }

    /// Store a new pod (AlreadyExists if the name is taken); the store sets
    /// its uid, creationTimestamp, generation and resourceVersion.
    pub fn create_pod(&self, pod: Pod) -> Result<Pod, StoreError> {
        self.store.create(pod)
    }

    /// Replace the status of pod `uid` (compare-and-swap, retried on the
    /// fresh object, so a concurrent delete request is kept). Nothing
    /// happens when the pod is gone or its name now belongs to another
    /// pod.
    pub fn update_pod_status(
        &self,
        ns: &str,
        name: &str,
        uid: &str,
        status: PodStatus,
    ) -> Result<Option<Pod>, StoreError> {
        // Status is observed, not desired, state: after a crash the pod
        // worker recomputes it from the runtime, so it is written without
        // an fsync (made durable within a second, or by the next durable
        // write) - a pod's few status writes would otherwise queue behind
        // one fsync each.
        let pod = self.store.update_with_sync::<Pod>(
            &pod_key(ns, name),
            crate::store::Sync::Lazy,
            |p| {
                if p.metadata.uid.as_deref() != Some(uid) || p.status.as_ref() == Some(&status) {
                    return false;
                }
                p.status = Some(status.clone());
                true
            },
        )?;
        Ok(pod.filter(|p| p.metadata.uid.as_deref() == Some(uid)))
    }

    pub fn list_pods(&self, ns: Option<&str>) -> Result<Vec<Pod>, StoreError> {
        match ns {
            Some(ns) => self.store.list(&format!("pods/{ns}/")),
            None => self.store.list("pods/"),
        }
    }

    /// Start the worker of `pod` unless it runs; otherwise wake it.
    pub fn ensure_worker(self: &Arc<Self>, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let ns = namespace_of(&pod.metadata);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Ok(mut workers) = self.workers.lock() else {
            return;
        };
        if let Some(n) = workers.get(&uid) {
            n.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        workers.insert(uid.clone(), notify.clone());
        let node = self.clone();
        tokio::spawn(async move {
            crate::worker::run(node.clone(), ns, name, uid.clone(), notify).await;
            if let Ok(mut w) = node.workers.lock() {
                w.remove(&uid);
            }
        });
    }
}

impl Node {
    /// What the node keeps for a pod (kubelet's `/var/lib/kubelet/pods/<uid>`):
    /// volumes and termination-message files. It outlives sandboxes.
    pub fn pod_dir(&self, uid: &str) -> std::path::PathBuf {
        self.runtime.paths.root().join("pods").join(uid)
    }

    /// The pod's log directory (kubelet's `/var/log/pods/<ns>_<name>_<uid>`).
    pub fn pod_log_dir(&self, ns: &str, name: &str, uid: &str) -> std::path::PathBuf {
        self.runtime
            .paths
            .root()
            .join("logs")
            .join(format!("{ns}_{name}_{uid}"))
    }

    pub fn own_sandbox(&self, sid: &str, uid: &str) {
        if let Ok(mut m) = self.sandboxes.lock() {
            m.insert(sid.to_string(), uid.to_string());
        }
    }

    pub fn disown_sandbox(&self, sid: &str) {
        if let Ok(mut m) = self.sandboxes.lock() {
            m.remove(sid);
        }
    }

    /// A shim reported a change: wake its pod's worker.
    pub fn wake_sandbox(&self, sid: &str) {
        let uid = self.sandboxes.lock().ok().and_then(|m| m.get(sid).cloned());
        if let Some(uid) = uid {
            if let Some(n) = self.workers.lock().ok().and_then(|w| w.get(&uid).cloned()) {
                n.notify_one();
            }
        }
    }

    /// The sandboxes the node knows for pod `uid`.
    pub fn sandboxes_of(&self, uid: &str) -> Vec<String> {
        let Ok(m) = self.sandboxes.lock() else {
            return Vec::new();
        };
        let mut out: Vec<String> = m
            .iter()
            .filter(|(_, u)| u.as_str() == uid)
            .map(|(sid, _)| sid.clone())
            .collect();
        out.sort();
        out
    }

    /// The pod's newest sandbox. Blocking.
    pub fn current_sandbox(&self, pod: &Pod) -> Option<String> {
        let uid = pod.metadata.uid.as_deref()?;
        self.sandboxes_of(uid)
            .iter()
            .filter_map(|sid| self.runtime.pod_sandbox_status(sid).ok())
            .max_by(peapod_runtime::by_attempt)
            .map(|s| s.id)
    }

    /// [`Node::find_container`] off the async threads.
    pub async fn find_container_async(
        self: &Arc<Self>,
        pod: &Pod,
        name: &str,
    ) -> Option<peapod_runtime::ContainerStatus> {
        let (node, pod, name) = (self.clone(), pod.clone(), name.to_string());
        tokio::task::spawn_blocking(move || node.find_container(&pod, &name))
            .await
            .ok()
            .flatten()
    }

    /// The latest attempt of container `name` of `pod`, in any of its
    /// sandboxes. Blocking.
    pub fn find_container(&self, pod: &Pod, name: &str) -> Option<peapod_runtime::ContainerStatus> {
        self.container_attempts(pod, name)
            .into_iter()
            .max_by(peapod_runtime::by_attempt)
    }

    /// Every attempt of container `name` of `pod` the runtime keeps, in
    /// any of its sandboxes. Blocking.
    pub fn container_attempts(
        &self,
        pod: &Pod,
        name: &str,
    ) -> Vec<peapod_runtime::ContainerStatus> {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return Vec::new();
        };
        let filter = |sid: &String| peapod_runtime::ContainerFilter {
            sandbox_id: Some(sid.clone()),
            labels: [(
                crate::config::LABEL_CONTAINER_NAME.to_string(),
                name.to_string(),
            )]
            .into(),
            ..Default::default()
        };
        self.sandboxes_of(uid)
            .iter()
            .flat_map(|sid| self.runtime.list_containers(&filter(sid)))
            .collect()
    }

    /// Record what the API server would hold for this node: the Namespace
    /// `default` and a Node object for this host (its Ready condition and
    /// heartbeat refreshed at every start).
    pub fn register(&self) -> Result<(), StoreError> {
        use k8s_openapi::api::core::v1::{
            Namespace, NamespaceStatus, Node as NodeObject, NodeAddress, NodeCondition, NodeStatus,
            NodeSystemInfo,
        };
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(peapod_api::DEFAULT_NAMESPACE.into()),
                labels: Some(
                    [(
                        "kubernetes.io/metadata.name".to_string(),
                        peapod_api::DEFAULT_NAMESPACE.to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.store.create(ns) {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let now = crate::time::now();
        let uname = nix::sys::utsname::uname().ok();
        let text = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uname
                .as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let status = NodeStatus {
            capacity: Some(crate::admission::quantities(self.allocatable)),
            allocatable: Some(crate::admission::quantities(self.allocatable)),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: "127.0.0.1".into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.hostname.clone(),
                },
            ]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("peapod is posting ready status".into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
            }]),
            node_info: Some(NodeSystemInfo {
                architecture: std::env::consts::ARCH.into(),
                operating_system: std::env::consts::OS.into(),
                kernel_version: text(|u| u.release()),
                kubelet_version: concat!("v", env!("CARGO_PKG_VERSION"), "-peapod").into(),
                container_runtime_version: concat!("peapod://", env!("CARGO_PKG_VERSION")).into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let key = format!("nodes/{}", self.hostname);
        let updated = self.store.update_with::<NodeObject>(&key, |n| {
            n.status = Some(status.clone());
            true
        })?;
        if updated.is_none() {
            let node = NodeObject {
                metadata: ObjectMeta {
                    name: Some(self.hostname.clone()),
                    labels: Some(
                        [
                            ("kubernetes.io/hostname".to_string(), self.hostname.clone()),
                            (
                                "kubernetes.io/os".to_string(),
                                std::env::consts::OS.to_string(),
                            ),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                },
                status: Some(status),
                ..Default::default()
            };
            match self.store.create(node) {
                Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Wake every pod's worker (pods waiting for an image look again).
    pub fn wake_all(self: &Arc<Self>) {
        if let Ok(pods) = self.list_pods(None) {
            for p in pods {
                self.ensure_worker(&p);
            }
        }
    }

    /// Digests of the images that containers of stored pods use: those
    /// images cannot be removed.
    pub fn images_in_use(&self) -> std::collections::HashSet<String> {
        let mut out = std::collections::HashSet::new();
        for pod in self.list_pods(None).unwrap_or_default() {
            let Some(spec) = &pod.spec else { continue };
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
            {
                if let Some(Ok(Some(rec))) = c.image.as_deref().map(|i| self.images.get(i)) {
                    out.insert(rec.digest);
                }
            }
            for cs in pod.status.iter().flat_map(|s| {
                s.container_statuses
                    .iter()
                    .flatten()
                    .chain(s.init_container_statuses.iter().flatten())
            }) {
                if let Some((_, digest)) = cs.image_id.rsplit_once('@') {
                    out.insert(digest.to_string());
                }
            }
        }
        out
    }
}
