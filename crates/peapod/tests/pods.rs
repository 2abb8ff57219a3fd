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
    // No infra process: the pod's namespaces are pinned, not held.
    assert!(
        !inspect.contains("(infra)") && inspect.contains("server") && inspect.contains("client"),
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
    // kubelet's layout: <pod log dir>/<container>/<attempt>.log
    let file = std::fs::read_to_string(
        d.root
            .join(format!("logs/default_logs_{uid}/collector/0.log")),
    )
    .unwrap();
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
    // The container's cgroup is named by its opaque id.
    let cid = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("peapod://")
        .to_string();
    let c = format!("{cid}/");
    let cg = |ctrl: &str, rel: &str, file: &str| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{ctrl}/{}/pod{uid}/{rel}{file}",
            d.cgroup_parent
        ))
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(cg("cpu", &c, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg("cpu", &c, "cpu.cfs_period_us"), "100000");
    assert_eq!(cg("cpu", &c, "cpu.shares"), "256");
    assert_eq!(
        cg("memory", &c, "memory.limit_in_bytes"),
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
        "/sys/fs/cgroup/memory/{}/pod{uid}/{cid}/cgroup.procs",
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
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext:\n      seLinuxOptions: {{level: 's0:c1'}}\n"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Warning: spec.containers[0].securityContext.seLinuxOptions is not supported yet and is ignored"
        ),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("pod/probe created"));
    d.wait_running("probe");
    let again = d.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    securityContext:\n      seLinuxOptions: {{level: 's0:c1'}}\n"
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

/// The pid of the pod's shim, from `inspect`.
fn shim_pid(d: &Daemon, pod: &str) -> i32 {
    d.inspect(pod)["shim_pid"].as_i64().unwrap() as i32
}

/// Wait until container `c` of `pod` runs with a pid other than `old`.
fn wait_new_pid(d: &Daemon, pod: &str, c: &str, old: i32) -> i32 {
    let start = std::time::Instant::now();
    loop {
        let i = d.peapod(&["inspect", "pod", pod, "-o", "json"]);
        if i.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
            let pid = v["processes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == c)
                .and_then(|p| p["pid"].as_i64())
                .unwrap_or(0) as i32;
            if pid > 0 && pid != old {
                return pid;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sandbox of {pod} was not recreated"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn killed_shim_recreates_the_sandbox_and_keeps_empty_dir() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: phoenix}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'date >> /data/runs; exec sleep 3600']
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, emptyDir: {{}}}}]
"#
    ));
    d.wait_running("phoenix");
    let shim = shim_pid(&d, "phoenix");
    let old = d.pid("phoenix", "c");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let new = wait_new_pid(&d, "phoenix", "c", old);
    let pod = d.wait_running("phoenix");
    // The leftover container process was killed by cgroup.
    let start = std::time::Instant::now();
    while std::path::Path::new(&format!("/proc/{old}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the old container process {old} must be gone"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(shim_pid(&d, "phoenix"), shim);
    assert!(new > 0);
    // A new attempt, and the emptyDir kept what the first one wrote.
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 1, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 137, "{cs}");
    let runs = d.exec_ok("phoenix", "c", &["cat", "/data/runs"]);
    assert_eq!(runs.lines().count(), 2, "emptyDir lost: {runs:?}");
    let describe = d.ok(&["describe", "pod", "phoenix"]);
    assert!(describe.contains("SandboxChanged"), "{describe}");
}

#[test]
fn infra_death_recreates_a_shared_pid_sandbox() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: shared}}\nspec:\n  shareProcessNamespace: true\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    ));
    d.wait_running("shared");
    let infra = d.pid("shared", "(infra)");
    let old = d.pid("shared", "c");
    // The infra process is PID 1 of the pod's pid namespace.
    assert_eq!(ns_inode(infra, "pid"), ns_inode(old, "pid"));
    let out = d.exec_ok("shared", "c", &["ps"]);
    assert!(out.contains("infra"), "{out}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(infra),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_new_pid(&d, "shared", "c", old);
    d.wait_running("shared");
    assert_ne!(d.pid("shared", "(infra)"), infra);
    let describe = d.ok(&["describe", "pod", "shared"]);
    assert!(describe.contains("SandboxChanged"), "{describe}");
}

#[test]
fn one_process_per_pod_besides_its_containers() {
    let d = Daemon::start();
    d.apply_ok(&busybox_pod(
        "lean",
        &format!("  - name: a\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n  - name: b\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"),
    ));
    d.wait_running("lean");
    let i = d.inspect("lean");
    let names: Vec<&str> = i["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "no infra process: {names:?}");
    let shim = i["shim_pid"].as_i64().unwrap() as i32;
    let containers = [d.pid("lean", "a"), d.pid("lean", "b")];
    // Every process of this daemon's cgroup tree: the shim and the two
    // containers' inits, nothing else.
    let mut pids = Vec::new();
    for ctrl in ["pids", "memory"] {
        let root = std::path::PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/{}", d.cgroup_parent));
        if root.exists() {
            pids = all_pids_in(&root);
            break;
        }
    }
    pids.sort();
    let mut want = vec![shim, containers[0], containers[1]];
    want.sort();
    assert_eq!(pids, want);
    // The pod's namespaces are pinned, and the containers share them.
    let pinned: Vec<&str> = i["pinned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(pinned, ["net", "ipc", "uts"]);
    assert_eq!(
        ns_inode(containers[0], "net"),
        ns_inode(containers[1], "net")
    );
    let me = std::process::id() as i32;
    assert_ne!(ns_inode(containers[0], "net"), ns_inode(me, "net"));
    assert_ne!(
        ns_inode(containers[0], "pid"),
        ns_inode(containers[1], "pid")
    );
    assert_eq!(d.exec_ok("lean", "a", &["hostname"]).trim(), "lean");
}

#[test]
fn host_network_net_sysctl_is_refused_and_host_unchanged() {
    let d = Daemon::start();
    let host_before =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    // In the pod's own network namespace the sysctl applies there only.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: tuned}}\nspec:\n  securityContext:\n    sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: '81'}}]\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    ));
    d.wait_running("tuned");
    let inside = d.exec_ok(
        "tuned",
        "c",
        &["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
    );
    assert_eq!(inside.trim(), "81");
    // With hostNetwork it would change the host: refused.
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: hosty}}\nspec:\n  hostNetwork: true\n  securityContext:\n    sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: '82'}}]\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    ));
    let start = std::time::Instant::now();
    loop {
        let describe = d.ok(&["describe", "pod", "hosty"]);
        if describe.contains("hostNetwork") && describe.contains("FailedCreatePodSandBox") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{describe}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let host_after =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_eq!(host_before, host_after, "the host's sysctl changed");
}

#[test]
fn a_container_named_infra_has_its_own_limits() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: names}}\nspec:\n  containers:\n  - name: infra\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    resources: {{limits: {{memory: 48Mi}}}}\n  - name: shim\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n    resources: {{limits: {{memory: 40Mi}}}}\n"
    ));
    let pod = d.wait_running("names");
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    for (i, want) in [(0, 48u64 << 20), (1, 40u64 << 20)] {
        let cid = pod["status"]["containerStatuses"][i]["containerID"]
            .as_str()
            .unwrap()
            .trim_start_matches("peapod://")
            .to_string();
        let limit = std::fs::read_to_string(format!(
            "/sys/fs/cgroup/memory/{}/pod{uid}/{cid}/memory.limit_in_bytes",
            d.cgroup_parent
        ))
        .unwrap();
        assert_eq!(limit.trim(), want.to_string());
    }
    assert_eq!(d.exec_ok("names", "shim", &["hostname"]).trim(), "names");
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

#[test]
fn restarted_container_keeps_its_previous_attempt_across_a_daemon_restart() {
    let mut d = Daemon::start();
    // Fails once (exit 3), then runs: attempt 0 exited, attempt 1 running.
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: flaky}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, 'if [ -e /data/ran ]; then echo second; exec sleep 3600; fi; touch /data/ran; echo first; exit 3']
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, emptyDir: {{}}}}]
"#
    ));
    let check = |pod: &serde_json::Value| {
        let cs = &pod["status"]["containerStatuses"][0];
        cs["restartCount"] == 1
            && cs["state"]["running"].is_object()
            && cs["lastState"]["terminated"]["exitCode"] == 3
            && cs["lastState"]["terminated"]["reason"] == "Error"
    };
    let pod = d.wait_pod("flaky", "restarted once", check);
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let logs = d.root.join(format!("logs/default_flaky_{uid}/c"));
    assert!(std::fs::read_to_string(logs.join("0.log"))
        .unwrap()
        .contains("first"));
    // The status says running before the shell's echo may be written.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !d.ok(&["logs", "flaky"]).contains("second") {
        assert!(
            std::time::Instant::now() < deadline,
            "no \"second\" in the log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let table = d.ok(&["get", "pods"]);
    let row = table.lines().find(|l| l.starts_with("flaky")).unwrap();
    assert!(row.contains("Running") && row.contains(" 1 "), "{table}");

    // The daemon dies and comes back: statuses come from the runtime's
    // records, not from memory; nothing restarts again.
    let pid = d.pid("flaky", "c");
    d.kill9();
    d.spawn(&[]);
    let pod = d.wait_pod("flaky", "adopted with its history", check);
    assert_eq!(pod["metadata"]["uid"].as_str().unwrap(), uid);
    assert_eq!(d.pid("flaky", "c"), pid, "the running attempt was adopted");
    // Graceful termination after the restart reads the containers from
    // the runtime: the pod goes, nothing is left.
    d.ok(&["delete", "pod", "flaky", "--grace-period=1"]);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!logs.exists(), "the pod's logs go with the pod");
}

/// The drop guard fails a test that leaves something behind (here a pod
/// directory nobody deletes), after cleaning it up.
#[test]
#[should_panic(expected = "the test left 1 thing(s) behind")]
fn guard_reports_what_a_test_leaked() {
    let d = Daemon::start_bare(&[]);
    std::fs::create_dir_all(d.root.join("pods/leaked")).expect("mkdir");
}

#[test]
fn subpath_swapped_for_a_symlink_to_host_root_is_refused() {
    let d = Daemon::start();
    // The init container replaces the directory the app's subPath names
    // with a symlink to / (CVE-2021-25741): the app must not start, and
    // the host's / must never be mounted for it.
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: swap}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: attacker
    image: {BUSYBOX}
    command: [sh, -c, "mkdir -p /vol/data && rm -rf /vol/data && ln -s / /vol/data"]
    volumeMounts: [{{name: shared, mountPath: /vol}}]
  containers:
  - name: victim
    image: {BUSYBOX}
    command: [sh, -c, "ls /host; sleep 3600"]
    volumeMounts: [{{name: shared, mountPath: /vol}}, {{name: shared, mountPath: /host, subPath: data}}]
  volumes:
  - name: shared
    emptyDir: {{}}
"#
    ));
    let p = d.wait_pod("swap", "refused with CreateContainerConfigError", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("spec.containers[0].volumeMounts[1].subPath")
            && msg.contains("component \"data\" is a symlink (to \"/\")"),
        "{msg}"
    );
    let describe = d.ok(&["describe", "pod", "swap"]);
    assert!(
        describe.contains("is a symlink") && describe.contains("Failed"),
        "{describe}"
    );
    // Still refused on the next tries, and nothing was staged or started.
    std::thread::sleep(Duration::from_secs(2));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let staged: Vec<&str> = info.lines().filter(|l| l.contains(".subpaths")).collect();
    assert!(staged.is_empty(), "{staged:?}");
    let procs = d.inspect("swap");
    assert!(
        !procs["processes"]
            .as_array()
            .map(|a| a.iter().any(|p| p["name"] == "victim"))
            .unwrap_or(false),
        "{procs}"
    );
    d.ok(&["delete", "pod/swap"]);
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

#[test]
fn container_logs_rotate_and_tail_and_follow_across_rotation() {
    let d = Daemon::start_with(&[
        "--container-log-max-size",
        "256Ki",
        "--container-log-max-files",
        "3",
    ]);
    let pad = "x".repeat(80);
    // ~1.5 MiB of records, then, once /tmp/go exists, a few lines, another
    // 300 KiB (one more rotation) and a last line.
    d.apply_ok(&busybox_pod(
        "chatty",
        &format!(
            "  - name: c\n    image: {BUSYBOX}\n    command: [sh, -c, 'i=0; while [ $i -lt 12000 ]; do echo line-$i-{pad}; i=$((i+1)); done; echo bulk-done; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after-1; i=0; while [ $i -lt 3000 ]; do echo more-$i-{pad}; i=$((i+1)); done; echo final-line; while [ ! -e /tmp/go2 ]; do sleep 0.1; done; echo after-reopen; sleep 3600']\n"
        ),
    ));
    d.wait_running("chatty");
    let start = std::time::Instant::now();
    while !d
        .ok(&["logs", "chatty", "--tail", "1"])
        .contains("bulk-done")
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no bulk-done");
        std::thread::sleep(Duration::from_millis(200));
    }
    let uid = d.pod("chatty")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = d.root.join(format!("logs/default_chatty_{uid}/c"));
    let files = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let f = files();
    assert!(f.len() >= 2 && f.len() <= 3, "{f:?}");
    assert!(f.iter().all(|(_, len)| *len <= 256 * 1024), "{f:?}");
    assert!(
        f.iter()
            .all(|(n, _)| n == "0.log" || n.starts_with("0.log.20")),
        "{f:?}"
    );

    let out = d.ok(&["logs", "chatty", "--tail", "5"]);
    let want: String = (11996..12000)
        .map(|i| format!("line-{i}-{pad}\n"))
        .chain(["bulk-done\n".to_string()])
        .collect();
    assert_eq!(out, want);
    // More than the live file holds: the rotated files are read too.
    let out = d.ok(&["logs", "chatty", "--tail", "3000"]);
    assert_eq!(out.lines().count(), 3000);
    assert!(
        out.starts_with(&format!("line-9001-{pad}\n")),
        "{}",
        &out[..200]
    );

    // Follow, then make the container write through another rotation.
    let mut follower = std::process::Command::new(exe())
        .args(["--socket", d.socket.to_str().unwrap()])
        .args(["logs", "-f", "chatty", "--tail", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "bulk-done"
    );
    let before: Vec<String> = files().into_iter().map(|(n, _)| n).collect();
    d.exec_ok("chatty", "c", &["touch", "/tmp/go"]);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l == "final-line") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("follower stopped after {} lines", seen.len()),
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen.first().map(String::as_str), Some("after-1"));
    assert_eq!(seen.len(), 3002, "every line once, in order");
    for (i, l) in seen[1..3001].iter().enumerate() {
        assert_eq!(l, &format!("more-{i}-{pad}"));
    }
    let after: Vec<String> = files().into_iter().map(|(n, _)| n).collect();
    assert_ne!(before, after, "the live file should have rotated");
    assert!(after.len() <= 3, "{after:?}");

    // Rotated from outside (as kubelet does over CRI), then ReopenLog: the
    // next record goes to a new live file.
    // The daemon's only sandbox.
    let sandbox = std::fs::read_dir(d.state.join("sandboxes"))
        .unwrap()
        .flatten()
        .find(|e| e.path().join("shim.sock").exists())
        .unwrap()
        .path();
    let shim = peapod_shim::ShimClient::new(sandbox.join("shim.sock"));
    let id = shim
        .state()
        .unwrap()
        .containers
        .keys()
        .next()
        .unwrap()
        .clone();
    let moved = dir.join("0.log.20000101-000000");
    std::fs::rename(dir.join("0.log"), &moved).unwrap();
    shim.reopen_log(&id).unwrap();
    d.exec_ok("chatty", "c", &["touch", "/tmp/go2"]);
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(dir.join("0.log"))
        .unwrap_or_default()
        .contains(" F after-reopen")
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no after-reopen");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!std::fs::read_to_string(&moved)
        .unwrap()
        .contains("after-reopen"));
    assert!(shim.reopen_log("no-such-container").is_err());
}

#[test]
fn termination_messages_from_the_file_or_the_log() {
    let d = Daemon::start();
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: msgs}}
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: {BUSYBOX}
    command: [sh, -c, 'echo "disk full" > /dev/termination-log; exit 1']
  - name: custom
    image: {BUSYBOX}
    terminationMessagePath: /tmp/why
    command: [sh, -c, 'echo "custom path" > /tmp/why']
  - name: fallback
    image: {BUSYBOX}
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo line-1; echo "last words"; exit 2']
"#
    ));
    let pod = d.wait_pod("msgs", "Failed", |p| p["status"]["phase"] == "Failed");
    let msg = |i: usize| {
        pod["status"]["containerStatuses"][i]["state"]["terminated"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(msg(0).trim(), "disk full");
    assert_eq!(msg(1).trim(), "custom path");
    assert_eq!(msg(2).trim(), "line-1\nlast words");
    assert_eq!(
        pod["status"]["containerStatuses"][2]["state"]["terminated"]["exitCode"],
        2
    );
}
