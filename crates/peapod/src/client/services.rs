//! Services and EndpointSlices on the command line, as kubectl shows them:
//! `get services|svc [NAME]` (NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S)
//! AGE, `-o wide` adds SELECTOR), `get endpointslices [NAME]` (NAME
//! ADDRESSTYPE PORTS ENDPOINTS AGE), `describe service NAME`.

use anyhow::{anyhow, Result};
use chrono::Utc;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use super::config::{header, map_lines};
use super::get::Output;
use super::table::{age, tabwrite, Table};
use super::transport::{encode, object_path, Client};

/// `services` or `endpointslices` for the names kubectl accepts.
pub fn resource(r: &str) -> Option<&'static str> {
    match r {
        "service" | "services" | "svc" => Some("services"),
        "endpointslice"
        | "endpointslices"
        | "endpointslice.discovery.k8s.io"
        | "endpointslices.discovery.k8s.io" => Some("endpointslices"),
        _ => None,
    }
}

fn base(resource: &str) -> &'static str {
    if resource == "endpointslices" {
        "/apis/discovery.k8s.io/v1"
    } else {
        "/api/v1"
    }
}

fn item_path(resource: &str, namespace: &str, name: &str) -> String {
    if resource == "endpointslices" {
        format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices/{}",
            encode(namespace),
            encode(name)
        )
    } else {
        object_path(resource, namespace, name)
    }
}

/// kubectl's PORT(S): `80/TCP`, `80:30080/TCP`, comma-separated.
pub fn ports_column(s: &Service) -> String {
    let ports: Vec<String> = s
        .spec
        .iter()
        .flat_map(|sp| sp.ports.iter().flatten())
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port.filter(|n| *n > 0) {
                Some(np) => format!("{}:{np}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn service_row(s: &Service, wide: bool) -> Vec<String> {
    let spec = s.spec.clone().unwrap_or_default();
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "<none>".into());
    let external = if ty == "ExternalName" {
        spec.external_name.clone().unwrap_or_default()
    } else {
        spec.external_ips
            .clone()
            .filter(|v| !v.is_empty())
            .map(|v| v.join(","))
            .unwrap_or_else(|| "<none>".into())
    };
    let mut row = vec![
        s.metadata.name.clone().unwrap_or_default(),
        ty,
        cluster_ip,
        external,
        ports_column(s),
        age(s.metadata.creation_timestamp.as_ref(), Utc::now()),
    ];
    if wide {
        row.push(
            spec.selector
                .filter(|m| !m.is_empty())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into()),
        );
    }
    row
}

fn slice_row(s: &EndpointSlice) -> Vec<String> {
    let ports: Vec<String> = s
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.port.map(|n| n.to_string()))
        .collect();
    let addrs: Vec<&str> = s
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(String::as_str))
        .collect();
    let endpoints = match addrs.len() {
        0 => "<none>".to_string(),
        1..=3 => addrs.join(","),
        n => format!("{} + {} more...", addrs[..3].join(","), n - 3),
    };
    vec![
        s.metadata.name.clone().unwrap_or_default(),
        s.address_type.clone(),
        if ports.is_empty() {
            "<unset>".into()
        } else {
            ports.join(",")
        },
        endpoints,
        age(s.metadata.creation_timestamp.as_ref(), Utc::now()),
    ]
}

/// `peapod get services|endpointslices [NAME]`.
pub async fn get(
    client: &Client,
    resource: &str,
    name: Option<&str>,
    namespace: &str,
    all_namespaces: bool,
    output: Output,
) -> Result<()> {
    let all_namespaces = all_namespaces && name.is_none();
    let list = if all_namespaces {
        format!("{}/{resource}", base(resource))
    } else {
        format!(
            "{}/namespaces/{}/{resource}",
            base(resource),
            encode(namespace)
        )
    };
    let one = name.map(|n| item_path(resource, namespace, n));
    let (items, single) = super::config::one_or_list(client, one, &list).await?;
    let kind = resource.trim_end_matches('s');
    let out = match output {
        Output::Json | Output::Yaml => super::config::structured(items, single, output)?,
        Output::Name => items
            .iter()
            .map(|v| {
                let k = if resource == "endpointslices" {
                    "endpointslice.discovery.k8s.io"
                } else {
                    kind
                };
                format!("{k}/{}\n", v["metadata"]["name"].as_str().unwrap_or(""))
            })
            .collect(),
        Output::Default | Output::Wide => {
            if items.is_empty() {
                if all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {namespace} namespace.");
                }
                return Ok(());
            }
            let wide = output == Output::Wide;
            let mut head: Vec<String> = Vec::new();
            if all_namespaces {
                head.push("NAMESPACE".into());
            }
            if resource == "services" {
                head.extend(
                    [
                        "NAME",
                        "TYPE",
                        "CLUSTER-IP",
                        "EXTERNAL-IP",
                        "PORT(S)",
                        "AGE",
                    ]
                    .map(String::from),
                );
                if wide {
                    head.push("SELECTOR".into());
                }
            } else {
                head.extend(["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"].map(String::from));
            }
            let mut rows = vec![head];
            for v in items {
                let ns = v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let mut row = Vec::new();
                if all_namespaces {
                    row.push(ns);
                }
                if resource == "services" {
                    let s: Service = serde_json::from_value(v).map_err(|e| {
                        anyhow!("error: the daemon sent a Service this client cannot read: {e}")
                    })?;
                    row.extend(service_row(&s, wide));
                } else {
                    let s: EndpointSlice = serde_json::from_value(v).map_err(|e| {
                        anyhow!(
                            "error: the daemon sent an EndpointSlice this client cannot read: {e}"
                        )
                    })?;
                    row.extend(slice_row(&s));
                }
                rows.push(row);
            }
            Table::kubectl().render(&rows)
        }
    };
    print!("{out}");
    Ok(())
}

/// kubectl's describe of a Service, with its endpoints from its slices.
pub fn describe_service_text(s: &Service, slices: &[EndpointSlice]) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    let mut out = header(&s.metadata);
    out.push_str(&map_lines("Selector", spec.selector.as_ref(), "="));
    let ty = spec.type_.clone().unwrap_or_else(|| "ClusterIP".into());
    out.push_str(&format!("Type:\t{ty}\n"));
    if ty == "ExternalName" {
        out.push_str(&format!(
            "External Name:\t{}\n",
            spec.external_name.clone().unwrap_or_default()
        ));
    } else {
        out.push_str(&format!(
            "IP Family Policy:\t{}\nIP Families:\t{}\nIP:\t{}\nIPs:\t{}\n",
            spec.ip_family_policy.clone().unwrap_or_default(),
            spec.ip_families.clone().unwrap_or_default().join(","),
            spec.cluster_ip.clone().unwrap_or_default(),
            spec.cluster_ips.clone().unwrap_or_default().join(","),
        ));
    }
    for p in spec.ports.iter().flatten() {
        let name = p
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "<unset>".into());
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.push_str(&format!("Port:\t{name}  {}/{proto}\n", p.port));
        let target = match &p.target_port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                n.to_string()
            }
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(n)) => n.clone(),
            None => p.port.to_string(),
        };
        out.push_str(&format!("TargetPort:\t{target}/{proto}\n"));
        if let Some(np) = p.node_port.filter(|n| *n > 0) {
            out.push_str(&format!("NodePort:\t{name}  {np}/{proto}\n"));
        }
        let mut eps = Vec::new();
        for sl in slices {
            let Some(port) = sl
                .ports
                .iter()
                .flatten()
                .find(|sp| sp.name.as_deref().unwrap_or("") == p.name.as_deref().unwrap_or(""))
            else {
                continue;
            };
            for e in &sl.endpoints {
                if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                    for a in &e.addresses {
                        eps.push(format!("{a}:{}", port.port.unwrap_or(0)));
                    }
                }
            }
        }
        out.push_str(&format!(
            "Endpoints:\t{}\n",
            if eps.is_empty() {
                String::new()
            } else {
                eps.join(",")
            }
        ));
    }
    out.push_str(&format!(
        "Session Affinity:\t{}\n",
        spec.session_affinity
            .clone()
            .unwrap_or_else(|| "None".into())
    ));
    if ty == "NodePort" {
        out.push_str(&format!(
            "External Traffic Policy:\t{}\n",
            spec.external_traffic_policy.clone().unwrap_or_default()
        ));
    }
    out.push_str(&format!(
        "Internal Traffic Policy:\t{}\n",
        spec.internal_traffic_policy.clone().unwrap_or_default()
    ));
    out.push_str("Events:\t<none>\n");
    tabwrite(&out, 0, 2)
}

/// `peapod describe service NAME`.
pub async fn describe(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let s: Service = client
        .get_json(&object_path("services", namespace, name))
        .await?;
    let list: Value = client
        .get_json(&format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices",
            encode(namespace)
        ))
        .await?;
    let slices: Vec<EndpointSlice> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["metadata"]["labels"]["kubernetes.io/service-name"] == name)
        .filter_map(|v| serde_json::from_value(v.clone()).ok())
        .collect();
    print!("{}", describe_service_text(&s, &slices));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_rows_as_kubectl_prints_them() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"name": "d", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        assert_eq!(ports_column(&s), "80:30080/TCP,53/UDP");
        let row = service_row(&s, true);
        assert_eq!(
            &row[..5],
            [
                "web",
                "NodePort",
                "10.96.0.10",
                "<none>",
                "80:30080/TCP,53/UDP"
            ]
        );
        assert_eq!(row[6], "app=web");
    }
}
