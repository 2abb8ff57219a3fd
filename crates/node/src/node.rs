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
