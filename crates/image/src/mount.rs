//! Overlay root file systems from unpacked layers.

use std::fs;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{io_ctx, ImageError};

/// Mount data is one page, NUL included.
const MAX_MOUNT_DATA: usize = 4095;

/// The overlay option string for `layers` (bottom first; the option lists
/// them top first), with `upperdir`/`workdir` when `rw` is given.
pub fn overlay_options(
    layers: &[PathBuf],
    rw: Option<(&Path, &Path)>,
) -> Result<String, ImageError> {
    let check = |p: &Path| -> Result<String, ImageError> {
        let s = p.to_str().ok_or_else(|| {
            ImageError::Unsupported(format!("overlay path {} is not UTF-8", p.display()))
        })?;
        if s.contains([',', ':', '\\']) {
            return Err(ImageError::Unsupported(format!(
                "overlay path {s:?} contains ',', ':' or '\\\\'"
            )));
        }
        Ok(s.to_string())
    };
    let lower = layers
        .iter()
        .rev()
        .map(|p| check(p))
        .collect::<Result<Vec<_>, _>>()?
        .join(":");
    let opts = match rw {
        Some((upper, work)) => format!(
            "lowerdir={lower},upperdir={},workdir={},index=off",
            check(upper)?,
            check(work)?
        ),
        None => format!("lowerdir={lower}"),
    };
    if opts.len() > MAX_MOUNT_DATA {
        return Err(ImageError::Unsupported(format!(
            "overlay options for {} layers are {} bytes, more than the kernel's {MAX_MOUNT_DATA}; \
             use a shorter store root",
            layers.len(),
            opts.len()
        )));
    }
    Ok(opts)
}

/// Mount an overlay rootfs at `target`: lower = `layers` (bottom first, as
/// [`crate::ImageStore::layer_dirs`] returns them), upper and work dirs
/// `rw_dir/upper` and `rw_dir/work` (created if missing; an existing upper
/// keeps its content). `target` is created if missing.
pub fn mount_rootfs(layers: &[PathBuf], rw_dir: &Path, target: &Path) -> Result<(), ImageError> {
    if layers.is_empty() {
        return Err(ImageError::Unsupported(
            "image has no layers; cannot build a rootfs".into(),
        ));
    }
    let upper = rw_dir.join("upper");
    let work = rw_dir.join("work");
    for d in [&upper, &work, &target.to_path_buf()] {
        fs::create_dir_all(d).map_err(io_ctx("creating", d))?;
    }
    let opts = overlay_options(layers, Some((&upper, &work)))?;
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .map_err(|source| ImageError::Mount {
        what: format!("overlay ({opts})"),
        target: target.to_path_buf(),
        source,
    })
}

/// Mount the layers read-only at `target`: an overlay of lower dirs only, or
/// a read-only bind mount of a single layer. `target` is created if missing.
pub fn mount_rootfs_readonly(layers: &[PathBuf], target: &Path) -> Result<(), ImageError> {
    fs::create_dir_all(target).map_err(io_ctx("creating", target))?;
    match layers {
        [] => Err(ImageError::Unsupported(
            "image has no layers; cannot build a rootfs".into(),
        )),
        [only] => {
            let err = |what: &str| {
                let what = format!("{what} {}", only.display());
                move |source| ImageError::Mount {
                    what,
                    target: target.to_path_buf(),
                    source,
                }
            };
            mount(
                Some(only.as_path()),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(err("bind"))?;
            let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            if let Err(e) = mount(None::<&str>, target, None::<&str>, ro, None::<&str>) {
                // Do not leave a writable bind mount behind.
                let _ = umount2(target, MntFlags::MNT_DETACH);
                return Err(err("read-only remount of")(e));
            }
            Ok(())
        }
        _ => {
            let opts = overlay_options(layers, None)?;
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                MsFlags::MS_RDONLY,
                Some(opts.as_str()),
            )
            .map_err(|source| ImageError::Mount {
                what: format!("overlay ({opts})"),
                target: target.to_path_buf(),
                source,
            })
        }
    }
}

/// Lazily unmount `target` (MNT_DETACH). Not mounted (EINVAL) or missing
/// (ENOENT) is not an error.
pub fn unmount(target: &Path) -> Result<(), ImageError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(ImageError::Unmount {
            target: target.to_path_buf(),
            source,
        }),
    }
}
