//! `peapod exec`: Kubernetes' websocket exec protocol
//! (`v5.channel.k8s.io`, falling back to `v4.channel.k8s.io`) over the
//! daemon's unix socket.
//!
//! Every binary message starts with its channel: 0 stdin, 1 stdout,
//! 2 stderr, 3 the final `Status`, 4 terminal resizes, 255 close (v5: the
//! client sends `[255, 0]` when its stdin ends).

use std::io::{IsTerminal, Read, Write};

use anyhow::{anyhow, Result};
use futures_util::{SinkExt, StreamExt};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::transport::{encode, pod_path, status_error, Client, Status};

/// The subprotocols offered, best first.
pub const PROTOCOLS: &str = "v5.channel.k8s.io, v4.channel.k8s.io";
const V5: &str = "v5.channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// `peapod exec POD [-c C] [-i] [-t] -- COMMAND...`: runs `command` in the
/// pod's container and relays stdin, stdout and stderr. Returns the
/// command's exit code (0 on success); a failure that is not an exit code
/// (no such container, cannot start the command, …) is an error.
pub async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<String>,
    command: Vec<String>,
    stdin: bool,
    tty: bool,
) -> Result<i32> {
    if command.is_empty() {
        return Err(anyhow!(
            "error: you must specify at least one command for the container"
        ));
    }
    let url = format!(
        "ws://localhost{}",
        exec_path(namespace, pod, container.as_deref(), &command, stdin, tty)
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| anyhow!("error: invalid exec request: {e}"))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(PROTOCOLS),
    );

    let stream = client.connect().await?;
    let (ws, response) = match tokio_tungstenite::client_async(request, stream).await {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            return Err(status_error(response.status().as_u16(), &body));
        }
        Err(e) => return Err(anyhow!("error: exec: websocket handshake failed: {e}")),
    };
    let v5 = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim() == V5);

    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });

    // Raw mode only when our stdin is a terminal that is being forwarded;
    // restored when the guard drops, on every way out of this function.
    let _raw = if tty && stdin && std::io::stdin().is_terminal() {
        Some(RawMode::enable()?)
    } else {
        None
    };

    let mut resizer = None;
    if tty {
        if let Some(size) = terminal_size() {
            let _ = tx.send(resize_message(size));
        }
        if let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            let tx = tx.clone();
            resizer = Some(tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    if let Some(size) = terminal_size() {
                        if tx.send(resize_message(size)).is_err() {
                            break;
                        }
                    }
                }
            }));
        }
    }

    if stdin {
        // A plain thread, not tokio's blocking pool: a read blocked on a
        // terminal must not keep the runtime from shutting down.
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("exec-stdin".into())
            .spawn(move || copy_stdin(tx, v5));
        if let Err(e) = spawned {
            writer.abort();
            return Err(anyhow!("error: cannot read stdin: {e}"));
        }
    }
    drop(tx);

    let mut result: Option<Result<i32>> = None;
    let mut failure: Option<anyhow::Error> = None;
    while let Some(message) = source.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) => break,
            Ok(_) => continue,
            Err(e) => {
                failure = Some(anyhow!("error: exec: connection to the daemon lost: {e}"));
                break;
            }
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            STDOUT => write_out(&mut std::io::stdout(), payload),
            STDERR => write_out(&mut std::io::stderr(), payload),
            ERROR => result = Some(exit_code(payload)),
            _ => {}
        }
    }
    writer.abort();
    if let Some(resizer) = resizer {
        resizer.abort();
    }
    match (result, failure) {
        (Some(result), _) => result,
        (None, Some(failure)) => Err(failure),
        // The stream ended without a status: v4 servers may do that on
        // success.
        (None, None) => Ok(0),
    }
}

/// `/api/v1/namespaces/NS/pods/POD/exec?command=…&container=…&stdin=true&…`.
pub fn exec_path(
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    stdin: bool,
    tty: bool,
) -> String {
    let mut query: Vec<String> = command
        .iter()
        .map(|c| format!("command={}", encode(c)))
        .collect();
    if let Some(container) = container {
        query.push(format!("container={}", encode(container)));
    }
    if stdin {
        query.push("stdin=true".into());
    }
    query.push("stdout=true".into());
    if tty {
        query.push("tty=true".into());
    } else {
        query.push("stderr=true".into());
    }
    format!("{}/exec?{}", pod_path(namespace, pod), query.join("&"))
}

/// The exit code in a channel-3 `Status`: 0 for `Success`, the `ExitCode`
/// cause for `NonZeroExitCode`, an error with the message otherwise.
pub fn exit_code(payload: &[u8]) -> Result<i32> {
    let status: Status = serde_json::from_slice(payload)
        .map_err(|e| anyhow!("error: exec: bad status from the daemon: {e}"))?;
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|causes| {
                causes
                    .iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message.as_deref())
            .and_then(|m| m.trim().parse::<i32>().ok());
        if let Some(code) = code {
            return Ok(code);
        }
    }
    let message = status
        .message
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "exec failed".to_string());
    Err(anyhow!("error: {message}"))
}

fn write_out(out: &mut dyn Write, data: &[u8]) {
    // A closed stdout (`| head`) must not stop the command's other output.
    let _ = out.write_all(data).and_then(|()| out.flush());
}

/// Copies stdin to channel 0 until it ends; then, on v5, says so.
fn copy_stdin(tx: mpsc::UnboundedSender<Message>, v5: bool) {
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut frame = Vec::with_capacity(n + 1);
                frame.push(STDIN);
                frame.extend_from_slice(&buf[..n]);
                if tx.send(Message::binary(frame)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if v5 {
        let _ = tx.send(Message::binary(vec![CLOSE, STDIN]));
    }
}

/// The terminal's size as (columns, rows), from stdout, else stdin.
fn terminal_size() -> Option<(u16, u16)> {
    [libc::STDOUT_FILENO, libc::STDIN_FILENO]
        .into_iter()
        .find_map(|fd| {
            let mut size = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes one `winsize` into the struct that
            // `size` points to, which lives for the whole call.
            let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
            (rc == 0 && size.ws_col > 0).then_some((size.ws_col, size.ws_row))
        })
}

/// A channel-4 message: `{"Width":cols,"Height":rows}`.
fn resize_message((width, height): (u16, u16)) -> Message {
    let mut frame = vec![RESIZE];
    frame.extend_from_slice(
        serde_json::json!({"Width": width, "Height": height})
            .to_string()
            .as_bytes(),
    );
    Message::binary(frame)
}

/// Puts stdin's terminal in raw mode; restores it when dropped.
struct RawMode {
    original: Termios,
}

impl RawMode {
    fn enable() -> Result<Self> {
        let original = termios::tcgetattr(std::io::stdin())
            .map_err(|e| anyhow!("error: cannot read the terminal's settings: {e}"))?;
        let mut raw = original.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw)
            .map_err(|e| anyhow!("error: cannot put the terminal in raw mode: {e}"))?;
        Ok(RawMode { original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let command = vec!["sh".to_string(), "-c".to_string(), "echo a b".to_string()];
        assert_eq!(
            exec_path("default", "web", None, &command, false, false),
            "/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&command=echo%20a%20b&stdout=true&stderr=true"
        );
        assert_eq!(
            exec_path("ns", "web", Some("side"), &command[..1], true, true),
            "/api/v1/namespaces/ns/pods/web/exec?command=sh&container=side&stdin=true&stdout=true&tty=true"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            exit_code(br#"{"metadata":{},"status":"Success"}"#).ok(),
            Some(0)
        );
        let failure = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#;
        assert_eq!(exit_code(failure).ok(), Some(7));
        let other = br#"{"status":"Failure","message":"container \"x\" not found in pod \"web\"","reason":"NotFound"}"#;
        match exit_code(other) {
            Ok(code) => panic!("expected an error, got {code}"),
            Err(e) => assert_eq!(
                e.to_string(),
                r#"error: container "x" not found in pod "web""#
            ),
        }
    }

    #[test]
    fn resize_frames() {
        match resize_message((80, 24)) {
            Message::Binary(data) => {
                assert_eq!(data[0], RESIZE);
                let json: serde_json::Value = match serde_json::from_slice(&data[1..]) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                };
                assert_eq!(json, serde_json::json!({"Width": 80, "Height": 24}));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
