//! The daemon's API on a unix socket: Kubernetes-shaped paths and JSON,
//! errors as `Status` objects, `?watch=1` streams, the websocket exec
//! protocol. One file per resource.
//!
//! Handlers return `Result<_, Response>` so an early error is a ready
//! Kubernetes `Status` response; its size does not matter here.
#![allow(clippy::result_large_err)]

mod cluster;
mod cluster_objects;
mod events;
mod exec;
mod images;
mod inspect;
pub mod logs;
mod metrics;
mod namespaces;
pub mod objects;
mod pods;
mod portforward;
pub mod secrets;
pub mod select;
mod services;

use crate::node::Node;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use std::collections::HashMap;
use std::sync::Arc;

pub use pods::store_new_pod;

/// Ask for a pod's graceful deletion with its own grace period (the
/// garbage collector's and controllers' way); None when it is gone.
pub fn request_pod_delete(
    node: &Arc<Node>,
    ns: &str,
    name: &str,
) -> Result<Option<k8s_openapi::api::core::v1::Pod>, crate::store::StoreError> {
    pods::request_delete(node, ns, name, None)
}

/// The routes of the `peapod_api::KINDS` served generically.
fn object_routes(r: Router<Arc<Node>>) -> Router<Arc<Node>> {
    use k8s_openapi::api::{apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch};
    let r = objects::routes::<apps::Deployment>(r);
    let r = objects::routes::<apps::ReplicaSet>(r);
    let r = objects::routes::<apps::StatefulSet>(r);
    let r = objects::routes::<apps::DaemonSet>(r);
    let r = objects::routes::<batch::Job>(r);
    let r = objects::routes::<batch::CronJob>(r);
    let r = objects::routes::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(r);
    let r = cluster_objects::routes(r);
    objects::routes::<autoscaling::HorizontalPodAutoscaler>(r)
}

pub fn router(node: Arc<Node>) -> Router {
    object_routes(Router::new())
        .route("/api/v1/pods", get(pods::list_all))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(pods::list).post(pods::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(pods::get).put(pods::apply).delete(pods::delete),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(logs::log))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(exec::exec).post(exec::exec),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            get(portforward::portforward).post(portforward::portforward),
        )
        .route("/api/v1/namespaces/{ns}/events", get(events::list))
        .route(
            "/api/v1/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/api/v1/namespaces/{ns}",
            get(namespaces::get)
                .put(namespaces::apply)
                .delete(namespaces::delete),
        )
        .route("/api/v1/nodes", get(cluster::list_nodes))
        .route("/api/v1/nodes/{name}", get(cluster::get_node))
        .route("/api/v1/secrets", get(objects::list_all::<Secret>))
        .route("/api/v1/configmaps", get(objects::list_all::<ConfigMap>))
        .route(
            "/api/v1/namespaces/{ns}/secrets",
            get(objects::list::<Secret>).post(secrets::create::<Secret>),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets/{name}",
            get(objects::get_one::<Secret>)
                .put(secrets::apply::<Secret>)
                .delete(secrets::delete::<Secret>),
        )
        .route(
            "/api/v1/namespaces/{ns}/configmaps",
            get(objects::list::<ConfigMap>).post(secrets::create::<ConfigMap>),
        )
        .route(
            "/api/v1/namespaces/{ns}/configmaps/{name}",
            get(objects::get_one::<ConfigMap>)
                .put(secrets::apply::<ConfigMap>)
                .delete(secrets::delete::<ConfigMap>),
        )
        .route("/api/v1/services", get(objects::list_all::<Service>))
        .route(
            "/api/v1/namespaces/{ns}/services",
            get(objects::list::<Service>).post(services::create),
        )
        .route(
            "/api/v1/namespaces/{ns}/services/{name}",
            get(objects::get_one::<Service>)
                .put(services::apply)
                .delete(secrets::delete::<Service>),
        )
        .route(
            "/apis/discovery.k8s.io/v1/endpointslices",
            get(services::list_all_slices),
        )
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            get(services::list_slices),
        )
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}",
            get(services::get_slice),
        )
        .route(
            "/peapod/v1/namespaces/{ns}/pods/{name}/inspect",
            get(inspect::inspect),
        )
        .route("/peapod/v1/images", get(images::list))
        .route("/peapod/v1/images/import", post(images::import))
        .route("/peapod/v1/images/remove", post(images::remove))
        .route("/peapod/v1/images/pull", post(images::pull))
        .route("/peapod/v1/images/prune", post(images::prune))
        .route("/peapod/v1/images/export", get(images::export))
        .route(
            "/apis/metrics.k8s.io/v1beta1/pods",
            get(metrics::list_all_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
            get(metrics::list_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}",
            get(metrics::get_pod),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            get(metrics::list_nodes),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
            get(metrics::get_node),
        )
        .route("/version", get(version))
        .fallback(not_found)
        .with_state(node)
}

/// Namespaces left `Terminating` by a previous daemon are emptied and
/// removed.
pub fn resume_namespace_deletions(node: &Arc<Node>) {
    namespaces::resume(node);
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "gitVersion": concat!("v", env!("CARGO_PKG_VERSION")), "platform": "linux/amd64", "peapod": true }),
    )
}

async fn not_found(uri: axum::http::Uri) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("the server could not find the requested resource ({uri})"),
    )
}

/// A Kubernetes `Status` failure.
pub fn status_error(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    json_response(code, &body)
}

pub fn json_response<T: serde::Serialize>(code: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(b) => (code, [("content-type", "application/json")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Add Kubernetes-style `Warning: 299 - "..."` headers.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let v = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(h) = HeaderValue::from_str(&v) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

/// A response whose body streams what the channel yields (watch events,
/// followed logs, pull progress, export tarballs).
pub fn stream_response(
    content_type: &'static str,
    rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", content_type)
        .body(axum::body::Body::from_stream(stream))
        .unwrap_or_else(internal)
}

/// A store error as the API server answers it (404 NotFound, 409
/// AlreadyExists/Conflict, 410 Expired, 422 Invalid, 500).
pub fn store_error(e: crate::store::StoreError) -> Response {
    let (reason, code) = e.reason_code();
    status_error(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reason,
        &e.to_string(),
    )
}

/// The `Status` object of a failed watch, for an ERROR watch event.
pub fn status_object(e: &crate::store::StoreError) -> serde_json::Value {
    let (reason, code) = e.reason_code();
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": e.to_string(),
        "reason": reason,
        "code": code,
    })
}

/// `?watch=1` of a list: the changes under `prefix` as watch events, one
/// JSON object a line. Without `resourceVersion` (or with "0") the
/// objects of `list` come first as ADDED, as the API server sends them;
/// with one, only the changes after it. A version too old to resume from,
/// or a watcher that falls behind, gets an ERROR event with a 410
/// `Expired` Status and the stream ends: the client lists again.
pub fn watch_response<T: serde::Serialize + Send + 'static>(
    node: &Node,
    prefix: String,
    q: &HashMap<String, String>,
    list: Vec<T>,
    listed_at: u64,
) -> Response {
    watch_selected(
        node,
        prefix,
        q,
        list,
        listed_at,
        select::Selectors::default(),
    )
}

/// [`watch_response`] of the objects `sel` selects, as the API server
/// filters a watch: an object that stops matching is sent as DELETED, one
/// that starts matching as ADDED (`list` is already filtered).
pub fn watch_selected<T: serde::Serialize + Send + 'static>(
    node: &Node,
    prefix: String,
    q: &HashMap<String, String>,
    list: Vec<T>,
    listed_at: u64,
    sel: select::Selectors,
) -> Response {
    let resume = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && v.as_str() != "0");
    // Keys of the objects the client holds as matching: the (filtered)
    // list it is sent, or, resuming, the ones that match now.
    let mut matched = std::collections::HashSet::new();
    if !sel.is_empty() {
        matched.extend(
            list.iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .map(|v| object_key(&v)),
        );
    }
    let (initial, since) =
        match resume.map(|v| v.parse::<u64>()) {
            None => (list, listed_at),
            Some(Ok(rv)) => (Vec::new(), rv),
            Some(Err(_)) => return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "resourceVersion: must be the resourceVersion of a list or an object (a number)",
            ),
        };
    let watch = node.store.watch(&prefix, since);
    let (tx, out) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let line = |v: serde_json::Value| Ok(axum::body::Bytes::from(format!("{v}\n")));
        let mut watch = match watch {
            Ok(w) => w,
            Err(e) => {
                let ev = serde_json::json!({ "type": "ERROR", "object": status_object(&e) });
                let _ = tx.send(line(ev)).await;
                return;
            }
        };
        for o in initial {
            let ev = serde_json::json!({ "type": "ADDED", "object": o });
            if tx.send(line(ev)).await.is_err() {
                return;
            }
        }
        loop {
            let ev = tokio::select! {
                c = watch.next() => c,
                // The client went away: stop watching.
                _ = tx.closed() => return,
            };
            let ev = match ev {
                Some(Ok(c)) if !sel.is_empty() => {
                    let key = object_key(&c.object);
                    let now = c.event != "DELETED" && sel.matches_value(&c.object);
                    let before = matched.contains(&key);
                    let event = match (before, now) {
                        (_, true) => {
                            matched.insert(key);
                            if before {
                                c.event
                            } else {
                                "ADDED"
                            }
                        }
                        (true, false) => {
                            matched.remove(&key);
                            "DELETED"
                        }
                        // Deleted, or changed, without ever matching here;
                        // after a resume the client's set is unknown.
                        (false, false) if c.event == "DELETED" && sel.matches_value(&c.object) => {
                            "DELETED"
                        }
                        (false, false) => continue,
                    };
                    Some(Ok(crate::store::Change { event, ..c }))
                }
                other => other,
            };
            let (ev, last) = match ev {
                Some(Ok(c)) => (
                    serde_json::json!({ "type": c.event, "object": &*c.object }),
                    false,
                ),
                Some(Err(e)) => (
                    serde_json::json!({ "type": "ERROR", "object": status_object(&e) }),
                    true,
                ),
                None => return,
            };
            if tx.send(line(ev)).await.is_err() || last {
                return;
            }
        }
    });
    stream_response("application/json", out)
}

/// `namespace/name` of a JSON object.
fn object_key(v: &serde_json::Value) -> String {
    format!(
        "{}/{}",
        v.pointer("/metadata/namespace")
            .and_then(|x| x.as_str())
            .unwrap_or(""),
        v.pointer("/metadata/name")
            .and_then(|x| x.as_str())
            .unwrap_or("")
    )
}

pub fn internal(e: impl std::fmt::Display) -> Response {
    status_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        &e.to_string(),
    )
}

/// Query parameters, keeping repeats (`command=a&command=b`).
pub fn query_params(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

pub fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    query_params(raw).into_iter().collect()
}

pub fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(|s| s.as_str()), Some("1" | "true" | "True" | ""))
}

pub fn pod_not_found(name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("pods \"{name}\" not found"),
    )
}
