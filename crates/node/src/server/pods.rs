//! Pods: list (and watch), get, create, apply, delete.

use super::{
    internal, json_response, pod_not_found, query_map, status_error, stream_response, truthy,
    with_warnings,
};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

pub async fn list_all(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    list_in(node, None, q).await
}

pub async fn list(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    list_in(node, Some(ns), q).await
}

async fn list_in(node: Arc<Node>, ns: Option<String>, q: Option<String>) -> Response {
    let q = query_map(q.as_deref());
    let watch = truthy(q.get("watch"));
    // Subscribe before listing so no change falls between the two.
    let mut rx = node.store.subscribe();
    let pods = match node.list_pods(ns.as_deref()) {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    if !watch {
        return json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods }),
        );
    }
    let prefix = match &ns {
        Some(ns) => format!("pods/{ns}/"),
        None => "pods/".to_string(),
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        for p in pods {
            let line = serde_json::json!({ "type": "ADDED", "object": p });
            if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Ok(c) if c.key.starts_with(&prefix) => {
                    let line = serde_json::json!({ "type": c.event, "object": c.object });
                    if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    stream_response("application/json", out)
}

pub async fn get(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match node.get_pod(&ns, &name) {
        Ok(Some(p)) => json_response(StatusCode::OK, &p),
        Ok(None) => pod_not_found(&name),
        Err(e) => internal(e),
    }
}

/// Decode, default and validate a pod sent for namespace `ns`.
fn admit(ns: &str, body: &[u8]) -> Result<(Pod, Vec<String>), Response> {
    let mut pod: Pod = serde_json::from_slice(body).map_err(|e| {
        status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the request body is not a valid Pod: {e}"),
        )
    })?;
    match pod.metadata.namespace.as_deref() {
        None | Some("") => pod.metadata.namespace = Some(ns.to_string()),
        Some(other) if other != ns => {
            return Err(status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the namespace of the provided object ({other}) does not match the namespace sent on the request ({ns})"),
            ))
        }
        _ => {}
    }
    peapod_api::default_pod(&mut pod);
    if let Err(errs) = peapod_api::validate_pod(&pod) {
        let causes: Vec<_> = errs
            .errors
            .iter()
            .map(|e| serde_json::json!({ "reason": "FieldValueInvalid", "message": e.message, "field": e.field }))
            .collect();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": errs.to_string(), "reason": "Invalid",
            "details": { "name": name, "kind": "pods", "causes": causes }, "code": 422,
        });
        return Err(json_response(StatusCode::UNPROCESSABLE_ENTITY, &body));
    }
    let warnings = peapod_api::unsupported_fields(&pod);
    Ok((pod, warnings))
}

fn create_new(node: &Arc<Node>, mut pod: Pod, warnings: &[String]) -> Response {
    pod.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    pod.metadata.creation_timestamp = Some(crate::time::now());
    pod.metadata.resource_version = Some("1".into());
    pod.metadata.generation = Some(1);
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none()
    {
        if let Some(s) = pod.spec.as_mut() {
            s.node_name = Some(node.hostname.clone());
        }
    }
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some(crate::status::qos_class(&pod).into()),
        ..Default::default()
    });
    if let Err(e) = node.put_pod(&pod) {
        return internal(e);
    }
    node.events.record(
        &pod,
        "Normal",
        "Scheduled",
        format!(
            "Successfully assigned {}/{} to {}",
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
            node.hostname
        ),
    );
    node.ensure_worker(&pod);
    with_warnings(json_response(StatusCode::CREATED, &pod), warnings)
}

pub async fn create(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    let (pod, warnings) = match admit(&ns, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = pod.metadata.name.clone().unwrap_or_default();
    match node.get_pod(&ns, &name) {
        Ok(Some(_)) => status_error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("pods \"{name}\" already exists"),
        ),
        Ok(None) => create_new(&node, pod, &warnings),
        Err(e) => internal(e),
    }
}

/// PUT: create, or report `unchanged` for the same spec. Pods are
/// immutable here beyond that (Kubernetes allows an image change, which
/// arrives with the lifecycle work).
pub async fn apply(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (pod, warnings) = match admit(&ns, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if pod.metadata.name.as_deref() != Some(name.as_str()) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        );
    }
    match node.get_pod(&ns, &name) {
        Ok(Some(cur)) => {
            if cur.metadata.deletion_timestamp.is_some() {
                return status_error(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("object is being deleted: pods \"{name}\" already exists"),
                );
            }
            let mut cur_spec = cur.spec.clone();
            if let (Some(c), Some(n)) = (cur_spec.as_mut(), pod.spec.as_ref()) {
                if n.node_name.is_none() {
                    c.node_name = None;
                }
            }
            if cur_spec == pod.spec && cur.metadata.labels == pod.metadata.labels {
                let mut r = with_warnings(json_response(StatusCode::OK, &cur), &warnings);
                r.headers_mut().insert(
                    "x-peapod-result",
                    axum::http::HeaderValue::from_static("unchanged"),
                );
                r
            } else {
                status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    &format!("Pod \"{name}\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative); peapod does not update running pods yet: delete the pod and apply it again"),
                )
            }
        }
        Ok(None) => create_new(&node, pod, &warnings),
        Err(e) => internal(e),
    }
}

pub async fn delete(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_map(q.as_deref());
    let mut pod = match node.get_pod(&ns, &name) {
        Ok(Some(p)) => p,
        Ok(None) => return pod_not_found(&name),
        Err(e) => return internal(e),
    };
    let grace = match q.get("gracePeriodSeconds").map(|g| g.parse::<i64>()) {
        Some(Ok(g)) if g >= 0 => Some(g),
        Some(_) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "gracePeriodSeconds must be a non-negative integer",
            )
        }
        None => None,
    };
    if pod.metadata.deletion_timestamp.is_none() || grace.is_some() {
        let grace = grace
            .or(pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        let shorter = pod
            .metadata
            .deletion_grace_period_seconds
            .map(|g| grace < g)
            .unwrap_or(true);
        if shorter {
            pod.metadata.deletion_grace_period_seconds = Some(grace);
        }
        if pod.metadata.deletion_timestamp.is_none() {
            pod.metadata.deletion_timestamp = Some(crate::time::now());
        }
        if let Err(e) = node.put_pod(&pod) {
            return internal(e);
        }
    }
    node.ensure_worker(&pod);
    json_response(StatusCode::OK, &pod).into_response()
}
