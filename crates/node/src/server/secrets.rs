//! Secrets: list, get, apply (create or replace), delete. Pods name them in
//! `imagePullSecrets`.

use super::{internal, json_response, status_error, store_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::Secret;
use std::sync::Arc;

pub fn secret_key(ns: &str, name: &str) -> String {
    crate::store::key("secrets", ns, name)
}

fn not_found(name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("secrets \"{name}\" not found"),
    )
}

pub async fn list(State(node): State<Arc<Node>>, Path(ns): Path<String>) -> Response {
    match node.store.list_at::<Secret>(&format!("secrets/{ns}/")) {
        Ok((items, rv)) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "SecretList", "apiVersion": "v1", "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
        ),
        Err(e) => internal(e),
    }
}

pub async fn get(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match node.store.get::<Secret>(&secret_key(&ns, &name)) {
        Ok(Some(s)) => json_response(StatusCode::OK, &s),
        Ok(None) => not_found(&name),
        Err(e) => internal(e),
    }
}

pub async fn apply(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut secret: Secret = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the request body is not a valid Secret: {e}"),
            )
        }
    };
    if secret
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("")
        .is_empty()
    {
        secret.metadata.namespace = Some(ns.clone());
    }
    peapod_api::default_secret(&mut secret);
    if secret.metadata.name.as_deref() != Some(name.as_str())
        || secret.metadata.namespace.as_deref() != Some(ns.as_str())
    {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name and namespace of the object must match the URL",
        );
    }
    if let Err(e) = peapod_api::validate_secret(&secret) {
        return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
    }
    let key = secret_key(&ns, &name);
    let existing = match node.store.get::<Secret>(&key) {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let (code, result, stored) = match existing {
        Some(cur) => {
            if cur.data == secret.data
                && cur.type_ == secret.type_
                && cur.metadata.labels == secret.metadata.labels
            {
                let mut r = json_response(StatusCode::OK, &cur);
                r.headers_mut()
                    .insert("x-peapod-result", HeaderValue::from_static("unchanged"));
                return r;
            }
            // Replace what was read: a concurrent change is a Conflict.
            secret.metadata.resource_version = cur.metadata.resource_version.clone();
            (StatusCode::OK, "configured", node.store.update(secret))
        }
        None => {
            if let Err(r) = super::namespaces::check_namespace(&node, &ns, "secrets", &name) {
                return r;
            }
            (StatusCode::CREATED, "created", node.store.create(secret))
        }
    };
    let secret = match stored {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let mut r = json_response(code, &secret);
    r.headers_mut()
        .insert("x-peapod-result", HeaderValue::from_static(result));
    r
}

pub async fn delete(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match node.store.delete("secrets", &secret_key(&ns, &name)) {
        Ok(true) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "details": { "name": name, "kind": "secrets" } }),
        ),
        Ok(false) => not_found(&name),
        Err(e) => internal(e),
    }
}
