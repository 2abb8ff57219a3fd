//! GET .../pods/{name}/exec: the Kubernetes websocket exec protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`),
//! served by the same session code as the CRI streaming server's exec URL
//! (`peapod_cri::streaming`): each message starts with its channel, 0
//! stdin, 1 stdout, 2 stderr, 3 status, 4 resize, and (v5) 255 close.

use super::logs::pick_container;
use super::{internal, pod_not_found, query_params, status_error};
use crate::node::Node;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

struct ExecArgs {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    tty: bool,
}

fn parse(q: Option<&str>) -> ExecArgs {
    let mut a = ExecArgs {
        command: Vec::new(),
        container: None,
        stdin: false,
        tty: false,
    };
    for (k, v) in query_params(q) {
        match k.as_str() {
            "command" => a.command.push(v),
            "container" => a.container = Some(v),
            "stdin" => a.stdin = matches!(v.as_str(), "1" | "true"),
            "tty" => a.tty = matches!(v.as_str(), "1" | "true"),
            _ => {}
        }
    }
    a
}

pub async fn exec(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let args = parse(q.as_deref());
    let pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    if args.command.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least one command for the container",
        );
    }
    let container = match pick_container(&pod, args.container.as_ref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let found = node.find_container_async(&pod, &container).await;
    let running = found
        .as_ref()
        .is_some_and(|c| c.state == peapod_runtime::ContainerState::Running);
    let uid = found.map(|c| c.id).unwrap_or_default();
    if !running {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unable to upgrade connection: container not found (\"{container}\")"),
        );
    }
    let req = peapod_cri::pb::ExecRequest {
        container_id: uid,
        cmd: args.command,
        tty: args.tty,
        stdin: args.stdin,
        stdout: true,
        stderr: !args.tty,
    };
    peapod_cri::streaming::exec_websocket(node.runtime.clone(), req, ws)
}
