//! The infra process: peapod's own "pause".
//!
//! Only a pod with `shareProcessNamespace: true` has one. The shim clones
//! it into a new pid namespace; it joins the pod's pinned net, ipc and uts
//! namespaces, execs `peapod infra`, and then only waits: it reaps zombies
//! (it is PID 1 of the pod's pid namespace) and exits on SIGTERM or SIGINT.
//! It needs no image.

use crate::protocol::InfraConfig;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// Clone the infra process into a new pid namespace, join the pod's pinned
/// namespaces and exec `peapod infra`.
pub fn spawn(cfg: &InfraConfig) -> std::io::Result<Pid> {
    // Everything the child touches is prepared before the clone: after it,
    // the child may only make async-signal-safe calls (no allocation).
    let join: Vec<OwnedFd> = cfg
        .join
        .iter()
        .map(|p| std::fs::File::open(p).map(OwnedFd::from))
        .collect::<Result<_, _>>()?;
    let join_raw: Vec<i32> = join.iter().map(|f| f.as_raw_fd()).collect();
    let exe = CString::new("/proc/self/exe").map_err(std::io::Error::other)?;
    let arg0 = CString::new("peapod").map_err(std::io::Error::other)?;
    let arg1 = CString::new("infra").map_err(std::io::Error::other)?;
    let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let mut stack = vec![0u8; 64 * 1024];
    let child = Box::new(move || -> isize {
        // SAFETY: raw syscalls on descriptors and buffers prepared before
        // the clone; the argv array is NULL-terminated and its strings
        // outlive this call.
        unsafe {
            libc::setsid();
            for fd in &join_raw {
                if libc::setns(*fd, 0) != 0 {
                    libc::_exit(120);
                }
            }
            libc::execv(exe.as_ptr(), argv.as_ptr());
            libc::_exit(121)
        }
    });
    // SAFETY: the child gets its own copy of memory (no CLONE_VM) and runs
    // only the closure above, which makes async-signal-safe calls and execs.
    let pid = unsafe {
        nix::sched::clone(
            child,
            &mut stack,
            CloneFlags::CLONE_NEWPID,
            Some(libc::SIGCHLD),
        )
    }?;
    drop(join);
    Ok(pid)
}

/// Main of `peapod infra`. Never returns.
pub fn run() -> ! {
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
