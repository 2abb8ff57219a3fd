//! The Services' data plane: nftables rules in peapod's own table (one
//! `table ip NAME`; no other table or tool's chain is ever touched), laid
//! out as kube-proxy's nftables mode lays them out:
//!
//! - `nat-prerouting` / `nat-output` (dstnat, -100: nft 1.0.6 takes the
//!   name only in prerouting) jump to `services`, which
//!   matches each ClusterIP and port and, for local destination addresses
//!   (not 127.0.0.0/8, as kube-proxy), each NodePort;
//! - a service port's chain picks a ready endpoint with
//!   `numgen random mod N vmap { ... }` (with `sessionAffinity: ClientIP`
//!   first a lookup in each endpoint's dynamic set of client addresses);
//! - an endpoint's chain marks hairpin traffic (a pod reaching itself)
//!   for masquerade and DNATs to the pod's IP and port;
//! - NodePort traffic is masqueraded (externalTrafficPolicy Cluster) so
//!   replies come back through this host;
//! - a service port with no ready endpoint is rejected in the filter hooks
//!   (as kube-proxy does) rather than left to time out.
//!
//! The whole table is written as one `nft -f -` transaction (`add table`,
//! `delete table`, the new table): packets see the old rules or the new,
//! never a mix or none; established connections keep their conntrack
//! entries. A table without a Service rule is deleted.
//!
//! Why the `nft` binary with a script rather than a crate: the `nftables`
//! crate itself runs `nft -j`, and rustables' netlink API has no
//! ergonomic verdict maps or dynamic sets; the textual script is the
//! format kube-proxy's knftables feeds to `nft -f -`, readable in
//! `nft list table`, and one atomic transaction.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

/// The mark bit of packets to masquerade (kube-proxy's).
const MASQ_MARK: &str = "0x4000";

/// A name usable in an nft identifier: `[A-Za-z0-9_-]`, with a hash of
/// the original so `a-b/c` and `a/b-c` stay apart.
fn ident(prefix: &str, parts: &[&str]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    let clean: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(180)
        .collect();
    format!("{prefix}-{:08x}-{clean}", h.finish() as u32)
}

/// The ready endpoints (ip, port) of `svc`'s port `name`/`proto`.
fn ready_endpoints(slices: &[EndpointSlice], name: &str, proto: &str) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for s in slices {
        let Some(port) = s.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == name
                && p.protocol.as_deref().unwrap_or("TCP") == proto
        }) else {
            continue;
        };
        let Some(port) = port.port else { continue };
        for e in &s.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                for ip in &e.addresses {
                    out.push((ip.clone(), port));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The nft script that makes `table ip {table}` hold exactly the rules of
/// `services` (each with the slices that belong to it). Without any rule
/// the script only removes the table.
pub fn render(table: &str, services: &[(Service, Vec<EndpointSlice>)]) -> String {
    let mut services_chain = String::new();
    let mut nodeports = String::new();
    let mut no_endpoints = String::new();
    let mut chains = String::new();
    let mut sets = String::new();
    for (svc, slices) in services {
        let Some(spec) = &svc.spec else { continue };
        if !peapod_api::has_cluster_ip(svc) {
            continue;
        }
        let ip = spec.cluster_ip.clone().unwrap_or_default();
        let ns = crate::node::namespace_of(&svc.metadata);
        let name = svc.metadata.name.clone().unwrap_or_default();
        let affinity = spec.session_affinity.as_deref() == Some("ClientIP");
        let timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10800);
        let node_port = spec.type_.as_deref() == Some("NodePort");
        for p in spec.ports.iter().flatten() {
            let pname = p.name.clone().unwrap_or_default();
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let l4 = proto.to_ascii_lowercase();
            let port = p.port.to_string();
            let chain = ident("svc", &[&ns, &name, &l4, &pname]);
            let eps = ready_endpoints(slices, &pname, &proto);
            let np = p.node_port.filter(|n| *n > 0 && node_port);
            if eps.is_empty() {
                let _ = writeln!(
                    no_endpoints,
                    "\t\tip daddr {ip} {l4} dport {port} reject comment \"{ns}/{name}:{pname} has no endpoints\""
                );
                if let Some(np) = np {
                    let _ = writeln!(
                        no_endpoints,
                        "\t\tfib daddr type local {l4} dport {np} reject comment \"{ns}/{name}:{pname} has no endpoints\""
                    );
                }
                continue;
            }
            let _ = writeln!(
                services_chain,
                "\t\tip daddr {ip} {l4} dport {port} goto {chain} comment \"{ns}/{name}:{pname}\""
            );
            if let Some(np) = np {
                let ext = ident("ext", &[&ns, &name, &l4, &pname]);
                let _ = writeln!(
                    nodeports,
                    "\t\t{l4} dport {np} goto {ext} comment \"{ns}/{name}:{pname}\""
                );
                let _ = writeln!(
                    chains,
                    "\tchain {ext} {{\n\t\tjump mark-for-masquerade\n\t\tgoto {chain}\n\t}}"
                );
            }
            let mut body = String::new();
            let mut vmap = Vec::new();
            for (i, (eip, eport)) in eps.iter().enumerate() {
                let ep = ident("ep", &[&ns, &name, &l4, &pname, eip, &eport.to_string()]);
                let mut ep_body = format!("\t\tip saddr {eip} jump mark-for-masquerade\n");
                if affinity {
                    let set = ident("aff", &[&ns, &name, &l4, &pname, eip, &eport.to_string()]);
                    let _ = writeln!(
                        sets,
                        "\tset {set} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}"
                    );
                    let _ = writeln!(body, "\t\tip saddr @{set} goto {ep}");
                    let _ = writeln!(ep_body, "\t\tupdate @{set} {{ ip saddr }}");
                }
                let _ = writeln!(ep_body, "\t\tmeta l4proto {l4} dnat to {eip}:{eport}");
                let _ = writeln!(chains, "\tchain {ep} {{\n{ep_body}\t}}");
                vmap.push(format!("{i} : goto {ep}"));
            }
            let _ = writeln!(
                body,
                "\t\tnumgen random mod {} vmap {{ {} }}",
                eps.len(),
                vmap.join(", ")
            );
            let _ = writeln!(chains, "\tchain {chain} {{\n{body}\t}}");
        }
    }
    let mut out = format!("add table ip {table}\ndelete table ip {table}\n");
    if services_chain.is_empty() && nodeports.is_empty() && no_endpoints.is_empty() {
        return out;
    }
    let _ = write!(
        out,
        "table ip {table} {{\n\
         \tcomment \"peapod Services; rewritten as a whole by the peapod daemon\"\n\
         {sets}\
         \tchain nat-prerouting {{\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain nat-output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}}\n\
         \tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority 100; policy accept;\n\t\tjump masquerading\n\t}}\n\
         \tchain masquerading {{\n\t\tmeta mark & {MASQ_MARK} == 0 return\n\t\tmeta mark set meta mark xor {MASQ_MARK}\n\t\tmasquerade fully-random\n\t}}\n\
         \tchain mark-for-masquerade {{\n\t\tmeta mark set meta mark or {MASQ_MARK}\n\t}}\n\
         \tchain filter-forward {{\n\t\ttype filter hook forward priority -5; policy accept;\n\t\tct state new jump no-endpoints\n\t}}\n\
         \tchain filter-output {{\n\t\ttype filter hook output priority -5; policy accept;\n\t\tct state new jump no-endpoints\n\t}}\n\
         \tchain filter-input {{\n\t\ttype filter hook input priority -5; policy accept;\n\t\tct state new jump no-endpoints\n\t}}\n\
         \tchain no-endpoints {{\n{no_endpoints}\t}}\n\
         \tchain services {{\n{services_chain}\t\tfib daddr type local ip daddr != 127.0.0.0/8 jump nodeports\n\t}}\n\
         \tchain nodeports {{\n{nodeports}\t}}\n\
         {chains}}}\n"
    );
    out
}

/// Run `script` with `nft -f -` (one transaction).
pub fn apply(script: &str) -> Result<(), String> {
    peapod_runtime::egress::nft_apply(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        let mut s: Service = serde_yaml_ng::from_str(yaml).unwrap();
        peapod_api::default_service(&mut s);
        s
    }

    fn slice(port: i32, eps: &[(&str, bool)]) -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-x"},
            "addressType": "IPv4",
            "ports": [{"name": "", "port": port, "protocol": "TCP"}],
            "endpoints": eps.iter().map(|(ip, r)| serde_json::json!({"addresses": [ip], "conditions": {"ready": r}})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn cluster_ip_balances_over_ready_endpoints_only() {
        let s = svc("metadata: {name: web}\nspec:\n  clusterIP: 10.96.0.10\n  ports: [{port: 80, targetPort: 8080}]\n");
        let text = render(
            "t",
            &[(
                s,
                vec![slice(
                    8080,
                    &[("10.0.0.1", true), ("10.0.0.2", false), ("10.0.0.3", true)],
                )],
            )],
        );
        assert!(
            text.starts_with("add table ip t\ndelete table ip t\ntable ip t {"),
            "{text}"
        );
        assert!(
            text.contains("ip daddr 10.96.0.10 tcp dport 80 goto svc-"),
            "{text}"
        );
        assert!(
            text.contains("numgen random mod 2 vmap { 0 : goto ep-"),
            "{text}"
        );
        assert!(text.contains("dnat to 10.0.0.1:8080"), "{text}");
        assert!(text.contains("dnat to 10.0.0.3:8080"), "{text}");
        assert!(!text.contains("10.0.0.2"), "{text}");
    }

    #[test]
    fn no_endpoints_rejects_and_no_services_removes_the_table() {
        let s = svc("metadata: {name: web}\nspec:\n  type: NodePort\n  clusterIP: 10.96.0.10\n  ports: [{port: 80, nodePort: 30080}]\n");
        let text = render("t", &[(s, vec![slice(80, &[])])]);
        assert!(
            text.contains("ip daddr 10.96.0.10 tcp dport 80 reject"),
            "{text}"
        );
        assert!(
            text.contains("fib daddr type local tcp dport 30080 reject"),
            "{text}"
        );
        let headless =
            svc("metadata: {name: web}\nspec:\n  clusterIP: None\n  ports: [{port: 80}]\n");
        assert_eq!(
            render("t", &[(headless, vec![slice(80, &[("10.0.0.1", true)])])]),
            "add table ip t\ndelete table ip t\n"
        );
    }

    #[test]
    fn node_port_and_affinity() {
        let s = svc("metadata: {name: web}\nspec:\n  type: NodePort\n  sessionAffinity: ClientIP\n  clusterIP: 10.96.0.10\n  ports: [{port: 80, nodePort: 30080}]\n");
        let text = render("t", &[(s, vec![slice(80, &[("10.0.0.1", true)])])]);
        assert!(text.contains("tcp dport 30080 goto ext-"), "{text}");
        assert!(text.contains("flags dynamic,timeout"), "{text}");
        assert!(text.contains("timeout 10800s"), "{text}");
        assert!(text.contains("update @aff-"), "{text}");
    }

    /// The kernel and this machine's nft accept what `render` writes
    /// (`nft -c`: checked in a transaction that is then aborted).
    #[test]
    fn nft_accepts_the_script() {
        let s = svc("metadata: {name: web}\nspec:\n  type: NodePort\n  sessionAffinity: ClientIP\n  clusterIP: 10.96.0.10\n  ports: [{name: a, port: 80, nodePort: 30080}, {name: b, port: 53, protocol: UDP}]\n");
        let empty =
            svc("metadata: {name: none}\nspec:\n  clusterIP: 10.96.0.11\n  ports: [{port: 80}]\n");
        let text = render(
            "peapod-unit-check",
            &[
                (
                    s,
                    vec![slice(80, &[("10.0.0.1", true), ("10.0.0.3", true)])],
                ),
                (empty, vec![]),
            ],
        );
        let mut child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
