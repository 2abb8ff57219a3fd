//! ConfigMaps and Secrets (and Services): create (POST), apply (PUT: create
//! or replace, "unchanged" when nothing differs) and delete, with the API
//! server's defaults and validation (config keys, `immutable`, a Secret's
//! type never changing); list and get are `objects.rs`'s generic ones. Pods use
//! them for env, envFrom and volumes; Secrets also for `imagePullSecrets`.
//!
//! Secret values never reach a log line or an error message here.

use super::objects::{decode_body, not_found, ApiObject};
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

impl ApiObject for Secret {
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

impl ApiObject for ConfigMap {
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

pub async fn create<T: ApiObject + PartialEq>(
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
fn same<T: ApiObject + PartialEq>(cur: &T, new: &T) -> bool {
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

pub async fn apply<T: ApiObject + PartialEq>(
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

pub async fn delete<T: ApiObject + PartialEq>(
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
