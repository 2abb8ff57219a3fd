//! Namespaces: pinning the sandbox's namespaces by bind mount, and reading
//! a process's namespace inodes for `inspect`.

use crate::error::RuntimeError;
use nix::mount::{mount, MsFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Namespace kinds as named in `/proc/PID/ns`.
pub const KINDS: &[&str] = &["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"];

/// Bind-mount `/proc/<pid>/ns/<kind>` onto `<dir>/<kind>` so the namespace
/// has a path to join that outlives no one's file descriptor.
pub fn pin(pid: i32, kind: &str, dir: &Path) -> Result<PathBuf, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io(dir))?;
    let target = dir.join(kind);
    if !target.exists() {
        std::fs::File::create(&target).map_err(RuntimeError::io(&target))?;
    }
    let source = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
    mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::Io {
        path: target.clone(),
        source: std::io::Error::from(e),
    })?;
    Ok(target)
}

/// Inode of a namespace file (`/proc/PID/ns/net`, or a pinned path).
pub fn inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Namespace inodes of a process, in [`KINDS`] order.
pub fn process_inodes(pid: i32) -> Vec<(String, Option<u64>)> {
    KINDS
        .iter()
        .map(|k| {
            (
                k.to_string(),
                inode(Path::new(&format!("/proc/{pid}/ns/{k}"))),
            )
        })
        .collect()
}
