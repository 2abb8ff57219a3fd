//! `peapod kustomize DIR` and `peapod apply -k DIR`: build the objects of a
//! kustomization directory, as `kubectl kustomize` does for the fields
//! below, into one multi-document manifest that `apply` then reads.
//!
//! Written by hand: kustomize exists only in Go, and the Rust ports on
//! crates.io are unmaintained or cover less than this. What is built:
//! `resources` (files and kustomization directories, recursively),
//! `namespace`, `namePrefix`/`nameSuffix` (with the references pods make to
//! renamed ConfigMaps, Secrets, claims and services updated),
//! `commonLabels` (metadata, selectors and pod templates),
//! `commonAnnotations`, `labels`, `images`, `replicas`,
//! `configMapGenerator`/`secretGenerator` (literals, files, env files, with
//! kustomize's content-hash name suffix) and `generatorOptions`. Any other
//! field is refused by name, so nothing is silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Kinds that have no namespace: `namespace:` leaves them alone.
const CLUSTER_KINDS: [&str; 7] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
];

/// The fields this builder understands (anything else is an error).
const KNOWN_FIELDS: [&str; 16] = [
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "commonAnnotations",
    "labels",
    "images",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
];

/// Builds DIR's kustomization into a multi-document manifest.
pub fn build(dir: &Path) -> Result<String> {
    let objects = build_dir(dir, 0)?;
    let mut out = String::new();
    for object in &objects {
        out.push_str("---\n");
        out.push_str(
            &serde_yaml_ng::to_string(object)
                .map_err(|e| anyhow!("error: cannot encode a built object: {e}"))?,
        );
    }
    Ok(out)
}

/// A renamed object: its kind, old name and new name.
#[derive(Default)]
struct Renames(Vec<(String, String, String)>);

impl Renames {
    fn get(&self, kind: &str, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, old, _)| k == kind && old == name)
            .map(|(_, _, new)| new.as_str())
    }
}

fn build_dir(dir: &Path, depth: usize) -> Result<Vec<Value>> {
    if depth > 20 {
        bail!(
            "error: {}: kustomizations nest more than 20 deep (a cycle in `resources`?)",
            dir.display()
        );
    }
    let file = FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "error: unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '{}'",
                dir.display()
            )
        })?;
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("error: reading {}", file.display()))?;
    let k: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| anyhow!("error: parsing {}: {e}", file.display()))?;
    let k = match k {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => bail!("error: {}: a kustomization is a mapping", file.display()),
    };
    let where_ = file.display().to_string();
    for field in k.keys() {
        if !KNOWN_FIELDS.contains(&field.as_str()) {
            bail!(
                "error: {where_}: field {field:?} is not supported yet; peapod builds {}",
                KNOWN_FIELDS[3..].join(", ")
            );
        }
    }

    let mut objects = Vec::new();
    for entry in
        strings(&k, "bases", &where_)?
            .into_iter()
            .chain(strings(&k, "resources", &where_)?)
    {
        if entry.contains("://") || entry.starts_with("github.com/") {
            bail!("error: {where_}: resource {entry:?}: remote resources are not supported (no network); vendor it into a directory");
        }
        let path = dir.join(&entry);
        if path.is_dir() {
            objects.extend(build_dir(&path, depth + 1)?);
        } else {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                anyhow!(
                    "error: {where_}: resource {entry:?}: cannot read {}: {e}",
                    path.display()
                )
            })?;
            for doc in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = <Value as serde::Deserialize>::deserialize(doc)
                    .map_err(|e| anyhow!("error: parsing {}: {e}", path.display()))?;
                match value {
                    Value::Null => {}
                    Value::Object(ref m)
                        if m.get("kind").and_then(Value::as_str) == Some("List") =>
                    {
                        objects.extend(
                            m.get("items")
                                .and_then(Value::as_array)
                                .cloned()
                                .unwrap_or_default(),
                        )
                    }
                    Value::Object(_) => objects.push(value),
                    _ => bail!(
                        "error: {}: every document must be an object",
                        path.display()
                    ),
                }
            }
        }
    }

    let options = k.get("generatorOptions").cloned().unwrap_or(Value::Null);
    for (field, kind) in [
        ("configMapGenerator", "ConfigMap"),
        ("secretGenerator", "Secret"),
    ] {
        for generator in array(&k, field, &where_)? {
            objects.push(generate(dir, &where_, field, kind, generator, &options)?);
        }
    }

    // Renames first (prefix/suffix, then generators' hashes), so every
    // reference is rewritten once against the final names.
    let prefix = string(&k, "namePrefix", &where_)?.unwrap_or_default();
    let suffix = string(&k, "nameSuffix", &where_)?.unwrap_or_default();
    let mut renames = Renames::default();
    for object in &mut objects {
        let kind = kind_of(object).to_string();
        let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) else {
            bail!("error: {where_}: a {kind} has no metadata.name");
        };
        let name = name.to_string();
        let mut new = if kind == "Namespace" || (prefix.is_empty() && suffix.is_empty()) {
            name.clone()
        } else {
            format!("{prefix}{name}{suffix}")
        };
        if let Some(Value::Bool(true)) =
            object.pointer("/metadata/annotations/peapod.dev~1needs-hash")
        {
            new = format!("{new}-{}", content_hash(object)?);
            if let Some(Value::Object(a)) = object.pointer_mut("/metadata/annotations") {
                a.remove("peapod.dev/needs-hash");
            }
            drop_empty_annotations(object);
        }
        if new != name {
            object["metadata"]["name"] = Value::String(new.clone());
            renames.0.push((kind, name, new));
        }
    }
    for object in &mut objects {
        rewrite_references(object, &renames);
    }

    if let Some(ns) = string(&k, "namespace", &where_)? {
        for object in &mut objects {
            if !CLUSTER_KINDS.contains(&kind_of(object)) {
                object["metadata"]["namespace"] = Value::String(ns.clone());
            }
            // A binding's subjects in the old namespace follow it, as
            // kustomize does for service accounts; nothing else refers to
            // namespaces by value here.
        }
    }

    if let Some(labels) = k.get("commonLabels") {
        let labels = string_map(labels, &where_, "commonLabels")?;
        for object in &mut objects {
            add_labels(object, &labels, true);
        }
    }
    for entry in array(&k, "labels", &where_)? {
        let pairs = string_map(
            entry.get("pairs").unwrap_or(&Value::Null),
            &where_,
            "labels[].pairs",
        )?;
        let selectors = entry.get("includeSelectors").and_then(Value::as_bool) == Some(true);
        let templates =
            selectors || entry.get("includeTemplates").and_then(Value::as_bool) == Some(true);
        for object in &mut objects {
            if templates {
                add_labels(object, &pairs, selectors);
            } else {
                merge(object, &["metadata", "labels"], &pairs);
            }
        }
    }
    if let Some(annotations) = k.get("commonAnnotations") {
        let annotations = string_map(annotations, &where_, "commonAnnotations")?;
        for object in &mut objects {
            merge(object, &["metadata", "annotations"], &annotations);
            for template in pod_templates(object) {
                merge(template, &["metadata", "annotations"], &annotations);
            }
        }
    }
    for image in array(&k, "images", &where_)? {
        let name = image
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("error: {where_}: images[].name is required"))?;
        for object in &mut objects {
            set_images(object, name, image);
        }
    }
    for replicas in array(&k, "replicas", &where_)? {
        let name = replicas
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let count = replicas
            .get("count")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                anyhow!("error: {where_}: replicas[{name:?}].count: a whole number is required")
            })?;
        let name = renames
            .0
            .iter()
            .find(|(_, old, _)| old == name)
            .map(|(_, _, new)| new.as_str())
            .unwrap_or(name)
            .to_string();
        let mut found = false;
        for object in &mut objects {
            if object.pointer("/metadata/name").and_then(Value::as_str) == Some(&name)
                && object.pointer("/spec").is_some()
                && matches!(
                    kind_of(object),
                    "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController"
                )
            {
                object["spec"]["replicas"] = json!(count);
                found = true;
            }
        }
        if !found {
            bail!("error: {where_}: replicas: no Deployment, ReplicaSet or StatefulSet named {name:?}");
        }
    }
    Ok(objects)
}

fn kind_of(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn strings(k: &Map<String, Value>, field: &str, where_: &str) -> Result<Vec<String>> {
    array(k, field, where_)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("error: {where_}: {field}: every entry must be a string"))
        })
        .collect()
}

fn string(k: &Map<String, Value>, field: &str, where_: &str) -> Result<Option<String>> {
    match k.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => bail!("error: {where_}: {field} must be a string"),
    }
}

fn array<'a>(k: &'a Map<String, Value>, field: &str, where_: &str) -> Result<&'a [Value]> {
    match k.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => bail!("error: {where_}: {field} must be a list"),
    }
}

fn string_map(v: &Value, where_: &str, field: &str) -> Result<BTreeMap<String, String>> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(key, v)| match v {
                Value::String(s) => Ok((key.clone(), s.clone())),
                Value::Bool(_) | Value::Number(_) => Ok((key.clone(), v.to_string())),
                _ => bail!("error: {where_}: {field}.{key} must be a string"),
            })
            .collect(),
        _ => bail!("error: {where_}: {field} must be a mapping of strings"),
    }
}

/// One ConfigMap or Secret of a generator (`behavior: create` only).
fn generate(
    dir: &Path,
    where_: &str,
    field: &str,
    kind: &str,
    generator: &Value,
    options: &Value,
) -> Result<Value> {
    let name = generator
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("error: {where_}: {field}[].name is required"))?;
    let at = format!("{where_}: {field}[{name:?}]");
    match generator.get("behavior").and_then(Value::as_str) {
        None | Some("create") => {}
        Some(other) => {
            bail!("error: {at}.behavior {other:?} is not supported yet; only \"create\"")
        }
    }
    let mut data = BTreeMap::<String, String>::new();
    let mut add = |key: String, value: String, source: &str| -> Result<()> {
        if data.insert(key.clone(), value).is_some() {
            bail!("error: {at}: key {key:?} ({source}) is given twice");
        }
        Ok(())
    };
    for literal in generator
        .get("literals")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let literal = literal.as_str().unwrap_or_default();
        let (key, value) = literal
            .split_once('=')
            .ok_or_else(|| anyhow!("error: {at}.literals: {literal:?} is not KEY=VALUE"))?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        add(key.to_string(), value.to_string(), "literals")?;
    }
    for file in generator
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let file = file.as_str().unwrap_or_default();
        let (key, path) = match file.split_once('=') {
            Some((k, p)) => (k.to_string(), p),
            None => (
                Path::new(file)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                file,
            ),
        };
        let text = std::fs::read_to_string(dir.join(path))
            .map_err(|e| anyhow!("error: {at}.files: {path:?}: {e}"))?;
        add(key, text, "files")?;
    }
    let envs = generator
        .get("envs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let env = generator.get("env").cloned().into_iter();
    for file in envs.into_iter().chain(env) {
        let path = file.as_str().unwrap_or_default();
        let text = std::fs::read_to_string(dir.join(path))
            .map_err(|e| anyhow!("error: {at}.envs: {path:?}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                anyhow!(
                    "error: {at}.envs: {path}:{}: {line:?} is not KEY=VALUE",
                    n + 1
                )
            })?;
            add(key.to_string(), value.to_string(), "envs")?;
        }
    }

    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut no_hash = false;
    for opts in [options, generator.get("options").unwrap_or(&Value::Null)] {
        if let Some(Value::Object(l)) = opts.get("labels") {
            labels.extend(l.clone());
        }
        if let Some(Value::Object(a)) = opts.get("annotations") {
            annotations.extend(a.clone());
        }
        if let Some(b) = opts.get("disableNameSuffixHash").and_then(Value::as_bool) {
            no_hash = b;
        }
    }
    if !no_hash {
        // Marks the object for its hash suffix, taken once all its fields
        // are known (the annotation never leaves this module).
        annotations.insert("peapod.dev/needs-hash".into(), Value::Bool(true));
    }
    let mut metadata = json!({ "name": name });
    if let Some(ns) = generator.get("namespace").and_then(Value::as_str) {
        metadata["namespace"] = json!(ns);
    }
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    let mut object = json!({ "apiVersion": "v1", "kind": kind, "metadata": metadata });
    if kind == "Secret" {
        let encoded: Map<String, Value> = data
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        object["type"] = generator.get("type").cloned().unwrap_or(json!("Opaque"));
        object["data"] = Value::Object(encoded);
    } else {
        object["data"] = json!(data);
    }
    Ok(object)
}

fn drop_empty_annotations(object: &mut Value) {
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
}

/// kustomize's name suffix of a generated ConfigMap or Secret: the first
/// ten hex digits of the SHA-256 of its kind, name, type and data as Go's
/// `json.Marshal` writes them, with the digits and letters that could read
/// as words swapped out.
fn content_hash(object: &Value) -> Result<String> {
    let mut m = BTreeMap::new();
    m.insert("kind", object["kind"].clone());
    m.insert("name", object["metadata"]["name"].clone());
    m.insert("data", object.get("data").cloned().unwrap_or(json!({})));
    if kind_of(object) == "Secret" {
        m.insert(
            "type",
            object.get("type").cloned().unwrap_or(json!("Opaque")),
        );
    }
    let encoded = serde_json::to_string(&m).map_err(|e| anyhow!("error: hashing: {e}"))?;
    // Go's encoder escapes these three for HTML safety.
    let encoded = encoded
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let digest = Sha256::digest(encoded.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    Ok(hex
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect())
}

/// The pod templates in an object (workloads, and a CronJob's job's).
fn pod_templates(object: &mut Value) -> Vec<&mut Value> {
    match kind_of(object) {
        "Pod" => vec![object],
        "CronJob" => object
            .pointer_mut("/spec/jobTemplate/spec/template")
            .into_iter()
            .collect(),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => object.pointer_mut("/spec/template").into_iter().collect(),
        _ => Vec::new(),
    }
}

fn merge(object: &mut Value, path: &[&str], pairs: &BTreeMap<String, String>) {
    if pairs.is_empty() {
        return;
    }
    let mut at = object;
    for part in path {
        if !at.get(*part).is_some_and(Value::is_object) {
            at[*part] = json!({});
        }
        at = &mut at[*part];
    }
    if let Value::Object(m) = at {
        for (k, v) in pairs {
            m.insert(k.clone(), json!(v));
        }
    }
}

/// `commonLabels`: metadata, pod templates and (with `selectors`) the
/// selectors that must match them.
fn add_labels(object: &mut Value, labels: &BTreeMap<String, String>, selectors: bool) {
    merge(object, &["metadata", "labels"], labels);
    let kind = kind_of(object).to_string();
    if selectors {
        match kind.as_str() {
            "Service" if object.pointer("/spec").is_some() => {
                merge(object, &["spec", "selector"], labels);
            }
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
                merge(object, &["spec", "selector", "matchLabels"], labels);
            }
            _ => {}
        }
    }
    if kind != "Pod" {
        for template in pod_templates(object) {
            merge(template, &["metadata", "labels"], labels);
        }
    }
    if kind == "CronJob" {
        merge(
            object,
            &["spec", "jobTemplate", "metadata", "labels"],
            labels,
        );
    }
}

/// `images`: `name` matches a container image without its tag or digest.
fn set_images(object: &mut Value, name: &str, image: &Value) {
    for template in pod_templates(object) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let Some(Value::Array(containers)) = template.pointer_mut(&format!("/spec/{list}"))
            else {
                continue;
            };
            for c in containers {
                let Some(current) = c.get("image").and_then(Value::as_str) else {
                    continue;
                };
                let (base, tag, digest) = split_image(current);
                if base != name {
                    continue;
                }
                let base = image.get("newName").and_then(Value::as_str).unwrap_or(base);
                let new = if let Some(d) = image.get("digest").and_then(Value::as_str) {
                    format!("{base}@{d}")
                } else if let Some(t) = image.get("newTag").and_then(Value::as_str) {
                    format!("{base}:{t}")
                } else if let Some(d) = digest {
                    format!("{base}@{d}")
                } else if let Some(t) = tag {
                    format!("{base}:{t}")
                } else {
                    base.to_string()
                };
                c["image"] = json!(new);
            }
        }
    }
}

/// `registry:5000/app:1.0@sha256:…` → (`registry:5000/app`, `1.0`, digest).
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// Points every reference to a renamed ConfigMap, Secret, claim or
/// Service at its new name.
fn rewrite_references(object: &mut Value, renames: &Renames) {
    if renames.0.is_empty() {
        return;
    }
    // Renames the names at `refs` (JSON pointer, kind) below `v`.
    let rename = |v: &mut Value, refs: &[(&str, &str)]| {
        for (pointer, kind) in refs {
            if let Some(name) = v.pointer_mut(pointer) {
                if let Some(new) = name.as_str().and_then(|old| renames.get(kind, old)) {
                    *name = json!(new);
                }
            }
        }
    };
    match kind_of(object) {
        "StatefulSet" => rename(object, &[("/spec/serviceName", "Service")]),
        "HorizontalPodAutoscaler" => {
            let kind = object
                .pointer("/spec/scaleTargetRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            rename(object, &[("/spec/scaleTargetRef/name", kind.as_str())]);
        }
        _ => {}
    }
    for template in pod_templates(object) {
        let Some(spec) = template.get_mut("spec") else {
            continue;
        };
        for volume in array_mut(spec, "volumes") {
            rename(
                volume,
                &[
                    ("/configMap/name", "ConfigMap"),
                    ("/secret/secretName", "Secret"),
                    ("/persistentVolumeClaim/claimName", "PersistentVolumeClaim"),
                ],
            );
            for source in volume
                .pointer_mut("/projected/sources")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                rename(
                    source,
                    &[("/configMap/name", "ConfigMap"), ("/secret/name", "Secret")],
                );
            }
        }
        for secret in array_mut(spec, "imagePullSecrets") {
            rename(secret, &[("/name", "Secret")]);
        }
        for list in ["initContainers", "containers"] {
            for c in array_mut(spec, list) {
                for from in array_mut(c, "envFrom") {
                    rename(
                        from,
                        &[
                            ("/configMapRef/name", "ConfigMap"),
                            ("/secretRef/name", "Secret"),
                        ],
                    );
                }
                for env in array_mut(c, "env") {
                    rename(
                        env,
                        &[
                            ("/valueFrom/configMapKeyRef/name", "ConfigMap"),
                            ("/valueFrom/secretKeyRef/name", "Secret"),
                        ],
                    );
                }
            }
        }
    }
}

/// The items of the list `field` of `v` (none when absent).
fn array_mut<'a>(v: &'a mut Value, field: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(field)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// The directory of `apply -k`/`kustomize`, checked.
pub fn dir_arg(dir: &str) -> Result<PathBuf> {
    let path = PathBuf::from(dir);
    if !path.is_dir() {
        bail!("error: must build at directory: '{dir}' is not a directory");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn docs(text: &str) -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .collect()
    }

    #[test]
    fn hash_matches_kustomize() {
        // The kubectl book's configMapGenerator example: `kubectl
        // kustomize` names it `my-java-server-env-vars-44k658k8gk`.
        let cm = json!({"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"my-java-server-env-vars"},
            "data":{"JAVA_HOME":"/opt/java/jdk","JAVA_TOOL_OPTIONS":"-agentlib:hprof"}});
        assert_eq!(content_hash(&cm).unwrap(), "44k658k8gk");
        let mut other = cm.clone();
        other["data"]["JAVA_HOME"] = json!("/opt/jdk");
        assert_ne!(content_hash(&other).unwrap(), "44k658k8gk");
    }

    #[test]
    fn builds_prefix_labels_generators_images_and_references() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "kustomization.yaml",
            r#"
namespace: shop
namePrefix: dev-
commonLabels:
  team: a
images:
  - name: web
    newTag: "2.0"
replicas:
  - name: web
    count: 3
configMapGenerator:
  - name: conf
    literals: [MODE=fast]
    files: [settings.ini]
secretGenerator:
  - name: pw
    envs: [pw.env]
generatorOptions:
  labels:
    gen: "yes"
resources:
  - deploy.yaml
  - svc
"#,
        );
        write(d.path(), "settings.ini", "x=1\n");
        write(d.path(), "pw.env", "# comment\nPASSWORD=s3cret\n");
        write(
            d.path(),
            "deploy.yaml",
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1.0
          envFrom: [{configMapRef: {name: conf}}]
          env: [{name: P, valueFrom: {secretKeyRef: {name: pw, key: PASSWORD}}}]
      volumes: [{name: c, configMap: {name: conf}}]
"#,
        );
        std::fs::create_dir(d.path().join("svc")).unwrap();
        write(
            &d.path().join("svc"),
            "kustomization.yaml",
            "resources: [svc.yaml]\n",
        );
        write(
            &d.path().join("svc"),
            "svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
        );
        let out = docs(&build(d.path()).unwrap());
        let find = |kind: &str| out.iter().find(|o| kind_of(o) == kind).unwrap().clone();
        let deploy = find("Deployment");
        assert_eq!(deploy["metadata"]["name"], "dev-web");
        assert_eq!(deploy["metadata"]["namespace"], "shop");
        assert_eq!(deploy["spec"]["replicas"], 3);
        assert_eq!(deploy["spec"]["selector"]["matchLabels"]["team"], "a");
        assert_eq!(
            deploy["spec"]["template"]["metadata"]["labels"]["team"],
            "a"
        );
        let c = &deploy["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "web:2.0");
        let cm = find("ConfigMap");
        let cm_name = cm["metadata"]["name"].as_str().unwrap();
        assert!(cm_name.starts_with("dev-conf-") && cm_name.len() == "dev-conf-".len() + 10);
        assert_eq!(cm["data"]["MODE"], "fast");
        assert_eq!(cm["data"]["settings.ini"], "x=1\n");
        assert_eq!(cm["metadata"]["labels"]["gen"], "yes");
        assert!(cm["metadata"].get("annotations").is_none());
        assert_eq!(c["envFrom"][0]["configMapRef"]["name"], cm_name);
        assert_eq!(
            deploy["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
            cm_name
        );
        let secret = find("Secret");
        assert_eq!(secret["data"]["PASSWORD"], "czNjcmV0");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            secret["metadata"]["name"]
        );
        let svc = find("Service");
        assert_eq!(svc["metadata"]["name"], "dev-web");
        assert_eq!(svc["spec"]["selector"]["team"], "a");
        let ns = find("Namespace");
        assert_eq!(ns["metadata"]["name"], "shop");
        assert!(ns["metadata"].get("namespace").is_none());
    }

    #[test]
    fn refuses_unknown_fields_and_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let err = build(d.path()).unwrap_err().to_string();
        assert!(
            err.contains("unable to find one of 'kustomization.yaml'"),
            "{err}"
        );
        write(d.path(), "kustomization.yaml", "patches: []\n");
        let err = build(d.path()).unwrap_err().to_string();
        assert!(err.contains("\"patches\" is not supported yet"), "{err}");
        write(d.path(), "kustomization.yaml", "resources: [gone.yaml]\n");
        let err = build(d.path()).unwrap_err().to_string();
        assert!(err.contains("resource \"gone.yaml\""), "{err}");
    }

    #[test]
    fn splits_images() {
        assert_eq!(split_image("web"), ("web", None, None));
        assert_eq!(
            split_image("reg:5000/web:1"),
            ("reg:5000/web", Some("1"), None)
        );
        assert_eq!(
            split_image("reg:5000/web@sha256:ab"),
            ("reg:5000/web", None, Some("sha256:ab"))
        );
    }
}
