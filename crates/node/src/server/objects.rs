//! Generic handlers for the namespaced kinds of `peapod_api::KINDS`
//! (Deployments, ReplicaSets, Jobs, ...): list (and `?watch=1`), get,
//! create (POST), apply (PUT: create or replace the spec, keeping the
//! status), delete with `propagationPolicy` (Background, Foreground,
//! Orphan) and finalizers, as the API server does.
//!
//! A kind plugs in by implementing [`ApiObject`] (its defaults and
//! validation from the `api` crate) and adding its routes in `mod.rs` with
//! [`routes`].

use super::{internal, json_response, query_map, status_error, store_error, truthy};
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::sync::Arc;

/// A kind served here: its defaults and validation.
pub trait ApiObject:
    crate::store::Object + k8s_openapi::Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
    fn default(&mut self) {}
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    fn validate_update(_old: &Self, _new: &Self) -> Result<(), String> {
        Ok(())
    }
    /// Fields accepted but not honoured yet (`... is not supported yet and
    /// is ignored`), sent back as `Warning` headers.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The unsupported fields of a pod template.
fn template_warnings(t: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> Vec<String> {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| peapod_api::unsupported_template_fields(s, "spec.template.spec"))
        .unwrap_or_default()
}

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;

impl ApiObject for Deployment {
    fn default(&mut self) {
        peapod_api::default_deployment(self)
    }
    fn validate(&self) -> Result<(), String> {
        peapod_api::validate_deployment(self)
    }
    fn validate_update(old: &Self, new: &Self) -> Result<(), String> {
        peapod_api::validate_deployment_update(old, new)
    }
    fn warnings(&self) -> Vec<String> {
        template_warnings(self.spec.as_ref().map(|s| &s.template))
    }
}

impl ApiObject for ReplicaSet {
    fn default(&mut self) {
        peapod_api::default_replica_set(self)
    }
    fn validate(&self) -> Result<(), String> {
        peapod_api::validate_replica_set(self)
    }
    fn validate_update(old: &Self, new: &Self) -> Result<(), String> {
        peapod_api::validate_replica_set_update(old, new)
    }
    fn warnings(&self) -> Vec<String> {
        template_warnings(self.spec.as_ref().and_then(|s| s.template.as_ref()))
    }
}

// Stored and served; their controllers (and defaults) come with them.
impl ApiObject for StatefulSet {
    fn default(&mut self) {
        crate::controllers::statefulset::default_statefulset(self)
    }
    fn validate(&self) -> Result<(), String> {
        crate::controllers::statefulset::validate_statefulset(self)
    }
}
impl ApiObject for DaemonSet {
    fn default(&mut self) {
        crate::controllers::daemonset::default_daemonset(self)
    }
    fn validate(&self) -> Result<(), String> {
        crate::controllers::daemonset::validate_daemonset(self)
    }
}
impl ApiObject for Job {
    fn default(&mut self) {
        crate::controllers::job::default_job(self)
    }
    fn validate(&self) -> Result<(), String> {
        crate::controllers::job::validate_job(self)
    }
}
impl ApiObject for CronJob {
    fn default(&mut self) {
        crate::controllers::cronjob::default_cronjob(self)
    }
    fn validate(&self) -> Result<(), String> {
        crate::controllers::cronjob::validate_cronjob(self)
    }
}
impl ApiObject for PersistentVolumeClaim {
    fn default(&mut self) {
        crate::controllers::volume::default_claim(self)
    }
    fn validate(&self) -> Result<(), String> {
        crate::controllers::volume::validate_claim(self)
    }
}
impl ApiObject for HorizontalPodAutoscaler {
    fn default(&mut self) {
        peapod_api::default_hpa(self)
    }
    fn validate(&self) -> Result<(), String> {
        peapod_api::validate_hpa(self)
    }
}

/// The routes of kind `T` under `/apis/GROUP/VERSION` (or `/api/v1`).
pub fn routes<T: ApiObject>(router: Router<Arc<Node>>) -> Router<Arc<Node>> {
    let base = match T::GROUP {
        "" => format!("/api/{}", T::VERSION),
        g => format!("/apis/{g}/{}", T::VERSION),
    };
    let plural = T::URL_PATH_SEGMENT;
    router
        .route(&format!("{base}/{plural}"), get(list_all::<T>))
        .route(
            &format!("{base}/namespaces/{{ns}}/{plural}"),
            get(list::<T>).post(create::<T>),
        )
        .route(
            &format!("{base}/namespaces/{{ns}}/{plural}/{{name}}"),
            get(get_one::<T>).put(apply::<T>).delete(delete::<T>),
        )
}

pub(super) fn not_found<T: ApiObject>(name: &str) -> Response {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{}.{} \"{name}\" not found", T::URL_PATH_SEGMENT, T::GROUP)
            .replace(". \"", " \""),
    )
}

pub async fn list<T: ApiObject>(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    list_prefix::<T>(&node, format!("{}/{ns}/", T::URL_PATH_SEGMENT), q)
}

pub async fn list_all<T: ApiObject>(
    State(node): State<Arc<Node>>,
    RawQuery(q): RawQuery,
) -> Response {
    list_prefix::<T>(&node, format!("{}/", T::URL_PATH_SEGMENT), q)
}

fn list_prefix<T: ApiObject>(node: &Node, prefix: String, q: Option<String>) -> Response {
    let q = query_map(q.as_deref());
    let sel = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => match peapod_api::parse_label_selector(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                return status_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("labelSelector: {e}"),
                )
            }
        },
        None => None,
    };
    match node.store.list_at::<T>(&prefix) {
        Ok((mut items, rv)) => {
            if let Some(sel) = &sel {
                items.retain(|o| sel.matches(o.metadata().labels.as_ref()));
            }
            if truthy(q.get("watch")) {
                return super::watch_response(node, prefix, &q, items, rv);
            }
            json_response(
                StatusCode::OK,
                &serde_json::json!({ "kind": format!("{}List", T::KIND), "apiVersion": T::API_VERSION, "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
            )
        }
        Err(e) => internal(e),
    }
}

pub async fn get_one<T: ApiObject>(
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

/// Decode, default and validate a request body against the URL's
/// namespace (and name, for PUT).
pub(super) fn decode_body<T: ApiObject>(
    ns: &str,
    name: Option<&str>,
    body: &[u8],
) -> Result<T, Response> {
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

/// Store a new object of kind `T` (checked: its namespace exists and is
/// not terminating). Used by the handlers and by controllers.
pub fn create_object<T: ApiObject>(node: &Node, obj: T) -> Result<T, Response> {
    let ns = crate::node::namespace_of(obj.metadata());
    let name = obj.metadata().name.clone().unwrap_or_default();
    super::namespaces::check_namespace(node, &ns, T::URL_PATH_SEGMENT, &name)?;
    node.store.create(obj).map_err(store_error)
}

pub async fn create<T: ApiObject>(
    State(node): State<Arc<Node>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    let obj = match decode_body::<T>(&ns, None, &body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let warnings = obj.warnings();
    match create_object(&node, obj) {
        Ok(o) => super::with_warnings(json_response(StatusCode::CREATED, &o), &warnings),
        Err(r) => r,
    }
}

/// The desired content of an object: everything but the server's metadata
/// and the status.
fn desired<T: ApiObject>(o: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        let meta: ObjectMeta = o.metadata().clone();
        m.insert(
            "metadata".into(),
            serde_json::json!({ "labels": meta.labels, "annotations": meta.annotations, "finalizers": meta.finalizers, "ownerReferences": meta.owner_references }),
        );
    }
    v
}

/// What a PUT of `obj` makes of the stored `cur`: None when it changes
/// nothing. Metadata the client leaves out (ownerReferences and finalizers
/// set by controllers) and the status stay as stored; an object being
/// deleted may still change (its finalizers above all), its
/// deletionTimestamp stays.
fn replacement<T: ApiObject>(cur: &T, mut obj: T) -> Result<Option<T>, Response> {
    let m = obj.metadata_mut();
    let c = cur.metadata();
    if m.owner_references.is_none() {
        m.owner_references = c.owner_references.clone();
    }
    if m.finalizers.is_none() {
        m.finalizers = c.finalizers.clone();
    }
    if desired(cur) == desired(&obj) {
        return Ok(None);
    }
    T::validate_update(cur, &obj)
        .map_err(|e| status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e))?;
    let mut next = serde_json::to_value(&obj).map_err(internal)?;
    if let (Some(n), Ok(c)) = (next.as_object_mut(), serde_json::to_value(cur)) {
        match c.get("status") {
            Some(st) => n.insert("status".into(), st.clone()),
            None => n.remove("status"),
        };
    }
    let mut next: T = serde_json::from_value(next).map_err(internal)?;
    next.metadata_mut().resource_version = cur.metadata().resource_version.clone();
    Ok(Some(next))
}

pub async fn apply<T: ApiObject>(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let obj = match decode_body::<T>(&ns, Some(&name), &body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let warnings = obj.warnings();
    let key = crate::store::key(T::URL_PATH_SEGMENT, &ns, &name);
    // The client's spec replaces the stored one whatever status writes
    // happened since it read it (as the status subresource keeps them
    // apart on the API server): a Conflict with one is retried.
    let mut attempt = 0;
    let (code, result, stored) = loop {
        attempt += 1;
        let existing = match node.store.get::<T>(&key) {
            Ok(e) => e,
            Err(e) => return internal(e),
        };
        let Some(cur) = existing else {
            match create_object(&node, obj) {
                Ok(o) => break (StatusCode::CREATED, "created", Ok(o)),
                Err(r) => return r,
            }
        };
        let next = match replacement(&cur, obj.clone()) {
            Ok(Some(n)) => n,
            Ok(None) => {
                let mut r = super::with_warnings(json_response(StatusCode::OK, &cur), &warnings);
                r.headers_mut()
                    .insert("x-peapod-result", HeaderValue::from_static("unchanged"));
                return r;
            }
            Err(r) => return r,
        };
        match node.store.update(next) {
            Err(crate::store::StoreError::Conflict { .. }) if attempt < 16 => continue,
            res => break (StatusCode::OK, "configured", res),
        }
    };
    let obj = match stored {
        Ok(s) => s,
        Err(e) => return store_error(e),
    };
    let mut r = super::with_warnings(json_response(code, &obj), &warnings);
    r.headers_mut()
        .insert("x-peapod-result", HeaderValue::from_static(result));
    r
}

/// `propagationPolicy` of a delete (query or DeleteOptions body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "Background" | "background" => Ok(Propagation::Background),
            "Foreground" | "foreground" => Ok(Propagation::Foreground),
            "Orphan" | "orphan" => Ok(Propagation::Orphan),
            other => Err(format!("propagationPolicy: Unsupported value: {other:?}: supported values: \"Background\", \"Foreground\", \"Orphan\"")),
        }
    }
}

/// The finalizer with which the garbage collector deletes dependents
/// first (`--cascade=foreground`).
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer with which the garbage collector orphans dependents
/// first (`--cascade=orphan`).
pub const ORPHAN_FINALIZER: &str = "orphan";

/// Delete the object at `key` as the API server does: with `Foreground`
/// or `Orphan` it gets that finalizer; an object with finalizers is only
/// marked (deletionTimestamp) and the garbage collector removes it when
/// they are gone; one without is removed now (its dependents are then
/// collected in the background). Returns the marked object's JSON, or None
/// when removed; NotFound when there is none.
pub fn delete_object(
    node: &Node,
    key: &str,
    policy: Propagation,
) -> Result<Option<serde_json::Value>, crate::store::StoreError> {
    let mut marked = None;
    let updated = node.store.update_with::<GenericObject>(key, |o| {
        let fins = o.metadata.finalizers.get_or_insert_with(Vec::new);
        let want = match policy {
            Propagation::Foreground => Some(FOREGROUND_FINALIZER),
            Propagation::Orphan => Some(ORPHAN_FINALIZER),
            Propagation::Background => None,
        };
        let mut changed = false;
        if let Some(f) = want {
            if o.metadata.deletion_timestamp.is_none() && !fins.iter().any(|x| x == f) {
                fins.push(f.to_string());
                changed = true;
            }
        }
        if fins.is_empty() {
            o.metadata.finalizers = None;
            return false;
        }
        if o.metadata.deletion_timestamp.is_none() {
            o.metadata.deletion_timestamp = Some(crate::time::now());
            o.metadata.deletion_grace_period_seconds = Some(0);
            changed = true;
        }
        changed
    })?;
    let Some(obj) = updated else {
        return Err(crate::store::StoreError::NotFound { key: key.into() });
    };
    if obj
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| !f.is_empty())
    {
        marked = Some(serde_json::to_value(&obj).unwrap_or_default());
    } else {
        let uid = obj.metadata.uid.clone();
        node.store
            .delete_if(key, crate::store::Sync::Durable, |m| m.uid == uid)?;
    }
    Ok(marked)
}

/// Any stored object, read for its metadata, with the rest kept as is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GenericObject {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl k8s_openapi::Resource for GenericObject {
    const API_VERSION: &'static str = "v1";
    const GROUP: &'static str = "";
    const KIND: &'static str = "Object";
    const VERSION: &'static str = "v1";
    const URL_PATH_SEGMENT: &'static str = "objects";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for GenericObject {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

pub async fn delete<T: ApiObject>(
    State(node): State<Arc<Node>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let q = query_map(q.as_deref());
    // DeleteOptions in the body (kubectl's way) or the query.
    let from_body = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("propagationPolicy")?.as_str().map(str::to_string));
    let policy = match from_body.or_else(|| q.get("propagationPolicy").cloned()) {
        Some(p) => match Propagation::parse(&p) {
            Ok(p) => p,
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
        },
        None => Propagation::Background,
    };
    let key = crate::store::key(T::URL_PATH_SEGMENT, &ns, &name);
    match delete_object(&node, &key, policy) {
        Ok(Some(obj)) => json_response(StatusCode::OK, &obj),
        Ok(None) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Success", "details": { "name": name, "group": T::GROUP, "kind": T::URL_PATH_SEGMENT } }),
        ),
        Err(crate::store::StoreError::NotFound { .. }) => not_found::<T>(&name),
        Err(e) => store_error(e),
    }
}
