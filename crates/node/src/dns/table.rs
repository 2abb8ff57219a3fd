//! The cluster's DNS records, as the Kubernetes DNS specification lays
//! them out (what CoreDNS's kubernetes plugin answers), built from the
//! store's Services and EndpointSlices whenever they change; queries
//! only read the table.
//!
//! - `<svc>.<ns>.svc.<domain>` A: the clusterIP; for a headless Service
//!   the ready endpoints' addresses (all with
//!   `publishNotReadyAddresses`); for an ExternalName Service a CNAME.
//! - `<hostname>.<svc>.<ns>.svc.<domain>` A: an endpoint with a hostname
//!   (a pod whose `hostname` is set and whose `subdomain` names the
//!   headless Service); other endpoints of a headless Service answer as
//!   `<a-b-c-d>.<svc>.<ns>.svc.<domain>`.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for named ports: the
//!   Service name and port (clusterIP), one per endpoint (headless).
//! - `<a-b-c-d>.<ns>.pod.<domain>` A: that address.

use hickory_server::proto::rr::rdata::{A, CNAME, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// Time to live of the answers (CoreDNS's default for the kubernetes
/// plugin).
pub const TTL: u32 = 5;

/// What a name in the cluster domain answers.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The records of the asked type (empty: the name exists, no data of
    /// that type). A CNAME answers every type.
    Records(Vec<Record>),
    /// The name does not exist.
    NxDomain,
}

/// The records of the cluster domain.
#[derive(Debug, Default)]
pub struct Table {
    /// The cluster domain, lowercase, no trailing dot (`cluster.local`).
    domain: String,
    /// Lowercase names without the trailing dot → their records.
    records: HashMap<String, Vec<Record>>,
    /// Names that exist without records of their own (`svc.<domain>`,
    /// `<ns>.svc.<domain>`, the parents of SRV names).
    empty: HashSet<String>,
}

/// `name` lowercased, without its trailing dot.
pub fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Option<Name> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).ok()
}

fn ready(ep: &k8s_openapi::api::discovery::v1::Endpoint, publish_not_ready: bool) -> bool {
    publish_not_ready || ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
}

impl Table {
    pub fn new(domain: &str) -> Self {
        Table {
            domain: key(domain),
            ..Default::default()
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `name` (any case, with or without the trailing dot) is in
    /// the cluster domain.
    pub fn in_domain(&self, name: &str) -> bool {
        let k = key(name);
        k == self.domain || k.ends_with(&format!(".{}", self.domain))
    }

    fn add(&mut self, name: &str, rdata: RData) {
        let Some(n) = fqdn(name) else {
            tracing::debug!(name, "dns: not a valid name; no record");
            return;
        };
        self.records
            .entry(key(name))
            .or_default()
            .push(Record::from_rdata(n, TTL, rdata));
        self.add_parents(name);
    }

    /// Every name between `name` and the cluster domain exists.
    fn add_parents(&mut self, name: &str) {
        let mut k = key(name);
        while let Some((_, parent)) = k.split_once('.') {
            if parent.len() < self.domain.len() {
                break;
            }
            self.empty.insert(parent.to_string());
            k = parent.to_string();
        }
    }

    /// The table of `services` and their `slices`.
    pub fn build(domain: &str, services: &[Service], slices: &[EndpointSlice]) -> Self {
        let mut t = Table::new(domain);
        let d = t.domain.clone();
        t.empty.insert(d.clone());
        t.empty.insert(format!("svc.{d}"));
        t.empty.insert(format!("pod.{d}"));
        // Slices by (namespace, service name).
        let mut by_svc: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(crate::services::endpoints::SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let ns = crate::node::namespace_of(&s.metadata);
            by_svc.entry((ns, svc.clone())).or_default().push(s);
        }
        for svc in services {
            let Some(spec) = &svc.spec else { continue };
            let ns = crate::node::namespace_of(&svc.metadata);
            let name = svc.metadata.name.clone().unwrap_or_default();
            let base = format!("{name}.{ns}.svc.{d}");
            t.empty.insert(key(&base));
            t.add_parents(&base);
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref().and_then(fqdn) {
                    t.add(&base, RData::CNAME(CNAME(target)));
                }
                continue;
            }
            let ports = spec.ports.as_deref().unwrap_or_default();
            let cluster_ip = spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
            if let Some(ip) = cluster_ip {
                t.add(&base, RData::A(A(ip)));
                let Some(target) = fqdn(&base) else { continue };
                for p in ports {
                    let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                        continue;
                    };
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    let Ok(port) = u16::try_from(p.port) else {
                        continue;
                    };
                    t.add(
                        &format!("_{pn}._{proto}.{base}"),
                        RData::SRV(SRV::new(0, 100, port, target.clone())),
                    );
                }
                continue;
            }
            // Headless: the endpoints themselves.
            let publish = spec.publish_not_ready_addresses.unwrap_or(false);
            let mut seen = HashSet::new();
            for slice in by_svc
                .get(&(ns.clone(), name.clone()))
                .into_iter()
                .flatten()
            {
                for ep in slice.endpoints.iter().filter(|e| ready(e, publish)) {
                    for addr in &ep.addresses {
                        let Ok(ip) = addr.parse::<Ipv4Addr>() else {
                            continue;
                        };
                        let label = ep
                            .hostname
                            .clone()
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| addr.replace('.', "-"));
                        let host = format!("{label}.{base}");
                        if seen.insert(ip) {
                            t.add(&base, RData::A(A(ip)));
                        }
                        if !t.records.contains_key(&key(&host)) {
                            t.add(&host, RData::A(A(ip)));
                        }
                        let Some(target) = fqdn(&host) else { continue };
                        for p in slice.ports.iter().flatten() {
                            let (Some(pn), Some(port)) = (
                                p.name.as_deref().filter(|n| !n.is_empty()),
                                p.port.and_then(|n| u16::try_from(n).ok()),
                            ) else {
                                continue;
                            };
                            let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                            t.add(
                                &format!("_{pn}._{proto}.{base}"),
                                RData::SRV(SRV::new(0, 100, port, target.clone())),
                            );
                        }
                    }
                }
            }
        }
        t
    }

    /// The answer for `name` and `qtype`, `name` in the cluster domain.
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Answer {
        let k = key(name);
        if let Some(recs) = self.records.get(&k) {
            let cname: Vec<Record> = recs
                .iter()
                .filter(|r| r.record_type() == RecordType::CNAME)
                .cloned()
                .collect();
            if !cname.is_empty() {
                return Answer::Records(cname);
            }
            return Answer::Records(
                recs.iter()
                    .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
                    .cloned()
                    .collect(),
            );
        }
        if let Some(r) = self.pod_record(&k, qtype) {
            return r;
        }
        if self.empty.contains(&k) {
            return Answer::Records(Vec::new());
        }
        Answer::NxDomain
    }

    /// `a-b-c-d.<ns>.pod.<domain>`: that address (kube-dns's pod records).
    fn pod_record(&self, k: &str, qtype: RecordType) -> Option<Answer> {
        let rest = k.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (dashed, _ns) = rest.split_once('.')?;
        let ip: Ipv4Addr = dashed.replace('-', ".").parse().ok()?;
        let recs = if matches!(qtype, RecordType::A | RecordType::ANY) {
            vec![Record::from_rdata(fqdn(k)?, TTL, RData::A(A(ip)))]
        } else {
            Vec::new()
        };
        Some(Answer::Records(recs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn slice(yaml: &str) -> EndpointSlice {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn a(ans: Answer) -> Vec<String> {
        match ans {
            Answer::Records(r) => {
                let mut v: Vec<String> = r
                    .iter()
                    .map(|r| match r.data() {
                        RData::A(a) => a.0.to_string(),
                        RData::CNAME(c) => format!("CNAME {}", c.0),
                        RData::SRV(s) => format!("SRV {} {}", s.port(), s.target()),
                        other => format!("{other:?}"),
                    })
                    .collect();
                v.sort();
                v
            }
            Answer::NxDomain => vec!["NXDOMAIN".into()],
        }
    }

    fn table() -> Table {
        let services = vec![
            svc("metadata: {name: web, namespace: default}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, protocol: TCP}, {port: 81}]\n"),
            svc("metadata: {name: db, namespace: prod}\nspec:\n  clusterIP: None\n  ports: [{name: pg, port: 5432}]\n"),
            svc("metadata: {name: ext, namespace: default}\nspec:\n  type: ExternalName\n  externalName: example.com\n"),
        ];
        let slices = vec![slice(
            "metadata:\n  name: db-abc\n  namespace: prod\n  labels: {kubernetes.io/service-name: db}\naddressType: IPv4\nports: [{name: pg, port: 5432, protocol: TCP}]\nendpoints:\n- addresses: [10.85.0.4]\n  hostname: db-0\n  conditions: {ready: true}\n- addresses: [10.85.0.5]\n  conditions: {ready: true}\n- addresses: [10.85.0.6]\n  conditions: {ready: false}\n",
        )];
        Table::build("cluster.local", &services, &slices)
    }

    #[test]
    fn services_answer_by_their_kind() {
        let t = table();
        assert_eq!(
            a(t.lookup("web.default.svc.cluster.local.", RecordType::A)),
            ["10.96.0.10"]
        );
        assert_eq!(
            a(t.lookup("WEB.Default.svc.cluster.local", RecordType::A)),
            ["10.96.0.10"]
        );
        // The name exists, no AAAA: an empty answer, not NXDOMAIN.
        assert!(a(t.lookup("web.default.svc.cluster.local", RecordType::AAAA)).is_empty());
        assert_eq!(
            a(t.lookup("_http._tcp.web.default.svc.cluster.local", RecordType::SRV)),
            ["SRV 80 web.default.svc.cluster.local."]
        );
        // Headless: the ready endpoints only.
        assert_eq!(
            a(t.lookup("db.prod.svc.cluster.local", RecordType::A)),
            ["10.85.0.4", "10.85.0.5"]
        );
        assert_eq!(
            a(t.lookup("db-0.db.prod.svc.cluster.local", RecordType::A)),
            ["10.85.0.4"]
        );
        assert_eq!(
            a(t.lookup("10-85-0-5.db.prod.svc.cluster.local", RecordType::A)),
            ["10.85.0.5"]
        );
        assert_eq!(
            a(t.lookup("_pg._tcp.db.prod.svc.cluster.local", RecordType::SRV)),
            [
                "SRV 5432 10-85-0-5.db.prod.svc.cluster.local.",
                "SRV 5432 db-0.db.prod.svc.cluster.local."
            ]
        );
        assert_eq!(
            a(t.lookup("ext.default.svc.cluster.local", RecordType::A)),
            ["CNAME example.com."]
        );
        assert_eq!(
            a(t.lookup("10-85-0-9.default.pod.cluster.local", RecordType::A)),
            ["10.85.0.9"]
        );
    }

    #[test]
    fn unknown_names_are_nxdomain_and_parents_exist() {
        let t = table();
        for n in [
            "nope.default.svc.cluster.local",
            "web.other.svc.cluster.local",
            "web.default.default.svc.cluster.local",
            "10-85-0-6.db.prod.svc.cluster.local",
        ] {
            assert_eq!(a(t.lookup(n, RecordType::A)), ["NXDOMAIN"], "{n}");
        }
        for n in [
            "cluster.local",
            "svc.cluster.local",
            "prod.svc.cluster.local",
            "_tcp.web.default.svc.cluster.local",
        ] {
            assert!(a(t.lookup(n, RecordType::A)).is_empty(), "{n}");
        }
        assert!(t.in_domain("web.default.svc.cluster.local."));
        assert!(t.in_domain("Cluster.Local"));
        assert!(!t.in_domain("notcluster.local"));
        assert!(!t.in_domain("example.com"));
    }
}
