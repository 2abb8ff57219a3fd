//! GET .../pods/{name}/portforward?ports=PORT: Kubernetes' websocket
//! port-forward protocol (`v4.channel.k8s.io`, `portforward.k8s.io`), one
//! connection to one port per websocket. Channel 0 carries the data,
//! channel 1 errors; the first message on each channel is the port
//! (2 bytes, little-endian). The daemon connects to the port on the pod's
//! loopback from inside its network namespace.

use super::{internal, pod_not_found, query_params, status_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROTOCOLS: [&str; 2] = ["v4.channel.k8s.io", "portforward.k8s.io"];
const DATA: u8 = 0;
const ERROR: u8 = 1;

fn bad_request(msg: &str) -> Response {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

pub async fn portforward(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let ports: Vec<String> = query_params(q.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "ports")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let port = match ports.as_slice() {
        [p] => match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return bad_request(&format!("invalid port {p:?}: must be 1 to 65535")),
        },
        [] => return bad_request("query parameter \"ports\" is required"),
        _ => return bad_request("one port per connection: give \"ports\" once"),
    };
    let pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    if phase != "Running" {
        return bad_request(&format!(
            "unable to forward port because pod is not running. Current status={phase}"
        ));
    }
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let n = node.clone();
    let sandbox = tokio::task::spawn_blocking(move || {
        let sid = n.current_sandbox(&pod)?;
        n.runtime.pod_sandbox_status(&sid).ok()
    })
    .await
    .ok()
    .flatten();
    let netns: PathBuf = match sandbox {
        Some(s) if s.state == peapod_runtime::SandboxState::Ready => match s.netns {
            Some(p) if !host_network => p,
            _ => PathBuf::from("/proc/self/ns/net"),
        },
        _ => {
            return bad_request(&format!(
                "unable to forward port because pod {name:?} has no running sandbox"
            ))
        }
    };
    ws.protocols(PROTOCOLS)
        .on_upgrade(move |socket| session(socket, netns, port, name))
}

async fn session(socket: WebSocket, netns: PathBuf, port: u16, pod: String) {
    let (mut sink, mut source) = socket.split();
    let p = port.to_le_bytes();
    for ch in [DATA, ERROR] {
        if sink
            .send(Message::Binary(Bytes::from(vec![ch, p[0], p[1]])))
            .await
            .is_err()
        {
            return;
        }
    }
    let ns = netns.clone();
    let conn = tokio::task::spawn_blocking(move || {
        peapod_runtime::sandbox_port_forward::connect_port(&ns, port)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    let stream = match conn.and_then(|s| {
        s.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            let mut msg = vec![ERROR];
            msg.extend_from_slice(
                format!("error forwarding port {port} to pod {pod}: {e}").as_bytes(),
            );
            let _ = sink.send(Message::Binary(Bytes::from(msg))).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (mut rd, mut wr) = stream.into_split();
    let up = async {
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if data.first() == Some(&DATA) && wr.write_all(&data[1..]).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut msg = Vec::with_capacity(n + 1);
                    msg.push(DATA);
                    msg.extend_from_slice(&buf[..n]);
                    if sink.send(Message::Binary(Bytes::from(msg))).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    // The pod closing its side ends the session; the client closing
    // its side half-closes the pod's.
    tokio::pin!(down);
    tokio::select! {
        _ = &mut down => {}
        _ = up => { down.await }
    }
}
