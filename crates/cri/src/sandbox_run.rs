//! RunPodSandbox: the CRI's PodSandboxConfig → the runtime's
//! SandboxConfig; CNI ADD happens inside the runtime's sandbox_run.

use crate::convert::to_btree;
use crate::{pb, Cri};
use peapod_runtime::{PortMapping, SandboxConfig};
use tonic::Status;

pub async fn run_pod_sandbox(
    cri: &Cri,
    req: pb::RunPodSandboxRequest,
) -> Result<pb::RunPodSandboxResponse, Status> {
    if !req.runtime_handler.is_empty() {
        return Err(Status::invalid_argument(format!(
            "runtime_handler {:?}: peapod has only the default handler; pass an empty runtime_handler",
            req.runtime_handler
        )));
    }
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: required"))?;
    let cfg = sandbox_config(&config, cri.runtime.paths.cgroup_parent())?;
    let pod_sandbox_id = cri.blocking(move |rt| rt.run_pod_sandbox(&cfg)).await?;
    Ok(pb::RunPodSandboxResponse { pod_sandbox_id })
}

/// Keep a name usable as one cgroup path element.
fn path_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The sandbox's CRI resources → the pod cgroup's limits (used when the
/// runtime makes that cgroup: no `cgroup_parent` given, as with crictl).
/// The quota is rescaled to the runtime's 100 ms period.
fn sandbox_cgroup(r: &pb::LinuxContainerResources) -> peapod_runtime::SandboxCgroup {
    let period = if r.cpu_period > 0 {
        r.cpu_period
    } else {
        100_000
    };
    peapod_runtime::SandboxCgroup {
        cpu_shares: (r.cpu_shares > 0).then_some(r.cpu_shares as u64),
        cpu_quota: (r.cpu_quota > 0).then(|| r.cpu_quota * 100_000 / period),
        memory_limit: (r.memory_limit_in_bytes > 0).then_some(r.memory_limit_in_bytes),
    }
}

pub(crate) fn sandbox_config(
    config: &pb::PodSandboxConfig,
    default_cgroup_parent: &str,
) -> Result<SandboxConfig, Status> {
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config.metadata: required"))?;
    if meta.name.is_empty() {
        return Err(Status::invalid_argument("config.metadata.name: required"));
    }
    let linux = config.linux.clone().unwrap_or_default();
    let ns = linux
        .security_context
        .as_ref()
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    let node = pb::NamespaceMode::Node as i32;
    let pod = pb::NamespaceMode::Pod as i32;
    let target = pb::NamespaceMode::Target as i32;
    if ns.pid == target {
        return Err(Status::invalid_argument(
            "config.linux.security_context.namespace_options.pid: TARGET is for containers only; use POD, CONTAINER or NODE",
        ));
    }
    // What containerd applies to the sandbox's pause container: peapod's
    // sandbox has none (the runtime pins the pod's namespaces with no
    // process of the image's), so there is nothing for them to act on.
    // `privileged` is checked at CreateContainer; `resources` sizes the
    // pod cgroup when the runtime makes it; kubelet accounts `overhead`
    // in the pod cgroup it makes itself.
    let sc = linux.security_context.clone().unwrap_or_default();
    for (what, set) in [
        ("run_as_user", sc.run_as_user.is_some()),
        ("run_as_group", sc.run_as_group.is_some()),
        ("supplemental_groups", !sc.supplemental_groups.is_empty()),
        ("readonly_rootfs", sc.readonly_rootfs),
        ("seccomp", sc.seccomp.is_some()),
        ("apparmor", sc.apparmor.is_some()),
    ] {
        if set {
            tracing::debug!(sandbox = %meta.name, "CRI RunPodSandbox: config.linux.security_context.{what} is for a pause container; peapod's sandbox has no container to apply it to");
        }
    }
    let cgroup_parent = if linux.cgroup_parent.trim_matches('/').is_empty() {
        let key = if meta.uid.is_empty() {
            format!("{}_{}", meta.namespace, meta.name)
        } else {
            meta.uid.clone()
        };
        format!("{default_cgroup_parent}/cri-pod{}", path_safe(&key))
    } else {
        linux.cgroup_parent.trim_matches('/').to_string()
    };
    let mut port_mappings = Vec::new();
    for (i, p) in config.port_mappings.iter().enumerate() {
        if p.host_port <= 0 {
            continue;
        }
        let protocol = match pb::Protocol::try_from(p.protocol) {
            Ok(pb::Protocol::Tcp) => "tcp",
            Ok(pb::Protocol::Udp) => "udp",
            Ok(pb::Protocol::Sctp) => "sctp",
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "config.port_mappings[{i}].protocol: {} is not TCP, UDP or SCTP",
                    p.protocol
                )))
            }
        };
        port_mappings.push(PortMapping {
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: protocol.into(),
            host_ip: p.host_ip.clone(),
        });
    }
    let mut sysctls: Vec<(String, String)> = linux
        .sysctls
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    sysctls.sort();
    Ok(SandboxConfig {
        metadata: peapod_runtime::PodSandboxMetadata {
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            namespace: meta.namespace.clone(),
            attempt: meta.attempt,
        },
        hostname: if config.hostname.is_empty() {
            // As containerd: the node's name (a pod name may be longer
            // than the 64 bytes a hostname can hold).
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into())
        } else {
            config.hostname.clone()
        },
        labels: to_btree(&config.labels),
        annotations: to_btree(&config.annotations),
        log_directory: config.log_directory.clone().into(),
        cgroup_parent,
        cgroup: linux
            .resources
            .as_ref()
            .map(sandbox_cgroup)
            .unwrap_or_default(),
        host_network: ns.network == node,
        host_pid: ns.pid == node,
        host_ipc: ns.ipc == node,
        share_process_namespace: ns.pid == pod,
        sysctls,
        port_mappings,
        // kubelet forms the whole resolver configuration; without one
        // the host's resolv.conf is copied, as containerd does.
        dns: config
            .dns_config
            .as_ref()
            .map(|d| peapod_runtime::DnsConfig {
                servers: d.servers.clone(),
                searches: d.searches.clone(),
                options: d.options.clone(),
            }),
        // kubelet writes /etc/hosts (and its aliases) itself on CRI.
        host_aliases: Vec::new(),
        fqdn: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_config_becomes_the_sandbox_resolver_configuration() {
        let mut config = pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        assert_eq!(sandbox_config(&config, "peapod").unwrap().dns, None);
        config.dns_config = Some(pb::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        });
        let cfg = sandbox_config(&config, "peapod").unwrap();
        assert_eq!(
            cfg.dns,
            Some(peapod_runtime::DnsConfig {
                servers: vec!["10.96.0.10".into()],
                searches: vec!["default.svc.cluster.local".into()],
                options: vec!["ndots:5".into()],
            })
        );
    }

    #[test]
    fn sandbox_resources_size_the_pod_cgroup() {
        let mut config = pb::PodSandboxConfig {
            metadata: Some(pb::PodSandboxMetadata {
                name: "p".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let none = sandbox_config(&config, "peapod").unwrap().cgroup;
        assert_eq!(none, Default::default());
        config.linux = Some(pb::LinuxPodSandboxConfig {
            resources: Some(pb::LinuxContainerResources {
                cpu_shares: 512,
                cpu_quota: 25_000,
                cpu_period: 50_000,
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            ..Default::default()
        });
        let cg = sandbox_config(&config, "peapod").unwrap().cgroup;
        assert_eq!(cg.cpu_shares, Some(512));
        assert_eq!(cg.cpu_quota, Some(50_000));
        assert_eq!(cg.memory_limit, Some(64 << 20));
    }
}
