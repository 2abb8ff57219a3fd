//! The node: store, runtime, images, events and the pod workers.

use crate::events::Events;
use crate::store::{self, Store, StoreError};
use k8s_openapi::api::core::v1::Pod;
use peapod_image::ImageStore;
use peapod_runtime::Runtime;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct Node {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub images: Arc<ImageStore>,
    pub puller: Arc<peapod_image::Puller>,
    pub events: Events,
    /// Running pod workers by pod UID; notifying one makes it look again.
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Sandbox id → pod UID, to route shims' events to pod workers.
    sandboxes: Mutex<HashMap<String, String>>,
    pub hostname: String,
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
    ) -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        Self {
            store,
            runtime,
            images,
            puller,
            events: Events::default(),
            workers: Mutex::new(HashMap::new()),
            sandboxes: Mutex::new(HashMap::new()),
            hostname,
        }
    }

    pub fn get_pod(&self, ns: &str, name: &str) -> Result<Option<Pod>, StoreError> {
        self.store.get(&pod_key(ns, name))
    }

    pub fn put_pod(&self, pod: &Pod) -> Result<(), StoreError> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        self.store
            .put("pods", &pod_key(&namespace_of(&pod.metadata), name), pod)
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

    /// The pod's newest sandbox.
    pub fn current_sandbox(&self, pod: &Pod) -> Option<String> {
        let uid = pod.metadata.uid.clone()?;
        self.runtime
            .list_pod_sandbox(&peapod_runtime::SandboxFilter {
                labels: [(crate::config::LABEL_POD_UID.to_string(), uid)].into(),
                ..Default::default()
            })
            .into_iter()
            .max_by(|a, b| {
                a.metadata
                    .attempt
                    .cmp(&b.metadata.attempt)
                    .then(a.created_at.cmp(&b.created_at))
            })
            .map(|s| s.id)
    }

    /// The latest attempt of container `name` of `pod`, in any of its
    /// sandboxes. Blocking.
    pub fn find_container(&self, pod: &Pod, name: &str) -> Option<peapod_runtime::ContainerStatus> {
        let uid = pod.metadata.uid.clone()?;
        self.runtime
            .list_containers(&peapod_runtime::ContainerFilter {
                labels: [
                    (crate::config::LABEL_POD_UID.to_string(), uid),
                    (
                        crate::config::LABEL_CONTAINER_NAME.to_string(),
                        name.to_string(),
                    ),
                ]
                .into(),
                ..Default::default()
            })
            .into_iter()
            .max_by(|a, b| {
                a.metadata
                    .attempt
                    .cmp(&b.metadata.attempt)
                    .then(a.created_at.cmp(&b.created_at))
            })
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
