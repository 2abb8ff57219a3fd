//! Exec and attach over WebSocket (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`): every binary message starts with its channel,
//! 0 stdin, 1 stdout, 2 stderr, 3 error (the final Status), 4 resize and,
//! in v5, 255 close (`[255, 0]`: the client closed stdin).

use super::{
    attach, exec, status_json, Pending, StdIo, StdioOpts, TermSize, PROTOCOL_V4, PROTOCOL_V5,
};
use crate::Cri;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) fn upgrade(cri: Arc<Cri>, pending: Pending, ws: WebSocketUpgrade) -> Response {
    if matches!(pending, Pending::PortForward(_)) {
        return (
            StatusCode::BAD_REQUEST,
            "port-forward is served over SPDY/3.1 (portforward.k8s.io) only",
        )
            .into_response();
    }
    let ws = ws.protocols([PROTOCOL_V5, PROTOCOL_V4]);
    let v5 = ws
        .selected_protocol()
        .is_some_and(|p| p.as_bytes() == PROTOCOL_V5.as_bytes());
    ws.on_upgrade(move |socket| session(cri, pending, socket, v5))
}

async fn session(cri: Arc<Cri>, pending: Pending, socket: WebSocket, v5: bool) {
    let o: StdioOpts = match &pending {
        Pending::Exec(r) => exec::opts(r),
        Pending::Attach(r) => attach::opts(r),
        Pending::PortForward(_) => return,
    };
    let (mut sink, mut source) = socket.split();
    // Everything we send goes through one channel, already prefixed.
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(32);
    let sender = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(Message::Binary(Bytes::from(m))).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let output = |channel: u8| {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
        let out = out_tx.clone();
        let h = tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                let mut m = Vec::with_capacity(d.len() + 1);
                m.push(channel);
                m.extend_from_slice(&d);
                if out.send(m).await.is_err() {
                    return;
                }
            }
        });
        (tx, h)
    };
    let (stdout, h1) = output(1);
    let (stderr, h2) = output(2);
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (resize_tx, resize_rx) = mpsc::unbounded_channel::<TermSize>();
    let reader = tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
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
                    if let Some(tx) = &stdin_tx {
                        let _ = tx.send(rest.to_vec());
                    }
                }
                4 => {
                    if let Ok(s) = serde_json::from_slice::<TermSize>(rest) {
                        let _ = resize_tx.send(s);
                    }
                }
                255 if v5 && rest.first() == Some(&0) => stdin_tx = None,
                _ => {}
            }
        }
    });
    let io = StdIo {
        stdin: o.stdin.then_some(stdin_rx),
        resize: o.tty.then_some(resize_rx),
        stdout: o.stdout.then_some(stdout),
        stderr: o.stderr.then_some(stderr),
    };
    let outcome = match pending {
        Pending::Exec(r) => exec::run(cri, r, io).await,
        Pending::Attach(r) => attach::run(cri, r, io).await,
        Pending::PortForward(_) => Ok(0),
    };
    // Output a lingering background child still writes is cut off.
    let drain = std::time::Duration::from_secs(2);
    let _ = tokio::time::timeout(drain, h1).await;
    let _ = tokio::time::timeout(drain, h2).await;
    let mut status = vec![3u8];
    status.extend(status_json(&outcome));
    let _ = out_tx.send(status).await;
    drop(out_tx);
    let _ = sender.await;
    // Wait for the client's close before dropping the socket: closing it
    // with the client's last frames unread resets the connection, and a
    // reset throws away what the client has not read yet (the status).
    let mut reader = reader;
    if tokio::time::timeout(drain, &mut reader).await.is_err() {
        reader.abort();
    }
}
