//! OCI runtime specs for containers.
//!
//! The sandbox's namespaces appear by path, the way `crictl inspect` shows
//! them on a Kubernetes node; mounts, capabilities and masked paths follow
//! containerd's defaults.

use crate::cgroups::resources::CgroupValues;
use crate::security::{runtime_default_seccomp, MASKED_PATHS, READONLY_PATHS};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};
use oci_spec::OciSpecError;
use serde_json::Value;
use std::collections::HashMap;
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
    pub propagation: crate::container_create::MountPropagation,
}

/// A host device node made in the container (CRI `Device`), with the
/// device cgroup access it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub container_path: String,
    pub typ: LinuxDeviceType,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device cgroup access: some of `r`, `w`, `m`.
    pub access: String,
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
    /// v1: mount these cgroup directories (by hierarchy name, the
    /// container's own cgroup in each) at /sys/fs/cgroup/<name> on a tmpfs
    /// in place of libcontainer's "cgroup" mount. See
    /// `container_create::own_v1_cgroup_mounts`.
    pub cgroup_v1_binds: Option<Vec<(String, PathBuf)>>,
    /// Binds: /etc/hosts, /dev/shm, volumes...
    pub binds: Vec<BindMount>,
    /// Host devices made in the container (beyond the default ones).
    pub devices: Vec<Device>,
    pub capabilities: Vec<String>,
    pub privileged: bool,
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    /// In place of [`MASKED_PATHS`] / [`READONLY_PATHS`] when set.
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub annotations: Vec<(String, String)>,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

fn device(
    typ: LinuxDeviceType,
    major: i64,
    minor: Option<i64>,
) -> Result<LinuxDeviceCgroup, OciSpecError> {
    let mut rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .access("rwm")
        .build()?;
    rule.set_minor(minor);
    Ok(rule)
}

/// The devices containerd allows a non-privileged container.
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, OciSpecError> {
    use LinuxDeviceType::C;
    let mut rules = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        rules.push(device(C, major, minor)?);
    }
    Ok(rules)
}

fn namespace(
    typ: LinuxNamespaceType,
    path: Option<&PathBuf>,
) -> Result<LinuxNamespace, OciSpecError> {
    let mut ns = LinuxNamespaceBuilder::default().typ(typ).build()?;
    ns.set_path(path.cloned());
    Ok(ns)
}

fn capability_set(caps: &[String]) -> Result<Capabilities, OciSpecError> {
    caps.iter()
        .map(|c| {
            serde_json::from_value::<Capability>(Value::String(c.clone()))
                .map_err(|_| OciSpecError::Other(format!("unknown capability {c:?}")))
        })
        .collect()
}

/// libcontainer 0.7 reads SCMP_CMP_MASKED_EQ's `valueTwo` as the mask and
/// `value` as the expected bits, the reverse of runc and of the profiles
/// written for it (containerd's and moby's defaults included): a rule like
/// "clone only with no namespace flag" would then never match. The spec is
/// libcontainer's input, so its operands are written in libcontainer's order.
fn for_libcontainer(mut profile: LinuxSeccomp) -> Result<LinuxSeccomp, OciSpecError> {
    let Some(mut syscalls) = profile.syscalls().clone() else {
        return Ok(profile);
    };
    for syscall in syscalls.iter_mut() {
        let Some(args) = syscall.args() else {
            continue;
        };
        let mut swapped = Vec::with_capacity(args.len());
        for arg in args {
            if arg.op() != LinuxSeccompOperator::ScmpCmpMaskedEq {
                swapped.push(*arg);
                continue;
            }
            swapped.push(
                LinuxSeccompArgBuilder::default()
                    .index(arg.index())
                    .op(arg.op())
                    .value(arg.value_two().unwrap_or(0))
                    .value_two(arg.value())
                    .build()?,
            );
        }
        syscall.set_args(Some(swapped));
    }
    profile.set_syscalls(Some(syscalls));
    Ok(profile)
}

pub fn build(input: &SpecInput) -> Result<Spec, OciSpecError> {
    let sys_opts: &[&str] = if input.privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
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
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount("/sys", "sysfs", "sysfs", sys_opts)?,
    ];
    match &input.cgroup_v1_binds {
        None => mounts.push(mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?),
        // What libcontainer's "cgroup" mount makes on v1 (its emulated
        // subsystems), written out.
        Some(binds) => {
            mounts.push(mount(
                "/sys/fs/cgroup",
                "tmpfs",
                "tmpfs",
                &["nosuid", "noexec", "nodev", "mode=755"],
            )?);
            let mut opts = vec!["rbind", "nosuid", "noexec", "nodev"];
            if !input.privileged {
                opts.push("ro");
            }
            for (name, dir) in binds {
                mounts.push(
                    MountBuilder::default()
                        .destination(format!("/sys/fs/cgroup/{name}"))
                        .typ("bind")
                        .source(dir)
                        .options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                        .build()?,
                );
            }
        }
    }
    use crate::container_create::MountPropagation as P;
    for b in &input.binds {
        let how = match b.propagation {
            P::Private => "rprivate",
            P::HostToContainer => "rslave",
            P::Bidirectional => "rshared",
        };
        let mut opts = vec!["rbind".to_string(), how.to_string()];
        if b.readonly {
            opts.push("ro".into());
        }
        mounts.push(
            MountBuilder::default()
                .destination(&b.destination)
                .typ("bind")
                .source(&b.source)
                .options(opts)
                .build()?,
        );
    }

    let mut namespaces = vec![namespace(LinuxNamespaceType::Mount, None)?];
    match &input.namespaces.pid {
        PidMode::Private => namespaces.push(namespace(LinuxNamespaceType::Pid, None)?),
        PidMode::Pod(p) => namespaces.push(namespace(LinuxNamespaceType::Pid, Some(p))?),
        PidMode::Host => {}
    }
    for (typ, path) in [
        (LinuxNamespaceType::Network, &input.namespaces.net),
        (LinuxNamespaceType::Ipc, &input.namespaces.ipc),
        (LinuxNamespaceType::Uts, &input.namespaces.uts),
    ] {
        if let Some(p) = path {
            namespaces.push(namespace(typ, Some(p))?);
        }
    }
    if input.cgroup_v2 {
        namespaces.push(namespace(LinuxNamespaceType::Cgroup, None)?);
    }

    // A non-root user starts with no effective or permitted capabilities.
    let caps = capability_set(&input.capabilities)?;
    let granted = if input.uid == 0 {
        caps.clone()
    } else {
        Capabilities::new()
    };
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps)
        .effective(granted.clone())
        .permitted(granted)
        .build()?;
    capabilities.set_inheritable(None).set_ambient(None);

    let mut resources = LinuxResourcesBuilder::default();
    if input.privileged {
        resources = resources.devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()?]);
    } else {
        let mut rules = device_rules()?;
        for d in &input.devices {
            let rule = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(d.typ)
                .major(d.major)
                .minor(d.minor)
                .access(&d.access)
                .build()?;
            rules.push(rule);
        }
        resources = resources.devices(rules);
    }
    let devices = input
        .devices
        .iter()
        .map(|d| {
            LinuxDeviceBuilder::default()
                .path(&d.container_path)
                .typ(d.typ)
                .major(d.major)
                .minor(d.minor)
                .file_mode(d.file_mode)
                .uid(d.uid)
                .gid(d.gid)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cg = &input.cgroup;
    if cg.cpu_shares.is_some() || cg.cpu_quota.is_some() || cg.cpu_period.is_some() {
        // libcontainer converts shares to cpu.weight itself on v2.
        let mut cpu = LinuxCpuBuilder::default().build()?;
        cpu.set_shares(cg.cpu_shares)
            .set_quota(cg.cpu_quota)
            .set_period(cg.cpu_period);
        resources = resources.cpu(cpu);
    }
    if let Some(m) = cg.memory_limit {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(m).build()?);
    }
    if let Some(p) = cg.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(p).build()?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(&input.cgroups_path)
        .resources(resources.build()?)
        .build()?;
    linux.set_devices((!devices.is_empty()).then_some(devices));
    // A bidirectional mount is a peer of its host mount only if the
    // container's mount namespace keeps the host's peer groups: the root
    // is made rshared before the mounts, as runc's `rshared` does
    // (libcontainer spells it "shared" and applies it recursively; it
    // rejects "rshared"). Otherwise libcontainer's default, rslave. Each
    // bind's own propagation (rprivate, rslave, rshared above) is then
    // applied by the shim's helper (libcontainer 0.7 ignores those
    // options).
    if input
        .binds
        .iter()
        .any(|b| b.propagation == P::Bidirectional)
    {
        linux.set_rootfs_propagation(Some("shared".into()));
    }

    // Privileged containers are unconfined, as with containerd.
    if input.privileged {
        linux.set_masked_paths(None).set_readonly_paths(None);
    } else {
        let strings = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        linux
            .set_masked_paths(Some(
                input
                    .masked_paths
                    .clone()
                    .unwrap_or_else(|| strings(MASKED_PATHS)),
            ))
            .set_readonly_paths(Some(
                input
                    .readonly_paths
                    .clone()
                    .unwrap_or_else(|| strings(READONLY_PATHS)),
            ));
        let seccomp = match &input.seccomp {
            Seccomp::RuntimeDefault => Some(runtime_default_seccomp(&input.capabilities)?),
            Seccomp::Profile(p) => Some(
                serde_json::from_value::<LinuxSeccomp>(p.clone())
                    .map_err(|e| OciSpecError::Other(format!("seccomp profile: {e}")))?,
            ),
            Seccomp::Unconfined => None,
        };
        linux.set_seccomp(seccomp.map(for_libcontainer).transpose()?);
    }

    let user = UserBuilder::default()
        .uid(input.uid)
        .gid(input.gid)
        .additional_gids(input.additional_gids.clone())
        .build()?;
    let mut process = ProcessBuilder::default()
        .terminal(input.terminal)
        .user(user)
        .args(input.args.clone())
        .env(input.env.clone())
        .cwd(&input.cwd)
        .capabilities(capabilities)
        .build()?;
    // Only ever `true` or absent: libcontainer treats a present `false`
    // like `true` when ordering seccomp after the capability drop, and
    // the filter then fails to load without CAP_SYS_ADMIN.
    process
        .set_no_new_privileges(input.no_new_privileges.then_some(true))
        .set_rlimits(None);

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path(&input.rootfs)
                .readonly(input.readonly_rootfs)
                .build()?,
        )
        .mounts(mounts)
        .annotations(input.annotations.iter().cloned().collect::<HashMap<_, _>>())
        .linux(linux)
        .build()?;
    // A hostname may only be set in a private UTS namespace; with the
    // host's (hostNetwork) the container sees the host's name.
    spec.set_hostname(
        input
            .namespaces
            .uts
            .is_some()
            .then(|| input.hostname.clone()),
    );
    Ok(spec)
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
            cgroup_v1_binds: None,
            binds: vec![BindMount {
                destination: "/data".into(),
                source: "/v".into(),
                readonly: true,
                propagation: Default::default(),
            }],
            devices: vec![],
            capabilities: vec!["CAP_CHOWN".into()],
            privileged: false,
            no_new_privileges: true,
            seccomp: Seccomp::RuntimeDefault,
            masked_paths: None,
            readonly_paths: None,
            annotations: vec![],
        }
    }

    #[test]
    fn spec_joins_by_path_and_follows_the_input() {
        let spec = build(&input()).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        let net = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(net.path().as_ref().unwrap().to_str(), Some("/run/x/ns/net"));
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Uts));
        // No private UTS namespace: no hostname.
        assert_eq!(spec.hostname(), &None);
        // A non-root user gets no effective capabilities.
        let process = spec.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.effective(), &Some(Capabilities::new()));
        assert_eq!(
            caps.bounding(),
            &Some(Capabilities::from([Capability::Chown]))
        );
        assert_eq!(caps.inheritable(), &None);
        assert_eq!(process.rlimits(), &None);
        let resources = linux.resources().as_ref().unwrap();
        assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(1 << 25));
        assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(2));
        assert!(linux.seccomp().as_ref().unwrap().syscalls().is_some());
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(process.no_new_privileges(), Some(true));
        let mut i = input();
        i.no_new_privileges = false;
        let spec = build(&i).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().no_new_privileges(), None);
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
    fn spec_json_is_what_libcontainer_reads() {
        let mut i = input();
        i.uid = 0;
        i.namespaces.uts = Some("/run/x/ns/uts".into());
        let spec = build(&i).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        // Absent, not `false`: see the noNewPrivileges note in build().
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["hostname"], "web");
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["process"]["capabilities"]["effective"][0], "CAP_CHOWN");
        assert!(v["process"].get("rlimits").is_none());
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], false);
        assert!(v["linux"]["resources"]["devices"][0].get("type").is_none());
        let back: Spec = serde_json::from_value(v).unwrap();
        assert_eq!(back, spec);
    }

    fn clone_args(spec: &Spec) -> Vec<oci_spec::runtime::LinuxSeccompArg> {
        let seccomp = spec.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == "clone"))
            .flat_map(|s| s.args().clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn masked_equal_is_written_in_libcontainer_order() {
        // RuntimeDefault: "no namespace flag" is mask in valueTwo, 0 in value.
        let args = clone_args(&build(&input()).unwrap());
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), 0);
        assert_eq!(
            args[0].value_two(),
            Some(crate::security::CLONE_NAMESPACE_FLAGS)
        );
        // A Localhost profile written for runc gets the same treatment.
        let mut i = input();
        i.seccomp = Seccomp::Profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                { "names": ["read"], "action": "SCMP_ACT_ALLOW" },
                { "names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{ "index": 0, "value": 2080505856, "op": "SCMP_CMP_MASKED_EQ" }] }
            ]
        }));
        let args = clone_args(&build(&i).unwrap());
        assert_eq!(
            (args[0].value(), args[0].value_two()),
            (0, Some(2080505856))
        );
        // Other operators are left alone.
        assert!(build(&input())
            .unwrap()
            .linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .as_ref()
            .unwrap()
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names() == &["personality".to_string()])
            .any(|s| s.args().as_ref().unwrap()[0].value() == 0x0008));
    }

    const PROBE: &str = "PEAPOD_SECCOMP_PROBE";

    /// The errno of a raw syscall, or 0 when it succeeds; a clone's child
    /// exits at once.
    fn try_syscall(f: impl FnOnce() -> libc::c_long) -> i32 {
        let r = f();
        if r < 0 {
            return std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
        }
        0
    }

    fn try_clone(flags: libc::c_long) -> i32 {
        let r = unsafe {
            libc::syscall(
                libc::SYS_clone,
                flags | libc::SIGCHLD as libc::c_long,
                0,
                0,
                0,
                0,
            )
        };
        if r == 0 {
            unsafe { libc::_exit(0) };
        }
        if r > 0 {
            unsafe { libc::waitpid(r as libc::pid_t, std::ptr::null_mut(), 0) };
        }
        try_syscall(|| r)
    }

    /// Run in a child test process (see `runtime_default_filter_on_the_kernel`):
    /// loads the seccomp profile `build()` writes for the capabilities in
    /// $PEAPOD_SECCOMP_PROBE with libcontainer, as the shim does, then prints
    /// what a few syscalls return.
    #[test]
    fn seccomp_probe() {
        let Ok(caps) = std::env::var(PROBE) else {
            return;
        };
        let mut i = input();
        i.capabilities = caps
            .split(',')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        let spec = build(&i).unwrap();
        let profile = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
            0
        );
        libcontainer::seccomp::initialize_seccomp(&profile).unwrap();
        let results = [
            ("fork", try_clone(0)),
            (
                "clone_newuser",
                try_clone(libc::CLONE_NEWUSER as libc::c_long),
            ),
            (
                "clone_newnet",
                try_clone(libc::CLONE_NEWNET as libc::c_long),
            ),
            (
                "clone3",
                try_syscall(|| unsafe { libc::syscall(libc::SYS_clone3, 0, 0) }),
            ),
            (
                "unshare_newuts",
                try_syscall(|| unsafe { libc::unshare(libc::CLONE_NEWUTS) } as libc::c_long),
            ),
            (
                "socket_unix",
                try_syscall(|| {
                    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
                    if fd >= 0 {
                        unsafe { libc::close(fd) };
                    }
                    fd as libc::c_long
                }),
            ),
            (
                "socket_vsock",
                try_syscall(
                    || unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) }
                        as libc::c_long,
                ),
            ),
            (
                "personality_query",
                try_syscall(|| unsafe { libc::personality(0xffff_ffff) } as libc::c_long),
            ),
            (
                "personality_norandom",
                try_syscall(|| unsafe {
                    libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong)
                } as libc::c_long),
            ),
            (
                "keyctl",
                try_syscall(|| unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) }),
            ),
        ];
        let line: Vec<String> = results.iter().map(|(n, r)| format!("{n}={r}")).collect();
        println!("PROBE {}", line.join(" "));
    }

    fn probe(caps: &[&str]) -> HashMap<String, i32> {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "spec::tests::seccomp_probe",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(PROBE, caps.join(","))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("PROBE ").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        line.split(' ')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    /// RuntimeDefault as the kernel applies it: forks work, namespaces do
    /// not (the clone mask really matches), clone3 says ENOSYS, anything off
    /// the list says EPERM; CAP_SYS_ADMIN lifts the namespace rules.
    #[test]
    fn runtime_default_filter_on_the_kernel() {
        let (eperm, enosys) = (libc::EPERM, libc::ENOSYS);
        let r = probe(crate::security::DEFAULT_CAPS);
        assert_eq!(r["fork"], 0, "{r:?}");
        assert_eq!(r["clone_newuser"], eperm, "{r:?}");
        assert_eq!(r["clone_newnet"], eperm, "{r:?}");
        assert_eq!(r["clone3"], enosys, "{r:?}");
        assert_eq!(r["unshare_newuts"], eperm, "{r:?}");
        assert_eq!(r["socket_unix"], 0, "{r:?}");
        assert_eq!(r["socket_vsock"], eperm, "{r:?}");
        assert_eq!(r["personality_query"], 0, "{r:?}");
        assert_eq!(r["personality_norandom"], eperm, "{r:?}");
        assert_eq!(r["keyctl"], eperm, "{r:?}");

        let mut admin = crate::security::DEFAULT_CAPS.to_vec();
        admin.push("CAP_SYS_ADMIN");
        let r = probe(&admin);
        assert_eq!(r["fork"], 0, "{r:?}");
        assert_eq!(r["clone_newuser"], 0, "{r:?}");
        assert_ne!(r["clone3"], enosys, "{r:?}");
        assert_ne!(r["unshare_newuts"], eperm, "{r:?}");
        assert_eq!(r["keyctl"], eperm, "{r:?}");
    }

    #[test]
    fn bad_profiles_and_capabilities_are_errors() {
        let mut i = input();
        i.seccomp = Seccomp::Profile(serde_json::json!({ "defaultAction": "SCMP_ACT_MAYBE" }));
        assert!(build(&i)
            .unwrap_err()
            .to_string()
            .contains("seccomp profile"));
        let mut i = input();
        i.capabilities = vec!["CAP_FLY".into()];
        assert!(build(&i).unwrap_err().to_string().contains("CAP_FLY"));
    }

    #[test]
    fn bidirectional_makes_the_root_rshared_and_devices_get_rules() {
        use crate::container_create::MountPropagation as P;
        let spec = build(&input()).unwrap();
        assert_eq!(spec.linux().as_ref().unwrap().rootfs_propagation(), &None);
        let mut i = input();
        i.binds[0].propagation = P::Bidirectional;
        i.devices = vec![Device {
            container_path: "/dev/mynull".into(),
            typ: LinuxDeviceType::C,
            major: 1,
            minor: 3,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
            access: "r".into(),
        }];
        let v = serde_json::to_value(build(&i).unwrap()).unwrap();
        // libcontainer's spelling of runc's "rshared".
        assert_eq!(v["linux"]["rootfsPropagation"], "shared");
        let data = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert!(data["options"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("rshared")));
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/mynull");
        assert_eq!(v["linux"]["devices"][0]["type"], "c");
        assert_eq!(v["linux"]["devices"][0]["fileMode"], 0o666);
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules.last().unwrap(),
            &serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"})
        );
    }

    #[test]
    fn own_v1_cgroup_binds_replace_the_cgroup_mount() {
        let cgroup_mounts = |spec: &Spec| -> Vec<(String, String, Vec<String>)> {
            spec.mounts()
                .iter()
                .flatten()
                .filter(|m| m.destination().starts_with("/sys/fs/cgroup"))
                .map(|m| {
                    (
                        m.destination().display().to_string(),
                        m.typ().clone().unwrap_or_default(),
                        m.options().clone().unwrap_or_default(),
                    )
                })
                .collect()
        };
        let plain = cgroup_mounts(&build(&input()).unwrap());
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].1, "cgroup");
        let mut i = input();
        i.cgroup_v1_binds = Some(vec![(
            "memory".into(),
            "/sys/fs/cgroup/memory/peapod/podx/c".into(),
        )]);
        let own = cgroup_mounts(&build(&i).unwrap());
        assert_eq!(own.len(), 2, "{own:?}");
        assert_eq!(
            (own[0].0.as_str(), own[0].1.as_str()),
            ("/sys/fs/cgroup", "tmpfs")
        );
        assert_eq!(own[1].0, "/sys/fs/cgroup/memory");
        assert!(own[1].2.contains(&"ro".to_string()), "{own:?}");
    }

    #[test]
    fn privileged_has_no_masks_or_seccomp() {
        let mut i = input();
        i.privileged = true;
        let spec = build(&i).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths(), &None);
        assert_eq!(linux.readonly_paths(), &None);
        assert_eq!(linux.seccomp(), &None);
        let mut i = input();
        i.seccomp = Seccomp::Unconfined;
        let spec = build(&i).unwrap();
        assert_eq!(spec.linux().as_ref().unwrap().seccomp(), &None);
    }
}
