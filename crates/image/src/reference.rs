//! Image references, normalised the way docker and containerd normalise them.

use std::fmt;
use std::str::FromStr;

use crate::error::ImageError;

/// The default registry for names without a registry part.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The default tag when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference:
/// `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port if any: `docker.io`, `localhost`, `host:5000`.
    pub registry: String,
    /// Repository path: `library/busybox`, `peapod/busybox`.
    pub repository: String,
    /// Tag; `latest` when the reference had neither tag nor digest.
    pub tag: Option<String>,
    /// Digest (`sha256:<64 hex>`), if the reference pinned one.
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalise a reference:
    /// `busybox` → `docker.io/library/busybox:latest`,
    /// `localhost/peapod/busybox` → registry `localhost`,
    /// `host:5000/a/b@sha256:…` → registry `host:5000`, digest, no tag.
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }

        let (rest, digest) = match s.rsplit_once('@') {
            Some((rest, d)) => {
                validate_digest(d).map_err(|e| bad(&format!("bad digest: {e}")))?;
                (rest, Some(d.to_string()))
            }
            None => (s, None),
        };

        // A tag is the part after the last ':' when that ':' comes after the
        // last '/' (otherwise the ':' belongs to a registry port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad(&format!(
                    "tag {t:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
                )));
            }
        }
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }

        let (registry, repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if !valid_registry(&registry) {
            return Err(bad(&format!(
                "registry {registry:?} is not a valid host[:port]"
            )));
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        for comp in repository.split('/') {
            if !valid_path_component(comp) {
                return Err(bad(&format!(
                    "repository path component {comp:?} must be lowercase letters and digits \
                     separated by '.', '_', '__' or '-'"
                )));
            }
        }
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("repository name longer than 255 characters"));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ImageError> {
        if !valid_tag(tag) {
            return Err(ImageError::InvalidReference {
                reference: format!("{}:{tag}", self.name()),
                reason: format!("tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
            });
        }
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    t.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// A path component: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`; host is dot-separated labels of letters, digits and '-',
/// or a bracketed IPv6 address.
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                    return false;
                }
                match after.strip_prefix(':') {
                    Some(p) => ("v6", Some(p)),
                    None if after.is_empty() => ("v6", None),
                    None => return false,
                }
            }
            None => return false,
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Check a digest string; only `sha256:<64 lowercase hex>` is supported.
pub(crate) fn validate_digest(d: &str) -> Result<(), ImageError> {
    let bad = |reason: &str| ImageError::InvalidDigest {
        digest: d.to_string(),
        reason: reason.to_string(),
    };
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| bad("expected ALGORITHM:HEX"))?;
    if alg != "sha256" {
        return Err(bad(&format!(
            "algorithm {alg:?} is not supported (only sha256)"
        )));
    }
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("sha256 digest must be 64 lowercase hex characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).expect(s).to_string()
    }

    #[test]
    fn normalises() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("index.docker.io/foo/bar"), "docker.io/foo/bar:latest");
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            norm("localhost/peapod/busybox"),
            "localhost/peapod/busybox:latest"
        );
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("quay.io/a/b/c:t_1.2-x"), "quay.io/a/b/c:t_1.2-x");
        assert_eq!(
            norm("a__b/c-d--e/f.g_h"),
            "docker.io/a__b/c-d--e/f.g_h:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("host:5000/a/b@{d}")).expect("digest ref");
        assert_eq!(r.registry, "host:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("host:5000/a/b@{d}"));
        let r = Reference::parse(&format!("busybox:1@{d}")).expect("tag+digest");
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{d}"));
        let r = Reference::parse("[::1]:5000/x:y").expect("ipv6");
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(r.name(), "[::1]:5000/x");
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "Busybox",
            "busybox:",
            ":tag",
            "a//b",
            "a/b/",
            "-a",
            "a..b",
            "a_-b",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "busybox:bad/tag",
            "host:port/x",
            "bu sybox",
            "busybox:.x",
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?} should be rejected");
        }
        let long = format!("x:{}", "a".repeat(129));
        assert!(Reference::parse(&long).is_err());
    }
}
