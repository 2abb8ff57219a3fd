//! Pod volumes, prepared on the host before containers are created:
//! `emptyDir` (a directory, or a sized tmpfs with `medium: Memory`),
//! `hostPath` with its `type` checks, and `volumeMounts` with `readOnly` and
//! a `subPath` that must stay inside its volume.

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use nix::mount::{mount, MsFlags};
use peapod_runtime::VolumeMount;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// An error that names the field and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct VolumeError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> VolumeError {
    VolumeError {
        field: field.into(),
        message: message.into(),
    }
}

/// Host paths of a pod's volumes, by volume name.
pub type Prepared = HashMap<String, PathBuf>;

/// Prepare every volume of `pod` under `dir` (the pod's volumes directory).
pub fn prepare(pod: &Pod, dir: &Path) -> Result<Prepared, VolumeError> {
    let mut out = HashMap::new();
    let Some(spec) = &pod.spec else {
        return Ok(out);
    };
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{i}]");
        let path = prepare_one(v, dir, &field)?;
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
    // configMap / secret are accepted with a warning at apply and not yet
    // populated: mount an empty read-only directory so the container starts.
    let path = dir.join("unsupported").join(&v.name);
    std::fs::create_dir_all(&path)
        .map_err(|e| err(field.to_string(), format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// Resolve `sub` under `base` without leaving it, through `..` or a
/// symlink; create it as a directory if missing (as kubelet does).
pub fn resolve_subpath(base: &Path, sub: &str, field: &str) -> Result<PathBuf, VolumeError> {
    let rel = Path::new(sub);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(err(
            field,
            format!("{sub:?} must be a relative path without '..'"),
        ));
    }
    let base_real = std::fs::canonicalize(base)
        .map_err(|e| err(field, format!("volume path {}: {e}", base.display())))?;
    // Walk component by component so a symlink anywhere along the way is
    // checked before anything is created through it.
    let mut cur = base_real.clone();
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        let next = cur.join(name);
        match std::fs::symlink_metadata(&next) {
            Ok(_) => {
                let real = std::fs::canonicalize(&next)
                    .map_err(|e| err(field, format!("{sub:?}: {e}")))?;
                if !real.starts_with(&base_real) {
                    return Err(err(
                        field,
                        format!("{sub:?} resolves to {}, outside its volume", real.display()),
                    ));
                }
                cur = real;
            }
            Err(_) => {
                std::fs::create_dir(&next)
                    .map_err(|e| err(field, format!("cannot create {sub:?} in the volume: {e}")))?;
                let _ = std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o777));
                cur = next;
            }
        }
    }
    Ok(cur)
}

/// The mounts of one container. `field` is `spec.containers[i]`.
pub fn container_mounts(
    c: &Container,
    prepared: &Prepared,
    field: &str,
) -> Result<Vec<VolumeMount>, VolumeError> {
    let mut out = Vec::new();
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        let f = format!("{field}.volumeMounts[{j}]");
        let base = prepared
            .get(&m.name)
            .ok_or_else(|| err(format!("{f}.name"), format!("Not found: {:?}", m.name)))?;
        let host_path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => resolve_subpath(base, sub, &format!("{f}.subPath"))?,
            None => base.clone(),
        };
        out.push(VolumeMount {
            container_path: m.mount_path.clone(),
            host_path,
            readonly: m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpath_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::create_dir(d.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("../outside", vol.join("escape")).unwrap();
        std::os::unix::fs::symlink("inner", vol.join("ok-link")).unwrap();
        std::fs::create_dir(vol.join("inner")).unwrap();
        assert!(resolve_subpath(&vol, "../outside", "f").is_err());
        let e = resolve_subpath(&vol, "escape", "f").unwrap_err();
        assert!(e.to_string().contains("outside its volume"), "{e}");
        assert!(resolve_subpath(&vol, "escape/new", "f").is_err());
        assert!(!d.path().join("outside/new").exists());
        assert_eq!(
            resolve_subpath(&vol, "ok-link", "f").unwrap(),
            std::fs::canonicalize(vol.join("inner")).unwrap()
        );
        let made = resolve_subpath(&vol, "a/b", "f").unwrap();
        assert!(made.is_dir() && made.starts_with(std::fs::canonicalize(&vol).unwrap()));
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
