//! What an ADD result says about the pod: its addresses on the pod's
//! interface, with their gateways (CNI spec 1.0 "Success", and the 0.3/0.4
//! shape, which is the same for these fields; the 0.1/0.2 `ip4`/`ip6`
//! shape too).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One address of the pod.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodIp {
    /// The address alone (`10.85.0.7`).
    pub ip: String,
    /// With its prefix (`10.85.0.7/16`).
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// The addresses of interface `ifname` in the sandbox, IPv4 first. An
/// address with no interface index, or one pointing at an interface
/// inside a sandbox, is the pod's; one on a host-side interface is not.
pub fn pod_ips(result: &Value, ifname: &str) -> Vec<PodIp> {
    let mut out = Vec::new();
    let interfaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_pods = |idx: Option<u64>| match idx {
        None => true,
        Some(i) => interfaces
            .get(i as usize)
            .map(|itf| {
                let sandbox = itf.get("sandbox").and_then(Value::as_str).unwrap_or("");
                let name = itf.get("name").and_then(Value::as_str).unwrap_or("");
                !sandbox.is_empty() && (name == ifname || ifname.is_empty())
            })
            .unwrap_or(false),
    };
    for ip in result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !is_pods(ip.get("interface").and_then(Value::as_u64)) {
            continue;
        }
        if let Some(p) = ip
            .get("address")
            .and_then(Value::as_str)
            .and_then(|a| one(a, ip.get("gateway")))
        {
            out.push(p);
        }
    }
    // CNI 0.1/0.2: {"ip4": {"ip": "10.1.0.2/24", "gateway": ...}, "ip6": ...}
    for key in ["ip4", "ip6"] {
        if let Some(p) = result
            .get(key)
            .and_then(|v| v.get("ip"))
            .and_then(Value::as_str)
            .and_then(|a| one(a, result.get(key).and_then(|v| v.get("gateway"))))
        {
            out.push(p);
        }
    }
    out.sort_by_key(|p| p.ip.contains(':'));
    out
}

fn one(cidr: &str, gateway: Option<&Value>) -> Option<PodIp> {
    let ip = cidr.split('/').next()?;
    ip.parse::<std::net::IpAddr>().ok()?;
    Some(PodIp {
        ip: ip.to_string(),
        cidr: cidr.to_string(),
        gateway: gateway.and_then(Value::as_str).map(String::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bridge_result_gives_the_pods_address() {
        // As /usr/lib/cni/bridge 1.1.1 answers ADD.
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "peapod0", "mac": "1e:8d:b9:65:a0:f6"},
                {"name": "veth4e15accf", "mac": "b2:74:c2:90:9f:5a"},
                {"name": "eth0", "mac": "a2:ee:82:76:94:7d", "sandbox": "/run/peapod/x/ns/net"}
            ],
            "ips": [
                {"interface": 2, "address": "fd00:85::5/64", "gateway": "fd00:85::1"},
                {"interface": 2, "address": "10.85.0.5/16", "gateway": "10.85.0.1"},
                {"interface": 0, "address": "10.85.0.1/16"}
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let ips = pod_ips(&r, "eth0");
        assert_eq!(
            ips,
            [
                PodIp {
                    ip: "10.85.0.5".into(),
                    cidr: "10.85.0.5/16".into(),
                    gateway: Some("10.85.0.1".into())
                },
                PodIp {
                    ip: "fd00:85::5".into(),
                    cidr: "fd00:85::5/64".into(),
                    gateway: Some("fd00:85::1".into())
                }
            ]
        );
        assert!(pod_ips(&r, "eth1").is_empty());
    }

    #[test]
    fn old_result_shape() {
        let r = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.9/24", "gateway": "10.1.0.1"}});
        assert_eq!(pod_ips(&r, "eth0")[0].ip, "10.1.0.9");
        assert!(pod_ips(&json!({"ips": [{"address": "nonsense"}]}), "eth0").is_empty());
    }
}
