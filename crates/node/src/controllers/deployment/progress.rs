//! A Deployment's status (kube's `deployment/sync.go` calculateStatus and
//! `progress.go`): replica counts from its ReplicaSets, the Available
//! condition (at least `replicas - maxUnavailable` available), and the
//! Progressing condition with progressDeadlineSeconds (False,
//! ProgressDeadlineExceeded, when no progress was made for that long).

use crate::controllers::replicaset::to_chrono;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// What happened in this sync, for the Progressing condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Nothing,
    /// A new ReplicaSet was created for the template.
    NewReplicaSetCreated,
    /// An existing ReplicaSet became the new one (rollback, rollover back).
    FoundNewReplicaSet,
}

pub fn time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

fn rs_name(rs: Option<&ReplicaSet>) -> String {
    rs.and_then(|r| r.metadata.name.clone()).unwrap_or_default()
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

/// Whether the rollout is complete (`DeploymentComplete`).
pub fn complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    st.updated_replicas == Some(want)
        && st.replicas == Some(want)
        && st.available_replicas == Some(want)
        && st.observed_generation >= d.metadata.generation
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(time(now)),
        last_transition_time: Some(time(now)),
    }
}

/// Put `c` in `conds`, keeping the transition time when the status is
/// unchanged (and the update time too when nothing else changed).
fn set(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(old) = conds.iter().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
            if old.reason == c.reason && old.message == c.message {
                c.last_update_time = old.last_update_time.clone();
            }
        }
    }
    conds.retain(|o| o.type_ != c.type_);
    conds.push(c);
}

/// The Deployment's new status, and when to look again (the progress
/// deadline).
pub fn compute(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    all: &[ReplicaSet],
    max_unavailable: i32,
    event: Event,
    now: DateTime<Utc>,
) -> (DeploymentStatus, Option<Duration>) {
    let spec = d.spec.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1);
    let prev = d.status.clone().unwrap_or_default();
    let (mut total, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        let (t, r, a) = status_of(rs);
        total += t;
        ready += r;
        available += a;
    }
    let updated = new_rs.map(|r| status_of(r).0).unwrap_or(0);
    let mut st = DeploymentStatus {
        replicas: Some(total),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((want - available).max(0)),
        observed_generation: d.metadata.generation,
        collision_count: prev.collision_count,
        terminating_replicas: None,
        conditions: None,
    };
    let mut conds = prev.conditions.clone().unwrap_or_default();
    if available >= want - max_unavailable {
        set(
            &mut conds,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set(
            &mut conds,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    // ReplicaFailure mirrors the new ReplicaSet's.
    conds.retain(|c| c.type_ != "ReplicaFailure");
    if let Some(f) = new_rs
        .and_then(|r| r.status.as_ref()?.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "ReplicaFailure"))
    {
        conds.push(DeploymentCondition {
            type_: "ReplicaFailure".into(),
            status: f.status.clone(),
            reason: f.reason.clone(),
            message: f.message.clone(),
            last_update_time: Some(time(now)),
            last_transition_time: f.last_transition_time.clone(),
        });
    }
    let name = rs_name(new_rs);
    let mut requeue = None;
    let paused = spec.paused.unwrap_or(false);
    let deadline = spec.progress_deadline_seconds;
    let progressing = conds.iter().find(|c| c.type_ == "Progressing").cloned();
    if paused {
        set(
            &mut conds,
            condition(
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if let Some(deadline) = deadline {
        let was_paused = progressing
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"));
        if complete(d, &st) {
            set(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{name}\" has successfully progressed."),
                    now,
                ),
            );
        } else if was_paused {
            set(
                &mut conds,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed".into(),
                    now,
                ),
            );
        } else if event == Event::NewReplicaSetCreated {
            set(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    format!("Created new replica set \"{name}\""),
                    now,
                ),
            );
        } else if event == Event::FoundNewReplicaSet {
            set(
                &mut conds,
                condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    format!("Found new replica set \"{name}\""),
                    now,
                ),
            );
        } else {
            let made_progress = st.updated_replicas > prev.updated_replicas
                || st.ready_replicas > prev.ready_replicas
                || st.available_replicas > prev.available_replicas
                || prev.replicas.unwrap_or(0) - prev.updated_replicas.unwrap_or(0)
                    > total - updated
                || progressing
                    .as_ref()
                    .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
            if made_progress {
                set(
                    &mut conds,
                    condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        format!("ReplicaSet \"{name}\" is progressing."),
                        now,
                    ),
                );
                // Progress moves the deadline.
                if let Some(x) = conds.iter_mut().find(|x| x.type_ == "Progressing") {
                    x.last_update_time = Some(time(now));
                }
            }
            let cur = conds.iter().find(|c| c.type_ == "Progressing").cloned();
            if let Some(c) = cur.filter(|c| c.status == "True") {
                let since = c.last_update_time.as_ref().map(to_chrono).unwrap_or(now);
                let at = since + chrono::Duration::seconds(deadline as i64);
                if at <= now {
                    set(
                        &mut conds,
                        condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            format!("ReplicaSet \"{name}\" has timed out progressing."),
                            now,
                        ),
                    );
                }
            }
        }
        // Look again at the deadline while the rollout goes on.
        if !complete(d, &st) {
            if let Some(c) = conds
                .iter()
                .find(|c| c.type_ == "Progressing" && c.status != "False")
            {
                let since = c.last_update_time.as_ref().map(to_chrono).unwrap_or(now);
                let at = since + chrono::Duration::seconds(deadline as i64);
                requeue = Some(
                    (at - now)
                        .to_std()
                        .unwrap_or_default()
                        .max(Duration::from_millis(100))
                        + Duration::from_secs(1),
                );
            }
        }
    }
    // Available first, as the API server keeps them.
    conds.sort_by_key(|c| match c.type_.as_str() {
        "Available" => 0,
        "Progressing" => 1,
        _ => 2,
    });
    st.conditions = (!conds.is_empty()).then_some(conds);
    (st, requeue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i32, deadline: i32, status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web", "generation": 2 },
            "spec": { "replicas": replicas, "progressDeadlineSeconds": deadline, "selector": {}, "template": {} },
            "status": status,
        }))
        .expect("deployment")
    }

    fn rs(name: &str, replicas: i32, ready: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "status": { "replicas": replicas, "readyReplicas": ready, "availableReplicas": available },
        }))
        .expect("rs")
    }

    fn cond<'a>(st: &'a DeploymentStatus, t: &str) -> &'a DeploymentCondition {
        st.conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == t))
            .expect("condition")
    }

    #[test]
    fn a_complete_rollout_is_available_and_progressed() {
        let d = deploy(3, 600, serde_json::json!({}));
        let new = rs("web-a", 3, 3, 3);
        let now = Utc::now();
        let (st, again) = compute(
            &d,
            Some(&new),
            std::slice::from_ref(&new),
            0,
            Event::Nothing,
            now,
        );
        assert_eq!(
            (
                st.replicas,
                st.updated_replicas,
                st.available_replicas,
                st.unavailable_replicas
            ),
            (Some(3), Some(3), Some(3), Some(0))
        );
        assert_eq!(cond(&st, "Available").status, "True");
        let p = cond(&st, "Progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("True", Some("NewReplicaSetAvailable"))
        );
        assert_eq!(again, None);
    }

    #[test]
    fn no_progress_for_the_deadline_is_progress_deadline_exceeded() {
        let start = Utc::now() - chrono::Duration::seconds(100);
        let d = deploy(3, 600, serde_json::json!({}));
        let new = rs("web-b", 1, 0, 0);
        let old = rs("web-a", 3, 3, 3);
        let all = [old, new.clone()];
        let (st, again) = compute(&d, Some(&new), &all, 0, Event::NewReplicaSetCreated, start);
        assert_eq!(
            cond(&st, "Progressing").reason.as_deref(),
            Some("NewReplicaSetCreated")
        );
        assert!(
            again.is_some_and(|a| a > Duration::from_secs(590)),
            "{again:?}"
        );
        // Nothing changes for 100 s with a 60 s deadline.
        let d = deploy(3, 60, serde_json::to_value(&st).expect("json"));
        let (st, _) = compute(
            &d,
            Some(&new),
            &all,
            0,
            Event::Nothing,
            start + chrono::Duration::seconds(100),
        );
        let p = cond(&st, "Progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"web-b\" has timed out progressing.")
        );
        assert_eq!(cond(&st, "Available").status, "True");
    }

    #[test]
    fn too_few_available_is_minimum_replicas_unavailable() {
        let d = deploy(4, 600, serde_json::json!({}));
        let new = rs("web-a", 4, 2, 2);
        let (st, _) = compute(
            &d,
            Some(&new),
            std::slice::from_ref(&new),
            1,
            Event::Nothing,
            Utc::now(),
        );
        let a = cond(&st, "Available");
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("False", Some("MinimumReplicasUnavailable"))
        );
        let (st, _) = compute(
            &d,
            Some(&new),
            std::slice::from_ref(&new),
            2,
            Event::Nothing,
            Utc::now(),
        );
        assert_eq!(cond(&st, "Available").status, "True");
    }
}
