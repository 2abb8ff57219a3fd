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

/// How a mount point propagates (its mountinfo optional fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPropagationInfo {
    pub mount_point: PathBuf,
    /// In a peer group (`shared:N`).
    pub shared: bool,
    /// Receives from a peer group (`master:N`).
    pub slave: bool,
}

/// The mount `path` is on (the deepest mount point above it, the top one
/// when several are stacked), from mountinfo text.
fn mount_of_in(info: &str, path: &Path) -> Option<MountPropagationInfo> {
    let mut best: Option<MountPropagationInfo> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4).map(|p| PathBuf::from(unescape(p))) else {
            continue;
        };
        if !path.starts_with(&point) {
            continue;
        }
        if best
            .as_ref()
            .is_some_and(|b| b.mount_point.components().count() > point.components().count())
        {
            continue;
        }
        let optional = fields.iter().skip(6).take_while(|f| **f != "-");
        let (mut shared, mut slave) = (false, false);
        for f in optional {
            shared |= f.starts_with("shared:");
            slave |= f.starts_with("master:");
        }
        best = Some(MountPropagationInfo {
            mount_point: point,
            shared,
            slave,
        });
    }
    best
}

/// The mount `path` (already canonical) is on, in this process's mount
/// namespace.
pub fn mount_of(path: &Path) -> Result<MountPropagationInfo, RuntimeError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(RuntimeError::io("/proc/self/mountinfo"))?;
    mount_of_in(&info, path).ok_or_else(|| RuntimeError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other("on no mount of /proc/self/mountinfo"),
    })
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
    use super::*;

    #[test]
    fn finds_the_top_deepest_mount_and_its_propagation() {
        let info = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 254:0 /tmp/a /tmp/a rw,relatime shared:5 - ext4 /dev/vda rw
41 40 254:0 /tmp/a /tmp/a rw,relatime shared:7 master:5 - ext4 /dev/vda rw
42 27 0:30 / /tmp/ab rw - tmpfs t rw
43 27 0:31 / /tmp/b\\040c rw master:9 - tmpfs t rw
";
        let m = mount_of_in(info, Path::new("/tmp/a/x/y")).unwrap();
        assert_eq!(m.mount_point, Path::new("/tmp/a"));
        assert!(m.shared && m.slave, "{m:?}");
        // A path prefix is not a parent directory.
        let m = mount_of_in(info, Path::new("/tmp/abc")).unwrap();
        assert_eq!(m.mount_point, Path::new("/"));
        assert!(!m.shared && !m.slave);
        let m = mount_of_in(info, Path::new("/tmp/b c/d")).unwrap();
        assert_eq!(m.mount_point, Path::new("/tmp/b c"));
        assert!(!m.shared && m.slave);
        assert_eq!(mount_of_in("", Path::new("/x")), None);
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(super::unescape("/a\\040b"), "/a b");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
