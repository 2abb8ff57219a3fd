//! `peapod inspect pod`: which namespaces a pod's processes share, and its
//! cgroups with their limits.

use std::io::Write;

use anyhow::{anyhow, Result};
use serde::Deserialize;
use serde_json::Value;

use super::get::to_json_pretty;
use super::table::{tabwrite, Table};
use super::transport::{encode, Client};

/// The namespace kinds shown, in column order.
const KINDS: [&str; 7] = ["net", "ipc", "uts", "pid", "mnt", "cgroup", "user"];

/// The daemon's answer to `GET /peapod/v1/namespaces/NS/pods/NAME/inspect`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodInspect {
    #[serde(default)]
    pub pod: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub sandbox_id: String,
    #[serde(default)]
    pub shim_pid: Option<i64>,
    #[serde(default)]
    pub cgroup_version: u8,
    #[serde(default)]
    pub processes: Vec<ProcessInfo>,
    #[serde(default)]
    pub cgroups: Vec<CgroupInfo>,
    #[serde(default)]
    pub pinned: Vec<(String, Option<u64>)>,
    /// The pod's addresses from CNI (none with hostNetwork).
    #[serde(default)]
    pub network: Option<NetworkInfo>,
}

/// The pod's network, as the runtime recorded CNI ADD's result.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkInfo {
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub additional_ips: Vec<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub interface: String,
}

/// One process: a container's init, or the infra process ("(infra)") of a
/// pod that shares its pid namespace.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProcessInfo {
    pub name: String,
    #[serde(default)]
    pub pid: i64,
    /// `(kind, inode)`; the inode is `null` when it could not be read.
    #[serde(default)]
    pub namespaces: Vec<(String, Option<u64>)>,
}

/// One cgroup and its limits.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CgroupInfo {
    pub path: String,
    #[serde(default)]
    pub limits: Vec<(String, String)>,
}

/// `peapod inspect pod NAME [-n NS] [--json]`.
pub async fn inspect(client: &Client, namespace: &str, name: &str, json: bool) -> Result<()> {
    let path = format!(
        "/peapod/v1/namespaces/{}/pods/{}/inspect",
        encode(namespace),
        encode(name)
    );
    let value: Value = client.get_json(&path).await?;
    let text = if json {
        format!("{}\n", to_json_pretty(&value)?)
    } else {
        let info: PodInspect = serde_json::from_value(value)
            .map_err(|e| anyhow!("error: cannot decode the daemon's inspect answer: {e}"))?;
        render(&info)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// The inode of namespace `kind` in `namespaces`.
fn inode(namespaces: &[(String, Option<u64>)], kind: &str) -> Option<u64> {
    namespaces
        .iter()
        .find(|(k, _)| k == kind)
        .and_then(|(_, inode)| *inode)
}

/// The text of `peapod inspect pod`: a summary line, the process table
/// (a `*` marks the pod's own pinned namespace), the pinned namespaces and
/// the cgroups with their limits.
pub fn render(info: &PodInspect) -> String {
    let mut out = String::new();
    let mut summary = format!(
        "Pod:\t{}/{}\nUID:\t{}\nSandbox:\t{}\nShim PID:\t{}\nCgroups:\tv{}\n",
        info.namespace,
        info.pod,
        info.uid,
        info.sandbox_id,
        info.shim_pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into()),
        info.cgroup_version
    );
    match &info.network {
        Some(n) => summary.push_str(&format!(
            "IP:\t{}\nGateway:\t{}\nNetwork:\t{} ({})\n",
            std::iter::once(n.ip.as_str())
                .chain(n.additional_ips.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(", "),
            n.gateway.as_deref().unwrap_or("-"),
            n.network,
            n.interface
        )),
        None => summary.push_str("IP:\t-\n"),
    }
    out.push_str(&tabwrite(&summary, 0, 2));
    out.push('\n');

    let mut rows = vec![["PROCESS", "PID"]
        .into_iter()
        .chain(KINDS.iter().map(|k| match *k {
            "net" => "NET",
            "ipc" => "IPC",
            "uts" => "UTS",
            "pid" => "PID",
            "mnt" => "MNT",
            "cgroup" => "CGROUP",
            _ => "USER",
        }))
        .map(String::from)
        .collect::<Vec<_>>()];
    for process in &info.processes {
        let mut row = vec![
            process.name.clone(),
            if process.pid > 0 {
                process.pid.to_string()
            } else {
                "-".to_string()
            },
        ];
        for kind in KINDS {
            let cell = match inode(&process.namespaces, kind) {
                None => "-".to_string(),
                Some(ino) => {
                    let shared = inode(&info.pinned, kind) == Some(ino);
                    if shared {
                        format!("{ino}*")
                    } else {
                        ino.to_string()
                    }
                }
            };
            row.push(cell);
        }
        rows.push(row);
    }
    out.push_str(&Table::kubectl().render(&rows));
    out.push_str("(* = the pod's pinned namespace, shared by its containers)\n");

    if !info.pinned.is_empty() {
        let pinned: Vec<String> = info
            .pinned
            .iter()
            .map(|(kind, inode)| match inode {
                Some(i) => format!("{kind}={i}"),
                None => format!("{kind}=-"),
            })
            .collect();
        out.push_str(&format!("\nPINNED   {}\n", pinned.join(" ")));
    }

    if !info.cgroups.is_empty() {
        out.push('\n');
        let mut rows = vec![vec!["CGROUP".to_string(), "LIMITS".to_string()]];
        for cgroup in &info.cgroups {
            let limits = if cgroup.limits.is_empty() {
                "<none>".to_string()
            } else {
                cgroup
                    .limits
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            rows.push(vec![cgroup.path.clone(), limits]);
        }
        out.push_str(&Table::kubectl().render(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_shared_namespaces() {
        let info: PodInspect = match serde_json::from_value(json!({
            "pod": "web", "namespace": "default", "uid": "u-1", "sandbox_id": "ab12", "shim_pid": 100, "cgroup_version": 1,
            "processes": [
                {"name": "web", "pid": 11, "namespaces": [["net", 1], ["ipc", 2], ["uts", 3], ["pid", 14], ["mnt", 15], ["cgroup", 16], ["user", 7]]},
                {"name": "done", "pid": 0, "namespaces": []}
            ],
            "cgroups": [
                {"path": "peapod/podu-1", "limits": [["cpu.shares", "2"]]},
                {"path": "peapod/podu-1/web", "limits": [["cpu.shares", "2"], ["memory.limit_in_bytes", "33554432"]]}
            ],
            "pinned": [["net", 1], ["ipc", 2], ["uts", 3]],
            "network": {"ip": "10.85.0.4", "additional_ips": [], "gateway": "10.85.0.1", "network": "peapod", "interface": "eth0"}
        })) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        };
        let text = render(&info);
        let want = "\
Pod:       default/web
UID:       u-1
Sandbox:   ab12
Shim PID:  100
Cgroups:   v1
IP:        10.85.0.4
Gateway:   10.85.0.1
Network:   peapod (eth0)

PROCESS   PID   NET   IPC   UTS   PID   MNT   CGROUP   USER
web       11    1*    2*    3*    14    15    16       7
done      -     -     -     -     -     -     -        -
(* = the pod's pinned namespace, shared by its containers)

PINNED   net=1 ipc=2 uts=3

CGROUP              LIMITS
peapod/podu-1       cpu.shares=2
peapod/podu-1/web   cpu.shares=2 memory.limit_in_bytes=33554432
";
        assert_eq!(text, want);
    }
}
