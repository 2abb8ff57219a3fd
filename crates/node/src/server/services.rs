//! Services (`/api/v1/.../services`): list, get, create, apply, delete,
//! with the API server's defaults, clusterIP and nodePort allocation and
//! validation; EndpointSlices (`/apis/discovery.k8s.io/v1/...`): list and
//! get (the controller in `crate::services` writes them).

use super::{internal, json_response, status_error, store_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::sync::Arc;

impl super::objects::ApiObject for Service {
    fn default(&mut self) {
        peapod_api::default_service(self)
    }
    fn validate(&self) -> Result<(), String> {
        peapod_api::validate_service(self)
    }
    fn validate_update(old: &Self, new: &Self) -> Result<(), String> {
        peapod_api::validate_service_update(old, new)
    }
}

fn decode(ns: &str, name: Option<&str>, body: &[u8]) -> Result<Service, Response> {
    let mut svc: Service = serde_json::from_slice(body).map_err(|e| {
        status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the request body is not a valid Service: {e}"),
        )
    })?;
    if svc.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        svc.metadata.namespace = Some(ns.to_string());
    }
    peapod_api::default_service(&mut svc);
    if name.is_some_and(|n| svc.metadata.name.as_deref() != Some(n))
        || svc.metadata.namespace.as_deref() != Some(ns)
    {
        return Err(status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name and namespace of the object must match the URL",
        ));
    }
    Ok(svc)
}

fn invalid(msg: &str) -> Response {
    status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", msg)
}

/// Allocate, validate and store `svc` (replacing the stored one, if any).
fn store_service(node: &Node, mut svc: Service, create_only: bool) -> Response {
    let Some(cfg) = node.services.get() else {
        return internal("services are not configured in this daemon");
    };
    let ns = crate::node::namespace_of(&svc.metadata);
    let name = svc.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return invalid(
            "Service \"\" is invalid: metadata.name: Required value: name or generateName is required",
        );
    }
    let key = crate::store::key("services", &ns, &name);
    let _held = cfg.alloc.lock().unwrap_or_else(|p| p.into_inner());
    let all: Vec<Service> = match node.store.list("services/") {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let old = all
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == Some(&name)
                && crate::node::namespace_of(&s.metadata) == ns
        })
        .cloned();
    if create_only && old.is_some() {
        return store_error(crate::store::StoreError::AlreadyExists { key });
    }
    let others: Vec<Service> = all
        .into_iter()
        .filter(|s| {
            !(s.metadata.name.as_deref() == Some(&name)
                && crate::node::namespace_of(&s.metadata) == ns)
        })
        .collect();
    if let Err(e) = crate::services::allocate(cfg, &mut svc, old.as_ref(), &others) {
        return invalid(&e);
    }
    if let Err(e) = peapod_api::validate_service(&svc) {
        return invalid(&e);
    }
    let (code, result, stored) = match old {
        Some(cur) => {
            let strip = |s: &Service| {
                let mut s = s.clone();
                let keep = (s.metadata.labels.take(), s.metadata.annotations.take());
                s.metadata = Default::default();
                (s.metadata.labels, s.metadata.annotations) = keep;
                s.status = None;
                s
            };
            if strip(&cur) == strip(&svc) {
                let mut r = json_response(StatusCode::OK, &cur);
                r.headers_mut()
                    .insert("x-peapod-result", HeaderValue::from_static("unchanged"));
                return r;
            }
            if let Err(e) = peapod_api::validate_service_update(&cur, &svc) {
                return invalid(&e);
            }
            svc.metadata.resource_version = cur.metadata.resource_version.clone();
            svc.status = cur.status.clone();
            (StatusCode::OK, "configured", node.store.update(svc))
        }
        None => {
            if let Err(r) = super::namespaces::check_namespace(node, &ns, "services", &name) {
                return r;
            }
            svc.status = Some(Default::default());
            (StatusCode::CREATED, "created", node.store.create(svc))
        }
    };
    match stored {
        Ok(s) => {
            let mut r = json_response(code, &s);
            r.headers_mut()
                .insert("x-peapod-result", HeaderValue::from_static(result));
            r
        }
        Err(e) => store_error(e),
    }
}

pub async fn create(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    match decode(&ns, None, &body) {
        Ok(svc) => store_service(&node, svc, true),
        Err(r) => r,
    }
}

pub async fn apply(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match decode(&ns, Some(&name), &body) {
        Ok(svc) => store_service(&node, svc, false),
        Err(r) => r,
    }
}

fn slice_list(node: &Node, prefix: &str) -> Response {
    match node.store.list_at::<EndpointSlice>(prefix) {
        Ok((items, rv)) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1", "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
        ),
        Err(e) => internal(e),
    }
}

pub async fn list_slices(State(node): State<Arc<Node>>, Path(ns): Path<String>) -> Response {
    slice_list(&node, &format!("endpointslices/{ns}/"))
}

pub async fn list_all_slices(State(node): State<Arc<Node>>) -> Response {
    slice_list(&node, "endpointslices/")
}

pub async fn get_slice(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match node
        .store
        .get::<EndpointSlice>(&crate::store::key("endpointslices", &ns, &name))
    {
        Ok(Some(s)) => json_response(StatusCode::OK, &s),
        Ok(None) => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("endpointslices.discovery.k8s.io \"{name}\" not found"),
        ),
        Err(e) => internal(e),
    }
}
