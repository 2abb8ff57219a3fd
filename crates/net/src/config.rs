//! Where the pod network's configuration lives: CNI network configuration
//! lists in `<config-dir>/net.d/` (`*.conflist`, or single-plugin `*.conf`
//! / `*.json`); the first by file name is the pod network, as kubelet's
//! CNI runtimes pick it. On first start, with none there, peapod writes
//! its default: a `peapod0` bridge that is the pods' gateway and
//! masquerades their traffic, host-local addresses from 10.85.0.0/16
//! (podman's default is 10.88.0.0/16), the loopback plugin, and portmap
//! for hostPorts. Edit the file to change the subnet or the bridge.
//!
//! host-local keeps its leases under peapod's state directory
//! (`<state>/cni/networks/<network>/`) unless the file names an
//! `ipam.dataDir`: two daemons with their own `--state` never share
//! leases.

use crate::cni::{NetworkConfigList, CNI_VERSION};
use crate::error::NetError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The directory under `--config-dir` holding network configuration lists.
pub const NET_DIR: &str = "net.d";
/// The file peapod writes when `net.d` has no configuration.
pub const DEFAULT_FILE: &str = "10-peapod.conflist";
pub const DEFAULT_NETWORK: &str = "peapod";
pub const DEFAULT_BRIDGE: &str = "peapod0";
pub const DEFAULT_SUBNET: &str = "10.85.0.0/16";

/// The default configuration file, laid out for a person to edit (the
/// JSON value's own printing would sort the keys).
fn default_file(network: &str, bridge: &str, subnet: &str) -> String {
    format!(
        r#"{{
  "cniVersion": "{CNI_VERSION}",
  "name": "{network}",
  "plugins": [
    {{ "type": "loopback" }},
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{ "subnet": "{subnet}" }}]],
        "routes": [{{ "dst": "0.0.0.0/0" }}]
      }}
    }},
    {{ "type": "portmap", "capabilities": {{ "portMappings": true }}, "snat": true }}
  ]
}}
"#
    )
}

/// The default configuration list for `bridge` and `subnet`.
pub fn default_conflist(network: &str, bridge: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": CNI_VERSION,
        "name": network,
        "plugins": [
            {"type": "loopback"},
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
        ]
    })
}

/// The configuration files in `dir`, by name.
fn config_files(dir: &Path) -> Result<Vec<PathBuf>, NetError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::io(dir)(e)),
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            ) && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The pod network's configuration list from `<config_dir>/net.d`,
/// writing the default first when there is none. host-local's `dataDir`
/// defaults to `<state_dir>/cni/networks`.
pub fn load_or_init(config_dir: &Path, state_dir: &Path) -> Result<NetworkConfigList, NetError> {
    let dir = config_dir.join(NET_DIR);
    let mut files = config_files(&dir)?;
    if files.is_empty() {
        std::fs::create_dir_all(&dir).map_err(NetError::io(&dir))?;
        let path = dir.join(DEFAULT_FILE);
        let body = default_file(DEFAULT_NETWORK, DEFAULT_BRIDGE, DEFAULT_SUBNET);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, body).map_err(NetError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(NetError::io(&path))?;
        tracing::info!(path = %path.display(), "wrote the default pod network configuration");
        files.push(path);
    }
    let path = &files[0];
    let bytes = std::fs::read(path).map_err(NetError::io(path))?;
    let mut list = NetworkConfigList::parse(&bytes, path)?;
    let data_dir = state_dir.join("cni").join("networks");
    for p in &mut list.plugins {
        if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
            if ipam.get("type").and_then(Value::as_str) == Some("host-local")
                && !ipam.contains_key("dataDir")
            {
                ipam.insert("dataDir".into(), json!(data_dir));
            }
        }
    }
    Ok(list)
}

/// host-local's lease directory of `list` (where the leased addresses are
/// files named by the address), if it uses host-local.
pub fn lease_dir(list: &NetworkConfigList) -> Option<PathBuf> {
    list.plugins.iter().find_map(|p| {
        let ipam = p.get("ipam")?;
        (ipam.get("type")?.as_str()? == "host-local").then(|| {
            let dir = ipam
                .get("dataDir")
                .and_then(Value::as_str)
                .unwrap_or("/var/lib/cni/networks");
            Path::new(dir).join(&list.name)
        })
    })
}

/// The host's address on the pod network: the gateway of the first
/// `bridge` plugin's host-local range (`ipam.ranges[0][0].gateway`, or the
/// range's first address as host-local defaults it; the older
/// `ipam.subnet`/`ipam.gateway` too). None for other network layouts.
pub fn bridge_gateway(list: &NetworkConfigList) -> Option<std::net::Ipv4Addr> {
    let bridge = list
        .plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("bridge"))?;
    let ipam = bridge.get("ipam")?;
    let range = ipam
        .get("ranges")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get(0))
        .unwrap_or(ipam);
    if let Some(gw) = range.get("gateway").and_then(Value::as_str) {
        return gw.parse().ok();
    }
    let subnet = range.get("subnet").and_then(Value::as_str)?;
    let (ip, len) = subnet.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if !(1..=30).contains(&len) {
        return None;
    }
    let mask = u32::MAX << (32 - len);
    Some(std::net::Ipv4Addr::from((u32::from(ip) & mask) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_writes_the_default_and_leases_go_under_state() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("etc");
        let state = dir.path().join("run");
        let list = load_or_init(&cfg, &state).unwrap();
        assert!(cfg.join("net.d/10-peapod.conflist").is_file());
        assert_eq!(list.name, "peapod");
        let kinds: Vec<&str> = list
            .plugins
            .iter()
            .filter_map(|p| p["type"].as_str())
            .collect();
        assert_eq!(kinds, ["loopback", "bridge", "portmap"]);
        assert_eq!(list.plugins[1]["bridge"], "peapod0");
        assert_eq!(
            list.plugins[1]["ipam"]["ranges"][0][0]["subnet"],
            "10.85.0.0/16"
        );
        assert_eq!(lease_dir(&list).unwrap(), state.join("cni/networks/peapod"));
        // The written file keeps no state path: another --state reads it
        // with its own. It is the default list, laid out to be edited.
        let written = std::fs::read_to_string(cfg.join("net.d/10-peapod.conflist")).unwrap();
        assert!(!written.contains("dataDir"), "{written}");
        let v: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(v, default_conflist("peapod", "peapod0", "10.85.0.0/16"));
        assert!(
            written.contains("      \"type\": \"bridge\",\n      \"bridge\": \"peapod0\""),
            "{written}"
        );
    }

    #[test]
    fn the_users_file_wins_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net.d");
        std::fs::create_dir_all(&net).unwrap();
        let mine = default_conflist("mine", "br-mine", "10.99.0.0/24");
        std::fs::write(net.join("05-mine.conflist"), mine.to_string()).unwrap();
        std::fs::write(net.join("README"), "not a config").unwrap();
        let list = load_or_init(dir.path(), dir.path()).unwrap();
        assert_eq!(list.name, "mine");
        assert!(!net.join(DEFAULT_FILE).exists());
        std::fs::write(net.join("01-bad.conflist"), "{").unwrap();
        let e = load_or_init(dir.path(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("01-bad.conflist") && e.contains("not valid JSON"),
            "{e}"
        );
    }

    #[test]
    fn the_bridge_gateway_is_the_ranges_first_address_or_the_given_one() {
        let list = NetworkConfigList::parse(
            default_conflist("n", "b", "10.234.7.0/24")
                .to_string()
                .as_bytes(),
            Path::new("x.conflist"),
        )
        .unwrap();
        assert_eq!(bridge_gateway(&list), Some("10.234.7.1".parse().unwrap()));
        let mut v = default_conflist("n", "b", "10.85.0.0/16");
        v["plugins"][1]["ipam"]["ranges"][0][0]["gateway"] = json!("10.85.0.254");
        let list = NetworkConfigList::parse(v.to_string().as_bytes(), Path::new("x")).unwrap();
        assert_eq!(bridge_gateway(&list), Some("10.85.0.254".parse().unwrap()));
    }
}
