//! Translating a Kubernetes container into the runtime's container config.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use peapod_runtime::cgroups::resources::Requested;
use peapod_runtime::{ContainerConfig, SeccompConfig, SecurityConfig, VolumeMount};

fn quantity(
    r: Option<&ResourceRequirements>,
    which: &str,
    res: &str,
) -> Option<peapod_api::Quantity> {
    let map = match which {
        "limits" => r?.limits.as_ref()?,
        _ => r?.requests.as_ref()?,
    };
    peapod_api::parse_quantity(&map.get(res)?.0).ok()
}

pub fn requested(c: &Container) -> Requested {
    let r = c.resources.as_ref();
    Requested {
        cpu_request_milli: quantity(r, "requests", "cpu").map(|q| q.as_millis()),
        cpu_limit_milli: quantity(r, "limits", "cpu").map(|q| q.as_millis()),
        memory_limit: quantity(r, "limits", "memory").map(|q| q.as_bytes()),
    }
}

fn seccomp(p: Option<&k8s_openapi::api::core::v1::SeccompProfile>) -> Option<SeccompConfig> {
    let p = p?;
    Some(match p.type_.as_str() {
        "Unconfined" => SeccompConfig::Unconfined,
        "Localhost" => SeccompConfig::Localhost(p.localhost_profile.clone().unwrap_or_default()),
        _ => SeccompConfig::RuntimeDefault,
    })
}

/// Labels the node puts on its sandboxes and containers, as kubelet does:
/// how it finds a pod's sandboxes and containers in the runtime.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// The runtime config of attempt `attempt` of container `c` of `pod`, with
/// its volume mounts (the termination log among them).
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    mounts: Vec<VolumeMount>,
) -> ContainerConfig {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let security = SecurityConfig {
        run_as_user: sc
            .and_then(|s| s.run_as_user)
            .or(psc.and_then(|p| p.run_as_user)),
        run_as_group: sc
            .and_then(|s| s.run_as_group)
            .or(psc.and_then(|p| p.run_as_group)),
        run_as_non_root: sc
            .and_then(|s| s.run_as_non_root)
            .or(psc.and_then(|p| p.run_as_non_root))
            .unwrap_or(false),
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        add_caps: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop_caps: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        readonly_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        allow_privilege_escalation: sc.and_then(|s| s.allow_privilege_escalation),
        seccomp: seccomp(sc.and_then(|s| s.seccomp_profile.as_ref()))
            .or_else(|| seccomp(psc.and_then(|p| p.seccomp_profile.as_ref())))
            .unwrap_or_default(),
        ..Default::default()
    };
    let labels = [
        (LABEL_POD_UID, pod.metadata.uid.clone().unwrap_or_default()),
        (
            LABEL_POD_NAME,
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        (
            LABEL_POD_NAMESPACE,
            crate::node::namespace_of(&pod.metadata),
        ),
        (LABEL_CONTAINER_NAME, c.name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ContainerConfig {
        name: c.name.clone(),
        attempt,
        // kubelet's layout under the pod's log directory.
        log_path: format!("{}/{attempt}.log", c.name).into(),
        labels,
        annotations: Default::default(),
        image: c.image.clone().unwrap_or_default(),
        command: c.command.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        env: c
            .env
            .iter()
            .flatten()
            .filter(|e| e.value_from.is_none())
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect(),
        working_dir: c.working_dir.clone(),
        tty: c.tty.unwrap_or(false),
        stdin: c.stdin.unwrap_or(false),
        mounts,
        resources: requested(c),
        security,
        ..Default::default()
    }
}
