//! Services with real pods and real nftables: each test daemon has its
//! own table (`--nft-table pptest<N>`) and service range
//! (`10.235.<N>.0/24`), see `TestNet`; the leak guard checks the table is
//! gone once the test's Services are deleted.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// An httpd pod of `app` that serves its own name, on a container port
/// named `http`, ready while /tmp/ready exists.
fn web_pod(name: &str, app: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {HTTPD}
    command: [sh, -c, "hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
    ports:
    - {{name: http, containerPort: 8080}}
    readinessProbe:
      exec: {{command: [cat, /tmp/ready]}}
      periodSeconds: 1
      failureThreshold: 1
"#
    )
}

fn client_pod(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "3600"]
"#
    )
}

fn service(name: &str, app: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {app}}}
  ports:
  - {{name: web, port: 80, targetPort: http}}
{extra}"#
    )
}

fn json(d: &Daemon, args: &[&str]) -> Value {
    serde_json::from_str(&d.ok(args)).unwrap()
}

fn pod_ip(d: &Daemon, name: &str) -> String {
    d.pod(name)["status"]["podIP"].as_str().unwrap().to_string()
}

/// `n` GETs of `url` from inside `pod`: the bodies (FAIL for a failure).
fn requests(d: &Daemon, pod: &str, url: &str, n: usize) -> Vec<String> {
    let script = format!("for i in $(seq {n}); do timeout 5 wget -q -O - {url} || echo FAIL; done");
    d.exec_ok(pod, "c", &["sh", "-c", &script])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The (ip, ready) of the endpoints of `svc`'s slices.
fn endpoints(d: &Daemon, svc: &str) -> Vec<(String, bool)> {
    let list = json(d, &["get", "endpointslices", "-o", "json"]);
    let mut out = Vec::new();
    for s in list["items"].as_array().unwrap() {
        if s["metadata"]["labels"]["kubernetes.io/service-name"] != svc {
            continue;
        }
        for e in s["endpoints"].as_array().into_iter().flatten() {
            out.push((
                e["addresses"][0].as_str().unwrap().to_string(),
                e["conditions"]["ready"] == true,
            ));
        }
    }
    out.sort();
    out
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn nft_table(d: &Daemon) -> String {
    let out = Command::new("nft")
        .args(["list", "table", "ip", &d.net.nft_table()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP GET from the host: the body.
fn host_get(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

fn distinct(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn cluster_ip_balances_over_ready_pods_and_follows_readiness_and_deletion() {
    let d = Daemon::start();
    let out = d.apply_ok(&service("web", "web", ""));
    assert_eq!(out.trim(), "service/web created");
    for n in ["web-0", "web-1", "web-2"] {
        d.apply_ok(&web_pod(n, "web"));
    }
    d.apply_ok(&client_pod("client"));
    for n in ["web-0", "web-1", "web-2", "client"] {
        d.wait_running(n);
    }
    let svc = json(&d, &["get", "svc", "web", "-o", "json"]);
    let cip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(
        cip.starts_with(&format!("10.235.{}.", d.net.n)),
        "{cip} not in {}",
        d.net.service_cidr()
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    let table = d.ok(&["get", "svc"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(
        &lines[1][..5],
        ["web", "ClusterIP", cip.as_str(), "<none>", "80/TCP"]
    );

    // One endpoint per pod, ready, on the named port resolved to 8080.
    let ips: Vec<String> = ["web-0", "web-1", "web-2"]
        .iter()
        .map(|n| pod_ip(&d, n))
        .collect();
    let all_ready: Vec<(String, bool)> = {
        let mut v: Vec<_> = ips.iter().map(|ip| (ip.clone(), true)).collect();
        v.sort();
        v
    };
    wait_for("3 ready endpoints", || {
        (endpoints(&d, "web") == all_ready).then_some(())
    });
    let slices = json(&d, &["get", "endpointslices", "-o", "json"]);
    assert_eq!(slices["items"][0]["ports"][0]["port"], 8080, "{slices}");
    assert_eq!(slices["items"][0]["addressType"], "IPv4");
    let text = d.ok(&["get", "endpointslices"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(text.contains("IPv4") && text.contains("8080"), "{text}");
    assert!(nft_table(&d).contains(&format!("ip daddr {cip} tcp dport 80")));

    // 30 requests reach all three.
    let got = requests(&d, "client", &format!("http://{cip}/"), 30);
    assert_eq!(got.len(), 30, "{got:?}");
    assert_eq!(distinct(&got), set(&["web-0", "web-1", "web-2"]), "{got:?}");

    // web-1 turns unready: its endpoint says so, and it gets no traffic.
    d.exec_ok("web-1", "web", &["rm", "/tmp/ready"]);
    d.wait_pod("web-1", "unready", |p| {
        p["status"]["containerStatuses"][0]["ready"] == false
    });
    wait_for("web-1 unready in the slice", || {
        endpoints(&d, "web")
            .contains(&(ips[1].clone(), false))
            .then_some(())
    });
    let got = requests(&d, "client", &format!("http://{cip}/"), 30);
    assert_eq!(distinct(&got), set(&["web-0", "web-2"]), "{got:?}");

    // A deleted pod leaves the endpoints.
    d.ok(&["delete", "pod", "web-2", "--grace-period=0"]);
    wait_for("web-2 gone from the slice", || {
        (!endpoints(&d, "web").iter().any(|(ip, _)| *ip == ips[2])).then_some(())
    });
    let got = requests(&d, "client", &format!("http://{cip}/"), 10);
    assert_eq!(distinct(&got), set(&["web-0"]), "{got:?}");

    let describe = d.ok(&["describe", "svc", "web"]);
    assert!(
        describe.contains(&format!("{}:8080", ips[0])) && describe.contains("TargetPort:"),
        "{describe}"
    );

    // Deleting the Service removes its rules (here the whole table: it
    // was the only one) and its slices.
    d.ok(&["delete", "svc", "web"]);
    wait_for("the table gone", || (!d.net.has_nft_table()).then_some(()));
    wait_for("the slices gone", || {
        endpoints(&d, "web").is_empty().then_some(())
    });
}

#[test]
fn node_port_answers_on_the_hosts_addresses_and_headless_lists_pod_ips() {
    let d = Daemon::start();
    d.apply_ok(&service("web", "web", "  type: NodePort\n"));
    d.apply_ok(&service("db", "web", "  clusterIP: None\n"));
    d.apply_ok(&web_pod("web-0", "web"));
    d.wait_running("web-0");
    let ip = pod_ip(&d, "web-0");
    let svc = json(&d, &["get", "svc", "web", "-o", "json"]);
    let np = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&np), "{svc}");
    let table = d.ok(&["get", "svc", "web"]);
    assert!(table.contains(&format!("80:{np}/TCP")), "{table}");
    wait_for("the endpoint", || {
        (endpoints(&d, "web") == [(ip.clone(), true)]).then_some(())
    });
    // On the bridge's address and on every other address of this host's
    // own interfaces (not 127.0.0.1, as kube-proxy's nftables mode).
    let mut addrs = vec![d.net.gateway()];
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 3 && !f[1].starts_with("pptest") && !f[1].starts_with("peapod") {
            addrs.push(f[3].split('/').next().unwrap().to_string());
        }
    }
    for a in &addrs {
        let body = wait_for(&format!("nodePort on {a}"), || {
            host_get(&format!("{a}:{np}")).ok()
        });
        assert_eq!(body, "web-0\n", "on {a}");
    }
    // Hairpin: the pod reaches itself through its Service's clusterIP
    // (masqueraded, else its reply would skip the NAT).
    let cip = svc["spec"]["clusterIP"].as_str().unwrap();
    let own = d.exec_ok(
        "web-0",
        "web",
        &[
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{cip}/"),
        ],
    );
    assert_eq!(own, "web-0\n");

    // The headless Service: no clusterIP, a slice with the pod's IP, no
    // rule.
    let db = json(&d, &["get", "svc", "db", "-o", "json"]);
    assert_eq!(db["spec"]["clusterIP"], "None");
    let row = d.ok(&["get", "svc", "db"]);
    assert!(
        row.lines().nth(1).unwrap().split_whitespace().nth(2) == Some("None"),
        "{row}"
    );
    wait_for("the headless endpoint", || {
        (endpoints(&d, "db") == [(ip.clone(), true)]).then_some(())
    });
    assert!(!nft_table(&d).contains("db:web"), "{}", nft_table(&d));
    // An invalid Service is refused with the field named.
    let out = d.apply(&service(
        "bad",
        "web",
        "  type: NodePort\n  clusterIP: None\n",
    ));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("may only be set to 'None' for ClusterIP services"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn service_variables_appear_in_pods_started_after_the_service() {
    let d = Daemon::start();
    d.apply_ok(&client_pod("before"));
    d.wait_running("before");
    d.apply_ok(&service("my-web", "web", ""));
    d.apply_ok(&client_pod("after"));
    d.wait_running("after");
    let cip = json(&d, &["get", "svc", "my-web", "-o", "json"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let env = d.exec_ok("after", "c", &["env"]);
    for want in [
        format!("MY_WEB_SERVICE_HOST={cip}"),
        "MY_WEB_SERVICE_PORT=80".to_string(),
        "MY_WEB_SERVICE_PORT_WEB=80".to_string(),
        format!("MY_WEB_PORT=tcp://{cip}:80"),
        format!("MY_WEB_PORT_80_TCP=tcp://{cip}:80"),
        "MY_WEB_PORT_80_TCP_PROTO=tcp".to_string(),
        "MY_WEB_PORT_80_TCP_PORT=80".to_string(),
        format!("MY_WEB_PORT_80_TCP_ADDR={cip}"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing: {env}");
    }
    let before = d.exec_ok("before", "c", &["env"]);
    assert!(!before.contains("MY_WEB_SERVICE_HOST"), "{before}");
    // enableServiceLinks: false leaves them out.
    d.apply_ok(&client_pod("nolinks").replace(
        "  containers:",
        "  enableServiceLinks: false\n  containers:",
    ));
    d.wait_running("nolinks");
    let env = d.exec_ok("nolinks", "c", &["env"]);
    assert!(!env.contains("MY_WEB_SERVICE_HOST"), "{env}");
}

#[test]
fn a_service_keeps_answering_while_the_daemon_is_killed_and_after_restart() {
    let mut d = Daemon::start();
    d.apply_ok(&service("web", "web", "  type: NodePort\n"));
    d.apply_ok(&web_pod("web-0", "web"));
    d.apply_ok(&client_pod("client"));
    d.wait_running("web-0");
    d.wait_running("client");
    let svc = json(&d, &["get", "svc", "web", "-o", "json"]);
    let cip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let np = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    let node_port = format!("{}:{np}", d.net.gateway());
    wait_for("the service answers", || host_get(&node_port).ok());
    let ips_before = (pod_ip(&d, "web-0"), pod_ip(&d, "client"));

    // The host asks all along: while the daemon is dead and while the
    // next one starts and rebuilds the table.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = {
        let stop = stop.clone();
        let addr = node_port.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match host_get(&addr) {
                    Ok(b) if b == "web-0\n" => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };
    d.kill9();
    std::thread::sleep(Duration::from_millis(500));
    // A rule of its own the dead daemon might have left: the next one
    // removes it.
    let st = Command::new("nft")
        .args(["add", "chain", "ip", &d.net.nft_table(), "stale-chain"])
        .status()
        .unwrap();
    assert!(st.success());
    d.spawn(&[]);
    d.wait_running("web-0");
    wait_for("the stale chain removed", || {
        (!nft_table(&d).contains("stale-chain")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = asker.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed, {ok} answered: {failed:?}",
        failed.len()
    );
    assert!(ok > 5, "only {ok} answers");
    // And the clusterIP from a pod after, by address and by name (the
    // new daemon's DNS server).
    let got = requests(&d, "client", &format!("http://{cip}/"), 3);
    assert_eq!(got, ["web-0", "web-0", "web-0"]);
    let got = requests(&d, "client", "http://web/", 3);
    assert_eq!(got, ["web-0", "web-0", "web-0"]);
    // The pods kept their addresses.
    assert_eq!((pod_ip(&d, "web-0"), pod_ip(&d, "client")), ips_before);
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_pod() {
    let d = Daemon::start();
    d.apply_ok(&service("web", "web", "  sessionAffinity: ClientIP\n"));
    for n in ["web-0", "web-1"] {
        d.apply_ok(&web_pod(n, "web"));
    }
    d.apply_ok(&client_pod("client"));
    for n in ["web-0", "web-1", "client"] {
        d.wait_running(n);
    }
    wait_for("2 ready endpoints", || {
        (endpoints(&d, "web").iter().filter(|(_, r)| *r).count() == 2).then_some(())
    });
    let svc = json(&d, &["get", "svc", "web", "-o", "json"]);
    assert_eq!(
        svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );
    let cip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let got = requests(&d, "client", &format!("http://{cip}/"), 20);
    assert_eq!(got.len(), 20);
    assert_eq!(distinct(&got).len(), 1, "{got:?}");
    assert!(got[0].starts_with("web-"), "{got:?}");
}

/// A table left behind (here: made by hand after the daemon died, so no
/// daemon removes it) is reported by the leak guard, and removed all the
/// same.
#[test]
#[should_panic(expected = "nftables table ip pptest")]
fn guard_reports_a_leaked_nft_table() {
    let mut d = Daemon::start_bare(&[]);
    d.kill9();
    let st = Command::new("nft")
        .args(["add", "table", "ip", &d.net.nft_table()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(d.net.has_nft_table());
}
