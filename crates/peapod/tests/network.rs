//! Pod networking through the real CNI plugins (Debian's
//! containernetworking-plugins in /usr/lib/cni): each test daemon has its
//! own bridge, subnet and network name (see `TestNet` in the harness), and
//! talks only to addresses on this machine.

mod common;

use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn pod_ip(p: &Value) -> String {
    p["status"]["podIP"]
        .as_str()
        .unwrap_or_else(|| panic!("no podIP: {}", p["status"]))
        .to_string()
}

fn in_subnet(d: &Daemon, ip: &str) -> bool {
    ip.starts_with(&format!("10.234.{}.", d.net.n))
}

fn httpd_pod(name: &str, extra_port: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: {HTTPD}
    ports:
    - containerPort: 8080{extra_port}
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

/// `wget` from inside `pod` (container `c`), with a timeout (busybox
/// wget's own `-T` crashes this busybox build).
fn wget(d: &Daemon, pod: &str, url: &str) -> String {
    d.exec_ok(pod, "c", &["timeout", "10", "wget", "-q", "-O", "-", url])
}

/// A plain HTTP GET from the host.
fn host_get(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn two_pods_get_distinct_ips_and_fetch_http_from_each_other_and_reach_the_host() {
    let d = Daemon::start();
    d.apply_ok(&httpd_pod("web", ""));
    d.apply_ok(&client_pod("client"));
    let web = d.wait_running("web");
    let client = d.wait_running("client");
    let (wip, cip) = (pod_ip(&web), pod_ip(&client));
    assert_ne!(wip, cip);
    for (p, ip) in [(&web, &wip), (&client, &cip)] {
        assert!(in_subnet(&d, ip), "{ip} not in {}", d.net.subnet);
        assert_eq!(p["status"]["podIPs"], serde_json::json!([{ "ip": ip }]));
    }
    // get -o wide shows the IP column.
    let wide = d.ok(&["get", "pods", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    let col = header.iter().position(|h| *h == "IP").expect("IP column");
    let row: Vec<&str> = wide
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[col], wip, "{wide}");
    // inspect shows the pod's network.
    let i = d.inspect("web");
    assert_eq!(i["network"]["ip"], wip.as_str(), "{i}");
    assert_eq!(i["network"]["gateway"], d.net.gateway().as_str(), "{i}");
    assert_eq!(i["network"]["interface"], "eth0");
    let describe = d.ok(&["describe", "pod", "web"]);
    assert!(
        describe
            .lines()
            .any(|l| l.starts_with("IP:") && l.trim_end().ends_with(&wip)),
        "{describe}"
    );
    // The pod's /etc/hosts names it on its IP, as kubelet writes it.
    let hosts = d.exec_ok("web", "web", &["cat", "/etc/hosts"]);
    assert!(
        hosts.ends_with(&format!("{wip}\tweb\n")),
        "/etc/hosts: {hosts:?}"
    );
    // The pod's eth0 carries the address.
    let addr = d.exec_ok("client", "c", &["ip", "-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {cip}/24")), "{addr}");
    // Pod to pod over HTTP.
    let page = wget(&d, "client", &format!("http://{wip}:8080/"));
    let index = d.exec_ok("web", "web", &["cat", "/www/index.html"]);
    assert_eq!(page, index);

    // Pod to host: a listener on the bridge's address answers the pod.
    let gw = d.net.gateway();
    let listener = std::net::TcpListener::bind(format!("{gw}:0")).expect("bind on the bridge");
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nfrom-host\n");
        peer.ip().to_string()
    });
    let got = wget(&d, "client", &format!("http://{gw}:{port}/"));
    assert_eq!(got, "from-host\n");
    // The host saw the pod's own address (no NAT inside the bridge).
    assert_eq!(server.join().unwrap(), cip);
    assert_eq!(d.net.veths().len(), 2, "one veth per pod");
}

#[test]
fn host_port_answers_on_the_hosts_loopback_and_host_network_skips_cni() {
    let d = Daemon::start();
    let host_port = 21000 + d.net.n;
    let local_port = 23000 + d.net.n;
    let out = d.apply_ok(&httpd_pod(
        "hp",
        &format!(
            "\n      hostPort: {host_port}\n    - containerPort: 8080\n      hostPort: {local_port}\n      hostIP: 127.0.0.1\n      protocol: TCP"
        ),
    ));
    assert!(
        !out.contains("not supported"),
        "no warning for hostPort: {out}"
    );
    let p = d.wait_running("hp");
    let ip = pod_ip(&p);
    let start = Instant::now();
    let body = loop {
        match host_get(&format!("127.0.0.1:{host_port}")) {
            Ok(b) if b.starts_with("HTTP/1.") => break b,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "127.0.0.1:{host_port} -> {ip}:8080: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    assert!(body.contains(" 200 "), "{body}");
    let body = host_get(&format!("127.0.0.1:{local_port}")).expect("hostIP 127.0.0.1");
    assert!(body.contains(" 200 "), "{body}");
    // A hostIP of 127.0.0.1 maps that address only: the bridge's address
    // (another of the host's) does not forward the port.
    assert!(host_get(&format!("{}:{local_port}", d.net.gateway())).is_err());
    // portmap lets DNAT-ed 127/8 traffic cross only this test's bridge
    // (it sets route_localnet on the bridge; no host-wide switch).
    let localnet = std::fs::read_to_string(format!(
        "/proc/sys/net/ipv4/conf/{}/route_localnet",
        d.net.bridge
    ))
    .unwrap();
    assert_eq!(localnet.trim(), "1");

    // hostNetwork: no CNI, the host's addresses.
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "3600"]
"#
    ));
    let h = d.wait_running("hostnet");
    assert_eq!(h["status"]["podIP"], h["status"]["hostIP"]);
    assert_eq!(d.net.veths().len(), 1, "only the hostPort pod has a veth");
    assert_eq!(d.net.leases(&d.state).len(), 1);
    d.ok(&["delete", "pod", "hp", "--grace-period=0"]);
    wait_gone(&d, "hp");
    let start = Instant::now();
    while host_get(&format!("127.0.0.1:{host_port}")).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "hostPort still answers"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_gone(d: &Daemon, name: &str) {
    let start = Instant::now();
    while d.pod_names().iter().any(|n| n == name) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "pod {name} was never removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Firewall rules of `network` (the plugins comment theirs with the
/// network's name), from iptables and the nftables ruleset.
fn rules_of(network: &str) -> Vec<String> {
    let needle = format!("\\\"{network}\\\"");
    let mut out = Vec::new();
    for (cmd, args) in [("iptables-save", vec![]), ("nft", vec!["list", "ruleset"])] {
        let o = Command::new(cmd).args(&args).output().expect(cmd);
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if l.contains(&needle) || l.contains(&format!("\"{network}\"")) {
                // Counters change; the rule does not.
                let l = l.split(" counter packets").next().unwrap_or(l);
                out.push(format!("{cmd}: {}", l.trim()));
            }
        }
    }
    out.sort();
    out
}

fn veths_on_host() -> Vec<String> {
    let o = Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[test]
fn a_hundred_pods_created_and_deleted_leave_leases_veths_and_rules_as_they_were() {
    let d = Daemon::start();
    // A first pod makes the bridge and host-local's directory.
    d.apply_ok(&client_pod("warm"));
    d.wait_running("warm");
    // The bridge does not masquerade (ipMasq false, as peapod's default):
    // peapod's egress table does, from the daemon's start to its stop
    // (the leak guard checks it goes then).
    let egress = d.net.list_table(&d.net.egress_table()).unwrap_or_default();
    assert!(
        egress.contains(&format!(
            "ip saddr {s} ip daddr != {s} ip daddr != 224.0.0.0/4 masquerade",
            s = d.net.subnet
        )),
        "{egress}"
    );
    d.ok(&["delete", "pod", "warm", "--grace-period=0"]);
    wait_gone(&d, "warm");
    let lease_dir = d.state.join("cni/networks").join(&d.net.network);
    let list = |p: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let leases_before = list(&lease_dir);
    let bridge_before = d.net.veths();
    let rules_before = rules_of(&d.net.network);
    assert!(bridge_before.is_empty(), "{bridge_before:?}");
    assert!(
        rules_before.is_empty(),
        "{rules_before:?}\n--- daemon log ---\n{}",
        std::fs::read_to_string(&d.log).unwrap_or_default()
    );

    // 100 pods in 4 batches of 25, each with a hostPort, so portmap's
    // rules come and go too.
    const BATCH: u32 = 25;
    let mut all_ips = std::collections::BTreeSet::new();
    for b in 0..4 {
        let names: Vec<String> = (0..BATCH).map(|i| format!("churn-{b}-{i}")).collect();
        let manifest: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "{}    ports: [{{containerPort: 80, hostPort: {}}}]\n",
                    client_pod(n),
                    40000 + d.net.n * BATCH + i as u32
                )
            })
            .collect::<Vec<_>>()
            .join("---\n");
        d.apply_ok(&manifest);
        let mut ips = std::collections::BTreeSet::new();
        for n in &names {
            let p = d.wait_running(n);
            let ip = pod_ip(&p);
            assert!(in_subnet(&d, &ip), "{ip}");
            ips.insert(ip);
        }
        assert_eq!(ips.len(), BATCH as usize, "distinct IPs: {ips:?}");
        all_ips.extend(ips);
        let ours = d.net.veths();
        assert_eq!(ours.len(), BATCH as usize);
        assert_eq!(d.net.leases(&d.state).len(), BATCH as usize);
        let host_veths = veths_on_host();
        assert!(ours.iter().all(|v| host_veths.contains(v)));
        let running = rules_of(&d.net.network);
        assert!(
            running.iter().filter(|r| r.contains("dnat name")).count() >= BATCH as usize,
            "portmap's rules while the pods run: {running:#?}"
        );
        let mut args = vec!["delete", "pod", "--grace-period=0"];
        args.extend(names.iter().map(String::as_str));
        d.ok(&args);
        for n in &names {
            wait_gone(&d, n);
        }
        let host_veths = veths_on_host();
        assert!(
            ours.iter().all(|v| !host_veths.contains(v)),
            "veths left: {:?}",
            ours.iter()
                .filter(|v| host_veths.contains(v))
                .collect::<Vec<_>>()
        );
    }
    // host-local hands out the next free address: 100 pods saw more
    // addresses than one batch holds.
    assert!(all_ips.len() > BATCH as usize, "{all_ips:?}");
    assert_eq!(list(&lease_dir), leases_before);
    assert_eq!(d.net.veths(), bridge_before);
    assert_eq!(rules_of(&d.net.network), rules_before);
    // No Service: peapod's own nftables table never appeared.
    assert!(!d.net.has_nft_table());
}

/// A namespace "outside" the pod network, behind a veth from the host,
/// with a route back only to the host's end: a pod reaches it only
/// masqueraded. Removed (with its veth and server) on drop.
struct Outside {
    ns: String,
    host_ip: String,
    ip: String,
    server: Option<std::process::Child>,
}

impl Outside {
    fn new(n: u32) -> Outside {
        let ns = format!("ppout{n}");
        let (host_if, ns_if) = (format!("ppoh{n}"), format!("ppon{n}"));
        let (host_ip, ip) = (format!("10.236.{n}.1"), format!("10.236.{n}.2"));
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(std::process::Stdio::null())
            .status();
        let run = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().expect("ip");
            assert!(st.success(), "ip {args:?}");
        };
        run(&["netns", "add", &ns]);
        let mut o = Outside {
            ns: ns.clone(),
            host_ip: host_ip.clone(),
            ip: ip.clone(),
            server: None,
        };
        run(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns,
        ]);
        run(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        run(&["link", "set", &host_if, "up"]);
        run(&["-n", &ns, "addr", "add", &format!("{ip}/30"), "dev", &ns_if]);
        run(&["-n", &ns, "link", "set", &ns_if, "up"]);
        run(&["-n", &ns, "link", "set", "lo", "up"]);
        // A TCP server that keeps each connection open.
        o.server = Some(
            Command::new("ip")
                .args([
                    "netns", "exec", &ns, "busybox", "nc", "-ll", "-p", "8000", "-e", "cat",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("busybox nc"),
        );
        o
    }

    /// The peers of the server's established connections.
    fn peers(&self) -> Vec<String> {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "ss",
                "-tnH",
                "state",
                "established",
                "sport",
                "= :8000",
            ])
            .output()
            .expect("ss");
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .map(|p| p.rsplit_once(':').map(|(a, _)| a).unwrap_or(p))
            // busybox listens on IPv6: `[::ffff:10.236.1.1]`.
            .map(|a| {
                a.trim_start_matches("[::ffff:")
                    .trim_end_matches(']')
                    .to_string()
            })
            .collect()
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Deleting the namespace takes its veth and the host's end.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn pods_reach_outside_the_pod_network_masqueraded() {
    let d = Daemon::start();
    let out = Outside::new(d.net.n);
    d.apply_ok(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: egress}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {BUSYBOX}
    command: [sh, -c, "(echo hello; sleep 3600) | nc {} 8000"]
"#,
        out.ip
    ));
    let ip = pod_ip(&d.wait_running("egress"));
    let start = Instant::now();
    let peers = loop {
        let p = out.peers();
        if !p.is_empty() || start.elapsed() > Duration::from_secs(20) {
            break p;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The outside saw the host's address on its link, not the pod's (it
    // has no route to the pod network, so nothing else could answer).
    assert_eq!(peers, vec![out.host_ip.clone()], "pod {ip}");
    d.ok(&["delete", "pod", "egress", "--grace-period=0"]);
}

#[test]
fn pods_keep_their_ips_and_answer_after_the_daemon_is_killed() {
    let mut d = Daemon::start();
    d.apply_ok(&httpd_pod("web", ""));
    d.apply_ok(&client_pod("client"));
    let wip = pod_ip(&d.wait_running("web"));
    let cip = pod_ip(&d.wait_running("client"));
    let index = d.exec_ok("web", "web", &["cat", "/www/index.html"]);
    d.kill9();
    // Pods go on answering with the daemon gone.
    let body =
        host_get(&format!("{wip}:8080")).expect("web answers the host while the daemon is down");
    assert!(body.contains(" 200 "), "{body}");
    d.spawn(&[]);
    let web = d.wait_running("web");
    let client = d.wait_running("client");
    assert_eq!(pod_ip(&web), wip);
    assert_eq!(pod_ip(&client), cip);
    assert_eq!(wget(&d, "client", &format!("http://{wip}:8080/")), index);
    assert_eq!(d.net.veths().len(), 2);
    assert_eq!(d.net.leases(&d.state), {
        let mut v = vec![wip.clone(), cip.clone()];
        v.sort();
        v
    });
    // The adopted sandboxes passed CNI CHECK.
    let web_sid = d.inspect("web")["sandbox_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let log = std::fs::read_to_string(&d.log).unwrap();
    assert!(!log.contains("CNI CHECK failed"), "{log}");

    // The web pod loses its default route while the daemon is away: the
    // next daemon's CHECK (which compares the pod's interface, addresses
    // and routes with ADD's result) says so. (Not its veth: with the
    // interface gone, bridge 1.1.1's DEL cannot find the addresses whose
    // masquerade rules it would remove.)
    d.kill9();
    let netns = d.state.join("sandboxes").join(&web_sid).join("ns/net");
    let st = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "route", "del", "default"])
        .status()
        .unwrap();
    assert!(st.success());
    d.spawn(&[]);
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&d.log).unwrap();
        if log.contains(&format!("sandbox {web_sid}: CNI CHECK failed")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no CHECK failure for {web_sid}: {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_plugin_error_fails_the_sandbox_with_its_message_and_keeps_nothing() {
    // A network with room for one pod: the second gets host-local's error.
    let d = Daemon::start();
    let cfg = d.dir.join("etc/net.d/10-test.conflist");
    let small = d.net.conflist().replace(
        &format!("\"subnet\":\"{}\"", d.net.subnet),
        &format!(
            "\"subnet\":\"{}\",\"rangeStart\":\"10.234.{n}.2\",\"rangeEnd\":\"10.234.{n}.2\"",
            d.net.subnet,
            n = d.net.n
        ),
    );
    assert_ne!(small, d.net.conflist());
    std::fs::write(&cfg, small).unwrap();
    let mut d = d;
    d.restart(&[]);
    d.apply_ok(&client_pod("first"));
    d.wait_running("first");
    d.apply_ok(&client_pod("second"));
    let start = Instant::now();
    let describe = loop {
        let describe = d.ok(&["describe", "pod", "second"]);
        if describe.contains("FailedCreatePodSandBox") {
            break describe;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no FailedCreatePodSandBox event: {describe}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        describe.contains("no IP addresses available"),
        "the plugin's message: {describe}"
    );
    let which = format!(
        "Failed to create pod sandbox: pod network: CNI plugin \"bridge\" failed (ADD on network \"{}\")",
        d.net.network
    );
    assert!(describe.contains(&which), "{describe}");
    // Nothing of the failed attempts stays: one veth, one lease.
    assert_eq!(d.net.veths().len(), 1);
    assert_eq!(d.net.leases(&d.state).len(), 1);
    // Room again: the second pod gets the address.
    d.ok(&["delete", "pod", "first", "--grace-period=0"]);
    let p = d.wait_running("second");
    assert_eq!(pod_ip(&p), format!("10.234.{}.2", d.net.n));
}

/// The leak guard reports a veth left on the test's bridge and an address
/// host-local still holds (and removes both).
#[test]
#[should_panic(expected = "the test left 2 thing(s) behind")]
fn guard_reports_a_leaked_veth_and_lease() {
    let d = Daemon::start_bare(&[]);
    let n = d.net.n;
    let veth = format!("ppl{n}a");
    let peer = format!("ppl{n}b");
    for args in [
        vec!["link", "add", &d.net.bridge, "type", "bridge"],
        vec!["link", "add", &veth, "type", "veth", "peer", "name", &peer],
        vec!["link", "set", &veth, "master", &d.net.bridge],
    ] {
        let st = Command::new("ip").args(&args).status().expect("ip");
        assert!(st.success(), "ip {args:?}");
    }
    let leases = d.state.join("cni/networks").join(&d.net.network);
    std::fs::create_dir_all(&leases).unwrap();
    std::fs::write(leases.join(format!("10.234.{n}.9")), "x\neth0").unwrap();
}

/// A daemon dies with a pod running and the test ends: the guard reports
/// the pod, and its clean-up runs CNI DEL from the sandbox's record, so no
/// masquerade or hostPort rule, veth or bridge of the test outlives it.
#[test]
fn guard_releases_the_network_a_dead_daemon_left() {
    let mut d = Daemon::start();
    let port = 24000 + d.net.n;
    d.apply_ok(&format!(
        "{}    ports: [{{containerPort: 80, hostPort: {port}}}]\n",
        client_pod("orphan")
    ));
    d.wait_running("orphan");
    let (network, bridge, _claim) = (d.net.network.clone(), d.net.bridge.clone(), d.net.hold());
    assert!(rules_of(&network).iter().any(|r| r.contains("dnat name")));
    d.kill9();
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(d)))
        .expect_err("the guard reports what the dead daemon left");
    let report = report.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        report.contains("veth") && report.contains("lease"),
        "{report}"
    );
    assert_eq!(rules_of(&network), Vec::<String>::new());
    assert!(!Path::new(&format!("/sys/class/net/{bridge}")).exists());
}

/// A sandbox no pod owns any more (here: the daemon died and its object
/// store was lost) is removed when the next daemon starts, and CNI DEL
/// releases its address, veth and hostPort rules.
#[test]
fn a_sandbox_no_pod_owns_releases_its_network_at_start_up() {
    let mut d = Daemon::start();
    let port = 25000 + d.net.n;
    d.apply_ok(&format!(
        "{}    ports: [{{containerPort: 80, hostPort: {port}}}]\n",
        client_pod("lost")
    ));
    d.wait_running("lost");
    assert_eq!(d.net.veths().len(), 1);
    assert_eq!(d.net.leases(&d.state).len(), 1);
    assert!(rules_of(&d.net.network)
        .iter()
        .any(|r| r.contains("dnat name")));
    d.kill9();
    std::fs::remove_file(d.root.join("peapod.redb")).expect("remove the object store");
    d.spawn(&[]);
    let start = Instant::now();
    while !(d.net.veths().is_empty() && d.net.leases(&d.state).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "veths {:?}, leases {:?}",
            d.net.veths(),
            d.net.leases(&d.state)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rules_of(&d.net.network), Vec::<String>::new());
    assert!(d.pod_names().is_empty());
    // The node keeps the lost pod's directories (its log and volume
    // directories, named by a UID it no longer knows): not the network's
    // to clean, and beyond this test.
    for sub in ["pods", "logs"] {
        let _ = std::fs::remove_dir_all(d.root.join(sub));
    }
}

/// The daemon died between CNI ADD and recording its result (simulated by
/// taking the result out of the sandbox's record): deleting the pod still
/// releases everything, by a DEL with the current configuration and no
/// prevResult, as CNI allows.
#[test]
fn delete_releases_the_network_even_without_a_recorded_result() {
    let mut d = Daemon::start();
    let port = 26000 + d.net.n;
    d.apply_ok(&format!(
        "{}    ports: [{{containerPort: 80, hostPort: {port}}}]\n",
        client_pod("cut")
    ));
    d.wait_running("cut");
    let sid = d.inspect("cut")["sandbox_id"].as_str().unwrap().to_string();
    assert!(!rules_of(&d.net.network).is_empty());
    d.kill9();
    let rec_path = d.root.join("sandboxes").join(&sid).join("sandbox.json");
    let mut rec: Value = serde_json::from_slice(&std::fs::read(&rec_path).unwrap()).unwrap();
    assert!(!rec["network"].is_null(), "{rec}");
    rec["network"] = Value::Null;
    std::fs::write(&rec_path, serde_json::to_vec(&rec).unwrap()).unwrap();
    d.spawn(&[]);
    d.wait_running("cut");
    d.ok(&["delete", "pod", "cut", "--grace-period=0"]);
    assert_eq!(d.net.veths(), Vec::<String>::new());
    assert_eq!(d.net.leases(&d.state), Vec::<String>::new());
    assert_eq!(rules_of(&d.net.network), Vec::<String>::new());
}

/// A running `peapod port-forward`: its stdout lines as they come, its
/// stderr in a file; killed (by its own pid) when dropped.
struct Forward {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::path::PathBuf,
}

impl Forward {
    fn start(d: &Daemon, args: &[&str]) -> Forward {
        let stderr = d.dir.join(format!("pf-{}.err", std::process::id()));
        let mut child = Command::new(exe())
            .arg("--socket")
            .arg(&d.socket)
            .arg("port-forward")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("run peapod port-forward");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Forward {
            child,
            lines,
            stderr,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| {
                panic!(
                    "no output from port-forward; stderr: {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                )
            })
    }

    /// The local port of a `Forwarding from 127.0.0.1:LOCAL -> REMOTE` line.
    fn local_port(&self, remote: u16) -> u16 {
        let l = self.line();
        let rest = l
            .strip_prefix("Forwarding from 127.0.0.1:")
            .unwrap_or_else(|| panic!("{l}"));
        let (local, r) = rest.split_once(" -> ").unwrap();
        assert_eq!(r, remote.to_string(), "{l}");
        local.parse().unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn port_forward_fetches_http_from_a_pod_and_survives_a_refused_port() {
    let d = Daemon::start();
    d.apply_ok(&httpd_pod("web", ""));
    d.wait_running("web");
    let index = d.exec_ok("web", "web", &["cat", "/www/index.html"]);

    // A chosen local port, and `:REMOTE` for a random one (plus a port
    // nothing listens on in the pod), in one forward.
    let fixed = 42000 + d.net.n as u16;
    let f = Forward::start(&d, &["pod/web", &format!("{fixed}:8080"), ":8080", ":9"]);
    assert_eq!(f.local_port(8080), fixed);
    // localhost is 127.0.0.1 and ::1 (each "Forwarding" line in turn).
    let mut ports = Vec::new();
    while ports.len() < 2 {
        let l = f.line();
        if let Some(rest) = l.strip_prefix("Forwarding from 127.0.0.1:") {
            let (local, remote) = rest.split_once(" -> ").unwrap();
            ports.push((local.parse::<u16>().unwrap(), remote.to_string()));
        }
    }
    let random = ports.iter().find(|p| p.1 == "8080").unwrap().0;
    let refused = ports.iter().find(|p| p.1 == "9").unwrap().0;
    assert_ne!(random, fixed);
    for port in [fixed, random, fixed] {
        let page = host_get(&format!("127.0.0.1:{port}")).unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
        assert!(page.ends_with(&index), "{page}");
    }
    // Nothing listens on 9 in the pod: the connection ends with no data,
    // the error is reported, and the forward keeps serving.
    let got = host_get(&format!("127.0.0.1:{refused}")).unwrap_or_default();
    assert_eq!(got, "");
    let start = Instant::now();
    while !f.stderr().contains("connect") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", f.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = f.stderr();
    assert!(
        err.contains("an error occurred forwarding")
            && err.contains("error forwarding port 9 to pod web")
            && err.contains("Connection refused"),
        "{err}"
    );
    let page = host_get(&format!("127.0.0.1:{random}")).unwrap();
    assert!(page.ends_with(&index), "{page}");
    drop(f);

    // NAME without pod/, --address.
    let f = Forward::start(&d, &["web", ":8080", "--address", "127.0.0.1"]);
    let port = f.local_port(8080);
    assert!(host_get(&format!("127.0.0.1:{port}"))
        .unwrap()
        .ends_with(&index));
    drop(f);

    // A pod that does not run, and one that does not exist.
    d.apply_ok(&client_pod("stuck").replace(BUSYBOX, "localhost/peapod/none:missing"));
    let out = d.peapod(&["port-forward", "pod/stuck", "8080"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("unable to forward port because pod is not running. Current status=Pending"),
        "{}",
        stderr(&out)
    );
    let out = d.peapod(&["port-forward", "pod/nope", "8080"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pods \"nope\" not found"),
        "{}",
        stderr(&out)
    );
}
