//! The defaults the Kubernetes API server fills in on a Pod
//! (`pkg/apis/core/v1/defaults.go`).
//!
//! Defaulting only fills in absent (or empty) fields; it never overrides
//! what the manifest says, so applying it twice changes nothing.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe, Volume};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, HTTPGetAction};

/// The namespace of a pod whose manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Where a container writes its termination message.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Seconds between SIGTERM and SIGKILL when a pod is deleted.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// File mode of configMap and secret volume files (0644).
const DEFAULT_VOLUME_MODE: i32 = 0o644;

/// Fills in the defaults the Kubernetes API server applies to a Pod.
///
/// * `metadata.namespace`: `"default"`
/// * `spec.restartPolicy`: `"Always"`; `terminationGracePeriodSeconds`: 30;
///   `dnsPolicy`: `"ClusterFirst"`; `schedulerName`: `"default-scheduler"`;
///   `enableServiceLinks`: true
/// * every container (init and app): `terminationMessagePath`
///   `"/dev/termination-log"`, `terminationMessagePolicy` `"File"`,
///   `imagePullPolicy` (`"Always"` for a `latest` or untagged, undigested
///   image, else `"IfNotPresent"`), `ports[*].protocol` `"TCP"`,
///   `resources.requests` copied from `resources.limits` where missing, and
///   probe timings (`timeoutSeconds` 1, `periodSeconds` 10,
///   `successThreshold` 1, `failureThreshold` 3, HTTP probe path `/` and
///   scheme `HTTP`), `env[*].valueFrom.fieldRef.apiVersion` `"v1"`
/// * volumes: a volume without a source becomes an `emptyDir`; `hostPath.type`
///   `""`; `configMap`/`secret` `defaultMode` 0644
///
/// Security contexts are left alone.
pub fn default_pod(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
    }
    if let Some(spec) = &mut pod.spec {
        default_spec(spec);
    }
}

/// Sets `field` to `value` when it is absent or empty.
fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or("").is_empty() {
        *field = Some(value.to_string());
    }
}

pub(crate) fn default_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    spec.enable_service_links.get_or_insert(true);

    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for c in &mut spec.containers {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

fn default_container(c: &mut Container) {
    set_if_empty(
        &mut c.termination_message_path,
        DEFAULT_TERMINATION_MESSAGE_PATH,
    );
    set_if_empty(&mut c.termination_message_policy, "File");
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        c.image_pull_policy =
            Some(default_pull_policy(c.image.as_deref().unwrap_or("")).to_string());
    }
    for port in c.ports.iter_mut().flatten() {
        set_if_empty(&mut port.protocol, "TCP");
    }
    if let Some(resources) = &mut c.resources {
        if let Some(limits) = &resources.limits {
            let requests = resources.requests.get_or_insert_with(Default::default);
            for (name, quantity) in limits {
                requests
                    .entry(name.clone())
                    .or_insert_with(|| quantity.clone());
            }
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = &mut c.lifecycle {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            if let Some(http) = &mut handler.http_get {
                default_http_get(http);
            }
        }
    }
    for var in c.env.iter_mut().flatten() {
        if let Some(field_ref) = var.value_from.as_mut().and_then(|f| f.field_ref.as_mut()) {
            set_if_empty(&mut field_ref.api_version, "v1");
        }
    }
}

/// `"Always"` when the image's tag is `latest` (which is also what an image
/// without tag or digest means), else `"IfNotPresent"`.
fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A ':' before the last '/' belongs to a registry host:port, not a tag.
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let tag = last_component.rsplit_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(http) = &mut probe.http_get {
        default_http_get(http);
    }
}

fn default_http_get(http: &mut HTTPGetAction) {
    set_if_empty(&mut http.path, "/");
    set_if_empty(&mut http.scheme, "HTTP");
}

fn default_volume(v: &mut Volume) {
    if crate::validate::volume_sources(v).is_empty() {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(host_path) = &mut v.host_path {
        host_path.type_.get_or_insert_with(String::new);
    }
    if let Some(cm) = &mut v.config_map {
        cm.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(secret) = &mut v.secret {
        secret.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted(v: serde_json::Value) -> Pod {
        let mut pod: Pod = serde_json::from_value(v).unwrap();
        default_pod(&mut pod);
        pod
    }

    fn minimal() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                "containers": [{
                    "name": "app",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}],
                }],
                "volumes": [
                    {"name": "scratch"},
                    {"name": "host", "hostPath": {"path": "/srv"}},
                    {"name": "cm", "configMap": {"name": "cm"}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                ],
            }
        })
    }

    #[test]
    fn pod_level_defaults() {
        let pod = defaulted(minimal());
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.enable_service_links, Some(true));
        assert!(
            spec.security_context.is_none(),
            "security context left alone"
        );
    }

    #[test]
    fn container_defaults() {
        let spec = defaulted(minimal()).spec.unwrap();
        let init = &spec.init_containers.as_ref().unwrap()[0];
        let app = &spec.containers[0];
        for c in [init, app] {
            assert_eq!(
                c.termination_message_path.as_deref(),
                Some("/dev/termination-log")
            );
            assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        }
        assert_eq!(init.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(app.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(
            app.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
    }

    #[test]
    fn volume_defaults() {
        let spec = defaulted(minimal()).spec.unwrap();
        let volumes = spec.volumes.unwrap();
        assert_eq!(volumes[0].empty_dir, Some(EmptyDirVolumeSource::default()));
        assert_eq!(
            volumes[1].host_path.as_ref().unwrap().type_.as_deref(),
            Some("")
        );
        assert!(volumes[1].empty_dir.is_none());
        assert_eq!(
            volumes[2].config_map.as_ref().unwrap().default_mode,
            Some(0o644)
        );
        assert_eq!(
            volumes[3].secret.as_ref().unwrap().default_mode,
            Some(0o644)
        );
    }

    #[test]
    fn keeps_explicit_values() {
        let pod = defaulted(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "dnsPolicy": "Default",
                "containers": [{
                    "name": "app",
                    "image": "nginx",
                    "imagePullPolicy": "Never",
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "ports": [{"containerPort": 53, "protocol": "UDP"}],
                }],
            }
        }));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("prod"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.termination_grace_period_seconds, Some(0));
        assert_eq!(spec.dns_policy.as_deref(), Some("Default"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Never"));
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("UDP")
        );
    }

    #[test]
    fn pull_policy_from_image() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("docker.io/library/nginx", "Always"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("nginx@sha256:0123abcd", "IfNotPresent"),
            ("nginx:latest@sha256:0123abcd", "Always"),
            ("nginx:1.27@sha256:0123abcd", "IfNotPresent"),
        ] {
            assert_eq!(default_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn requests_default_to_limits() {
        let pod = defaulted(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {"containers": [{
                "name": "app",
                "image": "nginx",
                "resources": {
                    "limits": {"cpu": "1", "memory": "1Gi"},
                    "requests": {"cpu": "250m"},
                },
            }]},
        }));
        let res = pod.spec.unwrap().containers[0].resources.clone().unwrap();
        let requests = res.requests.unwrap();
        assert_eq!(requests["cpu"].0, "250m");
        assert_eq!(requests["memory"].0, "1Gi");
    }

    #[test]
    fn probe_defaults() {
        let pod = defaulted(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {"containers": [{
                "name": "app",
                "image": "nginx",
                "livenessProbe": {"httpGet": {"port": 80}},
            }]},
        }));
        let probe = pod.spec.unwrap().containers[0]
            .liveness_probe
            .clone()
            .unwrap();
        assert_eq!(probe.timeout_seconds, Some(1));
        assert_eq!(probe.period_seconds, Some(10));
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.failure_threshold, Some(3));
        let http = probe.http_get.unwrap();
        assert_eq!(http.path.as_deref(), Some("/"));
        assert_eq!(http.scheme.as_deref(), Some("HTTP"));
    }

    #[test]
    fn idempotent() {
        let once = defaulted(minimal());
        let mut twice = once.clone();
        default_pod(&mut twice);
        assert_eq!(once, twice);
    }
}
