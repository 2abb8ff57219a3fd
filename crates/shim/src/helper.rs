//! The helper: one short-lived process per libcontainer operation.
//!
//! youki's libcontainer changes the process that calls it (oom_score_adj,
//! dumpable flag, working directory) and forks, so the shim never calls it
//! itself: it fork+execs `peapod shim-helper '<json>'` for each operation.
//! For `create`, the container's stdin/stdout/stderr are the helper's fds
//! 3, 4 and 5 (set up by the shim), or a pty through a console socket. The
//! result is one JSON line on stdout; diagnostics go to stderr.

use crate::protocol::{HelperAction, HelperResult};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

/// Run one helper action; returns the process exit code.
pub fn run(action_json: &str) -> i32 {
    let result = match serde_json::from_str::<HelperAction>(action_json) {
        Ok(action) => match perform(action) {
            Ok(pid) => HelperResult::Ok { pid },
            Err(message) => HelperResult::Error { message },
        },
        Err(e) => HelperResult::Error {
            message: format!("bad helper request: {e}"),
        },
    };
    let code = matches!(result, HelperResult::Error { .. }) as i32;
    match serde_json::to_string(&result) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("cannot encode helper result: {e}"),
    }
    code
}

/// Take ownership of an inherited fd.
fn inherited(fd: i32) -> OwnedFd {
    // SAFETY: the shim set fds 3..=5 up with dup2 before exec for `create`
    // and `exec` without a tty; nothing else in this process uses them.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Give the container the helper's fds 3, 4, 5 as stdin, stdout, stderr.
fn with_inherited_stdio(builder: ContainerBuilder) -> ContainerBuilder {
    builder
        .with_stdin(inherited(3))
        .with_stdout(inherited(4))
        .with_stderr(inherited(5))
}

fn load(root: &Path, id: &str) -> Result<Container, String> {
    Container::load(root.join(id)).map_err(|e| format!("container {id}: cannot load state: {e}"))
}

/// Applies the container's seccomp profile to an exec'd process right
/// before it execs. libcontainer 0.7 rebuilds the `linux` section for
/// tenant (exec) processes without the container's seccomp profile; runc
/// applies it, and so does peapod, here. This runs after capabilities are
/// dropped, so the process spec carries no_new_privs (set by the runtime).
#[derive(Clone)]
struct SeccompExecutor {
    profile: LinuxSeccomp,
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        libcontainer::seccomp::initialize_seccomp(&self.profile).map_err(|e| {
            ExecutorError::Other(format!("cannot apply the container's seccomp profile: {e}"))
        })?;
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

fn container_seccomp(root: &Path, id: &str) -> Result<Option<LinuxSeccomp>, String> {
    let c = load(root, id)?;
    let path = c.bundle().join("config.json");
    let spec = Spec::load(&path).map_err(|e| format!("container {id}: {}: {e}", path.display()))?;
    Ok(spec.linux().as_ref().and_then(|l| l.seccomp().clone()))
}

/// The propagation a mount's options ask for, as mount(2) flags.
fn propagation_flags(options: &[String]) -> Option<nix::mount::MsFlags> {
    use nix::mount::MsFlags as F;
    options.iter().rev().find_map(|o| match o.as_str() {
        "rprivate" => Some(F::MS_PRIVATE | F::MS_REC),
        "private" => Some(F::MS_PRIVATE),
        "rslave" => Some(F::MS_SLAVE | F::MS_REC),
        "slave" => Some(F::MS_SLAVE),
        "rshared" => Some(F::MS_SHARED | F::MS_REC),
        "shared" => Some(F::MS_SHARED),
        _ => None,
    })
}

/// Give each of the container's mounts the propagation its options ask
/// for (rprivate, rslave, rshared), in spec order, as runc does right
/// after each mount. libcontainer 0.7 parses these options and then drops
/// them: its binds keep whatever their source had (a mount that should be
/// private still sees the host's new mounts; a bidirectional one only
/// receives).
///
/// The container's init has made its mounts and pivoted, and waits for
/// start: this process joins its mount namespace and root (the helper is
/// single-threaded and exits right after, so changing its own namespace
/// and root is fine) and sets the propagation on each destination as the
/// container sees it.
fn apply_mount_propagation(pid: i32, bundle: &Path) -> Result<(), String> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let wanted: Vec<(std::path::PathBuf, nix::mount::MsFlags)> = spec
        .mounts()
        .iter()
        .flatten()
        .filter_map(|m| {
            let flags = propagation_flags(m.options().as_deref().unwrap_or_default())?;
            Some((m.destination().clone(), flags))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let open =
        |p: String| std::fs::File::open(&p).map_err(|e| format!("mount propagation: {p}: {e}"));
    let ns = open(format!("/proc/{pid}/ns/mnt"))?;
    let root = open(format!("/proc/{pid}/root"))?;
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("mount propagation: join the mount namespace of {pid}: {e}"))?;
    use std::os::fd::AsRawFd;
    nix::unistd::fchdir(root.as_raw_fd())
        .and_then(|()| nix::unistd::chroot("."))
        .map_err(|e| format!("mount propagation: enter the root of {pid}: {e}"))?;
    for (dest, flags) in wanted {
        nix::mount::mount(None::<&str>, &dest, None::<&str>, flags, None::<&str>).map_err(|e| {
            format!(
                "mount {}: cannot set its propagation ({flags:?}): {e}",
                dest.display()
            )
        })?;
    }
    Ok(())
}

fn perform(action: HelperAction) -> Result<Option<i32>, String> {
    match action {
        HelperAction::Create {
            root,
            id,
            bundle,
            console_socket,
        } => {
            let mut builder = ContainerBuilder::new(id.clone(), SyscallType::default())
                .with_root_path(&root)
                .map_err(|e| format!("container {id}: state root {}: {e}", root.display()))?
                .with_console_socket(console_socket.as_ref());
            if console_socket.is_none() {
                builder = with_inherited_stdio(builder);
            }
            let mut container = builder
                .validate_id()
                .map_err(|e| format!("container {id}: invalid id: {e}"))?
                .as_init(&bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(|e| format!("container {id}: create failed: {e}"))?;
            let pid = container.pid().map(|p| p.as_raw());
            if let Err(e) = pid
                .ok_or_else(|| "no init pid".to_string())
                .and_then(|pid| apply_mount_propagation(pid, &bundle))
            {
                // The container is not what was asked: none of it stays.
                let _ = container.delete(true);
                return Err(format!("container {id}: {e}"));
            }
            Ok(pid)
        }
        HelperAction::Start { root, id } => {
            let mut c = load(&root, &id)?;
            c.start()
                .map_err(|e| format!("container {id}: start failed: {e}"))?;
            Ok(c.pid().map(|p| p.as_raw()))
        }
        HelperAction::Exec {
            root,
            id,
            process_json,
            console_socket,
        } => {
            let seccomp = container_seccomp(&root, &id)?;
            let mut builder = ContainerBuilder::new(id.clone(), SyscallType::default())
                .with_root_path(&root)
                .map_err(|e| format!("container {id}: state root {}: {e}", root.display()))?
                .with_console_socket(console_socket.as_ref());
            if console_socket.is_none() {
                builder = with_inherited_stdio(builder);
            }
            if let Some(profile) = seccomp {
                builder = builder.with_executor(SeccompExecutor { profile });
            }
            let pid = builder
                .as_tenant()
                .with_process(Some(&process_json))
                .with_detach(true)
                .build()
                .map_err(|e| format!("container {id}: exec failed: {e}"))?;
            Ok(Some(pid.as_raw()))
        }
        HelperAction::Kill {
            root,
            id,
            signal,
            all,
        } => {
            let mut c = load(&root, &id)?;
            let sig = Signal::try_from(signal).map_err(|e| format!("signal {signal}: {e}"))?;
            c.kill(sig, all)
                .map_err(|e| format!("container {id}: kill failed: {e}"))?;
            Ok(None)
        }
        HelperAction::Delete { root, id } => {
            if !root.join(&id).exists() {
                return Ok(None);
            }
            let mut c = load(&root, &id)?;
            c.delete(true)
                .map_err(|e| format!("container {id}: delete failed: {e}"))?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::propagation_flags;
    use nix::mount::MsFlags as F;

    #[test]
    fn propagation_options_become_flags_the_last_winning() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(propagation_flags(&o(&["rbind", "ro"])), None);
        assert_eq!(
            propagation_flags(&o(&["rbind", "rslave"])),
            Some(F::MS_SLAVE | F::MS_REC)
        );
        assert_eq!(
            propagation_flags(&o(&["rprivate", "rshared", "ro"])),
            Some(F::MS_SHARED | F::MS_REC)
        );
        assert_eq!(propagation_flags(&o(&["private"])), Some(F::MS_PRIVATE));
    }
}
