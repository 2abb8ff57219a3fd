//! Integration tests of the pod lifecycle: probes (liveness, readiness,
//! startup; exec, httpGet, tcpSocket), lifecycle hooks (postStart,
//! preStop), graceful stop and activeDeadlineSeconds, on real pods.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn pod(name: &str, body: &str) -> String {
    pod_manifest(name, body)
}

/// A pod of `containers` (the list's items) with a 1 s grace period.
fn app_pod(name: &str, containers: &str) -> String {
    pod(
        name,
        &format!("  terminationGracePeriodSeconds: 1\n  containers:\n{containers}"),
    )
}

fn condition(p: &Value, typ: &str) -> Value {
    p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == typ)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The READY column of `get pods` for `name`.
fn ready_column(d: &Daemon, name: &str) -> String {
    let table = d.ok(&["get", "pods"]);
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{name} not in {table}"))
        .to_string()
}

fn wait_ready_column(d: &Daemon, name: &str, want: &str) {
    for _ in 0..300 {
        if ready_column(d, name) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "READY of {name} never became {want}: {}",
        d.ok(&["get", "pods"])
    );
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "live",
        &format!(
            "  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, 'touch /tmp/healthy; exec sleep 3600']
    livenessProbe:
      exec: {{command: [cat, /tmp/healthy]}}
      periodSeconds: 1
      failureThreshold: 2
"
        ),
    ));
    d.wait_running("live");
    // Healthy: a few periods pass without a restart.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.restart_count("live", 0), 0);
    d.exec_ok("live", "app", &["rm", "/tmp/healthy"]);
    let p = d.wait_pod("live", "restarted once", |p| {
        let c = &p["status"]["containerStatuses"][0];
        c["restartCount"] == 1 && c["state"]["running"].is_object()
    });
    // The killed attempt: SIGKILLed after the grace period (sleep as PID 1
    // ignores SIGTERM).
    assert_eq!(
        p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"],
        137
    );
    let ev = d.wait_event("live", "Killing");
    let unhealthy = ev
        .iter()
        .position(|(r, m)| {
            r == "Unhealthy"
                && m.starts_with("Liveness probe failed: ")
                && m.contains("/tmp/healthy")
        })
        .unwrap_or_else(|| panic!("{ev:?}"));
    let killing = ev
        .iter()
        .position(|(r, m)| {
            r == "Killing" && m == "Container app failed liveness probe, will be restarted"
        })
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(unhealthy < killing, "{ev:?}");
    let describe = d.ok(&["describe", "pod", "live"]);
    assert!(describe.contains("failed liveness probe"), "{describe}");
    // The new container is healthy again and stays.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.restart_count("live", 0), 1);
}

#[test]
fn readiness_probe_flips_ready_both_ways() {
    let d = Daemon::start();
    d.apply_ok(&app_pod(
        "ready",
        &format!(
            "  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    readinessProbe:
      exec: {{command: [cat, /tmp/ready]}}
      periodSeconds: 1
      failureThreshold: 1
  - name: plain
    image: {BUSYBOX}
    command: [sleep, '3600']
"
        ),
    ));
    let p = d.wait_pod("ready", "Running", |p| {
        p["status"]["phase"] == "Running" && p["status"]["containerStatuses"][1]["ready"] == true
    });
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(p["status"]["containerStatuses"][0]["started"], true);
    assert_eq!(condition(&p, "Ready")["status"], "False");
    assert_eq!(condition(&p, "ContainersReady")["status"], "False");
    wait_ready_column(&d, "ready", "1/2");

    d.exec_ok("ready", "app", &["touch", "/tmp/ready"]);
    let p = d.wait_pod("ready", "Ready", |p| {
        condition(p, "Ready")["status"] == "True"
    });
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
    assert_eq!(condition(&p, "ContainersReady")["status"], "True");
    wait_ready_column(&d, "ready", "2/2");
    let became_ready = time(&condition(&p, "Ready")["lastTransitionTime"]);

    d.exec_ok("ready", "app", &["rm", "/tmp/ready"]);
    let p = d.wait_pod("ready", "not Ready", |p| {
        condition(p, "Ready")["status"] == "False"
    });
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(condition(&p, "Ready")["reason"], "ContainersNotReady");
    assert!(time(&condition(&p, "Ready")["lastTransitionTime"]) >= became_ready);
    wait_ready_column(&d, "ready", "1/2");
    // Readiness never restarts a container.
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn readiness_survives_a_daemon_restart() {
    let mut d = Daemon::start();
    // The probe takes 2 s: a restarted daemon that forgot the result would
    // write the pod unready until the probe answers.
    d.apply_ok(&app_pod(
        "steady",
        &format!(
            "  - name: app
    image: {BUSYBOX}
    command: [sh, -c, 'touch /tmp/ready; exec sleep 3600']
    readinessProbe:
      exec: {{command: [sh, -c, 'sleep 2; cat /tmp/ready']}}
      timeoutSeconds: 5
      periodSeconds: 1
"
        ),
    ));
    let p = d.wait_running("steady");
    let rv = p["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    d.restart(&[]);
    let seen = d.api_watch(
        &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"),
        Duration::from_secs(5),
    );
    for e in &seen {
        let o = &e["object"];
        if o["metadata"]["name"] == "steady" {
            assert_eq!(
                o["status"]["containerStatuses"][0]["ready"], true,
                "the pod flapped to unready: {e}"
            );
        }
    }
    assert_eq!(condition(&d.pod("steady"), "Ready")["status"], "True");
}

#[test]
fn startup_probe_holds_liveness_back() {
    let d = Daemon::start();
    d.apply_ok(&app_pod(
        "slow",
        &format!(
            "  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    startupProbe:
      exec: {{command: [cat, /tmp/started]}}
      periodSeconds: 1
      failureThreshold: 60
    livenessProbe:
      exec: {{command: [sh, -c, 'echo run >> /tmp/liveness-runs; test -e /tmp/started']}}
      periodSeconds: 1
      failureThreshold: 1
"
        ),
    ));
    let p = d.wait_pod("slow", "Running", |p| p["status"]["phase"] == "Running");
    assert_eq!(p["status"]["containerStatuses"][0]["started"], false);
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    // Several liveness periods: the liveness probe (which would fail) does
    // not run while the startup probe has not passed.
    std::thread::sleep(Duration::from_secs(4));
    let out = d.exec("slow", "app", &["cat", "/tmp/liveness-runs"]);
    assert!(
        !out.status.success(),
        "liveness ran before startup: {}",
        stdout(&out)
    );
    let p = d.pod("slow");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(p["status"]["containerStatuses"][0]["started"], false);

    d.exec_ok("slow", "app", &["touch", "/tmp/started"]);
    let p = d.wait_pod("slow", "started and ready", |p| {
        let c = &p["status"]["containerStatuses"][0];
        c["started"] == true && c["ready"] == true
    });
    assert_eq!(condition(&p, "Ready")["status"], "True");
    // Now liveness runs (and passes).
    for _ in 0..50 {
        if d.exec("slow", "app", &["cat", "/tmp/liveness-runs"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d
        .exec_ok("slow", "app", &["cat", "/tmp/liveness-runs"])
        .contains("run"));
    assert_eq!(d.restart_count("slow", 0), 0);
}

#[test]
fn http_get_and_tcp_socket_probes() {
    let d = Daemon::start();
    d.apply_ok(&app_pod(
        "web",
        &format!(
            "  - name: web
    image: {HTTPD}
    command: [httpd, -f, -p, '8080', -h, /www]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /ready.html, port: http, httpHeaders: [{{name: X-Probe, value: peapod}}]}}
      periodSeconds: 1
      failureThreshold: 1
  - name: tcp
    image: {BUSYBOX}
    command: [sleep, '3600']
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
    livenessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"
        ),
    ));
    // The tcp container is ready once httpd listens (in the pod's netns:
    // the host's port 8080 is not involved); web is not, /ready.html is
    // missing (404).
    let p = d.wait_pod("web", "tcp ready", |p| {
        p["status"]["containerStatuses"][1]["ready"] == true
    });
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    let ev = d.wait_event("web", "Unhealthy");
    assert!(
        ev.iter().any(|(r, m)| r == "Unhealthy"
            && m == "Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{ev:?}"
    );
    d.exec_ok("web", "web", &["sh", "-c", "echo ok > /www/ready.html"]);
    d.wait_running("web");
    wait_ready_column(&d, "web", "2/2");
    // And back to unready: readiness never restarts.
    d.exec_ok("web", "web", &["rm", "/www/ready.html"]);
    d.wait_pod("web", "web unready", |p| {
        p["status"]["containerStatuses"][0]["ready"] == false
    });
    assert_eq!(d.restart_count("web", 1), 0);
}

/// As kubelet, an httpGet probe or hook connects from the host to the
/// pod's IP: a server on the pod's 0.0.0.0 answers it (and sees it come
/// from the bridge's address, not loopback), one on the pod's own
/// loopback cannot be reached.
#[test]
fn http_get_probe_and_hook_connect_to_the_pod_ip() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "byip",
        &format!(
            "  terminationGracePeriodSeconds: 5
  containers:
  - name: any
    image: {HTTPD}
    command: [httpd, -f, -vv, -p, '8080', -h, /www]
    readinessProbe:
      httpGet: {{path: /probe, port: 8080}}
      periodSeconds: 1
      failureThreshold: 1000
    lifecycle:
      preStop:
        httpGet: {{path: /bye, port: 8080}}
  - name: lo
    image: {HTTPD}
    command: [httpd, -f, -p, '127.0.0.1:8081', -h, /www]
    readinessProbe:
      httpGet: {{path: /, port: 8081}}
      periodSeconds: 1
"
        ),
    ));
    d.wait_pod("byip", "any running", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    // httpd -vv logs each request as `[::ffff:CLIENT-IP]:PORT: url:PATH`.
    let gateway = d.net.gateway();
    let wait_request = |path: &str| {
        let want = format!("url:{path}");
        for _ in 0..300 {
            let log = d.ok(&["logs", "byip", "-c", "any"]);
            if let Some(l) = log.lines().find(|l| l.ends_with(&want)) {
                return l.to_string();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no request for {path}: {}",
            d.ok(&["logs", "byip", "-c", "any"])
        );
    };
    let probe = wait_request("/probe");
    assert!(probe.contains(&format!("{gateway}]:")), "{probe}");
    // /probe is missing (404): a server that answers is reached.
    let p = d.pod("byip");
    let ip = p["status"]["podIP"].as_str().expect("podIP").to_string();
    let has = |want: &str| d.events("byip").iter().any(|(_, m)| m.starts_with(want));
    let not_found = "Readiness probe failed: HTTP probe failed with statuscode: 404";
    let refused = format!("Readiness probe failed: Get \"http://{ip}:8081/\": dial tcp {ip}:8081: connect: Connection refused");
    for _ in 0..100 {
        if has(not_found) && has(&refused) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        has(not_found) && has(&refused),
        "{refused}\n{:?}",
        d.events("byip")
    );
    // The preStop hook, while the pod terminates (httpd, PID 1, ignores
    // SIGTERM: the grace period leaves time to read its log).
    d.ok(&["delete", "pod", "byip", "--wait=false"]);
    let hook = wait_request("/bye");
    assert!(hook.contains(&format!("{gateway}]:")), "{hook}");
    d.ok(&["delete", "pod", "byip", "--grace-period=0"]);
}

#[test]
fn tcp_socket_liveness_failure_restarts() {
    let d = Daemon::start();
    d.apply_ok(&app_pod(
        "tcplive",
        &format!(
            "  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    livenessProbe:
      tcpSocket: {{port: 9999}}
      periodSeconds: 1
      failureThreshold: 1
  - name: slow
    image: {BUSYBOX}
    command: [sleep, '3600']
    readinessProbe:
      exec: {{command: [sleep, '5']}}
      timeoutSeconds: 1
      periodSeconds: 2
"
        ),
    ));
    let p = d.wait_pod("tcplive", "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
    });
    // To the pod's IP, as kubelet.
    let want = format!(
        "Liveness probe failed: dial tcp {}:9999: connect:",
        p["status"]["podIP"].as_str().expect("podIP")
    );
    let ev = d.wait_event("tcplive", "Killing");
    assert!(
        ev.iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with(&want)),
        "{ev:?}"
    );
    // An exec probe past its timeoutSeconds fails.
    let ev = d.wait_event("tcplive", "Unhealthy");
    let ev = if ev.iter().any(|(_, m)| m.contains("timed out")) {
        ev
    } else {
        std::thread::sleep(Duration::from_secs(3));
        d.events("tcplive")
    };
    assert!(
        ev.iter().any(|(r, m)| r == "Unhealthy"
            && m == "Readiness probe failed: command \"sleep 5\" timed out"),
        "{ev:?}"
    );
    assert_eq!(
        d.pod("tcplive")["status"]["containerStatuses"][1]["ready"],
        false
    );
}

#[test]
fn pre_stop_runs_before_sigterm_and_the_grace_period_is_honoured() {
    let d = Daemon::start();
    let dir = d.dir.join("hostdir");
    std::fs::create_dir_all(&dir).unwrap();
    d.apply_ok(&pod(
        "grace",
        &format!(
            "  terminationGracePeriodSeconds: 4
  containers:
  - name: polite
    image: {BUSYBOX}
    command: [sh, -c, \"trap 'echo term >> /h/order; exit 0' TERM; echo started >> /h/order; while true; do sleep 0.1; done\"]
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, 'echo prestop >> /h/order']}}
    volumeMounts: [{{name: h, mountPath: /h}}]
  - name: stubborn
    image: {BUSYBOX}
    command: [sh, -c, \"trap '' TERM; while true; do sleep 0.1; done\"]
  - name: badstop
    image: {BUSYBOX}
    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 0.1; done\"]
    lifecycle:
      preStop:
        exec: {{command: [sh, -c, 'echo cannot-stop; exit 1']}}
  volumes:
  - name: h
    hostPath: {{path: {}}}
",
            dir.display()
        ),
    ));
    let p = d.wait_running("grace");
    let rv = p["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Delete while watching the pod's last statuses.
    let (exe_path, socket) = (exe().to_string(), d.socket.clone());
    let delete = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        std::process::Command::new(exe_path)
            .arg("--socket")
            .arg(socket)
            .args(["delete", "pod", "grace"])
            .output()
            .expect("run peapod delete")
    });
    let seen = d.api_watch(
        &format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"),
        Duration::from_secs(12),
    );
    assert!(delete.join().unwrap().status.success());
    // The last status written before the pod went away.
    let last = seen
        .iter()
        .map(|e| &e["object"])
        .rfind(|o| {
            o["metadata"]["name"] == "grace"
                && o["status"]["containerStatuses"][1]["state"]["terminated"].is_object()
        })
        .unwrap_or_else(|| panic!("no terminated status seen: {seen:?}"))
        .clone();
    let deleted = time(&last["metadata"]["deletionTimestamp"]);
    let statuses = last["status"]["containerStatuses"].as_array().unwrap();
    let stubborn = &statuses[1]["state"]["terminated"];
    assert_eq!(stubborn["exitCode"], 137, "{last}");
    let waited = time(&stubborn["finishedAt"]) - deleted;
    assert!(
        waited >= chrono::Duration::seconds(4),
        "SIGKILL came {waited} after the deletion, before the 4 s grace period: {last}"
    );
    let polite = &statuses[0]["state"]["terminated"];
    assert_eq!(polite["exitCode"], 0, "{last}");
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "started\nprestop\nterm\n"
    );
    // A failing preStop is reported, and the stop goes on.
    let ev = d.events("grace");
    assert!(
        ev.iter()
            .any(|(r, m)| r == "FailedPreStopHook" && m.contains("cannot-stop")),
        "{ev:?}"
    );
    assert_eq!(statuses[2]["state"]["terminated"]["exitCode"], 0, "{last}");
    assert!(ev
        .iter()
        .any(|(r, m)| r == "Killing" && m == "Stopping container polite"));
}

/// kubelet's termination order: app containers first, then the sidecars
/// in reverse order of their place in initContainers, each once the later
/// ones are gone.
#[test]
fn sidecars_stop_after_the_app_containers_in_reverse_order() {
    let d = Daemon::start();
    let dir = d.dir.join("hostdir");
    std::fs::create_dir_all(&dir).unwrap();
    let side = |name: &str| {
        format!(
            "  - name: {name}
    image: {BUSYBOX}
    restartPolicy: Always
    command: [sh, -c, \"trap 'echo {name}-term >> /h/order; exit 0' TERM; touch /h/up-{name}; while true; do sleep 0.1; done\"]
    volumeMounts: [{{name: h, mountPath: /h}}]
"
        )
    };
    d.apply_ok(&pod(
        "ordered",
        &format!(
            "  terminationGracePeriodSeconds: 10
  initContainers:
{}{}{}  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, \"trap 'sleep 1; echo app-term >> /h/order; exit 0' TERM; touch /h/up-app; while true; do sleep 0.1; done\"]
    volumeMounts: [{{name: h, mountPath: /h}}]
  volumes:
  - name: h
    hostPath: {{path: {}}}
",
            side("side1"),
            side("side2"),
            side("side3"),
            dir.display()
        ),
    ));
    // Each has set its TERM trap (a shell as PID 1 ignores TERM until
    // then).
    let up = ["app", "side1", "side2", "side3"].map(|n| dir.join(format!("up-{n}")));
    for _ in 0..300 {
        if up.iter().all(|f| f.exists()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        up.iter().all(|f| f.exists()),
        "{:?}",
        d.pod("ordered")["status"]
    );
    d.ok(&["delete", "pod", "ordered"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("order")).unwrap(),
        "app-term\nside3-term\nside2-term\nside1-term\n",
        "{:?}",
        d.events("ordered")
    );
}

/// A second delete with a shorter grace period cuts a graceful stop in
/// progress short, as the API server (deletionGracePeriodSeconds only
/// decreases) and kubelet do.
#[test]
fn a_second_delete_with_a_shorter_grace_period_ends_the_stop_sooner() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "slowstop",
        &format!(
            "  terminationGracePeriodSeconds: 60
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, \"trap '' TERM; while true; do sleep 0.1; done\"]
"
        ),
    ));
    d.wait_running("slowstop");
    d.ok(&["delete", "pod", "slowstop", "--wait=false"]);
    let p = d.wait_pod("slowstop", "terminating", |p| {
        p["metadata"]["deletionGracePeriodSeconds"] == 60
    });
    assert!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    d.wait_event("slowstop", "Killing");
    // The TERM is ignored: without a second delete it would run 60 s.
    let t0 = std::time::Instant::now();
    let out = d.ok(&["delete", "pod", "slowstop", "--grace-period=1"]);
    assert_eq!(out.trim(), "pod \"slowstop\" deleted");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "the second delete took {took:?}, as the first grace period"
    );
    assert!(d.pod_names().is_empty(), "{:?}", d.pod_names());
}

#[test]
fn post_start_hook_completes_before_the_container_counts_as_started() {
    let d = Daemon::start();
    d.apply_ok(&app_pod(
        "hooked",
        &format!(
            "  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    lifecycle:
      postStart:
        exec: {{command: [sh, -c, 'sleep 2; echo from-post-start > /tmp/hook']}}
"
        ),
    ));
    d.wait_pod("hooked", "started", |p| {
        p["status"]["containerStatuses"][0]["started"] == true
    });
    // The hook took 2 s; the container was not shown started before it
    // finished, so its file is there now.
    assert_eq!(
        d.exec_ok("hooked", "app", &["cat", "/tmp/hook"]).trim(),
        "from-post-start"
    );

    d.apply_ok(&app_pod(
        "badhook",
        &format!(
            "  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    lifecycle:
      postStart:
        exec: {{command: [sh, -c, 'echo broken; exit 3']}}
"
        ),
    ));
    let ev = d.wait_event("badhook", "FailedPostStartHook");
    assert!(
        ev.iter()
            .any(|(r, m)| r == "FailedPostStartHook" && m.contains("broken")),
        "{ev:?}"
    );
    d.wait_pod("badhook", "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
    });
}

#[test]
fn active_deadline_fails_the_pod() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "deadline",
        &format!(
            "  terminationGracePeriodSeconds: 1
  activeDeadlineSeconds: 3
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
"
        ),
    ));
    d.wait_running("deadline");
    let p = d.wait_pod("deadline", "Failed", |p| p["status"]["phase"] == "Failed");
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        p["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let started = time(&p["status"]["startTime"]);
    let ev = d.wait_event("deadline", "DeadlineExceeded");
    assert!(ev.iter().any(|(r, m)| r == "DeadlineExceeded"
        && m == "Pod was active on the node longer than the specified deadline"));
    let p = d.wait_pod("deadline", "container stopped", |p| {
        p["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    let finished = time(&p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]);
    assert!(finished - started >= chrono::Duration::seconds(3), "{p}");
    assert_eq!(condition(&p, "Ready")["status"], "False");
    // Nothing restarts it.
    std::thread::sleep(Duration::from_secs(2));
    let p = d.pod("deadline");
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
}

#[test]
fn sidecar_startup_probe_gates_the_next_init_container() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "gated",
        &format!(
            "  terminationGracePeriodSeconds: 1
  initContainers:
  - name: side
    image: {BUSYBOX}
    command: [sleep, '3600']
    restartPolicy: Always
    startupProbe:
      exec: {{command: [cat, /tmp/up]}}
      periodSeconds: 1
      failureThreshold: 100
  - name: after
    image: {BUSYBOX}
    command: ['true']
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
"
        ),
    ));
    d.wait_pod("gated", "sidecar running", |p| {
        p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()
    });
    std::thread::sleep(Duration::from_secs(3));
    let p = d.pod("gated");
    let inits = &p["status"]["initContainerStatuses"];
    assert_eq!(inits[0]["started"], false, "{p}");
    assert!(inits[1]["state"]["waiting"].is_object(), "{p}");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(condition(&p, "Initialized")["status"], "False");

    d.exec_ok("gated", "side", &["touch", "/tmp/up"]);
    let p = d.wait_running("gated");
    assert_eq!(p["status"]["initContainerStatuses"][0]["started"], true);
    assert_eq!(
        p["status"]["initContainerStatuses"][1]["state"]["terminated"]["reason"],
        "Completed"
    );
}

#[test]
fn grpc_probe_on_a_host_network_pod() {
    use tonic_health::ServingStatus;
    // A real grpc.health.v1 server on the host's loopback; a hostNetwork
    // pod's probes run in the host's network namespace and reach it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (reporter, port) = rt.block_on(async {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("peapod", ServingStatus::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (reporter, port)
    });
    let d = Daemon::start();
    d.apply_ok(&pod(
        "grpc",
        &format!(
            "  terminationGracePeriodSeconds: 1
  hostNetwork: true
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    readinessProbe:
      grpc: {{port: {port}, service: peapod}}
      periodSeconds: 1
"
        ),
    ));
    let ev = d.wait_event("grpc", "Unhealthy");
    assert!(
        ev.iter().any(|(r, m)| r == "Unhealthy"
            && m == "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{ev:?}"
    );
    assert_eq!(
        d.pod("grpc")["status"]["containerStatuses"][0]["ready"],
        false
    );
    rt.block_on(reporter.set_service_status("peapod", ServingStatus::Serving));
    let p = d.wait_running("grpc");
    assert_eq!(condition(&p, "Ready")["status"], "True");
}

/// `scheme: HTTPS`: TLS without verifying the certificate, as kubelet
/// (a self-signed one here, from a real TLS server: openssl s_server on
/// the host's loopback, which a hostNetwork pod's probes reach).
#[test]
fn https_probe_accepts_a_self_signed_certificate() {
    let d = Daemon::start();
    let (key, cert) = (d.dir.join("k.pem"), d.dir.join("c.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=pod.invalid", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.apply_ok(&pod(
        "tls",
        &format!(
            "  terminationGracePeriodSeconds: 1
  hostNetwork: true
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    readinessProbe:
      httpGet: {{port: {port}, scheme: HTTPS, path: /}}
      periodSeconds: 1
"
        ),
    ));
    // No server yet: the probe runs and fails.
    let ev = d.wait_event("tls", "Unhealthy");
    let want = format!("Readiness probe failed: Get \"https://127.0.0.1:{port}/\": dial tcp");
    assert!(
        ev.iter().any(|(_, m)| m.starts_with(&want)),
        "{want}\n{ev:?}"
    );
    assert_eq!(
        d.pod("tls")["status"]["containerStatuses"][0]["ready"],
        false
    );
    // Killed when the test ends (even by a failed assert).
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let p = d.wait_pod("tls", "ready", |p| {
        p["status"]["containerStatuses"][0]["ready"] == true
    });
    assert_eq!(condition(&p, "Ready")["status"], "True");
}

#[test]
fn startup_probe_failure_kills_with_the_probe_grace_period() {
    let d = Daemon::start();
    d.apply_ok(&pod(
        "neverup",
        &format!(
            "  terminationGracePeriodSeconds: 60
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sleep, '3600']
    startupProbe:
      exec: {{command: [cat, /tmp/never]}}
      periodSeconds: 1
      failureThreshold: 2
      terminationGracePeriodSeconds: 1
"
        ),
    ));
    let p = d.wait_pod("neverup", "restarted", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1)
    });
    let ev = d.wait_event("neverup", "Killing");
    assert!(
        ev.iter()
            .any(|(r, m)| r == "Killing"
                && m == "Container app failed startup probe, will be restarted"),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Startup probe failed: ")),
        "{ev:?}"
    );
    // sleep (PID 1) ignores SIGTERM: it ran two probe periods, then was
    // SIGKILLed after the probe's grace period (kubelet's minimum of 2 s),
    // not the pod's 60 s.
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{p}");
    let ran = time(&last["finishedAt"]) - time(&last["startedAt"]);
    assert!(ran < chrono::Duration::seconds(20), "ran {ran}: {p}");
    assert_eq!(p["status"]["containerStatuses"][0]["started"], false);
}
