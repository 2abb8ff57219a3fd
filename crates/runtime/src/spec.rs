//! OCI runtime specs for containers.
//!
//! The sandbox's namespaces appear by path, the way `crictl inspect` shows
//! them on a Kubernetes node; mounts, capabilities and masked paths follow
//! containerd's defaults.

use crate::cgroups::resources::CgroupValues;
use crate::security::{runtime_default_seccomp, MASKED_PATHS, READONLY_PATHS};
use serde_json::{json, Value};
use std::path::PathBuf;

/// How a container gets its pid namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidMode {
    /// Its own (the default).
    Private,
    /// The pod's, pinned at this path (shareProcessNamespace).
    Pod(PathBuf),
    /// The host's (hostPID).
    Host,
}

/// The sandbox namespaces a container joins; `None` means the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNamespaces {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: PidMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub destination: String,
    pub source: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seccomp {
    RuntimeDefault,
    Unconfined,
    /// A profile in OCI `linux.seccomp` JSON.
    Profile(Value),
}

/// Everything the spec is made of, already resolved.
#[derive(Debug, Clone)]
pub struct SpecInput {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub terminal: bool,
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub hostname: String,
    pub namespaces: SandboxNamespaces,
    pub cgroups_path: String,
    pub cgroup: CgroupValues,
    pub cgroup_v2: bool,
    /// Binds: /etc/hosts, /dev/shm, volumes...
    pub binds: Vec<BindMount>,
    pub capabilities: Vec<String>,
    pub privileged: bool,
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    pub annotations: Vec<(String, String)>,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": typ, "source": source, "options": options })
}

/// The devices containerd allows a non-privileged container.
fn device_rules() -> Value {
    json!([
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm" },
        { "allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm" },
        { "allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm" },
        { "allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm" },
        { "allow": true, "type": "c", "major": 136, "access": "rwm" },
        { "allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm" }
    ])
}

pub fn build(input: &SpecInput) -> Value {
    let sys_opts: &[&str] = if input.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount("/sys", "sysfs", "sysfs", sys_opts),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    for b in &input.binds {
        let mut opts = vec!["rbind", "rprivate"];
        if b.readonly {
            opts.push("ro");
        }
        mounts.push(json!({
            "destination": b.destination,
            "type": "bind",
            "source": b.source,
            "options": opts,
        }));
    }

    let mut namespaces = vec![json!({ "type": "mount" })];
    match &input.namespaces.pid {
        PidMode::Private => namespaces.push(json!({ "type": "pid" })),
        PidMode::Pod(p) => namespaces.push(json!({ "type": "pid", "path": p })),
        PidMode::Host => {}
    }
    for (typ, path) in [
        ("network", &input.namespaces.net),
        ("ipc", &input.namespaces.ipc),
        ("uts", &input.namespaces.uts),
    ] {
        if let Some(p) = path {
            namespaces.push(json!({ "type": typ, "path": p }));
        }
    }
    if input.cgroup_v2 {
        namespaces.push(json!({ "type": "cgroup" }));
    }

    let root_user = input.uid == 0;
    let caps = &input.capabilities;
    let empty: Vec<String> = Vec::new();
    let capabilities = json!({
        "bounding": caps,
        "effective": if root_user { caps } else { &empty },
        "permitted": if root_user { caps } else { &empty },
    });

    let mut resources = serde_json::Map::new();
    if !input.privileged {
        resources.insert("devices".into(), device_rules());
    } else {
        resources.insert(
            "devices".into(),
            json!([{ "allow": true, "access": "rwm" }]),
        );
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = input.cgroup.cpu_shares {
        // libcontainer converts shares to cpu.weight itself on v2.
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = input.cgroup.cpu_quota {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = input.cgroup.cpu_period {
        cpu.insert("period".into(), json!(p));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(m) = input.cgroup.memory_limit {
        resources.insert("memory".into(), json!({ "limit": m }));
    }
    if let Some(p) = input.cgroup.pids_limit {
        resources.insert("pids".into(), json!({ "limit": p }));
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": input.cgroups_path,
        "resources": resources,
    });
    if !input.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        match &input.seccomp {
            Seccomp::RuntimeDefault => linux["seccomp"] = runtime_default_seccomp(caps),
            Seccomp::Profile(p) => linux["seccomp"] = p.clone(),
            Seccomp::Unconfined => {}
        }
    }

    let mut spec_process_nnp = None;
    if input.no_new_privileges {
        // Only ever `true` or absent: libcontainer treats a present `false`
        // like `true` when ordering seccomp after the capability drop, and
        // the filter then fails to load without CAP_SYS_ADMIN.
        spec_process_nnp = Some(true);
    }
    let annotations: serde_json::Map<String, Value> = input
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": input.terminal,
            "user": { "uid": input.uid, "gid": input.gid, "additionalGids": input.additional_gids },
            "args": input.args,
            "env": input.env,
            "cwd": input.cwd,
            "capabilities": capabilities,
        },
        "root": { "path": input.rootfs, "readonly": input.readonly_rootfs },
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    });
    // A hostname may only be set in a private UTS namespace; with the
    // host's (hostNetwork) the container sees the host's name.
    if input.namespaces.uts.is_some() {
        spec["hostname"] = json!(input.hostname);
    }
    if let Some(nnp) = spec_process_nnp {
        spec["process"]["noNewPrivileges"] = json!(nnp);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> SpecInput {
        SpecInput {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
            terminal: false,
            rootfs: "/r".into(),
            readonly_rootfs: true,
            hostname: "web".into(),
            namespaces: SandboxNamespaces {
                net: Some("/run/x/ns/net".into()),
                ipc: Some("/run/x/ns/ipc".into()),
                uts: None,
                pid: PidMode::Pod("/run/x/ns/pid".into()),
            },
            cgroups_path: "/peapod/podx/web".into(),
            cgroup: CgroupValues {
                cpu_shares: Some(2),
                memory_limit: Some(1 << 25),
                ..Default::default()
            },
            cgroup_v2: false,
            binds: vec![BindMount {
                destination: "/data".into(),
                source: "/v".into(),
                readonly: true,
            }],
            capabilities: vec!["CAP_CHOWN".into()],
            privileged: false,
            no_new_privileges: true,
            seccomp: Seccomp::RuntimeDefault,
            annotations: vec![],
        }
    }

    #[test]
    fn spec_is_valid_oci_and_joins_by_path() {
        let v = build(&input());
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
        let ns = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        let net = ns
            .iter()
            .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(net.path().as_ref().unwrap().to_str(), Some("/run/x/ns/net"));
        assert!(!ns
            .iter()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts));
        // A non-root user gets no effective capabilities.
        assert_eq!(v["process"]["capabilities"]["effective"], json!([]));
        assert_eq!(
            v["process"]["capabilities"]["bounding"],
            json!(["CAP_CHOWN"])
        );
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], json!(1 << 25));
        assert!(v["linux"]["seccomp"]["syscalls"].is_array());
        assert_eq!(v["root"]["readonly"], json!(true));
        assert_eq!(v["process"]["noNewPrivileges"], json!(true));
        let mut i = input();
        i.no_new_privileges = false;
        assert!(build(&i)["process"].get("noNewPrivileges").is_none());
        let data = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination().to_str() == Some("/data"))
            .unwrap();
        assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
    }

    #[test]
    fn privileged_has_no_masks_or_seccomp() {
        let mut i = input();
        i.privileged = true;
        let v = build(&i);
        assert!(v["linux"].get("maskedPaths").is_none());
        assert!(v["linux"].get("seccomp").is_none());
    }
}
