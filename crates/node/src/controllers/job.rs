//! The Job controller (kube-controller-manager's `pkg/controller/job`):
//! runs pods of a template until `completions` of them succeed, at most
//! `parallelism` at a time; counts failures against `backoffLimit` (a new
//! pod after a failure waits 10 s · 2^(failures-1), capped at 6 min),
//! fails the Job past `activeDeadlineSeconds`, applies `podFailurePolicy`
//! rules (FailJob / Ignore / Count on exit codes and pod conditions),
//! gives Indexed Jobs one successful pod per index (annotation and label
//! `batch.kubernetes.io/job-completion-index`, env `JOB_COMPLETION_INDEX`,
//! hostname `<job>-<index>`), suspends and resumes, and deletes a finished
//! Job after `ttlSecondsAfterFinished`.
//!
//! The decision is the pure [`decide`]; [`JobController::reconcile`] reads
//! the Job and its pods, carries the decision out and writes the status.

use super::{owner, pod_template, Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::store::Change;
use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobSpec, JobStatus, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

pub struct JobController;

const ABOUT: About = About {
    kind: "Job",
    api_version: "batch/v1",
    component: "job-controller",
};

/// The annotation and label with an Indexed Job pod's index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// First pod back-off after a failure (kube's DefaultJobPodFailureBackOff).
const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// Longest pod back-off (MaxJobPodFailureBackOff).
const BACKOFF_MAX: Duration = Duration::from_secs(360);

impl Controller for JobController {
    fn name(&self) -> &'static str {
        "job"
    }
    fn primary_prefix(&self) -> &'static str {
        "jobs/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["pods/"]
    }
    fn keys_for(&self, _node: &Node, change: &Change) -> Vec<String> {
        owner::self_or_controller(change, "Job", "jobs")
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let Some(job) = node.store.get::<Job>(key).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        sync(node, key, job)
    }
}

/// The API server's defaults for a Job (`pkg/apis/batch/v1/defaults.go`):
/// parallelism and completions 1 when both are unset, backoffLimit 6,
/// completionMode NonIndexed, suspend false; the template's pods get the
/// `job-name` labels (the `controller-uid` ones come with the pods, when
/// the Job has its uid).
pub fn default_job(job: &mut Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".to_string());
    spec.suspend.get_or_insert(false);
    if spec.pod_replacement_policy.is_none() {
        spec.pod_replacement_policy = Some(
            if spec.pod_failure_policy.is_some() {
                "Failed"
            } else {
                "TerminatedOrFailed"
            }
            .to_string(),
        );
    }
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    labels.insert("job-name".into(), name.clone());
    labels.insert("batch.kubernetes.io/job-name".into(), name);
    if let Some(rules) = spec.pod_failure_policy.as_mut().map(|p| &mut p.rules) {
        for r in rules.iter_mut() {
            for c in r.on_pod_conditions.iter_mut().flatten() {
                if c.status.is_empty() {
                    c.status = "True".into();
                }
            }
        }
    }
}

/// The API server's checks of a Job: a template whose restartPolicy is
/// Never or OnFailure, non-negative counts, valid podFailurePolicy rules.
pub fn validate_job(job: &Job) -> Result<(), String> {
    let spec = job
        .spec
        .as_ref()
        .ok_or("spec: Required value: a Job needs a spec with a pod template")?;
    let rp = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if !matches!(rp, "Never" | "OnFailure") {
        return Err(format!("spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\" (got {rp:?}); set restartPolicy: Never or OnFailure in the Job's pod template"));
    }
    for (field, v) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(format!(
                "spec.{field}: Invalid value: {}: must be greater than or equal to 0",
                v.unwrap_or_default()
            ));
        }
    }
    if spec.active_deadline_seconds.is_some_and(|v| v <= 0) {
        return Err("spec.activeDeadlineSeconds: Invalid value: must be greater than 0".into());
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                return Err("spec.completions: Required value: when completion mode is Indexed".into());
            }
        }
        Some(m) => {
            return Err(format!(
                "spec.completionMode: Unsupported value: {m:?}: supported values: \"NonIndexed\", \"Indexed\""
            ))
        }
    }
    if let Some(p) = &spec.pod_failure_policy {
        if rp != "Never" {
            return Err("spec.podFailurePolicy: Invalid value: only allowed with spec.template.spec.restartPolicy: Never".into());
        }
        for (i, r) in p.rules.iter().enumerate() {
            if !matches!(
                r.action.as_str(),
                "FailJob" | "Ignore" | "Count" | "FailIndex"
            ) {
                return Err(format!("spec.podFailurePolicy.rules[{i}].action: Unsupported value: {:?}: supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"", r.action));
            }
            if r.on_exit_codes.is_some() == r.on_pod_conditions.is_some() {
                return Err(format!("spec.podFailurePolicy.rules[{i}]: Invalid value: specify one of onExitCodes and onPodConditions"));
            }
            if let Some(e) = &r.on_exit_codes {
                if !matches!(e.operator.as_str(), "In" | "NotIn") {
                    return Err(format!("spec.podFailurePolicy.rules[{i}].onExitCodes.operator: Unsupported value: {:?}: supported values: \"In\", \"NotIn\"", e.operator));
                }
            }
        }
    }
    Ok(())
}

/// A pod of the Job as the decision sees it.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub name: String,
    /// Pending/Running (not terminal, not being deleted).
    pub active: bool,
    pub succeeded: bool,
    pub failed: bool,
    pub ready: bool,
    pub index: Option<i32>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Exit codes of terminated containers, by container name.
    pub exit_codes: Vec<(String, i32)>,
    /// The pod's conditions (type, status).
    pub conditions: Vec<(String, String)>,
    pub created: Option<DateTime<Utc>>,
    /// Container restarts (restartPolicy OnFailure restarts in place).
    pub restarts: i32,
}

impl PodView {
    pub fn of(p: &Pod) -> PodView {
        let st = p.status.as_ref();
        let phase = st.and_then(|s| s.phase.as_deref());
        let deleting = p.metadata.deletion_timestamp.is_some();
        let mut exit_codes = Vec::new();
        let mut finished_at: Option<DateTime<Utc>> = None;
        for cs in st
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                exit_codes.push((cs.name.clone(), t.exit_code));
                let at = t.finished_at.as_ref().map(super::replicaset::to_chrono);
                finished_at = finished_at.max(at);
            }
        }
        PodView {
            name: p.metadata.name.clone().unwrap_or_default(),
            active: !matches!(phase, Some("Succeeded" | "Failed")) && !deleting,
            succeeded: phase == Some("Succeeded"),
            failed: phase == Some("Failed"),
            ready: super::replicaset::is_ready(p),
            index: p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(INDEX_KEY))
                .and_then(|v| v.parse().ok()),
            finished_at,
            exit_codes,
            conditions: st
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .map(|c| (c.type_.clone(), c.status.clone()))
                .collect(),
            created: p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(super::replicaset::to_chrono),
            restarts: st
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .chain(
                    st.and_then(|s| s.init_container_statuses.as_ref())
                        .into_iter()
                        .flatten(),
                )
                .map(|c| c.restart_count)
                .sum(),
        }
    }
}

/// What a podFailurePolicy rule makes of a failed pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    FailJob,
    Ignore,
    Count,
}

fn exit_codes_match(req: &PodFailurePolicyOnExitCodesRequirement, pod: &PodView) -> bool {
    pod.exit_codes.iter().any(|(c, code)| {
        *code != 0
            && req.container_name.as_ref().is_none_or(|n| n == c)
            && match req.operator.as_str() {
                "In" => req.values.contains(code),
                "NotIn" => !req.values.contains(code),
                _ => false,
            }
    })
}

/// The action of the first rule matching a failed pod (Count when none
/// does), and the rule's index.
pub fn failure_action(
    rules: &[PodFailurePolicyRule],
    pod: &PodView,
) -> (FailureAction, Option<usize>) {
    for (i, r) in rules.iter().enumerate() {
        let matched = match (&r.on_exit_codes, &r.on_pod_conditions) {
            (Some(e), _) => exit_codes_match(e, pod),
            (None, Some(conds)) => conds.iter().any(|c| {
                pod.conditions.iter().any(|(t, s)| {
                    t == &c.type_
                        && s == if c.status.is_empty() {
                            "True"
                        } else {
                            &c.status
                        }
                })
            }),
            (None, None) => false,
        };
        if matched {
            let a = match r.action.as_str() {
                "FailJob" => FailureAction::FailJob,
                "Ignore" => FailureAction::Ignore,
                _ => FailureAction::Count,
            };
            return (a, Some(i));
        }
    }
    (FailureAction::Count, None)
}

/// The Job's parameters the decision needs.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub completions: Option<i32>,
    pub parallelism: i32,
    pub backoff_limit: i32,
    pub indexed: bool,
    pub suspend: bool,
    pub active_deadline: Option<i64>,
    pub start_time: Option<DateTime<Utc>>,
    pub rules: Vec<PodFailurePolicyRule>,
    /// Already Complete or Failed.
    pub finished: bool,
    /// restartPolicy OnFailure: container restarts of active pods count
    /// against backoffLimit.
    pub on_failure: bool,
}

impl Params {
    pub fn of(spec: &JobSpec, status: Option<&JobStatus>) -> Params {
        let conds = status.and_then(|s| s.conditions.as_ref());
        Params {
            completions: spec.completions,
            parallelism: spec.parallelism.unwrap_or(1).max(0),
            backoff_limit: spec.backoff_limit.unwrap_or(6).max(0),
            indexed: spec.completion_mode.as_deref() == Some("Indexed"),
            suspend: spec.suspend.unwrap_or(false),
            active_deadline: spec.active_deadline_seconds,
            start_time: status
                .and_then(|s| s.start_time.as_ref())
                .map(super::replicaset::to_chrono),
            rules: spec
                .pod_failure_policy
                .as_ref()
                .map(|p| p.rules.clone())
                .unwrap_or_default(),
            on_failure: spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                == Some("OnFailure"),
            finished: conds.is_some_and(|c| {
                c.iter().any(|c| {
                    matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True"
                })
            }),
        }
    }
}

/// How the Job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// `Complete` or `Failed`.
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Pods to create: their completion index (None for NonIndexed).
    pub create: Vec<Option<i32>>,
    /// Active pods to delete.
    pub delete: Vec<String>,
    pub finish: Option<Finish>,
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub ready: i32,
    /// Indexed: the succeeded indexes, `1,3-5`.
    pub completed_indexes: Option<String>,
    /// Look again after this (back-off, deadline).
    pub requeue: Option<Duration>,
}

/// `0,2-4,7`: the API server's compressed list of indexes.
pub fn format_indexes(ix: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let v: Vec<i32> = ix.iter().copied().collect();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// The pod back-off after `failures` failures: 10 s · 2^(n-1), capped.
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let exp = (failures - 1).min(16) as u32;
    BACKOFF_BASE.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// The Job controller's decision for `pods` (all the Job's pods) at `now`.
pub fn decide(p: &Params, pods: &[PodView], now: DateTime<Utc>) -> Decision {
    let mut d = Decision::default();
    let active: Vec<&PodView> = pods.iter().filter(|x| x.active).collect();
    d.active = active.len() as i32;
    d.ready = active.iter().filter(|x| x.ready).count() as i32;
    let mut done_ix = BTreeSet::new();
    let mut fail_job: Option<String> = None;
    let mut last_failure: Option<DateTime<Utc>> = None;
    for x in pods {
        if x.succeeded {
            match (p.indexed, x.index) {
                (true, Some(i)) if i >= 0 && p.completions.is_some_and(|c| i < c) => {
                    done_ix.insert(i);
                }
                (true, _) => {}
                (false, _) => d.succeeded += 1,
            }
        } else if x.failed {
            match failure_action(&p.rules, x) {
                (FailureAction::Ignore, _) => {}
                (FailureAction::FailJob, rule) => {
                    d.failed += 1;
                    fail_job.get_or_insert_with(|| {
                        format!(
                            "Pod {} has condition or exit code matching FailJob rule at index {}",
                            x.name,
                            rule.unwrap_or(0)
                        )
                    });
                }
                (FailureAction::Count, _) => {
                    d.failed += 1;
                    last_failure = last_failure.max(x.finished_at.or(Some(now)));
                }
            }
        }
    }
    if p.indexed {
        d.succeeded = done_ix.len() as i32;
        d.completed_indexes = Some(format_indexes(&done_ix));
    }
    let all_active = || active.iter().map(|x| x.name.clone()).collect::<Vec<_>>();
    if p.finished {
        d.delete = all_active();
        return d;
    }
    if p.suspend {
        d.delete = all_active();
        return d;
    }
    // Failure: a FailJob rule, the back-off limit, the deadline.
    let deadline_at = p
        .active_deadline
        .zip(p.start_time)
        .map(|(s, t)| t + chrono::Duration::seconds(s));
    d.finish = if let Some(m) = fail_job {
        Some(Finish {
            type_: "Failed",
            reason: "PodFailurePolicy",
            message: m,
        })
    } else if d.failed
        + if p.on_failure {
            active.iter().map(|x| x.restarts).sum::<i32>()
        } else {
            0
        }
        > p.backoff_limit
    {
        Some(Finish {
            type_: "Failed",
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit".into(),
        })
    } else if deadline_at.is_some_and(|at| now >= at) {
        Some(Finish {
            type_: "Failed",
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline".into(),
        })
    } else {
        None
    };
    if d.finish.is_some() {
        d.delete = all_active();
        return d;
    }
    // Success.
    let complete = match (p.indexed, p.completions) {
        (_, Some(c)) => d.succeeded >= c,
        (false, None) => d.succeeded > 0 && active.is_empty(),
        (true, None) => false,
    };
    if complete {
        d.finish = Some(Finish {
            type_: "Complete",
            reason: "CompletionsReached",
            message: "Reached expected number of succeeded pods".into(),
        });
        d.delete = all_active();
        return d;
    }
    // How many pods should run now.
    let mut to_create: Vec<Option<i32>> = Vec::new();
    if p.indexed {
        let c = p.completions.unwrap_or(0);
        let running: BTreeSet<i32> = active.iter().filter_map(|x| x.index).collect();
        let room = (p.parallelism - d.active).max(0) as usize;
        to_create = (0..c)
            .filter(|i| !done_ix.contains(i) && !running.contains(i))
            .take(room)
            .map(Some)
            .collect();
        // Too many running (parallelism lowered): the highest indexes go.
        let excess = (d.active - p.parallelism).max(0) as usize;
        let mut by_ix: Vec<&&PodView> = active.iter().collect();
        by_ix.sort_by_key(|x| std::cmp::Reverse(x.index));
        d.delete = by_ix.iter().take(excess).map(|x| x.name.clone()).collect();
    } else {
        let want = match p.completions {
            Some(c) => p.parallelism.min(c - d.succeeded),
            // A work queue: no new pods once one succeeded.
            None if d.succeeded > 0 => d.active,
            None => p.parallelism,
        }
        .max(0);
        if want > d.active {
            to_create = vec![None; (want - d.active) as usize];
        } else if want < d.active {
            // Not-ready and newest first.
            let mut v: Vec<&&PodView> = active.iter().collect();
            v.sort_by(|a, b| a.ready.cmp(&b.ready).then(b.created.cmp(&a.created)));
            d.delete = v
                .iter()
                .take((d.active - want) as usize)
                .map(|x| x.name.clone())
                .collect();
        }
    }
    // Back-off after failures.
    if !to_create.is_empty() && d.failed > 0 {
        if let Some(last) = last_failure {
            let at = last + chrono::Duration::from_std(backoff(d.failed)).unwrap_or_default();
            if now < at {
                d.requeue = (at - now).to_std().ok();
                to_create.clear();
            }
        }
    }
    d.create = to_create;
    if let Some(at) = deadline_at {
        let left = (at - now).to_std().unwrap_or_default();
        d.requeue = Some(d.requeue.map_or(left, |r| r.min(left)));
    }
    d
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(crate::time::now()),
        last_transition_time: Some(crate::time::now()),
    }
}

/// Set condition `c` in `conds`, keeping the transition time when the
/// status does not change. Returns whether the status changed.
fn set_condition(conds: &mut Vec<JobCondition>, c: JobCondition) -> bool {
    match conds.iter_mut().find(|o| o.type_ == c.type_) {
        Some(o) if o.status == c.status => false,
        Some(o) => {
            *o = c;
            true
        }
        None => {
            conds.push(c);
            true
        }
    }
}

/// When the finished Job finished (its Complete/Failed condition).
fn finished_at(status: Option<&JobStatus>) -> Option<DateTime<Utc>> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map(super::replicaset::to_chrono)
                .unwrap_or_else(Utc::now)
        })
}

/// The pods the Job controls (by controllerRef).
fn job_pods(node: &Node, job: &Job, ns: &str) -> Result<Vec<Pod>, String> {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    Ok(node
        .list_pods(Some(ns))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|p| owner::is_controlled_by(&p.metadata, &uid))
        .collect())
}

fn sync(node: &Arc<Node>, key: &str, job: Job) -> Reconciled {
    let (ns, name) = super::split_key(key).ok_or_else(|| format!("bad key {key}"))?;
    let (ns, name) = (ns.to_string(), name.to_string());
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let spec = job.spec.clone().unwrap_or_default();
    let now = Utc::now();
    // TTL of a finished Job.
    if let (Some(ttl), Some(at)) = (
        spec.ttl_seconds_after_finished,
        finished_at(job.status.as_ref()),
    ) {
        let expires = at + chrono::Duration::seconds(ttl as i64);
        if now >= expires {
            match crate::server::objects::delete_object(
                node,
                key,
                crate::server::objects::Propagation::Background,
            ) {
                Ok(_) | Err(crate::store::StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(format!("Job {ns}/{name}: deleting it after its TTL: {e}")),
            }
        }
    }
    let pods = job_pods(node, &job, &ns)?;
    let views: Vec<PodView> = pods.iter().map(PodView::of).collect();
    let mut params = Params::of(&spec, job.status.as_ref());
    let was_suspended = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Suspended" && c.status == "True")
        });
    // Started now, or again on resume.
    let mut start_time = job.status.as_ref().and_then(|s| s.start_time.clone());
    if !params.suspend && !params.finished && (start_time.is_none() || was_suspended) {
        start_time = Some(to_time(now));
        params.start_time = Some(now);
    }
    let d = decide(&params, &views, now);
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let oref = owner::controller_ref_to("batch/v1", "Job", &job.metadata);
    let mut failure = None;
    for ix in &d.create {
        let mut template = spec.template.clone();
        let mut extras = pod_template::PodExtras {
            labels: BTreeMap::from([
                ("job-name".to_string(), name.clone()),
                ("batch.kubernetes.io/job-name".to_string(), name.clone()),
                ("controller-uid".to_string(), uid.clone()),
                (
                    "batch.kubernetes.io/controller-uid".to_string(),
                    uid.clone(),
                ),
            ]),
            ..Default::default()
        };
        let mut prefix = format!("{name}-");
        if let Some(i) = ix {
            extras.labels.insert(INDEX_KEY.into(), i.to_string());
            extras.annotations.insert(INDEX_KEY.into(), i.to_string());
            prefix = format!("{name}-{i}-");
            if let Some(ps) = template.spec.as_mut() {
                if ps.hostname.is_none() {
                    extras.hostname = Some(format!("{name}-{i}"));
                }
                for c in ps
                    .containers
                    .iter_mut()
                    .chain(ps.init_containers.iter_mut().flatten())
                {
                    let env = c.env.get_or_insert_with(Vec::new);
                    if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                        env.push(EnvVar {
                            name: "JOB_COMPLETION_INDEX".into(),
                            value: Some(i.to_string()),
                            value_from: None,
                        });
                    }
                }
            }
        }
        match pod_template::create_pod(node, &ns, &prefix, &template, &oref, &extras) {
            Ok(p) => node.events.record_for(
                &ABOUT,
                &job.metadata,
                "Normal",
                "SuccessfulCreate",
                format!("Created pod: {}", p.metadata.name.as_deref().unwrap_or("")),
            ),
            Err(e) => {
                node.events.record_for(
                    &ABOUT,
                    &job.metadata,
                    "Warning",
                    "FailedCreate",
                    format!("Error creating: {e}"),
                );
                failure = Some(e);
                break;
            }
        }
    }
    for pname in &d.delete {
        crate::server::request_pod_delete(node, &ns, pname)
            .map_err(|e| format!("Job {ns}/{name}: deleting pod {pname}: {e}"))?;
        node.events.record_for(
            &ABOUT,
            &job.metadata,
            "Normal",
            "SuccessfulDelete",
            format!("Deleted pod: {pname}"),
        );
    }
    if let Some(f) = &d.finish {
        let typ = if f.type_ == "Failed" {
            "Warning"
        } else {
            "Normal"
        };
        let reason = if f.type_ == "Complete" {
            "Completed"
        } else {
            f.reason
        };
        node.events
            .record_for(&ABOUT, &job.metadata, typ, reason, f.message.clone());
    }
    // Status.
    let created = d.create.len() as i32;
    let deleted = d.delete.len() as i32;
    let mut event = None;
    node.store
        .update_with::<Job>(key, |cur| {
            if cur.metadata.uid != job.metadata.uid {
                return false;
            }
            let before = cur.status.clone();
            let st = cur.status.get_or_insert_with(Default::default);
            st.active = Some(d.active + created - deleted).filter(|n| *n > 0);
            st.ready = Some(d.ready);
            st.succeeded = Some(d.succeeded).filter(|n| *n > 0);
            st.failed = Some(d.failed).filter(|n| *n > 0);
            st.terminating = Some(0);
            if d.completed_indexes.is_some() {
                st.completed_indexes = d.completed_indexes.clone().filter(|s| !s.is_empty());
            }
            if st.start_time.is_none() || was_suspended {
                st.start_time = start_time.clone();
            }
            let conds = st.conditions.get_or_insert_with(Vec::new);
            if !params.finished {
                if params.suspend {
                    if set_condition(
                        conds,
                        condition("Suspended", "True", "JobSuspended", "Job suspended"),
                    ) {
                        event = Some(("Suspended", "Job suspended"));
                    }
                } else if was_suspended
                    && set_condition(
                        conds,
                        condition("Suspended", "False", "JobResumed", "Job resumed"),
                    )
                {
                    event = Some(("Resumed", "Job resumed"));
                }
            }
            if let Some(f) = &d.finish {
                set_condition(conds, condition(f.type_, "True", f.reason, &f.message));
                if f.type_ == "Complete" {
                    st.completion_time = Some(crate::time::now());
                }
            }
            if conds.is_empty() {
                st.conditions = None;
            }
            // Unchanged (but for probe times): leave it.
            cur.status != before
        })
        .map_err(|e| e.to_string())?;
    if let Some((reason, msg)) = event {
        node.events
            .record_for(&ABOUT, &job.metadata, "Normal", reason, msg);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut again = d.requeue;
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        let at = if d.finish.is_some() {
            Some(now)
        } else {
            finished_at(job.status.as_ref())
        };
        if let Some(at) = at {
            let left = (at + chrono::Duration::seconds(ttl as i64) - now)
                .to_std()
                .unwrap_or_default()
                + Duration::from_millis(100);
            again = Some(again.map_or(left, |a| a.min(left)));
        }
    }
    Ok(again)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).expect("time")
    }

    fn pod(name: &str, state: &str, index: Option<i32>) -> PodView {
        PodView {
            name: name.into(),
            active: matches!(state, "active" | "ready"),
            ready: state == "ready",
            succeeded: state == "ok",
            failed: state.starts_with("fail"),
            index,
            finished_at: state.starts_with("fail").then(|| t(0)),
            exit_codes: state
                .strip_prefix("fail")
                .and_then(|c| c.parse().ok())
                .map(|c| vec![("main".to_string(), c)])
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    fn params(completions: Option<i32>, parallelism: i32) -> Params {
        Params {
            completions,
            parallelism,
            backoff_limit: 6,
            ..Default::default()
        }
    }

    #[test]
    fn creates_up_to_parallelism_and_completions() {
        // (completions, parallelism, pods, created, finished)
        type Case = (Option<i32>, i32, Vec<PodView>, usize, bool);
        let cases: Vec<Case> = vec![
            (Some(5), 2, vec![], 2, false),
            (Some(5), 2, vec![pod("a", "active", None)], 1, false),
            (
                Some(5),
                2,
                vec![
                    pod("a", "ok", None),
                    pod("b", "ok", None),
                    pod("c", "ok", None),
                    pod("d", "ok", None),
                ],
                1,
                false,
            ),
            (
                Some(5),
                2,
                vec![
                    pod("a", "ok", None),
                    pod("b", "ok", None),
                    pod("c", "ok", None),
                    pod("d", "ok", None),
                    pod("e", "active", None),
                ],
                0,
                false,
            ),
            (
                Some(2),
                2,
                vec![pod("a", "ok", None), pod("b", "ok", None)],
                0,
                true,
            ),
            (None, 3, vec![], 3, false),
            (
                None,
                3,
                vec![pod("a", "ok", None), pod("b", "active", None)],
                0,
                false,
            ),
            (None, 3, vec![pod("a", "ok", None)], 0, true),
            (Some(3), 0, vec![], 0, false),
        ];
        for (i, (c, par, pods, created, finished)) in cases.into_iter().enumerate() {
            let d = decide(&params(c, par), &pods, t(100));
            assert_eq!(d.create.len(), created, "case {i}: {d:?}");
            assert_eq!(d.finish.is_some(), finished, "case {i}: {d:?}");
        }
    }

    #[test]
    fn fewer_pods_when_parallelism_drops() {
        let pods = vec![
            pod("a", "ready", None),
            pod("b", "active", None),
            pod("c", "ready", None),
        ];
        let d = decide(&params(Some(10), 1), &pods, t(0));
        assert_eq!(d.delete, vec!["b".to_string(), "a".to_string()]);
    }

    #[test]
    fn failures_back_off_then_fail_the_job_past_the_limit() {
        let mut p = params(Some(1), 1);
        p.backoff_limit = 2;
        let one = vec![pod("a", "fail1", None)];
        // 10 s after the first failure.
        let d = decide(&p, &one, t(4));
        assert!(d.create.is_empty());
        assert_eq!(d.requeue, Some(Duration::from_secs(6)));
        assert_eq!(decide(&p, &one, t(10)).create.len(), 1);
        // 20 s after the second.
        let two = vec![pod("a", "fail1", None), pod("b", "fail1", None)];
        assert!(decide(&p, &two, t(19)).create.is_empty());
        assert_eq!(decide(&p, &two, t(20)).create.len(), 1);
        let three = vec![
            pod("a", "fail1", None),
            pod("b", "fail1", None),
            pod("c", "fail1", None),
            pod("d", "active", None),
        ];
        let d = decide(&p, &three, t(100));
        let f = d.finish.expect("failed");
        assert_eq!((f.type_, f.reason), ("Failed", "BackoffLimitExceeded"));
        assert_eq!(d.delete, vec!["d".to_string()]);
        assert_eq!(d.failed, 3);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(10), Duration::from_secs(360));
    }

    #[test]
    fn restarts_in_place_count_with_on_failure() {
        let mut p = params(Some(1), 1);
        p.backoff_limit = 2;
        let mut a = pod("a", "active", None);
        a.restarts = 3;
        assert!(decide(&p, std::slice::from_ref(&a), t(0)).finish.is_none());
        p.on_failure = true;
        let d = decide(&p, &[a], t(0));
        assert_eq!(d.finish.expect("failed").reason, "BackoffLimitExceeded");
        assert_eq!(d.delete, vec!["a".to_string()]);
    }

    #[test]
    fn the_deadline_fails_the_job() {
        let mut p = params(Some(1), 1);
        p.active_deadline = Some(30);
        p.start_time = Some(t(0));
        let pods = vec![pod("a", "active", None)];
        let d = decide(&p, &pods, t(10));
        assert!(d.finish.is_none());
        assert_eq!(d.requeue, Some(Duration::from_secs(20)));
        let d = decide(&p, &pods, t(30));
        assert_eq!(d.finish.expect("failed").reason, "DeadlineExceeded");
        assert_eq!(d.delete, vec!["a".to_string()]);
    }

    #[test]
    fn indexed_jobs_run_each_index_once() {
        let mut p = params(Some(5), 2);
        p.indexed = true;
        let d = decide(&p, &[], t(0));
        assert_eq!(d.create, vec![Some(0), Some(1)]);
        let pods = vec![
            pod("a", "ok", Some(0)),
            pod("b", "active", Some(1)),
            pod("c", "ok", Some(3)),
            pod("c2", "ok", Some(3)),
        ];
        let d = decide(&p, &pods, t(0));
        assert_eq!(d.create, vec![Some(2)]);
        assert_eq!(d.succeeded, 2);
        assert_eq!(d.completed_indexes.as_deref(), Some("0,3"));
        let all: Vec<PodView> = (0..5).map(|i| pod("x", "ok", Some(i))).collect();
        let d = decide(&p, &all, t(0));
        assert_eq!(d.completed_indexes.as_deref(), Some("0-4"));
        assert_eq!(d.finish.expect("complete").type_, "Complete");
    }

    #[test]
    fn pod_failure_policy_rules() {
        let rules: Vec<PodFailurePolicyRule> = serde_json::from_value(serde_json::json!([
            { "action": "FailJob", "onExitCodes": { "containerName": "main", "operator": "In", "values": [42] } },
            { "action": "Ignore", "onPodConditions": [{ "type": "DisruptionTarget", "status": "True" }] },
            { "action": "Ignore", "onExitCodes": { "operator": "In", "values": [3] } },
            { "action": "Count", "onExitCodes": { "operator": "NotIn", "values": [0] } },
        ]))
        .expect("rules");
        let mut disrupted = pod("d", "fail1", None);
        disrupted.conditions = vec![("DisruptionTarget".into(), "True".into())];
        // (pod, action)
        let cases = [
            (pod("a", "fail42", None), FailureAction::FailJob),
            (pod("b", "fail3", None), FailureAction::Ignore),
            (pod("c", "fail1", None), FailureAction::Count),
            (disrupted, FailureAction::Ignore),
            (pod("e", "fail0", None), FailureAction::Count),
        ];
        for (p, want) in cases {
            assert_eq!(failure_action(&rules, &p).0, want, "{}", p.name);
        }
        let mut p = params(Some(2), 2);
        p.rules = rules;
        p.backoff_limit = 0;
        // Ignored failures do not count.
        let d = decide(&p, &[pod("b", "fail3", None)], t(0));
        assert!(d.finish.is_none());
        assert_eq!((d.failed, d.create.len()), (0, 2));
        let d = decide(&p, &[pod("a", "fail42", None)], t(0));
        assert_eq!(d.finish.expect("failed").reason, "PodFailurePolicy");
    }

    #[test]
    fn suspended_and_finished_jobs_run_nothing() {
        let mut p = params(Some(3), 2);
        p.suspend = true;
        let d = decide(&p, &[pod("a", "active", None)], t(0));
        assert_eq!((d.create.len(), d.delete.len()), (0, 1));
        let mut p = params(Some(3), 2);
        p.finished = true;
        let d = decide(&p, &[pod("a", "ok", None)], t(0));
        assert!(d.create.is_empty() && d.finish.is_none());
    }

    #[test]
    fn indexes_compress_to_ranges() {
        let s = |v: &[i32]| format_indexes(&v.iter().copied().collect());
        assert_eq!(s(&[]), "");
        assert_eq!(s(&[1]), "1");
        assert_eq!(s(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
    }

    #[test]
    fn defaults_and_validation() {
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "pi" },
            "spec": { "template": { "spec": { "restartPolicy": "Never", "containers": [{ "name": "c", "image": "x" }] } } }
        }))
        .expect("job");
        default_job(&mut job);
        let spec = job.spec.as_ref().expect("spec");
        assert_eq!(
            (spec.completions, spec.parallelism, spec.backoff_limit),
            (Some(1), Some(1), Some(6))
        );
        assert!(validate_job(&job).is_ok());
        if let Some(s) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            s.restart_policy = Some("Always".into());
        }
        let e = validate_job(&job).expect_err("Always is refused");
        assert!(e.contains("restartPolicy"), "{e}");
    }
}
