//! Network handlers (httpGet, tcpSocket) connect from inside the pod's
//! network namespace: the runtime pins it at a path, and a dedicated
//! thread joins it with setns(CLONE_NEWNET) and does all of its socket
//! work there. Only that short-lived thread ever changes namespace (never
//! a tokio thread); a socket keeps the namespace it was made in.

use std::path::{Path, PathBuf};

/// Run `f` on a new thread in network namespace `netns` (the host's when
/// `None`, as for hostNetwork pods); its result, or an error naming the
/// namespace.
pub fn run_in<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let netns: Option<PathBuf> = netns.map(Path::to_path_buf);
    let h = std::thread::Builder::new()
        .name("peapod-probe".into())
        .spawn(move || {
            if let Some(p) = &netns {
                let f = std::fs::File::open(p).map_err(|e| {
                    format!("open the pod's network namespace {}: {e}", p.display())
                })?;
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    format!("join the pod's network namespace {}: {e}", p.display())
                })?;
            }
            f()
        })
        .map_err(|e| format!("start a probe thread: {e}"))?;
    h.join()
        .map_err(|_| "the probe thread panicked".to_string())?
}
