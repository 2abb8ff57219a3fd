//! `peapod delete pod`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use hyper::Method;
use k8s_openapi::api::core::v1::Pod;

use super::apply::{decode_objects, namespace_of, read_manifest};
use super::transport::{object_path, Client};

/// `peapod delete pod NAME... [--wait] [--grace-period N] [--timeout D]`:
/// deletes each target and prints `pod "NAME" deleted`; with `wait`,
/// returns once every deleted pod is gone, or fails when one is still
/// there after `timeout` (default: its grace period + 30 s), naming the
/// pod and what still runs. Targets that fail are reported together at the
/// end (`Error from server (NotFound): pods "x" not found`) as the error.
pub async fn delete(
    client: &Client,
    targets: Vec<(String, String, String)>,
    wait: bool,
    grace_period: Option<i64>,
    timeout: Option<Duration>,
    cascade: Cascade,
) -> Result<()> {
    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    let mut namespaces = Vec::new();
    let mut others = Vec::new();
    for (resource, namespace, name) in targets {
        let kind = peapod_api::workloads::kind_of_plural(&resource);
        let mut path = if resource == "namespaces" {
            format!("/api/v1/namespaces/{}", super::transport::encode(&name))
        } else {
            object_path(&resource, &namespace, &name)
        };
        let mut query = Vec::new();
        if let Some(seconds) = grace_period.filter(|s| *s >= 0) {
            query.push(format!("gracePeriodSeconds={seconds}"));
        }
        if kind.is_some() {
            query.push(format!("propagationPolicy={}", cascade.policy()));
        }
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        let response = client.request(Method::DELETE, &path, None, None).await?;
        if response.is_success() {
            match kind {
                Some(k) => println!("{} \"{name}\" deleted", k.qualified()),
                None => println!("{} \"{name}\" deleted", resource.trim_end_matches('s')),
            }
            if let Some(k) = kind {
                others.push((k, namespace, name));
            } else if resource == "pods" {
                let grace = response
                    .json::<Pod>()
                    .ok()
                    .and_then(|p| p.metadata.deletion_grace_period_seconds)
                    .or(grace_period)
                    .unwrap_or(30)
                    .max(0) as u64;
                deleted.push((namespace, name, grace));
            } else if resource == "namespaces" {
                namespaces.push(name);
            }
        } else {
            failures.push(response.error().to_string());
        }
    }
    if wait {
        for (namespace, name, grace) in &deleted {
            if let Err(e) = wait_gone(client, namespace, name, *grace, timeout).await {
                failures.push(e.to_string());
            }
        }
        for name in &namespaces {
            if let Err(e) = wait_namespace_gone(client, name, timeout).await {
                failures.push(e.to_string());
            }
        }
        for (k, namespace, name) in &others {
            if let Err(e) = wait_object_gone(client, k, namespace, name, timeout).await {
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failures.join("\n")))
    }
}

/// Polls a terminating namespace until it is gone (its pods stopped and
/// its objects removed); fails after `timeout` (default 5 min).
async fn wait_namespace_gone(client: &Client, name: &str, timeout: Option<Duration>) -> Result<()> {
    let path = format!("/api/v1/namespaces/{}", super::transport::encode(name));
    let limit = timeout.unwrap_or(Duration::from_secs(300));
    let start = Instant::now();
    loop {
        let response = client.request(Method::GET, &path, None, None).await?;
        match response.status {
            404 => return Ok(()),
            200..=299 => {}
            _ => return Err(response.error()),
        }
        if start.elapsed() >= limit {
            bail!(
                "error: timed out after {} waiting for namespace \"{name}\" to be deleted: its pods are still stopping; see `peapod get pods -n {name}`",
                seconds(limit)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--cascade`: how an owner's dependents go (kubectl's flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cascade {
    /// The owner now, its dependents after (`background`, `true`).
    #[default]
    Background,
    /// The dependents first, then the owner.
    Foreground,
    /// The owner only; its dependents stay, without the ownerReference.
    Orphan,
}

impl Cascade {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "background" | "true" | "" => Ok(Cascade::Background),
            "foreground" => Ok(Cascade::Foreground),
            "orphan" | "false" => Ok(Cascade::Orphan),
            other => bail!("error: invalid --cascade \"{other}\": must be one of background, foreground or orphan"),
        }
    }

    fn policy(self) -> &'static str {
        match self {
            Cascade::Background => "Background",
            Cascade::Foreground => "Foreground",
            Cascade::Orphan => "Orphan",
        }
    }
}

/// Polls an object of `peapod_api::KINDS` until it is gone (with
/// `--cascade=foreground`, after its dependents); fails after `timeout`
/// (default 60 s).
async fn wait_object_gone(
    client: &Client,
    k: &peapod_api::Kind,
    namespace: &str,
    name: &str,
    timeout: Option<Duration>,
) -> Result<()> {
    let path = super::workloads::object_path(k, namespace, name);
    let limit = timeout.unwrap_or(Duration::from_secs(60));
    let start = Instant::now();
    loop {
        let response = client.request(Method::GET, &path, None, None).await?;
        match response.status {
            404 => return Ok(()),
            200..=299 => {}
            _ => return Err(response.error()),
        }
        if start.elapsed() >= limit {
            bail!(
                "error: timed out after {} waiting for {} \"{name}\" to be deleted: its dependents are still being deleted; see `peapod get pods -n {namespace}`",
                seconds(limit),
                k.qualified()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After this long a wait says what it waits for.
const QUIET: Duration = Duration::from_secs(1);

/// Polls the pod every 100 ms until the daemon answers 404; fails after
/// `timeout` (grace period + 30 s when None).
async fn wait_gone(
    client: &Client,
    namespace: &str,
    name: &str,
    grace: u64,
    timeout: Option<Duration>,
) -> Result<()> {
    let limit = timeout.unwrap_or(Duration::from_secs(grace + 30));
    let target = super::wait::Target::pod(namespace, name);
    // Followed through a watch; after QUIET a line says what it waits for.
    let mut last: Option<Pod> = None;
    {
        let gone = super::wait::until(client, &target, |o| {
            if let Some(o) = o {
                last = serde_json::from_value(o.clone()).ok();
            }
            o.is_none()
        });
        tokio::pin!(gone);
        let quiet = tokio::time::sleep(QUIET.min(limit));
        tokio::pin!(quiet);
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        let mut said = false;
        loop {
            tokio::select! {
                r = &mut gone => return r.map(|_| ()),
                _ = &mut quiet, if !said => {
                    said = true;
                    if limit > QUIET {
                        eprintln!("waiting for pod \"{name}\" to terminate (grace period {grace}s)");
                    }
                }
                _ = &mut deadline => break,
            }
        }
    }
    bail!(
        "error: timed out after {} waiting for pod \"{name}\" to terminate (grace period {grace}s): {}; the daemon keeps stopping it: see `peapod describe pod {name}`, or force it with `peapod delete pod {name} --grace-period=0`",
        seconds(limit),
        still_running(last.as_ref())
    );
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64().round() as u64)
}

/// What keeps a terminating pod: its running containers, or its sandbox.
fn still_running(pod: Option<&Pod>) -> String {
    let running: Vec<String> = pod
        .and_then(|p| p.status.as_ref())
        .map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
                .filter(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    match running.as_slice() {
        [] => "no container is running, the pod's sandbox is not removed yet".into(),
        [one] => format!("container {one} is still running"),
        many => format!("containers {} are still running", many.join(", ")),
    }
}

/// A `--timeout` value: Go-style durations (`90s`, `2m`, `1m30s`, `500ms`,
/// `1h`) or plain seconds. Zero means the default (grace period + 30 s).
pub fn parse_timeout(text: &str) -> Result<Option<Duration>> {
    let bad =
        || anyhow!("error: invalid --timeout \"{text}\": use a duration such as 90s, 2m or 1m30s");
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok((secs > 0).then(|| Duration::from_secs(secs)));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(value * unit);
    }
    if text.is_empty() {
        return Err(bad());
    }
    Ok((!total.is_zero()).then_some(total))
}

/// The `(namespace, name)` of every pod in a manifest (`-` is stdin), for
/// `peapod delete -f FILE`. Objects other than Pods are an error.
pub fn delete_targets_from_file(path: &str) -> Result<Vec<(String, String, String)>> {
    let text = read_manifest(path)?;
    let objects = decode_objects(path, &text, "delete")?;
    let (pods, secrets) = (&objects.pods, &objects.secrets);
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
    // ObjectMeta's namespace, `default` when empty.
    let target = |resource: &str,
                  m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (
            resource.to_string(),
            m.namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            m.name.clone().unwrap_or_default(),
        )
    };
    out.extend(secrets.iter().map(|s| target("secrets", &s.metadata)));
    out.extend(
        objects
            .config_maps
            .iter()
            .map(|c| target("configmaps", &c.metadata)),
    );
    out.extend(
        objects
            .services
            .iter()
            .map(|s| target("services", &s.metadata)),
    );
    out.extend(objects.resources.iter().map(|r| {
        (
            r.kind.plural.to_string(),
            super::apply::resource_namespace(r),
            r.name.clone(),
        )
    }));
    // A namespace goes last: deleting it deletes what is in it.
    out.extend(objects.namespaces.iter().map(|n| {
        (
            "namespaces".to_string(),
            String::new(),
            n.metadata.name.clone().unwrap_or_default(),
        )
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        let p = |t: &str| parse_timeout(t).map_err(|e| e.to_string());
        assert_eq!(p("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(p("1m30s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(p("2"), Ok(Some(Duration::from_secs(2))));
        assert_eq!(p("500ms"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(p("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(p("0s"), Ok(None));
        assert_eq!(p("0"), Ok(None));
        assert!(p("soon").is_err());
        assert!(p("5x").is_err());
        assert!(p("").is_err());
    }

    #[test]
    fn what_still_runs() {
        let pod: Pod = match serde_json::from_value(serde_json::json!({
            "status": {"containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"terminated": {"exitCode": 0}}},
                {"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}
            ]}
        })) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            still_running(Some(&pod)),
            "containers a, c are still running"
        );
        assert_eq!(
            still_running(None),
            "no container is running, the pod's sandbox is not removed yet"
        );
    }
}
