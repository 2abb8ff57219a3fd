//! Ensuring a container's image the way kubelet does: `imagePullPolicy`
//! (`Always`, `IfNotPresent`, `Never`), credentials from the pod's
//! `imagePullSecrets`, and the pull back-off (`ErrImagePull`, then
//! `ImagePullBackOff` with a delay doubling from 10 s to 5 min).

use crate::node::Node;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use peapod_image::{Credential, ImageRecord};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Back-off state per image of a pod.
#[derive(Debug, Clone, Default)]
pub struct PullBackoff {
    entries: HashMap<String, (Instant, Duration)>,
}

impl PullBackoff {
    /// When the next try of `image` may start, if it is backing off.
    pub fn waiting_until(&self, image: &str, now: Instant) -> Option<Instant> {
        self.entries
            .get(image)
            .map(|(at, _)| *at)
            .filter(|at| *at > now)
    }

    /// The earliest time any image backing off may be tried again.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.entries
            .values()
            .map(|(at, _)| *at)
            .filter(|at| *at > now)
            .min()
    }

    /// Record a failure: the delay doubles up to [`BACKOFF_MAX`].
    pub fn failed(&mut self, image: &str, now: Instant) -> Duration {
        let next = match self.entries.get(image) {
            Some((_, d)) => (*d * 2).min(BACKOFF_MAX),
            None => BACKOFF_INITIAL,
        };
        self.entries.insert(image.to_string(), (now + next, next));
        next
    }

    pub fn succeeded(&mut self, image: &str) {
        self.entries.remove(image);
    }
}

/// The outcome of ensuring one image.
pub enum Ensured {
    Present(ImageRecord),
    /// Waiting: (reason, message).
    Waiting(String, String),
}

/// The registry credentials in Secret `name` (`kubernetes.io/dockerconfigjson`).
pub fn secret_credentials(name: &str, s: &Secret) -> Result<Vec<Credential>, String> {
    let key = peapod_api::DOCKER_CONFIG_JSON_KEY;
    let data = s.data.as_ref().and_then(|d| d.get(key)).ok_or_else(|| {
        format!(
            "secret {name:?} has no {key} key: it is not of type kubernetes.io/dockerconfigjson"
        )
    })?;
    peapod_image::credentials_from_dockerconfigjson(&data.0).map_err(|e| e.to_string())
}

/// Credentials of the pod's `imagePullSecrets` (missing secrets are
/// skipped, as kubelet does, with a warning event).
pub fn pull_credentials(node: &Node, pod: &Pod) -> Vec<Credential> {
    let ns = crate::node::namespace_of(&pod.metadata);
    let mut out = Vec::new();
    for r in pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
    {
        let key = crate::store::key("secrets", &ns, &r.name);
        match node.store.get::<Secret>(&key) {
            Ok(Some(s)) => match secret_credentials(&r.name, &s) {
                Ok(c) => out.extend(c),
                Err(e) => node.events.record(
                    pod,
                    "Warning",
                    "FailedToRetrieveImagePullSecret",
                    format!("Unable to read image pull secret \"{}\": {e}", r.name),
                ),
            },
            _ => node.events.record(
                pod,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                format!("Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.", r.name),
            ),
        }
    }
    out
}

/// Ensure `c`'s image per its pull policy; pulls when needed.
pub async fn ensure(
    node: &Node,
    pod: &Pod,
    c: &Container,
    creds: &[Credential],
    backoff: &mut PullBackoff,
) -> Ensured {
    let image = c.image.clone().unwrap_or_default();
    let policy = c
        .image_pull_policy
        .clone()
        .unwrap_or_else(|| "IfNotPresent".into());
    let present = node.images.get(&image).ok().flatten();
    match (policy.as_str(), &present) {
        ("Never", Some(rec)) | ("IfNotPresent", Some(rec)) => return Ensured::Present(rec.clone()),
        ("Never", None) => {
            return Ensured::Waiting(
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            )
        }
        _ => {}
    }
    let now = Instant::now();
    if backoff.waiting_until(&image, now).is_some() {
        return Ensured::Waiting(
            "ImagePullBackOff".into(),
            format!("Back-off pulling image \"{image}\""),
        );
    }
    if policy == "Always" {
        if let Some(rec) = &present {
            // Same digest on the registry: nothing to pull.
            if let Ok(d) = node.puller.resolve_digest(&image, creds).await {
                if d == rec.digest {
                    backoff.succeeded(&image);
                    return Ensured::Present(rec.clone());
                }
            }
        }
    }
    node.events.record(
        pod,
        "Normal",
        "Pulling",
        format!("Pulling image \"{image}\""),
    );
    let start = Instant::now();
    let images = node.images.clone();
    let lock = tokio::task::spawn_blocking(move || images.gc_lock()).await;
    let _lock = match lock {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return Ensured::Waiting("ErrImagePull".into(), e.to_string()),
        Err(e) => return Ensured::Waiting("ErrImagePull".into(), e.to_string()),
    };
    match node.puller.pull(&image, creds, None).await {
        Ok(rec) => {
            backoff.succeeded(&image);
            node.events.record(
                pod,
                "Normal",
                "Pulled",
                format!(
                    "Successfully pulled image \"{image}\" in {:.3}s",
                    start.elapsed().as_secs_f64()
                ),
            );
            Ensured::Present(rec)
        }
        Err(e) => {
            let delay = backoff.failed(&image, Instant::now());
            node.events.record(
                pod,
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {e}"),
            );
            node.events.record(
                pod,
                "Normal",
                "BackOff",
                format!(
                    "Back-off pulling image \"{image}\" (next try in {}s)",
                    delay.as_secs()
                ),
            );
            Ensured::Waiting(
                "ErrImagePull".into(),
                format!("failed to pull image \"{image}\": {e}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max() {
        let mut b = PullBackoff::default();
        let t = Instant::now();
        assert_eq!(b.failed("x", t), Duration::from_secs(10));
        assert_eq!(b.failed("x", t), Duration::from_secs(20));
        for _ in 0..10 {
            b.failed("x", t);
        }
        assert_eq!(b.failed("x", t), BACKOFF_MAX);
        assert!(b.waiting_until("x", t).is_some());
        b.succeeded("x");
        assert!(b.waiting_until("x", t).is_none());
    }
}
