//! RunPodSandbox: the pod's namespaces (made and pinned without a
//! process), its cgroup parent, the shim (and, for a shared pid namespace
//! only, the infra process), the pod's /dev/shm and /etc files.

use crate::cgroups::resources::CgroupValues;
use crate::error::RuntimeError;
use crate::namespaces::{self, PodNamespaces};
use crate::paths::MAX_SOCKET_PATH;
use crate::types::{new_id, PodSandboxMetadata};
use crate::{etc_files, mounts, Runtime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the caller asks for: CRI's PodSandboxConfig, reduced to what a
/// sandbox here is made of.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxConfig {
    pub metadata: PodSandboxMetadata,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The pod's log directory (the caller's); containers' log paths are
    /// relative to it, as in CRI.
    pub log_directory: PathBuf,
    /// The pod's cgroup. The runtime creates it with `cgroup`'s values if
    /// it does not exist (and then removes it with the sandbox).
    pub cgroup_parent: String,
    pub cgroup: SandboxCgroup,
    pub host_network: bool,
    pub host_pid: bool,
    pub host_ipc: bool,
    pub share_process_namespace: bool,
    /// Namespaced sysctls (`spec.securityContext.sysctls`).
    pub sysctls: Vec<(String, String)>,
    /// hostPorts (CRI's port_mappings), for CNI's portmap.
    #[serde(default)]
    pub port_mappings: Vec<peapod_net::PortMapping>,
    /// The pod's `/etc/resolv.conf` (CRI's dns_config, as kubelet forms
    /// it from dnsPolicy and dnsConfig); None copies the host's.
    #[serde(default)]
    pub dns: Option<etc_files::DnsConfig>,
    /// `spec.hostAliases`, appended to the pod's `/etc/hosts`.
    #[serde(default)]
    pub host_aliases: Vec<etc_files::HostAlias>,
    /// The pod's `hostname.subdomain.ns.svc.<domain>` when it has a
    /// subdomain (first on its `/etc/hosts` line).
    #[serde(default)]
    pub fqdn: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxCgroup {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub memory_limit: Option<i64>,
}

/// What the runtime keeps of a sandbox, at `<root>/sandboxes/<id>/sandbox.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub config: SandboxConfig,
    pub created_at: String,
    /// StopPodSandbox ran.
    #[serde(default)]
    pub stopped: bool,
    /// The runtime made `config.cgroup_parent` (and so removes it).
    #[serde(default)]
    pub created_cgroup: bool,
    /// What CNI ADD gave the sandbox (kept across daemon restarts: the
    /// pod keeps its addresses; DEL gets ADD's configuration and result).
    #[serde(default)]
    pub network: Option<peapod_net::PodNetworkStatus>,
    /// CNI DEL ran: the addresses are released.
    #[serde(default)]
    pub network_released: bool,
    /// RunPodSandbox finished: the shim, the network and the pod's
    /// `/etc` files are all there. A record left `false` was written by a
    /// daemon that died in the middle of RunPodSandbox; the sandbox is
    /// `NotReady` and its pod gets a new one. (Records written before this
    /// field existed were complete.)
    #[serde(default = "finished_default")]
    pub finished: bool,
}

fn finished_default() -> bool {
    true
}

impl Runtime {
    pub fn sandbox_record(&self, sid: &str) -> Result<SandboxRecord, RuntimeError> {
        crate::read_json(&self.paths.sandbox_record(sid), &format!("sandbox {sid}"))
    }

    pub(crate) fn write_sandbox_record(&self, rec: &SandboxRecord) -> Result<(), RuntimeError> {
        let p = self.paths.sandbox_record(&rec.id);
        crate::write_json_atomic(&p, rec)
    }

    /// Paths of the sandbox namespaces a container joins.
    pub fn sandbox_namespaces(
        &self,
        sid: &str,
        cfg: &SandboxConfig,
    ) -> crate::spec::SandboxNamespaces {
        let ns = self.paths.ns_dir(sid);
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

    /// RunPodSandbox: returns the new sandbox's id. On failure everything
    /// made so far is removed.
    pub fn run_pod_sandbox(&self, cfg: &SandboxConfig) -> Result<String, RuntimeError> {
        self.run_pod_sandbox_then(cfg, |_| ()).map(|(sid, _)| sid)
    }

    /// RunPodSandbox that also runs `early(sandbox id)` as soon as the
    /// sandbox can take containers (its shim runs, its namespaces and
    /// `/etc` files exist), while CNI ADD is still running: the caller
    /// creates (not starts) its first containers there, so the tens of
    /// milliseconds of each overlap. `early` must not start a container:
    /// the pod's network is only there once this returns. If the sandbox
    /// fails, whatever `early` made in it is removed with it.
    pub fn run_pod_sandbox_then<T>(
        &self,
        cfg: &SandboxConfig,
        early: impl FnOnce(&str) -> T,
    ) -> Result<(String, T), RuntimeError> {
        namespaces::check_sysctls(&cfg.sysctls, cfg.host_network, cfg.host_ipc)
            .map_err(RuntimeError::Config)?;
        let sid = new_id();
        match self.run_sandbox_inner(&sid, cfg, early) {
            Ok(t) => Ok((sid, t)),
            Err(e) => {
                if let Err(c) = self.remove_pod_sandbox(&sid) {
                    tracing::warn!(sandbox = %sid, "clean-up after failed sandbox: {c}");
                }
                Err(e)
            }
        }
    }

    fn run_sandbox_inner<T>(
        &self,
        sid: &str,
        cfg: &SandboxConfig,
        early: impl FnOnce(&str) -> T,
    ) -> Result<T, RuntimeError> {
        let sock = self.paths.shim_socket(sid);
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(RuntimeError::Config(format!(
                "--state {}: the shim socket path {} is {} bytes, over the {MAX_SOCKET_PATH}-byte limit of unix sockets; use a shorter --state",
                self.paths.state().display(),
                sock.display(),
                sock.as_os_str().len()
            )));
        }
        let state_dir = self.paths.sandbox_state(sid);
        let data_dir = self.paths.sandbox_data(sid);
        for d in [
            &state_dir,
            &data_dir,
            &self.paths.container_root(sid),
            &self.paths.containers_dir(sid),
        ] {
            std::fs::create_dir_all(d).map_err(RuntimeError::io(d))?;
        }
        let parent = cfg.cgroup_parent.trim_matches('/').to_string();
        if parent.is_empty() {
            return Err(RuntimeError::Config(
                "sandbox config: cgroup_parent is empty; give the pod's cgroup".into(),
            ));
        }
        let mut rec = SandboxRecord {
            id: sid.to_string(),
            config: cfg.clone(),
            created_at: crate::now(),
            stopped: false,
            created_cgroup: !self.cgroups.exists(&parent),
            network: None,
            network_released: false,
            finished: false,
        };
        self.write_sandbox_record(&rec)?;
        self.parent_put(&parent, sid);

        // The pod's cgroup with the pod's limits.
        if rec.created_cgroup {
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
            self.cgroups.create(&parent, &pod_values)?;
        }

        // The namespaces the pod owns, pinned with no process to hold them.
        let ns_dir = self.paths.ns_dir(sid);
        let want = PodNamespaces {
            net: !cfg.host_network,
            ipc: !cfg.host_ipc,
            uts: !cfg.host_network,
            hostname: cfg.hostname.clone(),
            sysctls: cfg.sysctls.clone(),
        };
        let t0 = Instant::now();
        let pinned = namespaces::create_pinned(&ns_dir, &want)?;
        let t_ns = t0.elapsed();

        // CNI ADD on the pinned netns runs while the shim starts (both
        // take tens of milliseconds and need nothing from each other).
        let (added, started) = std::thread::scope(|s| {
            let add = self.pod_network(cfg).map(|net| {
                let a = self.attachment(sid, cfg);
                s.spawn(move || {
                    let t0 = Instant::now();
                    let r = net.attach(&a);
                    tracing::debug!(sandbox = %a.sandbox_id, elapsed = ?t0.elapsed(), ok = r.is_ok(), "CNI ADD");
                    r
                })
            });
            // The pod's /etc files, first without the pod's IP (written
            // in place once ADD gave it: containers bind-mount the files).
            let started = self
                .start_shim(sid, cfg, &parent, pinned)
                .and_then(|()| self.write_etc_files(sid, cfg, None))
                .map(|()| {
                    let t_shim = t0.elapsed();
                    let e = early(sid);
                    tracing::debug!(sandbox = %sid, ?t_ns, ?t_shim, early = ?t0.elapsed(), "sandbox made");
                    e
                });
            let added = add.map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(peapod_net::NetError::Exec {
                        plugin: String::new(),
                        network: String::new(),
                        command: "ADD",
                        message: "the CNI thread panicked".into(),
                    })
                })
            });
            (added, started)
        });
        match added {
            Some(Ok(st)) => {
                rec.network = Some(st);
                self.write_sandbox_record(&rec)?;
                if let Some(e) = &self.opts.egress {
                    e.attached(sid);
                }
            }
            Some(Err(e)) => {
                // attach ran DEL already: nothing stays allocated.
                rec.network_released = true;
                self.write_sandbox_record(&rec)?;
                return Err(e.into());
            }
            None => {}
        }
        let early = started?;
        if let Some(ip) = rec.network.as_ref().and_then(|n| n.ip()) {
            self.write_etc_files(sid, cfg, Some(ip))?;
        }
        if !cfg.log_directory.as_os_str().is_empty() {
            std::fs::create_dir_all(&cfg.log_directory)
                .map_err(RuntimeError::io(&cfg.log_directory))?;
        }
        rec.finished = true;
        self.write_sandbox_record(&rec)?;
        Ok(early)
    }

    /// The pod's `hosts`, `hostname` and `resolv.conf` (rewritten in
    /// place, so containers that bind-mount them see the new content).
    fn write_etc_files(
        &self,
        sid: &str,
        cfg: &SandboxConfig,
        pod_ip: Option<&str>,
    ) -> Result<(), RuntimeError> {
        etc_files::write(
            &self.paths.etc_dir(sid),
            &etc_files::EtcFiles {
                hostname: &cfg.hostname,
                fqdn: cfg.fqdn.as_deref(),
                host_network: cfg.host_network,
                pod_ip,
                dns: cfg.dns.as_ref(),
                host_aliases: &cfg.host_aliases,
            },
        )
    }

    /// The shim (and the infra process with its pinned pid namespace),
    /// and the pod's /dev/shm.
    fn start_shim(
        &self,
        sid: &str,
        cfg: &SandboxConfig,
        parent: &str,
        pinned: Vec<PathBuf>,
    ) -> Result<(), RuntimeError> {
        let state_dir = self.paths.sandbox_state(sid);
        // The infra process only for a shared pid namespace: PID 1 there.
        let infra = if cfg.share_process_namespace && !cfg.host_pid {
            let infra_cg = crate::paths::container_cgroup(parent, sid);
            // The pause process only waits: the least cpu weight.
            self.cgroups.create(
                &infra_cg,
                &CgroupValues {
                    cpu_shares: Some(crate::cgroups::resources::MIN_SHARES),
                    ..Default::default()
                },
            )?;
            Some(peapod_shim::InfraConfig {
                join: pinned,
                cgroup_procs: self.cgroups.procs_files(&infra_cg),
            })
        } else {
            None
        };
        let has_infra = infra.is_some();
        let shim_cfg = peapod_shim::SandboxConfig {
            id: sid.to_string(),
            infra,
            shim_cgroup_procs: self.cgroups.procs_files(&self.paths.shims_cgroup()),
            container_root: self.paths.container_root(sid),
            events_socket: Some(self.paths.events_socket()),
        };
        let shim_json = state_dir.join(peapod_shim::server::CONFIG_NAME);
        crate::write_json_atomic(&shim_json, &shim_cfg)?;
        self.spawn_shim(sid)?;
        let state = self.wait_for_shim(sid)?;
        if has_infra {
            let pid = state.infra_pid.ok_or_else(|| RuntimeError::Sandbox {
                uid: sid.into(),
                message: "the shim started no infra process".into(),
            })?;
            // Pin the pod's pid namespace too: containers join it by path.
            let target = self.paths.ns_dir(sid).join("pid");
            namespaces::pin(
                std::path::Path::new(&format!("/proc/{pid}/ns/pid")),
                &target,
            )?;
        }
        if !cfg.host_ipc {
            mounts::mount_shm(&self.paths.shm_dir(sid), mounts::SHM_SIZE)?;
        }
        Ok(())
    }

    /// Start `peapod-shim shim`, stdio to its log file. The shim detaches
    /// itself (new session, then a fork whose parent exits at once), so
    /// the daemon reaps only that short-lived parent and keeps no thread
    /// or child per pod. Spawning with no `pre_exec` lets std use
    /// posix_spawn (vfork semantics) instead of fork: a fork copies the
    /// page tables of the whole multi-threaded daemon and shoots down
    /// TLBs on every core, which showed as the daemon's top kernel cost
    /// when 200 pods started at once.
    fn spawn_shim(&self, sid: &str) -> Result<(), RuntimeError> {
        let dir = self.paths.sandbox_state(sid);
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
        let mut child = cmd.spawn().map_err(RuntimeError::io(&self.opts.exe))?;
        let _ = child.wait();
        Ok(())
    }

    fn wait_for_shim(&self, sid: &str) -> Result<peapod_shim::ShimState, RuntimeError> {
        let start = Instant::now();
        let client = self.shim(sid);
        loop {
            match client.state() {
                Ok(s) => return Ok(s),
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    let log =
                        std::fs::read_to_string(self.paths.sandbox_state(sid).join("shim.log"))
                            .unwrap_or_default();
                    return Err(RuntimeError::Sandbox {
                        uid: sid.into(),
                        message: format!("shim did not come up: {e}; shim log: {}", log.trim()),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
}
