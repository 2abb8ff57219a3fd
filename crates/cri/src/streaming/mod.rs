//! The CRI streaming server: Exec, Attach and PortForward answer a URL
//! (`http://127.0.0.1:<port>/{exec,attach,portforward}/<token>`) with a
//! one-time token that expires after a minute, as kubelet's
//! `k8s.io/kubelet/pkg/cri/streaming` server (used by containerd and
//! CRI-O) does. The URL serves the Kubernetes streaming protocols:
//!
//! - SPDY/3.1 (`Upgrade: SPDY/3.1`; crictl v1.29 and kubelet): exec and
//!   attach with `X-Stream-Protocol-Version: v4.channel.k8s.io`, one SPDY
//!   stream per `streamType` (error, stdin, stdout, stderr, resize);
//!   port-forward with `portforward.k8s.io`, a data/error stream pair per
//!   connection carrying `port` and `requestID` headers ([`spdy`]);
//! - WebSocket ([`websocket`]): exec and attach with `v5.channel.k8s.io`,
//!   `v4.channel.k8s.io` or `v4.base64.channel.k8s.io`, messages prefixed
//!   with their channel; port-forward with the same channel framing (a
//!   data and an error channel per port, kubelet's `portforward`
//!   websocket handler), or SPDY tunnelled in binary messages
//!   (`SPDY/3.1+portforward.k8s.io`, what kubectl 1.30+ sends, KEP-4006).
//!
//! The v4 error stream ends the session with a JSON `metav1.Status`:
//! `Success`, or `NonZeroExitCode` with an `ExitCode` cause.

mod attach;
mod exec;
mod port_forward;
pub mod spdy;
mod websocket;

use crate::{pb, Cri};
use axum::extract::{FromRequest, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a URL stays valid (kubelet's streaming cache TTL).
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// How long the client has to open the streams it asked for (kubelet's
/// `StreamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
pub const PROTOCOL_PORT_FORWARD: &str = "portforward.k8s.io";

/// A request waiting for its client to connect.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    Exec(pb::ExecRequest),
    Attach(pb::AttachRequest),
    PortForward(pb::PortForwardRequest),
}

/// The tokens handed out and the address they are served on.
#[derive(Default)]
pub struct Streaming {
    base_url: OnceLock<String>,
    tokens: Mutex<HashMap<String, (Pending, Instant)>>,
}

impl Streaming {
    /// Store `p` and return its URL; fails before the server listens.
    pub(crate) fn url_for(&self, p: Pending) -> Result<String, tonic::Status> {
        let base = self.base_url.get().ok_or_else(|| {
            tonic::Status::unavailable("the streaming server is not listening yet; retry")
        })?;
        let kind = match &p {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        };
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut t = self
            .tokens
            .lock()
            .map_err(|_| tonic::Status::internal("streaming token table poisoned"))?;
        t.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        t.insert(token.clone(), (p, Instant::now()));
        Ok(format!("{base}/{kind}/{token}"))
    }

    /// Take a token (one use), if it is known and not expired.
    fn take(&self, token: &str) -> Option<Pending> {
        let mut t = self.tokens.lock().ok()?;
        let (p, at) = t.remove(token)?;
        (at.elapsed() < TOKEN_TTL).then_some(p)
    }
}

/// Serve the streaming URLs on `listener` until `shutdown` resolves.
pub async fn serve(
    cri: Arc<Cri>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let _ = cri.streaming.base_url.set(format!("http://{addr}"));
    let app = axum::Router::new()
        .route("/{kind}/{token}", axum::routing::any(handle))
        .with_state(Arc::downgrade(&cri));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn plain(code: StatusCode, msg: String) -> Response {
    (code, msg).into_response()
}

async fn handle(
    State(cri): State<Weak<Cri>>,
    Path((kind, token)): Path<(String, String)>,
    req: axum::extract::Request,
) -> Response {
    let Some(cri) = cri.upgrade() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let Some(pending) = cri.streaming.take(&token) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("unknown or expired {kind} token; ask the runtime for a new URL"),
        );
    };
    let kind_matches = matches!(
        (&pending, kind.as_str()),
        (Pending::Exec(_), "exec")
            | (Pending::Attach(_), "attach")
            | (Pending::PortForward(_), "portforward")
    );
    if !kind_matches {
        return plain(
            StatusCode::NOT_FOUND,
            format!("token is not for {kind}; use the URL as the runtime returned it"),
        );
    }
    let spdy = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("spdy/3.1"));
    if spdy {
        return upgrade_spdy(cri, pending, req);
    }
    let query = req.uri().query().map(str::to_string);
    match axum::extract::ws::WebSocketUpgrade::from_request(req, &()).await {
        Ok(ws) => websocket::upgrade(cri, pending, ws, query.as_deref()),
        Err(rej) => plain(
            StatusCode::BAD_REQUEST,
            format!(
                "unable to upgrade: this URL speaks SPDY/3.1 or WebSocket ({PROTOCOL_V5}, \
                 {PROTOCOL_V4}): {}",
                rej.body_text()
            ),
        ),
    }
}

/// The protocols a SPDY client offers (`X-Stream-Protocol-Version`, one
/// header each or comma-separated).
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn upgrade_spdy(cri: Arc<Cri>, pending: Pending, mut req: axum::extract::Request) -> Response {
    let want = match pending {
        Pending::PortForward(_) => PROTOCOL_PORT_FORWARD,
        _ => PROTOCOL_V4,
    };
    let offers = offered(req.headers());
    if !offers.is_empty() && !offers.iter().any(|p| p == want) {
        return plain(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: none of the offered protocols {offers:?} is supported; this server speaks {want}"),
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(up) => {
                let conn = spdy::Connection::new(hyper_util::rt::TokioIo::new(up));
                match pending {
                    Pending::Exec(r) => exec::serve_spdy(cri, r, conn).await,
                    Pending::Attach(r) => attach::serve_spdy(cri, r, conn).await,
                    Pending::PortForward(r) => port_forward::serve_spdy(cri, r, conn).await,
                }
            }
            Err(e) => tracing::warn!("streaming: SPDY upgrade failed: {e}"),
        }
    });
    let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if !offers.is_empty() {
        h.insert("X-Stream-Protocol-Version", HeaderValue::from_static(want));
    }
    resp
}

/// Exec over WebSocket for peapod's own API
/// (`/api/v1/namespaces/{ns}/pods/{name}/exec`): the same protocols and
/// session as the CRI URL's, for a container the caller checked is running.
pub fn exec_websocket(
    runtime: Arc<peapod_runtime::Runtime>,
    req: pb::ExecRequest,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let o = exec::opts(&req);
    websocket::upgrade_stdio(ws, o, move |io| exec::run(runtime, req, io))
}

/// Port-forward over WebSocket for peapod's own API
/// (`/api/v1/namespaces/{ns}/pods/{name}/portforward`): `ports` on
/// localhost inside `netns`, a data and an error channel per port, as the
/// CRI URL serves them; `pod` names the pod in error messages.
pub fn port_forward_websocket(
    pod: String,
    netns: std::path::PathBuf,
    ports: Vec<u16>,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    websocket::upgrade_port_forward(ws, pod, netns, ports)
}

/// What an exec or attach session asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StdioOpts {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A session's stdio, independent of the transport: input the client
/// sends (the receivers end at its close), output to send (closing is
/// dropping the senders).
pub(crate) struct StdIo {
    pub stdin: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
    pub resize: Option<mpsc::UnboundedReceiver<TermSize>>,
    pub stdout: Option<mpsc::Sender<Vec<u8>>>,
    pub stderr: Option<mpsc::Sender<Vec<u8>>>,
}

/// remotecommand's `TerminalSize` (`{"Width":..,"Height":..}`).
#[derive(Clone, Copy, Debug, serde::Deserialize, PartialEq, Eq)]
pub(crate) struct TermSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// How a session ended: the process's exit code, or why it failed.
pub(crate) type Outcome = Result<i32, String>;

/// The v4 error stream's final `metav1.Status`.
pub(crate) fn status_json(outcome: &Outcome) -> Vec<u8> {
    let v = match outcome {
        Ok(0) => serde_json::json!({ "metadata": {}, "status": "Success" }),
        Ok(c) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command, exit status {c}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": c.to_string() }] },
        }),
        Err(m) => serde_json::json!({
            "metadata": {}, "status": "Failure", "message": m, "reason": "InternalError",
            "code": 500,
        }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Set a pty's window size.
pub(crate) fn set_winsize(fd: std::os::fd::BorrowedFd<'_>, s: TermSize) {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: s.height,
        ws_col: s.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the `winsize` we own through a valid pointer;
    // the fd is borrowed, so it is open for the call.
    unsafe {
        libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// Split a byte stream of concatenated JSON terminal sizes (the SPDY
/// resize stream): complete objects out, the incomplete tail kept.
pub(crate) fn take_sizes(buf: &mut Vec<u8>) -> Vec<TermSize> {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<TermSize>();
    let mut used = 0;
    while let Some(Ok(s)) = it.next() {
        out.push(s);
        used = it.byte_offset();
    }
    // A malformed object would stall the stream: drop everything then.
    let stuck = buf.len() > 4096;
    buf.drain(..if stuck { buf.len() } else { used });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_json_is_what_client_go_decodes() {
        let v: serde_json::Value = serde_json::from_slice(&status_json(&Ok(3))).expect("json");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_slice(&status_json(&Ok(0))).expect("json");
        assert_eq!(ok["status"], "Success");
    }

    #[test]
    fn resize_stream_splits_concatenated_objects() {
        let mut b = br#"{"Width":80,"Height":24}{"Width":100,"Height":5"#.to_vec();
        assert_eq!(
            take_sizes(&mut b),
            vec![TermSize {
                width: 80,
                height: 24
            }]
        );
        b.extend_from_slice(b"0}\n");
        assert_eq!(
            take_sizes(&mut b),
            vec![TermSize {
                width: 100,
                height: 50
            }]
        );
    }

    #[test]
    fn tokens_are_single_use() {
        let s = Streaming::default();
        assert!(s
            .url_for(Pending::Exec(pb::ExecRequest::default()))
            .is_err());
        let _ = s.base_url.set("http://127.0.0.1:1".into());
        let url = s
            .url_for(Pending::Exec(pb::ExecRequest::default()))
            .expect("url");
        assert!(url.starts_with("http://127.0.0.1:1/exec/"), "{url}");
        let token = url.rsplit('/').next().expect("token");
        assert!(s.take(token).is_some());
        assert!(s.take(token).is_none());
    }
}
