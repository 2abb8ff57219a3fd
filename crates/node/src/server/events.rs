//! GET /api/v1/namespaces/{ns}/events (`fieldSelector=involvedObject.name=X`).

use super::{json_response, query_map};
use crate::node::Node;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;

pub async fn list(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query_map(q.as_deref());
    let name = q
        .get("fieldSelector")
        .and_then(|s| {
            s.split(',')
                .find_map(|p| p.strip_prefix("involvedObject.name="))
        })
        .map(str::to_string);
    let items = node.events.list(&ns, name.as_deref());
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items }),
    )
}
