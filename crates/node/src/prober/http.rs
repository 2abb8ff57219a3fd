//! httpGet handler: one HTTP/1.1 GET (to the pod IP, from the host; see
//! `handler::PodNet`); 200 <= status < 400 succeeds, as kubelet's prober.
//! `scheme: HTTPS` speaks TLS without verifying the server's certificate,
//! as kubelet does (Go's InsecureSkipVerify).

use super::handler::Outcome;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};
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

/// Accepts any server certificate. kubelet probes with
/// `InsecureSkipVerify: true`: a pod's certificate is issued for its
/// Service name, not for the pod IP the probe dials, and is often
/// self-signed, so verifying it would fail healthy pods. Handshake
/// signatures are still checked (against the certificate's key), as Go
/// does with InsecureSkipVerify.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration of HTTPS probes and hooks (made once).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS configuration: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

fn get(g: &Get, timeout: Duration) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    let tcp = super::tcp::connect(&g.host, g.port, timeout)?;
    if g.scheme.eq_ignore_ascii_case("HTTPS") {
        // SNI names a host, never an IP (as Go's client).
        let name = ServerName::try_from(g.host.clone())
            .map_err(|e| format!("TLS server name {:?}: {e}", g.host))?;
        let conn =
            rustls::ClientConnection::new(tls_config()?, name).map_err(|e| format!("TLS: {e}"))?;
        exchange(g, rustls::StreamOwned::new(conn, tcp), deadline)
    } else {
        exchange(g, tcp, deadline)
    }
}

/// Send the request on `s` (plain TCP or TLS over it) and read the
/// response head, all before `deadline`.
fn exchange<S: Read + Write + Timeouts>(
    g: &Get,
    mut s: S,
    deadline: Instant,
) -> Result<u16, String> {
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    .to_string()
            })
    };
    s.tcp()
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    s.write_all(request(g).as_bytes())
        .map_err(|e| format!("send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        s.tcp()
            .set_read_timeout(Some(left()?))
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

/// The TCP socket under a stream (its timeouts bound TLS reads too).
trait Timeouts {
    fn tcp(&self) -> &TcpStream;
}

impl Timeouts for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Timeouts for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

pub fn probe(netns: Option<&Path>, g: &Get, timeout: Duration) -> Outcome {
    let scheme = g.scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Outcome::Error(format!(
            "httpGet scheme {:?} is not HTTP or HTTPS",
            g.scheme
        ));
    }
    let req = g.clone();
    match super::netns::run_in(netns, move || get(&req, timeout)) {
        Ok(code) if (200..400).contains(&code) => Outcome::Success(String::new()),
        Ok(code) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(e) => Outcome::Failure(format!(
            "Get \"{scheme}://{}:{}{}\": {e}",
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

    /// A TLS server on loopback with a fresh self-signed certificate
    /// (openssl's CLI makes it) that answers one request with `status`.
    fn tls_server(status: u16) -> u16 {
        use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=pod.invalid", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(&cert).unwrap()],
            PrivateKeyDer::from_pem_file(&key).unwrap(),
        )
        .unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (tcp, _) = l.accept().unwrap();
            let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut s = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut b = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0, "EOF before the request's end");
                buf.extend_from_slice(&b[..n]);
            }
            assert!(buf.starts_with(b"GET /healthz HTTP/1.1\r\n"));
            write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").unwrap();
            s.flush().unwrap();
            s.conn.send_close_notify();
            let _ = s.flush();
        });
        port
    }

    fn https(port: u16) -> Get {
        Get {
            scheme: "HTTPS".into(),
            host: "127.0.0.1".into(),
            port,
            path: "/healthz".into(),
            headers: vec![],
        }
    }

    #[test]
    fn https_accepts_a_self_signed_certificate() {
        let g = https(tls_server(200));
        assert_eq!(
            probe(None, &g, Duration::from_secs(10)),
            Outcome::Success(String::new())
        );
        let g = https(tls_server(503));
        assert_eq!(
            probe(None, &g, Duration::from_secs(10)),
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
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
