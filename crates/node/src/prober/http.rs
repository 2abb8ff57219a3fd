//! httpGet handler: one HTTP/1.1 GET from inside the pod's network
//! namespace; 200 <= status < 400 succeeds, as kubelet's prober. HTTPS is
//! not supported (the probe fails and says so).

use super::handler::Outcome;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// The request kubelet's prober sends (its User-Agent and Accept unless
/// the probe sets them).
pub(crate) fn request(g: &Get) -> String {
    let path = if g.path.starts_with('/') {
        g.path.clone()
    } else {
        format!("/{}", g.path)
    };
    let has = |n: &str| g.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    let mut r = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        r.push_str(&format!("Host: {}:{}\r\n", g.host, g.port));
    }
    if !has("user-agent") {
        r.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        r.push_str("Accept: */*\r\n");
    }
    for (k, v) in &g.headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("Connection: close\r\n\r\n");
    r
}

/// The status code once the response head is complete.
pub(crate) fn status_of(buf: &[u8]) -> Result<Option<u16>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Ok(resp.code),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("malformed HTTP response: {e}")),
    }
}

fn get(g: &Get, timeout: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    let mut s = super::tcp::connect(&g.host, g.port, timeout)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    .to_string()
            })
    };
    s.set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    s.write_all(request(g).as_bytes())
        .map_err(|e| format!("send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        let n = s.read(&mut chunk).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    .to_string()
            }
            _ => format!("read the response: {e}"),
        })?;
        if n == 0 {
            return Err("EOF before a complete HTTP response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(code) = status_of(&buf)? {
            return Ok(code);
        }
        if buf.len() > 64 << 10 {
            return Err("HTTP response head over 64 KiB".into());
        }
    }
}

pub fn probe(netns: Option<&Path>, g: &Get, timeout: Duration) -> Outcome {
    if !g.scheme.eq_ignore_ascii_case("HTTP") {
        return Outcome::Failure(format!(
            "httpGet scheme {:?} is not supported by peapod yet (use HTTP)",
            g.scheme
        ));
    }
    let req = g.clone();
    match super::netns::run_in(netns, move || get(&req, timeout)) {
        Ok(code) if (200..400).contains(&code) => Outcome::Success(String::new()),
        Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) => Outcome::Failure(format!(
            "Get \"http://{}:{}{}\": {e}",
            g.host, g.port, g.path
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_kubelet_headers_unless_overridden() {
        let mut g = Get {
            scheme: "HTTP".into(),
            host: "127.0.0.1".into(),
            port: 8080,
            path: "healthz".into(),
            headers: vec![],
        };
        assert_eq!(
            request(&g),
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        g.headers = vec![
            ("User-Agent".into(), "mine".into()),
            ("X-A".into(), "b".into()),
        ];
        let r = request(&g);
        assert!(
            r.contains("User-Agent: mine\r\n") && r.contains("X-A: b\r\n"),
            "{r}"
        );
        assert!(!r.contains("kube-probe"), "{r}");
    }

    #[test]
    fn status_parsing() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(
            status_of(b"HTTP/1.0 302 Found\r\nLocation: /\r\n\r\n"),
            Ok(Some(302))
        );
        assert!(status_of(b"garbage\r\n\r\n").is_err());
    }
}
