//! Pod lifecycle as the user sees it, with real pods: namespaces, label
//! and field selectors, node admission, the STATUS and RESTARTS columns,
//! restart back-off (across daemon restarts), events, `get -w`,
//! `logs --previous`, and the README's examples stopping on SIGTERM.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn pod_yaml(name: &str, ns: Option<&str>, labels: &str, spec: &str) -> String {
    let ns = ns
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{ns}  labels: {{{labels}}}\nspec:\n  terminationGracePeriodSeconds: 2\n{spec}"
    )
}

fn sleeper(name: &str, ns: Option<&str>, labels: &str) -> String {
    pod_yaml(
        name,
        ns,
        labels,
        &format!(
            "  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
        ),
    )
}

/// The `get pods` table's rows as cells (RESTARTS may hold spaces: the
/// cells are split at runs of 3+ spaces, as the table pads them).
fn table(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The names in the first column (or second, with -A) of a table.
fn names(text: &str, col: usize) -> Vec<String> {
    let mut n: Vec<String> = table(text)
        .into_iter()
        .skip(1)
        .filter_map(|r| r.get(col).cloned())
        .collect();
    n.sort();
    n
}

/// The STATUS and RESTARTS cells of pod `name` in `get pods`.
fn status_of(d: &Daemon, name: &str) -> (String, String) {
    let out = d.ok(&["get", "pods"]);
    let rows = table(&out);
    let row = rows
        .iter()
        .find(|r| r.first().map(String::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no row for {name}: {out}"));
    (row[2].clone(), row[3].clone())
}

/// Wait until `get pods` shows STATUS `want` for `name`.
fn wait_status(d: &Daemon, name: &str, want: &str) -> (String, String) {
    let start = Instant::now();
    loop {
        let got = status_of(d, name);
        if got.0 == want {
            return got;
        }
        if start.elapsed() > Duration::from_secs(90) {
            panic!(
                "pod {name} never showed {want} (last {got:?})\n{}\n--- daemon log ---\n{}",
                d.ok(&["get", "pod", name, "-o", "json"]),
                std::fs::read_to_string(&d.log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn one(d: &Daemon, name: &str, spec: &str) {
    d.apply_ok(&pod_yaml(name, None, "", spec));
}

#[test]
fn status_crash_loop_back_off() {
    let d = Daemon::start();
    one(
        &d,
        "crash",
        &format!(
            "  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'exit 1']\n"
        ),
    );
    wait_status(&d, "crash", "CrashLoopBackOff");
}

#[test]
fn status_error_and_completed() {
    let d = Daemon::start();
    one(&d, "fails", &format!("  restartPolicy: Never\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'exit 3']\n"));
    one(&d, "done", &format!("  restartPolicy: Never\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'exit 0']\n"));
    wait_status(&d, "fails", "Error");
    wait_status(&d, "done", "Completed");
    assert_eq!(d.pod("fails")["status"]["phase"], "Failed");
    assert_eq!(d.pod("done")["status"]["phase"], "Succeeded");
}

#[test]
fn status_oom_killed() {
    let d = Daemon::start();
    one(&d, "oom", &format!("  restartPolicy: Never\n  containers:\n  - name: hog\n    image: {BUSYBOX}\n    command: [sh, -c, 'head -c 104857600 /dev/zero | tail > /dev/null']\n    resources:\n      limits: {{memory: 32Mi}}\n"));
    wait_status(&d, "oom", "OOMKilled");
}

#[test]
fn status_init_n_of_m() {
    let d = Daemon::start();
    one(&d, "inits", &format!("  initContainers:\n  - name: first\n    image: {BUSYBOX}\n    command: ['true']\n  - name: second\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"));
    wait_status(&d, "inits", "Init:1/2");
    // The app container waits with kubelet's reason for a pod with init
    // containers.
    let pod = d.pod("inits");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
}

/// A spec (`extra` first) whose init container exits 2 before a sleeping
/// app container.
fn failing_init(extra: &str) -> String {
    format!("{extra}  initContainers:\n  - name: init\n    image: {BUSYBOX}\n    command: [sh, -c, 'exit 2']\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n")
}

#[test]
fn status_init_error() {
    let d = Daemon::start();
    one(&d, "badinit", &failing_init("  restartPolicy: Never\n"));
    wait_status(&d, "badinit", "Init:Error");
    // The app container never ran: it shows as never made, as kubelet
    // shows it (peapod makes it ahead while the init container runs, and
    // removes it unstarted when the pod fails).
    let pod = d.wait_pod("badinit", "the app container shown as never made", |p| {
        p["status"]["containerStatuses"][0]["containerID"].is_null()
    });
    let app = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        app["state"]["waiting"]["reason"], "PodInitializing",
        "{app}"
    );
    assert_eq!(app["restartCount"], 0, "{app}");
    assert_eq!(pod["status"]["phase"], "Failed");
}

/// App containers are made while the init containers run, and started the
/// moment they are done; what they are made of is still what kubelet
/// would make them of at that moment: a ConfigMap changed while the init
/// container runs reaches the app container's environment.
#[test]
fn app_containers_made_ahead_take_changes_made_while_init_runs() {
    let d = Daemon::start();
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: one}\n");
    one(&d, "ahead", &format!("  initContainers:\n  - name: init\n    image: {BUSYBOX}\n    command: [sleep, '3']\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo mode=$MODE; exec sleep 3600']\n    env:\n    - name: MODE\n      valueFrom: {{configMapKeyRef: {{name: settings, key: mode}}}}\n"));
    let pod = d.wait_pod("ahead", "initializing", |p| {
        p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });
    let app = &pod["status"]["containerStatuses"][0];
    assert_eq!(
        app["state"]["waiting"]["reason"], "PodInitializing",
        "{app}"
    );
    d.apply_ok("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: two}\n");
    wait_status(&d, "ahead", "Running");
    let pod = d.pod("ahead");
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 0);
    let start = Instant::now();
    loop {
        let logs = d.ok(&["logs", "ahead", "-c", "app"]);
        if logs.contains("mode=") {
            assert_eq!(logs.trim(), "mode=two");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no output: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_init_crash_loop_back_off() {
    let d = Daemon::start();
    one(&d, "loopinit", &failing_init(""));
    wait_status(&d, "loopinit", "Init:CrashLoopBackOff");
}

#[test]
fn status_container_creating_while_the_sandbox_cannot_be_made() {
    let d = Daemon::start();
    // A sysctl this kernel does not have: RunPodSandbox fails and is
    // retried; the containers wait in ContainerCreating, as on a node.
    one(&d, "nosandbox", &format!("  securityContext:\n    sysctls: [{{name: net.ipv4.peapod_no_such_sysctl, value: '1'}}]\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"));
    wait_status(&d, "nosandbox", "ContainerCreating");
    let describe = d.ok(&["describe", "pod", "nosandbox"]);
    assert!(describe.contains("FailedCreatePodSandBox"), "{describe}");
}

#[test]
fn status_terminating() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: stubborn}}\nspec:\n  terminationGracePeriodSeconds: 10\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, \"trap '' TERM; while true; do sleep 1; done\"]\n"
    ));
    d.wait_running("stubborn");
    d.ok(&["delete", "pod", "stubborn", "--wait=false"]);
    wait_status(&d, "stubborn", "Terminating");
    // SIGKILLed at the end of its grace period.
    d.ok(&["delete", "pod", "stubborn"]);
}

#[test]
fn restarts_column_shows_when_the_last_restart_was() {
    let d = Daemon::start();
    // Fails twice (restarted at once, then after 10 s), then runs.
    one(&d, "twice", &format!("  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo x >> /data/runs; [ $(wc -l < /data/runs) -gt 2 ] && exec sleep 3600; exit 1']\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, emptyDir: {{}}}}]\n"));
    d.wait_pod("twice", "running after two restarts", |p| {
        let cs = &p["status"]["containerStatuses"][0];
        cs["restartCount"] == 2 && cs["state"]["running"].is_object()
    });
    let (status, restarts) = status_of(&d, "twice");
    assert_eq!(status, "Running");
    // `2 (5s ago)`: the count and the age of the last termination.
    let ago = restarts
        .strip_prefix("2 (")
        .and_then(|r| r.strip_suffix(" ago)"))
        .unwrap_or_else(|| panic!("RESTARTS {restarts:?}"));
    assert!(
        ago.ends_with('s') && ago.trim_end_matches('s').parse::<u32>().is_ok(),
        "RESTARTS {restarts:?}"
    );
}

fn ts(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp()
}

/// Attempt number → (startedAt, finishedAt) of each terminated attempt,
/// read from `lastState` while the pod waits in CrashLoopBackOff.
fn record_attempts(pod: &Value, seen: &mut std::collections::BTreeMap<u64, (i64, i64)>) {
    let cs = &pod["status"]["containerStatuses"][0];
    let last = &cs["lastState"]["terminated"];
    if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" && last.is_object() {
        let n = cs["restartCount"].as_u64().unwrap_or(0);
        seen.insert(n, (ts(&last["startedAt"]), ts(&last["finishedAt"])));
    }
}

#[test]
fn back_off_grows_and_survives_daemon_restarts() {
    let mut d = Daemon::start();
    one(&d, "crash", &format!("  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo attempt; exit 1']\n"));
    let uid = d.pod("crash")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let mut seen = std::collections::BTreeMap::new();
    let mut restarted = (false, false);
    let start = Instant::now();
    // Attempts 0..=3: restarted at once, then after 10 s, then 20 s; the
    // daemon is SIGKILLed in the 20 s back-off and SIGTERMed in the next.
    while !seen.contains_key(&3) {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "attempts seen: {seen:?}\n{}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        let out = d.peapod(&["get", "pod", "crash", "-o", "json"]);
        if out.status.success() {
            let pod: Value = serde_json::from_slice(&out.stdout).expect("json");
            record_attempts(&pod, &mut seen);
        }
        if seen.contains_key(&2) && !restarted.0 {
            d.kill9();
            d.spawn(&[]);
            restarted.0 = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Attempt 3 ended; a graceful daemon stop falls in its 40 s back-off.
    d.restart(&[]);
    restarted.1 = true;
    d.wait_pod("crash", "started a fifth time", |p| {
        p["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0)
            >= 4
    });
    // The fifth attempt's start: its log's first record.
    let log = d.root.join(format!("logs/default_crash_{uid}/app/4.log"));
    let start = Instant::now();
    let first = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.is_empty() {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} stays empty",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let started4 =
        chrono::DateTime::parse_from_rfc3339(first.split_whitespace().next().expect("a record"))
            .expect("time")
            .timestamp();
    // The first restart is at once (no back-off is waited after attempt
    // 0, so it never shows CrashLoopBackOff); then 10 s, 20 s, 40 s from
    // the end of the attempt before. Whole seconds of two instants at
    // least N s apart are at least N apart.
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "{seen:?}"
    );
    let gap = |a: u64| seen[&(a + 1)].0 - seen[&a].1;
    assert!(gap(1) >= 10, "10 s back-off: {seen:?}");
    assert!(gap(2) >= 20, "20 s back-off across a SIGKILL: {seen:?}");
    assert!(
        started4 - seen[&3].1 >= 40,
        "40 s back-off across a SIGTERM: finished {} started {started4}",
        seen[&3].1
    );
    // Restart counts carried on through both restarts.
    assert!(restarted.0 && restarted.1);

    // One BackOff event, folded: its count grows with every back-off.
    let (code, body) = d.api_get("/api/v1/namespaces/default/events");
    assert_eq!(code, 200);
    let events: Value = serde_json::from_slice(&body).expect("json");
    let want = format!("Back-off restarting failed container app in pod crash_default({uid})");
    let backoff: Vec<&Value> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["reason"] == "BackOff")
        .collect();
    assert_eq!(backoff.len(), 1, "{backoff:?}");
    assert_eq!(backoff[0]["message"], want.as_str());
    assert!(
        backoff[0]["count"].as_i64().unwrap_or(0) >= 3,
        "{backoff:?}"
    );
    assert!(ts(&backoff[0]["lastTimestamp"]) - ts(&backoff[0]["firstTimestamp"]) >= 29);
    // describe folds it as kubectl does: `5s (x3 over 75s)`.
    let describe = d.ok(&["describe", "pod", "crash"]);
    let line = describe
        .lines()
        .find(|l| l.trim_start().starts_with("Warning") && l.contains("BackOff"))
        .unwrap_or_else(|| panic!("{describe}"));
    let cells: Vec<&str> = line
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[0], "Warning", "{line}");
    assert_eq!(cells[1], "BackOff", "{line}");
    assert!(
        cells[2].contains(" (x") && cells[2].contains(" over "),
        "{line}"
    );
    assert_eq!(cells[3], "kubelet", "{line}");
    assert_eq!(cells[4], want, "{line}");
    assert!(
        describe.contains("Events:\n  Type     Reason"),
        "{describe}"
    );
}

#[test]
fn get_watch_streams_a_pod_through_its_states() {
    let d = Daemon::start();
    // Beside it, a watch of the Running pods, as the API server filters
    // one: the pod is ADDED when it starts running, DELETED when it stops.
    let running = std::thread::scope(|s| {
        let running = s.spawn(|| {
            d.api_watch(
                "/api/v1/namespaces/default/pods?watch=1&fieldSelector=status.phase%3DRunning,metadata.name%3Dbrief",
                Duration::from_secs(12),
            )
        });
        let statuses = watched_statuses(&d, "brief", "Completed", || {
            one(&d, "brief", &format!("  restartPolicy: Never\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sh, -c, 'sleep 2']\n"));
        });
        (statuses, running.join().expect("watch"))
    });
    let (statuses, running) = running;
    let seen: Vec<(&str, &str)> = running
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["object"]["status"]["phase"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(seen.first(), Some(&("ADDED", "Running")), "{seen:?}");
    assert_eq!(seen.last(), Some(&("DELETED", "Succeeded")), "{seen:?}");
    assert!(
        seen[1..seen.len() - 1]
            .iter()
            .all(|e| *e == ("MODIFIED", "Running")),
        "{seen:?}"
    );
    let pos = |s: &str| statuses.iter().position(|x| x == s);
    assert!(pos("Pending").is_some(), "{statuses:?}");
    assert!(pos("Running").is_some(), "{statuses:?}");
    assert!(pos("Completed").is_some(), "{statuses:?}");
    assert!(
        pos("Pending") < pos("Running") && pos("Running") < pos("Completed"),
        "{statuses:?}"
    );
}

/// The STATUS cells `get pods -w` printed for `name` while `act` ran and
/// until `get pods` showed `until`. `act` runs once the watcher has listed
/// (it printed the row of a marker pod), so every change after is streamed.
fn watched_statuses(d: &Daemon, name: &str, until: &str, act: impl FnOnce()) -> Vec<String> {
    use std::io::BufRead;
    d.apply_ok(&sleeper("marker", None, ""));
    let mut watcher = std::process::Command::new(exe())
        .args(["--socket", d.socket.to_str().unwrap(), "get", "pods", "-w"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("get -w");
    let out = watcher.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("get -w printed no marker row: {lines:?}"));
        let marker = line.starts_with("marker ");
        lines.push(line);
        if marker {
            break;
        }
    }
    act();
    wait_status(d, name, until);
    std::thread::sleep(Duration::from_millis(500));
    let _ = watcher.kill();
    let _ = watcher.wait();
    let _ = reader.join();
    lines.extend(rx.try_iter());
    assert!(lines[0].starts_with("NAME"), "{lines:?}");
    lines
        .iter()
        .map(|l| table(l).remove(0))
        .filter(|r| r.first().map(String::as_str) == Some(name))
        .map(|r| r[2].clone())
        .collect()
}

#[test]
fn status_pod_initializing_while_the_app_containers_are_made() {
    let d = Daemon::start();
    // A sidecar is an init container that keeps running: once it has
    // started, the pod is initialized and its app container not made
    // yet, which kubectl shows as PodInitializing.
    let statuses = watched_statuses(&d, "sidecar", "Running", || {
        one(&d, "sidecar", &format!("  initContainers:\n  - name: side\n    image: {BUSYBOX}\n    restartPolicy: Always\n    command: [sleep, '3600']\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"));
    });
    let pos = |s: &str| statuses.iter().position(|x| x == s);
    assert!(pos("PodInitializing").is_some(), "{statuses:?}");
    assert!(pos("PodInitializing") < pos("Running"), "{statuses:?}");
}

#[test]
fn logs_previous_shows_the_last_terminated_attempt() {
    let d = Daemon::start();
    one(&d, "flaky", &format!("  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'if [ -e /data/ran ]; then echo second; exec sleep 3600; fi; touch /data/ran; echo first; exit 3']\n    volumeMounts: [{{name: data, mountPath: /data}}]\n  volumes: [{{name: data, emptyDir: {{}}}}]\n"));
    one(
        &d,
        "fresh",
        &format!(
            "  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
        ),
    );
    d.wait_pod("flaky", "restarted once", |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 1
            && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    d.wait_running("fresh");
    assert_eq!(d.ok(&["logs", "flaky", "--previous"]), "first\n");
    assert_eq!(d.ok(&["logs", "flaky", "-p", "-c", "c"]), "first\n");
    let now = Instant::now();
    while !d.ok(&["logs", "flaky"]).contains("second") {
        assert!(
            now.elapsed() < Duration::from_secs(10),
            "no log of the second attempt"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = d.peapod(&["logs", "fresh", "--previous"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (BadRequest): previous terminated container \"c\" in pod \"fresh\" not found"
    );
}

#[test]
fn namespaces_labels_and_field_selectors() {
    let mut d = Daemon::start();
    assert_eq!(
        d.ok(&["create", "namespace", "prod"]),
        "namespace/prod created\n"
    );
    let out = d.peapod(&["create", "namespace", "prod"]);
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (AlreadyExists): namespaces \"prod\" already exists"
    );
    let ns = d.ok(&["get", "ns"]);
    assert_eq!(table(&ns)[0], ["NAME", "STATUS", "AGE"]);
    assert_eq!(names(&ns, 0), ["default", "prod"]);
    assert!(table(&ns).iter().skip(1).all(|r| r[1] == "Active"), "{ns}");
    // A manifest's Namespace is applied before what goes in it.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: staging}}\n---\n{}",
        sleeper("s1", Some("staging"), "app: web")
    ));
    let out = d.apply(&sleeper("x", Some("nope"), "app: web"));
    assert!(!out.status.success());
    let err = stderr(&out);
    let (head, tail) = err
        .trim()
        .split_once(": error when creating ")
        .expect("kubectl's words");
    assert_eq!(head, "Error from server (NotFound)");
    assert!(
        tail.ends_with(".yaml\": namespaces \"nope\" not found"),
        "{err}"
    );

    d.apply_ok(&sleeper("web1", None, "app: web, tier: fe, env: a"));
    d.apply_ok(&sleeper("db", None, "app: db, tier: db, env: b"));
    d.apply_ok(&sleeper("web2", Some("prod"), "app: web, env: c"));
    d.apply_ok(&pod_yaml("once", None, "app: batch", &format!("  restartPolicy: Never\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: ['true']\n")));
    for p in ["web1", "db"] {
        d.wait_running(p);
    }
    wait_status(&d, "once", "Completed");

    let sel = |args: &[&str]| {
        let mut a = vec!["get", "pods"];
        a.extend_from_slice(args);
        names(&d.ok(&a), 0)
    };
    assert_eq!(sel(&["-l", "app=web"]), ["web1"]);
    assert_eq!(sel(&["-l", "app==web"]), ["web1"]);
    assert_eq!(sel(&["-l", "app!=web"]), ["db", "once"]);
    assert_eq!(sel(&["-l", "app=web,tier!=db,env in (a,b)"]), ["web1"]);
    assert_eq!(sel(&["-l", "env notin (a)"]), ["db", "once"]);
    assert_eq!(sel(&["-l", "tier"]), ["db", "web1"]);
    assert_eq!(sel(&["-l", "!tier"]), ["once"]);
    assert_eq!(sel(&["-n", "prod", "-l", "app=web"]), ["web2"]);
    assert_eq!(
        sel(&["--field-selector", "status.phase=Running"]),
        ["db", "web1"]
    );
    assert_eq!(
        sel(&["--field-selector", "status.phase!=Running"]),
        ["once"]
    );
    assert_eq!(sel(&["--field-selector", "metadata.name=db"]), ["db"]);
    assert_eq!(
        sel(&["--field-selector", "spec.restartPolicy=Never"]),
        ["once"]
    );
    assert_eq!(
        sel(&[
            "--field-selector",
            "metadata.name!=db,status.phase==Running",
            "-l",
            "app"
        ]),
        ["web1"]
    );
    let host = d.pod("db")["spec"]["nodeName"]
        .as_str()
        .expect("node")
        .to_string();
    assert_eq!(
        sel(&["--field-selector", &format!("spec.nodeName={host}")]).len(),
        3
    );

    // -A: a NAMESPACE column.
    let all = d.ok(&["get", "pods", "-A", "-l", "app=web"]);
    let rows = table(&all);
    assert_eq!(rows[0][..2], ["NAMESPACE", "NAME"]);
    let mut got: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("default".to_string(), "web1".to_string()),
            ("prod".into(), "web2".into()),
            ("staging".into(), "s1".into())
        ]
    );
    assert_eq!(
        sel(&["-A", "--field-selector", "metadata.namespace=prod"]).len(),
        1
    );
    // --show-labels: labels sorted by key.
    let shown = d.ok(&["get", "pods", "web1", "--show-labels"]);
    let rows = table(&shown);
    assert_eq!(rows[0].last().map(String::as_str), Some("LABELS"));
    assert_eq!(
        rows[1].last().map(String::as_str),
        Some("app=web,env=a,tier=fe")
    );

    // Bad selectors: the API server's words.
    let out = d.peapod(&["get", "pods", "-l", "env in a"]);
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (BadRequest): Unable to find \"/v1, Resource=pods\" that match label selector \"env in a\", field selector \"\": found 'a', expected: '('"
    );
    let out = d.peapod(&["get", "pods", "--field-selector", "spec.foo=x"]);
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (BadRequest): Unable to find \"/v1, Resource=pods\" that match label selector \"\", field selector \"spec.foo=x\": field label not supported: spec.foo"
    );
    // A watch with a selector sees only what it selects.
    let events = d.api_watch(
        "/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb",
        Duration::from_millis(500),
    );
    let watched: Vec<&str> = events
        .iter()
        .filter_map(|e| e["object"]["metadata"]["name"].as_str())
        .collect();
    assert_eq!(watched, ["web1"]);

    // delete pods -l.
    assert_eq!(
        d.ok(&["delete", "pods", "-l", "app=batch"]),
        "pod \"once\" deleted\n"
    );
    assert_eq!(sel(&[]), ["db", "web1"]);

    // Deleting a namespace: Terminating, its pods stopped gracefully, new
    // content refused, then everything in it and itself gone.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: slow, namespace: prod}}\nspec:\n  terminationGracePeriodSeconds: 10\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, \"trap '' TERM; while true; do sleep 1; done\"]\n"
    ));
    d.apply_ok(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: prod}\nstringData: {token: x}\n",
    );
    let start = Instant::now();
    while !d
        .ok(&["get", "pods", "-n", "prod"])
        .lines()
        .any(|l| l.starts_with("slow") && l.contains("Running"))
    {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = d.peapod(&["delete", "namespace", "prod", "--wait=false"]);
    assert_eq!(stdout(&out), "namespace \"prod\" deleted\n");
    let ns = d.ok(&["get", "ns", "prod"]);
    assert_eq!(table(&ns)[1][1], "Terminating", "{ns}");
    // Its pods are deleted gracefully: `slow` ignores SIGTERM and stays
    // Terminating for its grace period.
    let start = Instant::now();
    while !d
        .ok(&["get", "pods", "-n", "prod"])
        .lines()
        .any(|l| l.starts_with("slow") && l.contains("Terminating"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "slow never showed Terminating"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = d.apply(&sleeper("late", Some("prod"), "app: web"));
    let err = stderr(&out);
    assert!(
        err.starts_with("Error from server (Forbidden): error when creating \""),
        "{err}"
    );
    assert!(
        err.trim().ends_with(".yaml\": pods \"late\" is forbidden: unable to create new content in namespace prod because it is being terminated"),
        "{err}"
    );
    let out = d.peapod(&["delete", "namespace", "default"]);
    assert_eq!(
        stderr(&out).trim(),
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
    // A daemon stopped while the namespace terminates carries on after
    // its restart; a second `delete ns` waits until it is gone.
    d.restart(&[]);
    d.ok(&["delete", "ns", "prod"]);
    let (code, _) = d.api_get("/api/v1/namespaces/prod");
    assert_eq!(code, 404);
    let (code, _) = d.api_get("/api/v1/namespaces/prod/secrets/creds");
    assert_eq!(code, 404);
    let (_, body) = d.api_get("/api/v1/namespaces/prod/events");
    let events: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(0),
        "{events}"
    );
    assert_eq!(d.ok(&["get", "pods", "-n", "prod", "-o", "name"]), "");
    d.ok(&["delete", "ns", "staging"]);
    assert_eq!(names(&d.ok(&["get", "ns"]), 0), ["default"]);
}

fn node_json(d: &Daemon) -> Value {
    let (code, body) = d.api_get("/api/v1/nodes");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    v["items"][0].clone()
}

fn cpu_request_pod(name: &str, cpu: &str, mem: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    resources:\n      requests: {{cpu: {cpu}, memory: {mem}}}\n{extra}"
    )
}

#[test]
fn node_admission_rejects_what_does_not_fit() {
    let mut d = Daemon::start();
    let node = node_json(&d);
    let cores: i64 = node["status"]["allocatable"]["cpu"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("allocatable cpu in cores");
    let alloc = cores * 1000;
    assert_eq!(node["status"]["capacity"], node["status"]["allocatable"]);

    d.apply_ok(&cpu_request_pod("small", "100m", "16Mi", ""));
    d.wait_running("small");
    // All of the CPU: 100m is taken.
    d.apply_ok(&cpu_request_pod("big", &format!("{alloc}m"), "16Mi", ""));
    let pod = d.pod("big");
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(pod["status"]["reason"], "OutOfcpu");
    assert_eq!(
        pod["status"]["message"],
        format!("Pod was rejected: Node didn't have enough resource: cpu, requested: {alloc}, used: 100, capacity: {alloc}").as_str()
    );
    assert_eq!(status_of(&d, "big").0, "OutOfcpu");
    let describe = d.ok(&["describe", "pod", "big"]);
    assert!(
        describe.contains("Warning  OutOfcpu")
            && describe.contains("Node didn't have enough resource: cpu"),
        "{describe}"
    );
    // Nothing was made for it.
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    assert!(!d.root.join("pods").join(uid).exists());
    assert!(!d
        .root
        .join("logs")
        .join(format!("default_big_{uid}"))
        .exists());

    let mem: i64 = node["status"]["allocatable"]["memory"]
        .as_str()
        .and_then(|m| m.strip_suffix("Ki"))
        .and_then(|m| m.parse().ok())
        .expect("memory in Ki");
    d.apply_ok(&cpu_request_pod("fat", "10m", &format!("{mem}Ki"), ""));
    let pod = d.pod("fat");
    assert_eq!(pod["status"]["reason"], "OutOfmemory");
    assert_eq!(
        pod["status"]["message"],
        format!(
            "Pod was rejected: Node didn't have enough resource: memory, requested: {}, used: {}, capacity: {}",
            mem * 1024,
            16 << 20,
            mem * 1024
        )
        .as_str()
    );

    // A host port another pod holds.
    let port = "    ports: [{containerPort: 8080, hostPort: 18391}]\n";
    d.apply_ok(&cpu_request_pod("porta", "10m", "1Mi", port));
    d.apply_ok(&cpu_request_pod("portb", "10m", "1Mi", port));
    let b = d.pod("portb");
    assert_eq!(b["status"]["reason"], "NodePorts");
    assert_eq!(
        b["status"]["message"],
        "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
    );
    assert_ne!(d.pod("porta")["status"]["phase"], "Failed");

    // Concurrent applies for the rest of the CPU: exactly one fits.
    let left = alloc - 100 - 20;
    let each = left / 2 + 10;
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let socket = d.socket.clone();
            let yaml = cpu_request_pod(&format!("race{i}"), &format!("{each}m"), "1Mi", "");
            std::thread::spawn(move || {
                use std::io::Write;
                let mut child = std::process::Command::new(exe())
                    .args([
                        "--socket",
                        socket.to_str().expect("path"),
                        "apply",
                        "-f",
                        "-",
                    ])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("apply");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(yaml.as_bytes())
                    .expect("write");
                child.wait_with_output().expect("wait")
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread").status.success());
    }
    let admitted: Vec<String> = (0..4)
        .map(|i| format!("race{i}"))
        .filter(|n| d.pod(n)["status"]["reason"] != "OutOfcpu")
        .collect();
    assert_eq!(admitted.len(), 1, "admitted: {admitted:?}");
    d.wait_running(&admitted[0]);

    // get node / describe node.
    let nodes = d.ok(&["get", "nodes"]);
    let rows = table(&nodes);
    assert_eq!(rows[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(rows[1][1], "Ready");
    assert_eq!(rows[1][2], "<none>");
    let describe = d.ok(&["describe", "node"]);
    assert!(
        describe.contains("Non-terminated Pods:          (3 in total)"),
        "{describe}"
    );
    let used = 100 + 10 + each;
    let pct = used * 100 / alloc;
    let cpu_line = describe
        .lines()
        .find(|l| l.trim_start().starts_with("cpu ") && l.contains('%'))
        .unwrap_or_else(|| panic!("{describe}"));
    assert!(
        cpu_line.contains(&format!("{used}m ({pct}%)")),
        "{cpu_line}\n{describe}"
    );
    assert!(describe.contains("Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n"), "{describe}");
    assert!(describe.contains("Capacity:\n  cpu:"), "{describe}");

    // Decided once: after a daemon restart the rejected pods stay
    // rejected and unmade, the admitted ones keep running.
    d.restart(&[]);
    d.wait_running("small");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.pod("big")["status"]["reason"], "OutOfcpu");
    assert!(!d.root.join("pods").join(uid).exists());
    d.ok(&["delete", "pods", "--all"]);
    assert_eq!(d.ok(&["get", "pods", "-o", "name"]), "");
}

#[test]
fn readme_examples_stop_promptly_on_sigterm() {
    let d = Daemon::start();
    for (tar, name) in [
        ("busybox.tar", "localhost/peapod/busybox:latest"),
        ("httpd.tar", "localhost/peapod/httpd:latest"),
    ] {
        d.ok(&[
            "image",
            "import",
            images_dir().join(tar).to_str().expect("path"),
            "--name",
            name,
        ]);
    }
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let two = examples.join("two-containers.yaml");
    let site = examples.join("init-and-sidecar.yaml");
    for f in [&two, &site] {
        d.ok(&["apply", "-f", f.to_str().expect("path")]);
    }
    d.wait_running("hello");
    d.wait_running("site");
    let start = Instant::now();
    while !d.ok(&["logs", "hello", "-c", "client"]).contains("got:") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the client never fetched"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The default grace period is 30 s: a container that ignored SIGTERM
    // would hold the delete until its SIGKILL, past this timeout.
    for f in [&two, &site] {
        let out = d.peapod(&["delete", "-f", f.to_str().expect("path"), "--timeout=15s"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

/// `peapod wait` as `kubectl wait`: a condition met, one that times out
/// with a message naming it, and `--for=delete`; it follows a watch, so it
/// returns as the change is stored.
#[test]
fn wait_for_a_condition_and_for_deletion() {
    let d = Daemon::start();
    one(&d, "slow", &format!("  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'sleep 1; touch /tmp/ready; exec sleep 3600']\n    readinessProbe:\n      exec: {{command: [cat, /tmp/ready]}}\n      periodSeconds: 1\n"));
    let out = d.peapod(&["wait", "--for=condition=Ready", "pod/slow", "--timeout=60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "pod/slow condition met");
    let pod = d.pod("slow");
    assert!(
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True"),
        "{pod}"
    );

    one(&d, "never", &format!("  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    readinessProbe:\n      exec: {{command: ['false']}}\n      periodSeconds: 1\n"));
    let t0 = Instant::now();
    let out = d.peapod(&["wait", "--for=condition=Ready", "pod/never", "--timeout=2s"]);
    assert!(!out.status.success());
    assert!(t0.elapsed() >= Duration::from_secs(2));
    assert!(
        stderr(&out).contains("timed out waiting for the condition on pod/never")
            && stderr(&out).contains("condition Ready is not True"),
        "{}",
        stderr(&out)
    );
    let out = d.peapod(&["wait", "--for=ready", "pod/never"]);
    assert!(
        stderr(&out).contains("--for=condition=NAME"),
        "{}",
        stderr(&out)
    );

    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            d.peapod(&[
                "wait",
                "--for=delete",
                "pod/never",
                "pods/slow",
                "--timeout=60s",
            ])
        });
        std::thread::sleep(Duration::from_millis(500));
        d.ok(&["delete", "pod", "never", "slow", "--grace-period=0"]);
        let out = waiter.join().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "pod/never deleted\npod/slow deleted\n");
    });
}
