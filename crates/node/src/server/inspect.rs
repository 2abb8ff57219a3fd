//! GET /peapod/v1/namespaces/{ns}/pods/{name}/inspect: processes and their
//! namespace inodes, the pod's cgroups and limits.

use super::{internal, json_response, pod_not_found, status_error};
use crate::node::Node;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

pub async fn inspect(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    let pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    let rt = node.runtime.clone();
    let n = node.clone();
    match tokio::task::spawn_blocking(move || {
        let sid = n
            .current_sandbox(&pod)
            .ok_or_else(|| peapod_runtime::RuntimeError::NotFound("a sandbox of the pod".into()))?;
        rt.inspect_sandbox(&sid)
    })
    .await
    {
        Ok(Ok(i)) => {
            let mut v = serde_json::to_value(&i).unwrap_or_default();
            v["pod"] = serde_json::json!(name);
            v["namespace"] = serde_json::json!(ns);
            json_response(StatusCode::OK, &v)
        }
        Ok(Err(e)) => status_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("pod \"{name}\" has no running sandbox: {e}"),
        ),
        Err(e) => internal(e),
    }
}
