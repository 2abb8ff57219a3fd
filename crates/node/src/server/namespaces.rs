//! Namespaces: list, get, create (POST), apply (PUT), delete. A deleted
//! namespace goes `Terminating`: its pods are deleted gracefully, then
//! every other object in it (secrets, configmaps, events, ...), then the
//! namespace itself, as the API server's namespace controller does. It
//! carries on after a daemon restart ([`resume`]).
//!
//! Objects are created only in a namespace that exists and is not being
//! deleted ([`check_namespace`], the API server's NamespaceLifecycle
//! admission).

use super::{json_response, query_map, status_error, store_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, NamespaceStatus, Pod};
use std::sync::Arc;
use std::time::Duration;

/// Namespaces the API server never deletes.
const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

fn key(name: &str) -> String {
    format!("namespaces/{name}")
}

fn not_found(name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("namespaces \"{name}\" not found"),
    )
}

/// NamespaceLifecycle: creating `resource` `name` in `ns` needs `ns` to
/// exist and not be terminating.
pub fn check_namespace(node: &Node, ns: &str, resource: &str, name: &str) -> Result<(), Response> {
    match node.store.get::<Namespace>(&key(ns)) {
        Ok(Some(n)) if n.metadata.deletion_timestamp.is_some() => Err(status_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("{resource} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
        )),
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(not_found(ns)),
        Err(e) => Err(store_error(e)),
    }
}

/// A DNS-1123 label, as a namespace name must be.
fn name_error(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| {
        format!(
            "Namespace \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    })
}

/// Decode and default a Namespace from a request body.
fn decode(body: &[u8]) -> Result<Namespace, Response> {
    let mut ns: Namespace = serde_json::from_slice(body).map_err(|e| {
        status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the request body is not a valid Namespace: {e}"),
        )
    })?;
    let name = ns.metadata.name.clone().unwrap_or_default();
    if let Some(e) = name_error(&name) {
        return Err(status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &e,
        ));
    }
    // What the API server fills in.
    ns.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("kubernetes.io/metadata.name".into(), name);
    ns.spec = Some(NamespaceSpec {
        finalizers: Some(vec!["kubernetes".into()]),
    });
    ns.status = Some(NamespaceStatus {
        phase: Some("Active".into()),
        ..Default::default()
    });
    ns.metadata.namespace = None;
    Ok(ns)
}

pub async fn list(State(node): State<Arc<Node>>, RawQuery(q): RawQuery) -> Response {
    let q = query_map(q.as_deref());
    let sel = match super::select::Selectors::from_query(&q, &["metadata.name", "status.phase"]) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match node.store.list_at::<Namespace>("namespaces/") {
        Ok((items, rv)) => {
            let items: Vec<serde_json::Value> = items
                .into_iter()
                .filter_map(|n| serde_json::to_value(n).ok())
                .filter(|v| sel.matches_value(v))
                .collect();
            json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "kind": "NamespaceList", "apiVersion": "v1",
                    "metadata": { "resourceVersion": rv.to_string() },
                    "items": items,
                }),
            )
        }
        Err(e) => store_error(e),
    }
}

pub async fn get(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    match node.store.get::<Namespace>(&key(&name)) {
        Ok(Some(n)) => json_response(StatusCode::OK, &n),
        Ok(None) => not_found(&name),
        Err(e) => store_error(e),
    }
}

pub async fn create(State(node): State<Arc<Node>>, body: Bytes) -> Response {
    let ns = match decode(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match node.store.create(ns) {
        Ok(n) => json_response(StatusCode::CREATED, &n),
        Err(e) => store_error(e),
    }
}

/// PUT: create, or `unchanged` / `configured` (labels and annotations).
pub async fn apply(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let ns = match decode(&body) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if ns.metadata.name.as_deref() != Some(name.as_str()) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        );
    }
    let result = |code, n: &Namespace, r: &'static str| {
        let mut resp = json_response(code, n);
        resp.headers_mut()
            .insert("x-peapod-result", HeaderValue::from_static(r));
        resp
    };
    match node.store.get::<Namespace>(&key(&name)) {
        Ok(Some(cur)) => {
            if cur.metadata.labels == ns.metadata.labels
                && cur.metadata.annotations == ns.metadata.annotations
            {
                return result(StatusCode::OK, &cur, "unchanged");
            }
            let labels = ns.metadata.labels.clone();
            let annotations = ns.metadata.annotations.clone();
            match node.store.update_with::<Namespace>(&key(&name), |n| {
                n.metadata.labels = labels.clone();
                n.metadata.annotations = annotations.clone();
                true
            }) {
                Ok(Some(n)) => result(StatusCode::OK, &n, "configured"),
                Ok(None) => not_found(&name),
                Err(e) => store_error(e),
            }
        }
        Ok(None) => match node.store.create(ns) {
            Ok(n) => result(StatusCode::CREATED, &n, "created"),
            Err(e) => store_error(e),
        },
        Err(e) => store_error(e),
    }
}

pub async fn delete(State(node): State<Arc<Node>>, Path(name): Path<String>) -> Response {
    if IMMORTAL.contains(&name.as_str()) {
        return status_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        );
    }
    // Whether this request started the deletion (a repeat, or a retry of
    // the compare-and-swap that finds it started, does not).
    let started = std::cell::Cell::new(false);
    let res = node.store.update_with::<Namespace>(&key(&name), |n| {
        if n.metadata.deletion_timestamp.is_some() {
            started.set(false);
            return false;
        }
        n.metadata.deletion_timestamp = Some(crate::time::now());
        n.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        started.set(true);
        true
    });
    match res {
        Ok(Some(n)) => {
            if started.get() {
                tokio::spawn(finalize(node.clone(), name));
            }
            json_response(StatusCode::OK, &n)
        }
        Ok(None) => not_found(&name),
        Err(e) => store_error(e),
    }
}

/// Carry on deleting the namespaces a previous daemon left terminating.
pub fn resume(node: &Arc<Node>) {
    let Ok(all) = node.store.list::<Namespace>("namespaces/") else {
        return;
    };
    for n in all {
        if n.metadata.deletion_timestamp.is_some() {
            if let Some(name) = n.metadata.name {
                tokio::spawn(finalize(node.clone(), name));
            }
        }
    }
}

/// Empty namespace `ns` and remove it: pods first, gracefully (each with
/// its own grace period), then everything else stored in it.
async fn finalize(node: Arc<Node>, ns: String) {
    loop {
        let pods: Vec<Pod> = match node.list_pods(Some(&ns)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(namespace = %ns, "listing pods to delete: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if pods.is_empty() {
            break;
        }
        for p in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            let name = p.metadata.name.clone().unwrap_or_default();
            if let Err(e) = super::pods::request_delete(&node, &ns, &name, None) {
                tracing::warn!(namespace = %ns, pod = %name, "delete: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything else namespaced: `<resource>/<ns>/<name>`.
    let keys = node.store.keys(|k| {
        let mut parts = k.splitn(3, '/');
        let (_, n, rest) = (parts.next(), parts.next(), parts.next());
        n == Some(ns.as_str()) && rest.is_some()
    });
    match keys {
        Ok(keys) => {
            for k in keys {
                if let Err(e) = node.store.delete_if(&k, crate::store::Sync::Lazy, |_| true) {
                    tracing::warn!(namespace = %ns, key = %k, "delete: {e}");
                }
            }
        }
        Err(e) => tracing::warn!(namespace = %ns, "listing its objects: {e}"),
    }
    if let Err(e) = node.store.delete("namespaces", &key(&ns)) {
        tracing::warn!(namespace = %ns, "delete: {e}");
    }
}
