//! Exec over the streaming URL: a process in a running container with the
//! client's stdio (a pty with `tty`), its exit code on the error stream.
//! Also the SPDY side of every stdio session (exec and attach).

use super::spdy::{self, StreamWriter};
use super::{
    set_winsize, status_json, take_sizes, Outcome, StdIo, StdioOpts, TermSize,
    STREAM_CREATION_TIMEOUT,
};
use crate::{pb, Cri};
use peapod_runtime::Runtime;
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// After the process exits, output still in flight is forwarded for at
/// most this long (a background child may keep a pipe open).
const DRAIN: Duration = Duration::from_secs(2);

pub(super) fn opts(r: &pb::ExecRequest) -> StdioOpts {
    StdioOpts {
        stdin: r.stdin,
        stdout: r.stdout,
        stderr: r.stderr && !r.tty,
        tty: r.tty,
    }
}

pub(super) async fn serve_spdy(cri: Arc<Cri>, req: pb::ExecRequest, conn: spdy::Connection) {
    let o = opts(&req);
    let rt = cri.runtime.clone();
    spdy_stdio(conn, o, move |io| run(rt, req, io)).await;
}

/// Run the exec with `io` until the process exits; its exit code.
pub(super) async fn run(rt: Arc<Runtime>, req: pb::ExecRequest, io: StdIo) -> Outcome {
    let (cid, cmd, tty, stdin) = (
        req.container_id.clone(),
        req.cmd.clone(),
        req.tty,
        req.stdin,
    );
    let r = rt.clone();
    let session = tokio::task::spawn_blocking(move || r.exec(&cid, &cmd, tty, stdin))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut stdin_fd = None;
    let mut pty = None;
    let mut readers = Vec::new();
    for (name, fd) in session.fds {
        let to = match name.as_str() {
            "stdin" => {
                stdin_fd = Some(fd);
                continue;
            }
            "pty" => {
                pty = fd.try_clone().ok();
                if req.stdin {
                    stdin_fd = fd.try_clone().ok();
                }
                io.stdout.clone()
            }
            "stderr" => io.stderr.clone(),
            _ => io.stdout.clone(),
        };
        readers.push(tokio::task::spawn_blocking(move || pump_out(fd, to)));
    }
    pump_in(io.stdin, stdin_fd);
    if let (Some(mut sizes), Some(p)) = (io.resize, pty) {
        tokio::spawn(async move {
            while let Some(s) = sizes.recv().await {
                set_winsize(p.as_fd(), s);
            }
        });
    }
    drop(io.stdout);
    drop(io.stderr);
    let (cid, exec_id) = (req.container_id.clone(), session.exec_id.clone());
    let exit = tokio::task::spawn_blocking(move || rt.wait_exec(&cid, &exec_id))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let _ = tokio::time::timeout(DRAIN, futures_util::future::join_all(readers)).await;
    Ok(exit.code)
}

/// Copy an output fd to `to` (or discard it) until EOF.
pub(super) fn pump_out(fd: OwnedFd, to: Option<mpsc::Sender<Vec<u8>>>) {
    let mut f = std::fs::File::from(fd);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(tx) = &to {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Copy the client's stdin into `fd` until the client closes it; then
/// close `fd` (the process reads EOF).
pub(super) fn pump_in(rx: Option<mpsc::UnboundedReceiver<Vec<u8>>>, fd: Option<OwnedFd>) {
    let (Some(mut rx), Some(fd)) = (rx, fd) else {
        return;
    };
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        while let Some(d) = rx.blocking_recv() {
            if f.write_all(&d).is_err() {
                return;
            }
        }
    });
}

/// Forward an output channel to a SPDY stream, then close the stream.
fn forward(w: StreamWriter) -> (mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let h = tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            if !w.send(d).await {
                break;
            }
        }
        w.close().await;
    });
    (tx, h)
}

/// A remotecommand v4 session over SPDY: wait for the streams the client
/// opens (error, and stdin/stdout/stderr/resize as asked), run `run` with
/// them, write its outcome on the error stream, close.
pub(super) async fn spdy_stdio<F, Fut>(mut conn: spdy::Connection, o: StdioOpts, run: F)
where
    F: FnOnce(StdIo) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut error: Option<spdy::Stream> = None;
    let mut stdin = None;
    let mut stdout = None;
    let mut stderr = None;
    let mut resize = None;
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    loop {
        let complete = error.is_some()
            && (stdin.is_some() || !o.stdin)
            && (stdout.is_some() || !o.stdout)
            && (stderr.is_some() || !o.stderr)
            && (resize.is_some() || !o.tty);
        if complete {
            break;
        }
        let s = match tokio::time::timeout_at(deadline, conn.streams.recv()).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(_) => {
                if let Some(e) = &error {
                    let msg = "timed out waiting for the client to create streams".to_string();
                    e.writer.send(status_json(&Err(msg))).await;
                    e.writer.close().await;
                }
                conn.close().await;
                return;
            }
        };
        s.writer.reply().await;
        match s.header("streamtype") {
            Some("error") => error = Some(s),
            Some("stdin") => stdin = Some(s),
            Some("stdout") => stdout = Some(s),
            Some("stderr") => stderr = Some(s),
            Some("resize") => resize = Some(s),
            other => tracing::debug!("streaming: ignoring stream type {other:?}"),
        }
    }
    // Streams opened later than expected are accepted and ignored.
    let mut extra = std::mem::replace(&mut conn.streams, mpsc::channel(1).1);
    let extras = tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Some(s) = extra.recv().await {
            s.writer.reply().await;
            keep.push(s);
        }
    });
    let Some(error) = error else { return };
    let mut forwarders = Vec::new();
    let mut out = |s: Option<spdy::Stream>| {
        s.map(|s| {
            let (tx, h) = forward(s.writer.clone());
            forwarders.push((h, s));
            tx
        })
    };
    let stdout_tx = out(stdout);
    let stderr_tx = out(stderr);
    let resize_rx = resize.map(|mut s| {
        let (tx, rx) = mpsc::unbounded_channel::<TermSize>();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(d) = s.data.recv().await {
                buf.extend_from_slice(&d);
                for size in take_sizes(&mut buf) {
                    let _ = tx.send(size);
                }
            }
        });
        rx
    });
    let io = StdIo {
        stdin: stdin.map(|s| s.data),
        resize: resize_rx,
        stdout: stdout_tx,
        stderr: stderr_tx,
    };
    let outcome = run(io).await;
    for (h, _stream) in forwarders {
        let _ = tokio::time::timeout(DRAIN, h).await;
    }
    error.writer.send(status_json(&outcome)).await;
    error.writer.close().await;
    extras.abort();
    conn.close().await;
}
