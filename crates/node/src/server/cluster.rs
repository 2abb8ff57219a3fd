//! The Node object of this host, which the daemon records itself.
//! Read-only.

use super::{json_response, status_error, store_error};
use crate::node::Node;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Node as NodeObject;
use std::sync::Arc;

fn list_of<T: crate::store::Object>(node: &Node, resource: &str, kind: &str) -> Response {
    match node.store.list_at::<T>(&format!("{resource}/")) {
        Ok((items, rv)) => json_response(
            StatusCode::OK,
            &serde_json::json!({
                "kind": kind, "apiVersion": "v1",
                "metadata": { "resourceVersion": rv.to_string() },
                "items": items,
            }),
        ),
        Err(e) => store_error(e),
    }
}

fn get_one<T: crate::store::Object>(node: &Node, resource: &str, name: &str) -> Response {
    match node.store.get::<T>(&format!("{resource}/{name}")) {
        Ok(Some(o)) => json_response(StatusCode::OK, &o),
        Ok(None) => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{resource} \"{name}\" not found"),
        ),
        Err(e) => store_error(e),
    }
}

pub async fn list_nodes(State(node): State<Arc<Node>>) -> Response {
    list_of::<NodeObject>(&node, "nodes", "NodeList")
}

pub async fn get_node(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    get_one::<NodeObject>(&node, "nodes", &name)
}
