//! Integration tests of the workload controllers and the garbage
//! collector: real Deployments, ReplicaSets and pods on the real kernel,
//! each test with its own daemon (see `common`).

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A Deployment of busybox pods that become Ready about a second after
/// they start (a readiness probe on a file the command creates), so a
/// rollout goes through observable steps.
fn deployment(name: &str, replicas: i32, strategy: &str, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
{strategy}  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {BUSYBOX}
        command: [sh, -c, 'sleep 1; touch /tmp/ready; echo {tag}; exec sleep 3600']
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
"
    )
}

fn get_json(d: &Daemon, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&d.ok(&a)).expect("json")
}

/// Wait (up to 90 s) until `f` holds for the Deployment.
fn wait_deploy(d: &Daemon, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = get_json(d, &["deploy", name]);
        if f(&v) {
            return v;
        }
        if start.elapsed() > Duration::from_secs(90) {
            panic!(
                "deployment {name} never became {what}: generation {}, status {}\n--- replica sets ---\n{}\n--- pods ---\n{}\n--- describe ---\n{}",
                v["metadata"]["generation"],
                serde_json::to_string(&v["status"]).unwrap_or_default(),
                d.ok(&["get", "rs", "-o", "json"]),
                d.ok(&["get", "pods"]),
                describe_unready(d)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `describe` of every pod that is not Ready, for a failure's message.
fn describe_unready(d: &Daemon) -> String {
    pods(d)
        .iter()
        .filter(|(_, p)| !ready(p))
        .map(|(name, _)| d.ok(&["describe", "pod", name]))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n--- daemon log (no INFO) ---\n"
        + &std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("INFO"))
            .take(80)
            .collect::<Vec<_>>()
            .join("\n")
}

fn complete(v: &Value) -> bool {
    let want = v["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &v["status"];
    st["observedGeneration"] == v["metadata"]["generation"]
        && st["updatedReplicas"].as_i64() == Some(want)
        && st["replicas"].as_i64() == Some(want)
        && st["availableReplicas"].as_i64() == Some(want)
}

/// Pods (name -> object) of the default namespace.
fn pods(d: &Daemon) -> BTreeMap<String, Value> {
    get_json(d, &["pods"])["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p.clone(),
            )
        })
        .collect()
}

fn active(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Wait until `f` holds for the pods.
fn wait_pods(
    d: &Daemon,
    what: &str,
    f: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    let start = Instant::now();
    loop {
        let p = pods(d);
        if f(&p) {
            return p;
        }
        if start.elapsed() > Duration::from_secs(90) {
            panic!(
                "pods never became {what}: {:?}",
                p.keys().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn hash_of(p: &Value) -> String {
    p["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn deployment_heals_a_deleted_and_a_killed_pod() {
    let d = Daemon::start();
    let out = d.apply_ok(&deployment("web", 3, "", "v1"));
    assert_eq!(out.trim(), "deployment.apps/web created");
    wait_deploy(&d, "web", "complete", complete);
    let before = pods(&d);
    assert_eq!(before.len(), 3, "{:?}", before.keys());
    let rs = get_json(&d, &["rs"]);
    let rs_name = rs["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    for (name, p) in &before {
        assert!(
            name.starts_with(&format!("{rs_name}-")),
            "{name} not named after {rs_name}"
        );
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["name"], rs_name.as_str());
        assert_eq!(owner["controller"], true);
    }
    // The columns kubectl prints.
    let table = d.ok(&["get", "deploy/web"]);
    let head: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(head, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["web", "3/3", "3", "3"]);
    let table = d.ok(&["get", "rs"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], [rs_name.as_str(), "3", "3", "3"]);

    // A deleted pod is replaced by a new one.
    let victim = before.keys().next().cloned().unwrap_or_default();
    d.ok(&["delete", "pod", &victim, "--wait=false"]);
    let after = wait_pods(&d, "3 ready again without the deleted one", |p| {
        let live: Vec<_> = p.values().filter(|p| active(p) && ready(p)).collect();
        live.len() == 3 && !p.contains_key(&victim)
    });
    let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new.len(), 1, "one replacement: {:?}", after.keys());

    // A killed container is restarted in its pod (kubelet's part): the
    // Deployment is whole again with the same pods.
    let target = after.keys().next().cloned().unwrap_or_default();
    let pid = d.pid(&target, "c");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    d.wait_pod(&target, "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
    });
    wait_deploy(&d, "web", "complete again", complete);
    let names: BTreeSet<_> = pods(&d).into_keys().collect();
    assert_eq!(names, after.keys().cloned().collect::<BTreeSet<_>>());
    let events = d.ok(&["describe", "rs", &rs_name]);
    assert!(events.contains("SuccessfulCreate"), "{events}");

    // `rollout restart` replaces every pod.
    let before: BTreeSet<String> = pods(&d).into_keys().collect();
    assert_eq!(
        d.ok(&["rollout", "restart", "deploy/web"]).trim(),
        "deployment.apps/web restarted"
    );
    wait_deploy(&d, "web", "restarted", |v| {
        complete(v) && v["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    });
    let after = wait_pods(&d, "3 new pods", |p| p.len() == 3);
    assert!(
        after.keys().all(|k| !before.contains(k)),
        "{:?}",
        after.keys()
    );
}

/// Replays a pod watch and checks at every event: available pods >=
/// replicas - maxUnavailable and counted pods <= replicas + maxSurge
/// (once the `initial` pods listed first are in).
fn check_rollout(
    events: &[Value],
    initial: usize,
    replicas: usize,
    surge: usize,
    unavailable: usize,
) -> (usize, usize) {
    let mut state: BTreeMap<String, Value> = BTreeMap::new();
    let (mut min_avail, mut max_total) = (usize::MAX, 0);
    for (i, e) in events.iter().enumerate() {
        let o = &e["object"];
        let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
        match e["type"].as_str() {
            Some("DELETED") => {
                state.remove(&name);
            }
            Some("ADDED" | "MODIFIED") => {
                state.insert(name, o.clone());
            }
            _ => continue,
        }
        if i + 1 < initial {
            continue;
        }
        let total = state.values().filter(|p| active(p)).count();
        let available = state.values().filter(|p| active(p) && ready(p)).count();
        min_avail = min_avail.min(available);
        max_total = max_total.max(total);
        assert!(
            available + unavailable >= replicas,
            "event {i}: only {available} available pods (maxUnavailable {unavailable}): {:?}",
            state.keys()
        );
        assert!(
            total <= replicas + surge,
            "event {i}: {total} pods (maxSurge {surge}): {:?}",
            state.keys()
        );
    }
    (min_avail, max_total)
}

#[test]
fn rolling_update_stays_within_max_surge_and_max_unavailable_and_undo_returns() {
    let d = Daemon::start();
    let strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}\n";
    d.apply_ok(&deployment("web", 4, strategy, "v1"));
    wait_deploy(&d, "web", "complete", complete);
    let v1: BTreeSet<String> = pods(&d).values().map(hash_of).collect();
    assert_eq!(v1.len(), 1);

    // Watch pods while the template changes.
    let stop = AtomicBool::new(false);
    let events = std::thread::scope(|s| {
        let w = s.spawn(|| {
            d.api_watch_until(
                "/api/v1/namespaces/default/pods?watch=1",
                &stop,
                Duration::from_secs(120),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        d.apply_ok(&deployment("web", 4, strategy, "v2"));
        let status = d.ok(&["rollout", "status", "deploy/web", "--timeout", "90s"]);
        assert!(
            status
                .trim_end()
                .ends_with("deployment \"web\" successfully rolled out"),
            "{status}"
        );
        // The old pods finish terminating.
        wait_pods(&d, "only the new pods", |p| p.len() == 4);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        w.join().expect("watcher")
    });
    let (min_avail, max_total) = check_rollout(&events, 4, 4, 1, 1);
    // The rollout did go through intermediate states.
    assert!(
        max_total == 5 || min_avail == 3,
        "min available {min_avail}, max pods {max_total}"
    );
    let now = pods(&d);
    let v2: BTreeSet<String> = now.values().map(hash_of).collect();
    assert_eq!(v2.len(), 1);
    assert!(v1.is_disjoint(&v2), "the pods were replaced");
    let dep = get_json(&d, &["deploy", "web"]);
    assert_eq!(
        dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let conds = dep["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True"),
        "{conds:?}"
    );
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable"),
        "{conds:?}"
    );
    let history = d.ok(&["rollout", "history", "deploy/web"]);
    let revs: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["1", "2"], "{history}");

    // Undo: back to the first template (its ReplicaSet is reused).
    assert_eq!(
        d.ok(&["rollout", "undo", "deploy/web"]).trim(),
        "deployment.apps/web rolled back"
    );
    wait_deploy(&d, "web", "rolled back", complete);
    let back = wait_pods(&d, "only the first template's pods", |p| {
        p.len() == 4 && p.values().all(|p| v1.contains(&hash_of(p)))
    });
    let some = back.keys().next().cloned().unwrap_or_default();
    d.wait_running(&some);
    let logs = d.ok(&["logs", &some]);
    assert_eq!(logs.trim(), "v1");
    let dep = get_json(&d, &["deploy", "web"]);
    assert_eq!(
        dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        get_json(&d, &["rs"])["items"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn delete_cascades_background_foreground_and_orphan() {
    let d = Daemon::start();
    for n in ["bg", "fg", "orph"] {
        d.apply_ok(&deployment(n, 2, "", n));
    }
    for n in ["bg", "fg", "orph"] {
        wait_deploy(&d, n, "complete", complete);
    }
    let app_pods = |app: &str| -> Vec<Value> {
        pods(&d)
            .into_values()
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .collect()
    };
    let app_rs = |app: &str| -> Vec<Value> {
        get_json(&d, &["rs"])["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["metadata"]["labels"]["app"] == app)
            .cloned()
            .collect()
    };

    // Foreground: when the delete returns, the dependents are gone.
    let out = d.ok(&["delete", "deploy", "fg", "--cascade=foreground"]);
    assert_eq!(out.trim(), "deployment.apps \"fg\" deleted");
    assert!(
        app_pods("fg").is_empty(),
        "pods outlived their foreground-deleted owner"
    );
    assert!(app_rs("fg").is_empty());

    // Orphan: the ReplicaSet and pods stay, without the ownerReference.
    let orphan_pods: BTreeSet<String> = app_pods("orph")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    d.ok(&["delete", "deploy", "orph", "--cascade=orphan"]);
    let rs = app_rs("orph");
    assert_eq!(rs.len(), 1);
    assert!(
        rs[0]["metadata"]["ownerReferences"].is_null(),
        "{}",
        rs[0]["metadata"]
    );
    std::thread::sleep(Duration::from_secs(1));
    let still: BTreeSet<String> = app_pods("orph")
        .iter()
        .filter(|p| active(p))
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(still, orphan_pods, "orphaned pods keep running");

    // Background: the owner goes at once, then its dependents.
    d.ok(&["delete", "deploy", "bg"]);
    assert!(d.peapod(&["get", "deploy", "bg"]).status.code() != Some(0));
    wait_pods(&d, "without bg's pods", |p| {
        !p.values().any(|p| p["metadata"]["labels"]["app"] == "bg")
    });
    assert!(app_rs("bg").is_empty());

    // The orphaned ReplicaSet still owns its pods: deleting it takes them.
    let rs_name = rs[0]["metadata"]["name"].as_str().unwrap_or("").to_string();
    d.ok(&["delete", "rs", &rs_name]);
    wait_pods(&d, "empty", |p| p.is_empty());
}

#[test]
fn a_daemon_killed_mid_rollout_finishes_it_without_duplicates() {
    let mut d = Daemon::start();
    let strategy = "  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    d.apply_ok(&deployment("web", 4, strategy, "v1"));
    wait_deploy(&d, "web", "complete", complete);
    d.apply_ok(&deployment("web", 4, strategy, "v2"));
    // Mid-rollout: the new ReplicaSet has pods, the old one still has.
    wait_pods(&d, "mid-rollout", |p| {
        let hashes: BTreeSet<String> = p.values().filter(|p| active(p)).map(hash_of).collect();
        hashes.len() == 2
    });
    d.kill9();
    std::thread::sleep(Duration::from_millis(500));
    d.restart(&[]);
    let dep = wait_deploy(&d, "web", "complete after the restart", complete);
    assert_eq!(dep["status"]["replicas"], 4);
    let after = wait_pods(&d, "4 pods", |p| p.len() == 4);
    let hashes: BTreeSet<String> = after.values().map(hash_of).collect();
    assert_eq!(
        hashes.len(),
        1,
        "all pods of the new template: {:?}",
        after.keys()
    );
    assert!(after.values().all(|p| active(p) && ready(p)));
    let rs = get_json(&d, &["rs"]);
    let counts: Vec<(String, i64)> = rs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["metadata"]["name"].as_str().unwrap_or("").to_string(),
                r["spec"]["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(counts.iter().map(|c| c.1).sum::<i64>(), 4, "{counts:?}");
}

#[test]
fn scale_set_image_pause_resume_and_recreate() {
    let d = Daemon::start();
    let recreate = "  strategy: {type: Recreate}\n";
    d.apply_ok(&deployment("web", 2, recreate, "v1"));
    wait_deploy(&d, "web", "complete", complete);
    assert_eq!(
        d.ok(&["scale", "deploy/web", "--replicas=3"]).trim(),
        "deployment.apps/web scaled"
    );
    wait_deploy(&d, "web", "scaled to 3", |v| {
        complete(v) && v["status"]["replicas"] == 3
    });

    // Paused: a template change is not rolled out; resumed, it is, and
    // Recreate stops every old pod before a new one starts.
    d.ok(&["rollout", "pause", "deploy/web"]);
    let before = pods(&d);
    assert_eq!(
        d.ok(&["set", "image", "deploy/web", &format!("c={HTTPD}")])
            .trim(),
        "deployment.apps/web image updated"
    );
    // kubectl refuses to restart a paused Deployment.
    let out = d.peapod(&["rollout", "restart", "deploy/web"]);
    assert!(
        stderr(&out).contains("can't restart paused deployment"),
        "{}",
        stderr(&out)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pods(&d).keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    let stop = AtomicBool::new(false);
    let events = std::thread::scope(|s| {
        let w = s.spawn(|| {
            d.api_watch_until(
                "/api/v1/namespaces/default/pods?watch=1",
                &stop,
                Duration::from_secs(120),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        d.ok(&["rollout", "resume", "deploy/web"]);
        wait_deploy(&d, "web", "recreated", complete);
        wait_pods(&d, "3 new pods", |p| {
            p.len() == 3 && p.keys().all(|k| !before.contains_key(k))
        });
        stop.store(true, Ordering::SeqCst);
        w.join().expect("watcher")
    });
    // Recreate: never an old and a new pod alive at once.
    let mut alive: BTreeMap<String, bool> = BTreeMap::new();
    for e in &events {
        let o = &e["object"];
        let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
        let running = e["type"] != "DELETED"
            && o["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["state"]["running"].is_object());
        alive.insert(name, running);
        let old = alive.iter().any(|(n, r)| *r && before.contains_key(n));
        let new = alive.iter().any(|(n, r)| *r && !before.contains_key(n));
        assert!(!(old && new), "old and new pods ran at once: {alive:?}");
    }
    let out = d.ok(&["describe", "deploy", "web"]);
    assert!(out.contains("NewReplicaSet:"), "{out}");
    assert!(out.contains("(3/3 replicas created)"), "{out}");
    assert_eq!(
        d.ok(&["delete", "deploy", "--all"]).trim(),
        "deployment.apps \"web\" deleted"
    );
    wait_pods(&d, "none", |p| p.is_empty());
}

#[test]
fn invalid_deployments_are_refused_with_the_field() {
    let d = Daemon::start_bare(&[]);
    let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c, image: busybox}]}\n";
    let out = d.apply(bad);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("The Deployment.apps \"bad\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"y\"}: `selector` does not match template `labels`"),
        "{err}"
    );
    assert!(d.peapod(&["get", "deploy", "bad"]).status.code() != Some(0));
    // `apply -f DIR`: every manifest of the directory.
    let dir = d.dir.join("manifests");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("a-config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {k: v}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("b-rs.json"),
        r#"{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "empty"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "e"}}, "template": {"metadata": {"labels": {"app": "e"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}"#,
    )
    .expect("write");
    std::fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
    let out = d.ok(&["apply", "-f", dir.to_str().unwrap_or_default()]);
    assert_eq!(
        out,
        "configmap/conf created\nreplicaset.apps/empty created\n"
    );
    let table = d.ok(&["get", "rs"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["empty", "0", "0", "0"]);

    // A template field peapod does not honour yet is named, not ignored.
    let out = d.apply("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: zero}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: z}}\n  template:\n    metadata: {labels: {app: z}}\n    spec: {containers: [{name: c, image: busybox, securityContext: {seLinuxOptions: {level: s0}}}]}\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Warning: spec.template.spec.containers[0].securityContext.seLinuxOptions is not supported yet and is ignored"),
        "{}",
        stderr(&out)
    );
    // Nothing was stored, and a kind peapod does not serve is named.
    let out = d.apply("apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: old}\n");
    assert!(
        stderr(&out).contains("kind not supported yet"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_replica_set_adopts_a_matching_orphan_and_finalizers_hold_a_deletion() {
    let d = Daemon::start();
    // A bare pod with the labels the ReplicaSet selects.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: early, labels: {{app: rs1}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {BUSYBOX}, command: [sleep, '3600']}}\n"
    ));
    d.wait_running("early");
    let rs = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs1\n  finalizers: [example.com/hold]\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: rs1}}}}\n  template:\n    metadata: {{labels: {{app: rs1}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {{name: c, image: {BUSYBOX}, command: [sleep, '3600']}}\n"
    );
    assert_eq!(d.apply_ok(&rs).trim(), "replicaset.apps/rs1 created");
    let p = wait_pods(&d, "2 ready pods", |p| {
        p.len() == 2 && p.values().all(|p| active(p) && ready(p))
    });
    assert!(
        p.contains_key("early"),
        "the orphan was adopted: {:?}",
        p.keys()
    );
    let early = &p["early"]["metadata"]["ownerReferences"][0];
    assert_eq!(
        (early["kind"].as_str(), early["name"].as_str()),
        (Some("ReplicaSet"), Some("rs1"))
    );
    assert_eq!(early["blockOwnerDeletion"], true);

    // A finalizer holds the deletion: the ReplicaSet is only marked, and
    // keeps its pods.
    d.ok(&["delete", "rs", "rs1", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    let marked = get_json(&d, &["rs", "rs1"]);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{}",
        marked["metadata"]
    );
    assert_eq!(pods(&d).values().filter(|p| active(p)).count(), 2);
    // Removing the finalizer lets it go, and its pods with it.
    d.apply_ok(&rs.replace("finalizers: [example.com/hold]", "finalizers: []"));
    wait_pods(&d, "gone with their owner", |p| p.is_empty());
    assert!(d.peapod(&["get", "rs", "rs1"]).status.code() != Some(0));
}

#[test]
fn progress_deadline_exceeded_and_min_ready_seconds() {
    let d = Daemon::start();
    // An image that cannot be pulled never becomes ready.
    d.apply_ok(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stuck}\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 2\n  selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - {name: c, image: 127.0.0.1:1/nope:1, command: [sleep, '3600']}\n",
    );
    let v = wait_deploy(&d, "stuck", "past its deadline", |v| {
        v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Progressing" && c["status"] == "False")
    });
    let p = v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap_or_default();
    assert_eq!(p["reason"], "ProgressDeadlineExceeded");
    let out = d.peapod(&["rollout", "status", "deploy/stuck"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error: deployment \"stuck\" exceeded its progress deadline"),
        "{}",
        stderr(&out)
    );
    d.ok(&["delete", "deploy", "stuck", "--cascade=foreground"]);

    // minReadySeconds: ready pods count as available only after it.
    d.apply_ok(&deployment("slow", 2, "  minReadySeconds: 3\n", "v1"));
    let seen = wait_deploy(&d, "slow", "ready but not yet available", |v| {
        v["status"]["readyReplicas"] == 2 || complete(v)
    });
    assert_eq!(seen["status"]["readyReplicas"], 2);
    assert!(
        seen["status"]["availableReplicas"].as_i64().unwrap_or(0) < 2,
        "available before minReadySeconds: {}",
        seen["status"]
    );
    wait_deploy(&d, "slow", "available", complete);
}

#[test]
fn rollover_mid_rollout_and_revision_history_limit() {
    let d = Daemon::start();
    let strategy = "  revisionHistoryLimit: 1\n  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n";
    d.apply_ok(&deployment("web", 3, strategy, "v1"));
    wait_deploy(&d, "web", "complete", complete);
    d.apply_ok(&deployment("web", 3, strategy, "v2"));
    // As soon as v2 has a pod, roll over to v3.
    wait_pods(&d, "a v2 pod", |p| {
        p.values().map(hash_of).collect::<BTreeSet<_>>().len() >= 2
    });
    d.apply_ok(&deployment("web", 3, strategy, "v3"));
    wait_deploy(&d, "web", "complete on v3", complete);
    let now = wait_pods(&d, "3 pods of one template", |p| {
        p.len() == 3 && p.values().map(hash_of).collect::<BTreeSet<_>>().len() == 1
    });
    let some = now.keys().next().cloned().unwrap_or_default();
    d.wait_running(&some);
    assert_eq!(d.ok(&["logs", &some]).trim(), "v3");
    // One old ReplicaSet is kept (revision 2); revision 1 is deleted.
    let start = Instant::now();
    loop {
        let rs = get_json(&d, &["rs"]);
        let mut revs: Vec<String> = rs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        revs.sort();
        if revs == ["2", "3"] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "revisions kept: {revs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let history = d.ok(&["rollout", "history", "deploy/web"]);
    let revs: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["2", "3"], "{history}");

    // Scaled mid-rollout: both ReplicaSets grow, the rollout finishes
    // with the new count.
    d.apply_ok(&deployment("web", 3, strategy, "v4"));
    wait_pods(&d, "a v4 pod", |p| {
        p.values()
            .filter(|p| active(p))
            .map(hash_of)
            .collect::<BTreeSet<_>>()
            .len()
            >= 2
    });
    d.ok(&["scale", "deploy/web", "--replicas=6"]);
    wait_deploy(&d, "web", "complete with 6", |v| {
        complete(v) && v["status"]["replicas"] == 6
    });
    let now = wait_pods(&d, "6 pods of one template", |p| {
        p.len() == 6 && p.values().map(hash_of).collect::<BTreeSet<_>>().len() == 1
    });
    assert!(now.values().all(|p| active(p) && ready(p)));
}

#[test]
fn a_dependent_whose_owner_is_gone_is_collected() {
    let d = Daemon::start();
    // As after a restart that missed its owner's deletion: a pod owned by
    // a ReplicaSet that does not exist (or has another uid) goes; one
    // whose owner exists stays.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dangling\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: ReplicaSet, name: gone, uid: 00000000-0000-0000-0000-000000000001, controller: true}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {BUSYBOX}, command: [sleep, '3600']}}\n"
    ));
    wait_pods(&d, "without the dangling pod", |p| {
        !p.contains_key("dangling")
    });
    // Any kind may own: a pod owned by a ConfigMap lives as long as it.
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner}\ndata: {a: b}\n");
    let uid = get_json(&d, &["cm", "owner"])["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: owned\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {BUSYBOX}, command: [sleep, '3600']}}\n"
    ));
    d.wait_running("owned");
    std::thread::sleep(Duration::from_secs(1));
    assert!(pods(&d).contains_key("owned"));
    d.ok(&["delete", "configmap", "owner"]);
    wait_pods(&d, "without the configmap's pod", |p| p.is_empty());
}
