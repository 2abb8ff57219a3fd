//! GET .../pods/{name}/portforward?ports=PORT[,PORT...]: Kubernetes'
//! websocket port-forward protocol (`v4.channel.k8s.io`,
//! `v4.base64.channel.k8s.io`, `portforward.k8s.io`), one connection per
//! port for the websocket's life, served by the same session code as the
//! CRI streaming server's port-forward URL (`peapod_cri::streaming`): port
//! i's data on channel 2i, its errors on 2i+1, the first message on each
//! channel the port (2 bytes, little-endian). The daemon connects to the
//! port on the pod's loopback from inside its network namespace.

use super::{internal, pod_not_found, query_params, status_error};
use crate::node::Node;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::path::PathBuf;
use std::sync::Arc;

fn bad_request(msg: &str) -> Response {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

pub async fn portforward(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let ports: Vec<String> = query_params(q.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "ports")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    if ports.is_empty() {
        return bad_request("query parameter \"ports\" is required");
    }
    let mut numbers = Vec::with_capacity(ports.len());
    for p in &ports {
        match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => numbers.push(n),
            _ => return bad_request(&format!("invalid port {p:?}: must be 1 to 65535")),
        }
    }
    let ports = numbers;
    let pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    if phase != "Running" {
        return bad_request(&format!(
            "unable to forward port because pod is not running. Current status={phase}"
        ));
    }
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let n = node.clone();
    let sandbox = tokio::task::spawn_blocking(move || {
        let sid = n.current_sandbox(&pod)?;
        n.runtime.pod_sandbox_status(&sid).ok()
    })
    .await
    .ok()
    .flatten();
    let netns: PathBuf = match sandbox {
        Some(s) if s.state == peapod_runtime::SandboxState::Ready => match s.netns {
            Some(p) if !host_network => p,
            _ => PathBuf::from("/proc/self/ns/net"),
        },
        _ => {
            return bad_request(&format!(
                "unable to forward port because pod {name:?} has no running sandbox"
            ))
        }
    };
    peapod_cri::streaming::port_forward_websocket(name, netns, ports, ws)
}
