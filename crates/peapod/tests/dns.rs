//! Cluster DNS and the pods' resolver files, with real pods asking the
//! daemon's DNS server on their bridge's gateway (each test daemon has its
//! own bridge, see `TestNet`). No test asks for a name outside the
//! cluster domain (nothing here may reach the internet).

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn client_pod(name: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
{extra_spec}  containers:
  - name: c
    image: {BUSYBOX}
    command: [sleep, "3600"]
"#
    )
}

fn web_pod(name: &str, app: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 0
{extra_spec}  containers:
  - name: web
    image: {HTTPD}
    command: [sh, -c, "hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
    - {{name: http, containerPort: 8080}}
"#
    )
}

fn pod_ip(d: &Daemon, name: &str) -> String {
    d.pod(name)["status"]["podIP"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no podIP"))
        .to_string()
}

fn cluster_ip(d: &Daemon, svc: &str) -> String {
    let v: Value = serde_json::from_str(&d.ok(&["get", "svc", svc, "-o", "json"])).unwrap();
    v["spec"]["clusterIP"].as_str().unwrap().to_string()
}

/// The addresses busybox's nslookup prints for `args` in `pod` (the
/// `Address:` lines after a `Name:` line), or its output when it found
/// none. This busybox asks every search domain (A and AAAA) and exits
/// non-zero when any of them is NXDOMAIN, so the answers decide.
fn lookup(d: &Daemon, pod: &str, args: &[&str]) -> Result<BTreeSet<String>, String> {
    let mut cmd = vec!["timeout", "10", "nslookup"];
    cmd.extend_from_slice(args);
    let out = d.exec(pod, "c", &cmd);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let mut found = BTreeSet::new();
    let mut in_answer = false;
    for l in text.lines() {
        if l.starts_with("Name:") {
            in_answer = true;
        } else if let Some(a) = l.strip_prefix("Address:").filter(|_| in_answer) {
            found.insert(a.trim().to_string());
        } else if l.trim().is_empty() {
            in_answer = false;
        }
    }
    if found.is_empty() {
        Err(text)
    } else {
        Ok(found)
    }
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn service_names_resolve_to_the_cluster_ip_by_every_short_form() {
    let d = Daemon::start();
    d.apply_ok(&web_pod("web-a", "web", ""));
    d.apply_ok(&client_pod("client", ""));
    d.apply_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n",
    );
    d.wait_running("client");
    d.wait_running("web-a");
    let ip = cluster_ip(&d, "web");
    let resolv = d.exec_ok("client", "c", &["cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        format!(
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {}\noptions ndots:5\n",
            d.net.gateway()
        )
    );
    // busybox's nslookup applies the search list to dotless names only.
    for name in [
        "web",
        "web.default.svc.cluster.local",
        "web.default.svc.cluster.local.",
    ] {
        assert_eq!(lookup(&d, "client", &[name]), Ok(set(&[&ip])), "{name}");
    }
    // The C library's resolver (search list, ndots:5): HTTP through the
    // Service by each short form of its name.
    for name in [
        "web",
        "web.default",
        "web.default.svc",
        "web.default.svc.cluster.local",
    ] {
        let body = d.exec_ok(
            "client",
            "c",
            &[
                "timeout",
                "10",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{name}/"),
            ],
        );
        assert_eq!(body.trim(), "web-a", "{name}");
    }
    // Unknown names in the cluster domain do not exist.
    let e = lookup(&d, "client", &["nope.default.svc.cluster.local"]).unwrap_err();
    assert!(e.contains("NXDOMAIN"), "{e}");
    // A Service made later answers at once; a deleted one goes.
    d.apply_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: later}\nspec:\n  ports: [{port: 80}]\n",
    );
    let later = cluster_ip(&d, "later");
    assert_eq!(lookup(&d, "client", &["later"]), Ok(set(&[&later])));
    d.ok(&["delete", "svc", "later"]);
    let start = std::time::Instant::now();
    while lookup(&d, "client", &["later.default.svc.cluster.local"]).is_ok() {
        assert!(
            start.elapsed().as_secs() < 10,
            "the deleted Service still resolves"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    d.ok(&["delete", "svc", "web"]);
}

#[test]
fn headless_names_give_the_pod_ips_and_hostname_subdomain_and_srv_work() {
    let d = Daemon::start();
    for i in 0..2 {
        d.apply_ok(&web_pod(
            &format!("web-{i}"),
            "db",
            &format!("  hostname: web-{i}\n  subdomain: web\n"),
        ));
    }
    d.apply_ok(&client_pod("client", ""));
    d.apply_ok(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ports: [{name: http, port: 80, targetPort: http}]\n",
    );
    d.wait_running("client");
    let ips: Vec<String> = (0..2)
        .map(|i| {
            d.wait_running(&format!("web-{i}"));
            pod_ip(&d, &format!("web-{i}"))
        })
        .collect();
    // Endpoints follow readiness: wait for both.
    let start = std::time::Instant::now();
    loop {
        let got = lookup(&d, "client", &["web"]);
        if got == Ok(set(&[&ips[0], &ips[1]])) {
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "headless web: {got:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // web-0.web through the search list (the C library's resolver).
    let body = d.exec_ok(
        "client",
        "c",
        &[
            "timeout",
            "10",
            "wget",
            "-q",
            "-O",
            "-",
            "http://web-0.web:8080/",
        ],
    );
    assert_eq!(body.trim(), "web-0");
    assert_eq!(
        lookup(&d, "client", &["web-1.web.default.svc.cluster.local"]),
        Ok(set(&[&ips[1]]))
    );
    // SRV for the named port: one per endpoint, by its hostname.
    let out = d.exec_ok(
        "client",
        "c",
        &[
            "timeout",
            "10",
            "nslookup",
            "-type=SRV",
            "_http._tcp.web.default.svc.cluster.local",
        ],
    );
    for i in 0..2 {
        assert!(
            out.contains(&format!("8080 web-{i}.web.default.svc.cluster.local")),
            "{out}"
        );
    }
    // The pod's own files: hostname, FQDN line in /etc/hosts.
    assert_eq!(d.exec_ok("web-0", "web", &["hostname"]).trim(), "web-0");
    let hosts = d.exec_ok("web-0", "web", &["cat", "/etc/hosts"]);
    assert!(
        hosts.ends_with(&format!(
            "\n{}\tweb-0.web.default.svc.cluster.local\tweb-0\n",
            ips[0]
        )),
        "{hosts}"
    );
    d.ok(&["delete", "svc", "web"]);
}

#[test]
fn dns_policies_and_dns_config_shape_resolv_conf_and_host_aliases_go_to_hosts() {
    let d = Daemon::start();
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    d.apply_ok(&client_pod("default", "  dnsPolicy: Default\n"));
    d.apply_ok(&client_pod(
        "none",
        "  dnsPolicy: None\n  dnsConfig:\n    nameservers: [192.0.2.53]\n    searches: [corp.example]\n    options: [{name: ndots, value: '2'}, {name: edns0}]\n",
    ));
    d.apply_ok(&client_pod(
        "merged",
        "  dnsConfig:\n    nameservers: [192.0.2.53]\n    searches: [corp.example]\n    options: [{name: ndots, value: '1'}]\n  hostAliases:\n  - {ip: 192.0.2.10, hostnames: [foo.local, bar.local]}\n",
    ));
    d.apply_ok(&client_pod(
        "hostnet",
        "  hostNetwork: true\n  dnsPolicy: ClusterFirstWithHostNet\n",
    ));
    // hostNetwork with the default ClusterFirst falls back to Default.
    d.apply_ok(&client_pod("hostfirst", "  hostNetwork: true\n"));
    for p in ["default", "none", "merged", "hostnet", "hostfirst"] {
        d.wait_running(p);
    }
    let resolv = |p: &str| d.exec_ok(p, "c", &["cat", "/etc/resolv.conf"]);
    // Default: the host's servers, search and options (as kubelet reads
    // them, rewritten).
    let host_servers: Vec<&str> = host
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::trim)
        .collect();
    let def = resolv("default");
    for s in &host_servers {
        assert!(def.contains(&format!("nameserver {s}\n")), "{def}");
    }
    assert!(!def.contains("cluster.local"), "{def}");
    assert_eq!(resolv("hostfirst"), def);
    assert_eq!(
        resolv("none"),
        "search corp.example\nnameserver 192.0.2.53\noptions ndots:2 edns0\n"
    );
    let gw = d.net.gateway();
    let host_search: Vec<&str> = host
        .lines()
        .filter_map(|l| l.strip_prefix("search "))
        .next_back()
        .map(|s| s.split_whitespace().collect())
        .unwrap_or_default();
    let mut search = vec![
        "default.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
    ];
    search.extend(host_search.iter().copied());
    search.push("corp.example");
    assert_eq!(
        resolv("merged"),
        format!(
            "search {}\nnameserver {gw}\nnameserver 192.0.2.53\noptions ndots:1\n",
            search.join(" ")
        )
    );
    assert!(resolv("hostnet").contains(&format!("nameserver {gw}\n")));
    let hosts = d.exec_ok("merged", "c", &["cat", "/etc/hosts"]);
    assert!(
        hosts.ends_with("\n# Entries added by HostAliases.\n192.0.2.10\tfoo.local\tbar.local\n"),
        "{hosts}"
    );
    // None without dnsConfig is refused, as the API server does.
    let out = d.apply(&client_pod("bad", "  dnsPolicy: None\n"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
        ),
        "{}",
        stderr(&out)
    );
}
