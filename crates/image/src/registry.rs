//! Registry configuration and credentials.
//!
//! One TOML file, shaped like containerd's `hosts.toml` idea but for every
//! registry at once:
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["http://127.0.0.1:5000"]   # tried in order, then the upstream
//! skip_upstream = false                 # true: never ask docker.io itself
//!
//! [registry."myreg:5000"]
//! insecure = true        # https without certificate verification, then plain http
//! ca_file = "/etc/peapod/certs/myreg.pem"
//! username = "u"
//! password = "p"
//! ```
//!
//! A mirror is `scheme://host[:port]` (the scheme decides plain HTTP or
//! HTTPS) or a bare `host[:port]`; its TLS settings and credentials come from
//! its own `[registry."host:port"]` table, if there is one. Registries on
//! loopback (`localhost`, 127.0.0.0/8, `[::1]`) use plain HTTP without any
//! configuration, as Docker and containerd do.
//!
//! Credentials come from image pull secrets ([`credentials_from_dockerconfigjson`])
//! and from the config file; a secret's credentials win.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::error::ImageError;
use crate::reference::DEFAULT_REGISTRY;

/// Settings of one registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryHostConfig {
    /// Mirror endpoints, tried in order before the upstream registry.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Never fall back to the upstream registry (needs at least one mirror).
    #[serde(default)]
    pub skip_upstream: bool,
    /// HTTPS without certificate verification, falling back to plain HTTP.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM file of CA certificates trusted for this host (besides the
    /// system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// The whole registry configuration: settings by registry host (`docker.io`,
/// `registry.k8s.io`, `myreg:5000`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    pub registries: BTreeMap<String, RegistryHostConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    registry: BTreeMap<String, RegistryHostConfig>,
}

/// One place to ask for an image: a mirror or the upstream registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// `host[:port]`, as in URLs.
    pub host: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// HTTPS without verifying the server's certificate.
    pub skip_verify: bool,
    /// Extra CA certificates (PEM) for HTTPS.
    pub ca_file: Option<PathBuf>,
    /// A mirror (true) or the image's own registry (false).
    pub mirror: bool,
}

impl Endpoint {
    /// `http://host` or `https://host`.
    pub fn url(&self) -> String {
        let scheme = if self.plain_http { "http" } else { "https" };
        format!("{scheme}://{}", self.host)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl RegistryConfig {
    /// Load the config file at `path`; a missing file is the default (empty)
    /// configuration.
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ImageError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Parse config text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ImageError> {
        let bad = |message: String| ImageError::RegistryConfig {
            path: path.to_path_buf(),
            message,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut registries = BTreeMap::new();
        for (key, host) in file.registry {
            let name = normalize_host(&key).ok_or_else(|| {
                bad(format!(
                    "[registry.{key:?}]: the key must be a registry host[:port], \
                     like \"docker.io\" or \"myreg:5000\""
                ))
            })?;
            let at = format!("[registry.{key:?}]");
            for m in &host.mirrors {
                parse_mirror(m).map_err(|why| bad(format!("{at} mirrors: {m:?}: {why}")))?;
            }
            if host.skip_upstream && host.mirrors.is_empty() {
                return Err(bad(format!(
                    "{at}: skip_upstream = true needs at least one entry in mirrors"
                )));
            }
            match (&host.username, &host.password) {
                (Some(_), None) => {
                    return Err(bad(format!("{at}: username is set but password is not")))
                }
                (None, Some(_)) => {
                    return Err(bad(format!("{at}: password is set but username is not")))
                }
                _ => {}
            }
            if let Some(ca) = &host.ca_file {
                if !ca.is_file() {
                    return Err(bad(format!(
                        "{at}: ca_file {} does not exist or is not a file",
                        ca.display()
                    )));
                }
            }
            if registries.insert(name.clone(), host).is_some() {
                return Err(bad(format!(
                    "{at}: registry {name} is configured twice (under different spellings)"
                )));
            }
        }
        Ok(RegistryConfig { registries })
    }

    /// The settings of `host` (normalised), if any.
    pub fn host(&self, host: &str) -> Option<&RegistryHostConfig> {
        let name = normalize_host(host)?;
        self.registries.get(&name)
    }

    /// Where to look for images of `registry`, in order: its mirrors, then
    /// the registry itself (unless `skip_upstream`).
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let registry = normalize_host(registry).unwrap_or_else(|| registry.to_string());
        let mut out = Vec::new();
        let cfg = self.registries.get(&registry);
        if let Some(cfg) = cfg {
            for m in &cfg.mirrors {
                match parse_mirror(m) {
                    Ok((Some(plain_http), host)) => {
                        let own = self.registries.get(&host);
                        out.push(Endpoint {
                            ca_file: own.and_then(|c| c.ca_file.clone()),
                            skip_verify: own.is_some_and(|c| c.insecure),
                            plain_http,
                            host,
                            mirror: true,
                        })
                    }
                    Ok((None, host)) => out.extend(self.host_endpoints(&host, true)),
                    // Checked by parse(); a hand-built config may still hold junk.
                    Err(why) => tracing::warn!(mirror = %m, %why, "ignoring bad mirror"),
                }
            }
        }
        if !cfg.is_some_and(|c| c.skip_upstream && !c.mirrors.is_empty()) {
            out.extend(self.host_endpoints(&registry, false));
        }
        out
    }

    /// Endpoints of a host without an explicit scheme.
    fn host_endpoints(&self, host: &str, mirror: bool) -> Vec<Endpoint> {
        let cfg = self.registries.get(host);
        let ca_file = cfg.and_then(|c| c.ca_file.clone());
        let ep = |plain_http: bool, skip_verify: bool| Endpoint {
            host: host.to_string(),
            plain_http,
            skip_verify,
            ca_file: ca_file.clone(),
            mirror,
        };
        if cfg.is_some_and(|c| c.insecure) {
            vec![ep(false, true), ep(true, false)]
        } else if is_loopback(host) && ca_file.is_none() {
            vec![ep(true, false)]
        } else {
            vec![ep(false, false)]
        }
    }

    /// Credentials from the config file for `host`.
    pub fn credential(&self, host: &str) -> Option<Credential> {
        let cfg = self.host(host)?;
        match (&cfg.username, &cfg.password) {
            (Some(u), Some(p)) => Some(Credential {
                registry: normalize_host(host).unwrap_or_else(|| host.to_string()),
                username: u.clone(),
                password: p.clone(),
            }),
            _ => None,
        }
    }
}

/// `scheme://host[:port][/]` or `host[:port]` → (plain_http if a scheme was
/// given, normalised host).
fn parse_mirror(m: &str) -> Result<(Option<bool>, String), String> {
    let (scheme, rest) = match m.split_once("://") {
        Some(("http", rest)) => (Some(true), rest),
        Some(("https", rest)) => (Some(false), rest),
        Some((s, _)) => return Err(format!("scheme {s:?} is not http or https")),
        None => (None, m),
    };
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.contains('/') {
        return Err("a mirror is scheme://host[:port], without a path".into());
    }
    let host = normalize_host(host).ok_or_else(|| "not a valid host[:port]".to_string())?;
    Ok((scheme, host))
}

/// Lowercase, `index.docker.io` / `registry-1.docker.io` → `docker.io`;
/// None if it is not a `host[:port]`.
pub(crate) fn normalize_host(host: &str) -> Option<String> {
    let h = host.to_ascii_lowercase();
    if h.is_empty() || h.contains('/') || h.contains('@') {
        return None;
    }
    let probe = format!("{h}/x");
    let r = crate::reference::Reference::parse(&probe).ok()?;
    if r.registry != h
        && !(r.registry == DEFAULT_REGISTRY
            && (h == "index.docker.io" || h == "registry-1.docker.io"))
    {
        // `Reference::parse` took it for a repository, not a host (no dot,
        // no port): accept plain single-label hosts too.
        if h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !h.starts_with('-')
        {
            return Some(h);
        }
        return None;
    }
    Some(r.registry)
}

/// `localhost`, 127.0.0.0/8 or `[::1]`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, _)) => return v6 == "::1" || v6 == "0:0:0:0:0:0:0:1",
            None => return false,
        }
    } else {
        host.split_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

// ----- credentials -----------------------------------------------------------

/// A user name and password for a registry.
///
/// `registry` is a host (`myreg:5000`, `docker.io`), optionally with a
/// repository path prefix (`myreg:5000/team`) and `*` wildcards for whole
/// host labels (`*.example.com`), as in Kubernetes' credential key matching.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credential {
    /// How well this credential matches `host` / `repository`: None if it
    /// does not; otherwise higher is more specific.
    pub fn matches(&self, host: &str, repository: &str) -> Option<usize> {
        let (key_host, key_path) = match self.registry.split_once('/') {
            Some((h, p)) => (h, p.trim_end_matches('/')),
            None => (self.registry.as_str(), ""),
        };
        let host = normalize_host(host).unwrap_or_else(|| host.to_ascii_lowercase());
        let key_host = normalize_host(key_host).unwrap_or_else(|| key_host.to_ascii_lowercase());
        let (kh, kport) = split_port(&key_host);
        let (hh, hport) = split_port(&host);
        if kport != hport {
            return None;
        }
        let klabels: Vec<&str> = kh.split('.').collect();
        let hlabels: Vec<&str> = hh.split('.').collect();
        if klabels.len() != hlabels.len() {
            return None;
        }
        let mut score = 0;
        for (k, h) in klabels.iter().zip(&hlabels) {
            if *k == "*" {
                continue;
            }
            if k != h {
                return None;
            }
            score += 1;
        }
        if !key_path.is_empty() {
            let prefix_ok = repository == key_path
                || repository
                    .strip_prefix(key_path)
                    .is_some_and(|rest| rest.starts_with('/'));
            if !prefix_ok {
                return None;
            }
            score += 1000 * (1 + key_path.split('/').count());
        }
        Some(score + 1)
    }
}

fn split_port(host: &str) -> (&str, &str) {
    if host.starts_with('[') {
        return match host.rsplit_once("]:") {
            Some((h, p)) => (h, p),
            None => (host, ""),
        };
    }
    host.split_once(':').unwrap_or((host, ""))
}

/// The most specific credential for `host`/`repository` among `creds`.
pub fn find_credential<'a>(
    creds: &'a [Credential],
    host: &str,
    repository: &str,
) -> Option<&'a Credential> {
    let mut best: Option<(usize, &Credential)> = None;
    for c in creds {
        if let Some(score) = c.matches(host, repository) {
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: Option<BTreeMap<String, DockerAuthEntry>>,
}

#[derive(Deserialize)]
struct DockerAuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

/// Credentials from a Kubernetes `kubernetes.io/dockerconfigjson` secret's
/// `.dockerconfigjson` value (already base64-decoded from the Secret's
/// `data`): `{"auths":{"HOST":{"username":..,"password":..}}}` or
/// `{"auths":{"HOST":{"auth":"base64(user:pass)"}}}`. The legacy
/// `.dockercfg` shape (the same map without `auths`) is accepted too. Keys
/// may be URLs (`https://index.docker.io/v1/` means `docker.io`). Entries
/// without a user name or password (identity tokens) are skipped.
pub fn credentials_from_dockerconfigjson(bytes: &[u8]) -> Result<Vec<Credential>, ImageError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::PullSecret(format!(".dockerconfigjson is not JSON: {e}")))?;
    let auths: BTreeMap<String, DockerAuthEntry> = if value.get("auths").is_some() {
        let parsed: DockerConfigJson = serde_json::from_value(value).map_err(|e| {
            ImageError::PullSecret(format!(
                ".dockerconfigjson: expected {{\"auths\": {{HOST: {{\"username\", \"password\"}} or {{\"auth\"}}}}}}: {e}"
            ))
        })?;
        parsed.auths.unwrap_or_default()
    } else {
        serde_json::from_value(value).map_err(|e| {
            ImageError::PullSecret(format!(
                ".dockerconfigjson has no \"auths\" object and is not a .dockercfg map: {e}"
            ))
        })?
    };
    let mut out = Vec::new();
    for (key, entry) in auths {
        let registry = credential_key(&key).ok_or_else(|| {
            ImageError::PullSecret(format!(
                ".dockerconfigjson: auths key {key:?} is not a registry host or URL"
            ))
        })?;
        let (username, password) = match &entry.auth {
            Some(auth) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| {
                        ImageError::PullSecret(format!(
                            ".dockerconfigjson: auths[{key:?}].auth is not base64: {e}"
                        ))
                    })?;
                let text = String::from_utf8(decoded).map_err(|_| {
                    ImageError::PullSecret(format!(
                        ".dockerconfigjson: auths[{key:?}].auth is not UTF-8 text"
                    ))
                })?;
                let (u, p) = text.split_once(':').ok_or_else(|| {
                    ImageError::PullSecret(format!(
                        ".dockerconfigjson: auths[{key:?}].auth must be base64 of \"username:password\""
                    ))
                })?;
                (u.to_string(), p.to_string())
            }
            _ => (
                entry.username.clone().unwrap_or_default(),
                entry.password.clone().unwrap_or_default(),
            ),
        };
        if username.is_empty() && password.is_empty() {
            tracing::warn!(registry = %key, "image pull secret entry has no username/password; skipped");
            continue;
        }
        out.push(Credential {
            registry,
            username,
            password,
        });
    }
    Ok(out)
}

/// A docker config key (`https://index.docker.io/v1/`, `myreg:5000`,
/// `http://myreg/v2/`, `myreg/team`) → `host[:port][/path]`.
fn credential_key(key: &str) -> Option<String> {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let rest = rest.trim_end_matches('/');
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    // Old docker config keys carry the API version: `host/v1/`, `host/v2/`.
    let path = match path {
        "v1" | "v2" => "",
        p => p,
    };
    let host = if host.contains('*') {
        // Wildcards cannot go through normalize_host; check the labels.
        let ok = host.split(':').next().is_some_and(|h| {
            h.split('.').all(|l| {
                l == "*"
                    || (!l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            })
        });
        if !ok {
            return None;
        }
        host.to_ascii_lowercase()
    } else {
        normalize_host(host)?
    };
    if path.is_empty() {
        Some(host)
    } else {
        Some(format!("{host}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RegistryConfig, ImageError> {
        RegistryConfig::parse(text, Path::new("/etc/peapod/registries.toml"))
    }

    #[test]
    fn missing_file_is_default() {
        let d = tempfile::tempdir().expect("tempdir");
        let cfg = RegistryConfig::load(&d.path().join("nope.toml")).expect("load");
        assert_eq!(cfg, RegistryConfig::default());
        let eps = cfg.endpoints("docker.io");
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].url(), "https://docker.io");
        assert!(!eps[0].mirror);
    }

    #[test]
    fn loads_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let ca = d.path().join("ca.pem");
        std::fs::write(&ca, "not checked here").expect("write ca");
        let path = d.path().join("registries.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[registry."docker.io"]
mirrors = ["http://127.0.0.1:5000", "https://mirror.local:5443/"]
[registry."registry.k8s.io"]
mirrors = ["mirror.local:5443"]
skip_upstream = true
[registry."mirror.local:5443"]
ca_file = "{}"
[registry."myreg:5000"]
insecure = true
username = "u"
password = "p"
"#,
                ca.display()
            ),
        )
        .expect("write config");
        let cfg = RegistryConfig::load(&path).expect("load");

        let eps = cfg.endpoints("docker.io");
        let urls: Vec<String> = eps.iter().map(|e| e.url()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:5000",
                "https://mirror.local:5443",
                "https://docker.io"
            ]
        );
        assert!(eps[0].mirror && eps[1].mirror && !eps[2].mirror);
        // The mirror's own table gives its CA.
        assert_eq!(eps[1].ca_file.as_deref(), Some(ca.as_path()));
        // index.docker.io is docker.io.
        assert_eq!(cfg.endpoints("index.docker.io"), eps);

        let eps = cfg.endpoints("registry.k8s.io");
        assert_eq!(eps.len(), 1, "skip_upstream: only the mirror");
        assert_eq!(eps[0].url(), "https://mirror.local:5443");
        assert_eq!(eps[0].ca_file.as_deref(), Some(ca.as_path()));

        // insecure: https without verification, then plain http.
        let eps = cfg.endpoints("myreg:5000");
        assert_eq!(eps.len(), 2);
        assert!(!eps[0].plain_http && eps[0].skip_verify);
        assert!(eps[1].plain_http);
        let c = cfg.credential("myreg:5000").expect("config credential");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(cfg.credential("docker.io").is_none());
    }

    #[test]
    fn loopback_is_plain_http() {
        let cfg = RegistryConfig::default();
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
            let eps = cfg.endpoints(host);
            assert_eq!(eps.len(), 1, "{host}");
            assert!(eps[0].plain_http, "{host}");
            assert_eq!(eps[0].host, host);
        }
        for host in [
            "128.0.0.1:5000",
            "myhost",
            "[::2]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(host), "{host}");
            assert!(!cfg.endpoints(host)[0].plain_http, "{host}");
        }
    }

    #[test]
    fn rejects_bad_config() {
        for (text, needle) in [
            (
                "[registry.\"docker.io\"]\nmirror = [\"x\"]\n",
                "unknown field",
            ),
            ("[registry.\"a b\"]\n", "the key must be a registry host"),
            (
                "[registry.\"docker.io\"]\nmirrors = [\"ftp://m\"]\n",
                "scheme \"ftp\"",
            ),
            (
                "[registry.\"docker.io\"]\nmirrors = [\"http://m:5000/v2/x\"]\n",
                "without a path",
            ),
            (
                "[registry.\"docker.io\"]\nskip_upstream = true\n",
                "needs at least one entry in mirrors",
            ),
            ("[registry.\"r:1\"]\nusername = \"u\"\n", "password is not"),
            (
                "[registry.\"r:1\"]\nca_file = \"/nonexistent/ca.pem\"\n",
                "/nonexistent/ca.pem does not exist",
            ),
            (
                "[registry.\"docker.io\"]\n[registry.\"index.docker.io\"]\n",
                "configured twice",
            ),
            ("registry = 3", "invalid type"),
        ] {
            match parse(text) {
                Err(e @ ImageError::RegistryConfig { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(needle), "{text:?}: {msg}");
                    assert!(msg.contains("/etc/peapod/registries.toml"), "{msg}");
                }
                other => panic!("{text:?}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn dockerconfigjson() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let json = serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64.encode("hub:secret:with:colons")},
                "myreg:5000": {"username": "u", "password": "p", "email": "x@y"},
                "http://other.example/v2/": {"username": "o", "password": "q"},
                "quay.io/team": {"auth": b64.encode("t:tp")},
                "*.corp.example": {"username": "w", "password": "wp"},
                "tokenonly.example": {"identitytoken": "abc"},
            }
        });
        let creds =
            credentials_from_dockerconfigjson(json.to_string().as_bytes()).expect("parse secret");
        let by = |r: &str| {
            creds
                .iter()
                .find(|c| c.registry == r)
                .unwrap_or_else(|| panic!("no credential for {r}: {creds:?}"))
        };
        assert_eq!(creds.len(), 5, "{creds:?}");
        assert_eq!(by("docker.io").username, "hub");
        assert_eq!(by("docker.io").password, "secret:with:colons");
        assert_eq!(by("myreg:5000").password, "p");
        assert_eq!(by("other.example").username, "o");
        assert_eq!(by("quay.io/team").password, "tp");
        assert_eq!(by("*.corp.example").username, "w");
        assert!(
            !format!("{creds:?}").contains("secret"),
            "passwords redacted"
        );

        // Matching.
        let f = |host: &str, repo: &str| find_credential(&creds, host, repo).map(|c| &c.username);
        assert_eq!(
            f("docker.io", "library/busybox").map(|s| s.as_str()),
            Some("hub")
        );
        assert_eq!(f("index.docker.io", "x/y").map(|s| s.as_str()), Some("hub"));
        assert_eq!(f("myreg:5000", "a").map(|s| s.as_str()), Some("u"));
        assert_eq!(f("myreg", "a"), None, "ports must match");
        assert_eq!(f("myreg:5001", "a"), None);
        assert_eq!(f("quay.io", "team/app").map(|s| s.as_str()), Some("t"));
        assert_eq!(f("quay.io", "teamx/app"), None, "path prefix by component");
        assert_eq!(f("a.corp.example", "x").map(|s| s.as_str()), Some("w"));
        assert_eq!(f("a.b.corp.example", "x"), None, "* is one label");

        // A more specific key wins.
        let two = vec![
            Credential {
                registry: "quay.io".into(),
                username: "general".into(),
                password: "g".into(),
            },
            Credential {
                registry: "quay.io/team/app".into(),
                username: "specific".into(),
                password: "s".into(),
            },
        ];
        assert_eq!(
            find_credential(&two, "quay.io", "team/app").map(|c| c.username.as_str()),
            Some("specific")
        );
        assert_eq!(
            find_credential(&two, "quay.io", "team/other").map(|c| c.username.as_str()),
            Some("general")
        );

        // Legacy .dockercfg shape.
        let legacy = serde_json::json!({"myreg:5000": {"auth": b64.encode("l:lp")}});
        let creds =
            credentials_from_dockerconfigjson(legacy.to_string().as_bytes()).expect("legacy");
        assert_eq!(creds[0].username, "l");
    }

    #[test]
    fn dockerconfigjson_errors() {
        for (input, needle) in [
            ("not json".to_string(), "not JSON"),
            (
                r#"{"auths":{"r:1":{"auth":"%%%"}}}"#.to_string(),
                "auth is not base64",
            ),
            (
                format!(
                    r#"{{"auths":{{"r:1":{{"auth":"{}"}}}}}}"#,
                    base64::engine::general_purpose::STANDARD.encode("nocolon")
                ),
                "username:password",
            ),
            (
                r#"{"auths":{"a b":{"username":"u"}}}"#.to_string(),
                "not a registry host",
            ),
            (r#"{"auths":[1]}"#.to_string(), "expected"),
        ] {
            let err = credentials_from_dockerconfigjson(input.as_bytes())
                .expect_err(&input)
                .to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
