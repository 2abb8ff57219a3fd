//! Integration tests: real pods on the real kernel, as root. Each test has
//! its own daemon (see `common`).

mod common;

use common::*;
use std::time::Duration;

fn busybox_pod(name: &str, containers: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n{containers}")
}

#[test]
fn two_containers_share_net_ipc_uts_but_not_mnt_pid() {
    let d = Daemon::start();
    d.apply_ok(&busybox_pod(
        "duo",
        &format!(
            "  - name: server\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo hi-from-server > /tmp/index.html; shmhelper create 4242; exec httpd -f -p 127.0.0.1:8080 -h /tmp']\n  - name: client\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
        ),
    ));
    d.apply_ok(&busybox_pod(
        "other",
        &format!("  - name: solo\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"),
    ));
    d.wait_running("duo");
    d.wait_running("other");

    // Namespaces, read from the host's /proc of each main process.
    let (server, client) = (d.pid("duo", "server"), d.pid("duo", "client"));
    assert_ne!(server, client);
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns_inode(server, kind),
            ns_inode(client, kind),
            "{kind} must be shared"
        );
        assert_ne!(
            ns_inode(server, kind),
            ns_inode(std::process::id() as i32, kind),
            "{kind} must not be the host's"
        );
    }
    for kind in ["mnt", "pid"] {
        assert_ne!(
            ns_inode(server, kind),
            ns_inode(client, kind),
            "{kind} must not be shared"
        );
    }
    let other = d.pid("other", "solo");
    assert_ne!(ns_inode(other, "net"), ns_inode(server, "net"));

    // localhost between containers.
    let mut body = String::new();
    for _ in 0..50 {
        let out = d.exec("duo", "client", &["wget", "-qO-", "http://127.0.0.1:8080/"]);
        body = stdout(&out);
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(body.trim(), "hi-from-server");

    // SysV shm made in `server` is visible in `client`, not in `other`.
    let shm = d.exec_ok("duo", "client", &["cat", "/proc/sysvipc/shm"]);
    assert!(
        shm.lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some("4242")),
        "{shm}"
    );
    assert_eq!(
        d.exec_ok("duo", "client", &["shmhelper", "read", "4242"])
            .trim(),
        "peapod"
    );
    let shm_other = d.exec_ok("other", "solo", &["cat", "/proc/sysvipc/shm"]);
    assert!(
        !shm_other
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some("4242")),
        "{shm_other}"
    );

    // Same hostname (the pod's name); different files.
    assert_eq!(d.exec_ok("duo", "server", &["hostname"]).trim(), "duo");
    assert_eq!(d.exec_ok("duo", "client", &["hostname"]).trim(), "duo");
    assert!(!d
        .exec("duo", "client", &["test", "-e", "/tmp/index.html"])
        .status
        .success());
    // Processes: each container sees only its own.
    let ps = d.exec_ok("duo", "client", &["ps", "-o", "args"]);
    assert!(!ps.contains("httpd"), "{ps}");
    // /etc/hosts is kubelet's.
    assert!(d
        .exec_ok("duo", "client", &["cat", "/etc/hosts"])
        .contains("Kubernetes-managed hosts file"));

    // get/describe/inspect show what a user expects.
    let table = d.ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("duo") && l.contains("2/2") && l.contains("Running")),
        "{table}"
    );
    let inspect = d.ok(&["inspect", "pod", "duo"]);
    assert!(
        inspect.contains("infra") && inspect.contains("server") && inspect.contains("client"),
        "{inspect}"
    );
    let describe = d.ok(&["describe", "pod", "duo"]);
    assert!(describe.contains("Started"), "{describe}");
}

#[test]
fn init_container_delivers_site_served_and_fetched_by_sidecar() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: site}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: fetch-site
    image: {BUSYBOX}
    command: [sh, -c, "echo delivered-by-init > /site/index.html"]
    volumeMounts: [{{name: site, mountPath: /site}}]
  containers:
  - name: web
    image: {HTTPD}
    args: [httpd, -f, -p, "8080", -h, /site]
    volumeMounts: [{{name: site, mountPath: /site, readOnly: true}}]
  - name: checker
    image: {BUSYBOX}
    command: [sh, -c, "while true; do wget -qO- http://localhost:8080/ && sleep 30; sleep 0.2; done"]
  volumes:
  - name: site
    emptyDir: {{}}
"#
    ));
    let pod = d.wait_running("site");
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    let start = std::time::Instant::now();
    loop {
        let logs = d.ok(&["logs", "site", "-c", "checker"]);
        if logs.contains("delivered-by-init") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "checker never fetched the page: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // readOnly volumeMount.
    let out = d.exec("site", "web", &["sh", "-c", "echo x > /site/new"]);
    assert!(!out.status.success());
}

#[test]
fn log_collector_sidecar_reads_app_log() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: logs}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, "i=0; while true; do i=$((i+1)); echo app-line-$i >> /var/log/app/app.log; sleep 0.2; done"]
    volumeMounts: [{{name: logs, mountPath: /var/log/app}}]
  - name: collector
    image: {BUSYBOX}
    command: [sh, -c, "until [ -f /logs/app.log ]; do sleep 0.1; done; exec tail -f /logs/app.log"]
    volumeMounts: [{{name: logs, mountPath: /logs, readOnly: true}}]
  volumes:
  - name: logs
    emptyDir: {{}}
"#
    ));
    d.wait_running("logs");
    let start = std::time::Instant::now();
    loop {
        let out = d.ok(&["logs", "logs", "-c", "collector"]);
        if out.contains("app-line-3") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "collector logs: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Logs are CRI-format files on disk.
    let pod = d.pod("logs");
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let file =
        std::fs::read_to_string(d.root.join(format!("pods/{uid}/logs/collector/0.log"))).unwrap();
    let first = file.lines().next().unwrap();
    let parts: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(parts[0].ends_with('Z') && parts[0].contains('T'), "{first}");
    assert_eq!(parts[1], "stdout");
    assert_eq!(parts[2], "F");
    assert!(parts[3].starts_with("app-line-"), "{first}");
}

#[test]
fn share_process_namespace_infra_is_pid_1() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: shared}}\nspec:\n  shareProcessNamespace: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: a\n    image: {BUSYBOX}\n    command: [sleep, '3601']\n  - name: b\n    image: {BUSYBOX}\n    command: [sleep, '3602']\n"
    ));
    d.wait_running("shared");
    let ps = d.exec_ok("shared", "b", &["ps", "-o", "pid,args"]);
    assert!(ps.contains("sleep 3601"), "{ps}");
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default()
        .to_string();
    assert!(
        pid1.contains("infra"),
        "PID 1 must be the infra process: {ps}"
    );
    assert_eq!(
        ns_inode(d.pid("shared", "a"), "pid"),
        ns_inode(d.pid("shared", "b"), "pid")
    );
}

#[test]
fn host_network_uses_host_net_namespace() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hostnet}}\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    ));
    d.wait_running("hostnet");
    let pid = d.pid("hostnet", "c");
    let me = std::process::id() as i32;
    assert_eq!(ns_inode(pid, "net"), ns_inode(me, "net"));
    assert_eq!(ns_inode(pid, "uts"), ns_inode(me, "uts"));
    assert_ne!(ns_inode(pid, "ipc"), ns_inode(me, "ipc"));
}

#[test]
fn memory_limit_oom_kills_and_cpu_pids_limits_are_set() {
    let d = Daemon::start_with(&["--pod-max-pids", "100"]);
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: oom}}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: {BUSYBOX}
    command: [sh, -c, "head -c 104857600 /dev/zero | tail > /dev/null"]
    resources:
      limits: {{memory: 32Mi, cpu: 500m}}
"#
    ));
    let pod = d.wait_pod("oom", "terminated", |p| {
        !p["status"]["containerStatuses"][0]["state"]["terminated"].is_null()
    });
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137);
    assert_eq!(pod["status"]["phase"], "Failed");
    assert!(d
        .ok(&["get", "pods"])
        .lines()
        .any(|l| l.starts_with("oom") && l.contains("OOMKilled")));

    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: limits}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "3600"]
    resources:
      requests: {{cpu: 250m}}
      limits: {{cpu: 500m, memory: 64Mi}}
"#
    ));
    let pod = d.wait_running("limits");
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let cg = |ctrl: &str, rel: &str, file: &str| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{ctrl}/{}/pod{uid}/{rel}{file}",
            d.cgroup_parent
        ))
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(cg("cpu", "c/", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg("cpu", "c/", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg("cpu", "c/", "cpu.shares"), "256");
    assert_eq!(
        cg("memory", "c/", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cg("pids", "", "pids.max"), "100");
    assert_eq!(
        cg("memory", "", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    // The container's process is in its cgroup.
    let pid = d.pid("limits", "c");
    let procs = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/pod{uid}/c/cgroup.procs",
        d.cgroup_parent
    ))
    .unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{procs}"
    );
}

#[test]
fn daemon_sigkill_leaves_pods_running_and_restart_adopts_them() {
    let mut d = Daemon::start();
    for n in ["p1", "p2", "p3"] {
        d.apply_ok(&busybox_pod(n, &format!("  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo started-{n}; exec sleep 3600']\n")));
    }
    let mut pids = Vec::new();
    for n in ["p1", "p2", "p3"] {
        d.wait_running(n);
        pids.push(d.pid(n, "c"));
    }
    d.kill9();
    std::thread::sleep(Duration::from_millis(300));
    for p in &pids {
        assert!(
            std::path::Path::new(&format!("/proc/{p}")).exists(),
            "container {p} died with the daemon"
        );
    }
    d.spawn(&[]);
    for (i, n) in ["p1", "p2", "p3"].iter().enumerate() {
        d.wait_running(n);
        assert_eq!(
            d.pid(n, "c"),
            pids[i],
            "{n} was recreated instead of adopted"
        );
        assert!(d.ok(&["logs", n]).contains(&format!("started-{n}")));
        assert_eq!(
            d.exec_ok(n, "c", &["echo", "still-here"]).trim(),
            "still-here"
        );
    }
    for n in ["p1", "p2", "p3"] {
        d.ok(&["delete", "pod", n]);
    }
    assert!(d.pod_names().is_empty());
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

#[test]
fn delete_removes_every_trace() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: full}}
spec:
  shareProcessNamespace: true
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: init
    image: {BUSYBOX}
    command: [sh, -c, "echo ok > /mem/x"]
    volumeMounts: [{{name: mem, mountPath: /mem}}]
  containers:
  - name: a
    image: {BUSYBOX}
    command: [sh, -c, "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    volumeMounts: [{{name: mem, mountPath: /mem}}, {{name: disk, mountPath: /disk, subPath: sub/dir}}]
  - name: b
    image: {HTTPD}
  volumes:
  - name: mem
    emptyDir: {{medium: Memory, sizeLimit: 16Mi}}
  - name: disk
    emptyDir: {{}}
"#
    ));
    d.wait_running("full");
    assert_eq!(d.exec_ok("full", "a", &["cat", "/mem/x"]).trim(), "ok");
    assert!(
        !d.leftovers().is_empty(),
        "a running pod should have mounts and cgroups"
    );
    let start = std::time::Instant::now();
    let out = d.ok(&["delete", "pod/full"]);
    assert!(out.contains("pod \"full\" deleted"), "{out}");
    // `a` exits on SIGTERM: no need to wait out the grace period.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "graceful stop took {:?}",
        start.elapsed()
    );
    let out = d.peapod(&["get", "pod", "full"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pods \"full\" not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

#[test]
fn bad_manifests_are_refused_naming_the_field() {
    let d = Daemon::start();
    let cases = [
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers:\n  - name: c\n".to_string(), "spec.containers[0].image"),
        (
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: dup}}\nspec:\n  containers:\n  - {{name: c, image: {BUSYBOX}}}\n  - {{name: c, image: {BUSYBOX}}}\n"),
            "spec.containers[1].name",
        ),
        (
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: novol}}\nspec:\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n"),
            "spec.containers[0].volumeMounts[0].name",
        ),
        (format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: Bad_Name}}\nspec:\n  containers:\n  - {{name: c, image: {BUSYBOX}}}\n"), "metadata.name"),
    ];
    for (yaml, field) in &cases {
        let out = d.apply(yaml);
        assert!(!out.status.success(), "accepted: {yaml}");
        assert!(
            stderr(&out).contains(field),
            "error for {field}: {}",
            stderr(&out)
        );
    }
    // A valid pod before an invalid one in the same file: nothing created.
    let mixed = format!(
        "{}---\n{}",
        busybox_pod("good", &format!("  - {{name: c, image: {BUSYBOX}}}\n")),
        cases[0].0
    );
    assert!(!d.apply(&mixed).status.success());
    assert!(d.pod_names().is_empty());
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

#[test]
fn unsupported_fields_are_warned_not_ignored() {
    let d = Daemon::start();
    let out = d.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    livenessProbe:\n      exec: {{command: ['true']}}\n"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Warning: spec.containers[0].livenessProbe is not supported yet and is ignored"
        ),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("pod/probe created"));
    d.wait_running("probe");
    let again = d.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    livenessProbe:\n      exec: {{command: ['true']}}\n"
    ));
    assert!(
        stdout(&again).contains("pod/probe unchanged"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn failing_init_container_blocks_app_containers() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: badinit}}\nspec:\n  restartPolicy: Never\n  initContainers:\n  - name: ok\n    image: {BUSYBOX}\n    command: ['true']\n  - name: fails\n    image: {BUSYBOX}\n    command: [sh, -c, 'exit 3']\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    ));
    let pod = d.wait_pod("badinit", "failed", |p| p["status"]["phase"] == "Failed");
    let s = &pod["status"]["initContainerStatuses"][1]["state"]["terminated"];
    assert_eq!(s["exitCode"], 3);
    assert_eq!(s["reason"], "Error");
    assert!(pod["status"]["containerStatuses"][0]["state"]["running"].is_null());
    let table = d.ok(&["get", "pods"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("badinit") && l.contains("Init:Error")),
        "{table}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let inspect = d.inspect("badinit");
    assert!(
        !inspect["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "app"),
        "{inspect}"
    );
}

#[test]
fn exec_with_tty_stdin_and_exit_codes() {
    let d = Daemon::start();
    d.apply_ok(&busybox_pod("ex", &format!("  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext: {{runAsUser: 1000, readOnlyRootFilesystem: true}}\n")));
    d.wait_running("ex");
    let out = d.peapod(&[
        "exec",
        "-t",
        "ex",
        "--",
        "sh",
        "-c",
        "test -t 0 && echo is-a-tty; id -u",
    ]);
    assert!(
        stdout(&out).contains("is-a-tty"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("1000"));
    let out = d.exec("ex", "c", &["sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = d.exec("ex", "c", &["touch", "/file"]);
    assert!(!out.status.success(), "read-only rootfs accepted a write");
    let mut child = std::process::Command::new(exe())
        .args([
            "--socket",
            d.socket.to_str().unwrap(),
            "exec",
            "-i",
            "ex",
            "--",
            "cat",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through-stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "through-stdin\n");
    // Default capabilities are containerd's, not all.
    let caps = d.exec_ok("ex", "c", &["grep", "CapBnd", "/proc/self/status"]);
    assert!(caps.contains("00000000a80425fb"), "{caps}");
}

#[test]
fn infra_death_recreates_the_sandbox() {
    let d = Daemon::start();
    d.apply_ok(&busybox_pod(
        "phoenix",
        &format!("  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"),
    ));
    d.wait_running("phoenix");
    let infra = d.pid("phoenix", "infra");
    let old = d.pid("phoenix", "c");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(infra),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = std::time::Instant::now();
    loop {
        let i = d.peapod(&["inspect", "pod", "phoenix", "-o", "json"]);
        if i.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
            let procs = v["processes"].as_array().unwrap();
            let pid_of = |n: &str| {
                procs
                    .iter()
                    .find(|p| p["name"] == n)
                    .and_then(|p| p["pid"].as_i64())
                    .unwrap_or(0) as i32
            };
            if pid_of("infra") != infra
                && pid_of("infra") > 0
                && pid_of("c") > 0
                && pid_of("c") != old
            {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sandbox was not recreated"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.wait_running("phoenix");
    assert!(
        !std::path::Path::new(&format!("/proc/{old}")).exists(),
        "the old container must be gone"
    );
    let describe = d.ok(&["describe", "pod", "phoenix"]);
    assert!(describe.contains("SandboxChanged"), "{describe}");
}

#[test]
fn second_daemon_on_same_root_is_refused_and_logs_follow() {
    let d = Daemon::start();
    let out = std::process::Command::new(exe())
        .args([
            "serve",
            "--root",
            d.root.to_str().unwrap(),
            "--state",
            d.dir.join("s2").to_str().unwrap(),
            "--socket",
            d.dir.join("s2.sock").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another peapod daemon already owns --root"),
        "{}",
        stderr(&out)
    );

    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: counter}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'for i in 1 2 3 4 5; do echo line-$i; sleep 0.3; done']\n"
    ));
    d.wait_pod("counter", "started", |p| p["status"]["phase"] != "Pending");
    // -f follows the log until the container exits, then returns.
    let out = d.ok(&["logs", "-f", "counter"]);
    assert_eq!(out, "line-1\nline-2\nline-3\nline-4\nline-5\n");
    let out = d.ok(&["logs", "counter", "--tail", "2"]);
    assert_eq!(out, "line-4\nline-5\n");
    let p = d.wait_pod("counter", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert!(d
        .ok(&["get", "pods"])
        .lines()
        .any(|l| l.starts_with("counter") && l.contains("Completed")));
}

#[test]
fn run_as_non_root_with_root_image_is_a_config_error() {
    let d = Daemon::start();
    d.apply_ok(&busybox_pod(
        "nonroot",
        &format!("  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext: {{runAsNonRoot: true}}\n"),
    ));
    let p = d.wait_pod("nonroot", "config error", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("runAsNonRoot"), "{msg}");
    assert!(d
        .ok(&["get", "pods"])
        .contains("CreateContainerConfigError"));
    // The RuntimeDefault seccomp profile applies to a container by default.
    d.apply_ok(&busybox_pod(
        "sec",
        &format!("  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"),
    ));
    d.wait_running("sec");
    let pid = d.pid("sec", "c");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')),
        "{status}"
    );
    // ... and to processes exec'd into it.
    let status = d.exec_ok("sec", "c", &["grep", "Seccomp:", "/proc/self/status"]);
    assert!(status.trim().ends_with('2'), "{status}");
    let out = d.exec("sec", "c", &["unshare", "-n", "true"]);
    assert!(!out.status.success(), "unshare must be refused");
    // Masked paths read empty in the container (they are not on the host).
    for path in [
        "/proc/timer_list",
        "/proc/keys",
        "/proc/sched_debug",
        "/proc/kcore",
    ] {
        if std::path::Path::new(path).exists() {
            assert_eq!(
                d.exec_ok("sec", "c", &["cat", path]),
                "",
                "{path} is not masked"
            );
        }
    }
}

#[test]
fn runtime_default_seccomp_is_an_allow_list() {
    let d = Daemon::start();
    // c: RuntimeDefault (the default), its shell forking before it execs
    // httpd. nnp: the same profile loaded after the capability drop, as a
    // user. admin: RuntimeDefault plus CAP_SYS_ADMIN, which brings the
    // namespace syscalls back. unconfined: no profile, CAP_SYS_ADMIN.
    // plain: no profile, default capabilities.
    d.apply_ok(&busybox_pod(
        "allow",
        &format!(
            "  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'date >/tmp/started; ls / >/dev/null && exec httpd -f -p 127.0.0.1:8080 -h /www']\n\
             \x20 - name: nnp\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext: {{runAsUser: 1000, allowPrivilegeEscalation: false}}\n\
             \x20 - name: admin\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext: {{capabilities: {{add: [SYS_ADMIN]}}}}\n\
             \x20 - name: unconfined\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext:\n      seccompProfile: {{type: Unconfined}}\n      capabilities: {{add: [SYS_ADMIN]}}\n\
             \x20 - name: plain\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext: {{seccompProfile: {{type: Unconfined}}}}\n"
        ),
    ));
    d.wait_running("allow");
    for c in ["c", "nnp", "admin"] {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", d.pid("allow", c))).unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')),
            "{c}: {status}"
        );
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", d.pid("allow", "unconfined"))).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('0')),
        "{status}"
    );

    // Ordinary work goes through the allow list: fork, exec, files, time,
    // sockets on lo (httpd in the container itself serves /www).
    let out = d.exec_ok(
        "allow",
        "c",
        &["sh", "-c", "cat /tmp/started && ls /bin/sh && date +%Y && id -u && wget -qO- http://127.0.0.1:8080/ && echo done"],
    );
    assert!(out.trim_end().ends_with("done"), "{out}");
    assert!(out.contains("/bin/sh"), "{out}");
    let out = d.exec_ok(
        "allow",
        "nnp",
        &["sh", "-c", "id -u; ls / >/dev/null; echo ok"],
    );
    assert_eq!(out, "1000\nok\n");

    // New namespaces are refused with EPERM. A user namespace needs no
    // capability, so it is seccomp that refuses it: without a profile the
    // same container can create one.
    d.exec_ok("allow", "plain", &["unshare", "-U", "true"]);
    for c in ["c", "nnp"] {
        for flag in ["-n", "-U"] {
            let out = d.exec("allow", c, &["unshare", flag, "true"]);
            assert!(!out.status.success(), "{c}: unshare {flag} must be refused");
            assert!(
                stderr(&out).contains("Operation not permitted"),
                "{c}: {}",
                stderr(&out)
            );
        }
    }
    // CAP_SYS_ADMIN lets unshare through RuntimeDefault; an Unconfined
    // container with it does the same.
    for c in ["admin", "unconfined"] {
        let out = d.exec_ok(
            "allow",
            c,
            &[
                "sh",
                "-c",
                "readlink /proc/self/ns/net; unshare -n readlink /proc/self/ns/net; unshare -U true && echo userns",
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{c}: {out}");
        assert_ne!(lines[0], lines[1], "{c}: unshare -n kept the namespace");
        assert_eq!(lines[2], "userns", "{c}");
    }
}

#[test]
fn tty_container_logs_and_sigint_on_daemon_keeps_pods() {
    let mut d = Daemon::start();
    d.apply_ok(&busybox_pod(
        "term",
        &format!("  - name: c\n    image: {BUSYBOX}\n    tty: true\n    stdin: true\n    command: [sh, -c, 'tty; echo hello-tty; exec cat']\n"),
    ));
    d.wait_running("term");
    let start = std::time::Instant::now();
    loop {
        let logs = d.ok(&["logs", "term"]);
        if logs.contains("hello-tty") {
            assert!(logs.contains("/dev/pts/"), "{logs}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{logs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `cat` on an open stdin keeps running: stdin: true holds it open.
    let pid = d.pid("term", "c");
    // Ctrl-C on a foreground daemon (SIGINT): the daemon stops, pods stay.
    let daemon = d.daemon_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    d.wait_daemon_exit();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container died with the daemon"
    );
    d.spawn(&[]);
    d.wait_running("term");
    assert_eq!(d.pid("term", "c"), pid);
}
