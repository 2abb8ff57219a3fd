//! `peapod delete pod`.

use std::time::Duration;

use anyhow::{anyhow, Result};
use hyper::Method;

use super::apply::{decode_pods, namespace_of, read_manifest};
use super::transport::{pod_path, Client};

/// `peapod delete pod NAME... [--wait] [--grace-period N]`: deletes each
/// target and prints `pod "NAME" deleted`; with `wait`, returns once every
/// deleted pod is gone. Targets that fail are reported together at the end
/// (`Error from server (NotFound): pods "x" not found`) as the error.
pub async fn delete(
    client: &Client,
    targets: Vec<(String, String)>,
    wait: bool,
    grace_period: Option<i64>,
) -> Result<()> {
    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    for (namespace, name) in targets {
        let mut path = pod_path(&namespace, &name);
        if let Some(seconds) = grace_period.filter(|s| *s >= 0) {
            path.push_str(&format!("?gracePeriodSeconds={seconds}"));
        }
        let response = client.request(Method::DELETE, &path, None, None).await?;
        if response.is_success() {
            println!("pod \"{name}\" deleted");
            deleted.push((namespace, name));
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
pub fn delete_targets_from_file(path: &str) -> Result<Vec<(String, String)>> {
    let text = read_manifest(path)?;
    let (pods, _warnings) = decode_pods(path, &text, "delete")?;
    Ok(pods
        .iter()
        .map(|pod| {
            (
                namespace_of(pod),
                pod.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect())
}
