//! Jobs, CronJobs, StatefulSets, DaemonSets and persistent volumes with
//! real pods, as the user sees them through the CLI.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn json(d: &Daemon, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&d.ok(&a)).expect("json")
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn has_condition(v: &Value, type_: &str) -> bool {
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

fn is_active(p: &Value) -> bool {
    !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        && p["metadata"]["deletionTimestamp"].is_null()
}

/// The row of `name` in `get KIND`, split at runs of 2+ spaces.
fn row(d: &Daemon, kind: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let out = d.ok(&["get", kind]);
    let split = |l: &str| -> Vec<String> {
        l.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let mut lines = out.lines();
    let head = split(lines.next().unwrap_or(""));
    let r = lines
        .map(split)
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no {kind} row for {name}:\n{out}"));
    (head, r)
}

fn wait_for<T>(d: &Daemon, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            panic!(
                "never {what}\n--- daemon log ---\n{}",
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn job_yaml(name: &str, spec: &str, command: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\nspec:\n{spec}  template:\n    spec:\n      restartPolicy: Never\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {BUSYBOX}\n        command: [sh, -c, '{command}']\n"
    )
}

#[test]
fn job_runs_five_completions_at_most_two_at_a_time() {
    let d = Daemon::start();
    let out = d.apply_ok(&job_yaml(
        "five",
        "  completions: 5\n  parallelism: 2\n",
        "sleep 1",
    ));
    assert!(out.contains("job.batch/five created"), "{out}");
    let mut max_active = 0;
    let mut seen = BTreeSet::new();
    let job = wait_for(&d, "completed job five", 120, || {
        let pods = items(&json(&d, &["get", "pods", "-l", "job-name=five"]));
        let active = pods.iter().filter(|p| is_active(p)).count();
        max_active = max_active.max(active);
        for p in &pods {
            seen.insert(p["metadata"]["name"].as_str().unwrap_or("").to_string());
        }
        let job = json(&d, &["get", "job", "five"]);
        has_condition(&job, "Complete").then_some(job)
    });
    assert!(max_active <= 2, "saw {max_active} active pods at once");
    assert!(max_active >= 1);
    let pods = items(&json(&d, &["get", "pods", "-l", "job-name=five"]));
    let succeeded = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count();
    assert_eq!(succeeded, 5, "pods: {seen:?}");
    assert_eq!(pods.len(), 5, "exactly 5 pods ran: {seen:?}");
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(job["status"]["succeeded"], 5);
    assert!(job["status"]["completionTime"].is_string());
    for p in &pods {
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "five"
        );
        assert_eq!(
            p["metadata"]["labels"]["controller-uid"],
            job["metadata"]["uid"]
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    }
    let (head, r) = row(&d, "jobs", "five");
    assert_eq!(head, ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]);
    assert_eq!(r[1], "Complete");
    assert_eq!(r[2], "5/5");
    // Deleting the Job deletes its pods.
    d.ok(&["delete", "job", "five"]);
    wait_for(&d, "pods of job five gone", 60, || {
        items(&json(&d, &["get", "pods", "-l", "job-name=five"]))
            .is_empty()
            .then_some(())
    });
}

#[test]
fn failing_job_stops_at_backoff_limit() {
    let d = Daemon::start();
    d.apply_ok(&job_yaml("bad", "  backoffLimit: 1\n", "exit 3"));
    let job = wait_for(&d, "failed job bad", 120, || {
        let job = json(&d, &["get", "job", "bad"]);
        has_condition(&job, "Failed").then_some(job)
    });
    let failed = job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{job}");
    assert_eq!(job["status"]["failed"], 2, "{job}");
    // No more pods after failing: still exactly two, both failed.
    std::thread::sleep(Duration::from_secs(2));
    let pods = items(&json(&d, &["get", "pods", "-l", "job-name=bad"]));
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Failed"));
    // The second pod waited out the back-off (10 s) after the first failed.
    let finished = |p: &Value| {
        p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    let created = |p: &Value| {
        p["metadata"]["creationTimestamp"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    let mut ps = pods.clone();
    ps.sort_by_key(|p| created(p));
    let gap = created(&ps[1]).expect("created") - finished(&ps[0]).expect("finished");
    assert!(gap.num_seconds() >= 9, "back-off was {gap}");
    let (_, r) = row(&d, "jobs", "bad");
    assert_eq!((r[1].as_str(), r[2].as_str()), ("Failed", "0/1"));
    let events = d.ok(&["describe", "job", "bad"]);
    assert!(events.contains("BackoffLimitExceeded"), "{events}");
}

#[test]
fn indexed_job_runs_each_index_once() {
    let d = Daemon::start();
    d.apply_ok(&job_yaml(
        "idx",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n",
        "echo index=$JOB_COMPLETION_INDEX host=$(hostname)",
    ));
    let job = wait_for(&d, "completed job idx", 120, || {
        let job = json(&d, &["get", "job", "idx"]);
        has_condition(&job, "Complete").then_some(job)
    });
    assert_eq!(job["status"]["completedIndexes"], "0-2");
    let pods = items(&json(&d, &["get", "pods", "-l", "job-name=idx"]));
    assert_eq!(pods.len(), 3);
    let mut indexes = BTreeSet::new();
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or("");
        let ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .expect("index annotation")
            .to_string();
        assert!(name.starts_with(&format!("idx-{ix}-")), "{name}");
        let logs = d.ok(&["logs", name]);
        assert_eq!(logs.trim(), format!("index={ix} host=idx-{ix}"));
        indexes.insert(ix);
    }
    assert_eq!(indexes.into_iter().collect::<Vec<_>>(), ["0", "1", "2"]);
}

#[test]
fn cronjob_fires_on_schedule() {
    let d = Daemon::start();
    let out = d.apply_ok(&format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\nspec:\n  schedule: '*/1 * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          terminationGracePeriodSeconds: 1\n          containers:\n          - name: main\n            image: {BUSYBOX}\n            command: [echo, tick]\n"
    ));
    assert!(out.contains("cronjob.batch/tick created"), "{out}");
    let (head, r) = row(&d, "cronjobs", "tick");
    assert_eq!(
        head,
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(&r[1..6], ["*/1 * * * *", "<none>", "False", "0", "<none>"]);
    // Within the next minute (and a margin) a Job runs to completion.
    let job = wait_for(&d, "a completed job of cronjob tick", 80, || {
        items(&json(&d, &["get", "jobs"]))
            .into_iter()
            .find(|j| has_condition(j, "Complete"))
    });
    let cj = json(&d, &["get", "cronjob", "tick"]);
    let scheduled = chrono::DateTime::parse_from_rfc3339(
        cj["status"]["lastScheduleTime"]
            .as_str()
            .expect("lastScheduleTime"),
    )
    .expect("time");
    assert_eq!(scheduled.timestamp() % 60, 0);
    assert_eq!(
        job["metadata"]["name"].as_str().unwrap_or(""),
        format!("tick-{}", scheduled.timestamp() / 60)
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    let jname = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let pods = items(&json(
        &d,
        &["get", "pods", "-l", &format!("job-name={jname}")],
    ));
    assert_eq!(pods.len(), 1);
    let pname = pods[0]["metadata"]["name"].as_str().unwrap_or("");
    assert_eq!(d.ok(&["logs", pname]).trim(), "tick");
    wait_for(&d, "lastSuccessfulTime set", 20, || {
        json(&d, &["get", "cronjob", "tick"])["status"]["lastSuccessfulTime"]
            .as_str()
            .map(|_| ())
    });
    let (_, r) = row(&d, "cronjobs", "tick");
    assert_ne!(r[5], "<none>");
    // Deleting the CronJob deletes its Jobs and their pods.
    d.ok(&["delete", "cronjob", "tick"]);
    wait_for(&d, "jobs of tick gone", 60, || {
        items(&json(&d, &["get", "jobs"])).is_empty().then_some(())
    });
}

fn sts_yaml(replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  serviceName: web\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {BUSYBOX}\n        command: [sleep, '3600']\n        volumeMounts:\n        - {{name: data, mountPath: /data}}\n  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources:\n        requests:\n          storage: 10Mi\n"
    )
}

/// The set's pods by ordinal: (exists and not terminating, Ready).
fn members(d: &Daemon) -> Vec<(String, bool, bool)> {
    let mut v: Vec<(String, bool, bool)> = items(&json(d, &["get", "pods", "-l", "app=web"]))
        .iter()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["metadata"]["deletionTimestamp"].is_null(),
                ready,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn statefulset_scales_in_order_and_keeps_its_volumes() {
    let d = Daemon::start();
    let out = d.apply_ok(&sts_yaml(3));
    assert!(out.contains("statefulset.apps/web created"), "{out}");
    // 0→3: web-N appears only once web-(N-1) is Ready.
    let mut order = Vec::new();
    wait_for(&d, "3 ready pods of web", 120, || {
        let m = members(&d);
        for (name, _, _) in &m {
            if !order.contains(name) {
                order.push(name.clone());
            }
        }
        for i in 1..3 {
            let this = format!("web-{i}");
            let prev = format!("web-{}", i - 1);
            if m.iter().any(|(n, _, _)| *n == this) {
                assert!(
                    m.iter()
                        .any(|(n, live, ready)| *n == prev && *live && *ready),
                    "{this} exists before {prev} is Ready: {m:?}"
                );
            }
        }
        (m.len() == 3 && m.iter().all(|(_, live, ready)| *live && *ready)).then_some(())
    });
    assert_eq!(order, ["web-0", "web-1", "web-2"]);
    let p1 = d.pod("web-1");
    assert_eq!(p1["spec"]["hostname"], "web-1");
    assert_eq!(p1["spec"]["subdomain"], "web");
    assert_eq!(
        p1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-1"
    );
    assert_eq!(d.exec_ok("web-1", "main", &["hostname"]).trim(), "web-1");
    d.exec_ok("web-1", "main", &["sh", "-c", "echo kept > /data/f"]);
    let (head, r) = row(&d, "statefulsets", "web");
    assert_eq!(head, ["NAME", "READY", "AGE"]);
    assert_eq!(r[1], "3/3");
    // Claims: one per pod, bound to provisioned volumes.
    let (head, r) = row(&d, "pvc", "data-web-1");
    assert_eq!(
        head,
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    assert_eq!(r[1], "Bound");
    assert_eq!(
        (r[3].as_str(), r[4].as_str(), r[5].as_str()),
        ("10Mi", "RWO", "local")
    );
    let pv = r[2].clone();
    let (_, r) = row(&d, "pv", &pv);
    assert_eq!(r[4], "Bound");
    assert_eq!(r[5], "default/data-web-1");
    let (_, r) = row(&d, "storageclass", "local (default)");
    assert_eq!(r[1], "peapod.io/local");

    // 3→1: web-2 goes before web-1, one at a time.
    d.apply_ok(&sts_yaml(1));
    let mut gone = Vec::new();
    wait_for(&d, "web scaled to 1", 120, || {
        let m = members(&d);
        let live = |n: &str| m.iter().any(|(x, l, _)| x == n && *l);
        let present = |n: &str| m.iter().any(|(x, _, _)| x == n);
        if !live("web-1") {
            assert!(
                !present("web-2"),
                "web-1 deleted while web-2 is there: {m:?}"
            );
        }
        for n in ["web-1", "web-2"] {
            if !present(n) && !gone.contains(&n.to_string()) {
                gone.push(n.to_string());
            }
        }
        (m.len() == 1 && live("web-0")).then_some(())
    });
    assert_eq!(gone, ["web-2", "web-1"]);
    // The claims stay.
    let pvcs = items(&json(&d, &["get", "pvc"]));
    assert_eq!(pvcs.len(), 3);

    // Back to 3: web-1 finds its data.
    d.apply_ok(&sts_yaml(3));
    wait_for(&d, "3 ready pods of web again", 120, || {
        let m = members(&d);
        (m.len() == 3 && m.iter().all(|(_, live, ready)| *live && *ready)).then_some(())
    });
    assert_eq!(
        d.exec_ok("web-1", "main", &["cat", "/data/f"]).trim(),
        "kept"
    );

    // Deleting the set leaves the claims; deleting a claim (reclaim
    // policy Delete) removes its volume.
    d.ok(&["delete", "statefulset", "web"]);
    wait_for(&d, "pods of web gone", 60, || {
        members(&d).is_empty().then_some(())
    });
    for i in 0..3 {
        d.ok(&["delete", "pvc", &format!("data-web-{i}")]);
    }
    wait_for(&d, "volumes reclaimed", 30, || {
        items(&json(&d, &["get", "pv"])).is_empty().then_some(())
    });
}

fn ds_yaml(name: &str, selector: &str, image_arg: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n{selector}      containers:\n      - name: main\n        image: {BUSYBOX}\n        command: [sleep, '{image_arg}']\n"
    )
}

#[test]
fn daemonset_places_one_pod_where_it_fits() {
    let d = Daemon::start();
    d.apply_ok(&ds_yaml("agent", "", "3600"));
    // A selector that the node does not match: no pod.
    d.apply_ok(&ds_yaml(
        "picky",
        "      nodeSelector: {disk: ssd}\n",
        "3600",
    ));
    let pod = wait_for(&d, "the agent pod running", 60, || {
        let pods = items(&json(&d, &["get", "pods", "-l", "app=agent"]));
        pods.into_iter().find(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    let node = json(&d, &["get", "nodes"]);
    let node_name = items(&node)[0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(pod["spec"]["nodeName"], node_name.as_str());
    wait_for(&d, "agent status", 30, || {
        let (_, r) = row(&d, "daemonsets", "agent");
        (r[1..6] == ["1", "1", "1", "1", "1"]).then_some(())
    });
    let (head, r) = row(&d, "ds", "picky");
    assert_eq!(
        head,
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(&r[1..7], ["0", "0", "0", "0", "0", "disk=ssd"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(items(&json(&d, &["get", "pods", "-l", "app=picky"])).is_empty());
    assert_eq!(
        items(&json(&d, &["get", "pods", "-l", "app=agent"])).len(),
        1
    );

    // A rolling update replaces the pod with one of the new template.
    let old = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    d.apply_ok(&ds_yaml("agent", "", "3601"));
    wait_for(&d, "the agent pod replaced", 60, || {
        let pods = items(&json(&d, &["get", "pods", "-l", "app=agent"]));
        (pods.len() == 1
            && pods[0]["metadata"]["name"] != old.as_str()
            && pods[0]["spec"]["containers"][0]["command"][1] == "3601"
            && pods[0]["status"]["phase"] == "Running")
            .then_some(())
    });
}

fn condition_reason(job: &Value, type_: &str) -> String {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_ && c["status"] == "True")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

#[test]
fn job_deadline_failure_policy_suspend_and_ttl() {
    let d = Daemon::start();
    d.apply_ok(&job_yaml(
        "slow",
        "  activeDeadlineSeconds: 2\n",
        "sleep 60",
    ));
    d.apply_ok(&job_yaml(
        "fatal",
        "  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes: {containerName: main, operator: In, values: [42]}\n",
        "exit 42",
    ));
    d.apply_ok(&job_yaml("brief", "  ttlSecondsAfterFinished: 1\n", "true"));
    d.apply_ok(&job_yaml("later", "  suspend: true\n", "echo resumed"));

    let slow = wait_for(&d, "job slow past its deadline", 60, || {
        let j = json(&d, &["get", "job", "slow"]);
        has_condition(&j, "Failed").then_some(j)
    });
    assert_eq!(condition_reason(&slow, "Failed"), "DeadlineExceeded");
    wait_for(&d, "the pod of slow deleted", 60, || {
        items(&json(&d, &["get", "pods", "-l", "job-name=slow"]))
            .is_empty()
            .then_some(())
    });

    let fatal = wait_for(&d, "job fatal failed by its policy", 60, || {
        let j = json(&d, &["get", "job", "fatal"]);
        has_condition(&j, "Failed").then_some(j)
    });
    assert_eq!(condition_reason(&fatal, "Failed"), "PodFailurePolicy");
    assert_eq!(
        items(&json(&d, &["get", "pods", "-l", "job-name=fatal"])).len(),
        1,
        "no retry after a FailJob rule"
    );

    // The TTL removes a finished Job and its pods.
    wait_for(&d, "job brief removed after its TTL", 60, || {
        let out = d.peapod(&["get", "job", "brief"]);
        (!out.status.success() && stderr(&out).contains("not found")).then_some(())
    });
    wait_for(&d, "pods of brief gone", 60, || {
        items(&json(&d, &["get", "pods", "-l", "job-name=brief"]))
            .is_empty()
            .then_some(())
    });

    // Suspended: no pods until resumed.
    let later = json(&d, &["get", "job", "later"]);
    assert_eq!(condition_reason(&later, "Suspended"), "JobSuspended");
    assert!(items(&json(&d, &["get", "pods", "-l", "job-name=later"])).is_empty());
    assert_eq!(row(&d, "jobs", "later").1[1], "Suspended");
    d.apply_ok(&job_yaml("later", "  suspend: false\n", "echo resumed"));
    let later = wait_for(&d, "job later complete", 60, || {
        let j = json(&d, &["get", "job", "later"]);
        has_condition(&j, "Complete").then_some(j)
    });
    let resumed = later["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Suspended")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (resumed["status"].as_str(), resumed["reason"].as_str()),
        (Some("False"), Some("JobResumed"))
    );
}

#[test]
fn job_survives_a_daemon_restart_without_extra_pods() {
    let mut d = Daemon::start();
    d.apply_ok(&job_yaml(
        "steady",
        "  completions: 3\n  parallelism: 1\n",
        "sleep 2",
    ));
    wait_for(&d, "a first pod of steady", 60, || {
        (!items(&json(&d, &["get", "pods", "-l", "job-name=steady"])).is_empty()).then_some(())
    });
    d.restart(&[]);
    let job = wait_for(&d, "job steady complete", 120, || {
        let j = json(&d, &["get", "job", "steady"]);
        has_condition(&j, "Complete").then_some(j)
    });
    assert_eq!(job["status"]["succeeded"], 3);
    let pods = items(&json(&d, &["get", "pods", "-l", "job-name=steady"]));
    let ok = pods
        .iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .count();
    assert_eq!((pods.len(), ok), (3, 3), "{pods:?}");
}

#[test]
fn pod_mounts_a_claim_that_is_kept_while_in_use() {
    let d = Daemon::start();
    // The pod first: it waits for its claim.
    d.apply_ok(&pod_manifest(
        "user",
        &format!("  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    volumeMounts:\n    - {{name: v, mountPath: /data}}\n  volumes:\n  - name: v\n    persistentVolumeClaim: {{claimName: store}}\n"),
    ));
    let events = d.wait_event("user", "FailedMount");
    assert!(
        events
            .iter()
            .any(|(_, m)| m.contains("\"store\" not found")),
        "{events:?}"
    );
    d.apply_ok(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: store\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 5Mi\n",
    );
    d.wait_running("user");
    d.exec_ok("user", "main", &["sh", "-c", "echo saved > /data/f"]);
    let claim = json(&d, &["get", "pvc", "store"]);
    let pv = claim["spec"]["volumeName"]
        .as_str()
        .expect("bound")
        .to_string();
    let pv_obj = json(&d, &["get", "pv", &pv]);
    let dir = pv_obj["spec"]["hostPath"]["path"]
        .as_str()
        .expect("hostPath")
        .to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/f")).expect("file in the volume dir"),
        "saved\n"
    );
    // Deleting the claim while the pod uses it only marks it.
    d.ok(&["delete", "pvc", "store", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    let claim = json(&d, &["get", "pvc", "store"]);
    assert!(
        claim["metadata"]["deletionTimestamp"].is_string(),
        "{claim}"
    );
    assert!(std::path::Path::new(&dir).is_dir());
    // Once the pod is gone, the claim goes, and its volume and directory
    // with it (reclaim policy Delete).
    d.ok(&["delete", "pod", "user"]);
    wait_for(&d, "claim store and its volume gone", 60, || {
        let c = d.peapod(&["get", "pvc", "store"]);
        (!c.status.success() && items(&json(&d, &["get", "pv"])).is_empty()).then_some(())
    });
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
}

fn plain_sts(policy: &str, partition: i32, arg: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 3\n  podManagementPolicy: {policy}\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate: {{partition: {partition}}}\n  selector:\n    matchLabels: {{app: db}}\n  template:\n    metadata:\n      labels: {{app: db}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {BUSYBOX}\n        command: [sleep, '{arg}']\n"
    )
}

/// uid and command argument of each pod of set db, by name.
fn db_pods(d: &Daemon) -> std::collections::BTreeMap<String, (String, String, bool)> {
    items(&json(d, &["get", "pods", "-l", "app=db"]))
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                (
                    p["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                    p["spec"]["containers"][0]["command"][1]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    ready,
                ),
            )
        })
        .collect()
}

#[test]
fn statefulset_rolls_highest_ordinal_first_down_to_the_partition() {
    let d = Daemon::start();
    d.apply_ok(&plain_sts("Parallel", 1, "3600"));
    let before = wait_for(&d, "3 ready pods of db", 90, || {
        let m = db_pods(&d);
        (m.len() == 3 && m.values().all(|v| v.2)).then_some(m)
    });
    d.apply_ok(&plain_sts("Parallel", 1, "3601"));
    // Record the order in which pods get the new template.
    let mut order: Vec<String> = Vec::new();
    wait_for(&d, "db-2 and db-1 updated", 90, || {
        let m = db_pods(&d);
        for (n, (_, arg, _)) in &m {
            if arg == "3601" && !order.contains(n) {
                order.push(n.clone());
            }
        }
        (order.len() == 2 && m.len() == 3 && m.values().all(|v| v.2)).then_some(())
    });
    assert_eq!(order, ["db-2", "db-1"]);
    std::thread::sleep(Duration::from_secs(2));
    let after = db_pods(&d);
    // db-0 is below the partition: untouched.
    assert_eq!(after["db-0"].0, before["db-0"].0);
    assert_eq!(after["db-0"].1, "3600");
    let st = json(&d, &["get", "sts", "db"]);
    assert_eq!(st["status"]["updatedReplicas"], 2, "{}", st["status"]);
    assert_ne!(
        st["status"]["currentRevision"],
        st["status"]["updateRevision"]
    );
    // Partition 0 finishes the rollout.
    d.apply_ok(&plain_sts("Parallel", 0, "3601"));
    wait_for(&d, "db-0 updated", 90, || {
        let st = json(&d, &["get", "sts", "db"]);
        (db_pods(&d)
            .get("db-0")
            .is_some_and(|p| p.1 == "3601" && p.2)
            && st["status"]["updatedReplicas"] == 3
            && st["status"]["currentRevision"] == st["status"]["updateRevision"])
            .then_some(())
    });
}
