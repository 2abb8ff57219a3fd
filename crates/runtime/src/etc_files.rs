//! The kubelet-style `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`
//! each container of a pod gets.

use crate::error::RuntimeError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The pod's resolver configuration (CRI's `DNSConfig`): written as
/// `/etc/resolv.conf`'s `nameserver`, `search` and `options` lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// `spec.hostAliases[]`: more names for an address in `/etc/hosts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// What the pod's files are made of.
#[derive(Debug, Clone, Copy)]
pub struct EtcFiles<'a> {
    pub hostname: &'a str,
    /// `hostname.subdomain.ns.svc.<cluster domain>` of a pod with a
    /// subdomain: the first name of the pod's line in `/etc/hosts`.
    pub fqdn: Option<&'a str>,
    pub host_network: bool,
    pub pod_ip: Option<&'a str>,
    /// None: the host's `/etc/resolv.conf` as is.
    pub dns: Option<&'a DnsConfig>,
    pub host_aliases: &'a [HostAlias],
}

/// The hosts file kubelet writes for a pod: its hostname (after its FQDN
/// when it has a subdomain) on the pod's IP (from CNI); with no IP (no pod
/// network configured) on 127.0.1.1, which the pod's `lo` answers.
pub fn hosts_file(hostname: &str, fqdn: Option<&str>, pod_ip: Option<&str>) -> String {
    let ip = pod_ip.unwrap_or("127.0.1.1");
    let names = match fqdn {
        Some(f) => format!("{f}\t{hostname}"),
        None => hostname.to_string(),
    };
    format!(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         {ip}\t{names}\n"
    )
}

/// kubelet's hostAliases section of a hosts file (empty without aliases).
pub fn host_aliases_section(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        s.push_str(&a.ip);
        s.push('\t');
        s.push_str(&a.hostnames.join("\t"));
        s.push('\n');
    }
    s
}

/// The resolv.conf of `dns`, laid out as containerd writes it.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    let mut s = String::new();
    if !dns.searches.is_empty() {
        s.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for ns in &dns.servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !dns.options.is_empty() {
        s.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    s
}

/// Write `hosts`, `hostname` and `resolv.conf` into `dir`. With the host
/// network the host's hosts file and hostname are used, as kubelet does.
pub fn write(dir: &Path, f: &EtcFiles<'_>) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io(dir))?;
    let mut hosts = if f.host_network {
        std::fs::read_to_string("/etc/hosts")
            .unwrap_or_else(|_| hosts_file(f.hostname, f.fqdn, None))
    } else {
        hosts_file(f.hostname, f.fqdn, f.pod_ip)
    };
    hosts.push_str(&host_aliases_section(f.host_aliases));
    let name = if f.host_network {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    } else {
        f.hostname.to_string()
    };
    let resolv = match f.dns {
        Some(dns) => resolv_conf(dns),
        None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    for (file, content) in [
        ("hosts", hosts),
        ("hostname", format!("{name}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(file);
        std::fs::write(&p, content).map_err(RuntimeError::io(&p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_hostname() {
        let h = hosts_file("web-0", None, None);
        assert!(h.starts_with("# Kubernetes-managed hosts file."));
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("127.0.1.1\tweb-0\n"));
        let h = hosts_file("web-0", None, Some("10.85.0.7"));
        assert!(h.ends_with("::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.85.0.7\tweb-0\n"), "{h}");
        let h = hosts_file(
            "web-0",
            Some("web-0.web.default.svc.cluster.local"),
            Some("10.85.0.7"),
        );
        assert!(
            h.ends_with("\n10.85.0.7\tweb-0.web.default.svc.cluster.local\tweb-0\n"),
            "{h}"
        );
    }

    #[test]
    fn aliases_and_resolv_conf_as_kubelet_and_containerd_write_them() {
        assert_eq!(host_aliases_section(&[]), "");
        let a = host_aliases_section(&[
            HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: vec!["foo.local".into(), "bar.local".into()],
            },
            HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: vec!["foo.remote".into()],
            },
        ]);
        assert_eq!(
            a,
            "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
        );
        let r = resolv_conf(&DnsConfig {
            servers: vec!["10.85.0.1".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        });
        assert_eq!(
            r,
            "search default.svc.cluster.local svc.cluster.local\nnameserver 10.85.0.1\noptions ndots:5\n"
        );
        assert_eq!(resolv_conf(&DnsConfig::default()), "");
    }
}
