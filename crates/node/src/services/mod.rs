//! Services: clusterIP and nodePort allocation, the EndpointSlice
//! controller and the nftables data plane (a reconcile loop over the
//! store), and the service environment variables of pods.

pub mod endpoints;
pub mod nft;

use crate::node::Node;
use crate::store::Store;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

/// The default service range (`--service-cluster-ip-range`).
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/16";
/// The default name of peapod's nftables table.
pub const DEFAULT_NFT_TABLE: &str = "peapod";

/// How this daemon runs Services.
#[derive(Debug)]
pub struct ServiceConfig {
    /// The service range's network address and prefix length.
    pub network: Ipv4Addr,
    pub prefix: u8,
    /// `table ip NAME`: peapod's own nftables table.
    pub table: String,
    /// Held while choosing and storing addresses and ports, so two
    /// Services never get the same.
    pub alloc: Mutex<()>,
}

impl ServiceConfig {
    /// `cidr` like `10.96.0.0/16` (prefix /8 to /30); `table` an nft
    /// identifier.
    pub fn new(cidr: &str, table: &str) -> Result<Self, String> {
        let bad = || {
            format!("--service-cidr {cidr:?}: must be an IPv4 network like 10.96.0.0/16 (prefix 8 to 30)")
        };
        let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        if table.is_empty()
            || table.len() > 64
            || !table.starts_with(|c: char| c.is_ascii_alphabetic())
            || !table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "--nft-table {table:?}: must be a name of letters, digits, '-' and '_' starting with a letter"
            ));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(ServiceConfig {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
            table: table.to_string(),
            alloc: Mutex::new(()),
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.network)
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
}

/// A random starting point for a search (per call).
fn random_start(n: u32) -> u32 {
    let h = std::collections::hash_map::RandomState::new().hash_one(uuid::Uuid::new_v4());
    (h % n as u64) as u32
}

/// Give `svc` (defaulted) a clusterIP and nodePorts where it has none,
/// keeping those of `old` (what the user's apply leaves out stays, as the
/// API server keeps them), and check given ones against the range and the
/// other Services. The caller holds `cfg.alloc` until the Service is
/// stored.
pub fn allocate(
    cfg: &ServiceConfig,
    svc: &mut Service,
    old: Option<&Service>,
    others: &[Service],
) -> Result<(), String> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let invalid = |m: String| format!("Service {name:?} is invalid: {m}");
    let Some(spec) = svc.spec.as_mut() else {
        return Ok(());
    };
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let old_spec = old.and_then(|o| o.spec.as_ref());
    if ty == "ExternalName" {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        return Ok(());
    }
    let used_ips: std::collections::HashSet<Ipv4Addr> = others
        .iter()
        .filter_map(|o| o.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok())
        .collect();
    if spec.cluster_ip.as_deref().unwrap_or("").is_empty() {
        spec.cluster_ip = old_spec
            .and_then(|o| o.cluster_ip.clone())
            .filter(|ip| !ip.is_empty());
    }
    match spec.cluster_ip.clone().as_deref() {
        Some("None") => {}
        None | Some("") => {
            // Network and broadcast addresses are never given out.
            let n = cfg.size() - 2;
            let start = random_start(n);
            let ip = (0..n)
                .map(|i| Ipv4Addr::from(u32::from(cfg.network) + 1 + (start + i) % n))
                .find(|ip| !used_ips.contains(ip))
                .ok_or_else(|| {
                    invalid(format!(
                        "spec.clusterIPs: Internal error: failed to allocate a serviceIP: range {} is full",
                        cfg.cidr()
                    ))
                })?;
            spec.cluster_ip = Some(ip.to_string());
        }
        Some(given) => {
            let mine = old_spec.and_then(|o| o.cluster_ip.as_deref()) == Some(given);
            if let Ok(ip) = given.parse::<Ipv4Addr>() {
                if !cfg.contains(ip) {
                    return Err(invalid(format!(
                        "spec.clusterIPs: Invalid value: {given:?}: failed to allocate IP {given}: the provided IP ({given}) is not in the valid range. The range of valid IPs is {}",
                        cfg.cidr()
                    )));
                }
                if !mine && used_ips.contains(&ip) {
                    return Err(invalid(format!(
                        "spec.clusterIPs: Invalid value: {given:?}: failed to allocate IP {given}: provided IP is already allocated"
                    )));
                }
            }
        }
    }
    spec.cluster_ips = spec.cluster_ip.clone().map(|ip| vec![ip]);
    if ty != "NodePort" {
        return Ok(());
    }
    let mut used_ports: std::collections::HashSet<i32> = others
        .iter()
        .filter_map(|o| o.spec.as_ref()?.ports.as_ref())
        .flatten()
        .filter_map(|p| p.node_port)
        .collect();
    let old_ports = old_spec.and_then(|o| o.ports.clone()).unwrap_or_default();
    let range = peapod_api::NODE_PORT_RANGE;
    for (i, p) in spec.ports.iter_mut().flatten().enumerate() {
        match p.node_port.filter(|n| *n != 0) {
            Some(np) => {
                let mine = old_ports.iter().any(|o| o.node_port == Some(np));
                if !mine && used_ports.contains(&np) {
                    return Err(invalid(format!(
                        "spec.ports[{i}].nodePort: Invalid value: {np}: provided port is already allocated"
                    )));
                }
                used_ports.insert(np);
            }
            None => {
                // Keep the port this Service port had.
                let kept = old_ports
                    .iter()
                    .find(|o| o.port == p.port && o.protocol == p.protocol)
                    .and_then(|o| o.node_port)
                    .filter(|n| *n != 0);
                let np = match kept {
                    Some(np) => np,
                    None => {
                        let n = (range.end() - range.start() + 1) as u32;
                        let start = random_start(n);
                        (0..n)
                            .map(|k| range.start() + ((start + k) % n) as i32)
                            .find(|np| !used_ports.contains(np))
                            .ok_or_else(|| {
                                invalid(format!(
                                    "spec.ports[{i}].nodePort: Internal error: failed to allocate a nodePort: range 30000-32767 is full"
                                ))
                            })?
                    }
                };
                used_ports.insert(np);
                p.node_port = Some(np);
            }
        }
    }
    Ok(())
}

/// The variables kubelet gives containers for `services` (those of the
/// pod's namespace with a clusterIP): `WEB_SERVICE_HOST`,
/// `WEB_SERVICE_PORT`, `WEB_SERVICE_PORT_<NAME>`, and the Docker-links
/// style `WEB_PORT`, `WEB_PORT_80_TCP`, `..._PROTO`, `..._PORT`, `..._ADDR`.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services
        .iter()
        .filter(|s| peapod_api::has_cluster_ip(s))
        .collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let upper = |s: &str| s.to_ascii_uppercase().replace('-', "_");
    for s in sorted {
        let Some(spec) = &s.spec else { continue };
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let name = upper(s.metadata.name.as_deref().unwrap_or_default());
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.clone()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{name}_SERVICE_PORT_{}", upper(pn)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.as_deref().unwrap_or("TCP").to_string()
        };
        out.push((
            format!("{name}_PORT"),
            format!(
                "{}://{ip}:{}",
                proto(first).to_ascii_lowercase(),
                first.port
            ),
        ));
        for p in ports {
            let pr = proto(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, pr.to_ascii_uppercase());
            out.push((
                prefix.clone(),
                format!("{}://{ip}:{}", pr.to_ascii_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), pr.to_ascii_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.clone()));
        }
    }
    out
}

/// One pass: write every Service's EndpointSlices, remove the slices of
/// Services that are gone, and return the nft script for the lot.
pub fn reconcile(store: &Store, node_name: &str, table: &str) -> Result<String, String> {
    let e = |e: crate::store::StoreError| e.to_string();
    let services: Vec<Service> = store.list("services/").map_err(e)?;
    // Without Services, pods' changes cost no listing (pod start-up
    // benchmarks run without any).
    let pods: Vec<Pod> = if services.is_empty() {
        Vec::new()
    } else {
        store.list("pods/").map_err(e)?
    };
    let existing: Vec<EndpointSlice> = store.list("endpointslices/").map_err(e)?;
    let mut keep = std::collections::HashSet::new();
    let mut plane = Vec::new();
    for svc in &services {
        let ns = crate::node::namespace_of(&svc.metadata);
        let Some(desired) = endpoints::desired_slices(svc, &pods, node_name) else {
            // Without a selector the slices are the user's.
            let name = svc.metadata.name.clone().unwrap_or_default();
            let theirs: Vec<EndpointSlice> = existing
                .iter()
                .filter(|s| {
                    crate::node::namespace_of(&s.metadata) == ns
                        && s.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(endpoints::SERVICE_NAME_LABEL))
                            == Some(&name)
                })
                .cloned()
                .collect();
            plane.push((svc.clone(), theirs));
            continue;
        };
        for want in &desired {
            let name = want.metadata.name.clone().unwrap_or_default();
            let key = crate::store::key("endpointslices", &ns, &name);
            keep.insert(key.clone());
            let cur = existing.iter().find(|s| {
                s.metadata.name.as_deref() == Some(&name)
                    && crate::node::namespace_of(&s.metadata) == ns
            });
            match cur {
                Some(cur) if endpoints::same_slice(cur, want) => {}
                Some(cur) => {
                    let mut next = want.clone();
                    next.metadata = cur.metadata.clone();
                    next.metadata.labels = want.metadata.labels.clone();
                    next.metadata.owner_references = want.metadata.owner_references.clone();
                    match store.update(next) {
                        // Someone else changed it: the next pass sees it.
                        Ok(_)
                        | Err(crate::store::StoreError::Conflict { .. })
                        | Err(crate::store::StoreError::NotFound { .. }) => {}
                        Err(err) => return Err(err.to_string()),
                    }
                }
                None => match store.create(want.clone()) {
                    Ok(_) | Err(crate::store::StoreError::AlreadyExists { .. }) => {}
                    Err(err) => return Err(err.to_string()),
                },
            }
        }
        plane.push((svc.clone(), desired));
    }
    // Slices this controller made for Services that are gone (or for
    // ports sets no pod resolves to any more).
    for s in &existing {
        let ns = crate::node::namespace_of(&s.metadata);
        let name = s.metadata.name.clone().unwrap_or_default();
        let key = crate::store::key("endpointslices", &ns, &name);
        let ours = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(endpoints::MANAGED_BY_LABEL))
            .map(String::as_str)
            == Some(endpoints::MANAGED_BY);
        if ours && !keep.contains(&key) {
            store.delete("endpointslices", &key).map_err(e)?;
        }
    }
    Ok(nft::render(table, &plane))
}

/// The controller: reconcile now, then whenever a pod, Service or
/// EndpointSlice changes (changes arriving together are handled in one
/// pass), and write the data plane when its rules change. The first pass
/// rebuilds the table from the store: rules of Services deleted while the
/// daemon was away go, and the rules never disappear in between.
pub async fn run(node: Arc<Node>, cfg: Arc<ServiceConfig>) {
    let mut changes = node.store.subscribe();
    let mut last: Option<String> = None;
    let mut failing = false;
    loop {
        let n = node.clone();
        let table = cfg.table.clone();
        let res = tokio::task::spawn_blocking(move || {
            let script = reconcile(&n.store, &n.hostname, &table)?;
            Ok::<_, String>(script)
        })
        .await
        .unwrap_or_else(|e| Err(format!("the reconcile task failed: {e}")));
        let mut retry = false;
        match res {
            Ok(script) if last.as_deref() == Some(script.as_str()) => {}
            Ok(script) => {
                let s = script.clone();
                match tokio::task::spawn_blocking(move || nft::apply(&s)).await {
                    Ok(Ok(())) => {
                        if failing {
                            tracing::info!("services: nftables rules written again");
                        }
                        failing = false;
                        last = Some(script);
                    }
                    other => {
                        let msg = match other {
                            Ok(Err(e)) => e,
                            Err(e) => e.to_string(),
                            Ok(Ok(())) => String::new(),
                        };
                        if !failing {
                            tracing::warn!(table = %cfg.table, "services: writing nftables rules: {msg}");
                            eprintln!(
                                "peapod: warning: services: writing nftables table {}: {msg}",
                                cfg.table
                            );
                        }
                        failing = true;
                        retry = true;
                    }
                }
            }
            Err(e) => {
                tracing::warn!("services: reconciling endpoint slices: {e}");
                retry = true;
            }
        }
        // Wait for a relevant change (or retry a failure after a while).
        let wait = async {
            loop {
                match changes.recv().await {
                    Ok(c) => {
                        if c.key.starts_with("pods/")
                            || c.key.starts_with("services/")
                            || c.key.starts_with("endpointslices/")
                        {
                            return true;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        let go_on = if retry {
            tokio::select! {
                r = wait => r,
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => true,
            }
        } else {
            wait.await
        };
        if !go_on {
            return;
        }
        // Let a burst of changes settle into one pass.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            changes.try_recv()
        {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        let mut s: Service = serde_yaml_ng::from_str(yaml).unwrap();
        peapod_api::default_service(&mut s);
        s
    }

    #[test]
    fn allocation_keeps_given_and_old_and_avoids_used() {
        let cfg = ServiceConfig::new("10.96.0.0/30", "t").unwrap();
        let mut a = svc("metadata: {name: a}\nspec:\n  ports: [{port: 80}]\n");
        allocate(&cfg, &mut a, None, &[]).unwrap();
        let ip_a = a.spec.as_ref().unwrap().cluster_ip.clone().unwrap();
        assert!(ip_a == "10.96.0.1" || ip_a == "10.96.0.2", "{ip_a}");
        let mut b = svc("metadata: {name: b}\nspec:\n  ports: [{port: 80}]\n");
        allocate(&cfg, &mut b, None, &[a.clone()]).unwrap();
        assert_ne!(b.spec.as_ref().unwrap().cluster_ip.as_ref().unwrap(), &ip_a);
        let mut c = svc("metadata: {name: c}\nspec:\n  ports: [{port: 80}]\n");
        let e = allocate(&cfg, &mut c, None, &[a.clone(), b.clone()]).unwrap_err();
        assert!(e.contains("range 10.96.0.0/30 is full"), "{e}");
        // Re-applying without the address keeps it.
        let mut again = svc("metadata: {name: a}\nspec:\n  ports: [{port: 80}]\n");
        allocate(&cfg, &mut again, Some(&a), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            again.spec.as_ref().unwrap().cluster_ip.as_ref(),
            Some(&ip_a)
        );
        let mut out =
            svc("metadata: {name: d}\nspec:\n  clusterIP: 10.1.0.1\n  ports: [{port: 80}]\n");
        let e = allocate(&cfg, &mut out, None, &[]).unwrap_err();
        assert!(
            e.contains("is not in the valid range. The range of valid IPs is 10.96.0.0/30"),
            "{e}"
        );
        let mut np = svc("metadata: {name: n}\nspec:\n  type: NodePort\n  ports: [{port: 80}]\n");
        allocate(&cfg, &mut np, None, &[]).unwrap();
        let port = np.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
            .node_port
            .unwrap();
        assert!(peapod_api::NODE_PORT_RANGE.contains(&port));
        let mut np2 = svc(&format!("metadata: {{name: m}}\nspec:\n  type: NodePort\n  ports: [{{port: 80, nodePort: {port}}}]\n"));
        let e = allocate(&cfg, &mut np2, None, &[np.clone()]).unwrap_err();
        assert!(e.contains("provided port is already allocated"), "{e}");
        let mut headless =
            svc("metadata: {name: h}\nspec:\n  clusterIP: None\n  ports: [{port: 80}]\n");
        allocate(&cfg, &mut headless, None, &[]).unwrap();
        assert_eq!(headless.spec.unwrap().cluster_ip.as_deref(), Some("None"));
    }

    #[test]
    fn env_as_kubelet_names_it() {
        let s = svc("metadata: {name: my-web}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80}, {name: dns, port: 53, protocol: UDP}]\n");
        let headless =
            svc("metadata: {name: h}\nspec:\n  clusterIP: None\n  ports: [{port: 80}]\n");
        let env = service_env(&[s, headless]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MY_WEB_SERVICE_HOST"), Some("10.96.0.10"));
        assert_eq!(get("MY_WEB_SERVICE_PORT"), Some("80"));
        assert_eq!(get("MY_WEB_SERVICE_PORT_HTTP"), Some("80"));
        assert_eq!(get("MY_WEB_SERVICE_PORT_DNS"), Some("53"));
        assert_eq!(get("MY_WEB_PORT"), Some("tcp://10.96.0.10:80"));
        assert_eq!(get("MY_WEB_PORT_53_UDP"), Some("udp://10.96.0.10:53"));
        assert_eq!(get("MY_WEB_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("MY_WEB_PORT_80_TCP_PORT"), Some("80"));
        assert_eq!(get("MY_WEB_PORT_80_TCP_ADDR"), Some("10.96.0.10"));
        assert!(get("H_SERVICE_HOST").is_none());
    }

    struct Services(Vec<Service>);
    impl crate::env::Sources for Services {
        fn config_map(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, String> {
            Ok(None)
        }
        fn secret(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<k8s_openapi::api::core::v1::Secret>, String> {
            Ok(None)
        }
        fn services(&self, _: &str) -> Result<Vec<Service>, String> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn container_env_overrides_service_links_and_links_can_be_off() {
        let src = Services(vec![svc(
            "metadata: {name: web}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{port: 80}]\n",
        )]);
        let pod: Pod = serde_yaml_ng::from_str(
            "metadata: {name: p, namespace: default}\nspec:\n  containers:\n  - name: c\n    image: x\n    env:\n    - {name: WEB_SERVICE_PORT, value: '8080'}\n    - {name: URL, value: 'http://$(WEB_SERVICE_HOST)/'}\n",
        )
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let ctx = crate::env::PodContext::default();
        let env = crate::env::make_environment(&pod, c, &src, &ctx).unwrap();
        let get = |k: &str| {
            env.vars
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("WEB_SERVICE_HOST").as_deref(), Some("10.96.0.10"));
        assert_eq!(get("WEB_SERVICE_PORT").as_deref(), Some("8080"));
        assert_eq!(get("URL").as_deref(), Some("http://10.96.0.10/"));
        let mut off = pod.clone();
        off.spec.as_mut().unwrap().enable_service_links = Some(false);
        let env = crate::env::make_environment(&off, c, &src, &ctx).unwrap();
        assert!(!env.vars.iter().any(|(n, _)| n == "WEB_SERVICE_HOST"));
    }
}
