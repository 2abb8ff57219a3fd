//! The kubelet-style `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`
//! each container of a pod gets.

use crate::error::RuntimeError;
use std::path::Path;

/// The hosts file kubelet writes for a pod: its hostname on the pod's IP
/// (from CNI); with no IP (no pod network configured) on 127.0.1.1, which
/// the pod's `lo` answers.
pub fn hosts_file(hostname: &str, pod_ip: Option<&str>) -> String {
    let ip = pod_ip.unwrap_or("127.0.1.1");
    format!(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         {ip}\t{hostname}\n"
    )
}

/// Write `hosts`, `hostname` and `resolv.conf` into `dir`. With the host
/// network the host's files are copied, as kubelet does.
pub fn write(
    dir: &Path,
    hostname: &str,
    host_network: bool,
    pod_ip: Option<&str>,
) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(RuntimeError::io(dir))?;
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts_file(hostname, None))
    } else {
        hosts_file(hostname, pod_ip)
    };
    let name = if host_network {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    } else {
        hostname.to_string()
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
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
    #[test]
    fn hosts_has_hostname() {
        let h = super::hosts_file("web-0", None);
        assert!(h.starts_with("# Kubernetes-managed hosts file."));
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("127.0.1.1\tweb-0\n"));
        let h = super::hosts_file("web-0", Some("10.85.0.7"));
        assert!(h.ends_with("::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.85.0.7\tweb-0\n"), "{h}");
    }
}
