//! A pod on the pod network: attach (CNI ADD on the sandbox's pinned
//! network namespace, `eth0`), detach (DEL, idempotent), check (CHECK),
//! with the pod's identity in `CNI_ARGS` and its hostPorts as portmap's
//! `portMappings`, as containerd and CRI-O call CNI for kubelet.

use crate::cni::result::{pod_ips, PodIp};
use crate::cni::{Invocation, NetworkConfigList, PluginPath};
use crate::error::NetError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The pod's interface in its network namespace.
pub const IFNAME: &str = "eth0";

/// Where plugin binaries are looked for by default: Debian's
/// containernetworking-plugins, then the upstream location.
pub const DEFAULT_PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];

/// A hostPort, as portmap's `portMappings` capability takes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: i32,
    #[serde(rename = "containerPort")]
    pub container_port: i32,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Empty: every host address.
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// Which pod a sandbox is, for `CNI_ARGS`.
#[derive(Debug, Clone, Default)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// One sandbox's attachment: what every CNI call for it gets.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: the sandbox id.
    pub sandbox_id: String,
    /// The pinned network namespace.
    pub netns: PathBuf,
    pub pod: PodRef,
    pub port_mappings: Vec<PortMapping>,
}

/// What ADD gave a sandbox; recorded with it, so the pod keeps its
/// addresses across a daemon restart and DEL and CHECK get what ADD used.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PodNetworkStatus {
    /// The network's name.
    pub network: String,
    pub interface: String,
    /// IPv4 first.
    pub ips: Vec<PodIp>,
    /// The ADD result (`prevResult` of DEL and CHECK).
    pub result: Value,
    /// The configuration list ADD ran (DEL runs the same, even if the
    /// file changed since).
    pub config: Value,
}

impl PodNetworkStatus {
    /// The pod's primary address.
    pub fn ip(&self) -> Option<&str> {
        self.ips.first().map(|p| p.ip.as_str())
    }
    pub fn gateway(&self) -> Option<&str> {
        self.ips.first().and_then(|p| p.gateway.as_deref())
    }
}

/// The pod network: one configuration list and where its plugins are.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    list: NetworkConfigList,
    path: PluginPath,
}

impl Attachment {
    fn invocation(&self) -> Invocation {
        Invocation {
            container_id: self.sandbox_id.clone(),
            netns: self.netns.clone(),
            ifname: IFNAME.to_string(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), self.pod.namespace.clone()),
                ("K8S_POD_NAME".into(), self.pod.name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), self.sandbox_id.clone()),
                ("K8S_POD_UID".into(), self.pod.uid.clone()),
            ],
        }
    }

    fn runtime_config(&self) -> BTreeMap<String, Value> {
        let mut rc = BTreeMap::new();
        if !self.port_mappings.is_empty() {
            rc.insert(
                "portMappings".to_string(),
                serde_json::to_value(&self.port_mappings).unwrap_or(Value::Null),
            );
        }
        rc
    }
}

impl PodNetwork {
    /// The pod network of `--config-dir` (its default written on first
    /// start), leases under `state_dir`, plugins from `plugin_dirs`.
    pub fn load(
        config_dir: &Path,
        state_dir: &Path,
        plugin_dirs: Vec<PathBuf>,
    ) -> Result<Self, NetError> {
        let list = crate::config::load_or_init(config_dir, state_dir)?;
        Ok(Self {
            list,
            path: PluginPath(plugin_dirs),
        })
    }

    pub fn from_list(list: NetworkConfigList, plugin_dirs: Vec<PathBuf>) -> Self {
        Self {
            list,
            path: PluginPath(plugin_dirs),
        }
    }

    pub fn config(&self) -> &NetworkConfigList {
        &self.list
    }

    /// The host's address on the bridge (the pods' gateway), if the
    /// network is a bridge with host-local addresses.
    pub fn bridge_gateway(&self) -> Option<std::net::Ipv4Addr> {
        crate::config::bridge_gateway(&self.list)
    }

    /// host-local's lease directory, if the network uses host-local.
    pub fn lease_dir(&self) -> Option<PathBuf> {
        crate::config::lease_dir(&self.list)
    }

    /// What would keep pods off this network, found without a pod: a
    /// plugin that is missing, or that does not speak the list's
    /// `cniVersion` (asked with CNI's VERSION command).
    pub fn check_plugins(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let version = serde_json::json!({ "cniVersion": self.list.cni_version });
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.list.plugins {
            let kind = p["type"].as_str().unwrap_or_default();
            if !seen.insert(kind.to_string()) {
                continue;
            }
            let answer = crate::cni::exec::run(
                &self.path,
                kind,
                &self.list.name,
                crate::cni::CniCommand::Version,
                &Invocation::default(),
                &version,
            );
            match answer {
                Err(e) => problems.push(e.to_string()),
                Ok(v) => {
                    let supported: Vec<&str> = v["supportedVersions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if !supported.contains(&self.list.cni_version.as_str()) {
                        problems.push(format!(
                            "CNI plugin {kind:?} supports cniVersion {supported:?}, not {:?} of network {:?} ({}); set one it supports in the file",
                            self.list.cni_version,
                            self.list.name,
                            self.list.source.display()
                        ));
                    }
                }
            }
        }
        problems
    }

    /// CNI ADD. On any failure (a plugin's error, or a result with no
    /// address for the pod) DEL runs, so nothing stays allocated, and the
    /// ADD error is returned.
    pub fn attach(&self, a: &Attachment) -> Result<PodNetworkStatus, NetError> {
        let inv = a.invocation();
        let rc = a.runtime_config();
        let res = self.list.add(&self.path, &inv, &rc).and_then(|result| {
            let ips = pod_ips(&result, IFNAME);
            if ips.is_empty() {
                return Err(NetError::Plugin {
                    plugin: self
                        .list
                        .plugins
                        .last()
                        .and_then(|p| p["type"].as_str())
                        .unwrap_or("")
                        .to_string(),
                    network: self.list.name.clone(),
                    command: "ADD",
                    code: 0,
                    message: format!("the result gives the pod no address on {IFNAME}: {result}"),
                });
            }
            Ok(PodNetworkStatus {
                network: self.list.name.clone(),
                interface: IFNAME.to_string(),
                ips,
                result,
                config: self.list.to_json(),
            })
        });
        if res.is_err() {
            if let Err(e) = self.list.del(&self.path, &inv, &rc, None) {
                tracing::warn!(sandbox = %a.sandbox_id, "DEL after a failed ADD: {e}");
            }
        }
        res
    }

    /// CNI DEL with the configuration and result ADD recorded, or, with
    /// none recorded (ADD was cut short), the current configuration.
    /// Idempotent: plugins release what is left and ignore what is gone.
    pub fn detach(
        &self,
        a: &Attachment,
        recorded: Option<&PodNetworkStatus>,
    ) -> Result<(), NetError> {
        let inv = a.invocation();
        let rc = a.runtime_config();
        let recorded_list = recorded.and_then(|r| {
            NetworkConfigList::parse(
                r.config.to_string().as_bytes(),
                Path::new("(recorded with the sandbox)"),
            )
            .ok()
        });
        let list = recorded_list.as_ref().unwrap_or(&self.list);
        list.del(&self.path, &inv, &rc, recorded.map(|r| &r.result))
    }

    /// CNI CHECK of a running sandbox against what ADD recorded.
    pub fn check(&self, a: &Attachment, recorded: &PodNetworkStatus) -> Result<(), NetError> {
        let list = NetworkConfigList::parse(
            recorded.config.to_string().as_bytes(),
            Path::new("(recorded with the sandbox)"),
        )?;
        list.check(
            &self.path,
            &a.invocation(),
            &a.runtime_config(),
            &recorded.result,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_plugins_asks_each_plugin_its_versions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, versions) in [("new", r#"["0.4.0","1.0.0"]"#), ("old", r#"["0.3.1"]"#)] {
            let p = dir.path().join(name);
            std::fs::write(
                &p,
                format!("#!/bin/sh\n[ \"$CNI_COMMAND\" = VERSION ] || exit 9\necho '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":{versions}}}'\n"),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let list = NetworkConfigList::parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"new"},{"type":"old"},{"type":"gone"}]}"#,
            Path::new("/etc/peapod/net.d/n.conflist"),
        )
        .unwrap();
        let net = PodNetwork::from_list(list, vec![dir.path().to_path_buf()]);
        let problems = net.check_plugins();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("\"old\" supports cniVersion [\"0.3.1\"], not \"1.0.0\""),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("\"gone\"") && problems[1].contains("not found"),
            "{problems:?}"
        );
    }

    #[test]
    fn port_mappings_in_portmap_shape() {
        let m = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: "127.0.0.1".into(),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"})
        );
    }
}
