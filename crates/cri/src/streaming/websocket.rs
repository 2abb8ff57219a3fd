//! The WebSocket side of the streaming server. Every data message carries
//! its channel ([`Encoding`]):
//!
//! - exec and attach (`v5.channel.k8s.io`, `v4.channel.k8s.io`,
//!   `v4.base64.channel.k8s.io`): 0 stdin, 1 stdout, 2 stderr, 3 error
//!   (the final Status), 4 resize and, in v5, 255 close (`[255, 0]`: the
//!   client closed stdin);
//! - port-forward (`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, or no
//!   subprotocol): two channels per port, see [`super::port_forward`];
//! - port-forward tunnelled as SPDY (`SPDY/3.1+portforward.k8s.io`,
//!   client-go's `NewSPDYOverWebsocketDialer`, KEP-4006): the binary
//!   messages are the bytes of a SPDY connection ([`tunnel`]).

use super::{
    attach, exec, port_forward, spdy, status_json, Outcome, Pending, StdIo, StdioOpts, TermSize,
    PROTOCOL_PORT_FORWARD, PROTOCOL_V4, PROTOCOL_V5,
};
use crate::Cri;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

pub const PROTOCOL_V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// Port-forward as SPDY inside WebSocket messages: client-go prefixes the
/// SPDY protocol it wants (`portforward.k8s.io`) with `SPDY/3.1+`.
pub const PROTOCOL_SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// How a channel's data is carried: binary messages with the channel as
/// first byte, or (the `base64` protocols) text messages with the channel
/// as an ASCII digit followed by the data in base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Binary,
    Base64,
}

impl Encoding {
    pub(super) fn encode(self, channel: u8, data: &[u8]) -> Message {
        match self {
            Encoding::Binary => {
                let mut m = Vec::with_capacity(data.len() + 1);
                m.push(channel);
                m.extend_from_slice(data);
                Message::Binary(Bytes::from(m))
            }
            Encoding::Base64 => {
                let mut s = char::from(b'0'.wrapping_add(channel)).to_string();
                base64::engine::general_purpose::STANDARD.encode_string(data, &mut s);
                Message::Text(s.into())
            }
        }
    }

    /// A data message's channel and payload; None for control messages and
    /// for what does not decode (ignored, as kubelet's wsstream does).
    pub(super) fn decode(self, msg: &Message) -> Option<(u8, Vec<u8>)> {
        let raw: &[u8] = match msg {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_bytes(),
            _ => return None,
        };
        let (&ch, rest) = raw.split_first()?;
        match self {
            Encoding::Binary => Some((ch, rest.to_vec())),
            Encoding::Base64 => {
                let ch = ch.checked_sub(b'0')?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()?;
                Some((ch, data))
            }
        }
    }
}

/// Send `(channel, data)` pairs on `sink` until every sender is dropped;
/// then close the WebSocket (a Close frame).
pub(super) fn spawn_sender(
    mut sink: SplitSink<WebSocket, Message>,
    enc: Encoding,
) -> (mpsc::Sender<(u8, Vec<u8>)>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<(u8, Vec<u8>)>(32);
    let h = tokio::spawn(async move {
        while let Some((ch, d)) = rx.recv().await {
            if sink.send(enc.encode(ch, &d)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    (tx, h)
}

/// Read the client's data messages until it closes, each to `each`.
pub(super) fn spawn_reader<F>(
    mut source: SplitStream<WebSocket>,
    enc: Encoding,
    mut each: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(u8, Vec<u8>) + Send + 'static,
{
    tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            if let Some((ch, data)) = enc.decode(&msg) {
                each(ch, data);
            }
        }
    })
}

pub(super) fn upgrade(
    cri: Arc<Cri>,
    pending: Pending,
    ws: WebSocketUpgrade,
    query: Option<&str>,
) -> Response {
    let rt = cri.runtime.clone();
    match pending {
        Pending::Exec(r) => upgrade_stdio(ws, exec::opts(&r), move |io| exec::run(rt, r, io)),
        Pending::Attach(r) => upgrade_stdio(ws, attach::opts(&r), move |io| attach::run(rt, r, io)),
        Pending::PortForward(r) => upgrade_cri_port_forward(cri, r, ws, query),
    }
}

/// Upgrade to a remotecommand session (exec or attach): `run` gets the
/// client's stdio, its outcome ends the session on the error channel.
pub(super) fn upgrade_stdio<F, Fut>(ws: WebSocketUpgrade, o: StdioOpts, run: F) -> Response
where
    F: FnOnce(StdIo) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let ws = ws.protocols([PROTOCOL_V5, PROTOCOL_V4, PROTOCOL_V4_BASE64]);
    let selected = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .map(str::to_string);
    let v5 = selected.as_deref() == Some(PROTOCOL_V5);
    let enc = if selected.as_deref() == Some(PROTOCOL_V4_BASE64) {
        Encoding::Base64
    } else {
        Encoding::Binary
    };
    ws.on_upgrade(move |socket| stdio_session(socket, v5, enc, o, run))
}

/// How a port-forward client wants to talk.
enum PortForwardProtocol {
    /// SPDY in binary messages.
    Tunnel,
    /// A data and an error channel per port.
    Channels(Encoding),
}

/// Pick the port-forward subprotocol (the SPDY tunnel only if `tunnel`).
/// kubelet accepts no subprotocol (binary channels) but refuses unknown
/// ones; so do we, before the upgrade.
fn negotiate_port_forward(
    ws: WebSocketUpgrade,
    tunnel: bool,
) -> Result<(WebSocketUpgrade, PortForwardProtocol), String> {
    let mut known = vec![
        PROTOCOL_V4,
        PROTOCOL_V4_BASE64,
        // peapod's own client offers it (binary channels).
        PROTOCOL_PORT_FORWARD,
    ];
    if tunnel {
        known.insert(0, PROTOCOL_SPDY_TUNNEL);
    }
    let ws = ws.protocols(known.clone());
    let selected = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .map(str::to_string);
    let proto = match selected.as_deref() {
        Some(PROTOCOL_SPDY_TUNNEL) => PortForwardProtocol::Tunnel,
        Some(PROTOCOL_V4_BASE64) => PortForwardProtocol::Channels(Encoding::Base64),
        Some(_) => PortForwardProtocol::Channels(Encoding::Binary),
        None if ws.requested_protocols().next().is_some() => {
            let offered: Vec<String> = ws
                .requested_protocols()
                .filter_map(|p| p.to_str().ok())
                .map(str::to_string)
                .collect();
            return Err(format!(
                "unable to upgrade: none of the requested protocols {offered:?} is \
                 supported for port-forward; this server speaks {}",
                known.join(", ")
            ));
        }
        None => PortForwardProtocol::Channels(Encoding::Binary),
    };
    Ok((ws, proto))
}

fn upgrade_cri_port_forward(
    cri: Arc<Cri>,
    req: crate::pb::PortForwardRequest,
    ws: WebSocketUpgrade,
    query: Option<&str>,
) -> Response {
    let (ws, proto) = match negotiate_port_forward(ws, true) {
        Ok(x) => x,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    let enc = match proto {
        PortForwardProtocol::Tunnel => {
            return ws.on_upgrade(move |socket| async move {
                let conn = spdy::Connection::new(tunnel(socket));
                port_forward::serve_spdy(cri, req, conn).await;
            });
        }
        PortForwardProtocol::Channels(enc) => enc,
    };
    let ports = match port_forward::websocket_ports(&req, query) {
        Ok(p) => p,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    ws.on_upgrade(move |socket| async move {
        let sid = req.pod_sandbox_id;
        let netns = port_forward::sandbox_netns(&cri, &sid)
            .await
            .ok_or_else(|| "the pod sandbox is gone".to_string());
        port_forward::serve_websocket(sid, netns, ports, socket, enc).await
    })
}

/// Port-forward with a data and an error channel per port, to `ports` on
/// localhost in `netns`; `pod` names the pod in error messages.
pub(super) fn upgrade_port_forward(
    ws: WebSocketUpgrade,
    pod: String,
    netns: PathBuf,
    ports: Vec<u16>,
) -> Response {
    let (ws, proto) = match negotiate_port_forward(ws, false) {
        Ok(x) => x,
        Err(msg) => return (StatusCode::BAD_REQUEST, msg).into_response(),
    };
    let PortForwardProtocol::Channels(enc) = proto else {
        return (StatusCode::BAD_REQUEST, "SPDY is not served here").into_response();
    };
    if let Err(msg) = port_forward::check_port_count(ports.len()) {
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    ws.on_upgrade(move |socket| {
        port_forward::serve_websocket(pod, Ok(Some(netns)), ports, socket, enc)
    })
}

/// A SPDY connection's bytes carried in binary WebSocket messages, as an
/// in-memory byte stream: what arrives goes to the stream's reader, what is
/// written to it leaves as one message per write. The client's Close ends
/// the stream; the stream's end closes the WebSocket.
pub(super) fn tunnel(socket: WebSocket) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let (mut sink, mut source) = socket.split();
    tokio::spawn(async move {
        let inbound = tokio::spawn(async move {
            while let Some(Ok(msg)) = source.next().await {
                match msg {
                    Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                    Message::Close(_) => break,
                    // client-go sends binary only; anything else is dropped.
                    _ => {}
                }
            }
            let _ = wr.shutdown().await;
        });
        let outbound = async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let m = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                        if sink.send(m).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        };
        outbound.await;
        // The SPDY side is done: the client has a moment to answer our Close.
        await_client_close(inbound).await;
    });
    ours
}

async fn stdio_session<F, Fut>(socket: WebSocket, v5: bool, enc: Encoding, o: StdioOpts, run: F)
where
    F: FnOnce(StdIo) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (sink, source) = socket.split();
    // Everything we send goes through one channel.
    let (out_tx, sender) = spawn_sender(sink, enc);
    let output = |channel: u8| {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
        let out = out_tx.clone();
        let h = tokio::spawn(async move {
            while let Some(d) = rx.recv().await {
                if out.send((channel, d)).await.is_err() {
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
    let mut stdin_tx = Some(stdin_tx);
    let reader = spawn_reader(source, enc, move |ch, data| match ch {
        0 => {
            if let Some(tx) = &stdin_tx {
                let _ = tx.send(data);
            }
        }
        4 => {
            if let Ok(s) = serde_json::from_slice::<TermSize>(&data) {
                let _ = resize_tx.send(s);
            }
        }
        255 if v5 && data.first() == Some(&0) => stdin_tx = None,
        _ => {}
    });
    let io = StdIo {
        stdin: o.stdin.then_some(stdin_rx),
        resize: o.tty.then_some(resize_rx),
        stdout: o.stdout.then_some(stdout),
        stderr: o.stderr.then_some(stderr),
    };
    let outcome = run(io).await;
    // Output a lingering background child still writes is cut off.
    let drain = std::time::Duration::from_secs(2);
    let _ = tokio::time::timeout(drain, h1).await;
    let _ = tokio::time::timeout(drain, h2).await;
    let _ = out_tx.send((3, status_json(&outcome))).await;
    drop(out_tx);
    let _ = sender.await;
    await_client_close(reader).await;
}

/// Wait for the client's close before dropping the socket: closing it
/// with the client's last frames unread resets the connection, and a
/// reset throws away what the client has not read yet (the status).
pub(super) async fn await_client_close(mut reader: tokio::task::JoinHandle<()>) {
    let drain = std::time::Duration::from_secs(2);
    if tokio::time::timeout(drain, &mut reader).await.is_err() {
        reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_in_both_encodings() {
        for enc in [Encoding::Binary, Encoding::Base64] {
            let m = enc.encode(3, b"\x00\xffport");
            assert_eq!(
                enc.decode(&m),
                Some((3, b"\x00\xffport".to_vec())),
                "{enc:?}"
            );
        }
        // Base64 is what kubelet's wsstream writes: digit, then base64.
        let m = Encoding::Base64.encode(1, &80u16.to_le_bytes());
        assert_eq!(m, Message::Text("1UAA=".into()));
        assert_eq!(
            Encoding::Binary.decode(&Message::Binary(Bytes::new())),
            None
        );
        assert_eq!(Encoding::Base64.decode(&Message::Text("0!!".into())), None);
        assert_eq!(Encoding::Binary.decode(&Message::Ping(Bytes::new())), None);
    }
}
