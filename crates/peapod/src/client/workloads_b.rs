//! kubectl's table columns for Jobs, CronJobs, StatefulSets, DaemonSets,
//! PersistentVolumes, PersistentVolumeClaims and StorageClasses (kubectl
//! 1.29+ printers), used by `get` through `workloads::columns`.

use chrono::{DateTime, Utc};
use peapod_api::Kind;
use serde_json::Value;

use super::table::{age, human_duration};

type Row = fn(&Value, DateTime<Utc>) -> Vec<String>;

fn int(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn text(v: &Value, path: &str) -> Option<String> {
    v.pointer(path).and_then(Value::as_str).map(String::from)
}

fn name(v: &Value) -> String {
    text(v, "/metadata/name").unwrap_or_default()
}

fn time(v: &Value, path: &str) -> Option<DateTime<Utc>> {
    v.pointer(path)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn created(v: &Value, now: DateTime<Utc>) -> String {
    let t = v
        .pointer("/metadata/creationTimestamp")
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    age(t.as_ref(), now)
}

fn has_condition(v: &Value, type_: &str) -> bool {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// A Job's STATUS: Complete, Failed, Terminating, Suspended or Running.
pub fn job_status(v: &Value) -> String {
    if has_condition(v, "Complete") {
        "Complete"
    } else if has_condition(v, "Failed") {
        "Failed"
    } else if v.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has_condition(v, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(v, "Suspended") {
        "Suspended"
    } else {
        "Running"
    }
    .into()
}

/// A Job's COMPLETIONS: `succeeded/completions` (`n/1 of P` for a work
/// queue Job with parallelism P > 1).
pub fn job_completions(v: &Value) -> String {
    let done = int(v, "/status/succeeded");
    match v.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{done}/{c}"),
        None => {
            let p = v
                .pointer("/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if p > 1 {
                format!("{done}/1 of {p}")
            } else {
                format!("{done}/1")
            }
        }
    }
}

/// A Job's DURATION: from startTime to completionTime (or now).
pub fn job_duration(v: &Value, now: DateTime<Utc>) -> String {
    let Some(start) = time(v, "/status/startTime") else {
        return String::new();
    };
    let end = time(v, "/status/completionTime").unwrap_or(now);
    human_duration(end - start)
}

fn access_modes(v: &Value, path: &str) -> String {
    v.pointer(path)
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The header and rows of the kinds above.
pub fn columns(k: &Kind) -> (Vec<&'static str>, Row) {
    match k.plural {
        "cronjobs" => (
            vec![
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE",
            ],
            |v, now| {
                vec![
                    name(v),
                    text(v, "/spec/schedule").unwrap_or_default(),
                    text(v, "/spec/timeZone").unwrap_or_else(|| "<none>".into()),
                    v.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                        .replace("true", "True")
                        .replace("false", "False"),
                    v.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                        .to_string(),
                    time(v, "/status/lastScheduleTime")
                        .map(|t| human_duration(now - t))
                        .unwrap_or_else(|| "<none>".into()),
                    created(v, now),
                ]
            },
        ),
        "statefulsets" => (vec!["NAME", "READY", "AGE"], |v, now| {
            vec![
                name(v),
                format!(
                    "{}/{}",
                    int(v, "/status/readyReplicas"),
                    v.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                created(v, now),
            ]
        }),
        "daemonsets" => (
            vec![
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
            |v, now| {
                let sel = v
                    .pointer("/spec/template/spec/nodeSelector")
                    .and_then(Value::as_object)
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    name(v),
                    int(v, "/status/desiredNumberScheduled").to_string(),
                    int(v, "/status/currentNumberScheduled").to_string(),
                    int(v, "/status/numberReady").to_string(),
                    int(v, "/status/updatedNumberScheduled").to_string(),
                    int(v, "/status/numberAvailable").to_string(),
                    sel,
                    created(v, now),
                ]
            },
        ),
        "persistentvolumes" => (
            vec![
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            |v, now| {
                let claim = match (
                    text(v, "/spec/claimRef/namespace"),
                    text(v, "/spec/claimRef/name"),
                ) {
                    (Some(ns), Some(n)) => format!("{ns}/{n}"),
                    _ => String::new(),
                };
                vec![
                    name(v),
                    text(v, "/spec/capacity/storage").unwrap_or_default(),
                    access_modes(v, "/spec/accessModes"),
                    text(v, "/spec/persistentVolumeReclaimPolicy").unwrap_or_default(),
                    text(v, "/status/phase").unwrap_or_default(),
                    claim,
                    text(v, "/spec/storageClassName").unwrap_or_default(),
                    text(v, "/spec/volumeAttributesClassName").unwrap_or_else(|| "<unset>".into()),
                    text(v, "/status/reason").unwrap_or_default(),
                    created(v, now),
                ]
            },
        ),
        "persistentvolumeclaims" => (
            vec![
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            |v, now| {
                vec![
                    name(v),
                    text(v, "/status/phase").unwrap_or_else(|| "Pending".into()),
                    text(v, "/spec/volumeName").unwrap_or_default(),
                    text(v, "/status/capacity/storage").unwrap_or_default(),
                    access_modes(v, "/status/accessModes"),
                    text(v, "/spec/storageClassName").unwrap_or_default(),
                    text(v, "/spec/volumeAttributesClassName").unwrap_or_else(|| "<unset>".into()),
                    created(v, now),
                ]
            },
        ),
        "storageclasses" => (
            vec![
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE",
            ],
            |v, now| {
                let default = text(
                    v,
                    "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
                )
                .is_some_and(|s| s == "true");
                vec![
                    if default {
                        format!("{} (default)", name(v))
                    } else {
                        name(v)
                    },
                    text(v, "/provisioner").unwrap_or_default(),
                    text(v, "/reclaimPolicy").unwrap_or_else(|| "Delete".into()),
                    text(v, "/volumeBindingMode").unwrap_or_else(|| "Immediate".into()),
                    v.pointer("/allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string(),
                    created(v, now),
                ]
            },
        ),
        _ => (vec!["NAME", "AGE"], |v, now| vec![name(v), created(v, now)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_columns_as_kubectl() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let running = json!({ "spec": { "completions": 5, "parallelism": 2 }, "status": { "succeeded": 3, "startTime": "2024-01-01T00:09:00Z" } });
        assert_eq!(job_status(&running), "Running");
        assert_eq!(job_completions(&running), "3/5");
        assert_eq!(job_duration(&running, now), "60s");
        let done = json!({ "spec": { "parallelism": 3 }, "status": { "succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:00:42Z", "conditions": [{ "type": "Complete", "status": "True" }] } });
        assert_eq!(job_status(&done), "Complete");
        assert_eq!(job_completions(&done), "1/1 of 3");
        assert_eq!(job_duration(&done, now), "42s");
        let failed = json!({ "spec": {}, "status": { "conditions": [{ "type": "Failed", "status": "True" }] } });
        assert_eq!(job_status(&failed), "Failed");
        assert_eq!(job_duration(&failed, now), "");
    }
}
