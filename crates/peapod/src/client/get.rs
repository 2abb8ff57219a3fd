//! `peapod get pods`.

use std::collections::HashMap;
use std::io::Write;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::status::summarize;
use super::table::{age, Table};
use super::transport::{encode, pod_path, Client};

/// `-o` of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// The kubectl table.
    #[default]
    Default,
    /// The table with IP, NODE, NOMINATED NODE, READINESS GATES.
    Wide,
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
    /// `pod/NAME`.
    Name,
}

impl Output {
    /// Parses `-o` when given (`None` = the default table).
    pub fn parse(output: Option<&str>) -> Result<Self> {
        output.map_or(Ok(Output::Default), str::parse)
    }
}

impl FromStr for Output {
    type Err = anyhow::Error;

    /// Parses `-o`: `wide`, `yaml`, `json`, `name` (empty = default).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" => Ok(Output::Default),
            "wide" => Ok(Output::Wide),
            "yaml" => Ok(Output::Yaml),
            "json" => Ok(Output::Json),
            "name" => Ok(Output::Name),
            other => bail!(
                "error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,wide,yaml"
            ),
        }
    }
}

/// What `peapod get pods` was asked.
#[derive(Debug, Clone, Default)]
pub struct GetArgs {
    /// One pod, or all pods of the namespace.
    pub name: Option<String>,
    /// The namespace (ignored with `all_namespaces`).
    pub namespace: String,
    /// `-A`.
    pub all_namespaces: bool,
    /// `-o`.
    pub output: Output,
    /// `-w`.
    pub watch: bool,
    /// `-l`: a label selector the daemon applies.
    pub label_selector: Option<String>,
    /// `--field-selector`.
    pub field_selector: Option<String>,
    /// `--show-labels`: a LABELS column.
    pub show_labels: bool,
}

impl GetArgs {
    /// `labelSelector=`/`fieldSelector=` for a list or watch, with
    /// `extra_field` (a watch of one pod by name) joined to the field
    /// selector.
    fn selector_query(&self, extra_field: Option<String>) -> String {
        let mut q = String::new();
        if let Some(l) = self.label_selector.as_deref().filter(|l| !l.is_empty()) {
            q.push_str(&format!("&labelSelector={}", encode(l)));
        }
        let fields: Vec<String> = self
            .field_selector
            .iter()
            .filter(|f| !f.is_empty())
            .cloned()
            .chain(extra_field)
            .collect();
        if !fields.is_empty() {
            q.push_str(&format!("&fieldSelector={}", encode(&fields.join(","))));
        }
        q
    }

    /// kubectl's wording of a BadRequest or NotFound answer to a list:
    /// `Unable to find "/v1, Resource=pods" that match label selector
    /// "...", field selector "...": <the server's message>`.
    fn list_error(&self, e: anyhow::Error) -> anyhow::Error {
        let text = e.to_string();
        for reason in ["BadRequest", "NotFound"] {
            let prefix = format!("Error from server ({reason}): ");
            if let Some(message) = text.strip_prefix(&prefix) {
                let label = self.label_selector.as_deref().unwrap_or("");
                let field = self.field_selector.as_deref().unwrap_or("");
                return if label.is_empty() && field.is_empty() {
                    anyhow!("{prefix}Unable to list \"/v1, Resource=pods\": {message}")
                } else {
                    anyhow!("{prefix}Unable to find \"/v1, Resource=pods\" that match label selector \"{label}\", field selector \"{field}\": {message}")
                };
            }
        }
        e
    }

    fn list_path(&self) -> String {
        let base = if self.all_namespaces {
            "/api/v1/pods".to_string()
        } else {
            format!("/api/v1/namespaces/{}/pods", encode(&self.namespace))
        };
        let q = self.selector_query(None);
        match q.strip_prefix('&') {
            Some(q) => format!("{base}?{q}"),
            None => base,
        }
    }
}

/// `peapod get pods [NAME] [-n NS | -A] [-o wide|yaml|json|name] [-w]`.
pub async fn get(client: &Client, args: GetArgs) -> Result<()> {
    if args.watch {
        return watch(client, &args).await;
    }
    let mut printer = Printer::new(&args);
    let mut out = String::new();
    match &args.name {
        Some(name) => {
            let value: Value = client.get_json(&pod_path(&args.namespace, name)).await?;
            let pod = to_pod(&value)?;
            out.push_str(&printer.print(&[(value, pod)], true)?);
        }
        None => {
            let path = args.list_path();
            // Tables need typed pods only: decode the list straight into
            // them (no JSON value tree per pod) unless the output is the
            // objects themselves.
            let pods: Vec<(Value, Pod)> = if matches!(args.output, Output::Json | Output::Yaml) {
                let list: Value = client
                    .get_json(&path)
                    .await
                    .map_err(|e| args.list_error(e))?;
                let items = match list.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    Some(Value::Null) | None => Vec::new(),
                    Some(_) => bail!("error: the daemon's PodList has no items array"),
                };
                let mut pods = Vec::with_capacity(items.len());
                for item in items {
                    let pod = to_pod(&item)?;
                    pods.push((item, pod));
                }
                pods
            } else {
                let list: TypedPodList = client
                    .get_json(&path)
                    .await
                    .map_err(|e| args.list_error(e))?;
                list.items.into_iter().map(|p| (Value::Null, p)).collect()
            };
            if pods.is_empty() && !matches!(args.output, Output::Json | Output::Yaml) {
                if args.all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", args.namespace);
                }
                return Ok(());
            }
            out.push_str(&printer.print(&pods, false)?);
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// `get -w`: the pods, then one row (or object) per watch event. The watch
/// starts at the list's resourceVersion; when the daemon answers it with
/// an ERROR event of code 410 (`Expired`: the version is older than the
/// changes it keeps, or this watcher fell behind), the pods are listed
/// again, what changed meanwhile is printed, and the watch resumes from
/// the new list.
async fn watch(client: &Client, args: &GetArgs) -> Result<()> {
    let list_path = args.list_path();
    let watch_base = if args.all_namespaces {
        "/api/v1/pods".to_string()
    } else {
        format!("/api/v1/namespaces/{}/pods", encode(&args.namespace))
    };
    let mut printer = Printer::new(args);
    let mut first = true;
    // What was printed last, by namespace/name: resourceVersion and object.
    let mut seen: HashMap<String, (String, Value)> = HashMap::new();
    let wanted = |pod: &Pod| {
        args.name
            .as_ref()
            .is_none_or(|n| pod.metadata.name.as_deref() == Some(n.as_str()))
    };
    loop {
        let list: Value = client
            .get_json(&list_path)
            .await
            .map_err(|e| args.list_error(e))?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut now: HashMap<String, (String, Value)> = HashMap::new();
        let mut out = String::new();
        for item in list["items"].as_array().cloned().unwrap_or_default() {
            let pod = to_pod(&item)?;
            if !wanted(&pod) {
                continue;
            }
            let (id, version) = identity(&pod);
            if seen.get(&id).map(|(v, _)| v) != Some(&version) {
                out.push_str(&printer.print_watch(item.clone(), pod, first)?);
                first = false;
            }
            now.insert(id, (version, item));
        }
        // Gone while the watch was down: printed as a watch prints DELETED.
        for (id, (_, item)) in &seen {
            if !now.contains_key(id) {
                out.push_str(&printer.print_watch(item.clone(), to_pod(item)?, first)?);
                first = false;
            }
        }
        seen = now;
        write_out(&out)?;

        let path = format!(
            "{watch_base}?watch=1&resourceVersion={}{}",
            encode(&rv),
            args.selector_query(args.name.as_ref().map(|n| format!("metadata.name={n}")))
        );
        let mut events = super::wait::WatchEvents::open(client, &path).await?;
        loop {
            let (kind, object) = match events.next().await? {
                super::wait::Event::Changed(kind, object) => (kind, object),
                super::wait::Event::Expired => break,
                super::wait::Event::End => return Ok(()),
            };
            let pod = to_pod(&object)?;
            if !wanted(&pod) {
                continue;
            }
            let (id, version) = identity(&pod);
            if kind == "DELETED" {
                seen.remove(&id);
            } else {
                seen.insert(id, (version, object.clone()));
            }
            let text = printer.print_watch(object, pod, first)?;
            first = false;
            write_out(&text)?;
        }
    }
}

/// The names of the pods in `namespace` that `label_selector` selects
/// (all with None), for `delete pods -l` / `--all`.
pub async fn pod_names(
    client: &Client,
    namespace: &str,
    label_selector: Option<&str>,
) -> Result<Vec<String>> {
    let args = GetArgs {
        namespace: namespace.to_string(),
        label_selector: label_selector.map(str::to_string),
        ..Default::default()
    };
    let list: TypedPodList = client.get_json(&args.list_path()).await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect())
}

/// `namespace/name` and resourceVersion of a pod.
fn identity(pod: &Pod) -> (String, String) {
    (
        format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        ),
        pod.metadata.resource_version.clone().unwrap_or_default(),
    )
}

fn write_out(text: &str) -> Result<()> {
    if text.is_empty() {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// A PodList decoded straight into typed pods.
#[derive(serde::Deserialize)]
struct TypedPodList {
    #[serde(default)]
    items: Vec<Pod>,
}

fn to_pod(value: &Value) -> Result<Pod> {
    <Pod as serde::Deserialize>::deserialize(value)
        .map_err(|e| anyhow!("error: the daemon returned a pod that does not decode: {e}"))
}

/// Prints pods in the chosen output format.
struct Printer {
    output: Output,
    all_namespaces: bool,
    show_labels: bool,
    table: Table,
    hostname: String,
    now: DateTime<Utc>,
}

impl Printer {
    fn new(args: &GetArgs) -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "<none>".to_string());
        Printer {
            output: args.output,
            all_namespaces: args.all_namespaces,
            show_labels: args.show_labels,
            table: Table::kubectl(),
            hostname,
            now: Utc::now(),
        }
    }

    /// Prints pods; `single` when one pod was asked for by name (JSON and
    /// YAML then print the object rather than a `List`).
    fn print(&mut self, pods: &[(Value, Pod)], single: bool) -> Result<String> {
        match self.output {
            Output::Json | Output::Yaml => {
                let value = match (single, pods) {
                    (true, [(value, _)]) => value.clone(),
                    _ => list(pods.iter().map(|(v, _)| v.clone()).collect()),
                };
                self.encode(&value)
            }
            Output::Name => Ok(pods
                .iter()
                .map(|(_, pod)| format!("pod/{}\n", pod.metadata.name.as_deref().unwrap_or("")))
                .collect()),
            Output::Default | Output::Wide => {
                let mut rows = vec![self.header()];
                rows.extend(pods.iter().map(|(_, pod)| self.row(pod)));
                Ok(self.table.render(&rows))
            }
        }
    }

    fn print_watch(&mut self, value: Value, pod: Pod, first: bool) -> Result<String> {
        self.now = Utc::now();
        match self.output {
            Output::Json | Output::Yaml => {
                let text = self.encode(&value)?;
                // kubectl separates watched YAML objects with `---`.
                if self.output == Output::Yaml {
                    Ok(format!("---\n{text}"))
                } else {
                    Ok(text)
                }
            }
            Output::Name => self.print(&[(value, pod)], true),
            Output::Default | Output::Wide => {
                let mut rows = Vec::new();
                if first {
                    rows.push(self.header());
                }
                rows.push(self.row(&pod));
                Ok(self.table.render(&rows))
            }
        }
    }

    fn encode(&self, value: &Value) -> Result<String> {
        match self.output {
            Output::Yaml => serde_yaml_ng::to_string(value)
                .map_err(|e| anyhow!("error: cannot print YAML: {e}")),
            _ => Ok(format!("{}\n", to_json_pretty(value)?)),
        }
    }

    fn header(&self) -> Vec<String> {
        let mut header = Vec::new();
        if self.all_namespaces {
            header.push("NAMESPACE");
        }
        header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        if self.output == Output::Wide {
            header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
        }
        if self.show_labels {
            header.push("LABELS");
        }
        header.into_iter().map(String::from).collect()
    }

    fn row(&self, pod: &Pod) -> Vec<String> {
        let mut row = pod_row(
            pod,
            self.all_namespaces,
            self.output == Output::Wide,
            &self.hostname,
            self.now,
        );
        if self.show_labels {
            row.push(labels_column(pod.metadata.labels.as_ref()));
        }
        row
    }
}

/// One row of `get pods`.
pub fn pod_row(
    pod: &Pod,
    all_namespaces: bool,
    wide: bool,
    hostname: &str,
    now: DateTime<Utc>,
) -> Vec<String> {
    let summary = summarize(pod);
    let mut row = Vec::new();
    if all_namespaces {
        row.push(pod.metadata.namespace.clone().unwrap_or_default());
    }
    row.push(pod.metadata.name.clone().unwrap_or_default());
    row.push(format!("{}/{}", summary.ready, summary.total));
    row.push(summary.reason.clone());
    row.push(summary.restarts_column(now));
    row.push(age(pod.metadata.creation_timestamp.as_ref(), now));
    if wide {
        let status = pod.status.as_ref();
        let spec = pod.spec.as_ref();
        let none = || "<none>".to_string();
        row.push(
            status
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(none),
        );
        row.push(
            spec.and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| hostname.to_string()),
        );
        row.push(
            status
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(none),
        );
        let gates = spec
            .and_then(|s| s.readiness_gates.as_deref())
            .unwrap_or(&[]);
        if gates.is_empty() {
            row.push(none());
        } else {
            let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
            let ready = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == g.condition_type && c.status == "True")
                })
                .count();
            row.push(format!("{ready}/{}", gates.len()));
        }
    }
    row
}

/// kubectl's LABELS column: `k=v` sorted by key, joined by `,`; `<none>`.
pub fn labels_column(labels: Option<&std::collections::BTreeMap<String, String>>) -> String {
    match labels {
        Some(l) if !l.is_empty() => l
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_string(),
    }
}

/// kubectl's `List` wrapper for several objects.
fn list(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// JSON indented by four spaces, as kubectl prints it.
pub fn to_json_pretty(value: &Value) -> Result<String> {
    use serde::Serialize;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| anyhow!("error: cannot print JSON: {e}"))?;
    String::from_utf8(out).map_err(|e| anyhow!("error: cannot print JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{e}"),
        }
    }

    fn pod(name: &str, ns: &str) -> Pod {
        let value = json!({
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "podIP": "10.88.0.7", "containerStatuses": [
                {"name": "c", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"running": {}}}
            ]}
        });
        match serde_json::from_value(value) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn rows_and_table() {
        let now = at("2024-01-01T00:02:03Z");
        let mut table = Table::kubectl();
        let header: Vec<String> = ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
            .into_iter()
            .map(String::from)
            .collect();
        let rows = vec![
            header,
            pod_row(&pod("web", "default"), true, false, "host", now),
            pod_row(&pod("database-0", "prod"), true, false, "host", now),
        ];
        assert_eq!(
            table.render(&rows),
            "NAMESPACE   NAME         READY   STATUS    RESTARTS   AGE\n\
             default     web          1/1     Running   0          2m3s\n\
             prod        database-0   1/1     Running   0          2m3s\n"
        );
        let wide = pod_row(&pod("web", "default"), false, true, "host", now);
        assert_eq!(
            wide,
            vec![
                "web",
                "1/1",
                "Running",
                "0",
                "2m3s",
                "10.88.0.7",
                "host",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn output_formats() {
        assert_eq!("wide".parse::<Output>().ok(), Some(Output::Wide));
        assert_eq!("".parse::<Output>().ok(), Some(Output::Default));
        assert!("xml".parse::<Output>().is_err());
        assert_eq!(Output::parse(None).ok(), Some(Output::Default));
        assert_eq!(Output::parse(Some("json")).ok(), Some(Output::Json));
        let text = match to_json_pretty(&list(vec![json!({"a": 1})])) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert!(text.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {"));
    }
}
