//! Cluster-scoped kinds served generically: PersistentVolumes and
//! StorageClasses (list, get, apply with PUT, delete). A PersistentVolume
//! applied by the user is Available until a claim binds it.

use super::{internal, json_response, status_error, store_error};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::StorageClass;
use std::sync::Arc;

/// A cluster-scoped kind served here.
pub trait ClusterObject:
    crate::store::Object + k8s_openapi::Resource<Scope = k8s_openapi::ClusterResourceScope>
{
    fn default(&mut self) {}
}

impl ClusterObject for PersistentVolume {
    fn default(&mut self) {
        let s = self.spec.get_or_insert_with(Default::default);
        s.persistent_volume_reclaim_policy
            .get_or_insert_with(|| "Retain".into());
        s.volume_mode.get_or_insert_with(|| "Filesystem".into());
        if self.status.is_none() {
            self.status = Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
                phase: Some("Available".into()),
                ..Default::default()
            });
        }
    }
}

impl ClusterObject for StorageClass {
    fn default(&mut self) {
        self.reclaim_policy.get_or_insert_with(|| "Delete".into());
        self.volume_binding_mode
            .get_or_insert_with(|| "Immediate".into());
    }
}

/// The routes of the cluster-scoped kinds.
pub fn routes(r: Router<Arc<Node>>) -> Router<Arc<Node>> {
    let r = kind_routes::<PersistentVolume>(r);
    kind_routes::<StorageClass>(r)
}

fn kind_routes<T: ClusterObject>(router: Router<Arc<Node>>) -> Router<Arc<Node>> {
    let base = match T::GROUP {
        "" => format!("/api/{}", T::VERSION),
        g => format!("/apis/{g}/{}", T::VERSION),
    };
    let plural = T::URL_PATH_SEGMENT;
    router
        .route(&format!("{base}/{plural}"), get(list::<T>))
        .route(
            &format!("{base}/{plural}/{{name}}"),
            get(get_one::<T>).put(apply::<T>).delete(delete::<T>),
        )
}

fn key<T: ClusterObject>(name: &str) -> String {
    format!("{}/{name}", T::URL_PATH_SEGMENT)
}

fn not_found<T: ClusterObject>(name: &str) -> Response {
    let what = match T::GROUP {
        "" => T::URL_PATH_SEGMENT.to_string(),
        g => format!("{}.{g}", T::URL_PATH_SEGMENT),
    };
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} \"{name}\" not found"),
    )
}

async fn list<T: ClusterObject>(State(node): State<Arc<Node>>) -> Response {
    match node
        .store
        .list_at::<T>(&format!("{}/", T::URL_PATH_SEGMENT))
    {
        Ok((items, rv)) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": format!("{}List", T::KIND), "apiVersion": T::API_VERSION, "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
        ),
        Err(e) => internal(e),
    }
}

async fn get_one<T: ClusterObject>(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> Response {
    match node.store.get::<T>(&key::<T>(&name)) {
        Ok(Some(o)) => json_response(StatusCode::OK, &o),
        Ok(None) => not_found::<T>(&name),
        Err(e) => internal(e),
    }
}

async fn apply<T: ClusterObject>(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let mut obj: T = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("the request body is not a valid {}: {e}", T::KIND),
            )
        }
    };
    if obj.metadata().name.as_deref() != Some(name.as_str()) {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name of the object must match the URL",
        );
    }
    obj.metadata_mut().namespace = None;
    obj.default();
    let k = key::<T>(&name);
    match node.store.get::<T>(&k) {
        Ok(None) => match node.store.create(obj) {
            Ok(o) => {
                let mut r = json_response(StatusCode::CREATED, &o);
                r.headers_mut().insert(
                    "x-peapod-result",
                    axum::http::HeaderValue::from_static("created"),
                );
                r
            }
            Err(e) => store_error(e),
        },
        Ok(Some(cur)) => {
            // Keep what the controllers wrote (status, binding).
            let mut next = serde_json::to_value(&obj).unwrap_or_default();
            if let (Some(n), Ok(c)) = (next.as_object_mut(), serde_json::to_value(&cur)) {
                if let Some(st) = c.get("status") {
                    n.insert("status".into(), st.clone());
                }
                if let Some(r) = c.pointer("/spec/claimRef") {
                    if let Some(spec) = n.get_mut("spec").and_then(|s| s.as_object_mut()) {
                        spec.insert("claimRef".into(), r.clone());
                    }
                }
            }
            let mut next: T = match serde_json::from_value(next) {
                Ok(n) => n,
                Err(e) => return internal(e),
            };
            next.metadata_mut().resource_version = cur.metadata().resource_version.clone();
            next.metadata_mut().uid = cur.metadata().uid.clone();
            next.metadata_mut().creation_timestamp = cur.metadata().creation_timestamp.clone();
            if serde_json::to_value(&next).ok() == serde_json::to_value(&cur).ok() {
                let mut r = json_response(StatusCode::OK, &cur);
                r.headers_mut().insert(
                    "x-peapod-result",
                    axum::http::HeaderValue::from_static("unchanged"),
                );
                return r;
            }
            match node.store.update(next) {
                Ok(o) => {
                    let mut r = json_response(StatusCode::OK, &o);
                    r.headers_mut().insert(
                        "x-peapod-result",
                        axum::http::HeaderValue::from_static("configured"),
                    );
                    r
                }
                Err(e) => store_error(e),
            }
        }
        Err(e) => internal(e),
    }
}

async fn delete<T: ClusterObject>(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> Response {
    match node.store.delete(T::URL_PATH_SEGMENT, &key::<T>(&name)) {
        Ok(true) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "details": { "name": name, "group": T::GROUP, "kind": T::URL_PATH_SEGMENT } }),
        ),
        Ok(false) => not_found::<T>(&name),
        Err(e) => store_error(e),
    }
}
