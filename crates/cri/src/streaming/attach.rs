//! Attach over the streaming URL: a running container's output and, for a
//! `stdin: true` container, its stdin.
//!
//! Output comes from the container's CRI log file, followed from its end
//! (the shim writes every byte of the container's stdout/stderr there, so
//! nothing needs fanning out); stdin and the pty (for resizes) are handed
//! over by the shim (`AttachStdin`).

use super::exec::spdy_stdio;
use super::{set_winsize, spdy, Outcome, StdIo, StdioOpts};
use crate::{pb, Cri};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const POLL: Duration = Duration::from_millis(50);

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
    spdy_stdio(conn, o, move |io| run(cri, req, io)).await;
}

/// Attach until the container exits or the client goes away.
pub(super) async fn run(cri: Arc<Cri>, req: pb::AttachRequest, io: StdIo) -> Outcome {
    let rt = cri.runtime.clone();
    let cid = req.container_id.clone();
    let want_stdin = req.stdin;
    let (status, stdin) = tokio::task::spawn_blocking(move || {
        let st = rt.container_status(&cid)?;
        let stdin = if want_stdin {
            rt.attach_stdin(&cid)?
        } else {
            None
        };
        Ok::<_, peapod_runtime::RuntimeError>((st, stdin))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if status.state != peapod_runtime::ContainerState::Running {
        return Err(format!(
            "container {} is not running; attach needs a running container",
            req.container_id
        ));
    }
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
    let (stdout, stderr) = if req.tty {
        (io.stdout.clone(), io.stdout)
    } else {
        (io.stdout, io.stderr)
    };
    follow(
        cri,
        req.container_id,
        status.log_path,
        (stdout, stderr),
        stdin_closed,
    )
    .await;
    Ok(0)
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

/// Forward what is appended to the CRI log file at `path` until the
/// container stops running (then what is left) or nobody listens.
async fn follow(
    cri: Arc<Cri>,
    cid: String,
    path: PathBuf,
    (stdout, stderr): (Output, Output),
    mut stdin_closed: Option<tokio::sync::oneshot::Receiver<()>>,
) {
    let mut file: Option<(std::fs::File, u64)> = None;
    // Start at the current end: attach shows what comes next.
    if let Ok(mut f) = std::fs::File::open(&path) {
        if let (Ok(_), Ok(m)) = (f.seek(SeekFrom::End(0)), f.metadata()) {
            file = Some((f, m.ino()));
        }
    }
    let mut partial = Vec::new();
    let mut since_check = Duration::ZERO;
    let mut last_round = false;
    loop {
        // A rotated file (new inode at the path) is read from its start.
        if let Ok(m) = std::fs::metadata(&path) {
            if file.as_ref().map(|(_, ino)| *ino) != Some(m.ino()) {
                file = std::fs::File::open(&path).ok().map(|f| (f, m.ino()));
                partial.clear();
            }
        }
        if let Some((f, _)) = file.as_mut() {
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            partial.extend_from_slice(&buf);
            while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=nl).collect();
                if let Some((stream, msg)) = parse_line(&line[..line.len() - 1]) {
                    let to = if stream == "stderr" { &stderr } else { &stdout };
                    if let Some(tx) = to {
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if last_round {
            return;
        }
        if let Some(rx) = stdin_closed.as_mut() {
            if !matches!(
                rx.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty)
            ) {
                // What the container wrote in answer is read once more.
                last_round = true;
                tokio::time::sleep(POLL).await;
                continue;
            }
        }
        if stdout
            .as_ref()
            .or(stderr.as_ref())
            .is_some_and(|t| t.is_closed())
        {
            return;
        }
        tokio::time::sleep(POLL).await;
        since_check += POLL;
        if since_check >= Duration::from_millis(250) {
            since_check = Duration::ZERO;
            let rt = cri.runtime.clone();
            let id = cid.clone();
            let running = tokio::task::spawn_blocking(move || rt.container_status(&id))
                .await
                .ok()
                .and_then(|r| r.ok())
                .is_some_and(|s| s.state == peapod_runtime::ContainerState::Running);
            if !running {
                // The shim writes the last records before it reports the
                // exit; one more read picks them up.
                last_round = true;
            }
        }
    }
}

/// A CRI log line (`<time> <stream> <P|F> <message>`): its stream and the
/// bytes it carries (a full line gets its newline back).
fn parse_line(line: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let _time = parts.next()?;
    let stream = String::from_utf8_lossy(parts.next()?).into_owned();
    let tag = parts.next()?;
    let mut msg = parts.next().unwrap_or_default().to_vec();
    if !tag.starts_with(b"P") {
        msg.push(b'\n');
    }
    Some((stream, msg))
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn log_lines_give_stream_and_bytes() {
        assert_eq!(
            parse_line(b"2026-11-30T10:00:00.000000000Z stdout F hello world"),
            Some(("stdout".into(), b"hello world\n".to_vec()))
        );
        assert_eq!(
            parse_line(b"2026-11-30T10:00:00.000000000Z stderr P part"),
            Some(("stderr".into(), b"part".to_vec()))
        );
        assert_eq!(
            parse_line(b"2026-11-30T10:00:00.000000000Z stdout F "),
            Some(("stdout".into(), b"\n".to_vec()))
        );
        assert_eq!(parse_line(b"garbage"), None);
    }
}
