//! A pod's resolver configuration, formed by kubelet's rules
//! (pkg/kubelet/network/dns): `dnsPolicy` picks the base (the cluster DNS
//! with the namespace's search list and `ndots:5`, the host's
//! resolv.conf, or nothing), `dnsConfig` is merged on top, and the result
//! is cut to the resolver's limits (3 nameservers, 32 search domains of
//! at most 253 characters, 2048 characters in all) with a warning.

use k8s_openapi::api::core::v1::Pod;
use peapod_runtime::DnsConfig;
use std::net::IpAddr;

/// kubelet's `MaxDNSNameservers`.
pub const MAX_NAMESERVERS: usize = 3;
/// `MaxDNSSearchPathsExpanded` / `MaxDNSSearchListCharsExpanded`.
pub const MAX_SEARCHES: usize = 32;
pub const MAX_SEARCH_CHARS: usize = 2048;
/// A search domain longer than this aborts some resolvers (glibc 2.28).
const MAX_SEARCH_LEN: usize = 253;

/// The host's resolv.conf as kubelet reads it: nameserver lines
/// accumulate, the last `search` and the last `options` line win.
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut c = DnsConfig::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => c.servers.extend(fields.next().map(String::from)),
            Some("search") => {
                c.searches = fields
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect()
            }
            Some("options") => c.options = fields.map(String::from).collect(),
            _ => {}
        }
    }
    c
}

fn omit_duplicates(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// The pod's DNS configuration and the warnings kubelet records as
/// `DNSConfigForming` / `MissingClusterDNS` events. `cluster_dns` is the
/// cluster DNS server (None when the daemon serves none).
pub fn pod_dns(
    pod: &Pod,
    host: &DnsConfig,
    cluster_dns: Option<IpAddr>,
    domain: &str,
) -> (DnsConfig, Vec<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let mut warnings = Vec::new();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "Default" => Some(false),
        // ClusterFirst (and anything validation let through).
        _ => Some(!host_network),
    };
    let mut dns = match cluster {
        None => DnsConfig::default(),
        Some(true) => match cluster_dns {
            Some(ip) => {
                let ns = crate::node::namespace_of(&pod.metadata);
                let mut searches = vec![
                    format!("{ns}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.to_string(),
                ];
                searches.extend(host.searches.iter().cloned());
                DnsConfig {
                    servers: vec![ip.to_string()],
                    searches: omit_duplicates(searches),
                    options: vec!["ndots:5".into()],
                }
            }
            None => {
                warnings.push(format!(
                    "MissingClusterDNS: the daemon serves no cluster DNS and cannot create the pod with {policy:?} policy; falling back to \"Default\" policy"
                ));
                host.clone()
            }
        },
        Some(false) => host.clone(),
    };
    if let Some(cfg) = &spec.dns_config {
        let mut servers = dns.servers;
        servers.extend(cfg.nameservers.iter().flatten().cloned());
        dns.servers = omit_duplicates(servers);
        let mut searches = dns.searches;
        searches.extend(cfg.searches.iter().flatten().cloned());
        dns.searches = omit_duplicates(searches);
        // Options by name, the pod's overriding; first-seen order.
        let mut opts: Vec<(String, Option<String>)> = Vec::new();
        let mut set =
            |name: &str, value: Option<String>| match opts.iter_mut().find(|(n, _)| n == name) {
                Some(o) => o.1 = value,
                None => opts.push((name.to_string(), value)),
            };
        for o in &dns.options {
            match o.split_once(':') {
                Some((n, v)) => set(n, Some(v.to_string())),
                None => set(o, None),
            }
        }
        for o in cfg.options.iter().flatten() {
            set(o.name.as_deref().unwrap_or_default(), o.value.clone());
        }
        dns.options = opts
            .into_iter()
            .map(|(n, v)| match v.filter(|v| !v.is_empty()) {
                Some(v) => format!("{n}:{v}"),
                None => n,
            })
            .collect();
    }
    // The limits.
    if dns.servers.len() > MAX_NAMESERVERS {
        dns.servers.truncate(MAX_NAMESERVERS);
        warnings.push(format!(
            "DNSConfigForming: Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
            dns.servers.join(" ")
        ));
    }
    let mut cut = false;
    if dns.searches.len() > MAX_SEARCHES {
        dns.searches.truncate(MAX_SEARCHES);
        cut = true;
    }
    let before = dns.searches.len();
    dns.searches.retain(|s| s.len() <= MAX_SEARCH_LEN);
    cut |= dns.searches.len() != before;
    while dns.searches.join(" ").len() > MAX_SEARCH_CHARS {
        dns.searches.pop();
        cut = true;
    }
    if cut {
        warnings.push(format!(
            "DNSConfigForming: Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
            dns.searches.join(" ")
        ));
    }
    (dns, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn host() -> DnsConfig {
        parse_resolv_conf(
            "# generated\nnameserver 192.168.1.1\nsearch old.example\nsearch corp.example. lab.example\nnameserver 192.168.1.2\noptions timeout:1\noptions edns0 attempts:3\n",
        )
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 85, 0, 1)));

    #[test]
    fn the_host_file_is_read_as_kubelet_reads_it() {
        let h = host();
        assert_eq!(h.servers, ["192.168.1.1", "192.168.1.2"]);
        assert_eq!(h.searches, ["corp.example", "lab.example"]);
        assert_eq!(h.options, ["edns0", "attempts:3"]);
    }

    #[test]
    fn policies_pick_the_base() {
        let p = pod("metadata: {name: p, namespace: team}\nspec: {containers: []}\n");
        let (d, w) = pod_dns(&p, &host(), IP, "cluster.local");
        assert!(w.is_empty());
        assert_eq!(d.servers, ["10.85.0.1"]);
        assert_eq!(
            d.searches,
            [
                "team.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example"
            ]
        );
        assert_eq!(d.options, ["ndots:5"]);
        // hostNetwork + ClusterFirst falls back to the host's.
        let hn = pod("metadata: {name: p}\nspec: {hostNetwork: true, dnsPolicy: ClusterFirst, containers: []}\n");
        assert_eq!(pod_dns(&hn, &host(), IP, "cluster.local").0, host());
        let hn = pod("metadata: {name: p}\nspec: {hostNetwork: true, dnsPolicy: ClusterFirstWithHostNet, containers: []}\n");
        assert_eq!(
            pod_dns(&hn, &host(), IP, "cluster.local").0.servers,
            ["10.85.0.1"]
        );
        let def = pod("metadata: {name: p}\nspec: {dnsPolicy: Default, containers: []}\n");
        assert_eq!(pod_dns(&def, &host(), IP, "cluster.local").0, host());
        // No cluster DNS: the host's, with a warning.
        let (d, w) = pod_dns(&p, &host(), None, "cluster.local");
        assert_eq!(d, host());
        assert!(w[0].starts_with("MissingClusterDNS"), "{w:?}");
    }

    #[test]
    fn dns_config_is_merged_and_cut_to_the_limits() {
        let p = pod(
            "metadata: {name: p}\nspec:\n  dnsPolicy: None\n  containers: []\n  dnsConfig:\n    nameservers: [1.1.1.1, 1.1.1.1, 8.8.8.8]\n    searches: [a.example, a.example, b.example]\n    options: [{name: ndots, value: '2'}, {name: edns0}]\n",
        );
        let (d, w) = pod_dns(&p, &host(), IP, "cluster.local");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(d.servers, ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(d.searches, ["a.example", "b.example"]);
        assert_eq!(d.options, ["ndots:2", "edns0"]);
        let p = pod(
            "metadata: {name: p}\nspec:\n  containers: []\n  dnsConfig:\n    nameservers: [1.1.1.1, 2.2.2.2, 3.3.3.3]\n    options: [{name: ndots, value: '1'}, {name: single-request-reopen}]\n",
        );
        let (d, w) = pod_dns(&p, &host(), IP, "cluster.local");
        assert_eq!(d.servers, ["10.85.0.1", "1.1.1.1", "2.2.2.2"]);
        assert_eq!(d.options, ["ndots:1", "single-request-reopen"]);
        assert!(
            w[0].contains("the applied nameserver line is: 10.85.0.1 1.1.1.1 2.2.2.2"),
            "{w:?}"
        );
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let p = pod(&format!(
            "metadata: {{name: p}}\nspec:\n  dnsPolicy: None\n  containers: []\n  dnsConfig:\n    searches: [{}]\n",
            many.join(", ")
        ));
        let (d, w) = pod_dns(&p, &host(), IP, "cluster.local");
        assert_eq!(d.searches.len(), MAX_SEARCHES);
        assert!(w[0].starts_with("DNSConfigForming: Search Line limits were exceeded"));
    }
}
