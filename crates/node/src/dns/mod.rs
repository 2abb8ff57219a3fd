//! Cluster DNS: a DNS server in the daemon (hickory) on the pod network's
//! gateway address, answering the cluster domain (`cluster.local`) from
//! the store's Services and EndpointSlices and forwarding other names to
//! the host's resolvers; and the pods' resolv.conf (`resolv`).

pub mod resolv;
pub mod server;
pub mod table;

use crate::node::Node;
use peapod_runtime::DnsConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use table::Table;
use tokio::sync::watch;

/// The default cluster domain (kubelet's `--cluster-domain`).
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// How pods resolve names on this node.
#[derive(Debug, Clone)]
pub struct ClusterDns {
    pub domain: String,
    /// The cluster DNS server pods with `ClusterFirst` use; None when the
    /// daemon serves none (they fall back to the host's, as kubelet
    /// without `--cluster-dns` does).
    pub server: Option<IpAddr>,
    /// The host's resolver file (kubelet's `--resolv-conf`).
    pub host_resolv_conf: PathBuf,
}

impl ClusterDns {
    /// The pod's resolver configuration and the warnings to record.
    pub fn pod_dns(&self, pod: &k8s_openapi::api::core::v1::Pod) -> (DnsConfig, Vec<String>) {
        let host = std::fs::read_to_string(&self.host_resolv_conf)
            .map(|t| resolv::parse_resolv_conf(&t))
            .unwrap_or_default();
        resolv::pod_dns(pod, &host, self.server, &self.domain)
    }
}

/// What of a pod's `/etc` files comes from its DNS settings.
pub struct PodEtc {
    pub dns: Option<DnsConfig>,
    pub host_aliases: Vec<peapod_runtime::HostAlias>,
    pub fqdn: Option<String>,
}

/// The pod's resolver configuration (recording kubelet's warnings as
/// events), its hostAliases, and its FQDN when it has a subdomain
/// (`<hostname>.<subdomain>.<ns>.svc.<domain>`, hostname defaulting to
/// the pod's name, as kubelet's GeneratePodHostNameAndDomain).
pub fn pod_etc(node: &Node, pod: &k8s_openapi::api::core::v1::Pod) -> PodEtc {
    let spec = pod.spec.clone().unwrap_or_default();
    let cluster = node.dns.get();
    let dns = cluster.map(|c| {
        let (dns, warnings) = c.pod_dns(pod);
        for w in warnings {
            let (reason, msg) = w.split_once(": ").unwrap_or(("DNSConfigForming", &w));
            node.events.record(pod, "Warning", reason, msg);
        }
        dns
    });
    let domain = cluster.map_or(DEFAULT_DOMAIN, |c| c.domain.as_str());
    let fqdn = spec
        .subdomain
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|sub| {
            let host = spec
                .hostname
                .clone()
                .filter(|h| !h.is_empty())
                .or_else(|| pod.metadata.name.clone())
                .unwrap_or_default();
            let ns = crate::node::namespace_of(&pod.metadata);
            format!("{host}.{sub}.{ns}.svc.{domain}")
        });
    let host_aliases = spec
        .host_aliases
        .iter()
        .flatten()
        .map(|a| peapod_runtime::HostAlias {
            ip: a.ip.clone(),
            hostnames: a.hostnames.clone().unwrap_or_default(),
        })
        .collect();
    PodEtc {
        dns,
        host_aliases,
        fqdn,
    }
}

/// The upstream resolvers of the host's resolv.conf (port 53), without
/// `own` (never forward to ourselves).
pub fn host_upstreams(text: &str, own: SocketAddr) -> Vec<SocketAddr> {
    resolv::parse_resolv_conf(text)
        .servers
        .iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|a| *a != own)
        .collect()
}

/// The table of the store's Services and EndpointSlices now.
fn build(node: &Node, domain: &str) -> Result<Table, String> {
    let e = |e: crate::store::StoreError| e.to_string();
    let services = node.store.list("services/").map_err(e)?;
    let slices = node.store.list("endpointslices/").map_err(e)?;
    Ok(Table::build(domain, &services, &slices))
}

/// Keep `tx` up to date: rebuild the table whenever a Service or
/// EndpointSlice changes (changes arriving together in one pass).
async fn follow(node: Arc<Node>, domain: String, tx: watch::Sender<Arc<Table>>) {
    let mut changes = node.store.subscribe();
    loop {
        let (n, d) = (node.clone(), domain.clone());
        match tokio::task::spawn_blocking(move || build(&n, &d)).await {
            Ok(Ok(t)) => {
                if tx.send(Arc::new(t)).is_err() {
                    return;
                }
            }
            Ok(Err(e)) => tracing::warn!("dns: reading services: {e}"),
            Err(e) => tracing::warn!("dns: the table task failed: {e}"),
        }
        loop {
            match changes.recv().await {
                Ok(c) if c.key.starts_with("services/") || c.key.starts_with("endpointslices/") => {
                    break
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            changes.try_recv()
        {}
    }
}

/// Start the DNS server on `addr` (UDP and TCP) for `domain`, answering
/// from the store and forwarding to `upstreams`. Returns once listening.
pub async fn start(
    node: Arc<Node>,
    addr: SocketAddr,
    domain: &str,
    upstreams: &[SocketAddr],
) -> std::io::Result<()> {
    let (udp, tcp) = server::listen(addr)?;
    let first = {
        let (n, d) = (node.clone(), domain.to_string());
        tokio::task::spawn_blocking(move || build(&n, &d))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?
    };
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(follow(node, domain.to_string(), tx));
    let handler = server::Handler {
        table: rx,
        upstream: server::upstream_resolver(upstreams),
    };
    let mut srv = server::spawn(handler, udp, tcp);
    tokio::spawn(async move {
        if let Err(e) = srv.block_until_done().await {
            tracing::error!("dns: the server stopped: {e}");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests;
