//! `peapod wait --for=condition=Ready|--for=delete TYPE/NAME...`, as
//! `kubectl wait`, and the one "until" loop that `delete --wait` uses too:
//! read the object, then follow it through a watch (no polling) until a
//! predicate holds, as client-go's `UntilWithSync` does. A watch that
//! expires (410) reads the object again and resumes.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use futures_util::StreamExt;
use hyper::Method;
use serde_json::Value;

use super::transport::{encode, Client};

/// One object to follow: its path, and the collection whose watch
/// carries its changes.
#[derive(Debug)]
pub struct Target {
    /// `pod/web`, as messages name it.
    pub display: String,
    pub object_path: String,
    pub collection_path: String,
    pub name: String,
    /// The collection takes `fieldSelector=metadata.name=...` on watches
    /// (pods); other kinds' events are filtered here.
    pub field_selector: bool,
}

impl Target {
    pub fn pod(namespace: &str, name: &str) -> Target {
        Target {
            display: format!("pod/{name}"),
            object_path: super::transport::pod_path(namespace, name),
            collection_path: format!("/api/v1/namespaces/{}/pods", encode(namespace)),
            name: name.to_string(),
            field_selector: true,
        }
    }

    /// `pod/a deploy/b ...` (each TYPE/NAME) or `pods a b ...`.
    pub fn parse(words: &[String], namespace: &str) -> Result<Vec<Target>> {
        match words {
            [] => bail!("error: you must give a resource: TYPE/NAME (pod/web) or TYPE NAME..."),
            [first, ..] if first.contains('/') => words
                .iter()
                .map(|w| match w.split_once('/') {
                    Some((k, n)) => Target::of(k, n, namespace),
                    None => bail!("error: give every resource as TYPE/NAME ({w})"),
                })
                .collect(),
            [kind, names @ ..] => {
                if names.is_empty() {
                    bail!("error: you must give a name: TYPE/NAME (pod/web) or TYPE NAME...");
                }
                names
                    .iter()
                    .map(|n| Target::of(kind, n, namespace))
                    .collect()
            }
        }
    }

    fn of(kind_word: &str, name: &str, namespace: &str) -> Result<Target> {
        if name.is_empty() {
            bail!("error: resource name may not be empty: give TYPE/NAME (pod/web)");
        }
        if matches!(kind_word, "pod" | "pods" | "po") {
            return Ok(Target::pod(namespace, name));
        }
        let kind = peapod_api::kind_named(kind_word).ok_or_else(|| {
            anyhow!("error: the server doesn't have a resource type \"{kind_word}\"")
        })?;
        Ok(Target {
            display: format!("{}/{name}", kind.qualified()),
            object_path: super::workloads::object_path(kind, namespace, name),
            collection_path: super::workloads::collection_path(kind, Some(namespace)),
            name: name.to_string(),
            field_selector: false,
        })
    }
}

/// A watch's events (one JSON object per line), as the daemon streams
/// them: BOOKMARKs and blank lines skipped, an ERROR other than 410 an
/// error.
pub struct WatchEvents {
    stream: super::transport::BodyStream,
    buffer: Vec<u8>,
}

pub enum Event {
    /// ADDED, MODIFIED or DELETED, with the object.
    Changed(String, Value),
    /// 410: list again and resume from the new list.
    Expired,
    /// The daemon ended the watch (it stopped).
    End,
}

impl WatchEvents {
    pub async fn open(client: &Client, path: &str) -> Result<WatchEvents> {
        Ok(WatchEvents {
            stream: client.stream(path).await?,
            buffer: Vec::new(),
        })
    }

    pub async fn next(&mut self) -> Result<Event> {
        loop {
            while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let event: Value = serde_json::from_str(line)
                    .map_err(|e| anyhow!("error: bad watch event from the daemon: {e}"))?;
                let object = event.get("object").cloned().unwrap_or(Value::Null);
                match event["type"].as_str().unwrap_or("") {
                    "ERROR" if object["code"].as_u64() == Some(410) => return Ok(Event::Expired),
                    "ERROR" => {
                        return Err(super::transport::status_error(
                            object["code"].as_u64().unwrap_or(500) as u16,
                            object.to_string().as_bytes(),
                        ))
                    }
                    "BOOKMARK" => continue,
                    kind => return Ok(Event::Changed(kind.to_string(), object)),
                }
            }
            match self.stream.next().await {
                Some(chunk) => self.buffer.extend_from_slice(&chunk?),
                None => return Ok(Event::End),
            }
        }
    }
}

/// What `--for` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum For {
    /// The object is gone.
    Delete,
    /// `status.conditions[type=NAME].status == VALUE` (default `True`).
    Condition { name: String, value: String },
}

impl For {
    pub fn parse(s: &str) -> Result<For> {
        if s == "delete" {
            return Ok(For::Delete);
        }
        if let Some(c) = s.strip_prefix("condition=") {
            let (name, value) = match c.split_once('=') {
                Some((n, v)) => (n, v),
                None => (c, "True"),
            };
            if name.is_empty() {
                bail!("error: --for=condition=NAME: the condition's name is missing (e.g. --for=condition=Ready)");
            }
            return Ok(For::Condition {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        bail!("error: unrecognized condition: {s:?}: use --for=delete or --for=condition=NAME[=VALUE] (e.g. condition=Ready)")
    }

    fn holds(&self, object: Option<&Value>) -> bool {
        match (self, object) {
            (For::Delete, o) => o.is_none(),
            (For::Condition { .. }, None) => false,
            (For::Condition { name, value }, Some(o)) => o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case(name))
                        && c["status"]
                            .as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(value))
                }),
        }
    }
}

/// Read `t`, then follow its watch until `done(object)` holds (`None`:
/// the object is gone); the last object seen.
pub async fn until(
    client: &Client,
    t: &Target,
    mut done: impl FnMut(Option<&Value>) -> bool,
) -> Result<Option<Value>> {
    loop {
        let response = client
            .request(Method::GET, &t.object_path, None, None)
            .await?;
        let object: Option<Value> = match response.status {
            404 => None,
            200..=299 => Some(response.json()?),
            _ => return Err(response.error()),
        };
        if done(object.as_ref()) {
            return Ok(object);
        }
        // Resume from the object's version, or the collection's when it
        // is gone (a new one of the same name may come).
        let rv = match &object {
            Some(o) => o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            None => {
                let list: Value = client.get_json(&t.collection_path).await?;
                list["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            }
        };
        let mut path = format!(
            "{}?watch=1&resourceVersion={}",
            t.collection_path,
            encode(&rv)
        );
        if t.field_selector {
            path.push_str(&format!(
                "&fieldSelector={}",
                encode(&format!("metadata.name={}", t.name))
            ));
        }
        let mut events = WatchEvents::open(client, &path).await?;
        loop {
            match events.next().await? {
                Event::Expired => break,
                Event::End => bail!(
                    "error: the peapod daemon ended the watch of {} (did it stop?)",
                    t.display
                ),
                Event::Changed(kind, object) => {
                    if object["metadata"]["name"].as_str() != Some(t.name.as_str()) {
                        continue;
                    }
                    let current = (kind != "DELETED").then_some(object);
                    if done(current.as_ref()) {
                        return Ok(current);
                    }
                }
            }
        }
    }
}

/// `peapod wait`: every target in turn, each within `timeout`; prints
/// `pod/web condition met` (or `deleted`) as kubectl does.
pub async fn wait(
    client: &Client,
    targets: &[Target],
    what: &For,
    timeout: Duration,
) -> Result<()> {
    for t in targets {
        let result = tokio::time::timeout(timeout, until(client, t, |o| what.holds(o))).await;
        match result {
            Ok(Ok(_)) => match what {
                For::Delete => println!("{} deleted", t.display),
                For::Condition { .. } => println!("{} condition met", t.display),
            },
            Ok(Err(e)) => return Err(e),
            Err(_) => match what {
                For::Delete => bail!(
                    "error: timed out waiting for the condition on {}: it still exists after {}s",
                    t.display,
                    timeout.as_secs_f64()
                ),
                For::Condition { name, value } => bail!(
                    "error: timed out waiting for the condition on {}: condition {name} is not {value} after {}s (see `peapod describe {}`)",
                    t.display,
                    timeout.as_secs_f64(),
                    t.display.replacen('/', " ", 1)
                ),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn for_values_as_kubectl_takes_them() {
        assert_eq!(For::parse("delete").unwrap(), For::Delete);
        assert_eq!(
            For::parse("condition=Ready").unwrap(),
            For::Condition {
                name: "Ready".into(),
                value: "True".into()
            }
        );
        assert_eq!(
            For::parse("condition=Ready=false").unwrap(),
            For::Condition {
                name: "Ready".into(),
                value: "false".into()
            }
        );
        assert!(For::parse("condition=").is_err());
        assert!(For::parse("ready")
            .unwrap_err()
            .to_string()
            .contains("--for=delete"));
    }

    #[test]
    fn conditions_match_without_case() {
        let pod = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Initialized", "status": "False"}]}});
        assert!(For::parse("condition=ready").unwrap().holds(Some(&pod)));
        assert!(!For::parse("condition=Initialized")
            .unwrap()
            .holds(Some(&pod)));
        assert!(For::parse("condition=Initialized=False")
            .unwrap()
            .holds(Some(&pod)));
        assert!(!For::parse("condition=Ready").unwrap().holds(None));
        assert!(For::Delete.holds(None));
        assert!(!For::Delete.holds(Some(&pod)));
    }

    #[test]
    fn targets_name_pods_and_workloads() {
        let t = Target::parse(&["pod/a".into(), "pod/b".into()], "ns1").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].object_path, "/api/v1/namespaces/ns1/pods/b");
        assert!(t[0].field_selector);
        let t = Target::parse(&["deploy".into(), "web".into()], "default").unwrap();
        assert_eq!(
            t[0].object_path,
            "/apis/apps/v1/namespaces/default/deployments/web"
        );
        assert!(!t[0].field_selector);
        assert!(Target::parse(&["pod/".into()], "default").is_err());
        assert!(Target::parse(&["nope/x".into()], "default")
            .unwrap_err()
            .to_string()
            .contains("resource type \"nope\""));
    }
}
