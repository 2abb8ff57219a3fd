//! The sandbox's namespaces: made and pinned by bind mounts alone, with no
//! process to hold them (as CRI-O's `pinns` does), and read back for
//! `inspect`.
//!
//! A short-lived thread of the daemon unshares the namespaces the pod owns
//! (net, ipc, uts: namespaces that a thread may own alone), sets the pod's
//! hostname, brings `lo` up, writes the pod's sysctls (inside the new
//! namespaces only: /proc/sys/net and the ipc sysctls resolve to the
//! writing thread's namespaces), bind-mounts `/proc/thread-self/ns/<kind>`
//! under the sandbox's state directory, and exits. The daemon's other
//! threads never change namespace.

use crate::error::RuntimeError;
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Namespace kinds as named in `/proc/PID/ns`.
pub const KINDS: &[&str] = &["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"];

/// What to make.
#[derive(Debug, Clone, Default)]
pub struct PodNamespaces {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub hostname: String,
    /// Namespaced sysctls, already checked by [`check_sysctls`].
    pub sysctls: Vec<(String, String)>,
}

/// Which namespace a sysctl belongs to, as kubelet's safe/unsafe sysctl
/// checks see it; None for a sysctl that is not namespaced (it would
/// change the host).
pub fn sysctl_namespace(name: &str) -> Option<&'static str> {
    let n = name.replace('/', ".");
    if n.starts_with("net.") {
        Some("net")
    } else if n.starts_with("kernel.shm")
        || n.starts_with("kernel.msg")
        || n == "kernel.sem"
        || n.starts_with("fs.mqueue.")
    {
        Some("ipc")
    } else if n == "kernel.hostname" || n == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// Refuse a sysctl that would land in the host's namespaces: one that is
/// not namespaced at all, `net.*` with hostNetwork, ipc ones with hostIPC
/// (kubelet refuses the same; CRI-O's GHSA-w2j5-3rcx-vx7x).
pub fn check_sysctls(
    sysctls: &[(String, String)],
    host_network: bool,
    host_ipc: bool,
) -> Result<(), String> {
    for (k, _) in sysctls {
        match sysctl_namespace(k) {
            None => {
                return Err(format!(
                    "sysctl {k:?} is not namespaced: setting it would change the host; remove it from spec.securityContext.sysctls"
                ))
            }
            Some("net") | Some("uts") if host_network => {
                return Err(format!(
                    "sysctl {k:?} cannot be set with hostNetwork: true (it would change the host's network namespace); remove it or set hostNetwork: false"
                ))
            }
            Some("ipc") if host_ipc => {
                return Err(format!(
                    "sysctl {k:?} cannot be set with hostIPC: true (it would change the host's ipc namespace); remove it or set hostIPC: false"
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Make the namespaces `want` asks for and pin each at `<dir>/<kind>`.
/// Returns the pinned paths. On failure nothing stays mounted.
pub fn create_pinned(dir: &Path, want: &PodNamespaces) -> Result<Vec<PathBuf>, RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io(dir))?;
    let mut kinds = Vec::new();
    let mut flags = CloneFlags::empty();
    if want.net {
        kinds.push("net");
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if want.ipc {
        kinds.push("ipc");
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if want.uts {
        kinds.push("uts");
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let want = want.clone();
    let dir_owned = dir.to_path_buf();
    let kinds_owned: Vec<&'static str> = kinds.clone();
    // A fresh thread: it alone enters the new namespaces, and it ends with
    // this call, so no pooled thread is left in a pod's namespaces.
    let result = std::thread::Builder::new()
        .name("pinns".into())
        .spawn(move || -> Result<Vec<PathBuf>, RuntimeError> {
            let fail = |what: &str, e: std::io::Error| RuntimeError::Sandbox {
                uid: dir_owned.display().to_string(),
                message: format!("{what}: {e}"),
            };
            nix::sched::unshare(flags).map_err(|e| fail("unshare", e.into()))?;
            if want.uts {
                nix::unistd::sethostname(&want.hostname)
                    .map_err(|e| fail("sethostname", e.into()))?;
            }
            if want.net {
                loopback_up().map_err(|e| fail("bring lo up", e))?;
            }
            for (k, v) in &want.sysctls {
                let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
                std::fs::write(&path, v)
                    .map_err(|e| fail(&format!("sysctl {k}={v} ({})", path.display()), e))?;
            }
            let mut pinned = Vec::new();
            for k in &kinds_owned {
                let target = dir_owned.join(k);
                pin(Path::new(&format!("/proc/thread-self/ns/{k}")), &target)?;
                pinned.push(target);
            }
            Ok(pinned)
        })
        .map_err(RuntimeError::io(dir))?
        .join()
        .map_err(|_| RuntimeError::Sandbox {
            uid: dir.display().to_string(),
            message: "namespace thread panicked".into(),
        })?;
    if result.is_err() {
        let _ = crate::mounts::unmount_all_under(dir);
    }
    result
}

/// Bind-mount namespace file `source` (`/proc/<pid>/ns/<kind>`) onto
/// `target` (made if missing), so the namespace lives while the mount does.
pub fn pin(source: &Path, target: &Path) -> Result<(), RuntimeError> {
    if !target.exists() {
        std::fs::File::create(target).map_err(RuntimeError::io(target))?;
    }
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::Io {
        path: target.to_path_buf(),
        source: e.into(),
    })
}

/// Bring the loopback interface of the current network namespace up.
fn loopback_up() -> std::io::Result<()> {
    // Hand-written because it is one ioctl; a netlink crate for it would
    // weigh more than the rest of this module.
    // SAFETY: plain socket + ioctl calls on a zeroed `ifreq` whose name is
    // set to "lo"; the socket is closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut res = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if res == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            res = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if res != 0 {
            return Err(err);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: &str) -> Vec<(String, String)> {
        vec![(k.to_string(), "1".to_string())]
    }

    #[test]
    fn sysctls_stay_in_the_pod() {
        assert!(check_sysctls(&s("net.ipv4.ip_forward"), false, false).is_ok());
        let e = check_sysctls(&s("net.ipv4.ip_forward"), true, false).unwrap_err();
        assert!(e.contains("hostNetwork"), "{e}");
        assert!(check_sysctls(&s("kernel.shmmax"), false, false).is_ok());
        assert!(check_sysctls(&s("kernel.shmmax"), false, true).is_err());
        let e = check_sysctls(&s("vm.swappiness"), false, false).unwrap_err();
        assert!(e.contains("not namespaced"), "{e}");
        assert!(check_sysctls(&s("kernel/msgmax"), false, false).is_ok());
    }
}
