//! `peapod delete pod`.

use std::time::Duration;

use anyhow::{anyhow, Result};
use hyper::Method;

use super::apply::{decode_objects, namespace_of, read_manifest};
use super::transport::{object_path, pod_path, Client};

/// `peapod delete pod NAME... [--wait] [--grace-period N]`: deletes each
/// target and prints `pod "NAME" deleted`; with `wait`, returns once every
/// deleted pod is gone. Targets that fail are reported together at the end
/// (`Error from server (NotFound): pods "x" not found`) as the error.
pub async fn delete(
    client: &Client,
    targets: Vec<(String, String, String)>,
    wait: bool,
    grace_period: Option<i64>,
) -> Result<()> {
    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    for (resource, namespace, name) in targets {
        let mut path = object_path(&resource, &namespace, &name);
        if let Some(seconds) = grace_period.filter(|s| *s >= 0) {
            path.push_str(&format!("?gracePeriodSeconds={seconds}"));
        }
        let response = client.request(Method::DELETE, &path, None, None).await?;
        if response.is_success() {
            let kind = resource.trim_end_matches('s');
            println!("{kind} \"{name}\" deleted");
            if resource == "pods" {
                deleted.push((namespace, name));
            }
        } else {
            failures.push(response.error().to_string());
        }
    }
    if wait {
        for (namespace, name) in &deleted {
            wait_gone(client, namespace, name).await?;
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failures.join("\n")))
    }
}

/// Polls the pod every 100 ms until the daemon answers 404.
async fn wait_gone(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let path = pod_path(namespace, name);
    loop {
        let response = client.request(Method::GET, &path, None, None).await?;
        match response.status {
            404 => return Ok(()),
            200..=299 => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => return Err(response.error()),
        }
    }
}

/// The `(namespace, name)` of every pod in a manifest (`-` is stdin), for
/// `peapod delete -f FILE`. Objects other than Pods are an error.
pub fn delete_targets_from_file(path: &str) -> Result<Vec<(String, String, String)>> {
    let text = read_manifest(path)?;
    let (pods, secrets, _warnings) = decode_objects(path, &text, "delete")?;
    let mut out: Vec<(String, String, String)> = pods
        .iter()
        .map(|pod| {
            (
                "pods".to_string(),
                namespace_of(pod),
                pod.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.extend(secrets.iter().map(|s| {
        (
            "secrets".to_string(),
            s.metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            s.metadata.name.clone().unwrap_or_default(),
        )
    }));
    Ok(out)
}
