//! CreateContainer: the CRI's ContainerConfig → the runtime's; the log
//! goes to the sandbox's `log_directory` joined with `log_path` (without
//! either, beside the container, removed with it), in the
//! CRI log format the shim writes.

use crate::convert::{resources, to_btree};
use crate::{pb, require_id, Cri};
use peapod_runtime::{
    ContainerConfig, DeviceMapping, MountPropagation, SeccompConfig, SecurityConfig, VolumeMount,
};
use tonic::Status;

pub async fn create_container(
    cri: &Cri,
    req: pb::CreateContainerRequest,
) -> Result<pb::CreateContainerResponse, Status> {
    require_id(&req.pod_sandbox_id, "pod_sandbox_id")?;
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: required"))?;
    let cfg = container_config(&config)?;
    // As containerd: a privileged container only in a privileged sandbox
    // (kubelet marks the sandbox privileged when any of its containers is).
    let sandbox_privileged = req.sandbox_config.as_ref().map(|s| {
        s.linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|sc| sc.privileged)
    });
    if cfg.security.privileged && sandbox_privileged == Some(false) {
        return Err(Status::invalid_argument(format!(
            "container {}: privileged, but its sandbox is not; set sandbox_config.linux.security_context.privileged",
            cfg.name
        )));
    }
    let images = cri.images.clone();
    let image = cfg.image.clone();
    let present = tokio::task::spawn_blocking(move || images.get(&image))
        .await
        .map_err(|e| Status::internal(format!("image task failed: {e}")))?
        .map_err(crate::image_status)?;
    if present.is_none() {
        return Err(Status::not_found(format!(
            "container {}: image {:?} is not present on this node; PullImage it first",
            cfg.name, cfg.image
        )));
    }
    let sid = req.pod_sandbox_id;
    let mounts = config.mounts.clone();
    let container_id = cri
        .blocking(move |rt| {
            // NotFound for an unknown sandbox, before anything is made.
            rt.sandbox_record(&sid)?;
            let cid = rt.create_container(&sid, &cfg)?;
            // The mounts as asked, for ContainerStatus (kept beside the
            // container, removed with it).
            let path = mounts_file(&rt.paths.container_dir(&sid, &cid));
            let kept = pb::ContainerStatus {
                mounts,
                ..Default::default()
            };
            if let Err(e) = std::fs::write(&path, prost::Message::encode_to_vec(&kept)) {
                tracing::warn!(container = %cid, "{}: {e}; ContainerStatus will show no mounts", path.display());
            }
            Ok(cid)
        })
        .await?;
    Ok(pb::CreateContainerResponse { container_id })
}

/// Where CreateContainer keeps a container's CRI mounts.
pub(crate) fn mounts_file(container_dir: &std::path::Path) -> std::path::PathBuf {
    container_dir.join("cri-mounts.pb")
}

/// The mounts CreateContainer kept for container `cid` of sandbox `sid`.
pub(crate) fn kept_mounts(rt: &peapod_runtime::Runtime, sid: &str, cid: &str) -> Vec<pb::Mount> {
    std::fs::read(mounts_file(&rt.paths.container_dir(sid, cid)))
        .ok()
        .and_then(|b| <pb::ContainerStatus as prost::Message>::decode(b.as_slice()).ok())
        .map(|s| s.mounts)
        .unwrap_or_default()
}

fn seccomp(p: Option<&pb::SecurityProfile>) -> Result<SeccompConfig, Status> {
    use pb::security_profile::ProfileType;
    // The CRI's unset profile is unconfined (kubelet always sends one).
    let Some(p) = p else {
        return Ok(SeccompConfig::Unconfined);
    };
    match ProfileType::try_from(p.profile_type) {
        Ok(ProfileType::RuntimeDefault) => Ok(SeccompConfig::RuntimeDefault),
        Ok(ProfileType::Unconfined) => Ok(SeccompConfig::Unconfined),
        // kubelet passes the profile's absolute path.
        Ok(ProfileType::Localhost) => Ok(SeccompConfig::LocalhostFile(
            p.localhost_ref.clone().into(),
        )),
        Err(_) => Err(Status::invalid_argument(format!(
            "config.linux.security_context.seccomp.profile_type: {} is not RuntimeDefault, Unconfined or Localhost",
            p.profile_type
        ))),
    }
}

pub(crate) fn container_config(config: &pb::ContainerConfig) -> Result<ContainerConfig, Status> {
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("config.metadata: required"))?;
    if meta.name.is_empty() {
        return Err(Status::invalid_argument("config.metadata.name: required"));
    }
    let image = config
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .unwrap_or_default();
    if image.is_empty() {
        return Err(Status::invalid_argument(format!(
            "container {}: config.image.image: required; pass an image PullImage or `peapod image import` stored",
            meta.name
        )));
    }
    let linux = config.linux.clone().unwrap_or_default();
    let sc = linux.security_context.unwrap_or_default();
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(Status::invalid_argument(format!(
            "container {}: config.linux.security_context.run_as_group needs run_as_user or run_as_username",
            meta.name
        )));
    }
    let mut devices = Vec::new();
    for (i, d) in config.devices.iter().enumerate() {
        if d.host_path.is_empty() || d.container_path.is_empty() {
            return Err(Status::invalid_argument(format!(
                "container {}: config.devices[{i}]: host_path and container_path are required",
                meta.name
            )));
        }
        devices.push(DeviceMapping {
            host_path: d.host_path.clone().into(),
            container_path: d.container_path.clone(),
            permissions: d.permissions.clone(),
        });
    }
    let mut mounts = Vec::new();
    let mut propagation = std::collections::BTreeMap::new();
    for (i, m) in config.mounts.iter().enumerate() {
        if m.container_path.is_empty() || m.host_path.is_empty() {
            return Err(Status::invalid_argument(format!(
                "container {}: config.mounts[{i}]: container_path and host_path are required",
                meta.name
            )));
        }
        let how = match pb::MountPropagation::try_from(m.propagation) {
            Ok(pb::MountPropagation::PropagationHostToContainer) => {
                MountPropagation::HostToContainer
            }
            Ok(pb::MountPropagation::PropagationBidirectional) => MountPropagation::Bidirectional,
            _ => MountPropagation::Private,
        };
        if how != MountPropagation::Private {
            propagation.insert(m.container_path.clone(), how);
        }
        mounts.push(VolumeMount {
            container_path: m.container_path.clone(),
            host_path: m.host_path.clone().into(),
            readonly: m.readonly,
        });
    }
    // The container's pid namespace follows the sandbox's, except TARGET:
    // another container's (kubelet sends the sandbox's mode otherwise).
    let ns = sc.namespace_options.clone().unwrap_or_default();
    let pid_target = if ns.pid == pb::NamespaceMode::Target as i32 {
        if ns.target_id.is_empty() {
            return Err(Status::invalid_argument(format!(
                "container {}: config.linux.security_context.namespace_options.target_id: required with pid TARGET; give the id of a running container of the sandbox",
                meta.name
            )));
        }
        Some(ns.target_id.clone())
    } else {
        None
    };
    let caps = sc.capabilities.clone().unwrap_or_default();
    Ok(ContainerConfig {
        name: meta.name.clone(),
        attempt: meta.attempt,
        image,
        log_path: config.log_path.clone().into(),
        labels: to_btree(&config.labels),
        annotations: to_btree(&config.annotations),
        command: config.command.clone(),
        args: config.args.clone(),
        env: config
            .envs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        working_dir: (!config.working_dir.is_empty()).then(|| config.working_dir.clone()),
        tty: config.tty,
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        mounts,
        mount_propagation: propagation,
        devices,
        pid_target,
        resources: linux.resources.as_ref().map(resources).unwrap_or_default(),
        security: SecurityConfig {
            run_as_user: sc.run_as_user.map(|v| v.value),
            run_as_group: sc.run_as_group.map(|v| v.value),
            run_as_non_root: false,
            privileged: sc.privileged,
            add_caps: caps.add_capabilities,
            drop_caps: caps.drop_capabilities,
            readonly_rootfs: sc.readonly_rootfs,
            allow_privilege_escalation: sc.no_new_privs.then_some(false),
            seccomp: seccomp(sc.seccomp.as_ref())?,
            run_as_username: (!sc.run_as_username.is_empty()).then(|| sc.run_as_username.clone()),
            supplemental_groups: sc.supplemental_groups.clone(),
            // As containerd: an empty list keeps the defaults.
            masked_paths: (!sc.masked_paths.is_empty()).then(|| sc.masked_paths.clone()),
            readonly_paths: (!sc.readonly_paths.is_empty()).then(|| sc.readonly_paths.clone()),
        },
    })
}
