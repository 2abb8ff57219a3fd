//! Masquerade of pod egress in peapod's own nftables table, for a pod
//! network whose `bridge` plugin does not masquerade itself (`ipMasq`
//! false, as in peapod's default configuration).
//!
//! The bridge plugin's `ipMasq` adds an iptables chain per pod (nine
//! `iptables` runs on ADD, as many on DEL: about 30 ms of CPU per pod
//! here). One rule per range of the network does the same for every pod:
//! traffic from the range to anywhere outside it (and not multicast) leaves
//! with the host's address, as the plugin's per-pod chain does. The table
//! is written when the daemon starts (so no pod start waits for it) and
//! removed when the daemon stops with no sandbox holding an address; it
//! stays while pods outlive the daemon, as the plugin's rules would.

use crate::cni::list::NetworkConfigList;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Egress {
    /// `table ip NAME`.
    table: String,
    /// The network's IPv4 ranges (`10.85.0.0/16`).
    ranges: Vec<String>,
    active: Mutex<Active>,
}

/// Sandboxes holding an address, and whether the table was written (the
/// daemon's and the CRI's runtimes share one `Egress`; the second to
/// start need not write it again).
#[derive(Debug, Default)]
struct Active {
    sandboxes: BTreeSet<String>,
    written: bool,
}

/// The IPv4 subnets of a `bridge` plugin that does not masquerade
/// (host-local `ranges`, or the older `ipam.subnet`); empty when the
/// plugin masquerades itself or the network has no bridge.
pub fn unmasqueraded_ranges(list: &NetworkConfigList) -> Vec<String> {
    let Some(bridge) = list
        .plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("bridge"))
    else {
        return Vec::new();
    };
    if bridge.get("ipMasq").and_then(Value::as_bool) == Some(true) {
        return Vec::new();
    }
    let Some(ipam) = bridge.get("ipam") else {
        return Vec::new();
    };
    let mut out: Vec<String> = ipam
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|r| r.get("subnet").and_then(Value::as_str))
        .chain(ipam.get("subnet").and_then(Value::as_str))
        .filter(|s| is_ipv4_cidr(s))
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

fn is_ipv4_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
    })
}

impl Egress {
    /// None when the network needs no masquerade from peapod.
    pub fn new(table: &str, list: &NetworkConfigList) -> Option<Egress> {
        let ranges = unmasqueraded_ranges(list);
        (!ranges.is_empty()).then(|| Egress {
            table: table.to_string(),
            ranges,
            active: Mutex::new(Active::default()),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The whole table, as one `nft -f -` transaction.
    pub fn script(&self) -> String {
        let mut rules = String::new();
        for r in &self.ranges {
            rules.push_str(&format!(
                "\t\tip saddr {r} ip daddr != {r} ip daddr != 224.0.0.0/4 masquerade\n"
            ));
        }
        format!(
            "add table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n\
             \tcomment \"peapod pod egress masquerade; rewritten as a whole by the peapod daemon\"\n\
             \tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n{rules}\t}}\n}}\n",
            t = self.table
        )
    }

    fn delete_script(&self) -> String {
        format!("add table ip {t}\ndelete table ip {t}\n", t = self.table)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Active> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sandbox `sid` got an address.
    pub fn attached(&self, sid: &str) {
        self.lock().sandboxes.insert(sid.to_string());
    }

    /// Sandbox `sid` released its address.
    pub fn detached(&self, sid: &str) {
        self.lock().sandboxes.remove(sid);
    }

    /// At start (of each runtime sharing this): the sandboxes that still
    /// hold an address; the table is (re)written.
    pub fn seed(&self, sids: impl IntoIterator<Item = String>) -> Result<(), String> {
        let mut active = self.lock();
        active.sandboxes.extend(sids);
        if !active.written {
            nft_apply(&self.script())?;
            active.written = true;
        }
        Ok(())
    }

    /// The daemon stops: the table goes unless a pod still holds an
    /// address (pods outlive the daemon).
    pub fn release(&self) -> Result<(), String> {
        let mut active = self.lock();
        if active.sandboxes.is_empty() {
            nft_apply(&self.delete_script())?;
            active.written = false;
        }
        Ok(())
    }
}

/// Run `script` with `nft -f -` (one transaction).
pub fn nft_apply(script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (install the nftables package): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing rules to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f - failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(bridge: Value) -> NetworkConfigList {
        NetworkConfigList {
            name: "n".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![json!({"type": "loopback"}), bridge],
            disable_check: false,
            source: "x".into(),
        }
    }

    #[test]
    fn ranges_of_a_bridge_that_does_not_masquerade() {
        let ranges = json!({"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/16"}], [{"subnet": "fd00::/64"}]]});
        assert_eq!(
            unmasqueraded_ranges(&list(
                json!({"type": "bridge", "ipMasq": false, "ipam": ranges})
            )),
            ["10.85.0.0/16"]
        );
        assert_eq!(
            unmasqueraded_ranges(&list(
                json!({"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}})
            )),
            ["10.9.0.0/24"]
        );
        assert!(unmasqueraded_ranges(&list(
            json!({"type": "bridge", "ipMasq": true, "ipam": ranges})
        ))
        .is_empty());
        assert!(unmasqueraded_ranges(&list(json!({"type": "ptp", "ipam": ranges}))).is_empty());
        assert!(Egress::new(
            "t",
            &list(json!({"type": "bridge", "ipMasq": true, "ipam": ranges}))
        )
        .is_none());
    }

    #[test]
    fn one_rule_per_range_as_the_plugin_masquerades() {
        let e = Egress::new(
            "pp",
            &list(json!({"type": "bridge", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/16"}]]}})),
        )
        .unwrap();
        let s = e.script();
        assert!(
            s.starts_with("add table ip pp\ndelete table ip pp\ntable ip pp {"),
            "{s}"
        );
        assert!(
            s.contains("type nat hook postrouting priority srcnat;"),
            "{s}"
        );
        assert!(
            s.contains(
                "ip saddr 10.85.0.0/16 ip daddr != 10.85.0.0/16 ip daddr != 224.0.0.0/4 masquerade"
            ),
            "{s}"
        );
    }
}
