//! Pods: list (and watch), get, create, apply, delete.

use super::{
    internal, json_response, pod_not_found, query_map, status_error, store_error, truthy,
    with_warnings,
};
use crate::node::{pod_key, Node};
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
    let prefix = match &ns {
        Some(ns) => format!("pods/{ns}/"),
        None => "pods/".to_string(),
    };
    let sel = match super::select::Selectors::from_query(&q, peapod_api::selector::POD_FIELDS) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if truthy(q.get("watch")) || !sel.is_empty() {
        let (mut pods, rv) = match node.store.list_at::<Pod>(&prefix) {
            Ok(x) => x,
            Err(e) => return store_error(e),
        };
        pods.retain(|p| sel.matches_pod(p));
        if truthy(q.get("watch")) {
            return super::watch_selected(&node, prefix, &q, pods, rv, sel);
        }
        return json_response(
            StatusCode::OK,
            &serde_json::json!({
                "kind": "PodList", "apiVersion": "v1",
                "metadata": { "resourceVersion": rv.to_string() },
                "items": pods,
            }),
        );
    }
    // The stored objects are already the JSON the client wants: join them.
    let n = node.clone();
    let listed = tokio::task::spawn_blocking(move || n.store.list_raw_at(&prefix)).await;
    let (items, rv) = match listed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return store_error(e),
        Err(e) => return internal(e),
    };
    let mut body = Vec::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 128);
    body.extend_from_slice(
        format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{rv}"}},"items":["#
        )
        .as_bytes(),
    );
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
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

/// Store a new pod; the store sets uid, creationTimestamp, generation and
/// resourceVersion (whatever the client sent).
fn create_new(node: &Arc<Node>, pod: Pod, warnings: &[String]) -> Response {
    let ns = crate::node::namespace_of(&pod.metadata);
    let name = pod.metadata.name.clone().unwrap_or_default();
    if let Err(r) = super::namespaces::check_namespace(node, &ns, "pods", &name) {
        return r;
    }
    match store_new_pod(node, pod) {
        Ok(pod) => with_warnings(json_response(StatusCode::CREATED, &pod), warnings),
        Err(e) => store_error(e),
    }
}

/// Store a new (defaulted, validated) pod in an existing namespace as the
/// API server and kubelet admit it: node name, Pending status, admission,
/// the Scheduled event, and its worker. Controllers create their pods
/// through this too.
pub fn store_new_pod(node: &Arc<Node>, mut pod: Pod) -> Result<Pod, crate::store::StoreError> {
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
    // Kubelet's admission, decided once and stored with the pod under one
    // lock: concurrent creates are admitted one after the other.
    let (pod, rejection) = {
        let _admitting = crate::admission::LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let rejection = admission_check(node, &pod)?;
        if let (Some((reason, message)), Some(st)) = (&rejection, pod.status.as_mut()) {
            st.phase = Some("Failed".into());
            st.reason = Some(reason.clone());
            st.message = Some(format!("Pod was rejected: {message}"));
        }
        (node.create_pod(pod)?, rejection)
    };
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
    if let Some((reason, message)) = rejection {
        // Nothing is made for a rejected pod: no worker until it is
        // deleted.
        node.events.record(&pod, "Warning", &reason, message);
    } else {
        node.ensure_worker(&pod);
    }
    Ok(pod)
}

/// Kubelet's admit decision for a new pod against the pods the node
/// holds: the whole list is read only for a pod that requests resources
/// or host ports (the others can only exceed the pod count).
fn admission_check(
    node: &Node,
    pod: &Pod,
) -> Result<Option<(String, String)>, crate::store::StoreError> {
    let wants = crate::admission::pod_requests(pod) != Default::default()
        || pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .flat_map(|c| c.ports.iter().flatten())
            .any(|p| p.host_port.unwrap_or(0) > 0);
    let alloc = node.allocatable;
    if wants {
        let others = node.list_pods(None)?;
        return Ok(crate::admission::decide(pod, &others, alloc));
    }
    let (stored, _) = node.store.list_raw_at("pods/")?;
    Ok(crate::admission::decide(
        pod,
        &[],
        crate::admission::Allocatable {
            pods: alloc.pods - stored.len() as i64,
            ..alloc
        },
    ))
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
    create_new(&node, pod, &warnings)
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

/// DELETE: set deletionTimestamp and the grace period (a compare-and-swap
/// on the stored pod, so a status write racing with it cannot drop them);
/// the pod's worker stops it and removes it from the store. A second
/// delete may shorten the grace period, never lengthen it.
pub async fn delete(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_map(q.as_deref());
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
    match request_delete(&node, &ns, &name, grace) {
        Ok(Some(pod)) => json_response(StatusCode::OK, &pod).into_response(),
        Ok(None) => pod_not_found(&name),
        Err(e) => store_error(e),
    }
}

/// Ask for a pod's graceful deletion (`grace` or its own period): set
/// deletionTimestamp and the grace period and wake its worker, which
/// stops it and removes it from the store. None when there is no such pod.
pub fn request_delete(
    node: &Arc<Node>,
    ns: &str,
    name: &str,
    grace: Option<i64>,
) -> Result<Option<Pod>, crate::store::StoreError> {
    let res = node.store.update_with::<Pod>(&pod_key(ns, name), |pod| {
        if pod.metadata.deletion_timestamp.is_some() && grace.is_none() {
            return false;
        }
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
        let mut changed = false;
        if shorter {
            pod.metadata.deletion_grace_period_seconds = Some(grace);
            changed = true;
        }
        if pod.metadata.deletion_timestamp.is_none() {
            pod.metadata.deletion_timestamp = Some(crate::time::now());
            changed = true;
        }
        changed
    });
    if let Ok(Some(pod)) = &res {
        node.ensure_worker(pod);
    }
    res
}
