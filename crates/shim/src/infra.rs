//! The infra process: peapod's own "pause".
//!
//! It is cloned by the shim straight into the pod's new namespaces (net,
//! ipc, uts and, with shareProcessNamespace, pid), execs `peapod infra`,
//! brings `lo` up when it owns the network namespace, and then only waits:
//! it reaps zombies (it is PID 1 of a shared pod pid namespace) and exits on
//! SIGTERM or SIGINT. It needs no image.

use crate::protocol::SandboxConfig;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;

/// Clone the infra process into new namespaces and exec `peapod infra`.
pub fn spawn(cfg: &SandboxConfig) -> std::io::Result<Pid> {
    let mut flags = CloneFlags::empty();
    if cfg.new_net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if cfg.new_ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if cfg.new_uts {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if cfg.new_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    // Everything the child touches is prepared before the clone: after it,
    // the child may only make async-signal-safe calls (no allocation).
    let exe = CString::new("/proc/self/exe").map_err(std::io::Error::other)?;
    let arg0 = CString::new("peapod").map_err(std::io::Error::other)?;
    let arg1 = CString::new("infra").map_err(std::io::Error::other)?;
    let arg2 = CString::new(if cfg.new_net { "--lo-up" } else { "--no-lo" })
        .map_err(std::io::Error::other)?;
    let argv = [
        arg0.as_ptr(),
        arg1.as_ptr(),
        arg2.as_ptr(),
        std::ptr::null(),
    ];
    let hostname = CString::new(cfg.hostname.as_str()).map_err(std::io::Error::other)?;
    let set_hostname = cfg.new_uts;
    let mut stack = vec![0u8; 64 * 1024];
    let child = Box::new(move || -> isize {
        // SAFETY: raw syscalls on buffers prepared before the clone; the
        // argv array is NULL-terminated and its strings outlive this call.
        unsafe {
            libc::setsid();
            if set_hostname && libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()) != 0
            {
                libc::_exit(120);
            }
            libc::execv(exe.as_ptr(), argv.as_ptr());
            libc::_exit(121)
        }
    });
    // SAFETY: the child gets its own copy of memory (no CLONE_VM) and runs
    // only the closure above, which makes async-signal-safe calls and execs.
    let pid = unsafe { nix::sched::clone(child, &mut stack, flags, Some(libc::SIGCHLD)) }?;
    Ok(pid)
}

/// Bring the loopback interface of the current network namespace up.
fn loopback_up() -> std::io::Result<()> {
    // Hand-written because it is one ioctl; a netlink crate for it would
    // weigh more than the infra process itself.
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

/// Main of `peapod infra`. Never returns.
pub fn run(lo_up: bool) -> ! {
    if lo_up {
        if let Err(e) = loopback_up() {
            eprintln!("peapod infra: cannot bring lo up: {e}");
        }
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGCHLD);
    if let Err(e) = set.thread_block() {
        eprintln!("peapod infra: cannot block signals: {e}");
        std::process::exit(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            Ok(_) => std::process::exit(0),
            Err(_) => continue,
        }
    }
}
