//! The kinds of `peapod_api::KINDS` (Deployments, ReplicaSets, Jobs, ...)
//! on the command line: `get KIND [NAME]` with kubectl's columns per kind
//! (a NAME AGE table for a kind without its own), `-o yaml|json|name`, and
//! `describe KIND NAME`.
//!
//! A kind gets its columns by adding an arm to [`columns`] and its
//! describe text in [`describe_text`].

use anyhow::Result;
use chrono::{DateTime, Utc};
use peapod_api::Kind;
use serde_json::Value;

use super::config::{one_or_list, structured};
use super::get::Output;
use super::table::{age, tabwrite, Table};
use super::transport::{encode, Client};

/// The kind a CLI word names (`deploy`, `rs`, `jobs`, ...).
pub fn kind(word: &str) -> Option<&'static Kind> {
    peapod_api::kind_named(word)
}

/// `/apis/apps/v1/namespaces/NS/deployments` (every namespace's when
/// `ns` is None, or for cluster-scoped kinds).
pub fn collection_path(k: &Kind, ns: Option<&str>) -> String {
    match ns.filter(|_| k.namespaced) {
        Some(ns) => format!("{}/namespaces/{}/{}", k.group_path(), encode(ns), k.plural),
        None => format!("{}/{}", k.group_path(), k.plural),
    }
}

/// The path of one object of kind `k`.
pub fn object_path(k: &Kind, ns: &str, name: &str) -> String {
    format!("{}/{}", collection_path(k, Some(ns)), encode(name))
}

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

/// The header and row function of kind `k`'s table (without NAMESPACE).
type Row = fn(&Value, DateTime<Utc>) -> Vec<String>;

pub fn columns(k: &Kind) -> (Vec<&'static str>, Row) {
    match k.plural {
        "deployments" => (
            vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            |v, now| {
                vec![
                    name(v),
                    format!(
                        "{}/{}",
                        int(v, "/status/readyReplicas"),
                        int(v, "/spec/replicas")
                    ),
                    int(v, "/status/updatedReplicas").to_string(),
                    int(v, "/status/availableReplicas").to_string(),
                    created(v, now),
                ]
            },
        ),
        "replicasets" => (
            vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            |v, now| {
                vec![
                    name(v),
                    int(v, "/spec/replicas").to_string(),
                    int(v, "/status/replicas").to_string(),
                    int(v, "/status/readyReplicas").to_string(),
                    created(v, now),
                ]
            },
        ),
        "horizontalpodautoscalers" => (
            vec![
                "NAME",
                "REFERENCE",
                "TARGETS",
                "MINPODS",
                "MAXPODS",
                "REPLICAS",
                "AGE",
            ],
            |v, now| {
                vec![
                    name(v),
                    format!(
                        "{}/{}",
                        v.pointer("/spec/scaleTargetRef/kind")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        v.pointer("/spec/scaleTargetRef/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    ),
                    hpa_targets(v),
                    int(v, "/spec/minReplicas").max(1).to_string(),
                    int(v, "/spec/maxReplicas").to_string(),
                    int(v, "/status/currentReplicas").to_string(),
                    created(v, now),
                ]
            },
        ),
        "jobs" => (
            vec!["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            |v, now| {
                vec![
                    name(v),
                    super::workloads_b::job_status(v),
                    super::workloads_b::job_completions(v),
                    super::workloads_b::job_duration(v, now),
                    created(v, now),
                ]
            },
        ),
        "cronjobs"
        | "statefulsets"
        | "daemonsets"
        | "persistentvolumes"
        | "persistentvolumeclaims"
        | "storageclasses" => super::workloads_b::columns(k),
        _ => (vec!["NAME", "AGE"], |v, now| vec![name(v), created(v, now)]),
    }
}

/// kubectl's TARGETS of an HPA: `cpu: 45%/50%, memory: 30Mi/64Mi`, with
/// `<unknown>` before the first reading.
fn hpa_targets(v: &Value) -> String {
    let specs = v
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current = v
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parts: Vec<String> = specs
        .iter()
        .map(|m| {
            let source = m.get("resource").or_else(|| m.get("containerResource"));
            let resource = source
                .and_then(|r| r["name"].as_str())
                .unwrap_or("<unknown>");
            let target = source.map(|r| &r["target"]).unwrap_or(&Value::Null);
            let cur = current
                .iter()
                .find(|c| c.pointer("/resource/name").and_then(Value::as_str) == Some(resource))
                .map(|c| &c["resource"]["current"]);
            if let Some(u) = target["averageUtilization"].as_i64() {
                let now = cur
                    .and_then(|c| c["averageUtilization"].as_i64())
                    .map_or("<unknown>".to_string(), |c| format!("{c}%"));
                format!("{resource}: {now}/{u}%")
            } else {
                let want = target["averageValue"].as_str().unwrap_or("<unknown>");
                let now = cur
                    .and_then(|c| c["averageValue"].as_str())
                    .unwrap_or("<unknown>");
                format!("{resource}: {now}/{want}")
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(", ")
    }
}

fn name(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn created(v: &Value, now: DateTime<Utc>) -> String {
    let t = v
        .pointer("/metadata/creationTimestamp")
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    age(t.as_ref(), now)
}

/// `-o wide` adds CONTAINERS IMAGES SELECTOR for kinds with a pod template.
fn wide_columns(v: &Value) -> Option<Vec<String>> {
    let containers = v.pointer("/spec/template/spec/containers")?.as_array()?;
    let list = |f: &str| {
        containers
            .iter()
            .map(|c| c[f].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    Some(vec![
        list("name"),
        list("image"),
        selector_text(v.pointer("/spec/selector")),
    ])
}

/// The table of `items` (`wide`: with CONTAINERS IMAGES SELECTOR).
pub fn table(
    k: &Kind,
    items: &[Value],
    all_namespaces: bool,
    wide: bool,
    now: DateTime<Utc>,
) -> String {
    let (mut head, row) = columns(k);
    let wide = wide && items.iter().any(|v| wide_columns(v).is_some());
    if wide {
        head.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
    }
    let mut rows = Vec::with_capacity(items.len() + 1);
    let mut h: Vec<String> = Vec::new();
    if all_namespaces {
        h.push("NAMESPACE".into());
    }
    h.extend(head.iter().map(|s| s.to_string()));
    rows.push(h);
    for v in items {
        let mut r = Vec::new();
        if all_namespaces {
            r.push(
                v.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
        }
        r.extend(row(v, now));
        if wide {
            r.extend(wide_columns(v).unwrap_or_else(|| vec!["<none>".into(); 3]));
        }
        rows.push(r);
    }
    Table::kubectl().render(&rows)
}

/// `peapod get KIND [NAME]`.
pub async fn get(
    client: &Client,
    k: &Kind,
    name: Option<&str>,
    namespace: &str,
    all_namespaces: bool,
    output: Output,
    selector: Option<&str>,
) -> Result<()> {
    let all_namespaces = all_namespaces && name.is_none();
    let mut list = collection_path(k, (!all_namespaces).then_some(namespace));
    if let Some(s) = selector {
        list.push_str(&format!("?labelSelector={}", encode(s)));
    }
    let one = name.map(|n| object_path(k, namespace, n));
    let (items, single) = one_or_list(client, one, &list).await?;
    let out = match output {
        Output::Json | Output::Yaml => structured(items, single, output)?,
        Output::Name => items
            .iter()
            .map(|v| format!("{}/{}\n", k.qualified(), name_of(v)))
            .collect(),
        Output::Default | Output::Wide => {
            if items.is_empty() {
                if all_namespaces || !k.namespaced {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {namespace} namespace.");
                }
                return Ok(());
            }
            table(
                k,
                &items,
                all_namespaces,
                output == Output::Wide,
                Utc::now(),
            )
        }
    };
    print!("{out}");
    Ok(())
}

/// The names of the objects of kind `k` in `namespace` that `selector`
/// selects (all without one): for `delete KIND -l SEL` and `--all`.
pub async fn names(
    client: &Client,
    k: &Kind,
    namespace: &str,
    selector: Option<&str>,
) -> Result<Vec<String>> {
    let mut path = collection_path(k, Some(namespace));
    if let Some(s) = selector {
        path.push_str(&format!("?labelSelector={}", encode(s)));
    }
    let (items, _) = one_or_list(client, None, &path).await?;
    Ok(items.iter().map(name).collect())
}

fn name_of(v: &Value) -> String {
    name(v)
}

/// `peapod describe KIND NAME`.
pub async fn describe(client: &Client, k: &Kind, namespace: &str, name: &str) -> Result<()> {
    let obj: Value = client.get_json(&object_path(k, namespace, name)).await?;
    let mut text = describe_text(k, &obj);
    if k.kind == "Deployment" {
        if let Some(rs_kind) = kind("rs") {
            let list: Value = client
                .get_json(&collection_path(rs_kind, Some(namespace)))
                .await?;
            text.push_str(&replica_sets_text(&obj, &list));
        }
    }
    // Events of the object, when the daemon records any.
    let events_path = format!(
        "/api/v1/namespaces/{}/events?fieldSelector={}",
        encode(namespace),
        encode(&format!(
            "involvedObject.name={name},involvedObject.kind={}",
            k.kind
        ))
    );
    let events: Vec<Value> = client
        .get_json::<Value>(&events_path)
        .await
        .ok()
        .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(name)
                && e.pointer("/involvedObject/kind").and_then(Value::as_str) == Some(k.kind)
        })
        .collect();
    if events.is_empty() {
        text.push_str("Events:\t<none>\n");
    } else {
        text.push_str(
            "Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n",
        );
        let now = Utc::now();
        for e in events {
            let at = e
                .get("lastTimestamp")
                .or_else(|| e.get("eventTime"))
                .and_then(|t| serde_json::from_value(t.clone()).ok());
            text.push_str(&format!(
                "  {}\t{}\t{}\t{}\t{}\n",
                e["type"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or(""),
                age(at.as_ref(), now),
                e.pointer("/source/component")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            ));
        }
    }
    print!("{}", tabwrite(&text, 0, 2));
    Ok(())
}

/// kubectl's `OldReplicaSets:` and `NewReplicaSet:` lines of a
/// Deployment (`web-abc (3/3 replicas created)`), from the ReplicaSets it
/// controls; the new one has the Deployment's revision.
pub fn replica_sets_text(d: &Value, list: &Value) -> String {
    let uid = d
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let rev = |v: &Value| {
        v.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let current = rev(d);
    let mut old = Vec::new();
    let mut new = Vec::new();
    for rs in list["items"].as_array().into_iter().flatten() {
        let owned = rs
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| r["controller"].as_bool() == Some(true) && r["uid"].as_str() == Some(uid));
        if !owned {
            continue;
        }
        let line = format!(
            "{} ({}/{} replicas created)",
            name(rs),
            int(rs, "/status/replicas"),
            int(rs, "/spec/replicas")
        );
        if !current.is_empty() && rev(rs) == current {
            new.push(line);
        } else {
            old.push(line);
        }
    }
    let join = |v: Vec<String>| {
        if v.is_empty() {
            "<none>".to_string()
        } else {
            v.join(", ")
        }
    };
    format!(
        "OldReplicaSets:\t{}\nNewReplicaSet:\t{}\n",
        join(old),
        join(new)
    )
}

fn map_text(v: Option<&Value>, sep: &str) -> String {
    match v.and_then(Value::as_object).filter(|m| !m.is_empty()) {
        None => "<none>".into(),
        Some(m) => m
            .iter()
            .map(|(k, v)| format!("{k}{sep}{}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n\t"),
    }
}

/// A selector as kubectl prints it: `app=web,tier in (a,b)`.
pub fn selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn template_text(t: Option<&Value>) -> String {
    let Some(t) = t else {
        return String::new();
    };
    let mut s = format!(
        "Pod Template:\n  Labels:\t{}\n  Containers:\n",
        map_text(t.pointer("/metadata/labels"), "=").replace("\n\t", "\n\t\t")
    );
    for c in t
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        s.push_str(&format!(
            "   {}:\n    Image:\t{}\n",
            c["name"].as_str().unwrap_or(""),
            c["image"].as_str().unwrap_or("")
        ));
        if let Some(cmd) = c.get("command").and_then(Value::as_array) {
            let cmd: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
            s.push_str(&format!("    Command:\t{}\n", cmd.join(" ")));
        }
    }
    s
}

fn conditions_text(v: &Value) -> String {
    let Some(conds) = v.pointer("/status/conditions").and_then(Value::as_array) else {
        return String::new();
    };
    let mut s = String::from("Conditions:\n  Type\tStatus\tReason\n  ----\t------\t------\n");
    for c in conds {
        s.push_str(&format!(
            "  {}\t{}\t{}\n",
            c["type"].as_str().unwrap_or(""),
            c["status"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or("")
        ));
    }
    s
}

/// The text of `describe` (before Events) for an object of kind `k`.
pub fn describe_text(k: &Kind, v: &Value) -> String {
    let meta = |f: &str| {
        v.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut s = format!("Name:\t{}\n", meta("name"));
    if k.namespaced {
        s.push_str(&format!("Namespace:\t{}\n", meta("namespace")));
    }
    s.push_str(&format!(
        "CreationTimestamp:\t{}\nLabels:\t{}\nAnnotations:\t{}\n",
        meta("creationTimestamp"),
        map_text(v.pointer("/metadata/labels"), "="),
        map_text(v.pointer("/metadata/annotations"), ": ")
    ));
    match k.plural {
        "deployments" => {
            let st = |f: &str| int(v, &format!("/status/{f}"));
            let desired = int(v, "/spec/replicas");
            s.push_str(&format!(
                "Selector:\t{}\nReplicas:\t{desired} desired | {} updated | {} total | {} available | {} unavailable\nStrategyType:\t{}\nMinReadySeconds:\t{}\n",
                selector_text(v.pointer("/spec/selector")),
                st("updatedReplicas"),
                st("replicas"),
                st("availableReplicas"),
                st("unavailableReplicas"),
                v.pointer("/spec/strategy/type").and_then(Value::as_str).unwrap_or(""),
                int(v, "/spec/minReadySeconds"),
            ));
            if let Some(ru) = v.pointer("/spec/strategy/rollingUpdate") {
                let f = |x: &Value| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                s.push_str(&format!(
                    "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                    f(&ru["maxUnavailable"]),
                    f(&ru["maxSurge"])
                ));
            }
            s.push_str(&template_text(v.pointer("/spec/template")));
            s.push_str(&conditions_text(v));
        }
        "replicasets" => {
            s.push_str(&format!(
                "Selector:\t{}\nReplicas:\t{} current / {} desired\nPods Status:\t{} Ready / {} Available\n",
                selector_text(v.pointer("/spec/selector")),
                int(v, "/status/replicas"),
                int(v, "/spec/replicas"),
                int(v, "/status/readyReplicas"),
                int(v, "/status/availableReplicas"),
            ));
            if let Some(owner) = v
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|r| r.iter().find(|r| r["controller"].as_bool() == Some(true)))
            {
                s.push_str(&format!(
                    "Controlled By:\t{}/{}\n",
                    owner["kind"].as_str().unwrap_or(""),
                    owner["name"].as_str().unwrap_or("")
                ));
            }
            s.push_str(&template_text(v.pointer("/spec/template")));
            s.push_str(&conditions_text(v));
        }
        _ => {
            for part in ["spec", "status"] {
                if let Some(x) = v.get(part).filter(|x| !x.is_null()) {
                    let yaml = serde_yaml_ng::to_string(x).unwrap_or_default();
                    let title = if part == "spec" { "Spec" } else { "Status" };
                    s.push_str(&format!("{title}:\n"));
                    for line in yaml.lines() {
                        s.push_str(&format!("  {line}\n"));
                    }
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_and_replicaset_columns() {
        let now = Utc::now();
        let d = json!({ "metadata": { "name": "web" }, "spec": { "replicas": 3 }, "status": { "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2 } });
        let k = kind("deploy").expect("deploy");
        let out = table(k, &[d], false, false, now);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        );
        assert_eq!(lines[1][..4], ["web", "2/3", "3", "2"]);
        let rs = json!({ "metadata": { "name": "web-abc", "namespace": "ns" }, "spec": { "replicas": 3 }, "status": { "replicas": 3, "readyReplicas": 1 } });
        let out = table(kind("rs").expect("rs"), &[rs], true, false, now);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["NAMESPACE", "NAME", "DESIRED", "CURRENT", "READY", "AGE"]
        );
        assert_eq!(lines[1][..5], ["ns", "web-abc", "3", "3", "1"]);
        let d = json!({ "metadata": { "name": "web" }, "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "web" } },
            "template": { "spec": { "containers": [{ "name": "a", "image": "busybox" }, { "name": "b", "image": "nginx" }] } } } });
        let out = table(kind("deploy").expect("deploy"), &[d], false, true, now);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0][5..], ["CONTAINERS", "IMAGES", "SELECTOR"]);
        assert_eq!(lines[1][5..], ["a,b", "busybox,nginx", "app=web"]);
        let j = table(
            kind("job").expect("job"),
            &[json!({ "metadata": { "name": "j" } })],
            false,
            false,
            now,
        );
        assert!(j.starts_with("NAME"), "{j}");
    }

    #[test]
    fn old_and_new_replica_sets_of_a_deployment() {
        let d = json!({ "metadata": { "uid": "u1", "annotations": { "deployment.kubernetes.io/revision": "2" } } });
        let rs = |n: &str, rev: &str, owner: &str, r: i64| {
            json!({
            "metadata": { "name": n, "annotations": { "deployment.kubernetes.io/revision": rev },
                          "ownerReferences": [{ "uid": owner, "controller": true }] },
            "spec": { "replicas": r }, "status": { "replicas": r } })
        };
        let list = json!({ "items": [rs("web-a", "1", "u1", 0), rs("web-b", "2", "u1", 3), rs("other", "2", "u2", 1)] });
        assert_eq!(
            replica_sets_text(&d, &list),
            "OldReplicaSets:\tweb-a (0/0 replicas created)\nNewReplicaSet:\tweb-b (3/3 replicas created)\n"
        );
    }

    #[test]
    fn selectors_print_as_kubectl() {
        let s = json!({ "matchLabels": { "app": "web" }, "matchExpressions": [{ "key": "t", "operator": "In", "values": ["a", "b"] }] });
        assert_eq!(selector_text(Some(&s)), "app=web,t in (a,b)");
        assert_eq!(
            collection_path(kind("deploy").expect("k"), Some("default")),
            "/apis/apps/v1/namespaces/default/deployments"
        );
    }
}
