//! RunPodSandbox: pod cgroup, shim, infra process, pinned namespaces, the
//! pod's /dev/shm and /etc files.

use crate::cgroups::resources::CgroupValues;
use crate::error::RuntimeError;
use crate::paths::MAX_SOCKET_PATH;
use crate::{etc_files, mounts, namespaces, Runtime};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the node asks for: CRI's PodSandboxConfig, reduced to what a
/// sandbox here is made of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxConfig {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    pub hostname: String,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub share_process_namespace: bool,
    /// Values for the pod cgroup.
    pub cgroup: SandboxCgroup,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxCgroup {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub memory_limit: Option<i64>,
}

const META: &str = "sandbox-meta.json";

impl Runtime {
    /// The config a sandbox was created with (for adoption after restart).
    pub fn sandbox_config(&self, uid: &str) -> Result<SandboxConfig, RuntimeError> {
        let p = self.paths.sandbox_data(uid).join(META);
        let b = std::fs::read(&p).map_err(RuntimeError::io(&p))?;
        serde_json::from_slice(&b).map_err(|e| RuntimeError::Sandbox {
            uid: uid.into(),
            message: format!("{}: {e}", p.display()),
        })
    }

    /// Paths of the sandbox namespaces a container joins.
    pub fn sandbox_namespaces(&self, cfg: &SandboxConfig) -> crate::spec::SandboxNamespaces {
        let ns = self.paths.ns_dir(&cfg.uid);
        crate::spec::SandboxNamespaces {
            net: (!cfg.host_network).then(|| ns.join("net")),
            ipc: (!cfg.host_ipc).then(|| ns.join("ipc")),
            uts: (!cfg.host_network).then(|| ns.join("uts")),
            pid: if cfg.host_pid {
                crate::spec::PidMode::Host
            } else if cfg.share_process_namespace {
                crate::spec::PidMode::Pod(ns.join("pid"))
            } else {
                crate::spec::PidMode::Private
            },
        }
    }

    /// Create the sandbox. On failure everything made so far is removed.
    pub fn run_sandbox(&self, cfg: &SandboxConfig) -> Result<i32, RuntimeError> {
        match self.run_sandbox_inner(cfg) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                if let Err(c) = self.remove_sandbox(&cfg.uid) {
                    tracing::warn!(uid = %cfg.uid, "clean-up after failed sandbox: {c}");
                }
                Err(e)
            }
        }
    }

    fn run_sandbox_inner(&self, cfg: &SandboxConfig) -> Result<i32, RuntimeError> {
        let uid = cfg.uid.as_str();
        let sock = self.paths.shim_socket(uid);
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(RuntimeError::Config(format!(
                "--state {}: the shim socket path {} is {} bytes, over the {MAX_SOCKET_PATH}-byte limit of unix sockets; use a shorter --state",
                self.paths.state().display(),
                sock.display(),
                sock.as_os_str().len()
            )));
        }
        let state_dir = self.paths.sandbox_state(uid);
        let data_dir = self.paths.sandbox_data(uid);
        for d in [&state_dir, &data_dir, &self.paths.container_root(uid)] {
            std::fs::create_dir_all(d).map_err(RuntimeError::io(d))?;
        }
        let meta = data_dir.join(META);
        std::fs::write(
            &meta,
            serde_json::to_vec_pretty(cfg).map_err(|e| RuntimeError::Config(e.to_string()))?,
        )
        .map_err(RuntimeError::io(&meta))?;

        // Cgroups: pod (with the pod's limits), its infra child, the shim's.
        let pod_values = CgroupValues {
            cpu_shares: cfg.cgroup.cpu_shares,
            cpu_quota: cfg.cgroup.cpu_quota,
            cpu_period: cfg
                .cgroup
                .cpu_quota
                .map(|_| crate::cgroups::resources::QUOTA_PERIOD),
            memory_limit: cfg.cgroup.memory_limit,
            pids_limit: self.opts.pod_max_pids,
        };
        self.cgroups
            .create(&self.paths.pod_cgroup(uid), &pod_values)?;
        // The pause process only waits: the least cpu weight.
        let infra_values = CgroupValues {
            cpu_shares: Some(crate::cgroups::resources::MIN_SHARES),
            ..Default::default()
        };
        self.cgroups
            .create(&self.paths.infra_cgroup(uid), &infra_values)?;
        self.cgroups
            .create(&self.paths.shim_cgroup(uid), &CgroupValues::default())?;

        let shim_cfg = peapod_shim::SandboxConfig {
            uid: uid.to_string(),
            hostname: cfg.hostname.clone(),
            new_net: !cfg.host_network,
            new_ipc: !cfg.host_ipc,
            new_uts: !cfg.host_network,
            new_pid: cfg.share_process_namespace && !cfg.host_pid,
            shim_cgroup_procs: self.cgroups.procs_files(&self.paths.shim_cgroup(uid)),
            infra_cgroup_procs: self.cgroups.procs_files(&self.paths.infra_cgroup(uid)),
            container_root: self.paths.container_root(uid),
        };
        let shim_json = state_dir.join(peapod_shim::server::CONFIG_NAME);
        std::fs::write(
            &shim_json,
            serde_json::to_vec_pretty(&shim_cfg)
                .map_err(|e| RuntimeError::Config(e.to_string()))?,
        )
        .map_err(RuntimeError::io(&shim_json))?;

        self.spawn_shim(uid)?;
        let state = self.wait_for_shim(uid)?;
        let infra = state.infra_pid;

        // Pin the namespaces the pod owns.
        let ns_dir = self.paths.ns_dir(uid);
        let mut kinds = Vec::new();
        if shim_cfg.new_net {
            kinds.push("net");
            kinds.push("uts");
        }
        if shim_cfg.new_ipc {
            kinds.push("ipc");
        }
        if shim_cfg.new_pid {
            kinds.push("pid");
        }
        for k in kinds {
            namespaces::pin(infra, k, &ns_dir)?;
        }
        if !cfg.host_ipc {
            mounts::mount_shm(&self.paths.shm_dir(uid), mounts::SHM_SIZE)?;
        }
        etc_files::write(&self.paths.etc_dir(uid), &cfg.hostname, cfg.host_network)?;
        Ok(infra)
    }

    /// fork+exec `peapod shim` in its own session, stdio to its log file.
    fn spawn_shim(&self, uid: &str) -> Result<(), RuntimeError> {
        let dir = self.paths.sandbox_state(uid);
        let log_path = dir.join("shim.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(RuntimeError::io(&log_path))?;
        let log2 = log.try_clone().map_err(RuntimeError::io(&log_path))?;
        let mut cmd = Command::new(&self.opts.exe);
        cmd.arg("shim")
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .current_dir(&dir)
            .env_remove("RUST_LOG");
        // SAFETY: setsid is async-signal-safe; it detaches the shim from the
        // daemon's session so Ctrl-C on a foreground daemon spares it.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(RuntimeError::io(&self.opts.exe))?;
        // Reap the shim when it exits so it does not linger as a zombie of
        // this daemon (after a daemon restart, init reaps it instead).
        std::thread::Builder::new()
            .name(format!("reap-shim-{}", &uid[..uid.len().min(8)]))
            .spawn(move || {
                let _ = child.wait();
            })
            .map_err(RuntimeError::io(&dir))?;
        Ok(())
    }

    fn wait_for_shim(&self, uid: &str) -> Result<peapod_shim::ShimState, RuntimeError> {
        let start = Instant::now();
        let client = self.shim(uid);
        loop {
            match client.state() {
                Ok(s) => return Ok(s),
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    let log =
                        std::fs::read_to_string(self.paths.sandbox_state(uid).join("shim.log"))
                            .unwrap_or_default();
                    return Err(RuntimeError::Sandbox {
                        uid: uid.into(),
                        message: format!("shim did not come up: {e}; shim log: {}", log.trim()),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    pub fn pinned_namespace(&self, uid: &str, kind: &str) -> PathBuf {
        self.paths.ns_dir(uid).join(kind)
    }
}
