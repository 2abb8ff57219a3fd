//! Pod volumes, prepared on the host before containers are created:
//! `emptyDir` (a directory, or a sized tmpfs with `medium: Memory`),
//! `hostPath` with its `type` checks, and `volumeMounts` with `readOnly` and
//! a `subPath` that must stay inside its volume: it is opened component by
//! component without following symlinks and bind-mounted, through its file
//! descriptor, onto a node-owned staging path that the container gets.

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode};
use peapod_runtime::VolumeMount;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// An error that names the field and the fix (kubelet's whole message
/// when `field` is empty).
#[derive(Debug, thiserror::Error)]
pub struct VolumeError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> VolumeError {
    VolumeError {
        field: field.into(),
        message: message.into(),
    }
}

/// Host paths of a pod's volumes, by volume name.
pub type Prepared = HashMap<String, PathBuf>;

/// Prepare every volume of `pod` under `dir` (the pod's volumes directory);
/// ConfigMaps and Secrets come from `src` (see [`crate::projection`]).
pub fn prepare(
    pod: &Pod,
    dir: &Path,
    src: &dyn crate::env::Sources,
    ctx: &crate::env::PodContext,
) -> Result<Prepared, VolumeError> {
    let mut out = HashMap::new();
    let Some(spec) = &pod.spec else {
        return Ok(out);
    };
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let path = if crate::projection::is_projected(v) {
            crate::projection::set_up(v, pod, dir, src, ctx)?
        } else if let Some(c) = &v.persistent_volume_claim {
            src.claim_path(&crate::node::namespace_of(&pod.metadata), &c.claim_name)
                .map_err(|e| err(format!("{field}.persistentVolumeClaim"), e))?
        } else {
            prepare_one(v, dir, &field)?
        };
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

fn prepare_one(v: &Volume, dir: &Path, field: &str) -> Result<PathBuf, VolumeError> {
    if let Some(ed) = &v.empty_dir {
        let path = dir.join("empty-dir").join(&v.name);
        if path.exists() {
            return Ok(path);
        }
        std::fs::create_dir_all(&path).map_err(|e| {
            err(
                format!("{field}.emptyDir"),
                format!("{}: {e}", path.display()),
            )
        })?;
        // kubelet makes emptyDir world-writable so any container user can use it.
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777));
        if ed.medium.as_deref() == Some("Memory") {
            let size = ed
                .size_limit
                .as_ref()
                .and_then(|q| peapod_api::parse_quantity(&q.0).ok())
                .map(|q| q.as_bytes())
                .filter(|b| *b > 0);
            let mut opts = String::from("mode=0777");
            if let Some(s) = size {
                opts.push_str(&format!(",size={s}"));
            }
            mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(opts.as_str()),
            )
            .map_err(|e| {
                err(
                    format!("{field}.emptyDir.medium"),
                    format!("cannot mount tmpfs at {}: {e}", path.display()),
                )
            })?;
        }
        return Ok(path);
    }
    if let Some(hp) = &v.host_path {
        let f = format!("{field}.hostPath");
        let path = PathBuf::from(&hp.path);
        let typ = hp.type_.as_deref().unwrap_or("");
        let meta = std::fs::metadata(&path);
        let missing = |what: &str| {
            err(
                format!("{f}.path"),
                format!(
                    "{what} {:?} does not exist on this node (hostPath type {typ})",
                    hp.path
                ),
            )
        };
        let wrong = |what: &str| {
            err(
                format!("{f}.type"),
                format!("{:?} is not a {what} (hostPath type {typ})", hp.path),
            )
        };
        match typ {
            "" => {}
            "DirectoryOrCreate" => match meta {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(wrong("directory")),
                Err(_) => {
                    std::fs::create_dir_all(&path).map_err(|e| {
                        err(
                            format!("{f}.path"),
                            format!("cannot create {:?}: {e}", hp.path),
                        )
                    })?;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
                }
            },
            "Directory" => match meta {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(wrong("directory")),
                Err(_) => return Err(missing("directory")),
            },
            "FileOrCreate" => match meta {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(wrong("file")),
                Err(_) => {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            err(
                                format!("{f}.path"),
                                format!("cannot create {}: {e}", parent.display()),
                            )
                        })?;
                    }
                    std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .map_err(|e| {
                            err(
                                format!("{f}.path"),
                                format!("cannot create {:?}: {e}", hp.path),
                            )
                        })?;
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
                }
            },
            "File" => match meta {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(wrong("file")),
                Err(_) => return Err(missing("file")),
            },
            "Socket" => match meta {
                Ok(m) if m.file_type().is_socket() => {}
                Ok(_) => return Err(wrong("socket")),
                Err(_) => return Err(missing("socket")),
            },
            "CharDevice" => match meta {
                Ok(m) if m.file_type().is_char_device() => {}
                Ok(_) => return Err(wrong("character device")),
                Err(_) => return Err(missing("character device")),
            },
            "BlockDevice" => match meta {
                Ok(m) if m.file_type().is_block_device() => {}
                Ok(_) => return Err(wrong("block device")),
                Err(_) => return Err(missing("block device")),
            },
            other => {
                return Err(err(
                    format!("{f}.type"),
                    format!("unsupported hostPath type {other:?}"),
                ))
            }
        }
        return Ok(path);
    }
    Err(err(
        field.to_string(),
        "volume source not supported: use emptyDir, hostPath, configMap, secret, downwardAPI or projected",
    ))
}

/// Open `sub` inside the volume at `base` one component at a time, each
/// with `openat(O_PATH | O_NOFOLLOW)` relative to the one before, so no
/// symlink and no `..` is ever followed (the CVE-2021-25741 class: a
/// container swaps a directory of a shared volume for a symlink to the
/// host's `/`). Missing components are created as directories with the
/// volume root's mode, as kubelet does. `field` is the pod field
/// (`spec.containers[0].volumeMounts[1].subPath`).
pub fn open_subpath(base: &Path, sub: &str, field: &str) -> Result<OwnedFd, VolumeError> {
    let rel = Path::new(sub);
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(err(
                    field,
                    format!(
                        "{sub:?}: component \"..\" is not allowed: a subPath stays inside its \
                         volume; name a path below the volume's root without '..'"
                    ),
                ))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(err(
                    field,
                    format!(
                        "{sub:?} is absolute: a subPath is relative to the volume's root; \
                         drop the leading '/'"
                    ),
                ))
            }
        }
    }
    let base_fd = open_fd(None, base, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| err(field, format!("volume path {}: {e}", base.display())))?;
    let perm = fstat(base_fd.as_raw_fd())
        .map(|st| Mode::from_bits_truncate(st.st_mode & 0o7777))
        .map_err(|e| err(field, format!("volume path {}: {e}", base.display())))?;
    let mut cur = base_fd;
    let last = names.len().saturating_sub(1);
    for (i, name) in names.iter().enumerate() {
        let shown = name.to_string_lossy();
        let symlink = |target: String| {
            err(
                field,
                format!(
                    "{sub:?}: component {shown:?} is a symlink{target}; a subPath must not pass \
                     through symlinks (one could lead out of the volume, e.g. to the host's /): \
                     point subPath at the real directory inside the volume, or have the \
                     container that made the link create a directory there instead"
                ),
            )
        };
        let next = match open_fd(
            Some(cur.as_raw_fd()),
            Path::new(name),
            OFlag::O_PATH | OFlag::O_NOFOLLOW,
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match mkdirat(Some(cur.as_raw_fd()), Path::new(name), perm) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(err(
                            field,
                            format!("{sub:?}: cannot create {shown:?} in the volume: {e}"),
                        ))
                    }
                }
                // Open it for real (O_NOFOLLOW: a symlink raced in fails
                // with ELOOP) and set the mode the umask took away.
                let dir = open_fd(
                    Some(cur.as_raw_fd()),
                    Path::new(name),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                )
                .map_err(|e| match e {
                    Errno::ELOOP => symlink(String::new()),
                    e => err(field, format!("{sub:?}: {shown:?}: {e}")),
                })?;
                let _ = fchmod(dir.as_raw_fd(), perm);
                dir
            }
            Err(e) => return Err(err(field, format!("{sub:?}: {shown:?}: {e}"))),
        };
        let st = fstat(next.as_raw_fd()).map_err(|e| err(field, format!("{sub:?}: {e}")))?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFLNK {
            let target = readlinkat(Some(cur.as_raw_fd()), Path::new(name))
                .map(|t| format!(" (to {:?})", t.to_string_lossy()))
                .unwrap_or_default();
            return Err(symlink(target));
        }
        if i < last && kind != libc::S_IFDIR {
            return Err(err(
                field,
                format!(
                    "{sub:?}: component {shown:?} is not a directory; \
                     name a path of directories inside the volume"
                ),
            ));
        }
        cur = next;
    }
    Ok(cur)
}

fn open_fd(dir: Option<RawFd>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let raw = openat(dir, path, flags | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Where subPath mounts are staged: `<volumes dir>/.subpaths/<container>/`
/// (node-owned, outside every volume, so no container can touch it).
pub fn subpaths_dir(volumes_dir: &Path) -> PathBuf {
    volumes_dir.join(".subpaths")
}

/// Resolve `sub` safely ([`open_subpath`]) and bind-mount what it names,
/// through `/proc/self/fd/N`, onto `<volumes dir>/.subpaths/<container>/<index>`.
/// The runtime bind-mounts that staging path into the container, so a
/// symlink swapped in afterwards cannot redirect the mount.
pub fn stage_subpath(
    base: &Path,
    sub: &str,
    field: &str,
    volumes_dir: &Path,
    container: &str,
    index: usize,
) -> Result<PathBuf, VolumeError> {
    let fd = open_subpath(base, sub, field)?;
    let is_dir = fstat(fd.as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| err(field, format!("{sub:?}: {e}")))?;
    let dir = subpaths_dir(volumes_dir).join(container);
    let staging = dir.join(index.to_string());
    let node_err = |what: &str, e: &dyn std::fmt::Display| {
        err(field, format!("{sub:?}: {what} {}: {e}", staging.display()))
    };
    std::fs::create_dir_all(&dir).map_err(|e| node_err("cannot create", &e))?;
    // A mount left from the container's last start is replaced.
    unmount_staged(&staging);
    match std::fs::symlink_metadata(&staging) {
        Ok(m) if m.is_dir() == is_dir => {}
        Ok(m) => {
            let removed = if m.is_dir() {
                std::fs::remove_dir(&staging)
            } else {
                std::fs::remove_file(&staging)
            };
            removed.map_err(|e| node_err("cannot replace", &e))?;
        }
        Err(_) => {}
    }
    if std::fs::symlink_metadata(&staging).is_err() {
        let made = if is_dir {
            std::fs::create_dir(&staging)
        } else {
            std::fs::File::create(&staging).map(drop)
        };
        made.map_err(|e| node_err("cannot create", &e))?;
    }
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        &staging,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| node_err("cannot bind-mount the subPath onto", &e))?;
    Ok(staging)
}

/// Unmount whatever is mounted at `path` (stacked mounts included).
fn unmount_staged(path: &Path) {
    for _ in 0..8 {
        if umount2(path, MntFlags::MNT_DETACH).is_err() {
            return;
        }
    }
}

/// Unmount and remove the staged subPath mounts under `volumes_dir`: one
/// container's, or (`None`) the whole pod's. The worker calls it when it
/// removes the pod's directory (whose `unmount_all_under` would catch any
/// it missed).
pub fn remove_subpaths(volumes_dir: &Path, container: Option<&str>) -> std::io::Result<()> {
    let root = subpaths_dir(volumes_dir);
    let dirs: Vec<PathBuf> = match container {
        Some(c) => vec![root.join(c)],
        None => std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect(),
    };
    for d in &dirs {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            unmount_staged(&e.path());
        }
    }
    let target = match container {
        Some(_) => dirs.into_iter().next().unwrap_or(root),
        None => root,
    };
    match std::fs::remove_dir_all(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The mounts of one container. `field` is `spec.containers[i]`;
/// `volumes_dir` is the pod's volumes directory, where subPath mounts are
/// staged; `env` is the container's environment, which `subPathExpr`
/// expands.
pub fn container_mounts(
    c: &Container,
    prepared: &Prepared,
    field: &str,
    volumes_dir: &Path,
    env: &[(String, String)],
) -> Result<Vec<VolumeMount>, VolumeError> {
    let mut out = Vec::new();
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let f = format!("{field}.volumeMounts[{j}]");
        let base = prepared
            .get(&m.name)
            .ok_or_else(|| err(format!("{f}.name"), format!("Not found: {:?}", m.name)))?;
        let expanded = match m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            Some(expr) => {
                Some(expand_sub_path(expr, env).map_err(|e| err(format!("{f}.subPathExpr"), e))?)
            }
            None => None,
        };
        let sub_path = expanded.as_deref().or(m.sub_path.as_deref());
        // ConfigMap, Secret, downwardAPI and projected volumes are
        // always read-only, as in Kubernetes; a subPath in them names a
        // file of the current content (and does not follow updates).
        let projected = base
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("kubernetes.io~"));
        let host_path = match sub_path.filter(|s| !s.is_empty()) {
            Some(sub) => {
                let resolved = projected
                    .then(|| crate::projection::resolve_subpath(base, sub))
                    .flatten();
                let sub = resolved.as_deref().unwrap_or(sub);
                let which = if expanded.is_some() {
                    "subPathExpr"
                } else {
                    "subPath"
                };
                stage_subpath(base, sub, &format!("{f}.{which}"), volumes_dir, &c.name, j)?
            }
            None => base.clone(),
        };
        out.push(VolumeMount {
            container_path: m.mount_path.clone(),
            host_path,
            readonly: projected || m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

/// `subPathExpr` with `$(VAR)` expanded from the container's env; a
/// reference to a variable that is unset or empty is an error, as kubelet's
/// `ExpandContainerVolumeMounts` makes it.
pub fn expand_sub_path(expr: &str, env: &[(String, String)]) -> Result<String, String> {
    let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
    let out = crate::env::expand(expr, |k| {
        let v = env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if v.is_empty() {
            missing.borrow_mut().insert(k.to_string());
        }
        Some(v)
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_path_expr_expands_from_env() {
        let env = vec![
            ("POD".to_string(), "web-1".to_string()),
            ("EMPTY".into(), String::new()),
        ];
        assert_eq!(expand_sub_path("logs/$(POD)", &env).unwrap(), "logs/web-1");
        assert_eq!(expand_sub_path("$$(POD)", &env).unwrap(), "$(POD)");
        assert_eq!(
            expand_sub_path("$(NOPE)/$(EMPTY)/$(POD)", &env).unwrap_err(),
            "missing value for EMPTY, NOPE"
        );
    }

    fn fd_path(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn subpath_refuses_symlinks_and_dotdot() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::create_dir(d.path().join("outside")).unwrap();
        std::fs::create_dir(vol.join("inner")).unwrap();
        std::os::unix::fs::symlink("/", vol.join("root")).unwrap();
        std::os::unix::fs::symlink("inner", vol.join("ok-link")).unwrap();
        let f = "spec.containers[0].volumeMounts[1].subPath";
        let e = open_subpath(&vol, "../outside", f).unwrap_err();
        assert_eq!(e.field, f);
        assert!(e.message.contains("component \"..\""), "{e}");
        let e = open_subpath(&vol, "inner/../../outside", f).unwrap_err();
        assert!(e.message.contains(".."), "{e}");
        assert!(open_subpath(&vol, "/etc", f).is_err());
        // A symlink is refused wherever it stands, even one that stays
        // inside the volume, and nothing is created through it.
        let e = open_subpath(&vol, "root", f).unwrap_err();
        assert!(
            e.message
                .contains("component \"root\" is a symlink (to \"/\")"),
            "{e}"
        );
        let e = open_subpath(&vol, "root/tmp/new", f).unwrap_err();
        assert!(e.message.contains("\"root\" is a symlink"), "{e}");
        assert!(open_subpath(&vol, "ok-link", f).is_err());
        assert!(open_subpath(&vol, "inner/new", f).is_ok());
        std::fs::write(vol.join("file"), "x").unwrap();
        let e = open_subpath(&vol, "file/below", f).unwrap_err();
        assert!(e.message.contains("not a directory"), "{e}");
    }

    #[test]
    fn subpath_nested_path_is_created_with_the_volume_mode() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o777)).unwrap();
        let fd = open_subpath(&vol, "a/./b/c", "f").unwrap();
        let real = std::fs::canonicalize(&vol).unwrap().join("a/b/c");
        assert_eq!(fd_path(&fd), real);
        for p in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(vol.join(p)).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o777, "{p}");
        }
        // Existing paths open as they are, files included.
        std::fs::write(vol.join("a/b/file"), "x").unwrap();
        let fd = open_subpath(&vol, "a/b/file", "f").unwrap();
        assert_eq!(fd_path(&fd), real.with_file_name("file"));
    }

    #[test]
    fn staged_subpath_is_a_bind_mount_that_a_later_symlink_cannot_move() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        let vols = d.path().join("volumes");
        std::fs::create_dir_all(vol.join("data")).unwrap();
        std::fs::write(vol.join("data/f"), "inside").unwrap();
        let staged = stage_subpath(&vol, "data", "f", &vols, "app", 1).unwrap();
        assert_eq!(staged, vols.join(".subpaths/app/1"));
        assert_eq!(std::fs::read_to_string(staged.join("f")).unwrap(), "inside");
        // Staging again (a restart) replaces the mount, not stacks it.
        stage_subpath(&vol, "data", "f", &vols, "app", 1).unwrap();
        let count = || {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains(staged.to_str().unwrap()))
                .count()
        };
        assert_eq!(count(), 1);
        // The directory swapped for a symlink afterwards: the staged mount
        // still shows the original directory.
        std::fs::rename(vol.join("data"), vol.join("moved")).unwrap();
        std::os::unix::fs::symlink("/", vol.join("data")).unwrap();
        assert_eq!(std::fs::read_to_string(staged.join("f")).unwrap(), "inside");
        assert!(stage_subpath(&vol, "data", "f", &vols, "app", 2).is_err());
        remove_subpaths(&vols, None).unwrap();
        assert_eq!(count(), 0);
        assert!(!subpaths_dir(&vols).exists());
    }

    #[test]
    fn host_path_types() {
        let d = tempfile::tempdir().unwrap();
        let mk = |path: &Path, typ: &str| Volume {
            name: "v".into(),
            host_path: Some(k8s_openapi::api::core::v1::HostPathVolumeSource {
                path: path.display().to_string(),
                type_: Some(typ.into()),
            }),
            ..Default::default()
        };
        let newdir = d.path().join("a/b");
        prepare_one(
            &mk(&newdir, "DirectoryOrCreate"),
            d.path(),
            "spec.volumes[0]",
        )
        .unwrap();
        assert!(newdir.is_dir());
        let e = prepare_one(&mk(&newdir, "File"), d.path(), "spec.volumes[0]").unwrap_err();
        assert_eq!(e.field, "spec.volumes[0].hostPath.type");
        let e = prepare_one(
            &mk(&d.path().join("nope"), "Directory"),
            d.path(),
            "spec.volumes[0]",
        )
        .unwrap_err();
        assert_eq!(e.field, "spec.volumes[0].hostPath.path");
        let f = d.path().join("c/file");
        prepare_one(&mk(&f, "FileOrCreate"), d.path(), "spec.volumes[0]").unwrap();
        assert!(f.is_file());
        assert!(prepare_one(&mk(&f, "Socket"), d.path(), "spec.volumes[0]").is_err());
    }
}
