//! `metrics.k8s.io/v1beta1`: PodMetrics and NodeMetrics from the daemon's
//! own sampler (`crate::metrics`), as metrics-server serves them.

use super::select::Selectors;
use super::{json_response, query_map, status_error};
use crate::metrics::api;
use crate::node::{pod_key, Node};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use std::collections::HashMap;
use std::sync::Arc;

/// The pods' metrics in `ns` (all namespaces with None) matching the
/// query's label selector; only pods that still exist with the sampled
/// uid are shown.
fn pod_metrics(
    node: &Node,
    ns: Option<&str>,
    query: Option<&str>,
) -> Result<Vec<api::PodMetrics>, Response> {
    node.metrics.want();
    let selectors =
        Selectors::from_query(&query_map(query), &["metadata.name", "metadata.namespace"])?;
    let mut out = Vec::new();
    for usage in node.metrics.pods() {
        if ns.is_some_and(|n| n != usage.namespace) {
            continue;
        }
        let Ok(Some(pod)) = node
            .store
            .get::<Pod>(&pod_key(&usage.namespace, &usage.name))
        else {
            continue;
        };
        if pod.metadata.uid.as_deref() != Some(usage.uid.as_str()) || !selectors.matches_pod(&pod) {
            continue;
        }
        let labels: HashMap<String, String> = pod
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        out.push(api::pod(&usage, labels));
    }
    Ok(out)
}

pub async fn list_all_pods(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    match pod_metrics(&node, None, q.as_deref()) {
        Ok(items) => json_response(StatusCode::OK, &api::list("PodMetricsList", items)),
        Err(r) => r,
    }
}

pub async fn list_pods(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    match pod_metrics(&node, Some(&ns), q.as_deref()) {
        Ok(items) => json_response(StatusCode::OK, &api::list("PodMetricsList", items)),
        Err(r) => r,
    }
}

pub async fn get_pod(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match pod_metrics(&node, Some(&ns), None) {
        Ok(items) => match items.into_iter().find(|m| m.metadata.name == name) {
            Some(m) => json_response(StatusCode::OK, &m),
            None => status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("podmetrics.metrics.k8s.io \"{name}\" not found"),
            ),
        },
        Err(r) => r,
    }
}

pub async fn list_nodes(State(node): State<Arc<Node>>) -> Response {
    node.metrics.want();
    let items: Vec<_> = node
        .metrics
        .node()
        .map(|n| api::node(&node.hostname, &n))
        .into_iter()
        .collect();
    json_response(StatusCode::OK, &api::list("NodeMetricsList", items))
}

pub async fn get_node(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    node.metrics.want();
    match node.metrics.node().filter(|_| name == node.hostname) {
        Some(n) => json_response(StatusCode::OK, &api::node(&node.hostname, &n)),
        None => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("nodemetrics.metrics.k8s.io \"{name}\" not found"),
        ),
    }
}
