//! `peapod top pod|node`: the metrics API's latest readings in kubectl's
//! columns (CPU in millicores rounded up, memory in Mi rounded down).

use anyhow::{bail, Result};
use serde_json::Value;

use super::table::Table;
use super::transport::{encode, Client};

/// A metrics quantity (`1234567n`, `2048Ki`) in millicores or bytes.
fn quantity(v: &Value, milli: bool) -> i64 {
    let q = v.as_str().and_then(|s| peapod_api::parse_quantity(s).ok());
    match q {
        Some(q) if milli => q.as_millis(),
        Some(q) => q.as_bytes(),
        None => 0,
    }
}

fn cpu(v: &Value) -> String {
    format!("{}m", quantity(v, true))
}

fn memory(v: &Value) -> String {
    format!("{}Mi", quantity(v, false) / (1024 * 1024))
}

pub struct TopPods<'a> {
    pub namespace: &'a str,
    pub all_namespaces: bool,
    pub name: Option<&'a str>,
    pub selector: Option<&'a str>,
    pub containers: bool,
}

pub async fn top_pods(client: &Client, args: TopPods<'_>) -> Result<()> {
    let base = if args.all_namespaces {
        "/apis/metrics.k8s.io/v1beta1/pods".to_string()
    } else {
        format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
            encode(args.namespace)
        )
    };
    let items: Vec<Value> = match args.name {
        Some(name) => {
            let path = format!("{base}/{}", encode(name));
            match client.get_json::<Value>(&path).await {
                Ok(v) => vec![v],
                Err(e) if e.to_string().contains("NotFound") => {
                    // kubectl's words when the pod exists but has no reading yet.
                    let pod = super::transport::pod_path(args.namespace, name);
                    client.get_json::<Value>(&pod).await?;
                    bail!("error: Metrics not available for pod {}/{name}, age: not sampled yet; try again in a few seconds", args.namespace)
                }
                Err(e) => return Err(e),
            }
        }
        None => {
            let path = match args.selector {
                Some(s) => format!("{base}?labelSelector={}", encode(s)),
                None => base,
            };
            let list: Value = client.get_json(&path).await?;
            list["items"].as_array().cloned().unwrap_or_default()
        }
    };
    if items.is_empty() {
        if args.all_namespaces {
            bail!("No resources found");
        }
        bail!("No resources found in {} namespace.", args.namespace);
    }
    let mut head = Vec::new();
    if args.all_namespaces {
        head.push("NAMESPACE");
    }
    if args.containers {
        head.extend(["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]);
    } else {
        head.extend(["NAME", "CPU(cores)", "MEMORY(bytes)"]);
    }
    let mut rows = vec![head.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for item in &items {
        let ns = item["metadata"]["namespace"].as_str().unwrap_or_default();
        let pod = item["metadata"]["name"].as_str().unwrap_or_default();
        let containers = item["containers"].as_array().cloned().unwrap_or_default();
        let prefix = |row: &mut Vec<String>| {
            if args.all_namespaces {
                row.push(ns.to_string());
            }
        };
        if args.containers {
            for c in &containers {
                let mut row = Vec::new();
                prefix(&mut row);
                row.push(pod.to_string());
                row.push(c["name"].as_str().unwrap_or_default().to_string());
                row.push(cpu(&c["usage"]["cpu"]));
                row.push(memory(&c["usage"]["memory"]));
                rows.push(row);
            }
        } else {
            let milli: i64 = containers
                .iter()
                .map(|c| quantity(&c["usage"]["cpu"], true))
                .sum();
            let bytes: i64 = containers
                .iter()
                .map(|c| quantity(&c["usage"]["memory"], false))
                .sum();
            let mut row = Vec::new();
            prefix(&mut row);
            row.push(pod.to_string());
            row.push(format!("{milli}m"));
            row.push(format!("{}Mi", bytes / (1024 * 1024)));
            rows.push(row);
        }
    }
    print!("{}", Table::kubectl().render(&rows));
    Ok(())
}

pub async fn top_nodes(client: &Client, name: Option<&str>) -> Result<()> {
    let list: Value = client
        .get_json("/apis/metrics.k8s.io/v1beta1/nodes")
        .await?;
    let items: Vec<Value> = list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| name.is_none_or(|want| n["metadata"]["name"] == want))
        .collect();
    if items.is_empty() {
        match name {
            Some(n) => {
                bail!("error: metrics not available yet for node {n:?}; try again in a few seconds")
            }
            None => bail!("error: metrics not available yet; try again in a few seconds"),
        }
    }
    let mut rows = vec![["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for item in &items {
        let node_name = item["metadata"]["name"].as_str().unwrap_or_default();
        let node: Value = client
            .get_json(&format!("/api/v1/nodes/{}", encode(node_name)))
            .await?;
        let alloc = &node["status"]["allocatable"];
        let milli = quantity(&item["usage"]["cpu"], true);
        let bytes = quantity(&item["usage"]["memory"], false);
        let percent = |used: i64, total: i64| {
            if total > 0 {
                format!("{}%", used * 100 / total)
            } else {
                "<unknown>".to_string()
            }
        };
        rows.push(vec![
            node_name.to_string(),
            format!("{milli}m"),
            percent(milli, quantity(&alloc["cpu"], true)),
            format!("{}Mi", bytes / (1024 * 1024)),
            percent(bytes, quantity(&alloc["memory"], false)),
        ]);
    }
    print!("{}", Table::kubectl().render(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_rounding() {
        // 1.2 millicores shows as 2m (MilliValue rounds up); memory in
        // whole Mi, rounded down.
        assert_eq!(cpu(&json!("1200000n")), "2m");
        assert_eq!(cpu(&json!("0")), "0m");
        assert_eq!(memory(&json!("3072Ki")), "3Mi");
        assert_eq!(memory(&json!("1023Ki")), "0Mi");
    }
}
