//! ConfigMaps and Secrets: list, get, create (POST), apply (PUT: create or
//! replace), delete, with the API server's defaults and validation
//! (config keys, `immutable`, a Secret's type never changing). Pods use
//! them for env, envFrom and volumes; Secrets also for `imagePullSecrets`.
//!
//! Secret values never reach a log line or an error message here.

use super::{internal, json_response, status_error, store_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use std::sync::Arc;

pub fn secret_key(ns: &str, name: &str) -> String {
    crate::store::key("secrets", ns, name)
}

pub fn config_map_key(ns: &str, name: &str) -> String {
    crate::store::key("configmaps", ns, name)
}

/// What differs between the two kinds.
pub trait ConfigKind:
    crate::store::Object
    + PartialEq
    + k8s_openapi::Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
    fn default(&mut self);
    fn validate(&self) -> Result<(), String>;
    fn validate_update(old: &Self, new: &Self) -> Result<(), String>;
}

impl ConfigKind for Secret {
    fn default(&mut self) {
        peapod_api::default_secret(self)
    }
    fn validate(&self) -> Result<(), String> {
        peapod_api::validate_secret(self)
    }
    fn validate_update(old: &Self, new: &Self) -> Result<(), String> {
        peapod_api::validate_secret_update(old, new)
    }
}

impl ConfigKind for ConfigMap {
    fn default(&mut self) {
        peapod_api::default_config_map(self)
    }
    fn validate(&self) -> Result<(), String> {
        peapod_api::validate_config_map(self)
    }
    fn validate_update(old: &Self, new: &Self) -> Result<(), String> {
        peapod_api::validate_config_map_update(old, new)
    }
}

fn not_found<T: ConfigKind>(name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", T::URL_PATH_SEGMENT),
    )
}

pub async fn list<T: ConfigKind>(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
) -> Response {
    list_prefix::<T>(&node, format!("{}/{ns}/", T::URL_PATH_SEGMENT))
}

/// Every namespace's (`/api/v1/configmaps`, `/api/v1/secrets`).
pub async fn list_all<T: ConfigKind>(State(node): State<Arc<Node>>) -> Response {
    list_prefix::<T>(&node, format!("{}/", T::URL_PATH_SEGMENT))
}

fn list_prefix<T: ConfigKind>(node: &Node, prefix: String) -> Response {
    match node.store.list_at::<T>(&prefix) {
        Ok((items, rv)) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": format!("{}List", T::KIND), "apiVersion": "v1", "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
        ),
        Err(e) => internal(e),
    }
}

pub async fn get<T: ConfigKind>(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match node
        .store
        .get::<T>(&crate::store::key(T::URL_PATH_SEGMENT, &ns, &name))
    {
        Ok(Some(s)) => json_response(StatusCode::OK, &s),
        Ok(None) => not_found::<T>(&name),
        Err(e) => internal(e),
    }
}

/// Decode, default and check a request body against the URL's namespace
/// (and name, for PUT).
fn decode_body<T: ConfigKind>(ns: &str, name: Option<&str>, body: &[u8]) -> Result<T, Response> {
    let mut obj: T = serde_json::from_slice(body).map_err(|e| {
        status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the request body is not a valid {}: {e}", T::KIND),
        )
    })?;
    let meta = obj.metadata_mut();
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some(ns.to_string());
    }
    obj.default();
    let meta = obj.metadata();
    if name.is_some_and(|n| meta.name.as_deref() != Some(n))
        || meta.namespace.as_deref() != Some(ns)
    {
        return Err(status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name and namespace of the object must match the URL",
        ));
    }
    obj.validate()
        .map_err(|e| status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e))?;
    Ok(obj)
}

pub async fn create<T: ConfigKind>(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    let obj = match decode_body::<T>(&ns, None, &body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let name = obj.metadata().name.clone().unwrap_or_default();
    if let Err(r) = super::namespaces::check_namespace(&node, &ns, T::URL_PATH_SEGMENT, &name) {
        return r;
    }
    match node.store.create(obj) {
        Ok(o) => json_response(StatusCode::CREATED, &o),
        Err(e) => store_error(e),
    }
}

/// The same desired content: the PUT changes nothing.
fn same<T: ConfigKind>(cur: &T, new: &T) -> bool {
    let strip = |o: &T| {
        let mut o = o.clone();
        let m = o.metadata_mut();
        let keep = (m.labels.clone(), m.annotations.clone());
        *m = Default::default();
        (m.labels, m.annotations) = keep;
        o
    };
    strip(cur) == strip(new)
}

pub async fn apply<T: ConfigKind>(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut obj = match decode_body::<T>(&ns, Some(&name), &body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let key = crate::store::key(T::URL_PATH_SEGMENT, &ns, &name);
    let existing = match node.store.get::<T>(&key) {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let (code, result, stored) = match existing {
        Some(cur) => {
            if same(&cur, &obj) {
                let mut r = json_response(StatusCode::OK, &cur);
                r.headers_mut()
                    .insert("x-peapod-result", HeaderValue::from_static("unchanged"));
                return r;
            }
            if let Err(e) = T::validate_update(&cur, &obj) {
                return status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
            }
            // Replace what was read: a concurrent change is a Conflict.
            let m = obj.metadata_mut();
            m.resource_version = cur.metadata().resource_version.clone();
            (StatusCode::OK, "configured", node.store.update(obj))
        }
        None => {
            if let Err(r) =
                super::namespaces::check_namespace(&node, &ns, T::URL_PATH_SEGMENT, &name)
            {
                return r;
            }
            (StatusCode::CREATED, "created", node.store.create(obj))
        }
    };
    let obj = match stored {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let mut r = json_response(code, &obj);
    r.headers_mut()
        .insert("x-peapod-result", HeaderValue::from_static(result));
    r
}

pub async fn delete<T: ConfigKind>(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match node.store.delete(
        T::URL_PATH_SEGMENT,
        &crate::store::key(T::URL_PATH_SEGMENT, &ns, &name),
    ) {
        Ok(true) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "details": { "name": name, "kind": T::URL_PATH_SEGMENT } }),
        ),
        Ok(false) => not_found::<T>(&name),
        Err(e) => internal(e),
    }
}
