//! PortForward: TCP connections to ports inside the sandbox's network
//! namespace, over either transport.
//!
//! - SPDY (`portforward.k8s.io`, also when tunnelled in WebSocket
//!   messages): for each connection the client opens an error stream and a
//!   data stream with the same `requestID` and the `port`; the data stream
//!   is joined to a TCP connection to that port, and a failure is written
//!   on the error stream.
//! - WebSocket channels (kubelet's `portforward` websocket handler): one
//!   connection per port the request names, for the whole session; port
//!   `i` has data channel `2i` and error channel `2i+1`, and the first
//!   message the server sends on each is the port, two bytes little-endian.
//!   The session ends when every port's connection has ended.
//!
//! As kubelet, a failure is `error forwarding port <port> to pod <id>: ...`
//! on the port's error stream or channel.

use super::spdy;
use super::websocket::{self, Encoding};
use crate::{pb, Cri};
use axum::extract::ws::WebSocket;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// At most this many ports per WebSocket session: two channels each, and a
/// channel is one byte.
const MAX_WEBSOCKET_PORTS: usize = 127;

/// The sandbox's network namespace, or None if the sandbox is gone.
pub(super) async fn sandbox_netns(cri: &Arc<Cri>, sid: &str) -> Option<Option<PathBuf>> {
    let rt = cri.runtime.clone();
    let sid = sid.to_string();
    match tokio::task::spawn_blocking(move || rt.pod_sandbox_status(&sid)).await {
        Ok(Ok(st)) => Some(st.netns),
        _ => None,
    }
}

/// A TCP connection to `port` on localhost inside `netns` (the host's
/// without one), or the message for the error stream.
async fn connect(sid: &str, netns: Option<PathBuf>, port: u16) -> Result<TcpStream, String> {
    tokio::task::spawn_blocking(move || match netns {
        Some(ns) => peapod_runtime::sandbox_port_forward::connect_port(&ns, port),
        None => std::net::TcpStream::connect(("127.0.0.1", port)),
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .and_then(|s| {
        s.set_nonblocking(true)?;
        TcpStream::from_std(s)
    })
    .map_err(|e| format!("error forwarding port {port} to pod {sid}: {e}"))
}

/// Copy between `tcp` and the client until the pod closes its side (or the
/// client goes away). What the client sends arrives on `from_client`; its
/// end shuts down our writing half, and with `client_end_ends` (a
/// WebSocket, whose end is the session's) ends the copy.
async fn pump<F, Fut>(
    tcp: TcpStream,
    mut from_client: mpsc::UnboundedReceiver<Vec<u8>>,
    client_end_ends: bool,
    mut to_client: F,
) where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = bool>,
{
    let (mut rd, mut wr) = tcp.into_split();
    let mut to_pod = tokio::spawn(async move {
        while let Some(d) = from_client.recv().await {
            if wr.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let from_pod = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !to_client(buf[..n].to_vec()).await {
                        break;
                    }
                }
            }
        }
    };
    if client_end_ends {
        tokio::select! {
            _ = from_pod => {}
            _ = &mut to_pod => {}
        }
    } else {
        from_pod.await;
    }
    to_pod.abort();
}

pub(super) async fn serve_spdy(
    cri: Arc<Cri>,
    req: pb::PortForwardRequest,
    mut conn: spdy::Connection,
) {
    let sid = req.pod_sandbox_id.clone();
    let Some(netns) = sandbox_netns(&cri, &sid).await else {
        // The sandbox went away between the RPC and the connection.
        conn.close().await;
        return;
    };
    // Streams of one request, until both halves are there.
    let mut halves: HashMap<String, (Option<spdy::Stream>, Option<spdy::Stream>)> = HashMap::new();
    while let Some(s) = conn.streams.recv().await {
        s.writer.reply().await;
        let Some(id) = s.header("requestid").map(str::to_string) else {
            tracing::debug!("port-forward: stream {} without requestID", s.id);
            continue;
        };
        let entry = halves.entry(id.clone()).or_default();
        match s.header("streamtype") {
            Some("error") => entry.0 = Some(s),
            Some("data") => entry.1 = Some(s),
            other => {
                tracing::debug!("port-forward: ignoring stream type {other:?}");
                continue;
            }
        }
        if matches!(halves.get(&id), Some((Some(_), Some(_)))) {
            if let Some((Some(err), Some(data))) = halves.remove(&id) {
                tokio::spawn(forward_spdy(sid.clone(), netns.clone(), err, data));
            }
        }
    }
    conn.close().await;
}

/// Join one SPDY data stream to the port it names.
async fn forward_spdy(sid: String, netns: Option<PathBuf>, err: spdy::Stream, data: spdy::Stream) {
    let port = data
        .header("port")
        .or_else(|| err.header("port"))
        .and_then(|p| p.parse::<u16>().ok());
    let tcp = match port {
        Some(port) => connect(&sid, netns, port).await,
        None => Err(format!(
            "error forwarding a port to pod {sid}: the stream has no valid port header"
        )),
    };
    match tcp {
        Ok(tcp) => {
            let w = data.writer.clone();
            // The pod closing its side ends the request, as in kubelet.
            pump(tcp, data.data, false, |d| {
                let w = w.clone();
                async move { w.send(d).await }
            })
            .await;
        }
        Err(msg) => {
            err.writer.send(msg.into_bytes()).await;
        }
    }
    data.writer.close().await;
    err.writer.close().await;
}

/// The ports of a WebSocket session: the request's, or (if it names none)
/// the `port` query parameters, as kubelet's `NewV4Options` reads them.
pub(super) fn websocket_ports(
    req: &pb::PortForwardRequest,
    query: Option<&str>,
) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for &p in &req.port {
        let p = u16::try_from(p)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("port-forward: port {p} in the request is not in 1-65535"))?;
        ports.push(p);
    }
    if ports.is_empty() {
        let q = query.unwrap_or_default();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k != "port" {
                continue;
            }
            for s in v.split(',') {
                let p = s
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| format!("unable to parse {s:?} as a port (1-65535)"))?;
                ports.push(p);
            }
        }
    }
    if ports.is_empty() {
        return Err(
            "port-forward over WebSocket needs the ports up front: none in the request \
             and no \"port\" query parameter"
                .into(),
        );
    }
    check_port_count(ports.len())?;
    Ok(ports)
}

/// A WebSocket session has two one-byte channels per port.
pub(super) fn check_port_count(n: usize) -> Result<(), String> {
    if n > MAX_WEBSOCKET_PORTS {
        return Err(format!(
            "port-forward over WebSocket takes at most {MAX_WEBSOCKET_PORTS} ports, got {n}"
        ));
    }
    Ok(())
}

/// Forward `ports` of `pod` (its id or name, for messages) over one
/// WebSocket: localhost in `netns` (None: the host's), or if there is none
/// the reason, on every port's error channel.
pub(super) async fn serve_websocket(
    pod: String,
    netns: Result<Option<PathBuf>, String>,
    ports: Vec<u16>,
    socket: WebSocket,
    enc: Encoding,
) {
    let (sink, source) = socket.split();
    let (out, sender) = websocket::spawn_sender(sink, enc);
    // What the client sends on port i's data channel goes to inputs[i];
    // anything on an error channel or an unknown one is dropped.
    let mut inputs = Vec::with_capacity(ports.len());
    let mut receivers = Vec::with_capacity(ports.len());
    for _ in &ports {
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        inputs.push(tx);
        receivers.push(rx);
    }
    let reader = websocket::spawn_reader(source, enc, move |ch, data| {
        if ch % 2 == 0 {
            if let Some(tx) = inputs.get(usize::from(ch / 2)) {
                let _ = tx.send(data);
            }
        }
    });
    let mut tasks = Vec::with_capacity(ports.len());
    for (i, (port, from_client)) in ports.into_iter().zip(receivers).enumerate() {
        // i < MAX_WEBSOCKET_PORTS, so both channels fit in a byte.
        let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
        let head = port.to_le_bytes().to_vec();
        let _ = out.send((data_ch, head.clone())).await;
        let _ = out.send((err_ch, head)).await;
        let (out, pod, netns) = (out.clone(), pod.clone(), netns.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = match netns {
                Ok(ns) => connect(&pod, ns, port).await,
                Err(why) => Err(format!("error forwarding port {port} to pod {pod}: {why}")),
            };
            match tcp {
                Ok(tcp) => {
                    pump(tcp, from_client, true, |d| {
                        let out = out.clone();
                        async move { out.send((data_ch, d)).await.is_ok() }
                    })
                    .await
                }
                Err(msg) => {
                    tracing::debug!("port-forward: {msg}");
                    let _ = out.send((err_ch, msg.into_bytes())).await;
                }
            }
        }));
    }
    futures_util::future::join_all(tasks).await;
    drop(out);
    let _ = sender.await;
    websocket::await_client_close(reader).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ports: &[i32]) -> pb::PortForwardRequest {
        pb::PortForwardRequest {
            pod_sandbox_id: "sb".into(),
            port: ports.to_vec(),
        }
    }

    #[test]
    fn websocket_ports_come_from_the_request_else_the_query() {
        assert_eq!(
            websocket_ports(&req(&[80, 8080]), Some("port=1")),
            Ok(vec![80, 8080])
        );
        assert_eq!(
            websocket_ports(&req(&[]), Some("port=80,81&port=9000&x=1")),
            Ok(vec![80, 81, 9000])
        );
        let none = websocket_ports(&req(&[]), None).unwrap_err();
        assert!(none.contains("\"port\" query parameter"), "{none}");
        let bad = websocket_ports(&req(&[]), Some("port=http")).unwrap_err();
        assert!(bad.contains("\"http\""), "{bad}");
        assert!(websocket_ports(&req(&[0]), None).is_err());
        assert!(websocket_ports(&req(&[70000]), None).is_err());
        let many: Vec<i32> = (1..=128).collect();
        assert!(websocket_ports(&req(&many), None)
            .unwrap_err()
            .contains("at most 127"));
    }
}
