//! `labelSelector=` and `fieldSelector=` on lists and watches, as the API
//! server applies them; a bad selector is a 400 BadRequest in its words.

use super::status_error;
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use peapod_api::{FieldSelector, LabelSelector};
use std::collections::{BTreeMap, HashMap};

/// The selectors of one request.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    /// Read `labelSelector` and `fieldSelector`; `fields` lists the field
    /// labels the resource supports.
    pub fn from_query(q: &HashMap<String, String>, fields: &[&str]) -> Result<Self, Response> {
        let bad = |m: String| status_error(StatusCode::BAD_REQUEST, "BadRequest", &m);
        let labels = peapod_api::parse_label_selector(
            q.get("labelSelector").map(String::as_str).unwrap_or(""),
        )
        .map_err(bad)?;
        let f = peapod_api::parse_field_selector(
            q.get("fieldSelector").map(String::as_str).unwrap_or(""),
        )
        .map_err(bad)?;
        f.check_fields(fields).map_err(bad)?;
        Ok(Selectors { labels, fields: f })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches_pod(&self, pod: &Pod) -> bool {
        self.labels.matches(pod.metadata.labels.as_ref())
            && self
                .fields
                .matches(|f| peapod_api::selector::pod_field(pod, f))
    }

    /// For a JSON object of any kind: labels and `metadata.*` fields (and
    /// a pod's own field labels when it is a pod).
    pub fn matches_value(&self, v: &serde_json::Value) -> bool {
        if self.is_empty() {
            return true;
        }
        if v.get("kind").and_then(|k| k.as_str()) == Some("Pod") {
            if let Ok(p) = serde_json::from_value::<Pod>(v.clone()) {
                return self.matches_pod(&p);
            }
        }
        let labels: Option<BTreeMap<String, String>> = v
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok());
        self.labels.matches(labels.as_ref())
            && self.fields.matches(|f| {
                let path = format!("/{}", f.replace('.', "/"));
                v.pointer(&path).and_then(|x| match x {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                })
            })
    }
}
