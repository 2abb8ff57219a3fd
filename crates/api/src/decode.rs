//! Decoding manifests: multi-document YAML or JSON into Kubernetes objects.
//!
//! Each document is first read into a [`serde_json::Value`], then routed by
//! `apiVersion`/`kind`: `v1` `Pod`s become typed [`Pod`]s, `List`s are
//! flattened, and anything else is kept as an [`Object::Other`] so the caller
//! can say it is not supported.
//!
//! k8s-openapi ignores fields it does not know. So that no field is ignored
//! silently, every pod is serialised back and compared with the input: a
//! field present in the input but missing from the round trip is reported as
//! a warning (`metadata.foo: unknown field, ignored`).

use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::path::FieldPath;

/// One decoded object from a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A core/v1 Pod.
    Pod(Box<Pod>),
    /// A core/v1 Secret.
    Secret(Box<k8s_openapi::api::core::v1::Secret>),
    /// A core/v1 ConfigMap.
    ConfigMap(Box<k8s_openapi::api::core::v1::ConfigMap>),
    /// A core/v1 Namespace.
    Namespace(Box<k8s_openapi::api::core::v1::Namespace>),
    /// A core/v1 Service.
    Service(Box<k8s_openapi::api::core::v1::Service>),
    /// One of the [`crate::KINDS`] (Deployment, ReplicaSet, Job, ...):
    /// decoded through its k8s-openapi type (so type errors and unknown
    /// fields are reported as for pods) and kept as that type's JSON.
    Resource(Box<Resource>),
    /// Any other kind of object, not decoded further.
    Other {
        /// `apiVersion`, e.g. `apps/v1`.
        api_version: String,
        /// `kind`, e.g. `Deployment`.
        kind: String,
        /// `metadata.name`, empty when absent.
        name: String,
    },
}

/// An object of one of the [`crate::KINDS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: &'static crate::workloads::Kind,
    /// `metadata.name`, empty when absent.
    pub name: String,
    /// `metadata.namespace`, None when absent or empty.
    pub namespace: Option<String>,
    /// The object as JSON (with `apiVersion` and `kind`).
    pub value: Value,
}

/// The objects of a manifest, in order, and warnings about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Every object, `List`s flattened, empty documents skipped.
    pub objects: Vec<Object>,
    /// Fields that were ignored, e.g. `metadata.foo: unknown field, ignored`.
    /// When the manifest holds more than one object, each warning starts with
    /// the object it is about: `Pod "web": metadata.foo: unknown field, ignored`.
    pub warnings: Vec<String>,
}

/// Why a manifest could not be decoded.
///
/// Displays as `document 2: missing field `kind``; documents are numbered
/// from 1 in the order they appear in the input (empty ones included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: {message}")]
pub struct DecodeError {
    /// The 1-based index of the offending document.
    pub document: usize,
    /// The 1-based line of the problem in the input, when the parser knows it
    /// (syntax errors). The line is also part of `message`.
    pub line: Option<usize>,
    /// What is wrong, with the field path when known, e.g.
    /// `Pod "web": spec.containers[0].ports[0].containerPort: invalid type: string "http", expected i32`.
    pub message: String,
}

/// Decodes multi-document YAML (documents separated by `---`, empty ones
/// skipped) or JSON (one object, or several concatenated) into objects.
/// A `kind: List` (or `PodList`, …) with `items` is flattened.
pub fn decode(input: &str) -> Result<Decoded, DecodeError> {
    let documents = if input.trim_start().starts_with('{') {
        // JSON, or a YAML flow mapping (`{apiVersion: v1, ...}`): prefer the
        // JSON parser's error when neither reads it.
        json_documents(input).or_else(|json_err| yaml_documents(input).map_err(|_| json_err))?
    } else {
        yaml_documents(input)?
    };

    let mut decoded = Vec::new();
    for (index, value) in documents {
        let location = Location {
            document: index,
            items: FieldPath::default(),
        };
        decode_value(value, &location, &mut decoded)?;
    }

    let prefix_warnings = decoded.len() > 1;
    let mut result = Decoded::default();
    for (object, warnings) in decoded {
        if prefix_warnings {
            let label = match &object {
                Object::Pod(pod) => {
                    format!("Pod {:?}", pod.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Secret(s) => {
                    format!("Secret {:?}", s.metadata.name.as_deref().unwrap_or(""))
                }
                Object::ConfigMap(c) => {
                    format!("ConfigMap {:?}", c.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Namespace(n) => {
                    format!("Namespace {:?}", n.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Service(s) => {
                    format!("Service {:?}", s.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Resource(r) => format!("{} {:?}", r.kind.kind, r.name),
                Object::Other { kind, name, .. } => format!("{kind} {name:?}"),
            };
            result
                .warnings
                .extend(warnings.into_iter().map(|w| format!("{label}: {w}")));
        } else {
            result.warnings.extend(warnings);
        }
        result.objects.push(object);
    }
    Ok(result)
}

/// Splits YAML into documents (1-based index, value), skipping empty ones.
fn yaml_documents(input: &str) -> Result<Vec<(usize, Value)>, DecodeError> {
    let mut documents = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(input).enumerate() {
        let index = i + 1;
        match Value::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push((index, value)),
            Err(e) => {
                return Err(DecodeError {
                    document: index,
                    line: e.location().map(|l| l.line()),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(documents)
}

/// Reads JSON: one object, or several objects one after another.
fn json_documents(input: &str) -> Result<Vec<(usize, Value)>, DecodeError> {
    let mut documents = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(input)
        .into_iter::<Value>()
        .enumerate()
    {
        let index = i + 1;
        match value {
            Ok(Value::Null) => {}
            Ok(value) => documents.push((index, value)),
            Err(e) => {
                return Err(DecodeError {
                    document: index,
                    line: (e.line() > 0).then_some(e.line()),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(documents)
}

/// Where an object is: its document, and its position inside `List`s.
struct Location {
    document: usize,
    items: FieldPath,
}

impl Location {
    /// An error at `field` (relative to this object) of this object.
    fn error(&self, field: &FieldPath, message: impl std::fmt::Display) -> DecodeError {
        self.object_error("", field, message)
    }

    /// An error at `field` of the object labelled `object` (`Pod "web"`),
    /// which starts the message when not empty.
    fn object_error(
        &self,
        object: &str,
        field: &FieldPath,
        message: impl std::fmt::Display,
    ) -> DecodeError {
        let object = if object.is_empty() {
            String::new()
        } else {
            format!("{object}: ")
        };
        let path = match (self.items.is_root(), field.is_root()) {
            (true, true) => String::new(),
            (true, false) => format!("{field}: "),
            (false, true) => format!("{}: ", self.items),
            (false, false) => format!("{}.{field}: ", self.items),
        };
        DecodeError {
            document: self.document,
            line: None,
            message: format!("{object}{path}{message}"),
        }
    }
}

/// Reads a required string field at the top of an object.
fn required_string<'a>(
    map: &'a serde_json::Map<String, Value>,
    field: &str,
    location: &Location,
) -> Result<&'a str, DecodeError> {
    match map.get(field) {
        None | Some(Value::Null) => Err(location.error(
            &FieldPath::default(),
            format_args!("missing field `{field}`"),
        )),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(location.error(&FieldPath::new(field), "must not be empty")),
        Some(other) => Err(location.error(
            &FieldPath::new(field),
            format_args!("invalid type: {}, expected a string", describe(other)),
        )),
    }
}

/// "a string", "a map", … for error messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Decodes one object (flattening lists) into `out`, with its warnings.
fn decode_value(
    value: Value,
    location: &Location,
    out: &mut Vec<(Object, Vec<String>)>,
) -> Result<(), DecodeError> {
    let Value::Object(map) = &value else {
        return Err(location.error(
            &FieldPath::default(),
            format_args!(
                "expected an object with apiVersion and kind, found {}",
                describe(&value)
            ),
        ));
    };
    let kind = required_string(map, "kind", location)?;
    let api_version = required_string(map, "apiVersion", location)?;

    if kind.ends_with("List") && map.contains_key("items") {
        return match map.get("items") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let item_location = Location {
                        document: location.document,
                        items: location.items.child("items").index(i),
                    };
                    decode_value(item.clone(), &item_location, out)?;
                }
                Ok(())
            }
            Some(Value::Null) => Ok(()),
            Some(other) => Err(location.error(
                &FieldPath::new("items"),
                format_args!("invalid type: {}, expected a list", describe(other)),
            )),
            None => Ok(()),
        };
    }

    if api_version == "v1" && kind == "Pod" {
        let mut moded = value.clone();
        octal_modes(&mut moded);
        let value = moded;
        let pod: Pod = typed(&value, kind, location)?;
        let warnings = unknown_fields(&value, &pod, location)?;
        out.push((Object::Pod(Box::new(pod)), warnings));
        return Ok(());
    }
    if api_version == "v1" && kind == "Namespace" {
        let ns: k8s_openapi::api::core::v1::Namespace = typed(&value, kind, location)?;
        let warnings = unknown_fields(&value, &ns, location)?;
        out.push((Object::Namespace(Box::new(ns)), warnings));
        return Ok(());
    }
    if api_version == "v1" && kind == "Secret" {
        let secret: k8s_openapi::api::core::v1::Secret = typed(&value, kind, location)?;
        let warnings = unknown_fields(&value, &secret, location)?;
        out.push((Object::Secret(Box::new(secret)), warnings));
        return Ok(());
    }
    if api_version == "v1" && kind == "Service" {
        let svc: k8s_openapi::api::core::v1::Service = typed(&value, kind, location)?;
        let warnings = unknown_fields(&value, &svc, location)?;
        out.push((Object::Service(Box::new(svc)), warnings));
        return Ok(());
    }
    if api_version == "v1" && kind == "ConfigMap" {
        let cm: k8s_openapi::api::core::v1::ConfigMap = typed(&value, kind, location)?;
        let warnings = unknown_fields(&value, &cm, location)?;
        out.push((Object::ConfigMap(Box::new(cm)), warnings));
        return Ok(());
    }

    if let Some(k) = crate::workloads::find_kind(api_version, kind) {
        let mut value = value.clone();
        octal_modes(&mut value);
        out.push(typed_resource(k, &value, location)?);
        return Ok(());
    }

    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    out.push((
        Object::Other {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name,
        },
        Vec::new(),
    ));
    Ok(())
}

/// Decode `value` as the k8s-openapi type of `k`, with unknown-field
/// warnings, into an [`Object::Resource`].
fn typed_resource(
    k: &'static crate::workloads::Kind,
    value: &Value,
    location: &Location,
) -> Result<(Object, Vec<String>), DecodeError> {
    fn go<T: DeserializeOwned + serde::Serialize>(
        k: &'static crate::workloads::Kind,
        value: &Value,
        location: &Location,
    ) -> Result<(Value, Vec<String>), DecodeError> {
        let obj: T = typed(value, k.kind, location)?;
        let warnings = unknown_fields(value, &obj, location)?;
        let json =
            serde_json::to_value(&obj).map_err(|e| location.error(&FieldPath::default(), e))?;
        Ok((json, warnings))
    }
    use k8s_openapi::api::{apps, autoscaling, batch, core, storage};
    let (json, warnings) = match k.kind {
        "Deployment" => go::<apps::v1::Deployment>(k, value, location)?,
        "ReplicaSet" => go::<apps::v1::ReplicaSet>(k, value, location)?,
        "StatefulSet" => go::<apps::v1::StatefulSet>(k, value, location)?,
        "DaemonSet" => go::<apps::v1::DaemonSet>(k, value, location)?,
        "Job" => go::<batch::v1::Job>(k, value, location)?,
        "CronJob" => go::<batch::v1::CronJob>(k, value, location)?,
        "PersistentVolume" => go::<core::v1::PersistentVolume>(k, value, location)?,
        "PersistentVolumeClaim" => go::<core::v1::PersistentVolumeClaim>(k, value, location)?,
        "StorageClass" => go::<storage::v1::StorageClass>(k, value, location)?,
        "HorizontalPodAutoscaler" => {
            go::<autoscaling::v2::HorizontalPodAutoscaler>(k, value, location)?
        }
        other => {
            return Err(location.error(
                &FieldPath::new("kind"),
                format_args!("{other}: no decoder for this kind"),
            ))
        }
    };
    let field = |f: &str| {
        json.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let resource = Resource {
        kind: k,
        name: field("name").unwrap_or_default(),
        namespace: field("namespace"),
        value: json.clone(),
    };
    Ok((Object::Resource(Box::new(resource)), warnings))
}

/// File modes written the YAML 1.1 way (`defaultMode: 0400`, octal, as
/// kubectl reads them) arrive as the string "0400" from a YAML 1.2
/// parser: read `mode`/`defaultMode` strings of octal digits with a
/// leading 0 (or 0o) as octal numbers.
fn octal_modes(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if let (true, Value::String(s)) = (k == "mode" || k == "defaultMode", &*v) {
                    let digits = s.strip_prefix("0o").or_else(|| s.strip_prefix('0'));
                    if let Some(n) = digits
                        .filter(|d| !d.is_empty() && d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                        .and_then(|d| i64::from_str_radix(d, 8).ok())
                    {
                        *v = Value::from(n);
                    }
                } else {
                    octal_modes(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(octal_modes),
        _ => {}
    }
}

/// Deserialises `value` into `T`, naming the object and the offending field
/// on failure: `Pod "web": spec.containers[0].ports[0].containerPort: invalid
/// type: string "http", expected i32`.
fn typed<T: DeserializeOwned>(
    value: &Value,
    kind: &str,
    location: &Location,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e
            .path()
            .iter()
            .take_while(|segment| !matches!(segment, Segment::Unknown))
            .fold(FieldPath::default(), |path, segment| match segment {
                Segment::Seq { index } => path.index(*index),
                Segment::Map { key } => path.child(key),
                Segment::Enum { variant } => path.child(variant),
                Segment::Unknown => path,
            });
        let object = match value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) if !name.is_empty() => format!("{kind} {name:?}"),
            _ => kind.to_string(),
        };
        location.object_error(&object, &field, e.into_inner())
    })
}

/// Compares the input with the typed object serialised back: every field in
/// the input that did not survive the round trip was not understood.
fn unknown_fields<T: serde::Serialize>(
    input: &Value,
    typed: &T,
    location: &Location,
) -> Result<Vec<String>, DecodeError> {
    let round_trip = serde_json::to_value(typed).map_err(|e| {
        location.error(
            &FieldPath::default(),
            format_args!("cannot re-encode object: {e}"),
        )
    })?;
    let mut warnings = Vec::new();
    diff(input, &round_trip, &FieldPath::default(), &mut warnings);
    Ok(warnings)
}

fn diff(input: &Value, round_trip: &Value, path: &FieldPath, warnings: &mut Vec<String>) {
    match (input, round_trip) {
        (Value::Object(ours), Value::Object(theirs)) => {
            for (key, value) in ours {
                // `field: null` means "not set"; it never survives a round trip.
                if value.is_null() {
                    continue;
                }
                let child = path.child(key);
                match theirs.get(key) {
                    Some(other) => diff(value, other, &child, warnings),
                    None => warnings.push(format!("{child}: unknown field, ignored")),
                }
            }
        }
        (Value::Array(ours), Value::Array(theirs)) => {
            for (i, (value, other)) in ours.iter().zip(theirs).enumerate() {
                diff(value, other, &path.index(i), warnings);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_names(decoded: &Decoded) -> Vec<String> {
        decoded
            .objects
            .iter()
            .map(|o| match o {
                Object::Pod(p) => format!("Pod/{}", p.metadata.name.as_deref().unwrap_or("")),
                Object::Secret(s) => {
                    format!("Secret/{}", s.metadata.name.as_deref().unwrap_or(""))
                }
                Object::ConfigMap(c) => {
                    format!("ConfigMap/{}", c.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Namespace(n) => {
                    format!("Namespace/{}", n.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Service(s) => {
                    format!("Service/{}", s.metadata.name.as_deref().unwrap_or(""))
                }
                Object::Resource(r) => format!("{}/{}", r.kind.kind, r.name),
                Object::Other { kind, name, .. } => format!("{kind}/{name}"),
            })
            .collect()
    }

    #[test]
    fn workload_kinds_are_typed_with_unknown_field_warnings() {
        let d = decode(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\nspec:\n  replicas: 2\n  bogus: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
        )
        .expect("decode");
        assert_eq!(d.warnings, vec!["spec.bogus: unknown field, ignored"]);
        match &d.objects[..] {
            [Object::Resource(r)] => {
                assert_eq!(r.kind.kind, "Deployment");
                assert_eq!(
                    (r.name.as_str(), r.namespace.as_deref()),
                    ("web", Some("prod"))
                );
                assert_eq!(r.value["spec"]["replicas"], 2);
                assert_eq!(r.value["apiVersion"], "apps/v1");
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = decode(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {parallelism: two}\n",
        )
        .expect_err("type error");
        assert!(e.message.contains("spec.parallelism"), "{e}");
    }

    #[test]
    fn multi_document_yaml_with_empty_document_and_list() {
        let input = "\
apiVersion: v1
kind: Pod
metadata:
  name: one
spec:
  containers:
  - name: app
    image: nginx
---
# only a comment: an empty document
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: two}
  spec:
    containers: [{name: app, image: nginx}]
- apiVersion: apps/v1beta9
  kind: Deployment
  metadata: {name: deploy}
---
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data: {a: b}
";
        let decoded = decode(input).unwrap();
        assert_eq!(
            pod_names(&decoded),
            ["Pod/one", "Pod/two", "Deployment/deploy", "ConfigMap/cfg"]
        );
        assert_eq!(decoded.warnings, Vec::<String>::new());
        match &decoded.objects[2] {
            Object::Other {
                api_version, kind, ..
            } => {
                assert_eq!(api_version, "apps/v1beta9");
                assert_eq!(kind, "Deployment");
            }
            other => panic!("unexpected {other:?}"),
        }
        match &decoded.objects[0] {
            Object::Pod(pod) => {
                let spec = pod.spec.as_ref().unwrap();
                assert_eq!(spec.containers[0].image.as_deref(), Some("nginx"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn octal_file_modes_as_yaml_1_1() {
        let decoded = decode(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: x}]\n  volumes:\n  - name: s\n    secret: {secretName: s, defaultMode: 0400, items: [{key: k, path: p, mode: 0o640}]}\n  - name: c\n    configMap: {name: c, defaultMode: 420}\n",
        )
        .unwrap();
        let Object::Pod(pod) = &decoded.objects[0] else {
            panic!("not a pod")
        };
        let vols = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
        let secret = vols[0].secret.as_ref().unwrap();
        assert_eq!(secret.default_mode, Some(0o400));
        assert_eq!(secret.items.as_ref().unwrap()[0].mode, Some(0o640));
        assert_eq!(vols[1].config_map.as_ref().unwrap().default_mode, Some(420));
    }

    #[test]
    fn leading_separator_and_empty_input() {
        let decoded =
            decode("---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: []}\n")
                .unwrap();
        assert_eq!(pod_names(&decoded), ["Pod/a"]);
        assert_eq!(decode("").unwrap(), Decoded::default());
        assert_eq!(decode("---\n---\n").unwrap(), Decoded::default());
    }

    #[test]
    fn json_single_object_and_list() {
        let decoded = decode(
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}}"#,
        )
        .unwrap();
        assert_eq!(pod_names(&decoded), ["Pod/j"]);

        let decoded = decode(
            r#"{"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": []}},
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}, "spec": {"containers": []}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(pod_names(&decoded), ["Pod/a", "Pod/b"]);
    }

    #[test]
    fn yaml_flow_mapping_is_not_mistaken_for_json() {
        let decoded =
            decode("{apiVersion: v1, kind: Pod, metadata: {name: f}, spec: {containers: []}}\n")
                .unwrap();
        assert_eq!(pod_names(&decoded), ["Pod/f"]);
    }

    #[test]
    fn json_syntax_error_has_line() {
        let err = decode("{\n  \"apiVersion\": \"v1\"\n  \"kind\": \"Pod\"\n}").unwrap_err();
        assert_eq!(err.document, 1);
        assert_eq!(err.line, Some(3));
        assert!(err.to_string().starts_with("document 1: "), "{err}");
    }

    #[test]
    fn yaml_syntax_error_has_line() {
        let err = decode("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n").unwrap_err();
        assert_eq!(err.document, 1);
        assert!(err.line.is_some(), "{err:?}");
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn missing_kind_names_document() {
        let err = decode("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n")
            .unwrap_err();
        assert_eq!(err.to_string(), "document 2: missing field `kind`");
        assert_eq!(err.document, 2);

        let err = decode("kind: Pod\n").unwrap_err();
        assert_eq!(err.to_string(), "document 1: missing field `apiVersion`");

        let err = decode("- a\n- b\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: expected an object with apiVersion and kind, found a list"
        );
    }

    #[test]
    fn type_error_names_field() {
        let err = decode(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    ports:\n    - containerPort: http\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: Pod \"a\": spec.containers[0].ports[0].containerPort: invalid type: string \"http\", expected i32"
        );

        let err = decode(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: a\n    image: x\n  - name: b\n    env: [{name: N, value: 5}]\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: Pod \"a\": spec.containers[1].env[0].value: invalid type: integer `5`, expected a string"
        );

        let err =
            decode("apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: [x]}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: Pod \"a\": metadata.labels: invalid type: sequence, expected a map"
        );
    }

    #[test]
    fn type_error_in_list_item_and_secret() {
        let err = decode(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: []}\n- apiVersion: v1\n  kind: Pod\n  spec: {containers: [{name: b, ports: [{containerPort: x}]}]}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: Pod: items[1].spec.containers[0].ports[0].containerPort: invalid type: string \"x\", expected i32"
        );

        let err =
            decode("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: 5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: Secret \"s\": type: invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn missing_required_fields_are_left_to_validation() {
        // k8s-openapi fills absent required fields with empty values, and
        // validation reports them with their paths.
        let decoded = decode("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n").unwrap();
        let Object::Pod(pod) = &decoded.objects[0] else {
            panic!("expected a pod");
        };
        let err = crate::validate_pod(pod).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Pod \"a\" is invalid: spec.containers: Required value"
        );
    }

    #[test]
    fn error_inside_list_names_item() {
        let err = decode(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: []}\n- apiVersion: v1\n  metadata: {name: b}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: items[1]: missing field `kind`"
        );
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let decoded = decode(
            "\
apiVersion: v1
kind: Pod
metadata:
  name: a
  foo: bar
  labels: {app: a}
  creationTimestamp: null
spec:
  containers:
  - name: app
    image: nginx
    imagePullPolcy: Always
    resources: {}
  volumes:
  - name: data
    emptyDir: {}
    extra: {nested: true}
status: {}
",
        )
        .unwrap();
        assert_eq!(
            decoded.warnings,
            [
                "metadata.foo: unknown field, ignored",
                "spec.containers[0].imagePullPolcy: unknown field, ignored",
                "spec.volumes[0].extra: unknown field, ignored",
            ]
        );
    }

    #[test]
    fn warnings_name_the_object_when_several() {
        let decoded = decode(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, foo: 1}\nspec: {containers: []}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: []}\n",
        )
        .unwrap();
        assert_eq!(
            decoded.warnings,
            ["Pod \"a\": metadata.foo: unknown field, ignored"]
        );
    }

    #[test]
    fn full_kubectl_output_has_no_warnings() {
        let input = r#"
apiVersion: v1
kind: Pod
metadata:
  annotations: {example.com/a: "1"}
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels: {run: web}
  name: web
  namespace: default
  resourceVersion: "123"
  uid: 0d5e2d8a-0000-0000-0000-000000000000
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1: {"f:metadata": {"f:labels": {".": {}, "f:run": {}}}}
    manager: kubectl-run
    operation: Update
    time: "2024-05-01T10:00:00Z"
spec:
  containers:
  - image: nginx:1.27
    imagePullPolicy: IfNotPresent
    name: web
    ports:
    - containerPort: 80
      name: http
      protocol: TCP
    livenessProbe:
      httpGet: {path: /, port: http, scheme: HTTP}
      periodSeconds: 10
    resources:
      limits: {cpu: 500m, memory: 128Mi}
      requests: {cpu: 250m, memory: 64Mi}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    volumeMounts:
    - mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      name: kube-api-access
      readOnly: true
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  nodeName: node1
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  serviceAccount: default
  serviceAccountName: default
  terminationGracePeriodSeconds: 30
  tolerations:
  - effect: NoExecute
    key: node.kubernetes.io/not-ready
    operator: Exists
    tolerationSeconds: 300
  volumes:
  - name: kube-api-access
    projected:
      defaultMode: 420
      sources:
      - serviceAccountToken: {expirationSeconds: 3607, path: token}
      - downwardAPI:
          items:
          - fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}
            path: namespace
status:
  phase: Running
  podIP: 10.0.0.5
  conditions:
  - type: Ready
    status: "True"
    lastProbeTime: null
    lastTransitionTime: "2024-05-01T10:00:05Z"
  containerStatuses:
  - name: web
    image: nginx:1.27
    imageID: docker.io/library/nginx@sha256:abcd
    ready: true
    restartCount: 0
    started: true
    state:
      running: {startedAt: "2024-05-01T10:00:04Z"}
"#;
        let decoded = decode(input).unwrap();
        assert_eq!(decoded.warnings, Vec::<String>::new());
        assert_eq!(pod_names(&decoded), ["Pod/web"]);
    }

    #[test]
    fn pod_with_other_api_version_is_other() {
        let decoded = decode("apiVersion: v2\nkind: Pod\nmetadata: {name: x}\n").unwrap();
        assert_eq!(
            decoded.objects,
            [Object::Other {
                api_version: "v2".into(),
                kind: "Pod".into(),
                name: "x".into()
            }]
        );
    }
}
