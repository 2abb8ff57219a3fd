//! Default security like containerd's CRI plugin: its default capability
//! set, masked and read-only /proc and /sys paths, and a RuntimeDefault
//! seccomp profile.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use oci_spec::OciSpecError;

/// containerd's default capabilities for a container.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel defines (a privileged container gets all).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Normalise a Kubernetes capability name (`NET_ADMIN`, `CAP_NET_ADMIN`,
/// `ALL`) to the OCI form.
pub fn normalize_cap(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" || upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capability set after Kubernetes' add/drop (drop first; `ALL` works
/// in both, as in containerd).
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Vec<String> {
    if privileged {
        return all_current_caps();
    }
    let add: Vec<String> = add.iter().map(|c| normalize_cap(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| normalize_cap(c)).collect();
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_current_caps()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    for c in add {
        if c != "ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps
}

/// "All capabilities" for a container: those of [`ALL_CAPS`] in this
/// process's bounding set. A daemon that lacks one (a container host
/// without CAP_SYS_RESOURCE) cannot grant it, and asking would fail the
/// container's capset; containerd's `WithAllCurrentCapabilities` does the
/// same.
fn all_current_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding.is_none_or(|b| b & (1u64 << bit) != 0))
        .map(|(_, c)| c.to_string())
        .collect()
}

// The RuntimeDefault seccomp profile: containerd's default profile
// (`contrib/seccomp/seccomp_default.go`, itself moby's `default.json`), an
// allow list on top of "fail with EPERM". A syscall this table does not name
// is refused, including ones newer than the table. Names libseccomp does not
// know (newer than the installed version) are skipped by libcontainer.

/// Allowed for every container, whatever its capabilities. ptrace and
/// process_vm_{readv,writev} are here as containerd adds them for kernels
/// from 4.8 on (where ptrace can no longer bypass seccomp).
const ALLOWED: &str = "
    _llseek _newselect accept accept4 access adjtimex alarm bind brk cachestat
    capget capset chdir chmod chown chown32 clock_adjtime clock_adjtime64
    clock_getres clock_getres_time64 clock_gettime clock_gettime64
    clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd
    eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
    fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
    fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock
    fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
    ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
    futex_waitv futex_wake futimesat get_robust_list get_thread_area getcpu
    getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
    getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
    getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
    getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday
    getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
    inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get
    ioprio_set ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
    listmount listxattr listxattrat llistxattr lremovexattr lseek lsetxattr
    lsm_get_self_attr lsm_list_modules lsm_set_self_attr lstat lstat64 madvise
    map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat
    mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
    mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd
    msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat open
    openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
    pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv
    preadv2 prlimit64 process_mrelease process_vm_readv process_vm_writev
    pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2 read readahead
    readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
    remap_file_pages removexattr removexattrat rename renameat renameat2
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
    rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max
    sched_get_priority_min sched_getaffinity sched_getattr sched_getparam
    sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
    sched_setaffinity sched_setattr sched_setparam sched_setscheduler
    sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64
    send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
    set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32
    setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
    setreuid32 setrlimit setsid setsockopt setuid setuid32 setxattr setxattrat
    shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs
    statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs
    sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
    timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
    timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe
    utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid
    write writev
";

/// Allowed on this architecture only (containerd's "include by arch").
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOWED_ARCH: &[&str] = &[];

/// The seccomp architectures of this machine's ABIs.
///
/// containerd lists x32 too; peapod leaves it out: libseccomp 2.5 compiles
/// the ~365-rule allow list per ABI on every container start, and three
/// ABIs cost ~25 ms per container against ~8 ms for two. x32 binaries are
/// all but extinct (Debian kernels boot with x32 syscalls off); a process
/// that makes one anyway is refused by the filter, never let through.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchArm, Arch::ScmpArchAarch64]
    } else {
        Vec::new()
    }
}

/// Allowed only when the container's bounding set holds the capability
/// (containerd reads the bounding set too).
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// `personality(2)` personas a container may switch to: PER_LINUX,
/// PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the 0xffffffff query.
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// `socket(2)` families refused: AF_ALG (38) and AF_VSOCK (40).
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// The clone(2) flags that create namespaces; without CAP_SYS_ADMIN clone
/// is allowed only when none of them is set.
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn allow(names: Vec<String>) -> Result<LinuxSyscall, OciSpecError> {
    LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActAllow)
        .build()
}

fn allow_if(
    name: &str,
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> Result<LinuxSyscall, OciSpecError> {
    let mut arg = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(v) = value_two {
        arg = arg.value_two(v);
    }
    let arg = arg.build()?;
    LinuxSyscallBuilder::default()
        .names(vec![name.to_string()])
        .action(LinuxSeccompAction::ScmpActAllow)
        .args(vec![arg])
        .build()
}

/// The RuntimeDefault profile for a container whose bounding set is `caps`,
/// as an OCI `linux.seccomp` (masked-equal operands in the OCI/runc order:
/// `value` is the mask, `valueTwo` the expected bits).
pub fn runtime_default_seccomp(caps: &[String]) -> Result<LinuxSeccomp, OciSpecError> {
    let has = |cap: &str| caps.iter().any(|c| c == cap);
    let mut allowed: Vec<String> = ALLOWED
        .split_whitespace()
        .chain(ALLOWED_ARCH.iter().copied())
        .map(str::to_string)
        .collect();
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            for &name in names.iter() {
                if !allowed.iter().any(|n| n == name) {
                    allowed.push(name.to_string());
                }
            }
        }
    }
    let mut syscalls = vec![allow(allowed)?];
    // Each condition its own rule: rules OR, a rule's conditions AND.
    syscalls.push(allow_if(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpLt,
        AF_ALG,
        None,
    )?);
    syscalls.push(allow_if(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpEq,
        AF_ALG + 1,
        None,
    )?);
    syscalls.push(allow_if(
        "socket",
        0,
        LinuxSeccompOperator::ScmpCmpGt,
        AF_VSOCK,
        None,
    )?);
    for &persona in PERSONALITIES {
        syscalls.push(allow_if(
            "personality",
            0,
            LinuxSeccompOperator::ScmpCmpEq,
            persona,
            None,
        )?);
    }
    if !has("CAP_SYS_ADMIN") {
        // Threads and plain forks, but no new namespaces.
        syscalls.push(allow_if(
            "clone",
            0,
            LinuxSeccompOperator::ScmpCmpMaskedEq,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
        )?);
        // clone3's flags sit in a struct seccomp cannot read: ENOSYS makes
        // glibc fall back to clone, which the rule above checks.
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()?,
        );
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_caps_are_in_kernel_bit_order_and_privileged_gets_only_held_ones() {
        assert_eq!(ALL_CAPS.len(), 41);
        assert_eq!(ALL_CAPS[21], "CAP_SYS_ADMIN");
        assert_eq!(ALL_CAPS[24], "CAP_SYS_RESOURCE");
        assert_eq!(ALL_CAPS[40], "CAP_CHECKPOINT_RESTORE");
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let bnd = status
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .expect("CapBnd");
        let caps = capabilities(true, &[], &[]);
        for (bit, c) in ALL_CAPS.iter().enumerate() {
            let held = bnd & (1u64 << bit) != 0;
            assert_eq!(caps.iter().any(|x| x == c), held, "{c}");
        }
        assert_eq!(capabilities(false, &["ALL".into()], &[]), caps);
    }

    use super::*;

    #[test]
    fn add_and_drop() {
        let caps = capabilities(
            false,
            &["NET_ADMIN".into()],
            &["NET_RAW".into(), "kill".into()],
        );
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert!(caps.contains(&"CAP_CHOWN".to_string()));
        let none = capabilities(false, &["NET_BIND_SERVICE".into()], &["ALL".into()]);
        assert_eq!(none, vec!["CAP_NET_BIND_SERVICE".to_string()]);
        // Privileged ignores drops: every capability the daemon holds.
        assert_eq!(capabilities(true, &[], &["ALL".into()]), all_current_caps());
    }

    fn allowed(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    fn rules_for<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == name))
            .collect()
    }

    fn default_profile() -> LinuxSeccomp {
        let caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        runtime_default_seccomp(&caps).unwrap()
    }

    #[test]
    fn runtime_default_is_an_allow_list() {
        let p = default_profile();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(libc::EPERM as u32));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
        );
        let allowed = allowed(&p);
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "fork",
            "wait4",
            "connect",
            "accept4",
            "uname",
            "clock_gettime",
            "rt_sigreturn",
            "exit_group",
        ] {
            assert!(allowed.iter().any(|n| n == name), "{name} must be allowed");
        }
        // Never allowed by default, not even by name.
        for name in [
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "kexec_load",
            "init_module",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "userfaultfd",
            "reboot",
            "clock_settime",
            "settimeofday",
            "swapon",
            "open_by_handle_at",
            "clone3",
        ] {
            assert!(
                !allowed.iter().any(|n| n == name),
                "{name} must not be allowed"
            );
        }
        // No name twice in the table.
        let mut sorted: Vec<&str> = ALLOWED.split_whitespace().collect();
        let n = sorted.len();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), n);
        assert!(n > 300, "{n}");
        // CAP_SYS_CHROOT is a default capability, and chroot comes with it.
        assert!(allowed.iter().any(|n| n == "chroot"));
    }

    #[test]
    fn clone_without_namespace_flags_and_clone3_enosys() {
        let p = default_profile();
        let clone = rules_for(&p, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].action(), LinuxSeccompAction::ScmpActAllow);
        let args = clone[0].args().as_ref().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), CLONE_NAMESPACE_FLAGS);
        assert_eq!(args[0].value_two(), Some(0));
        assert_eq!(CLONE_NAMESPACE_FLAGS, 0x7e02_0000);
        let clone3 = rules_for(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(libc::ENOSYS as u32));

        // With CAP_SYS_ADMIN both are plainly allowed, as are the mount
        // and namespace calls.
        let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        caps.push("CAP_SYS_ADMIN".into());
        let p = runtime_default_seccomp(&caps).unwrap();
        let allowed = allowed(&p);
        for name in [
            "clone",
            "clone3",
            "unshare",
            "setns",
            "mount",
            "umount2",
            "sethostname",
        ] {
            assert!(allowed.iter().any(|n| n == name), "{name}");
        }
        assert_eq!(rules_for(&p, "clone").len(), 1);
        assert_eq!(rules_for(&p, "clone3").len(), 1);
    }

    #[test]
    fn capability_groups_appear_only_with_their_capability() {
        let none = allowed(&runtime_default_seccomp(&[]).unwrap());
        assert!(!none.iter().any(|n| n == "chroot"));
        for (cap, names) in BY_CAPABILITY {
            let p = runtime_default_seccomp(&[cap.to_string()]).unwrap();
            let with = allowed(&p);
            for name in names.iter() {
                assert!(with.iter().any(|n| n == name), "{cap} must allow {name}");
            }
            // Nothing else than the group (and what the base list has).
            for name in with.iter().filter(|n| !none.contains(n)) {
                assert!(names.contains(&name.as_str()), "{cap} allowed {name}");
            }
        }
        // ptrace stays allowed without CAP_SYS_PTRACE (kernel >= 4.8), kcmp
        // does not; bpf comes with CAP_BPF alone, and once with both.
        assert!(none.iter().any(|n| n == "ptrace"));
        assert!(!none.iter().any(|n| n == "kcmp"));
        let both = runtime_default_seccomp(&["CAP_BPF".into(), "CAP_SYS_ADMIN".into()]).unwrap();
        assert_eq!(allowed(&both).iter().filter(|n| *n == "bpf").count(), 1);
    }

    #[test]
    fn argument_rules_for_socket_and_personality() {
        let p = default_profile();
        let socket = rules_for(&p, "socket");
        let conds: Vec<(LinuxSeccompOperator, u64)> = socket
            .iter()
            .map(|s| {
                let a = s.args().as_ref().unwrap();
                assert_eq!(a.len(), 1);
                (a[0].op(), a[0].value())
            })
            .collect();
        // Every family but AF_ALG (38) and AF_VSOCK (40).
        assert_eq!(
            conds,
            vec![
                (LinuxSeccompOperator::ScmpCmpLt, 38),
                (LinuxSeccompOperator::ScmpCmpEq, 39),
                (LinuxSeccompOperator::ScmpCmpGt, 40)
            ]
        );
        let personas: Vec<u64> = rules_for(&p, "personality")
            .iter()
            .map(|s| {
                let a = s.args().as_ref().unwrap();
                assert_eq!(a[0].op(), LinuxSeccompOperator::ScmpCmpEq);
                a[0].value()
            })
            .collect();
        assert_eq!(personas, PERSONALITIES);
    }
}
