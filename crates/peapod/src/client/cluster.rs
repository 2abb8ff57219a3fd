//! Namespaces and the Node: `get ns`, `get nodes`, `create namespace`,
//! `describe node`, as kubectl prints them.

use std::io::Write;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use hyper::Method;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use peapod_node::admission::{pod_resources, Resources};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::describe::{annotations_multiline, describe_events, labels_multiline, Writer};
use super::get::{labels_column, to_json_pretty, Output};
use super::table::{age, rfc1123z, tabwrite, Table};
use super::transport::{encode, Client};

/// A cluster-scoped kind `get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Namespace,
    Node,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Namespace => "/api/v1/namespaces",
            Kind::Node => "/api/v1/nodes",
        }
    }
    fn singular(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Node => "node",
        }
    }
}

fn decode<T: DeserializeOwned>(v: &Value) -> Result<T> {
    T::deserialize(v)
        .map_err(|e| anyhow!("error: the daemon returned an object that does not decode: {e}"))
}

/// `peapod get ns|nodes [NAME] [-o ...] [-l ...] [--show-labels]`.
pub async fn get_cluster(
    client: &Client,
    kind: Kind,
    name: Option<&str>,
    output: Output,
    label_selector: Option<&str>,
    show_labels: bool,
) -> Result<()> {
    let items: Vec<Value> = match name {
        Some(n) => vec![
            client
                .get_json(&format!("{}/{}", kind.path(), encode(n)))
                .await?,
        ],
        None => {
            let path = match label_selector.filter(|l| !l.is_empty()) {
                Some(l) => format!("{}?labelSelector={}", kind.path(), encode(l)),
                None => kind.path().to_string(),
            };
            let list: Value = client.get_json(&path).await?;
            list["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let now = Utc::now();
    let text = match output {
        Output::Json | Output::Yaml => {
            let value = if name.is_some() {
                items.into_iter().next().unwrap_or(Value::Null)
            } else {
                serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
            };
            if output == Output::Yaml {
                serde_yaml_ng::to_string(&value)
                    .map_err(|e| anyhow!("error: cannot print YAML: {e}"))?
            } else {
                format!("{}\n", to_json_pretty(&value)?)
            }
        }
        Output::Name => items
            .iter()
            .map(|v| {
                format!(
                    "{}/{}\n",
                    kind.singular(),
                    v["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect(),
        Output::Default | Output::Wide => {
            if items.is_empty() {
                eprintln!("No resources found");
                return Ok(());
            }
            let wide = output == Output::Wide;
            let mut header: Vec<&str> = match kind {
                Kind::Namespace => vec!["NAME", "STATUS", "AGE"],
                Kind::Node => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            };
            if wide && kind == Kind::Node {
                header.extend([
                    "INTERNAL-IP",
                    "EXTERNAL-IP",
                    "OS-IMAGE",
                    "KERNEL-VERSION",
                    "CONTAINER-RUNTIME",
                ]);
            }
            if show_labels {
                header.push("LABELS");
            }
            let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
            for v in &items {
                let (mut row, labels) = match kind {
                    Kind::Namespace => {
                        let n: Namespace = decode(v)?;
                        (namespace_row(&n, now), n.metadata.labels)
                    }
                    Kind::Node => {
                        let n: Node = decode(v)?;
                        (node_row(&n, wide, now), n.metadata.labels)
                    }
                };
                if show_labels {
                    row.push(labels_column(labels.as_ref()));
                }
                rows.push(row);
            }
            Table::kubectl().render(&rows)
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// NAME STATUS AGE.
pub fn namespace_row(n: &Namespace, now: DateTime<Utc>) -> Vec<String> {
    vec![
        n.metadata.name.clone().unwrap_or_default(),
        n.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default(),
        age(n.metadata.creation_timestamp.as_ref(), now),
    ]
}

/// kubectl's node STATUS: the Ready condition (`Ready`, `NotReady`,
/// `Unknown`), with `SchedulingDisabled` for a cordoned node.
fn node_status(n: &Node) -> String {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let mut s = match ready.map(|c| c.status.as_str()) {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        s.push_str(",SchedulingDisabled");
    }
    s
}

/// kubectl's ROLES: the `node-role.kubernetes.io/<role>` labels.
fn node_roles(n: &Node) -> String {
    let mut roles: Vec<String> = n
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
                .or_else(|| (k == "kubernetes.io/role").then(|| v.clone()))
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

/// NAME STATUS ROLES AGE VERSION (and the wide columns).
pub fn node_row(n: &Node, wide: bool, now: DateTime<Utc>) -> Vec<String> {
    let info = n.status.as_ref().and_then(|s| s.node_info.as_ref());
    let mut row = vec![
        n.metadata.name.clone().unwrap_or_default(),
        node_status(n),
        node_roles(n),
        age(n.metadata.creation_timestamp.as_ref(), now),
        info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
    ];
    if wide {
        let addr = |t: &str| {
            n.status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == t))
                .map(|a| a.address.clone())
                .unwrap_or_else(|| "<none>".into())
        };
        let os = info
            .map(|i| i.os_image.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<unknown>".into());
        row.extend([
            addr("InternalIP"),
            addr("ExternalIP"),
            os,
            info.map(|i| i.kernel_version.clone()).unwrap_or_default(),
            info.map(|i| i.container_runtime_version.clone())
                .unwrap_or_default(),
        ]);
    }
    row
}

/// `peapod create namespace NAME`: prints `namespace/NAME created`.
pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let body = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))?;
    let response = client
        .request(
            Method::POST,
            "/api/v1/namespaces",
            Some(body),
            Some("application/json"),
        )
        .await?;
    if !response.is_success() {
        return Err(response.error());
    }
    println!("namespace/{name} created");
    Ok(())
}

/// A CPU quantity in millicores as kubectl prints it (`100m`, `2`).
pub fn cpu_string(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A memory quantity in bytes, in the largest binary unit that divides
/// it (`128Mi`, `1Gi`, `1000`).
pub fn memory_string(bytes: i64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("Ti", 1i64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// `value (P%)` of `total`, truncated as kubectl does.
fn fraction(value: i64, total: i64) -> i64 {
    if total == 0 {
        0
    } else {
        (value as f64 / total as f64 * 100.0) as i64
    }
}

fn quantity_of(n: &Node, which: &str, key: &str) -> i64 {
    let q = n.status.as_ref().and_then(|s| {
        if which == "capacity" {
            s.capacity.as_ref()
        } else {
            s.allocatable.as_ref()
        }
    });
    q.and_then(|m| m.get(key))
        .and_then(|q| peapod_api::parse_quantity(&q.0).ok())
        .map(|q| {
            if key == "cpu" {
                q.as_millis()
            } else {
                q.as_bytes()
            }
        })
        .unwrap_or(0)
}

/// `peapod describe node [NAME]` (the only node when no name is given).
pub async fn describe_node(client: &Client, name: Option<&str>) -> Result<()> {
    let node: Node = match name {
        Some(n) => {
            client
                .get_json(&format!("/api/v1/nodes/{}", encode(n)))
                .await?
        }
        None => {
            let list: Value = client.get_json("/api/v1/nodes").await?;
            let first = list["items"].as_array().and_then(|a| a.first()).cloned();
            decode(&first.ok_or_else(|| anyhow!("error: the daemon has no Node object"))?)?
        }
    };
    let list: Value = client.get_json("/api/v1/pods").await?;
    let mut pods = Vec::new();
    for item in list["items"].as_array().cloned().unwrap_or_default() {
        pods.push(decode::<Pod>(&item)?);
    }
    let text = describe_node_text(&node, &pods, Utc::now());
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The text of `kubectl describe node`, laid out; `pods` are every pod
/// (the ones on this node that are not Succeeded or Failed are listed).
pub fn describe_node_text(node: &Node, pods: &[Pod], now: DateTime<Utc>) -> String {
    let mut w = Writer { out: String::new() };
    let meta = &node.metadata;
    let name = meta.name.clone().unwrap_or_default();
    w.write(0, &format!("Name:\t{name}\n"));
    w.write(0, &format!("Roles:\t{}\n", node_roles(node)));
    labels_multiline(&mut w, "Labels", meta.labels.as_ref());
    annotations_multiline(&mut w, "Annotations", meta.annotations.as_ref());
    w.write(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(meta.creation_timestamp.as_ref())
        ),
    );
    w.write(0, "Taints:\t<none>\n");
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    w.write(0, &format!("Unschedulable:\t{unschedulable}\n"));
    let status = node.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    if !conditions.is_empty() {
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.write(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in &conditions {
            w.write(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    c.type_,
                    c.status,
                    rfc1123z(c.last_heartbeat_time.as_ref()),
                    rfc1123z(c.last_transition_time.as_ref()),
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or("")
                ),
            );
        }
    }
    w.write(0, "Addresses:\n");
    for a in status.addresses.iter().flatten() {
        w.write(1, &format!("{}:\t{}\n", a.type_, a.address));
    }
    for (title, map) in [
        ("Capacity", &status.capacity),
        ("Allocatable", &status.allocatable),
    ] {
        if let Some(m) = map {
            w.write(0, &format!("{title}:\n"));
            for (k, v) in m {
                w.write(1, &format!("{k}:\t{}\n", v.0));
            }
        }
    }
    if let Some(i) = &status.node_info {
        w.write(0, "System Info:\n");
        for (k, v) in [
            ("Machine ID", &i.machine_id),
            ("System UUID", &i.system_uuid),
            ("Boot ID", &i.boot_id),
            ("Kernel Version", &i.kernel_version),
            ("OS Image", &i.os_image),
            ("Operating System", &i.operating_system),
            ("Architecture", &i.architecture),
            ("Container Runtime Version", &i.container_runtime_version),
            ("Kubelet Version", &i.kubelet_version),
            ("Kube-Proxy Version", &i.kube_proxy_version),
        ] {
            w.write(1, &format!("{k}:\t{v}\n"));
        }
    }
    let cpu_alloc = quantity_of(node, "allocatable", "cpu");
    let mem_alloc = quantity_of(node, "allocatable", "memory");
    let mut on_node: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(|n| n == name)
                && !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
        })
        .collect();
    on_node.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    w.write(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", on_node.len()),
    );
    w.write(
        1,
        "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.write(
        1,
        "---------\t----\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let mut req_total = Resources::default();
    let mut lim_total = Resources::default();
    for p in &on_node {
        let req = pod_resources(p, false);
        let lim = pod_resources(p, true);
        req_total = Resources {
            milli_cpu: req_total.milli_cpu + req.milli_cpu,
            memory: req_total.memory + req.memory,
        };
        lim_total = Resources {
            milli_cpu: lim_total.milli_cpu + lim.milli_cpu,
            memory: lim_total.memory + lim.memory,
        };
        w.write(
            1,
            &format!(
                "{}\t{}\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or(""),
                cpu_string(req.milli_cpu),
                fraction(req.milli_cpu, cpu_alloc),
                cpu_string(lim.milli_cpu),
                fraction(lim.milli_cpu, cpu_alloc),
                memory_string(req.memory),
                fraction(req.memory, mem_alloc),
                memory_string(lim.memory),
                fraction(lim.memory, mem_alloc),
                age(p.metadata.creation_timestamp.as_ref(), now),
            ),
        );
    }
    w.write(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.write(1, "Resource\tRequests\tLimits\n");
    w.write(1, "--------\t--------\t------\n");
    let mut row = |resource: &str, show: fn(i64) -> String, req: i64, lim: i64, alloc: i64| {
        w.write(
            1,
            &format!(
                "{resource}\t{} ({}%)\t{} ({}%)\n",
                show(req),
                fraction(req, alloc),
                show(lim),
                fraction(lim, alloc)
            ),
        )
    };
    row(
        "cpu",
        cpu_string,
        req_total.milli_cpu,
        lim_total.milli_cpu,
        cpu_alloc,
    );
    row(
        "memory",
        memory_string,
        req_total.memory,
        lim_total.memory,
        mem_alloc,
    );
    w.write(1, "ephemeral-storage\t0 (0%)\t0 (0%)\n");
    describe_events(&mut w, &[], now);
    tabwrite(&w.out, 0, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_print_as_kubectl() {
        assert_eq!(cpu_string(2000), "2");
        assert_eq!(cpu_string(100), "100m");
        assert_eq!(cpu_string(0), "0");
        assert_eq!(memory_string(64 << 20), "64Mi");
        assert_eq!(memory_string(1 << 30), "1Gi");
        assert_eq!(memory_string(1000), "1000");
        assert_eq!(fraction(100, 2000), 5);
        assert_eq!(fraction(1999, 2000), 99);
    }

    #[test]
    fn describe_node_lists_non_terminated_pods_and_allocated_resources() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "h", "creationTimestamp": "2024-01-01T00:00:00Z",
                         "labels": {"kubernetes.io/hostname": "h"}},
            "status": {"capacity": {"cpu": "2", "memory": "1Gi", "pods": "250"},
                       "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "250"},
                       "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.1",
                                    "osImage": "", "containerRuntimeVersion": "peapod://0.1.0",
                                    "kubeletVersion": "v0.1.0", "kubeProxyVersion": "",
                                    "operatingSystem": "linux", "architecture": "amd64"}}
        }))
        .expect("node");
        let pod = |name: &str, phase: &str, cpu: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
                "spec": {"nodeName": "h", "containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}]},
                "status": {"phase": phase}
            }))
            .expect("pod")
        };
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:05:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let text = describe_node_text(
            &node,
            &[pod("web", "Running", "100m"), pod("done", "Succeeded", "1")],
            now,
        );
        // As kubectl lays it out: the pods table shares its first column
        // with System Info above it.
        assert!(
            text.contains(
                "  Kube-Proxy Version:         \nNon-terminated Pods:          (1 in total)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  default                     web   100m (5%)     0 (0%)      64Mi (6%)        128Mi (12%)    5m\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  cpu                100m (5%)  0 (0%)\n"),
            "{text}"
        );
        assert!(
            text.contains("  memory             64Mi (6%)  128Mi (12%)\n"),
            "{text}"
        );
        assert!(!text.contains("done"), "{text}");
    }
}
