//! CreateContainer: image rootfs on overlayfs, process from the image config
//! and the pod spec (the Kubernetes entrypoint rules), mounts, security, an
//! OCI bundle, and the shim's create.

use crate::cgroups::resources::{container_values, Requested};
use crate::container_status::{ContainerRecord, RECORD, STATUS};
use crate::error::RuntimeError;
use crate::spec::{self, BindMount, Seccomp, SpecInput};
use crate::types::{new_id, ContainerMetadata};
use crate::{security, user, Runtime};
use peapod_shim::{CreateRequest, Request, Response};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// CRI's ContainerConfig, reduced to what a container here is made of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    pub name: String,
    /// Which attempt of the container named `name` this is.
    pub attempt: u32,
    pub image: String,
    /// Relative to the sandbox's log directory (CRI's `log_path`), or
    /// absolute.
    pub log_path: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub tty: bool,
    pub stdin: bool,
    /// Close the container's stdin when the first attach closes its own
    /// (CRI `stdin_once`).
    pub stdin_once: bool,
    pub mounts: Vec<VolumeMount>,
    pub resources: Requested,
    pub security: SecurityConfig,
    /// Propagation of volume mounts by container path (private unless
    /// named here).
    pub mount_propagation: std::collections::BTreeMap<String, MountPropagation>,
    /// Host devices made in the container (CRI `devices`).
    pub devices: Vec<DeviceMapping>,
    /// Join the pid namespace of this running container of the same
    /// sandbox (CRI pid NamespaceMode TARGET: `kubectl debug --target`).
    pub pid_target: Option<String>,
}

/// A host device (or a directory of them) the container gets at
/// `container_path`, with device cgroup `permissions` (some of r, w, m).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub host_path: PathBuf,
    pub container_path: String,
    pub permissions: String,
}

/// The device nodes `m` names: the node itself (symlinks followed), or
/// every node under a directory, at the same place under
/// `container_path`, as containerd does.
pub fn resolve_device(m: &DeviceMapping) -> Result<Vec<spec::Device>, String> {
    resolve_device_skipping(m, &[])
}

/// What runc and containerd leave out of a privileged container's copy of
/// the host's /dev: mounts of its own, and the console.
const NOT_HOST_DEVICES: &[&str] = &[
    "pts",
    "shm",
    "fd",
    "mqueue",
    "console",
    ".lxc",
    ".lxd-mounts",
    ".udev",
];

/// A privileged container's devices: every node of the host's /dev (as
/// containerd's WithPrivilegedDevices), at the same paths.
pub fn host_devices() -> Result<Vec<spec::Device>, String> {
    resolve_device_skipping(
        &DeviceMapping {
            host_path: "/dev".into(),
            container_path: "/dev".into(),
            permissions: "rwm".into(),
        },
        NOT_HOST_DEVICES,
    )
}

/// [`resolve_device`], leaving out the entries of a directory named in
/// `skip` (at its top level).
fn resolve_device_skipping(m: &DeviceMapping, skip: &[&str]) -> Result<Vec<spec::Device>, String> {
    use oci_spec::runtime::LinuxDeviceType;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let access = if m.permissions.is_empty() {
        "rwm".to_string()
    } else {
        m.permissions.clone()
    };
    if access.chars().any(|c| !"rwm".contains(c)) {
        return Err(format!(
            "device {}: permissions {:?} must be made of r, w and m",
            m.host_path.display(),
            m.permissions
        ));
    }
    if !m.container_path.starts_with('/') {
        return Err(format!(
            "device {}: container_path {:?} must be absolute",
            m.host_path.display(),
            m.container_path
        ));
    }
    let meta = std::fs::metadata(&m.host_path).map_err(|e| {
        format!(
            "device {}: {e}; give the path of a device node on this host",
            m.host_path.display()
        )
    })?;
    let node = |meta: &std::fs::Metadata, dest: String| {
        let ft = meta.file_type();
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            return None;
        };
        let rdev = meta.rdev();
        Some(spec::Device {
            container_path: dest,
            typ,
            major: nix::sys::stat::major(rdev) as i64,
            minor: nix::sys::stat::minor(rdev) as i64,
            file_mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            access: access.clone(),
        })
    };
    if !meta.is_dir() {
        return node(&meta, m.container_path.clone())
            .map(|d| vec![d])
            .ok_or_else(|| {
                format!(
                    "device {}: not a character or block device",
                    m.host_path.display()
                )
            });
    }
    let mut out = Vec::new();
    let mut stack = vec![m.host_path.clone()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("device {}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let path = e.path();
            if dir == m.host_path && skip.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(rel) = path.strip_prefix(&m.host_path) else {
                continue;
            };
            let dest = Path::new(&m.container_path).join(rel);
            if let Some(d) = node(&meta, dest.display().to_string()) {
                out.push(d);
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "device {}: a directory with no device nodes",
            m.host_path.display()
        ));
    }
    out.sort_by(|a, b| a.container_path.cmp(&b.container_path));
    Ok(out)
}

/// Mount propagation works only from a host mount that propagates: a
/// bidirectional volume's host path must be on a shared mount, a
/// host-to-container one on a shared or slave mount (containerd's check).
fn check_propagation(source: &Path, how: MountPropagation) -> Result<(), String> {
    let (need, ok): (&str, fn(&crate::mounts::MountPropagationInfo) -> bool) = match how {
        MountPropagation::Private => return Ok(()),
        MountPropagation::Bidirectional => ("shared", |m| m.shared),
        MountPropagation::HostToContainer => ("shared or slave", |m| m.shared || m.slave),
    };
    // A missing path fails later, at the mount, with its own error.
    let Ok(real) = std::fs::canonicalize(source) else {
        return Ok(());
    };
    let m = crate::mounts::mount_of(&real).map_err(|e| e.to_string())?;
    if ok(&m) {
        return Ok(());
    }
    Err(format!(
        "mount {}: propagation {how:?} needs its host path on a {need} mount, and {} is mounted on {}, which is not; make it one (`mount --make-rshared {}`, or bind the directory onto itself first: `mount --bind {} {}`) or use private propagation",
        source.display(),
        real.display(),
        m.mount_point.display(),
        m.mount_point.display(),
        real.display(),
        real.display(),
    ))
}

/// How mounts under a volume propagate (CRI `MountPropagation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MountPropagation {
    /// `rprivate`: neither way.
    #[default]
    Private,
    /// `rslave`: mounts made on the host show in the container.
    HostToContainer,
    /// `rshared`: both ways.
    Bidirectional,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityConfig {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
    pub privileged: bool,
    pub add_caps: Vec<String>,
    pub drop_caps: Vec<String>,
    pub readonly_rootfs: bool,
    pub allow_privilege_escalation: Option<bool>,
    pub seccomp: SeccompConfig,
    /// A user name from the image's /etc/passwd (CRI `run_as_username`),
    /// in place of the image's `User`.
    pub run_as_username: Option<String>,
    /// Groups added to the ones the image's /etc/group gives the user.
    pub supplemental_groups: Vec<i64>,
    /// Replace the default masked / read-only paths (CRI: kubelet sends
    /// the lists; ignored for privileged containers).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompConfig {
    /// RuntimeDefault, also used when unset (kubelet `--seccomp-default`).
    #[default]
    RuntimeDefault,
    Unconfined,
    /// A profile file under `<root>/seccomp/`, in OCI `linux.seccomp` JSON.
    Localhost(String),
    /// A profile file by absolute path (the CRI's `localhost_ref`: kubelet
    /// resolves the profile to its full path itself).
    LocalhostFile(PathBuf),
}

/// A signal as images name it: `SIGQUIT`, `QUIT` or `3`.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .map(|sig| sig as i32)
            .map_err(|_| format!("image StopSignal {s:?} is not a signal number"));
    }
    let name = if s.to_ascii_uppercase().starts_with("SIG") {
        s.to_ascii_uppercase()
    } else {
        format!("SIG{}", s.to_ascii_uppercase())
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| format!("image StopSignal {s:?} is not a signal name"))
}

/// The Kubernetes rules for command/args over the image's Entrypoint/Cmd.
pub fn merge_command(
    command: &[String],
    args: &[String],
    entrypoint: &[String],
    cmd: &[String],
) -> Vec<String> {
    match (command.is_empty(), args.is_empty()) {
        (false, _) => command.iter().chain(args).cloned().collect(),
        (true, false) => entrypoint.iter().chain(args).cloned().collect(),
        (true, true) => entrypoint.iter().chain(cmd).cloned().collect(),
    }
}

/// Image env first, then the container's, a later name replacing an
/// earlier one in place.
pub fn merge_env(image_env: &[String], env: &[(String, String)], hostname: &str) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        if let Some(e) = out.iter_mut().find(|(ek, _)| ek == k) {
            e.1 = v.to_string();
        } else {
            out.push((k.to_string(), v.to_string()));
        }
    };
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        set(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    set("HOSTNAME", hostname);
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        set(k, v);
    }
    for (k, v) in env {
        set(k, v);
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl Runtime {
    /// CreateContainer in sandbox `sid`; returns the new container's id.
    /// On failure nothing of it is left behind.
    pub fn create_container(
        &self,
        sid: &str,
        cfg: &ContainerConfig,
    ) -> Result<String, RuntimeError> {
        let id = new_id();
        let dir = self.paths.container_dir(sid, &id);
        match self.create_container_inner(sid, &id, cfg) {
            Ok(()) => {
                self.index_put(&id, sid);
                Ok(id)
            }
            Err(e) => {
                let _ = crate::mounts::unmount_all_under(&dir);
                let _ = std::fs::remove_dir_all(&dir);
                // See own_v1_cgroup_mounts: the cgroup may be made already.
                if let Ok(rec) = self.sandbox_record(sid) {
                    let rel = crate::paths::container_cgroup(&rec.config.cgroup_parent, &id);
                    if self.cgroups.exists(&rel) {
                        let _ = self.cgroups.remove(&rel);
                    }
                }
                Err(e)
            }
        }
    }

    /// A container joining an existing pid namespace (the pod's, or a
    /// target container's) on cgroup v1 gets its /sys/fs/cgroup from
    /// peapod, not from libcontainer: libcontainer 0.7 builds that mount
    /// by reading `/proc/<pid>/cgroup` of the container's pid *in the
    /// joined namespace* from the host's /proc, so it fails ("failed to
    /// prepare rootfs") whenever that number is no host pid, and reads an
    /// unrelated host process when it is. The same view (the container's
    /// own cgroup of each hierarchy at /sys/fs/cgroup/<hierarchy>, on a
    /// tmpfs) is written into the spec as binds; their sources must exist,
    /// so the container's cgroup is made now (libcontainer fills it in).
    fn own_v1_cgroup_mounts(
        &self,
        namespaces: &spec::SandboxNamespaces,
        cgroup_rel: &str,
    ) -> Result<Option<Vec<(String, PathBuf)>>, RuntimeError> {
        if self.cgroups.version() != 1 || !matches!(namespaces.pid, spec::PidMode::Pod(_)) {
            return Ok(None);
        }
        self.cgroups.create(cgroup_rel, &Default::default())?;
        Ok(Some(self.cgroups.v1_dirs_by_hierarchy(cgroup_rel)))
    }

    fn create_container_inner(
        &self,
        sid: &str,
        id: &str,
        cfg: &ContainerConfig,
    ) -> Result<(), RuntimeError> {
        let cerr = |message: String| RuntimeError::Container {
            name: cfg.name.clone(),
            message,
        };
        let config_err = |message: String| RuntimeError::ContainerConfig {
            name: cfg.name.clone(),
            message,
        };
        let sandbox_rec = self.sandbox_record(sid)?;
        if sandbox_rec.stopped || self.shim_pid(sid).is_none() {
            return Err(RuntimeError::Sandbox {
                uid: sid.into(),
                message: "the sandbox is not ready; cannot create a container in it".into(),
            });
        }
        let sandbox = &sandbox_rec.config;
        let image = self
            .images
            .get(&cfg.image)?
            .ok_or_else(|| cerr(format!("image {:?} is not present on this node", cfg.image)))?;
        let image_cfg = self.images.config(&image)?;
        let layers = self.images.layer_dirs(&image)?;

        let dir = self.paths.container_dir(sid, id);
        if dir.exists() {
            return Err(cerr(format!("{} already exists", dir.display())));
        }
        let rootfs = dir.join("rootfs");
        let rw = dir.join("rw");
        for d in [&rootfs, &rw] {
            std::fs::create_dir_all(d).map_err(RuntimeError::io(d))?;
        }
        let log_path = if cfg.log_path.is_absolute() {
            cfg.log_path.clone()
        } else if cfg.log_path.as_os_str().is_empty()
            || sandbox.log_directory.as_os_str().is_empty()
        {
            // No log file asked for (the CRI allows it; containerd drops
            // the output): kept beside the container, removed with it.
            dir.join("output.log")
        } else {
            sandbox.log_directory.join(&cfg.log_path)
        };
        let cgroup_rel = crate::paths::container_cgroup(&sandbox.cgroup_parent, id);
        let record = ContainerRecord {
            id: id.to_string(),
            sandbox_id: sid.to_string(),
            metadata: ContainerMetadata {
                name: cfg.name.clone(),
                attempt: cfg.attempt,
            },
            image: cfg.image.clone(),
            image_ref: format!("{}@{}", image.name, image.digest),
            labels: cfg.labels.clone(),
            annotations: cfg.annotations.clone(),
            log_path: log_path.clone(),
            created_at: crate::now(),
            cgroup: cgroup_rel.clone(),
            stop_signal: image_cfg
                .stop_signal
                .as_deref()
                .map(parse_signal)
                .transpose()
                .map_err(config_err)?,
            stdin_once: cfg.stdin && cfg.stdin_once,
        };
        crate::write_json_atomic(&dir.join(RECORD), &record)?;
        peapod_image::mount_rootfs(&layers, &rw, &rootfs)?;

        // The process.
        let args = merge_command(
            &cfg.command,
            &cfg.args,
            &image_cfg.entrypoint,
            &image_cfg.cmd,
        );
        if args.is_empty() {
            return Err(config_err(
                "no command: the pod gives no command and the image has no Entrypoint or Cmd"
                    .into(),
            ));
        }
        let sec = &cfg.security;
        let to_u32 = |v: Option<i64>, what: &str| -> Result<Option<u32>, RuntimeError> {
            v.map(|n| {
                u32::try_from(n)
                    .map_err(|_| config_err(format!("securityContext.{what}: {n} is out of range")))
            })
            .transpose()
        };
        let mut resolved = user::resolve(
            &rootfs,
            sec.run_as_username.as_deref().or(image_cfg.user.as_deref()),
            to_u32(sec.run_as_user, "runAsUser")?,
            to_u32(sec.run_as_group, "runAsGroup")?,
        )
        .map_err(config_err)?;
        for g in &sec.supplemental_groups {
            let g = to_u32(Some(*g), "supplementalGroups")?.unwrap_or_default();
            if g != resolved.gid && !resolved.additional_gids.contains(&g) {
                resolved.additional_gids.push(g);
            }
        }
        if sec.run_as_non_root && resolved.uid == 0 {
            return Err(config_err(
                "container has runAsNonRoot and image will run as root (set securityContext.runAsUser to a non-zero uid)".into(),
            ));
        }
        let env = merge_env(&image_cfg.env, &cfg.env, &sandbox.hostname);
        let cwd = cfg
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| image_cfg.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());

        // Mounts: the pod's /etc files and /dev/shm, then what the caller
        // gives (volumes, the termination log).
        let etc = self.paths.etc_dir(sid);
        let mut binds = vec![
            BindMount {
                destination: "/etc/hosts".into(),
                source: etc.join("hosts"),
                readonly: false,
                propagation: Default::default(),
            },
            BindMount {
                destination: "/etc/hostname".into(),
                source: etc.join("hostname"),
                readonly: false,
                propagation: Default::default(),
            },
            BindMount {
                destination: "/etc/resolv.conf".into(),
                source: etc.join("resolv.conf"),
                readonly: false,
                propagation: Default::default(),
            },
            BindMount {
                destination: "/dev/shm".into(),
                source: if sandbox.host_ipc {
                    PathBuf::from("/dev/shm")
                } else {
                    self.paths.shm_dir(sid)
                },
                readonly: false,
                propagation: Default::default(),
            },
        ];
        for m in &cfg.mounts {
            let propagation = cfg
                .mount_propagation
                .get(&m.container_path)
                .copied()
                .unwrap_or_default();
            check_propagation(&m.host_path, propagation).map_err(config_err)?;
            binds.push(BindMount {
                destination: m.container_path.clone(),
                source: m.host_path.clone(),
                readonly: m.readonly,
                propagation,
            });
        }
        let mut devices = Vec::new();
        for d in &cfg.devices {
            devices.extend(resolve_device(d).map_err(config_err)?);
        }
        if sec.privileged {
            for d in host_devices().map_err(cerr)? {
                if !devices.iter().any(|o| o.container_path == d.container_path) {
                    devices.push(d);
                }
            }
        }

        let mut namespaces = self.sandbox_namespaces(sid, sandbox);
        if let Some(target) = &cfg.pid_target {
            let st = self.container_status(target)?;
            if st.sandbox_id != sid {
                return Err(config_err(format!(
                    "pid namespace target {target} is a container of another sandbox; name one of this sandbox's"
                )));
            }
            let pid = st
                .pid
                .filter(|_| st.state == crate::types::ContainerState::Running)
                .ok_or_else(|| {
                    config_err(format!(
                        "pid namespace target {target} is not running; start it first"
                    ))
                })?;
            namespaces.pid = spec::PidMode::Pod(PathBuf::from(format!("/proc/{pid}/ns/pid")));
        }

        let cgroup_v1_binds = self.own_v1_cgroup_mounts(&namespaces, &cgroup_rel)?;

        let caps = security::capabilities(sec.privileged, &sec.add_caps, &sec.drop_caps);
        let seccomp = match &sec.seccomp {
            SeccompConfig::RuntimeDefault => Seccomp::RuntimeDefault,
            SeccompConfig::Unconfined => Seccomp::Unconfined,
            SeccompConfig::Localhost(_) | SeccompConfig::LocalhostFile(_) => {
                let p = match &sec.seccomp {
                    SeccompConfig::Localhost(rel) => {
                        let base = self.paths.root().join("seccomp");
                        let p = base.join(rel);
                        if !p.starts_with(&base) || rel.split('/').any(|c| c == "..") {
                            return Err(config_err(format!(
                                "seccompProfile.localhostProfile {rel:?} must stay under {}",
                                base.display()
                            )));
                        }
                        p
                    }
                    SeccompConfig::LocalhostFile(p) if p.is_absolute() => p.clone(),
                    other => {
                        return Err(config_err(format!(
                            "seccomp localhost profile {other:?}: needs an absolute path"
                        )))
                    }
                };
                let b = std::fs::read(&p).map_err(|e| {
                    config_err(format!(
                        "seccompProfile.localhostProfile {}: {e}",
                        p.display()
                    ))
                })?;
                Seccomp::Profile(
                    serde_json::from_slice(&b)
                        .map_err(|e| config_err(format!("seccomp profile {}: {e}", p.display())))?,
                )
            }
        };
        let input = SpecInput {
            args,
            env,
            cwd,
            uid: resolved.uid,
            gid: resolved.gid,
            additional_gids: resolved.additional_gids,
            terminal: cfg.tty,
            rootfs: rootfs.clone(),
            readonly_rootfs: sec.readonly_rootfs,
            hostname: sandbox.hostname.clone(),
            namespaces,
            cgroups_path: format!("/{cgroup_rel}"),
            cgroup: container_values(&cfg.resources),
            cgroup_v2: self.cgroups.version() == 2,
            cgroup_v1_binds,
            binds,
            devices,
            capabilities: caps,
            privileged: sec.privileged,
            no_new_privileges: sec.allow_privilege_escalation == Some(false) && !sec.privileged,
            seccomp,
            masked_paths: sec.masked_paths.clone(),
            readonly_paths: sec.readonly_paths.clone(),
            annotations: vec![
                ("io.kubernetes.pod.uid".into(), sandbox.metadata.uid.clone()),
                (
                    "io.kubernetes.pod.name".into(),
                    sandbox.metadata.name.clone(),
                ),
                (
                    "io.kubernetes.pod.namespace".into(),
                    sandbox.metadata.namespace.clone(),
                ),
                ("io.kubernetes.container.name".into(), cfg.name.clone()),
                ("io.kubernetes.cri.sandbox-id".into(), sid.to_string()),
            ],
        };
        let oci = spec::build(&input).map_err(|e| cerr(format!("invalid OCI spec: {e}")))?;
        let config_path = dir.join("config.json");
        oci.save(&config_path)
            .map_err(|e| cerr(format!("{}: {e}", config_path.display())))?;

        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(RuntimeError::io(parent))?;
        }
        let req = Request::Create(CreateRequest {
            id: id.to_string(),
            bundle: dir.clone(),
            tty: cfg.tty,
            stdin: cfg.stdin,
            log_path,
            status_file: dir.join(STATUS),
            oom_events: self.cgroups.oom_events_file(&cgroup_rel),
            log_rotation: self.opts.log_rotation,
        });
        match self.shim(sid).call(&req)? {
            Response::Created { .. } => Ok(()),
            other => Err(cerr(format!("unexpected shim response {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kubernetes_command_rules() {
        let ep = v(&["/ep"]);
        let cmd = v(&["a"]);
        assert_eq!(merge_command(&[], &[], &ep, &cmd), v(&["/ep", "a"]));
        assert_eq!(merge_command(&[], &v(&["b"]), &ep, &cmd), v(&["/ep", "b"]));
        assert_eq!(merge_command(&v(&["sh"]), &[], &ep, &cmd), v(&["sh"]));
        assert_eq!(
            merge_command(&v(&["sh"]), &v(&["-c", "x"]), &ep, &cmd),
            v(&["sh", "-c", "x"])
        );
    }

    #[test]
    fn stop_signals() {
        assert_eq!(parse_signal("SIGQUIT"), Ok(libc::SIGQUIT));
        assert_eq!(parse_signal("quit"), Ok(libc::SIGQUIT));
        assert_eq!(parse_signal("15"), Ok(libc::SIGTERM));
        assert!(parse_signal("SIGNOPE").is_err());
    }

    #[test]
    fn env_overrides_in_place() {
        let env = merge_env(
            &v(&["PATH=/bin", "A=1"]),
            &[("A".into(), "2".into()), ("B".into(), "3".into())],
            "pod",
        );
        assert_eq!(env, v(&["HOSTNAME=pod", "PATH=/bin", "A=2", "B=3"]));
    }
}
