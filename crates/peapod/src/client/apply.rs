//! `peapod apply -f FILE`.

use std::io::Read;

use anyhow::{anyhow, bail, Result};
use hyper::Method;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use peapod_api::{Object, Pod};

use super::transport::{object_path, pod_path, Client};

/// The header with which the daemon says a PUT changed nothing.
pub const RESULT_HEADER: &str = "X-Peapod-Result";

/// Reads a manifest from `file` (`-` is stdin).
pub fn read_manifest(file: &str) -> Result<String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow!("error: reading the manifest from stdin: {e}"))?;
        Ok(text)
    } else if std::path::Path::new(file).is_dir() {
        read_dir_manifests(file)
    } else {
        std::fs::read_to_string(file).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("error: the path \"{file}\" does not exist")
            } else {
                anyhow!("error: reading {file}: {e}")
            }
        })
    }
}

/// `apply -f DIR`: the `.yaml`, `.yml` and `.json` files of the directory
/// (not its subdirectories), by name, as one multi-document manifest.
fn read_dir_manifests(dir: &str) -> Result<String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow!("error: reading directory {dir}: {e}"))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("error: no objects passed to apply: {dir} has no .yaml, .yml or .json files");
    }
    let mut text = String::new();
    for f in files {
        let body = std::fs::read_to_string(&f)
            .map_err(|e| anyhow!("error: reading {}: {e}", f.display()))?;
        text.push_str("\n---\n");
        text.push_str(&body);
    }
    Ok(text)
}

/// The objects of a manifest, by kind.
#[derive(Default)]
pub struct Objects {
    pub pods: Vec<Pod>,
    pub secrets: Vec<Secret>,
    pub config_maps: Vec<ConfigMap>,
    pub namespaces: Vec<Namespace>,
    pub services: Vec<Service>,
    /// Deployments, ReplicaSets, Jobs, ... (`peapod_api::KINDS`).
    pub resources: Vec<peapod_api::Resource>,
    pub warnings: Vec<String>,
}

/// Decodes a manifest into its pods, secrets and config maps (the kinds
/// peapod serves) and the decoder's warnings; any other kind is an error
/// naming it.
pub fn decode_objects(file: &str, text: &str, verb: &str) -> Result<Objects> {
    let verbs = match verb {
        "apply" => "applies".to_string(),
        other => format!("{other}s"),
    };
    let decoded = peapod_api::decode(text).map_err(|e| {
        let source = if file == "-" { "STDIN" } else { file };
        anyhow!("error: error parsing {source}: {e}")
    })?;
    let mut pods = Vec::new();
    let mut secrets = Vec::new();
    let mut config_maps = Vec::new();
    let mut unsupported = Vec::new();
    let mut namespaces = Vec::new();
    let mut services = Vec::new();
    let mut resources = Vec::new();
    for object in decoded.objects {
        match object {
            Object::Pod(pod) => pods.push(*pod),
            Object::Secret(secret) => secrets.push(*secret),
            Object::ConfigMap(cm) => config_maps.push(*cm),
            Object::Namespace(ns) => namespaces.push(*ns),
            Object::Service(svc) => services.push(*svc),
            Object::Resource(r) => resources.push(*r),
            Object::Other {
                api_version,
                kind,
                name,
            } => unsupported.push(format!(
                "error: {kind} {name:?} ({api_version}): kind not supported yet; peapod {verbs} Pods, Services, ConfigMaps, Secrets, Namespaces and {}",
                supported_kinds()
            )),
        }
    }
    if !unsupported.is_empty() {
        bail!("{}", unsupported.join("\n"));
    }
    if pods.is_empty()
        && secrets.is_empty()
        && config_maps.is_empty()
        && namespaces.is_empty()
        && services.is_empty()
        && resources.is_empty()
    {
        bail!("error: no objects passed to {verb}");
    }
    Ok(Objects {
        pods,
        secrets,
        config_maps,
        namespaces,
        services,
        resources,
        warnings: decoded.warnings,
    })
}

/// `Deployment (apps/v1), ReplicaSet (apps/v1), ...`.
fn supported_kinds() -> String {
    peapod_api::KINDS
        .iter()
        .map(|k| format!("{} ({})", k.kind, k.api_version()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The namespace of a manifest's object of `peapod_api::KINDS`.
pub fn resource_namespace(r: &peapod_api::Resource) -> String {
    r.namespace
        .clone()
        .unwrap_or_else(|| peapod_api::DEFAULT_NAMESPACE.to_string())
}

/// Default and validate an object of `peapod_api::KINDS` as the daemon
/// will (for the kinds with checks), so a bad manifest changes nothing.
fn check_resource(r: &peapod_api::Resource) -> std::result::Result<(), String> {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    let typed = |e: serde_json::Error| format!("{} {:?}: {e}", r.kind.kind, r.name);
    match r.kind.kind {
        "Deployment" => {
            let mut d: Deployment = serde_json::from_value(r.value.clone()).map_err(typed)?;
            peapod_api::default_deployment(&mut d);
            peapod_api::validate_deployment(&d)
        }
        "ReplicaSet" => {
            let mut rs: ReplicaSet = serde_json::from_value(r.value.clone()).map_err(typed)?;
            peapod_api::default_replica_set(&mut rs);
            peapod_api::validate_replica_set(&rs)
        }
        _ => Ok(()),
    }
}

/// The namespace of a manifest's pod: `metadata.namespace` or `default`.
pub fn namespace_of(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| peapod_api::DEFAULT_NAMESPACE.to_string())
}

/// PUT one object: `Ok(Ok("created"|"configured"|"unchanged"))`, or the
/// server's error as `Ok(Err(message))` (reported with the others at the
/// end, as kubectl does); transport errors end the apply.
async fn put(
    client: &Client,
    path: &str,
    body: Vec<u8>,
    source: &str,
) -> Result<std::result::Result<String, String>> {
    let response = client
        .request(Method::PUT, path, Some(body), Some("application/json"))
        .await?;
    if !response.is_success() {
        let text = response.error().to_string();
        // A missing or terminating namespace refuses a creation: kubectl
        // names the manifest (`error when creating "app.yaml": ...`).
        if matches!(response.status, 403 | 404) {
            if let Some((head, message)) = text.split_once("): ") {
                let source = if source == "-" { "STDIN" } else { source };
                return Ok(Err(format!(
                    "{head}): error when creating \"{source}\": {message}"
                )));
            }
        }
        return Ok(Err(text));
    }
    if response.status == 201 {
        return Ok(Ok("created".into()));
    }
    Ok(Ok(match response.header(RESULT_HEADER) {
        Some(result) if !result.is_empty() => result.to_string(),
        _ => "configured".into(),
    }))
}

/// `peapod apply -f FILE`: decodes the manifest (warnings on stderr),
/// refuses anything but Pods, validates every pod before sending any, then
/// PUTs each pod and prints `pod/NAME created|configured|unchanged`.
pub async fn apply(client: &Client, file: &str) -> Result<()> {
    let text = read_manifest(file)?;
    let Objects {
        pods,
        secrets,
        config_maps,
        namespaces,
        services,
        resources,
        warnings,
    } = decode_objects(file, &text, "apply")?;
    for warning in &warnings {
        eprintln!("Warning: {warning}");
    }

    let mut invalid = Vec::new();
    for pod in &pods {
        let mut defaulted = pod.clone();
        peapod_api::default_pod(&mut defaulted);
        if let Err(errors) = peapod_api::validate_pod(&defaulted) {
            invalid.push(format!("The {errors}"));
        }
    }
    let mut secrets = secrets;
    for secret in &mut secrets {
        peapod_api::default_secret(secret);
        if let Err(e) = peapod_api::validate_secret(secret) {
            invalid.push(format!("The {e}"));
        }
    }
    let mut services = services;
    for svc in &mut services {
        peapod_api::default_service(svc);
        if let Err(e) = peapod_api::validate_service(svc) {
            invalid.push(format!("The {e}"));
        }
    }
    let mut config_maps = config_maps;
    for cm in &mut config_maps {
        peapod_api::default_config_map(cm);
        if let Err(e) = peapod_api::validate_config_map(cm) {
            invalid.push(format!("The {e}"));
        }
    }
    for r in &resources {
        if let Err(e) = check_resource(r) {
            invalid.push(format!("The {e}"));
        }
    }
    if !invalid.is_empty() {
        bail!("{}", invalid.join("\n"));
    }

    let mut failures = Vec::new();
    // Namespaces first: the other objects may live in them.
    for ns in &namespaces {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let body = serde_json::to_vec(ns)
            .map_err(|e| anyhow!("error: cannot encode namespace {name:?}: {e}"))?;
        let path = format!("/api/v1/namespaces/{}", super::transport::encode(&name));
        match put(client, &path, body, file).await? {
            Ok(result) => println!("namespace/{name} {result}"),
            Err(e) => failures.push(e),
        }
    }
    // ConfigMaps and Secrets first: pods use them.
    for cm in &config_maps {
        let name = cm.metadata.name.clone().unwrap_or_default();
        let namespace = cm
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let body = serde_json::to_vec(cm)
            .map_err(|e| anyhow!("error: cannot encode configmap {name:?}: {e}"))?;
        match put(
            client,
            &object_path("configmaps", &namespace, &name),
            body,
            file,
        )
        .await?
        {
            Ok(result) => println!("configmap/{name} {result}"),
            Err(e) => failures.push(e),
        }
    }
    // Secrets first: pods may name them in imagePullSecrets.
    for secret in &secrets {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let namespace = secret
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let body = serde_json::to_vec(secret)
            .map_err(|e| anyhow!("error: cannot encode secret {name:?}: {e}"))?;
        match put(
            client,
            &object_path("secrets", &namespace, &name),
            body,
            file,
        )
        .await?
        {
            Ok(result) => println!("secret/{name} {result}"),
            Err(e) => failures.push(e),
        }
    }
    // Services before pods: pods started after them get their variables.
    for svc in &services {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let namespace = svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let body = serde_json::to_vec(svc)
            .map_err(|e| anyhow!("error: cannot encode service {name:?}: {e}"))?;
        match put(
            client,
            &object_path("services", &namespace, &name),
            body,
            file,
        )
        .await?
        {
            Ok(result) => println!("service/{name} {result}"),
            Err(e) => failures.push(e),
        }
    }
    // Workloads and storage: volumes and claims first (stable sort).
    let mut resources = resources;
    resources.sort_by_key(|r| {
        !matches!(
            r.kind.kind,
            "PersistentVolume" | "StorageClass" | "PersistentVolumeClaim"
        )
    });
    for r in &resources {
        let body = serde_json::to_vec(&r.value)
            .map_err(|e| anyhow!("error: cannot encode {} {:?}: {e}", r.kind.kind, r.name))?;
        let path = if r.kind.namespaced {
            super::workloads::object_path(r.kind, &resource_namespace(r), &r.name)
        } else {
            format!(
                "{}/{}",
                super::workloads::collection_path(r.kind, None),
                super::transport::encode(&r.name)
            )
        };
        match put(client, &path, body, file).await? {
            Ok(result) => println!("{}/{} {result}", r.kind.qualified(), r.name),
            Err(e) => failures.push(e),
        }
    }
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = namespace_of(pod);
        let body = serde_json::to_vec(pod)
            .map_err(|e| anyhow!("error: cannot encode pod {name:?}: {e}"))?;
        match put(client, &pod_path(&namespace, &name), body, file).await? {
            Ok(result) => println!("pod/{name} {result}"),
            Err(e) => failures.push(e),
        }
    }
    // Like kubectl, the successes are printed as they happen and every
    // failure once at the end.
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failures.join("\n")))
    }
}
