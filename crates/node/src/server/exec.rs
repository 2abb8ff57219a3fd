//! GET .../pods/{name}/exec: the Kubernetes websocket exec protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`). Each binary message starts
//! with its channel: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, and
//! (v5) 255 close. The process's stdio fds come from the shim (SCM_RIGHTS)
//! and are pumped here directly.

use super::logs::pick_container;
use super::{internal, pod_not_found, query_params, status_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

struct ExecArgs {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    tty: bool,
}

fn parse(q: Option<&str>) -> ExecArgs {
    let mut a = ExecArgs {
        command: Vec::new(),
        container: None,
        stdin: false,
        tty: false,
    };
    for (k, v) in query_params(q) {
        match k.as_str() {
            "command" => a.command.push(v),
            "container" => a.container = Some(v),
            "stdin" => a.stdin = matches!(v.as_str(), "1" | "true"),
            "tty" => a.tty = matches!(v.as_str(), "1" | "true"),
            _ => {}
        }
    }
    a
}

pub async fn exec(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let args = parse(q.as_deref());
    let pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    if args.command.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least one command for the container",
        );
    }
    let container = match pick_container(&pod, args.container.as_ref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let found = node.find_container_async(&pod, &container).await;
    let running = found
        .as_ref()
        .is_some_and(|c| c.state == peapod_runtime::ContainerState::Running);
    let uid = found.map(|c| c.id).unwrap_or_default();
    if !running {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unable to upgrade connection: container not found (\"{container}\")"),
        );
    }
    let ws = ws.protocols(PROTOCOLS);
    let v5 = ws
        .selected_protocol()
        .map(|p| p.as_bytes() == PROTOCOLS[0].as_bytes())
        .unwrap_or(false);
    ws.on_upgrade(move |socket| session(node, uid, args, socket, v5))
}

fn status_json(code: Result<i32, String>) -> Vec<u8> {
    let v = match code {
        Ok(0) => serde_json::json!({ "metadata": {}, "status": "Success" }),
        Ok(c) => serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command, exit status {c}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": c.to_string() }] },
        }),
        Err(m) => {
            serde_json::json!({ "metadata": {}, "status": "Failure", "message": m, "reason": "InternalError" })
        }
    };
    let mut out = vec![3u8];
    out.extend(serde_json::to_vec(&v).unwrap_or_default());
    out
}

/// The exit code of an exec'd process, or why it is unknown.
fn exit_code(
    r: Result<
        Result<peapod_runtime::ExecExit, peapod_runtime::RuntimeError>,
        tokio::task::JoinError,
    >,
) -> Result<i32, String> {
    match r {
        Ok(Ok(info)) => Ok(info.code),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn set_winsize(fd: &OwnedFd, data: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    if let Ok(s) = serde_json::from_slice::<Size>(data) {
        let ws = libc::winsize {
            ws_row: s.height,
            ws_col: s.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a `winsize` we own from a valid pty fd.
        unsafe {
            libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

async fn session(node: Arc<Node>, uid: String, args: ExecArgs, socket: WebSocket, v5: bool) {
    let (mut sink, mut source) = socket.split();
    let rt = node.runtime.clone();
    let (u, cmd) = (uid.clone(), args.command.clone());
    let (tty, stdin) = (args.tty, args.stdin);
    let started = tokio::task::spawn_blocking(move || rt.exec(&u, &cmd, tty, stdin)).await;
    let session = match started {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let _ = sink
                .send(Message::Binary(Bytes::from(status_json(
                    Err(e.to_string()),
                ))))
                .await;
            let _ = sink.close().await;
            return;
        }
        Err(e) => {
            let _ = sink
                .send(Message::Binary(Bytes::from(status_json(
                    Err(e.to_string()),
                ))))
                .await;
            return;
        }
    };

    // Output: one blocking reader per stream, into one channel.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(32);
    let mut stdin_fd: Option<OwnedFd> = None;
    let mut pty: Option<OwnedFd> = None;
    let mut readers = Vec::new();
    for (name, fd) in session.fds {
        let channel = match name.as_str() {
            "stdin" => {
                stdin_fd = Some(fd);
                continue;
            }
            "stderr" => 2u8,
            "pty" => {
                if let Ok(dup) = fd.try_clone() {
                    pty = Some(dup);
                }
                if args.stdin {
                    if let Ok(dup) = fd.try_clone() {
                        stdin_fd = Some(dup);
                    }
                }
                1u8
            }
            _ => 1u8,
        };
        let tx = out_tx.clone();
        readers.push(tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::from(fd);
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut msg = Vec::with_capacity(n + 1);
                        msg.push(channel);
                        msg.extend_from_slice(&buf[..n]);
                        if tx.blocking_send(msg).is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    drop(out_tx);

    // Input: stdin bytes and resizes go to a writer thread.
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    if let Some(fd) = stdin_fd {
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(fd);
            while let Ok(Some(data)) = in_rx.recv() {
                if f.write_all(&data).is_err() {
                    break;
                }
            }
        });
    }
    let reader_task = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&ch, rest)) = data.split_first() else {
                continue;
            };
            match ch {
                0 => {
                    let _ = in_tx.send(Some(rest.to_vec()));
                }
                4 => {
                    if let Some(p) = &pty {
                        set_winsize(p, rest);
                    }
                }
                255 if v5 && rest.first() == Some(&0) => {
                    let _ = in_tx.send(None);
                }
                _ => {}
            }
        }
    });

    let rt = node.runtime.clone();
    let exec_id = session.exec_id.clone();
    let mut wait = tokio::task::spawn_blocking(move || rt.wait_exec(&uid, &exec_id));
    // Forward output until the process exits; then drain what is left.
    let mut outputs_open = true;
    let code = loop {
        tokio::select! {
            msg = out_rx.recv(), if outputs_open => match msg {
                Some(m) => {
                    if sink.send(Message::Binary(Bytes::from(m))).await.is_err() {
                        break exit_code((&mut wait).await);
                    }
                }
                None => outputs_open = false,
            },
            r = &mut wait => {
                // Output may still be in flight: drain for a short while.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                while let Ok(Some(m)) = tokio::time::timeout_at(deadline, out_rx.recv()).await {
                    if sink.send(Message::Binary(Bytes::from(m))).await.is_err() {
                        break;
                    }
                }
                break exit_code(r);
            }
        }
    };
    let _ = sink
        .send(Message::Binary(Bytes::from(status_json(code))))
        .await;
    let _ = sink.close().await;
    reader_task.abort();
    for r in readers {
        r.abort();
    }
}
