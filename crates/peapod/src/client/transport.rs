//! HTTP/1 over the daemon's unix socket, Kubernetes `Status` errors and
//! `Warning` headers.

use std::path::PathBuf;
use std::pin::Pin;

use anyhow::{anyhow, Result};
use futures_util::{Stream, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;

/// A request body: whole or streamed.
type RequestBody = BoxBody<Bytes, std::io::Error>;

/// The body of a streamed response (`logs -f`, `get --watch`), chunk by
/// chunk as the daemon sends it.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Talks to the peapod daemon over its unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// A complete response from the daemon.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// This (failed) response as an error: `Error from server (NotFound):
    /// pods "x" not found`.
    pub fn error(&self) -> anyhow::Error {
        status_error(self.status, &self.body)
    }

    /// The body decoded as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| anyhow!("error: cannot decode the daemon's response: {e}"))
    }

    /// The value of header `name`, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    /// A client for the daemon listening on `socket`. Nothing is connected
    /// until a request is made.
    pub fn new(socket: PathBuf) -> Self {
        Client { socket }
    }

    /// Connects to the daemon's socket, with the error users see when the
    /// daemon is not there.
    pub async fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(&e))
    }

    /// The error for a daemon that cannot be reached.
    pub fn unreachable(&self, err: &dyn std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "error: cannot reach the peapod daemon at {}: {err} (is `peapod serve` running? set --socket or PEAPOD_SOCKET)",
            self.socket.display()
        )
    }

    /// Sends one request and returns the response whatever its status
    /// (see [`Client::call`] for one that fails on errors). `Warning`
    /// headers are printed to stderr.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> Result<Response> {
        let response = self
            .send(method, path_and_query, full(body), content_type, None)
            .await?;
        collect(response).await
    }

    /// Like [`Client::request`], but a non-2xx response is an error
    /// (`Error from server (<reason>): <message>`).
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> Result<Response> {
        let response = self
            .request(method, path_and_query, body, content_type)
            .await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(response.error())
        }
    }

    /// GETs `path` and decodes the JSON body; a non-2xx response is an error.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None, None).await?.json()
    }

    /// GETs `path` and returns the body as a stream of chunks, as they
    /// arrive. A non-2xx response is an error.
    pub async fn stream(&self, path: &str) -> Result<BodyStream> {
        self.stream_method(Method::GET, path).await
    }

    /// Like [`Client::stream`], with another method (a streaming POST).
    pub async fn stream_method(&self, method: Method, path: &str) -> Result<BodyStream> {
        let response = self.send(method, path, full(None), None, None).await?;
        if !response.status().is_success() {
            return Err(collect(response).await?.error());
        }
        let stream = response
            .into_body()
            .into_data_stream()
            .map(|chunk| chunk.map_err(|e| anyhow!("error: reading from the peapod daemon: {e}")));
        Ok(Box::pin(stream))
    }

    /// Sends the contents of `file` as the request body, streamed in chunks.
    pub async fn upload(
        &self,
        method: Method,
        path_and_query: &str,
        file: tokio::fs::File,
        content_type: &str,
    ) -> Result<Response> {
        let length = file.metadata().await.ok().map(|m| m.len());
        let chunks = futures_util::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buf = vec![0u8; 256 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let body = BodyExt::boxed(StreamBody::new(chunks));
        let response = self
            .send(method, path_and_query, body, Some(content_type), length)
            .await?;
        collect(response).await
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: RequestBody,
        content_type: Option<&str>,
        content_length: Option<u64>,
    ) -> Result<hyper::Response<Incoming>> {
        let stream = self.connect().await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(&e))?;
        // Drives the connection until the response body is consumed.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, "localhost");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(length) = content_length {
            request = request.header(CONTENT_LENGTH, length);
        }
        let request = request
            .body(body)
            .map_err(|e| anyhow!("error: invalid request {path_and_query:?}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| anyhow!("error: the peapod daemon did not answer: {e}"))?;
        print_warnings(response.headers());
        Ok(response)
    }
}

fn full(body: Option<Vec<u8>>) -> RequestBody {
    let bytes = body.map(Bytes::from).unwrap_or_default();
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

async fn collect(response: hyper::Response<Incoming>) -> Result<Response> {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| anyhow!("error: reading from the peapod daemon: {e}"))?
        .to_bytes()
        .to_vec();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// The fields of a Kubernetes `Status` the client uses.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

/// `Status.details`.
#[derive(Debug, Default, Deserialize)]
pub struct StatusDetails {
    #[serde(default)]
    pub causes: Option<Vec<StatusCause>>,
}

/// `Status.details.causes[]`.
#[derive(Debug, Default, Deserialize)]
pub struct StatusCause {
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// kubectl's message for a failed request: `Error from server (<reason>):
/// <message>` from a `Status` body; for any other body a reason is derived
/// from the HTTP code.
pub fn status_error(code: u16, body: &[u8]) -> anyhow::Error {
    anyhow!("{}", status_message(code, body))
}

fn status_message(code: u16, body: &[u8]) -> String {
    if let Ok(status) = serde_json::from_slice::<Status>(body) {
        if status.kind.as_deref() == Some("Status") || status.message.is_some() {
            let message = status.message.unwrap_or_default();
            return match status.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(reason) => format!("Error from server ({reason}): {message}"),
                None => format!("Error from server: {message}"),
            };
        }
    }
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("Error from server ({reason}): the server responded with HTTP status {code}")
    } else {
        format!("Error from server ({reason}): {text}")
    }
}

/// Prints every `Warning` header as `Warning: text` on stderr.
pub fn print_warnings(headers: &HeaderMap) {
    for value in headers.get_all("warning") {
        let value = String::from_utf8_lossy(value.as_bytes());
        for text in parse_warnings(&value) {
            eprintln!("Warning: {text}");
        }
    }
}

/// Parses one `Warning` header value (RFC 7234: `299 - "text"`, possibly
/// several separated by commas, each possibly with a quoted date). A value
/// that does not parse is returned whole.
pub fn parse_warnings(value: &str) -> Vec<String> {
    match try_parse_warnings(value) {
        Some(texts) => texts,
        None => vec![value.trim().to_string()],
    }
}

fn try_parse_warnings(value: &str) -> Option<Vec<String>> {
    let mut texts = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        // warn-code SP warn-agent SP warn-text [SP warn-date]
        let (code, after) = rest.split_once(' ')?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (_agent, after) = after.trim_start().split_once(' ')?;
        let (text, after) = quoted(after.trim_start())?;
        texts.push(text);
        rest = after.trim_start();
        if rest.starts_with('"') {
            let (_date, after) = quoted(rest)?;
            rest = after.trim_start();
        }
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(texts)
}

/// A quoted-string at the start of `s` (with `\` escapes) and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut text = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '"' => return Some((text, &s[i + 2..])),
            c => text.push(c),
        }
    }
    None
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of a namespaced pod: `/api/v1/namespaces/NS/pods/NAME`.
/// `/api/v1/namespaces/NS/RESOURCE/NAME` (RESOURCE: `pods`, `secrets`).
pub fn object_path(resource: &str, namespace: &str, name: &str) -> String {
    if let Some(k) = peapod_api::workloads::kind_of_plural(resource) {
        return super::workloads::object_path(k, namespace, name);
    }
    format!(
        "/api/v1/namespaces/{}/{resource}/{}",
        encode(namespace),
        encode(name)
    )
}

pub fn pod_path(namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/namespaces/{}/pods/{}",
        encode(namespace),
        encode(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_like_kubectl() {
        let body = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"x\" not found","reason":"NotFound","code":404}"#;
        assert_eq!(
            status_error(404, body).to_string(),
            r#"Error from server (NotFound): pods "x" not found"#
        );
        let body = br#"{"kind":"Status","status":"Failure","message":"boom"}"#;
        assert_eq!(
            status_error(500, body).to_string(),
            "Error from server: boom"
        );
        assert_eq!(
            status_error(404, b"").to_string(),
            "Error from server (NotFound): the server responded with HTTP status 404"
        );
        assert_eq!(
            status_error(500, b"oops\n").to_string(),
            "Error from server (InternalError): oops"
        );
    }

    #[test]
    fn warning_headers() {
        assert_eq!(parse_warnings(r#"299 - "text""#), vec!["text"]);
        assert_eq!(
            parse_warnings(
                r#"299 - "a \"quoted\" one", 299 peapod "b" "Sat, 01 Jan 2000 00:00:00 GMT""#
            ),
            vec![r#"a "quoted" one"#, "b"]
        );
        assert_eq!(parse_warnings("garbage"), vec!["garbage"]);
        assert_eq!(
            parse_warnings(
                r#"299 - "spec.containers[0].livenessProbe is not supported yet, and is ignored""#
            ),
            vec!["spec.containers[0].livenessProbe is not supported yet, and is ignored"]
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("a b/c=d&e"), "a%20b%2Fc%3Dd%26e");
        assert_eq!(encode("sh"), "sh");
        assert_eq!(
            pod_path("default", "web"),
            "/api/v1/namespaces/default/pods/web"
        );
    }
}
