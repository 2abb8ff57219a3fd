//! Attach over the streaming URL: a running container's output and, for a
//! `stdin: true` container, its stdin.
//!
//! Output: the shim hands over pipes that get a copy of everything the
//! container writes from now on (`AttachOutput`; its CRI log file would
//! hold a partial line back until its newline). Stdin and the pty (for
//! resizes) are handed over by the shim too (`AttachStdin`).

use super::exec::spdy_stdio;
use super::{set_winsize, spdy, Outcome, StdIo, StdioOpts};
use crate::{pb, Cri};
use peapod_runtime::Runtime;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where one of the container's streams goes, if the client asked for it.
type Output = Option<mpsc::Sender<Vec<u8>>>;

pub(super) fn opts(r: &pb::AttachRequest) -> StdioOpts {
    StdioOpts {
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr && !r.tty,
        tty: r.tty,
    }
}

pub(super) async fn serve_spdy(cri: Arc<Cri>, req: pb::AttachRequest, conn: spdy::Connection) {
    let o = opts(&req);
    let rt = cri.runtime.clone();
    spdy_stdio(conn, o, move |io| run(rt, req, io)).await;
}

/// Attach until the container's output ends (it exited), the client
/// closes its stdin, or the client goes away.
pub(super) async fn run(rt: Arc<Runtime>, req: pb::AttachRequest, io: StdIo) -> Outcome {
    let cid = req.container_id.clone();
    let want_stdin = req.stdin;
    let (outputs, stdin) = tokio::task::spawn_blocking(move || {
        let outputs = rt.attach_output(&cid)?;
        let stdin = if want_stdin {
            rt.attach_stdin(&cid)?
        } else {
            None
        };
        Ok::<_, peapod_runtime::RuntimeError>((outputs, stdin))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    // As containerd: the client closing stdin ends the attach (the
    // container's own stdin stays open for the next one).
    let mut stdin_closed = None;
    if let Some((kind, fd)) = stdin {
        if kind == "pty" {
            if let (Some(mut sizes), Ok(p)) = (io.resize, fd.try_clone()) {
                tokio::spawn(async move {
                    while let Some(s) = sizes.recv().await {
                        set_winsize(p.as_fd(), s);
                    }
                });
            }
        }
        stdin_closed = Some(pump_stdin(io.stdin, fd));
    }
    let mut copies = tokio::task::JoinSet::new();
    for (name, fd) in outputs {
        let to = match name.as_str() {
            "stderr" if !req.tty => io.stderr.clone(),
            _ => io.stdout.clone(),
        };
        copies.spawn(copy(fd, to));
    }
    drop(io.stdout);
    drop(io.stderr);
    let all_done = async { while copies.join_next().await.is_some() {} };
    match stdin_closed {
        Some(closed) => {
            tokio::select! {
                _ = all_done => {}
                _ = closed => {
                    // What the container answers to the last input still
                    // comes through, briefly.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        None => all_done.await,
    }
    Ok(0)
}

/// Copy one of the shim's output pipes to `to` until it ends.
async fn copy(fd: std::os::fd::OwnedFd, to: Output) {
    use tokio::io::AsyncReadExt;
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd) else {
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(tx) = &to {
                    if tx.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Copy the client's stdin into the container's; the receiver fires once
/// the client closed it.
fn pump_stdin(
    rx: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
    fd: std::os::fd::OwnedFd,
) -> tokio::sync::oneshot::Receiver<()> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let Some(mut rx) = rx else {
        // No stdin stream from the client: nothing ever closes it.
        std::mem::forget(done_tx);
        return done_rx;
    };
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::from(fd);
        while let Some(d) = rx.blocking_recv() {
            if f.write_all(&d).is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    done_rx
}
