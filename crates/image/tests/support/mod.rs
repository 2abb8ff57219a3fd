//! Test support: a real `docker-registry` (Debian's distribution 2.8) on
//! 127.0.0.1 with a temporary storage dir, pushing the test images to it
//! with skopeo, and a small HTTP proxy in front of a registry that counts
//! blob requests and can demand bearer tokens from its own token server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tempfile::TempDir;

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// True under CI (`CI` set to anything but empty, `0` or `false`), where a
/// missing tool fails a test instead of skipping it.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether `tool` (a path, or a name looked up in `PATH`) is installed. When
/// it is not, the test fails under CI ([`under_ci`]); elsewhere this prints
/// that the test is skipped, and the test returns early:
/// `if !require_tool("/usr/bin/skopeo", "skopeo") { return; }`.
pub fn require_tool(tool: &str, package: &str) -> bool {
    let found = if tool.contains('/') {
        Path::new(tool).exists()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).exists()))
    };
    if found {
        return true;
    }
    let msg = format!("{tool} missing (apt-get install {package})");
    if under_ci() {
        panic!("{msg}; CI must not skip this test");
    }
    eprintln!("skipping: {msg}");
    false
}

/// [`require_tool`] for what the registry tests need: the registry, skopeo
/// and openssl.
pub fn require_registry_tools() -> bool {
    require_tool(REGISTRY_BIN, "docker-registry")
        && require_tool("/usr/bin/skopeo", "skopeo")
        && require_tool("/usr/bin/openssl", "openssl")
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The OCI archives of scripts/build-test-images.sh (built once if absent).
pub fn test_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/test-images");
        if !dir.join("busybox.tar").exists() || !dir.join("httpd.tar").exists() {
            let st = Command::new("bash")
                .arg(workspace().join("scripts/build-test-images.sh"))
                .arg(&dir)
                .status()
                .expect("run build-test-images.sh");
            assert!(st.success(), "build-test-images.sh failed");
        }
        dir
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running registry; killed and its storage removed on drop.
pub struct Registry {
    pub dir: TempDir,
    pub port: u16,
    pub storage: PathBuf,
    child: Option<Child>,
    /// `user:password` if the registry demands basic auth.
    pub creds: Option<(String, String)>,
    /// The CA (PEM) that signed the registry's certificate, if it serves
    /// HTTPS.
    pub ca: Option<PathBuf>,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(None, false)
    }

    /// A registry demanding HTTP basic auth (htpasswd with a bcrypt hash).
    pub fn start_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_with(Some((user.to_string(), password.to_string())), false)
    }

    /// A registry serving HTTPS with a certificate (for IP 127.0.0.1) signed
    /// by a CA made for it ([`Registry::ca`]).
    pub fn start_tls() -> Registry {
        Self::start_with(None, true)
    }

    fn start_with(creds: Option<(String, String)>, tls: bool) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("peapod-registry-")
            .tempdir()
            .expect("registry tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("storage dir");
        let mut tls_yaml = String::new();
        let mut ca = None;
        if tls {
            let (ca_pem, cert, key) = make_certs(dir.path(), "ca");
            tls_yaml = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
            ca = Some(ca_pem);
        }
        let mut auth = String::new();
        if let Some((u, p)) = &creds {
            let hash = bcrypt::hash(p, 4).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{u}:{hash}\n")).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                htpasswd.display()
            );
        }
        // A port can be taken between free_port() and the registry's bind:
        // try a few.
        let log_path = dir.path().join("registry.log");
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n{tls_yaml}{auth}",
                    storage.display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(&log_path).expect("log");
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&mut child, port) {
                return Registry {
                    dir,
                    port,
                    storage,
                    child: Some(child),
                    creds,
                    ca,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("docker-registry did not come up:\n{log}");
    }

    fn kill(&mut self) -> std::io::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy` an OCI archive to `repo:tag` on this registry.
    pub fn push(&self, archive: &Path, repo_tag: &str, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.arg("--insecure-policy")
            .arg("copy")
            .arg("--quiet")
            .arg("--dest-tls-verify=false");
        if let Some((u, p)) = &self.creds {
            cmd.arg("--dest-creds").arg(format!("{u}:{p}"));
        }
        cmd.args(extra)
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {repo_tag} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The manifest (JSON) with `digest`, read from the registry's storage.
    pub fn manifest(&self, digest: &str) -> serde_json::Value {
        let data = std::fs::read(self.blob_file(digest)).expect("manifest blob in storage");
        serde_json::from_slice(&data).expect("manifest JSON")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Some(status) = http_status(port, "/v2/") {
            // 400: an HTTPS registry answering plain HTTP.
            if status == 200 || status == 401 || status == 400 {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A CA and a server certificate for IP 127.0.0.1 signed by it, made with
/// the openssl command in `dir`, files named after `name`: (ca, cert, key).
pub fn make_certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &PathBuf| p.display().to_string();
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("ext.cnf"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s(&ca_key),
        "-out",
        &s(&ca),
        "-days",
        "2",
        "-subj",
        "/CN=peapod test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &s(&key),
        "-out",
        &s(&csr),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-out",
        &s(&cert),
        "-days",
        "2",
        "-extfile",
        &s(&ext),
    ]);
    (ca, cert, key)
}

/// Status code of a plain HTTP/1.0 GET, or None if nobody answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

// ----- proxy + token server -------------------------------------------------

/// Bearer-token auth the proxy enforces: `/token` hands out `token` to
/// `user:password` (HTTP basic) for `repository:*:pull` scopes.
#[derive(Clone)]
pub struct TokenAuth {
    pub user: String,
    pub password: String,
    pub token: String,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    blob_gets: Arc<Mutex<HashMap<String, usize>>>,
    token: Option<TokenAuth>,
    realm: String,
    token_requests: Arc<Mutex<Vec<String>>>,
}

/// An HTTP proxy to a registry on loopback; stopped on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    blob_gets: Arc<Mutex<HashMap<String, usize>>>,
    token_requests: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    pub async fn start(upstream_port: u16, token: Option<TokenAuth>) -> Proxy {
        install_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let blob_gets = Arc::new(Mutex::new(HashMap::new()));
        let token_requests = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("reqwest client"),
            blob_gets: blob_gets.clone(),
            token,
            realm: format!("http://{addr}/token"),
            token_requests: token_requests.clone(),
        };
        let app = axum::Router::new().fallback(handle).with_state(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Proxy {
            addr,
            blob_gets,
            token_requests,
            stop: Some(stop),
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// GET requests per blob digest so far.
    pub fn blob_gets(&self) -> HashMap<String, usize> {
        self.blob_gets.lock().expect("counter").clone()
    }

    /// Query strings of the token requests so far.
    pub fn token_requests(&self) -> Vec<String> {
        self.token_requests.lock().expect("token log").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn basic_ok(headers: &HeaderMap, user: &str, password: &str) -> bool {
    use base64::Engine;
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == want)
}

async fn handle(State(st): State<ProxyState>, req: Request) -> Response {
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let path = req.uri().path().to_string();

    if let Some(auth) = &st.token {
        if path == "/token" {
            let query = req.uri().query().unwrap_or_default().to_string();
            st.token_requests
                .lock()
                .expect("token log")
                .push(query.clone());
            if !basic_ok(req.headers(), &auth.user, &auth.password) {
                return (StatusCode::UNAUTHORIZED, "bad or missing credentials\n").into_response();
            }
            if !query.contains("scope=repository%3A") && !query.contains("scope=repository:") {
                return (StatusCode::BAD_REQUEST, "missing scope\n").into_response();
            }
            let body = serde_json::json!({"token": auth.token, "expires_in": 300});
            return axum::Json(body).into_response();
        }
        let want = format!("Bearer {}", auth.token);
        let ok = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == want);
        if !ok {
            let challenge = format!("Bearer realm=\"{}\",service=\"peapod-test\"", st.realm);
            let mut resp = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert("www-authenticate", v);
            }
            return resp;
        }
    }

    if req.method() == axum::http::Method::GET {
        if let Some((_, digest)) = path.split_once("/blobs/") {
            *st.blob_gets
                .lock()
                .expect("counter")
                .entry(digest.to_string())
                .or_default() += 1;
        }
    }

    let method = req.method().clone();
    let mut headers = req.headers().clone();
    headers.remove("host");
    headers.remove("authorization");
    let body = match axum::body::to_bytes(req.into_body(), 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let upstream = match st
        .client
        .request(method, format!("{}{path_q}", st.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut resp = Response::builder().status(upstream.status().as_u16());
    for (k, v) in upstream.headers() {
        if k != "transfer-encoding" && k != "connection" {
            resp = resp.header(k.as_str(), v.as_bytes());
        }
    }
    resp.body(Body::from_stream(upstream.bytes_stream()))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}
