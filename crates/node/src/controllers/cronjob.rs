//! The CronJob controller (kube-controller-manager's
//! `pkg/controller/cronjob`, v2): creates a Job named
//! `<cronjob>-<scheduled time in minutes since the epoch>` at each time of
//! the schedule (standard 5-field cron syntax and `@hourly`-style macros,
//! parsed by `croner`, in `spec.timeZone` through `chrono-tz`, else UTC),
//! honouring concurrencyPolicy (Allow / Forbid / Replace),
//! startingDeadlineSeconds and suspend; keeps status.active,
//! lastScheduleTime and lastSuccessfulTime; deletes finished Jobs past
//! successfulJobsHistoryLimit / failedJobsHistoryLimit.
//!
//! Missed times (the daemon was down) are handled as Kubernetes does:
//! only the most recent missed time is started (if still within
//! startingDeadlineSeconds), and more than 100 missed times are reported
//! with a `TooManyMissedTimes` warning.

use super::{owner, Controller, Reconciled};
use crate::events::About;
use crate::node::Node;
use crate::store::Change;
use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use std::sync::Arc;
use std::time::Duration;

pub struct CronJobController;

const ABOUT: About = About {
    kind: "CronJob",
    api_version: "batch/v1",
    component: "cronjob-controller",
};

/// The annotation with the Job's scheduled time.
pub const SCHEDULED_KEY: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed start times past which a warning is recorded.
const TOO_MANY_MISSED: usize = 100;

impl Controller for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }
    fn primary_prefix(&self) -> &'static str {
        "cronjobs/"
    }
    fn watches(&self) -> &'static [&'static str] {
        &["jobs/"]
    }
    fn keys_for(&self, _node: &Node, change: &Change) -> Vec<String> {
        owner::self_or_controller(change, "CronJob", "cronjobs")
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        let Some(cj) = node.store.get::<CronJob>(key).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        sync(node, key, cj)
    }
}

/// A schedule: the cron expression in its time zone.
pub struct Schedule {
    cron: Cron,
    tz: chrono_tz::Tz,
}

/// Parse `schedule` (5 fields or a macro such as `@hourly`) in `time_zone`
/// (an IANA name; UTC when unset). The error says what is wrong.
pub fn parse_schedule(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
    let s = schedule.trim();
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err(format!("spec.schedule: Invalid value: {schedule:?}: cannot use TZ or CRON_TZ in schedule, use timeZone field instead"));
    }
    if !s.starts_with('@') && s.split_whitespace().count() != 5 {
        return Err(format!(
            "spec.schedule: Invalid value: {schedule:?}: expected exactly 5 fields (minute hour day-of-month month day-of-week) or a macro such as @hourly"
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(s)
        .map_err(|e| format!("spec.schedule: Invalid value: {schedule:?}: {e}"))?;
    let tz = match time_zone {
        None | Some("") => chrono_tz::UTC,
        Some(z) => z.parse::<chrono_tz::Tz>().map_err(|_| {
            format!("spec.timeZone: Invalid value: {z:?}: unknown time zone; use an IANA name such as Europe/Berlin")
        })?,
    };
    Ok(Schedule { cron, tz })
}

impl Schedule {
    /// The first time of the schedule after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The most recent time of the schedule in (`earliest`, `now`], and how
    /// many such times there are (capped just past [`TOO_MANY_MISSED`]).
    pub fn most_recent(
        &self,
        earliest: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, usize) {
        let mut count = 0;
        let mut last = None;
        let mut t = earliest;
        while let Some(n) = self.next_after(t) {
            if n > now {
                return (last, count);
            }
            count += 1;
            last = Some(n);
            t = n;
            if count > TOO_MANY_MISSED {
                break;
            }
        }
        // Too many to walk: the latest one directly.
        let latest = self
            .cron
            .find_previous_occurrence(&now.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .or(last);
        (latest, count)
    }
}

/// The Job name for a scheduled time: `<cronjob>-<minutes since epoch>`.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp() / 60)
}

/// When the schedule should have started last: the times considered start
/// after lastScheduleTime (or creation), but no earlier than
/// startingDeadlineSeconds before now.
pub fn earliest(
    last_schedule: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    starting_deadline: Option<i64>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut e = last_schedule.unwrap_or(created);
    if let Some(s) = starting_deadline {
        let floor = now - chrono::Duration::seconds(s);
        if floor > e {
            e = floor;
        }
    }
    e
}

/// What to do about the most recent scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Past startingDeadlineSeconds: a MissSchedule warning, no Job.
    MissSchedule,
    /// Its Job exists already (created before a restart).
    AlreadyRan,
    /// Forbid with a Job still running.
    Wait,
    /// Create the Job; with Replace, delete the running ones first.
    Start { replace: bool },
}

/// The concurrencyPolicy decision for one scheduled time.
pub fn plan(policy: &str, active: usize, exists: bool, too_late: bool) -> Plan {
    if too_late {
        Plan::MissSchedule
    } else if exists {
        Plan::AlreadyRan
    } else {
        match policy {
            "Forbid" if active > 0 => Plan::Wait,
            "Replace" => Plan::Start {
                replace: active > 0,
            },
            _ => Plan::Start { replace: false },
        }
    }
}

/// Finished Jobs to delete: the oldest past the history limits.
/// `jobs` are (name, start, succeeded) of the finished ones.
pub fn history_to_delete(
    jobs: &[(String, DateTime<Utc>, bool)],
    successful_limit: i32,
    failed_limit: i32,
) -> Vec<String> {
    let mut out = Vec::new();
    for (ok, limit) in [(true, successful_limit), (false, failed_limit)] {
        let mut v: Vec<&(String, DateTime<Utc>, bool)> =
            jobs.iter().filter(|j| j.2 == ok).collect();
        v.sort_by_key(|j| j.1);
        let extra = v.len().saturating_sub(limit.max(0) as usize);
        out.extend(v.iter().take(extra).map(|j| j.0.clone()));
    }
    out
}

/// The API server's defaults for a CronJob and its Job template.
pub fn default_cronjob(cj: &mut CronJob) {
    let spec = cj.spec.get_or_insert_with(Default::default);
    spec.concurrency_policy
        .get_or_insert_with(|| "Allow".to_string());
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
}

/// The API server's checks of a CronJob: a schedule and time zone that
/// parse, a known concurrencyPolicy, a valid Job template.
pub fn validate_cronjob(cj: &CronJob) -> Result<(), String> {
    let spec = cj
        .spec
        .as_ref()
        .ok_or("spec: Required value: a CronJob needs a schedule and a jobTemplate")?;
    parse_schedule(&spec.schedule, spec.time_zone.as_deref())?;
    if let Some(p) = spec.concurrency_policy.as_deref() {
        if !matches!(p, "Allow" | "Forbid" | "Replace") {
            return Err(format!("spec.concurrencyPolicy: Unsupported value: {p:?}: supported values: \"Allow\", \"Forbid\", \"Replace\""));
        }
    }
    if cj.metadata.name.as_ref().is_some_and(|n| n.len() > 52) {
        return Err("metadata.name: Invalid value: must be no more than 52 characters (the Job names add 11)".into());
    }
    let job = Job {
        metadata: ObjectMeta {
            name: cj.metadata.name.clone(),
            ..Default::default()
        },
        spec: spec.job_template.spec.clone(),
        status: None,
    };
    let mut job = job;
    super::job::default_job(&mut job);
    super::job::validate_job(&job).map_err(|e| format!("spec.jobTemplate.{e}"))
}

fn chrono_of(t: &Time) -> DateTime<Utc> {
    super::replicaset::to_chrono(t)
}

fn to_time(t: DateTime<Utc>) -> Time {
    Time(
        k8s_openapi::jiff::Timestamp::from_second(t.timestamp())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// `Complete` or `Failed` when the Job finished.
fn finished(job: &Job) -> Option<(&'static str, DateTime<Utc>)> {
    let c = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")?;
    let t = c
        .last_transition_time
        .as_ref()
        .map(chrono_of)
        .unwrap_or_else(Utc::now);
    Some((
        if c.type_ == "Complete" {
            "Complete"
        } else {
            "Failed"
        },
        t,
    ))
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn sync(node: &Arc<Node>, key: &str, cj: CronJob) -> Reconciled {
    let (ns, name) = super::split_key(key).ok_or_else(|| format!("bad key {key}"))?;
    let (ns, name) = (ns.to_string(), name.to_string());
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let spec = cj.spec.clone().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let now = Utc::now();
    let jobs: Vec<Job> = node
        .store
        .list::<Job>(&format!("jobs/{ns}/"))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|j| owner::is_controlled_by(&j.metadata, &uid))
        .collect();
    let mut active: Vec<ObjectReference> = Vec::new();
    let mut last_success = cj
        .status
        .as_ref()
        .and_then(|s| s.last_successful_time.as_ref())
        .map(chrono_of);
    let mut done = Vec::new();
    for j in &jobs {
        match finished(j) {
            None if j.metadata.deletion_timestamp.is_none() => active.push(job_ref(j)),
            None => {}
            Some((kind, at)) => {
                if kind == "Complete" {
                    let completed = j
                        .status
                        .as_ref()
                        .and_then(|s| s.completion_time.as_ref())
                        .map(chrono_of)
                        .unwrap_or(at);
                    if last_success.is_none_or(|l| completed > l) {
                        last_success = Some(completed);
                    }
                }
                let start = j
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(chrono_of)
                    .unwrap_or(at);
                done.push((
                    j.metadata.name.clone().unwrap_or_default(),
                    start,
                    kind == "Complete",
                ));
            }
        }
    }
    // History.
    for jname in history_to_delete(
        &done,
        spec.successful_jobs_history_limit.unwrap_or(3),
        spec.failed_jobs_history_limit.unwrap_or(1),
    ) {
        match crate::server::objects::delete_object(
            node,
            &crate::store::key("jobs", &ns, &jname),
            crate::server::objects::Propagation::Background,
        ) {
            Ok(_) | Err(crate::store::StoreError::NotFound { .. }) => node.events.record_for(
                &ABOUT,
                &cj.metadata,
                "Normal",
                "SuccessfulDelete",
                format!("Deleted job {jname}"),
            ),
            Err(e) => return Err(format!("CronJob {ns}/{name}: deleting job {jname}: {e}")),
        }
    }
    let mut last_schedule = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(chrono_of);
    let mut again = None;
    let suspended = spec.suspend.unwrap_or(false);
    let schedule = parse_schedule(&spec.schedule, spec.time_zone.as_deref());
    match (&schedule, suspended) {
        (Err(e), _) => node.events.record_for(
            &ABOUT,
            &cj.metadata,
            "Warning",
            if e.starts_with("spec.timeZone") {
                "UnknownTimeZone"
            } else {
                "UnparseableSchedule"
            },
            e.clone(),
        ),
        (Ok(_), true) => {}
        (Ok(sched), false) => {
            let created = cj
                .metadata
                .creation_timestamp
                .as_ref()
                .map(chrono_of)
                .unwrap_or(now);
            let from = earliest(last_schedule, created, spec.starting_deadline_seconds, now);
            let (recent, missed) = sched.most_recent(from, now);
            if missed > TOO_MANY_MISSED {
                node.events.record_for(
                    &ABOUT,
                    &cj.metadata,
                    "Warning",
                    "TooManyMissedTimes",
                    format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
                );
            }
            if let Some(t) = recent {
                let too_late = spec
                    .starting_deadline_seconds
                    .is_some_and(|s| t + chrono::Duration::seconds(s) < now);
                let jname = job_name(&name, t);
                let exists = jobs
                    .iter()
                    .any(|j| j.metadata.name.as_deref() == Some(&jname));
                let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
                let step = plan(policy, active.len(), exists, too_late);
                if step == Plan::MissSchedule {
                    node.events.record_for(
                        &ABOUT,
                        &cj.metadata,
                        "Warning",
                        "MissSchedule",
                        format!(
                            "Missed scheduled time to start a job: {}",
                            t.with_timezone(&sched.tz).to_rfc3339()
                        ),
                    );
                } else if step == Plan::AlreadyRan {
                    last_schedule = last_schedule.max(Some(t));
                } else if step == Plan::Wait {
                    // Forbid: wait for the running one; look again later.
                } else {
                    if step == (Plan::Start { replace: true }) {
                        for a in active.drain(..) {
                            let an = a.name.clone().unwrap_or_default();
                            match crate::server::objects::delete_object(
                                node,
                                &crate::store::key("jobs", &ns, &an),
                                crate::server::objects::Propagation::Background,
                            ) {
                                Ok(_) | Err(crate::store::StoreError::NotFound { .. }) => {
                                    node.events.record_for(
                                        &ABOUT,
                                        &cj.metadata,
                                        "Normal",
                                        "SuccessfulDelete",
                                        format!("Deleted job {an}"),
                                    )
                                }
                                Err(e) => {
                                    return Err(format!(
                                        "CronJob {ns}/{name}: replacing job {an}: {e}"
                                    ))
                                }
                            }
                        }
                    }
                    let job = create_job(node, &cj, &ns, &jname, t, &sched.tz)?;
                    node.events.record_for(
                        &ABOUT,
                        &cj.metadata,
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created job {jname}"),
                    );
                    active.push(job_ref(&job));
                    last_schedule = Some(t);
                }
            }
            again = sched
                .next_after(now)
                .map(|n| (n - now).to_std().unwrap_or_default() + Duration::from_millis(100));
        }
    }
    // Status.
    node.store
        .update_with::<CronJob>(key, |cur| {
            if cur.metadata.uid != cj.metadata.uid {
                return false;
            }
            let before = cur.status.clone();
            let st = cur.status.get_or_insert_with(Default::default);
            st.active = (!active.is_empty()).then(|| active.clone());
            st.last_schedule_time = last_schedule.map(to_time);
            st.last_successful_time = last_success.map(to_time);
            cur.status != before
        })
        .map_err(|e| e.to_string())?;
    Ok(again)
}

fn create_job(
    node: &Arc<Node>,
    cj: &CronJob,
    ns: &str,
    jname: &str,
    scheduled: DateTime<Utc>,
    tz: &chrono_tz::Tz,
) -> Result<Job, String> {
    let spec = cj.spec.clone().unwrap_or_default();
    let tmeta = spec.job_template.metadata.clone().unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_KEY.into(),
        tz.from_utc_datetime(&scheduled.naive_utc()).to_rfc3339(),
    );
    let mut job = Job {
        metadata: ObjectMeta {
            name: Some(jname.to_string()),
            namespace: Some(ns.to_string()),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner::controller_ref_to(
                "batch/v1",
                "CronJob",
                &cj.metadata,
            )]),
            ..Default::default()
        },
        spec: Some(spec.job_template.spec.clone().unwrap_or_default()),
        status: None,
    };
    super::job::default_job(&mut job);
    let who = format!("CronJob {ns}/{}", cj.metadata.name.as_deref().unwrap_or(""));
    super::job::validate_job(&job)
        .map_err(|e| format!("{who}: its jobTemplate is invalid: spec.jobTemplate.{e}"))?;
    match node.store.create(job) {
        Ok(j) => Ok(j),
        Err(crate::store::StoreError::AlreadyExists { .. }) => node
            .store
            .get::<Job>(&crate::store::key("jobs", ns, jname))
            .map_err(|e| format!("{who}: {e}"))?
            .ok_or_else(|| format!("{who}: job {jname} vanished")),
        Err(e) => Err(format!("{who}: creating job {jname}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn schedules_parse_as_kubernetes_accepts_them() {
        // (schedule, time zone, after, next)
        let cases = [
            (
                "*/1 * * * *",
                None,
                "2024-01-01T10:00:30Z",
                "2024-01-01T10:01:00Z",
            ),
            (
                "*/15 * * * *",
                None,
                "2024-01-01T10:01:00Z",
                "2024-01-01T10:15:00Z",
            ),
            (
                "@hourly",
                None,
                "2024-01-01T10:01:00Z",
                "2024-01-01T11:00:00Z",
            ),
            (
                "@daily",
                None,
                "2024-01-01T10:01:00Z",
                "2024-01-02T00:00:00Z",
            ),
            (
                "0 9 * * MON-FRI",
                None,
                "2024-01-05T10:00:00Z",
                "2024-01-08T09:00:00Z",
            ),
            // Day of month OR day of week, as cron.
            (
                "0 0 13 * 5",
                None,
                "2024-01-06T00:00:00Z",
                "2024-01-12T00:00:00Z",
            ),
            (
                "0 9 * * *",
                Some("Europe/Berlin"),
                "2024-01-01T00:00:00Z",
                "2024-01-01T08:00:00Z",
            ),
            (
                "0 9 * * *",
                Some("America/New_York"),
                "2024-07-01T00:00:00Z",
                "2024-07-01T13:00:00Z",
            ),
        ];
        for (s, tz, after, next) in cases {
            let sched = parse_schedule(s, tz).expect(s);
            assert_eq!(sched.next_after(t(after)), Some(t(next)), "{s} {tz:?}");
        }
        for bad in [
            "* * * *",
            "* * * * * *",
            "61 * * * *",
            "TZ=UTC * * * * *",
            "bogus",
        ] {
            assert!(parse_schedule(bad, None).is_err(), "{bad}");
        }
        let e = parse_schedule("* * * * *", Some("Mars/Olympus"))
            .err()
            .expect("bad zone");
        assert!(e.contains("timeZone"), "{e}");
    }

    #[test]
    fn only_the_most_recent_missed_time_runs() {
        let s = parse_schedule("*/5 * * * *", None).expect("schedule");
        // Down for 22 minutes after the 10:00 run: 10:05..10:20 missed.
        let (recent, n) = s.most_recent(t("2024-01-01T10:00:00Z"), t("2024-01-01T10:22:00Z"));
        assert_eq!((recent, n), (Some(t("2024-01-01T10:20:00Z")), 4));
        // Nothing due.
        let (recent, n) = s.most_recent(t("2024-01-01T10:20:00Z"), t("2024-01-01T10:24:59Z"));
        assert_eq!((recent, n), (None, 0));
        // A week down: more than 100 missed, still the latest.
        let (recent, n) = s.most_recent(t("2024-01-01T10:00:00Z"), t("2024-01-08T10:02:00Z"));
        assert_eq!(recent, Some(t("2024-01-08T10:00:00Z")));
        assert!(n > TOO_MANY_MISSED);
        // startingDeadlineSeconds bounds how far back to look.
        let e = earliest(
            Some(t("2024-01-01T10:00:00Z")),
            t("2023-01-01T00:00:00Z"),
            Some(200),
            t("2024-01-01T10:22:00Z"),
        );
        assert_eq!(e, t("2024-01-01T10:18:40Z"));
        assert_eq!(s.most_recent(e, t("2024-01-01T10:22:00Z")).1, 1);
        let e = earliest(
            None,
            t("2024-01-01T10:21:00Z"),
            None,
            t("2024-01-01T10:22:00Z"),
        );
        assert_eq!(s.most_recent(e, t("2024-01-01T10:22:00Z")), (None, 0));
    }

    #[test]
    fn concurrency_policies() {
        // (policy, active, exists, too late, plan)
        let cases = [
            ("Allow", 0, false, false, Plan::Start { replace: false }),
            ("Allow", 2, false, false, Plan::Start { replace: false }),
            ("Forbid", 0, false, false, Plan::Start { replace: false }),
            ("Forbid", 1, false, false, Plan::Wait),
            ("Replace", 1, false, false, Plan::Start { replace: true }),
            ("Replace", 0, false, false, Plan::Start { replace: false }),
            ("Allow", 0, true, false, Plan::AlreadyRan),
            ("Forbid", 1, false, true, Plan::MissSchedule),
        ];
        for (policy, active, exists, late, want) in cases {
            assert_eq!(
                plan(policy, active, exists, late),
                want,
                "{policy} {active} {exists} {late}"
            );
        }
    }

    #[test]
    fn job_names_are_minutes_since_the_epoch() {
        assert_eq!(
            job_name("hello", t("2024-01-01T00:00:00Z")),
            "hello-28401120"
        );
    }

    #[test]
    fn history_keeps_the_newest_per_outcome() {
        let j = |n: &str, m: i64, ok: bool| {
            (
                n.to_string(),
                t("2024-01-01T00:00:00Z") + chrono::Duration::minutes(m),
                ok,
            )
        };
        let jobs = [
            j("ok1", 1, true),
            j("ok2", 2, true),
            j("bad1", 3, false),
            j("ok3", 4, true),
            j("bad2", 5, false),
            j("ok4", 6, true),
        ];
        assert_eq!(history_to_delete(&jobs, 3, 1), ["ok1", "bad1"]);
        assert_eq!(history_to_delete(&jobs, 0, 0).len(), 6);
        assert!(history_to_delete(&jobs, 10, 10).is_empty());
    }

    #[test]
    fn defaults_and_validation() {
        let mut cj: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "hello" },
            "spec": { "schedule": "*/1 * * * *", "jobTemplate": { "spec": { "template": { "spec": {
                "restartPolicy": "OnFailure", "containers": [{ "name": "c", "image": "x" }] } } } } }
        }))
        .expect("cronjob");
        default_cronjob(&mut cj);
        let spec = cj.spec.as_ref().expect("spec");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Allow"));
        assert_eq!(
            (
                spec.successful_jobs_history_limit,
                spec.failed_jobs_history_limit
            ),
            (Some(3), Some(1))
        );
        assert!(validate_cronjob(&cj).is_ok());
        if let Some(s) = cj.spec.as_mut() {
            s.concurrency_policy = Some("Sometimes".into());
        }
        assert!(validate_cronjob(&cj).is_err());
    }
}
