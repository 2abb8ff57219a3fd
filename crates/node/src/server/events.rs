//! GET /api/v1/namespaces/{ns}/events (`fieldSelector=involvedObject.name=X`,
//! `?watch=1`).

use super::{json_response, query_map, store_error, truthy, watch_response};
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
    let (items, rv) = match node.events.list(&ns, name.as_deref()) {
        Ok(x) => x,
        Err(e) => return store_error(e),
    };
    if truthy(q.get("watch")) {
        // The field selector filters the initial list only.
        return watch_response(&node, format!("events/{ns}/"), &q, items, rv);
    }
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "kind": "EventList", "apiVersion": "v1",
            "metadata": { "resourceVersion": rv.to_string() },
            "items": items,
        }),
    )
}
