//! Overlay root file systems from unpacked layers.
//!
//! Overlays are mounted with the new mount API when the kernel has overlayfs'
//! `lowerdir+` parameter (Linux 6.8+): `fsopen("overlay")`, one `fsconfig`
//! per lower layer (each path its own string), `upperdir` / `workdir` /
//! `index=off`, `FSCONFIG_CMD_CREATE`, `fsmount` and `move_mount` onto the
//! target. Neither the number of layers nor the length of their paths is then
//! limited. Older kernels get the classic `mount(2)` with a
//! `lowerdir=top:…:bottom` option string, which must fit in one page.
//!
//! Nothing here changes the working directory (the daemon is multi-threaded):
//! every path is passed as it is, relative to the process' cwd if relative.

use std::ffi::{CStr, CString};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{io_ctx, ImageError};

/// Mount data is one page, NUL included.
const MAX_MOUNT_DATA: usize = 4095;
/// The first kernel whose overlayfs takes `lowerdir+` through `fsconfig`.
const LOWERDIR_PLUS_KERNEL: (u32, u32) = (6, 8);
/// At most this many messages are read from an fs context's log.
const MAX_LOG_MESSAGES: usize = 16;

/// The overlay option string for `layers` (bottom first; the option lists
/// them top first), with `upperdir`/`workdir` when `rw` is given: what the
/// `mount(2)` fallback passes, limited to one page.
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
    mount_overlay(layers, Some((&upper, &work)), target)
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
        _ => mount_overlay(layers, None, target),
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

// ----- overlay mounts --------------------------------------------------------

/// Mount an overlay of `layers` (bottom first) at `target`; read-write with
/// `rw = Some((upper, work))`, read-only without.
fn mount_overlay(
    layers: &[PathBuf],
    rw: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), ImageError> {
    let why_not = match lowerdir_plus_unsupported() {
        Some(why) => why.to_string(),
        None => match mount_overlay_fsconfig(layers, rw, target)? {
            NewApi::Mounted => return Ok(()),
            NewApi::Unsupported(why) => why,
        },
    };
    tracing::debug!(reason = %why_not, layers = layers.len(), "overlay: new mount API unavailable, using mount(2)");
    mount_overlay_classic(layers, rw, target, &why_not)
}

/// `mount(2)` with a `lowerdir=…` option string (at most one page).
/// `why_not` says why the new mount API was not used (for errors).
fn mount_overlay_classic(
    layers: &[PathBuf],
    rw: Option<(&Path, &Path)>,
    target: &Path,
    why_not: &str,
) -> Result<(), ImageError> {
    let opts = overlay_options(layers, rw).map_err(|e| match e {
        ImageError::Unsupported(msg) => ImageError::Unsupported(format!(
            "{msg} (the kernel has no overlayfs \"lowerdir+\" through the new mount API, \
             Linux 6.8+, which has no such limit: {why_not})"
        )),
        other => other,
    })?;
    let flags = if rw.is_some() {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    };
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .map_err(|source| ImageError::Mount {
        what: format!("overlay ({opts})"),
        target: target.to_path_buf(),
        source,
    })
}

/// Outcome of [`mount_overlay_fsconfig`] when nothing failed for real.
enum NewApi {
    Mounted,
    /// The kernel lacks fsopen or overlayfs `lowerdir+`; the reason.
    Unsupported(String),
}

/// `Some(reason)` when the running kernel is known to be older than 6.8:
/// there, overlayfs either rejects `lowerdir+` or (before 6.5, with a legacy
/// fs context) only fails at `FSCONFIG_CMD_CREATE` with a bare EINVAL, which
/// could not be told apart from a real configuration error.
fn lowerdir_plus_unsupported() -> Option<&'static str> {
    static VERDICT: OnceLock<Option<String>> = OnceLock::new();
    VERDICT
        .get_or_init(|| {
            let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
            let release = release.trim();
            let mut nums = release
                .split(|c: char| !c.is_ascii_digit())
                .map(|n| n.parse::<u32>().ok());
            let version = (nums.next()??, nums.next()??);
            (version < LOWERDIR_PLUS_KERNEL).then(|| format!("kernel {release} is older than 6.8"))
        })
        .as_deref()
}

/// Mount the overlay with fsopen / fsconfig / fsmount / move_mount.
/// Returns `Unsupported` (nothing mounted) when the kernel lacks the API or
/// overlayfs' `lowerdir+`; other failures are errors, with the kernel's log
/// for the fs context when it wrote one.
fn mount_overlay_fsconfig(
    layers: &[PathBuf],
    rw: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<NewApi, ImageError> {
    let n = layers.len();
    let fail = |step: String, source: Errno| ImageError::Mount {
        what: format!("overlay of {n} layers ({step})"),
        target: target.to_path_buf(),
        source,
    };
    let ctx = match fsopen(c"overlay") {
        Ok(fd) => fd,
        // No new mount API (or a seccomp filter that hides it: mount(2) will
        // tell if it is a real permission problem).
        Err(e @ (Errno::ENOSYS | Errno::EPERM)) => {
            return Ok(NewApi::Unsupported(format!("fsopen: {e}")))
        }
        Err(e) => return Err(fail("fsopen".into(), e)),
    };
    let set = |key: &CStr, value: &Path| -> Result<(), ImageError> {
        let v = path_cstring(value)?;
        fsconfig(&ctx, libc::FSCONFIG_SET_STRING, Some(key), Some(&v)).map_err(|e| {
            fail(
                format!(
                    "fsconfig {} {}{}",
                    key.to_string_lossy(),
                    value.display(),
                    fs_context_log(&ctx)
                ),
                e,
            )
        })
    };
    // "lowerdir+" appends a lower layer; the first one given is the top.
    for (i, layer) in layers.iter().rev().enumerate() {
        let v = path_cstring(layer)?;
        if let Err(e) = fsconfig(
            &ctx,
            libc::FSCONFIG_SET_STRING,
            Some(c"lowerdir+"),
            Some(&v),
        ) {
            let log = fs_context_log(&ctx);
            // A kernel without "lowerdir+" rejects the first one with EINVAL
            // and "Unknown parameter" (or nothing) in the log; anything else
            // (e.g. "… is not a directory") is a real error.
            if i == 0 && e == Errno::EINVAL && (log.is_empty() || log.contains("Unknown parameter"))
            {
                return Ok(NewApi::Unsupported(format!("fsconfig lowerdir+: {e}{log}")));
            }
            return Err(fail(
                format!("fsconfig lowerdir+ {}{log}", layer.display()),
                e,
            ));
        }
    }
    let mut attrs = 0;
    match rw {
        Some((upper, work)) => {
            set(c"upperdir", upper)?;
            set(c"workdir", work)?;
            fsconfig(
                &ctx,
                libc::FSCONFIG_SET_STRING,
                Some(c"index"),
                Some(c"off"),
            )
            .map_err(|e| fail(format!("fsconfig index=off{}", fs_context_log(&ctx)), e))?;
        }
        None => {
            fsconfig(&ctx, libc::FSCONFIG_SET_FLAG, Some(c"ro"), None)
                .map_err(|e| fail(format!("fsconfig ro{}", fs_context_log(&ctx)), e))?;
            attrs |= libc::MOUNT_ATTR_RDONLY;
        }
    }
    fsconfig(&ctx, libc::FSCONFIG_CMD_CREATE, None, None).map_err(|e| {
        fail(
            format!("creating the file system{}", fs_context_log(&ctx)),
            e,
        )
    })?;
    let mnt =
        fsmount(&ctx, attrs).map_err(|e| fail(format!("fsmount{}", fs_context_log(&ctx)), e))?;
    // Until move_mount succeeds the mount is detached: closing `mnt` on an
    // error drops it.
    move_mount(&mnt, target).map_err(|e| fail("move_mount".into(), e))?;
    Ok(NewApi::Mounted)
}

fn path_cstring(p: &Path) -> Result<CString, ImageError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        ImageError::Unsupported(format!("overlay path {} contains a NUL byte", p.display()))
    })
}

/// A file descriptor a syscall just returned, now owned.
fn owned_fd(rc: libc::c_long) -> Result<OwnedFd, Errno> {
    if rc < 0 {
        return Err(Errno::last());
    }
    let fd = RawFd::try_from(rc).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned `fd` as a new descriptor of this
    // process; nothing else owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fsopen(2)` with FSOPEN_CLOEXEC.
fn fsopen(fs_type: &CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: fs_type is a valid NUL-terminated string that outlives the
    // call; the flags are a plain integer.
    let rc = unsafe { libc::syscall(libc::SYS_fsopen, fs_type.as_ptr(), libc::FSOPEN_CLOEXEC) };
    owned_fd(rc)
}

/// `fsconfig(2)` with a string value (or none, for flags and commands).
fn fsconfig(
    ctx: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&CStr>,
    value: Option<&CStr>,
) -> Result<(), Errno> {
    let key = key.map_or(std::ptr::null(), CStr::as_ptr);
    let value = value.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: ctx is an open fs context descriptor; key and value are null
    // or valid NUL-terminated strings that outlive the call, as fsconfig
    // expects for FSCONFIG_SET_FLAG / _SET_STRING / _CMD_CREATE; aux is 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            cmd,
            key,
            value,
            0 as libc::c_int,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `fsmount(2)` with FSMOUNT_CLOEXEC and the given MOUNT_ATTR_* flags.
fn fsmount(ctx: &OwnedFd, attrs: u64) -> Result<OwnedFd, Errno> {
    let attrs = libc::c_uint::try_from(attrs).map_err(|_| Errno::EINVAL)?;
    // SAFETY: ctx is an open fs context descriptor on which
    // FSCONFIG_CMD_CREATE succeeded; the other arguments are plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    };
    owned_fd(rc)
}

/// `move_mount(2)` of the detached mount `mnt` onto `target` (whose final
/// symlink, if any, is not followed).
fn move_mount(mnt: &OwnedFd, target: &Path) -> Result<(), Errno> {
    let to = CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: mnt is an open mount descriptor (MOVE_MOUNT_F_EMPTY_PATH: the
    // empty string names it); both strings are NUL-terminated and outlive
    // the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The messages the kernel logged on an fs context (each read returns one;
/// ENODATA when none is left), as `"; kernel: …"`; empty if there are none.
fn fs_context_log(ctx: &OwnedFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    for _ in 0..MAX_LOG_MESSAGES {
        match nix::unistd::read(ctx.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                // "e msg", "w msg", "i msg": error, warning, info.
                let msg = msg.trim_end();
                let msg = msg
                    .strip_prefix("e ")
                    .or_else(|| msg.strip_prefix("w "))
                    .or_else(|| msg.strip_prefix("i "))
                    .unwrap_or(msg);
                out.push_str("; kernel: ");
                out.push_str(msg);
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(root: &Path, names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| {
                let d = root.join(n);
                fs::create_dir_all(&d).expect("layer dir");
                fs::write(d.join(n), n.as_bytes()).expect("layer file");
                fs::write(d.join("top"), n.as_bytes()).expect("layer file");
                d
            })
            .collect()
    }

    /// The mount(2) path (used on kernels before 6.8) still works, and its
    /// page limit names the way out.
    #[test]
    fn classic_mount_fallback() {
        let d = tempfile::tempdir().expect("tempdir");
        let lower = layers(d.path(), &["a", "b"]);
        let (upper, work, target) = (d.path().join("u"), d.path().join("w"), d.path().join("t"));
        for p in [&upper, &work, &target] {
            fs::create_dir(p).expect("mkdir");
        }
        mount_overlay_classic(&lower, Some((&upper, &work)), &target, "test").expect("mount");
        let seen = (
            fs::read(target.join("top")),
            fs::read(target.join("a")),
            fs::write(target.join("new"), b"n"),
        );
        unmount(&target).expect("unmount");
        assert_eq!(seen.0.expect("top"), b"b", "the last layer is the top");
        assert_eq!(seen.1.expect("a"), b"a");
        seen.2.expect("write");
        assert!(upper.join("new").is_file());

        let many: Vec<PathBuf> = (0..300)
            .map(|i| d.path().join(format!("{i:030}")))
            .collect();
        match mount_overlay_classic(&many, None, &target, "kernel 6.1 is older than 6.8") {
            Err(ImageError::Unsupported(msg)) => {
                assert!(msg.contains("lowerdir+") && msg.contains("6.1"), "{msg}")
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    /// A failing fsconfig names the layer and carries the kernel's message;
    /// nothing is mounted. Paths with ',' and ':' need no escaping.
    #[test]
    fn fsconfig_errors_carry_the_kernel_log() {
        if lowerdir_plus_unsupported().is_some() {
            eprintln!("skipping: kernel without overlayfs lowerdir+");
            return;
        }
        let d = tempfile::tempdir().expect("tempdir");
        let mut lower = layers(d.path(), &["a,b", "c:d"]);
        let target = d.path().join("t");
        fs::create_dir(&target).expect("mkdir");
        mount_rootfs_readonly(&lower, &target).expect("odd characters in layer paths");
        let top = fs::read(target.join("top"));
        unmount(&target).expect("unmount");
        assert_eq!(top.expect("top"), b"c:d");

        // A top layer that is a file, not a directory: the kernel says so in
        // the fs context's log (and that is no reason to try mount(2)).
        let not_dir = d.path().join("not-a-dir");
        fs::write(&not_dir, b"").expect("file");
        lower.push(not_dir);
        let err = mount_rootfs(&lower, &d.path().join("rw"), &target).expect_err("file as layer");
        let msg = err.to_string();
        assert!(matches!(err, ImageError::Mount { .. }), "{msg}");
        assert!(
            msg.contains("not-a-dir") && msg.contains("kernel: "),
            "{msg}"
        );
        assert_eq!(fs::read_dir(&target).expect("target").count(), 0);

        // A missing one: ENOENT, naming the layer (this kernel logs it to
        // dmesg only).
        lower.pop();
        lower.insert(0, d.path().join("missing-layer"));
        let err = mount_rootfs(&lower, &d.path().join("rw"), &target).expect_err("missing layer");
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                ImageError::Mount {
                    source: Errno::ENOENT,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("missing-layer"), "{msg}");
        assert_eq!(fs::read_dir(&target).expect("target").count(), 0);
    }
}
