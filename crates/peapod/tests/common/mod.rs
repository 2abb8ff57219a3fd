//! Test harness: each test gets its own daemon with its own --root,
//! --state, --cgroup-parent and socket, and a drop guard that deletes its
//! pods, stops the daemon and checks nothing is left behind.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A Pod manifest: `name`, and `spec` (its fields, indented two spaces).
pub fn pod_manifest(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// Test images carry a non-`latest` tag so the default pull policy is
/// IfNotPresent (with `:latest` Kubernetes defaults to Always, which would
/// ask a registry).
pub const BUSYBOX: &str = "localhost/peapod/busybox:test";
pub const HTTPD: &str = "localhost/peapod/httpd:test";

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_peapod")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test images, built once per test binary.
pub fn images_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/test-images");
        if !dir.join("busybox.tar").exists() || !dir.join("httpd.tar").exists() {
            let st = Command::new(workspace().join("scripts/build-test-images.sh"))
                .arg(&dir)
                .status()
                .expect("run build-test-images.sh");
            assert!(st.success(), "building test images failed");
        }
        dir
    })
}

pub struct Daemon {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub cgroup_parent: String,
    child: Option<Child>,
    pub log: PathBuf,
    /// This daemon's own pod network (bridge, subnet, network name).
    pub net: TestNet,
}

/// A pod network no other test daemon uses at the same time, even in
/// another test binary: bridge `pptest<N>`, subnet `10.234.<N>.0/24`,
/// network `pptest-<N>`, claimed by an abstract unix socket name held
/// while the daemon lives (the kernel drops it if the test process dies).
pub struct TestNet {
    pub n: u32,
    pub bridge: String,
    pub subnet: String,
    pub network: String,
    lock: std::sync::Arc<std::os::unix::net::UnixListener>,
}

impl TestNet {
    fn claim() -> TestNet {
        use std::os::linux::net::SocketAddrExt;
        let start = (std::process::id() * 7 + short_id().len() as u32) % 250;
        for i in 0..250 {
            let n = (start + i) % 250;
            // An abstract socket name is held only while its socket is
            // open: the kernel frees it when the test process ends, however
            // it ends, and no file is left.
            let Ok(addr) =
                std::os::unix::net::SocketAddr::from_abstract_name(format!("peapod-test-net-{n}"))
            else {
                continue;
            };
            if let Ok(sock) = std::os::unix::net::UnixListener::bind_addr(&addr) {
                let net = TestNet {
                    n,
                    bridge: format!("pptest{n}"),
                    subnet: format!("10.234.{n}.0/24"),
                    network: format!("pptest-{n}"),
                    lock: std::sync::Arc::new(sock),
                };
                net.purge_stale();
                return net;
            }
        }
        panic!("no free test pod network (all 250 claimed)");
    }

    /// What a test process killed outright left of this network (its
    /// clean-up never ran): the bridge, and the NAT rules the plugins
    /// commented with this network's name and the chains they jump to.
    /// Nothing of any other network or tool is touched.
    fn purge_stale(&self) {
        for t in [self.nft_table(), self.egress_table()] {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &t])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let Ok(out) = Command::new("iptables-save").args(["-t", "nat"]).output() else {
            return;
        };
        let needle = format!("\\\"{}\\\"", self.network);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut chains = Vec::new();
        for rule in text
            .lines()
            .filter(|l| l.starts_with("-A ") && l.contains(&needle))
        {
            if let Some(target) = rule.split(" -j ").nth(1) {
                let t = target.split_whitespace().next().unwrap_or("");
                if t.starts_with("CNI-") && !t.starts_with("CNI-HOSTPORT-") {
                    chains.push(t.to_string());
                }
            }
            // iptables-save quotes as a shell would: let sh split it.
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("iptables -t nat -D {}", &rule[3..]))
                .stderr(Stdio::null())
                .status();
        }
        for c in chains {
            for op in ["-F", "-X"] {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", op, &c])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    /// Keeps this network claimed while the returned handle lives (past
    /// the daemon's end).
    pub fn hold(&self) -> std::sync::Arc<std::os::unix::net::UnixListener> {
        self.lock.clone()
    }

    /// This daemon's own nftables table (`--nft-table`) for Services.
    pub fn nft_table(&self) -> String {
        format!("pptest{}", self.n)
    }

    /// This daemon's own service range (`--service-cidr`), so parallel
    /// tests' clusterIPs never meet.
    pub fn service_cidr(&self) -> String {
        format!("10.235.{}.0/24", self.n)
    }

    /// The daemon's pod egress masquerade table (`<nft-table>-egress`).
    pub fn egress_table(&self) -> String {
        format!("{}-egress", self.nft_table())
    }

    /// Whether this daemon's nftables table exists.
    pub fn has_nft_table(&self) -> bool {
        has_table(&self.nft_table())
    }

    /// `nft list table ip NAME`, if it exists.
    pub fn list_table(&self, name: &str) -> Option<String> {
        let o = Command::new("nft")
            .args(["list", "table", "ip", name])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

fn has_table(name: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "ip", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl TestNet {
    /// The bridge's own address (the pods' gateway).
    pub fn gateway(&self) -> String {
        format!("10.234.{}.1", self.n)
    }

    /// A network configuration list like peapod's default, on this
    /// network's bridge and subnet.
    pub fn conflist(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.network,
            "plugins": [
                {"type": "loopback"},
                {"type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": false,
                 "hairpinMode": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        })
        .to_string()
    }

    /// Write the conflist into `config_dir/net.d` unless one is there.
    fn write_into(&self, config_dir: &Path) {
        let d = config_dir.join("net.d");
        std::fs::create_dir_all(&d).unwrap();
        let has = std::fs::read_dir(&d)
            .map(|rd| rd.flatten().next().is_some())
            .unwrap_or(false);
        if !has {
            std::fs::write(d.join("10-test.conflist"), self.conflist()).unwrap();
        }
    }

    /// Interfaces attached to this network's bridge (the pods' veths).
    pub fn veths(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{}/brif", self.bridge))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Addresses host-local holds leased in `state`'s lease directory.
    pub fn leases(&self, state: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(state.join("cni/networks").join(&self.network))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn short_id() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id() & 0xfff, n & 0xffffff)
}

impl Daemon {
    /// Start a daemon and import both test images.
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Daemon {
        let d = Self::start_bare(extra);
        for (img, name) in [("busybox.tar", BUSYBOX), ("httpd.tar", HTTPD)] {
            let out = d.peapod(&[
                "image",
                "import",
                images_dir().join(img).to_str().unwrap(),
                "--name",
                name,
            ]);
            assert!(
                out.status.success(),
                "import {img}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        d
    }

    /// A daemon with an empty image store.
    pub fn start_bare(extra: &[&str]) -> Daemon {
        let id = short_id();
        // Short paths: shim sockets live under --state (108-byte limit).
        let dir = PathBuf::from(format!("/tmp/pp-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let net = TestNet::claim();
        let mut d = Daemon {
            root: dir.join("root"),
            state: dir.join("s"),
            socket: dir.join("s/peapod.sock"),
            cgroup_parent: format!("peapod-test-{id}"),
            log: dir.join("daemon.log"),
            dir,
            child: None,
            net,
        };
        d.spawn(extra);
        d
    }

    pub fn spawn(&mut self, extra: &[&str]) {
        // This daemon's own pod network, in its own --config-dir unless the
        // test gives one (then written there).
        let given = extra
            .iter()
            .position(|a| *a == "--config-dir")
            .and_then(|i| extra.get(i + 1));
        let config_dir = given
            .map(PathBuf::from)
            .unwrap_or_else(|| self.dir.join("etc"));
        self.net.write_into(&config_dir);
        let mut own_config: Vec<String> = if given.is_some() {
            Vec::new()
        } else {
            vec!["--config-dir".into(), config_dir.to_str().unwrap().into()]
        };
        // Services: this test's own table and range.
        if !extra.contains(&"--nft-table") {
            own_config.extend(["--nft-table".into(), self.net.nft_table()]);
        }
        if !extra.contains(&"--service-cidr") {
            own_config.extend(["--service-cidr".into(), self.net.service_cidr()]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(exe())
            .arg("serve")
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--socket")
            .arg(&self.socket)
            .args(&own_config)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start peapod serve");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!(
                    "daemon did not come up: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Wait for the daemon process to exit (after a signal).
    pub fn wait_daemon_exit(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// Stop the daemon with SIGTERM (pods keep running), wait for it to
    /// exit, and start it again on the same --root, --state and socket.
    pub fn restart(&mut self, extra: &[&str]) {
        if let Some(pid) = self.daemon_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        self.wait_daemon_exit();
        self.spawn(extra);
    }

    /// One HTTP/1.1 GET on the daemon's socket; status and body (chunked
    /// bodies decoded). For API calls the CLI does not make.
    pub fn api_get(&self, path: &str) -> (u16, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read");
        parse_http(&raw)
    }

    /// GET a `?watch=1` path and read it for `wait`: the watch events
    /// received by then.
    pub fn api_watch(&self, path: &str, wait: Duration) -> Vec<Value> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let deadline = Instant::now() + wait;
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s.set_read_timeout(Some(left)).expect("timeout");
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        let (_, body) = parse_http(&raw);
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("watch line {l:?}: {e}")))
            .collect()
    }

    /// GET a `?watch=1` path and read it until `stop` is set (or `max`
    /// passed): the watch events received by then.
    pub fn api_watch_until(
        &self,
        path: &str,
        stop: &std::sync::atomic::AtomicBool,
        max: Duration,
    ) -> Vec<Value> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let deadline = Instant::now() + max;
        let mut raw = Vec::new();
        let mut buf = [0u8; 65536];
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::SeqCst) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let (_, body) = parse_http(&raw);
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// SIGKILL the daemon (pods must keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn peapod(&self, args: &[&str]) -> Output {
        Command::new(exe())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run peapod")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.peapod(args);
        assert!(
            out.status.success(),
            "peapod {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn apply(&self, yaml: &str) -> Output {
        let path = self.dir.join(format!("m-{}.yaml", short_id()));
        std::fs::write(&path, yaml).unwrap();
        self.peapod(&["apply", "-f", path.to_str().unwrap()])
    }

    pub fn apply_ok(&self, yaml: &str) -> String {
        let out = self.apply(yaml);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn pod(&self, name: &str) -> Value {
        let out = self.ok(&["get", "pod", name, "-o", "json"]);
        serde_json::from_str(&out).unwrap()
    }

    /// Wait until `f(pod)` holds, or panic with the pod and daemon log.
    pub fn wait_pod(&self, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let out = self.peapod(&["get", "pod", name, "-o", "json"]);
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                if f(&v) {
                    return v;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    panic!(
                        "pod {name} never became {what}: {}\n--- daemon log ---\n{}",
                        serde_json::to_string_pretty(&v["status"]).unwrap(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            } else if start.elapsed() > Duration::from_secs(60) {
                panic!("pod {name}: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_running(&self, name: &str) -> Value {
        self.wait_pod(name, "Running with all containers ready", |p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"]
                    .as_array()
                    .map(|a| a.iter().all(|c| c["ready"] == true))
                    .unwrap_or(false)
        })
    }

    pub fn inspect(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["inspect", "pod", name, "-o", "json"])).unwrap()
    }

    /// Pid of a container's main process (from inspect).
    pub fn pid(&self, pod: &str, container: &str) -> i32 {
        let i = self.inspect(pod);
        i["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == container)
            .unwrap()["pid"]
            .as_i64()
            .unwrap() as i32
    }

    pub fn exec(&self, pod: &str, container: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", pod, "-c", container, "--"];
        args.extend_from_slice(cmd);
        self.peapod(&args)
    }

    pub fn exec_ok(&self, pod: &str, container: &str, cmd: &[&str]) -> String {
        let out = self.exec(pod, container, cmd);
        assert!(
            out.status.success(),
            "exec {cmd:?} in {pod}/{container}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn pod_names(&self) -> Vec<String> {
        self.pod_refs().into_iter().map(|(_, name)| name).collect()
    }

    /// The restartCount of the `i`th app container of `pod`.
    pub fn restart_count(&self, pod: &str, i: usize) -> u64 {
        let p = self.pod(pod);
        p["status"]["containerStatuses"][i]["restartCount"]
            .as_u64()
            .unwrap_or_else(|| panic!("no restartCount: {}", p["status"]))
    }

    /// The events of pod `pod` (namespace default) as (reason, message),
    /// in the order they were first seen.
    pub fn events(&self, pod: &str) -> Vec<(String, String)> {
        let (code, body) = self.api_get("/api/v1/namespaces/default/events");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["involvedObject"]["name"] == pod)
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Wait (up to 60 s) for an event of `pod` with `reason`; then all its
    /// events.
    pub fn wait_event(&self, pod: &str, reason: &str) -> Vec<(String, String)> {
        for _ in 0..600 {
            let ev = self.events(pod);
            if ev.iter().any(|(r, _)| r == reason) {
                return ev;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no {reason} event for {pod}: {:?}\n--- daemon log ---\n{}",
            self.events(pod),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// The permission bits of `paths` in a container (`stat -L -c %a`),
    /// one a line.
    pub fn modes(&self, pod: &str, container: &str, paths: &[&str]) -> String {
        let mut cmd = vec!["stat", "-L", "-c", "%a"];
        cmd.extend_from_slice(paths);
        self.exec_ok(pod, container, &cmd)
    }

    /// (namespace, name) of every pod.
    pub fn pod_refs(&self) -> Vec<(String, String)> {
        let out = self.peapod(&["get", "pods", "-A", "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some((
                            p["metadata"]["namespace"].as_str()?.to_string(),
                            p["metadata"]["name"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything peapod left on the machine for this daemon.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in info.lines() {
            if let Some(mp) = l.split(' ').nth(4) {
                if mp.starts_with(self.dir.to_str().unwrap()) {
                    out.push(format!("mount {mp}"));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let p = e.path().join(&self.cgroup_parent);
                if let Ok(children) = std::fs::read_dir(&p) {
                    for c in children.flatten() {
                        // `shims` is the daemon's own, shared by every
                        // shim; it stays with the cgroup parent.
                        let own = c.file_name() == "shims" && all_pids_in(&c.path()).is_empty();
                        if c.file_type().map(|t| t.is_dir()).unwrap_or(false) && !own {
                            out.push(format!("cgroup {}", c.path().display()));
                        }
                    }
                }
            }
        }
        for sub in [
            "root/pods",
            "root/sandboxes",
            "root/logs",
            "s/sandboxes",
            // The CRI's own sandboxes (its ownership namespace).
            "root/cri/sandboxes",
            "s/cri/sandboxes",
        ] {
            if let Ok(rd) = std::fs::read_dir(self.dir.join(sub)) {
                for e in rd.flatten() {
                    out.push(format!("file {}", e.path().display()));
                }
            }
        }
        for v in self.net.veths() {
            out.push(format!("veth {v} on bridge {}", self.net.bridge));
        }
        if self.net.has_nft_table() {
            out.push(format!("nftables table ip {}", self.net.nft_table()));
        }
        // The egress masquerade lives as long as the daemon does.
        if self.child.is_none() && has_table(&self.net.egress_table()) {
            out.push(format!("nftables table ip {}", self.net.egress_table()));
        }
        for ip in self.net.leases(&self.state) {
            out.push(format!(
                "host-local lease {ip} of network {}",
                self.net.network
            ));
        }
        let daemon = self.child.as_ref().map(|c| c.id() as i32);
        for pid in pids_mentioning(self.dir.to_str().unwrap()) {
            if Some(pid) == daemon {
                continue;
            }
            out.push(format!("process {pid}"));
        }
        out
    }
}

/// Status and body of a raw HTTP/1.1 response; a chunked body is decoded
/// (as far as it arrived).
fn parse_http(raw: &[u8]) -> (u16, Vec<u8>) {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return (status, body.to_vec());
    }
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || body.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[(eol + 4 + size).min(body.len())..];
    }
    (status, out)
}

/// Processes whose command line mentions `s` (shims of this daemon).
pub fn pids_mentioning(s: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
                if String::from_utf8_lossy(&cmd).contains(s) {
                    // Zombies waiting for a reaper do not count.
                    let stat =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    if !stat
                        .rsplit(')')
                        .next()
                        .map(|r| r.trim_start().starts_with('Z'))
                        .unwrap_or(false)
                    {
                        out.push(pid);
                    }
                }
            }
        }
    }
    out
}

impl Drop for Daemon {
    /// Deletes the pods and stops the daemon, then checks that nothing is
    /// left behind (mounts, cgroups, processes, pod files). Whatever is left
    /// is cleaned up all the same, so later tests are not harmed, and then
    /// reported: the test fails with the list of what leaked (unless it is
    /// failing already: a second panic while unwinding would abort).
    fn drop(&mut self) {
        if self.child.is_some() {
            // Controllers first, or they replace the pods deleted below.
            for kind in [
                "cronjobs",
                "deployments",
                "statefulsets",
                "daemonsets",
                "jobs",
                "replicasets",
            ] {
                let out = self.peapod(&["get", kind, "-A", "-o", "json"]);
                let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                for o in v["items"].as_array().into_iter().flatten() {
                    if let (Some(ns), Some(name)) = (
                        o["metadata"]["namespace"].as_str(),
                        o["metadata"]["name"].as_str(),
                    ) {
                        let _ =
                            self.peapod(&["delete", kind, name, "-n", ns, "--cascade=background"]);
                    }
                }
            }
            for (ns, name) in self.pod_refs() {
                let _ = self.peapod(&["delete", "pod", &name, "-n", &ns, "--grace-period=0"]);
            }
            // Deleting the last Service removes the daemon's nft table.
            let out = self.peapod(&["get", "services", "-A", "-o", "json"]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let mut had = false;
            for s in v["items"].as_array().into_iter().flatten() {
                let (Some(ns), Some(name)) = (
                    s["metadata"]["namespace"].as_str(),
                    s["metadata"]["name"].as_str(),
                ) else {
                    continue;
                };
                had = true;
                let _ = self.peapod(&["delete", "service", name, "-n", ns]);
            }
            let start = Instant::now();
            while had && self.net.has_nft_table() && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Some(mut c) = self.child.take() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let _ = c.wait();
            }
        }
        let leaked = self.settled_leftovers(Duration::from_secs(5));
        let log = if leaked.is_empty() {
            String::new()
        } else {
            log_tail(&self.log, 40)
        };
        self.clean_up();
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!(
                "the test left {} thing(s) behind after its pods were deleted and its daemon \
                 stopped (cleaned up now):\n  {}\n--- end of the daemon log ---\n{log}",
                leaked.len(),
                leaked.join("\n  ")
            );
        }
    }
}

impl Daemon {
    /// [`Daemon::leftovers`], once they stay the same for a moment or after
    /// `limit`: a shim may still be exiting when its pod is gone.
    fn settled_leftovers(&self, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let left = self.leftovers();
            if left.is_empty() || start.elapsed() >= limit {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills what is left of this daemon's processes, unmounts, removes its
    /// cgroups and its directory.
    fn clean_up(&self) {
        // Last resort so one failing test does not leak into others.
        self.cni_del_leftovers();
        for pid in pids_mentioning(self.dir.to_str().unwrap_or("/nonexistent")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(self.dir.to_str().unwrap_or("/nonexistent")))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        // Container processes mention nothing of the test's directory
        // (a killed shim leaves its containers running): every process in
        // the test's cgroups goes, then the cgroups, once they are empty.
        let trees: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path().join(&self.cgroup_parent))
                    .filter(|p| p.exists())
                    .collect()
            })
            .unwrap_or_default();
        for tree in &trees {
            for pid in all_pids_in(tree) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let start = Instant::now();
        for tree in &trees {
            // A killed process leaves its cgroup a moment later.
            while tree.exists() {
                remove_cgroup_tree(tree);
                if start.elapsed() > Duration::from_secs(5) {
                    break;
                }
                if tree.exists() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // The bridge the plugins made for this test's network (the
        // plugins never remove a bridge); removing it takes the veths still
        // on it.
        for v in self.net.veths() {
            let _ = Command::new("ip").args(["link", "del", &v]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.net.bridge])
            .stderr(Stdio::null())
            .status();
        for t in [self.net.nft_table(), self.net.egress_table()] {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &t])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Daemon {
    /// CNI DEL, by hand, for every sandbox whose record says its network
    /// was never released (the daemon died or the test failed first), so
    /// its masquerade and hostPort rules do not outlive the test.
    fn cni_del_leftovers(&self) {
        // peapod's own sandboxes, then the CRI's.
        self.cni_del_leftovers_in(&self.root, &self.state);
        self.cni_del_leftovers_in(&self.root.join("cri"), &self.state.join("cri"));
    }

    fn cni_del_leftovers_in(&self, root: &Path, state: &Path) {
        let Ok(rd) = std::fs::read_dir(root.join("sandboxes")) else {
            return;
        };
        for e in rd.flatten() {
            let Ok(b) = std::fs::read(e.path().join("sandbox.json")) else {
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<Value>(&b) else {
                continue;
            };
            let net = &rec["network"];
            if rec["network_released"] == true || net.is_null() {
                continue;
            }
            let sid = rec["id"].as_str().unwrap_or_default();
            let netns = state.join("sandboxes").join(sid).join("ns/net");
            let list = &net["config"];
            for plugin in list["plugins"].as_array().into_iter().flatten().rev() {
                let mut conf = plugin.clone();
                conf["name"] = list["name"].clone();
                conf["cniVersion"] = list["cniVersion"].clone();
                conf["prevResult"] = net["result"].clone();
                // portmap removes nothing unless given the mappings.
                if plugin["capabilities"]["portMappings"] == true {
                    conf["runtimeConfig"] =
                        serde_json::json!({"portMappings": rec["config"]["port_mappings"]});
                }
                let kind = plugin["type"].as_str().unwrap_or_default();
                let child = Command::new(Path::new("/usr/lib/cni").join(kind))
                    .env("CNI_COMMAND", "DEL")
                    .env("CNI_CONTAINERID", sid)
                    .env("CNI_NETNS", &netns)
                    .env("CNI_IFNAME", "eth0")
                    .env("CNI_PATH", "/usr/lib/cni")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                if let Ok(mut c) = child {
                    if let Some(mut w) = c.stdin.take() {
                        use std::io::Write;
                        let _ = w.write_all(conf.to_string().as_bytes());
                    }
                    let _ = c.wait();
                }
            }
        }
    }
}

/// The last `lines` lines of the file at `path` (empty when unreadable).
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Pids in cgroup directory `p` and below.
pub fn all_pids_in(p: &Path) -> Vec<i32> {
    let mut out: Vec<i32> = std::fs::read_to_string(p.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(all_pids_in(&e.path()));
            }
        }
    }
    out
}

fn remove_cgroup_tree(p: &Path) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(p);
}

/// Inode of /proc/PID/ns/KIND as seen from the host.
pub fn ns_inode(pid: i32, kind: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .map(|m| m.ino())
        .unwrap_or_else(|e| panic!("ns {kind} of {pid}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The stderr of a command that must have failed.
pub fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", stdout(o));
    stderr(o)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
