//! Mount bookkeeping: the pod's /dev/shm tmpfs and unmounting everything a
//! pod left under its directories.

use crate::error::RuntimeError;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// Default size of a pod's /dev/shm, as Docker and containerd use.
pub const SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Mount the pod's shared /dev/shm: one tmpfs per pod, bound into every
/// container (the ipc namespace does not cover POSIX shm).
pub fn mount_shm(dir: &Path, size: u64) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io(dir))?;
    let opts = format!("mode=1777,size={size}");
    mount(
        Some("shm"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(opts.as_str()),
    )
    .map_err(|e| RuntimeError::Io {
        path: dir.to_path_buf(),
        source: e.into(),
    })
}

/// Decode the octal escapes of a mountinfo path field.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Unmount everything at or under `dir` (lazily: a mount still busy in a
/// dying process is detached now and freed when the process is gone).
pub fn unmount_all_under(dir: &Path) -> Result<(), RuntimeError> {
    for _ in 0..4 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return Ok(());
        }
        for m in mounts {
            detach(&m)?;
        }
    }
    Ok(())
}

/// Detach the mount at `path` if there is one (the mounts the runtime
/// made itself, at paths it knows: no scan of the mount table, which grows
/// with every pod).
pub fn detach(path: &Path) -> Result<(), RuntimeError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(RuntimeError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Remove directory tree `dir` of the runtime's own, whose known mounts
/// are already detached; if something is still mounted below it (left by
/// a crash), scan the mount table, unmount what is there and try again.
/// Only for the runtime's directories: nothing there is a bind mount of
/// data that is not the sandbox's own. A missing `dir` is fine.
pub fn remove_tree(dir: &Path) -> Result<(), RuntimeError> {
    let rm = |d: &Path| match std::fs::remove_dir_all(d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    let io = |e| RuntimeError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    if rm(dir).is_ok() {
        return Ok(());
    }
    unmount_all_under(dir)?;
    rm(dir).map_err(io)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes_spaces() {
        assert_eq!(super::unescape("/a\\040b"), "/a b");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
