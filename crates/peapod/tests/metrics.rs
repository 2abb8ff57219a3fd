//! `top pod`, `top node` and the metrics.k8s.io API, read from real pods'
//! cgroups. Each test has its own daemon.

mod common;

use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `top pod` row of `pod`: (millicores, MiB).
fn top_row(out: &str, pod: &str) -> Option<(i64, i64)> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pod))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some((
        f.get(1)?.strip_suffix('m')?.parse().ok()?,
        f.get(2)?.strip_suffix("Mi")?.parse().ok()?,
    ))
}

#[test]
fn top_pods_and_node_from_cgroups() {
    let d = Daemon::start_with(&["--metrics-interval", "1s"]);
    let burn = format!(
        "  terminationGracePeriodSeconds: 0\n  containers:\n  - name: burn\n    image: {BUSYBOX}\n    command: [sh, -c, 'while :; do :; done']\n  - name: idle\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    );
    d.apply_ok(&pod_manifest("burner", &burn));
    let idle = format!(
        "  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: {BUSYBOX}\n    command: [sleep, '3600']\n"
    );
    let mut labelled = pod_manifest("quiet", &idle);
    labelled = labelled.replacen(
        "  name: quiet\n",
        "  name: quiet\n  labels: {tier: calm}\n",
        1,
    );
    d.apply_ok(&labelled);
    d.wait_running("burner");
    d.wait_running("quiet");

    // Two readings are needed for a rate: the pods show within a few
    // intervals, the burner using a good part of a core.
    let out = wait_until("both pods in `top pod`", 30, || {
        let out = stdout(&d.peapod(&["top", "pod"]));
        let (cpu, _) = top_row(&out, "burner")?;
        top_row(&out, "quiet")?;
        (cpu >= 200).then_some(out)
    });
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.lines().next().unwrap().contains("CPU(cores)"), "{out}");
    let (quiet_cpu, quiet_mem) = top_row(&out, "quiet").unwrap();
    assert!(quiet_cpu < 50, "an idle pod uses {quiet_cpu}m:\n{out}");
    assert!(quiet_mem < 64, "{out}");

    let per_container = d.ok(&["top", "pod", "burner", "--containers"]);
    let rows: Vec<Vec<&str>> = per_container
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{per_container}");
    let burn_cpu: i64 = rows
        .iter()
        .find(|r| r[1] == "burn")
        .and_then(|r| r[2].strip_suffix('m')?.parse().ok())
        .unwrap();
    assert!(burn_cpu >= 100, "{per_container}");

    let selected = d.ok(&["top", "pod", "-l", "tier=calm"]);
    assert!(top_row(&selected, "quiet").is_some(), "{selected}");
    assert!(top_row(&selected, "burner").is_none(), "{selected}");
    let all = d.ok(&["top", "pod", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    let none = d.peapod(&["top", "pod", "-n", "empty"]);
    assert!(failed(&none).contains("No resources found in empty namespace."));

    // The API as metrics-server serves it.
    let (code, body) = d.api_get("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burner");
    assert_eq!(code, 200);
    let m: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["kind"], "PodMetrics");
    assert_eq!(m["window"], "1s");
    let cpu = m["containers"][0]["usage"]["cpu"].as_str().unwrap();
    assert!(cpu.ends_with('n'), "{m}");

    let node = wait_until("`top node`", 15, || {
        let o = d.peapod(&["top", "node"]);
        o.status.success().then(|| stdout(&o))
    });
    let row: Vec<&str> = node.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(
        row[1].ends_with('m') && row[2].ends_with('%') && row[3].ends_with("Mi"),
        "{node}"
    );
    let node_cpu: i64 = row[1].trim_end_matches('m').parse().unwrap();
    assert!(node_cpu >= 200, "the burner alone uses more: {node}");

    // A deleted pod leaves the metrics.
    d.ok(&["delete", "pod", "burner", "--grace-period=0"]);
    wait_until("burner gone from `top pod`", 15, || {
        let out = stdout(&d.peapod(&["top", "pod"]));
        top_row(&out, "burner").is_none().then_some(())
    });
    d.ok(&["delete", "pod", "quiet", "--grace-period=0"]);
}

/// The number of Running pods whose name starts with `prefix`.
fn running(d: &Daemon, prefix: &str) -> usize {
    let (_, body) = d.api_get("/api/v1/namespaces/default/pods");
    let list: Value = serde_json::from_slice(&body).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .starts_with(prefix)
                && p["status"]["phase"] == "Running"
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .count()
}

fn hpa(d: &Daemon) -> Value {
    let (code, body) =
        d.api_get("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/burner");
    assert_eq!(code, 200);
    serde_json::from_slice(&body).unwrap()
}

/// A Deployment whose pods burn CPU until a file appears in a shared
/// hostPath: the HPA scales it up within its policies, then, once the
/// burning stops, back down to minReplicas.
#[test]
fn hpa_scales_a_cpu_burning_deployment_up_and_down() {
    let d = Daemon::start_with(&["--metrics-interval", "1s"]);
    let switch = d.dir.join("switch");
    std::fs::create_dir_all(&switch).unwrap();
    d.apply_ok(&format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: burner}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: burner}}}}
  template:
    metadata: {{labels: {{app: burner}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: burn
        image: {BUSYBOX}
        command: [sh, -c, 'while [ ! -e /switch/stop ]; do :; done; exec sleep 3600']
        resources: {{requests: {{cpu: 100m}}}}
        volumeMounts: [{{name: switch, mountPath: /switch}}]
      volumes: [{{name: switch, hostPath: {{path: {}}}}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: burner}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: burner}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 3
"#,
        switch.display()
    ));
    // One busy pod uses far more than 50 % of 100m: up to maxReplicas.
    wait_until("3 burner pods", 90, || {
        (running(&d, "burner-") == 3).then_some(())
    });
    let h = hpa(&d);
    assert_eq!(h["status"]["desiredReplicas"], 3, "{h}");
    let util = h["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
        .as_i64()
        .unwrap();
    assert!(util > 50, "{h}");
    let limited = h["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ScalingLimited")
        .cloned()
        .unwrap();
    assert_eq!(limited["reason"], "TooManyReplicas", "{h}");
    let table = d.ok(&["get", "hpa"]);
    assert!(table.starts_with("NAME"), "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "burner");
    assert_eq!(row[1], "Deployment/burner");
    assert_eq!(row[2], "cpu:");
    assert!(row[3].ends_with("/50%"), "{table}");
    assert_eq!(&row[4..7], ["1", "3", "3"], "{table}");

    // The burning stops: after the 3 s window, back to one pod.
    std::fs::write(switch.join("stop"), "").unwrap();
    wait_until("the Deployment scaled back to 1", 90, || {
        let (_, body) = d.api_get("/apis/apps/v1/namespaces/default/deployments/burner");
        let dep: Value = serde_json::from_slice(&body).unwrap();
        (dep["spec"]["replicas"] == 1).then_some(())
    });
    wait_until("one burner pod", 60, || {
        (running(&d, "burner-") == 1).then_some(())
    });
    let events = d.ok(&["describe", "hpa", "burner"]);
    assert!(events.contains("SuccessfulRescale"), "{events}");
    assert!(
        events.contains("New size: 1; reason: All metrics below target"),
        "{events}"
    );

    // A bad HPA is refused with the field named.
    let bad = d.apply(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: bad}\nspec:\n  scaleTargetRef: {kind: Deployment, name: x}\n  minReplicas: 4\n  maxReplicas: 2\n",
    );
    assert!(failed(&bad).contains("spec.maxReplicas: Invalid value: 2"));
    d.ok(&["delete", "deployment", "burner"]);
    wait_until("burner pods gone", 60, || {
        (running(&d, "burner-") == 0).then_some(())
    });
}
