//! `rollout status|history|undo|pause|resume|restart`, `scale` and
//! `set image`, as kubectl does them: read the object, change its spec,
//! write it back (PUT); `rollout undo` copies the template of an older
//! ReplicaSet (by its `deployment.kubernetes.io/revision`) into the
//! Deployment; `rollout status` follows the Deployment until its rollout
//! is complete, printing kubectl's messages.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use hyper::Method;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::Value;

use super::transport::Client;
use super::workloads::{collection_path, object_path};

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// `deploy/web`, `deployment web`, `deployments.apps/web` as (kind, name).
pub fn parse_target(args: &[String]) -> Result<(&'static peapod_api::Kind, String)> {
    let (word, name) = match args {
        [one] => match one.split_once('/') {
            Some((k, n)) => (k.to_string(), n.to_string()),
            None => bail!(
                "error: you must give a resource and a name: TYPE/NAME (deploy/web) or TYPE NAME"
            ),
        },
        [k, n] => (k.clone(), n.clone()),
        _ => bail!("error: you must give one resource: TYPE/NAME (deploy/web) or TYPE NAME"),
    };
    let kind = peapod_api::kind_named(&word)
        .ok_or_else(|| anyhow!("error: the server doesn't have a resource type \"{word}\""))?;
    if name.is_empty() {
        bail!("error: resource name may not be empty");
    }
    Ok((kind, name))
}

fn require_deployment(kind: &peapod_api::Kind, verb: &str) -> Result<()> {
    if kind.kind != "Deployment" {
        bail!(
            "error: {verb} is supported for deployments only here, not {}",
            kind.plural
        );
    }
    Ok(())
}

async fn get_value(
    client: &Client,
    kind: &peapod_api::Kind,
    ns: &str,
    name: &str,
) -> Result<Value> {
    client.get_json::<Value>(&object_path(kind, ns, name)).await
}

async fn put_value(
    client: &Client,
    kind: &peapod_api::Kind,
    ns: &str,
    name: &str,
    v: &Value,
) -> Result<()> {
    let body = serde_json::to_vec(v)?;
    let r = client
        .request(
            Method::PUT,
            &object_path(kind, ns, name),
            Some(body),
            Some("application/json"),
        )
        .await?;
    if !r.is_success() {
        return Err(r.error());
    }
    Ok(())
}

/// Read, change (`f` returns false to leave it) and write back.
async fn modify(
    client: &Client,
    kind: &peapod_api::Kind,
    ns: &str,
    name: &str,
    f: impl FnOnce(&mut Value) -> Result<bool>,
) -> Result<bool> {
    let mut v = get_value(client, kind, ns, name).await?;
    if !f(&mut v)? {
        return Ok(false);
    }
    put_value(client, kind, ns, name, &v).await?;
    Ok(true)
}

/// `peapod scale TYPE/NAME --replicas=N`.
pub async fn scale(client: &Client, target: &[String], ns: &str, replicas: i32) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    if !matches!(kind.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
        bail!(
            "error: cannot scale {}: only deployments, replicasets and statefulsets scale",
            kind.plural
        );
    }
    if replicas < 0 {
        bail!("error: --replicas={replicas}: the number of replicas must not be negative");
    }
    modify(client, kind, ns, &name, |v| {
        v["spec"]["replicas"] = replicas.into();
        Ok(true)
    })
    .await?;
    println!("{}/{name} scaled", kind.qualified());
    Ok(())
}

/// `peapod set image TYPE/NAME CONTAINER=IMAGE...`.
pub async fn set_image(
    client: &Client,
    target: &[String],
    ns: &str,
    images: &[String],
) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    let mut pairs = Vec::new();
    for i in images {
        let (c, img) = i
            .split_once('=')
            .filter(|(c, img)| !c.is_empty() && !img.is_empty())
            .ok_or_else(|| anyhow!("error: {i:?}: give images as CONTAINER=IMAGE"))?;
        pairs.push((c.to_string(), img.to_string()));
    }
    if pairs.is_empty() {
        bail!("error: at least one image update is required: CONTAINER=IMAGE");
    }
    modify(client, kind, ns, &name, |v| {
        let spec = &mut v["spec"]["template"]["spec"];
        for (c, img) in &pairs {
            let mut found = false;
            for list in ["initContainers", "containers"] {
                for ct in spec[list].as_array_mut().into_iter().flatten() {
                    if ct["name"].as_str() == Some(c) || c == "*" {
                        ct["image"] = img.clone().into();
                        found = true;
                    }
                }
            }
            if !found {
                bail!(
                    "error: unable to find container named \"{c}\" in {}/{name}",
                    kind.qualified()
                );
            }
        }
        Ok(true)
    })
    .await?;
    println!("{}/{name} image updated", kind.qualified());
    Ok(())
}

/// `rollout pause|resume`.
pub async fn pause(client: &Client, target: &[String], ns: &str, paused: bool) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    require_deployment(
        kind,
        if paused {
            "rollout pause"
        } else {
            "rollout resume"
        },
    )?;
    let changed = modify(client, kind, ns, &name, |v| {
        let now = v["spec"]["paused"].as_bool().unwrap_or(false);
        if now == paused {
            return Ok(false);
        }
        v["spec"]["paused"] = if paused { true.into() } else { Value::Null };
        Ok(true)
    })
    .await?;
    let word = if paused { "paused" } else { "resumed" };
    if changed {
        println!("{}/{name} {word}", kind.qualified());
    } else {
        bail!(
            "error: {}/{name} is not {}",
            kind.qualified(),
            if paused {
                "resumed, it is paused already"
            } else {
                "paused"
            }
        );
    }
    Ok(())
}

/// `rollout restart`: a new template annotation, so every pod is replaced.
pub async fn restart(client: &Client, target: &[String], ns: &str) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    require_deployment(kind, "rollout restart")?;
    modify(client, kind, ns, &name, |v| {
        if v["spec"]["paused"].as_bool() == Some(true) {
            bail!("error: deployments.apps \"{name}\" can't restart paused deployment (run rollout resume first)");
        }
        let meta = &mut v["spec"]["template"]["metadata"];
        if !meta.is_object() {
            *meta = serde_json::json!({});
        }
        if !meta["annotations"].is_object() {
            meta["annotations"] = serde_json::json!({});
        }
        meta["annotations"]["kubectl.kubernetes.io/restartedAt"] =
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
        Ok(true)
    })
    .await?;
    println!("{}/{name} restarted", kind.qualified());
    Ok(())
}

/// The Deployment's ReplicaSets (controlled by its uid).
async fn replica_sets(client: &Client, ns: &str, d: &Deployment) -> Result<Vec<ReplicaSet>> {
    let rs_kind = peapod_api::kind_named("rs").ok_or_else(|| anyhow!("no replicaset kind"))?;
    let list: Value = client.get_json(&collection_path(rs_kind, Some(ns))).await?;
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut out: Vec<ReplicaSet> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_value::<ReplicaSet>(v.clone()).ok())
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && r.uid == uid)
        })
        .collect();
    out.sort_by_key(revision_of);
    Ok(out)
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

async fn deployment(client: &Client, ns: &str, name: &str) -> Result<Deployment> {
    let k = peapod_api::kind_named("deploy").ok_or_else(|| anyhow!("no deployment kind"))?;
    let v = get_value(client, k, ns, name).await?;
    serde_json::from_value(v).map_err(|e| anyhow!("error: the daemon's Deployment {name}: {e}"))
}

/// `rollout history [--revision N]`.
pub async fn history(
    client: &Client,
    target: &[String],
    ns: &str,
    revision: Option<i64>,
) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    require_deployment(kind, "rollout history")?;
    let d = deployment(client, ns, &name).await?;
    let rss = replica_sets(client, ns, &d).await?;
    if let Some(rev) = revision {
        let rs = rss
            .iter()
            .find(|rs| revision_of(rs) == rev)
            .ok_or_else(|| anyhow!("error: unable to find the specified revision {rev}"))?;
        let mut t = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(HASH_LABEL);
        }
        let yaml = serde_yaml_ng::to_string(&t).map_err(|e| anyhow!("error: {e}"))?;
        println!(
            "{}/{name} with revision #{rev}\nPod Template:",
            kind.qualified()
        );
        for line in yaml.lines() {
            println!("  {line}");
        }
        return Ok(());
    }
    let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
    for rs in &rss {
        let cause = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE))
            .cloned()
            .unwrap_or_else(|| "<none>".into());
        rows.push(vec![revision_of(rs).to_string(), cause]);
    }
    println!("{}/{name} ", kind.qualified());
    print!("{}", super::table::Table::new(0, 2).render(&rows));
    println!();
    Ok(())
}

/// `rollout undo [--to-revision N]` (0: the previous revision).
pub async fn undo(client: &Client, target: &[String], ns: &str, to_revision: i64) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    require_deployment(kind, "rollout undo")?;
    let d = deployment(client, ns, &name).await?;
    if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
        bail!("error: you cannot rollback a paused deployment; resume it first with 'peapod rollout resume deployment/{name}' and try again");
    }
    let rss = replica_sets(client, ns, &d).await?;
    let rs = if to_revision > 0 {
        rss.iter()
            .find(|rs| revision_of(rs) == to_revision)
            .ok_or_else(|| {
                anyhow!("error: unable to find specified revision {to_revision} in history")
            })?
    } else {
        // The second newest revision.
        let mut revs: Vec<&ReplicaSet> = rss.iter().collect();
        revs.sort_by_key(|rs| std::cmp::Reverse(revision_of(rs)));
        revs.get(1)
            .copied()
            .ok_or_else(|| anyhow!("error: no rollout history found for deployment \"{name}\""))?
    };
    let rev = revision_of(rs);
    let mut t = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
        }
    }
    let current = d
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    if serde_json::to_value(&current)? == serde_json::to_value(&t)? {
        println!(
            "{}/{name} skipped rollback (current template already matches revision {rev})",
            kind.qualified()
        );
        return Ok(());
    }
    let template = serde_json::to_value(&t)?;
    modify(client, kind, ns, &name, |v| {
        v["spec"]["template"] = template;
        Ok(true)
    })
    .await?;
    println!("{}/{name} rolled back", kind.qualified());
    Ok(())
}

/// kubectl's rollout status message for a Deployment, and whether it is
/// done; an error when its progress deadline passed.
pub fn status_message(d: &Deployment) -> Result<(String, bool)> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    if d.metadata.generation > st.observed_generation {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    if st.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        bail!("error: deployment \"{name}\" exceeded its progress deadline");
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if updated < want {
        return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {updated} out of {want} new replicas have been updated..."), false));
    }
    if total > updated {
        return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...", total - updated), false));
    }
    if available < updated {
        return Ok((format!("Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available..."), false));
    }
    Ok((
        format!("deployment \"{name}\" successfully rolled out"),
        true,
    ))
}

/// `rollout status [--timeout]`: follow until complete.
pub async fn status(
    client: &Client,
    target: &[String],
    ns: &str,
    timeout: Option<Duration>,
) -> Result<()> {
    let (kind, name) = parse_target(target)?;
    require_deployment(kind, "rollout status")?;
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let d = deployment(client, ns, &name).await?;
        let (msg, done) = status_message(&d)?;
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if done {
            return Ok(());
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            bail!("error: timed out waiting for the condition");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(status: Value, generation: i64) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web", "generation": generation },
            "spec": { "replicas": 3, "selector": {}, "template": {} },
            "status": status,
        }))
        .expect("deployment")
    }

    #[test]
    fn rollout_status_messages_as_kubectl() {
        let m = |s: Value, g| status_message(&d(s, g)).map_err(|e| e.to_string());
        assert_eq!(
            m(serde_json::json!({ "observedGeneration": 1 }), 2),
            Ok((
                "Waiting for deployment spec update to be observed...".into(),
                false
            ))
        );
        assert_eq!(
            m(serde_json::json!({ "observedGeneration": 2, "updatedReplicas": 1, "replicas": 4 }), 2).map(|x| x.0),
            Ok("Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...".into())
        );
        assert_eq!(
            m(serde_json::json!({ "observedGeneration": 2, "updatedReplicas": 3, "replicas": 4, "availableReplicas": 3 }), 2).map(|x| x.0),
            Ok("Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...".into())
        );
        assert_eq!(
            m(
                serde_json::json!({ "observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3 }),
                2
            ),
            Ok(("deployment \"web\" successfully rolled out".into(), true))
        );
        let e = m(
            serde_json::json!({ "observedGeneration": 2, "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }] }),
            2,
        );
        assert_eq!(
            e,
            Err("error: deployment \"web\" exceeded its progress deadline".into())
        );
    }

    #[test]
    fn targets_parse_both_ways() {
        let t = |a: &[&str]| {
            parse_target(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .map(|(k, n)| (k.kind, n))
                .map_err(|e| e.to_string())
        };
        assert_eq!(t(&["deploy/web"]), Ok(("Deployment", "web".into())));
        assert_eq!(t(&["rs", "web-1"]), Ok(("ReplicaSet", "web-1".into())));
        assert!(t(&["web"]).is_err());
        assert!(t(&["bogus/web"]).is_err());
    }
}
