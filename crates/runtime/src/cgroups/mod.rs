//! Pod and shim cgroups on cgroup v1 and v2, detected at run time.
//!
//! The runtime creates the pod cgroup (`<parent>/pod<uid>`) with the pod's
//! limits, a child for the infra process and a cgroup per shim; each
//! container's own child cgroup is created by libcontainer from the OCI
//! spec's `cgroupsPath` and resources, which [`resources`] computes.
//!
//! youki's `libcgroups` (the crate libcontainer itself drives) does the
//! cgroup work proper: detecting the layout, writing limits
//! ([`CgroupManager::apply`]), reading usage ([`CgroupManager::stats`]),
//! freezing and removing a cgroup. What stays here, and why:
//! - creating a cgroup: libcgroups creates one only as a side effect of
//!   `add_task(pid)`, but the pod, infra and shim cgroups must exist, with
//!   their limits, before any process is in them (the shim writes the
//!   `cgroup.procs` files this module names, after its fork);
//! - a cgroup's subtree: libcgroups removes and lists one cgroup, so the
//!   tree below is walked here, deepest first;
//! - listing pids ([`Cgroups::all_pids`]): libcgroups' `get_all_pids` reads
//!   only the v1 devices hierarchy and fails as a whole when a child cgroup
//!   goes away during the walk, which a kill loop would take for "empty";
//! - on v2, usage when libcgroups' `stats` fails as a whole (a missing
//!   `*.pressure` file with `psi=0`, or io/hugetlb not enabled): the four
//!   numbers CRI needs are then read on their own (`v2_usage_fallback`);
//! - the OOM counter file and the raw limit files `inspect` shows.
//!
//! On v1, peapod's own cgroups (pod, infra, shim) are made in every
//! hierarchy libcgroups manages, as libcontainer makes a container's:
//! libcgroups' `apply` and `stats` visit each of them.

pub mod resources;

use libcgroups::common::{
    AnyCgroupManager, CgroupManager, CgroupSetup, ControllerOpt, FreezerState,
};
use libcgroups::stats::Stats;
use resources::CgroupValues;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The mount point of the cgroup file systems.
pub const CGROUP_ROOT: &str = libcgroups::common::DEFAULT_CGROUP_ROOT;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup layout: {0}")]
    Setup(#[from] libcgroups::common::GetCgroupSetupError),
    #[error("cgroup v1 mount points: {0}")]
    MountPoints(#[from] libcgroups::v1::util::V1MountPointError),
    #[error("no cgroup v1 controllers mounted under {CGROUP_ROOT}")]
    NoControllers,
    #[error("cgroup {rel}: {source}")]
    Manager {
        rel: String,
        source: libcgroups::common::AnyManagerError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// One hierarchy per controller: (controller, mount point), for every
    /// controller libcgroups manages that is mounted, sorted by name.
    /// Controllers mounted together share a mount point.
    V1 {
        hierarchies: Vec<(String, PathBuf)>,
        managers: ManagerCache,
    },
    /// The unified hierarchy at `root`.
    V2 { root: PathBuf },
}

impl Cgroups {
    /// Detect the host's layout the way libcontainer does, so the pod's
    /// cgroups and its containers' agree: cgroup2 at /sys/fs/cgroup is v2;
    /// a tmpfs there is v1, also on a hybrid host whose extra cgroup2 mount
    /// at /sys/fs/cgroup/unified carries no controllers
    /// (`libcgroups::common::get_cgroup_setup`).
    pub fn detect() -> Result<Self, CgroupError> {
        match libcgroups::common::get_cgroup_setup()? {
            CgroupSetup::Unified => Ok(Cgroups::V2 {
                root: PathBuf::from(CGROUP_ROOT),
            }),
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                let mut hierarchies: Vec<(String, PathBuf)> =
                    libcgroups::v1::util::list_supported_mount_points()?
                        .into_iter()
                        .map(|(c, p)| (c.to_string(), p))
                        .collect();
                if hierarchies.is_empty() {
                    return Err(CgroupError::NoControllers);
                }
                hierarchies.sort();
                Ok(Cgroups::V1 {
                    hierarchies,
                    managers: ManagerCache::default(),
                })
            }
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Cgroups::V1 { .. } => 1,
            Cgroups::V2 { .. } => 2,
        }
    }

    /// Directories of cgroup `rel`: one per v1 hierarchy (controllers
    /// mounted together listed once), or one.
    pub fn dirs(&self, rel: &str) -> Vec<(String, PathBuf)> {
        let rel = rel.trim_start_matches('/');
        match self {
            Cgroups::V1 { hierarchies, .. } => {
                let mut out: Vec<(String, PathBuf)> = Vec::new();
                for (c, mount) in hierarchies {
                    let dir = mount.join(rel);
                    if !out.iter().any(|(_, d)| *d == dir) {
                        out.push((c.clone(), dir));
                    }
                }
                out
            }
            Cgroups::V2 { root } => vec![("unified".into(), root.join(rel))],
        }
    }

    /// On v1, cgroup `rel`'s directory in each hierarchy by the
    /// hierarchy's name under the cgroup root (`memory`, `cpu,cpuacct`);
    /// empty on v2.
    pub fn v1_dirs_by_hierarchy(&self, rel: &str) -> Vec<(String, PathBuf)> {
        if self.version() != 1 {
            return Vec::new();
        }
        self.dirs(rel)
            .into_iter()
            .filter_map(|(_, dir)| {
                let mount = strip_rel(&dir, rel);
                let name = mount.file_name()?.to_str()?.to_string();
                Some((name, dir))
            })
            .collect()
    }

    /// libcgroups' manager of cgroup `rel`. It owns nothing: building one
    /// only computes paths (v1: from /proc/self/mountinfo, kept in
    /// [`ManagerCache`]).
    fn manager(&self, rel: &str) -> Result<Arc<AnyCgroupManager>, CgroupError> {
        let rel = rel.trim_matches('/');
        let err = |source: libcgroups::common::AnyManagerError| CgroupError::Manager {
            rel: rel.to_string(),
            source,
        };
        match self {
            Cgroups::V1 { managers, .. } => managers.get_or_make(rel, || {
                libcgroups::v1::manager::Manager::new(Path::new(rel))
                    .map(|m| m.any())
                    .map_err(|e| err(e.into()))
            }),
            Cgroups::V2 { root } => {
                libcgroups::v2::manager::Manager::new(root.clone(), PathBuf::from(rel))
                    .map(|m| Arc::new(m.any()))
                    .map_err(|e| err(e.into()))
            }
        }
    }

    /// Create cgroup `rel` (and missing parents) and write `values`.
    ///
    /// On v1 the cgroup is made in every hierarchy libcgroups manages, as
    /// libcontainer does for a container: libcgroups' `apply` and `stats`
    /// expect each of them (the devices and blkio ones too), and the
    /// freezer one lets [`Cgroups::kill`] freeze the cgroup first.
    pub fn create(&self, rel: &str, values: &CgroupValues) -> Result<(), CgroupError> {
        match self {
            Cgroups::V1 { .. } => {
                for (ctrl, dir) in self.dirs(rel) {
                    if ctrl == "cpuset" {
                        // The hierarchy's mount point: dir minus rel.
                        let mount = strip_rel(&dir, rel);
                        create_cpuset_chain(&mount, rel)?;
                    } else {
                        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    }
                }
            }
            Cgroups::V2 { root } => {
                // Enable the controllers libcgroups manages on every
                // ancestor (one at a time: the kernel takes a list all or
                // nothing), as libcgroups does when it creates a cgroup.
                let mut cur = root.clone();
                for part in rel
                    .trim_start_matches('/')
                    .split('/')
                    .filter(|p| !p.is_empty())
                {
                    enable_v2_controllers(&cur);
                    cur = cur.join(part);
                    if !cur.exists() {
                        std::fs::create_dir(&cur).map_err(io(&cur))?;
                    }
                }
            }
        }
        self.write_values(rel, values)
    }

    /// Whether cgroup `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.dirs(rel).iter().any(|(_, d)| d.exists())
    }

    /// Write `values` to an existing cgroup (pod limits, and
    /// UpdateContainerResources) through libcgroups' `apply`. On v2
    /// libcgroups maps cpu shares to `cpu.weight` as runc does (and as
    /// libcontainer does for the containers' own cgroups).
    pub fn write_values(&self, rel: &str, values: &CgroupValues) -> Result<(), CgroupError> {
        if *values == CgroupValues::default() {
            return Ok(());
        }
        let resources = values.to_linux_resources();
        let opt = ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager(rel)?
            .apply(&opt)
            .map_err(|source| CgroupError::Manager {
                rel: rel.to_string(),
                source,
            })
    }

    /// Usage of cgroup `rel` from libcgroups' stats: cumulative cpu time,
    /// memory usage and working set (usage minus inactive file pages, as
    /// kubelet and cAdvisor compute it) and the number of pids. On v1 a
    /// cgroup whose stats cannot be read (gone, or missing from a
    /// hierarchy) gives only the timestamp; on v2 see `v2_usage_fallback`.
    pub fn usage(&self, rel: &str) -> crate::types::CgroupUsage {
        let timestamp_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let stats = self.manager(rel).and_then(|m| {
            m.stats().map_err(|source| CgroupError::Manager {
                rel: rel.to_string(),
                source,
            })
        });
        match (stats, self) {
            (Ok(stats), _) => self.usage_from_stats(&stats, timestamp_ns),
            (Err(e), Cgroups::V2 { root }) => {
                tracing::debug!(error = %e, "cgroup stats; reading the usage files");
                v2_usage_fallback(&root.join(rel.trim_start_matches('/')), timestamp_ns)
            }
            (Err(e), Cgroups::V1 { .. }) => {
                tracing::debug!(error = %e, "cgroup stats");
                crate::types::CgroupUsage {
                    timestamp_ns,
                    ..Default::default()
                }
            }
        }
    }

    /// The runtime's usage from libcgroups' stats. libcgroups reports v1
    /// cpu time in nanoseconds (`cpuacct.usage`) and v2 in microseconds
    /// (`cpu.stat` `usage_usec`); v1's working set takes the hierarchical
    /// `total_inactive_file`, v2's `inactive_file` (cAdvisor's choice). A
    /// v1 controller that is not mounted gives no value, not a zero.
    pub fn usage_from_stats(&self, stats: &Stats, timestamp_ns: i64) -> crate::types::CgroupUsage {
        let (cpu_ns, inactive_key) = match self {
            Cgroups::V1 { .. } => (stats.cpu.usage.usage_total, "total_inactive_file"),
            Cgroups::V2 { .. } => (
                stats.cpu.usage.usage_total.saturating_mul(1000),
                "inactive_file",
            ),
        };
        let has = |c: &str| match self {
            Cgroups::V1 { hierarchies, .. } => hierarchies.iter().any(|(h, _)| h == c),
            Cgroups::V2 { .. } => true,
        };
        let memory = stats.memory.memory.usage;
        let inactive = stats.memory.stats.get(inactive_key).copied().unwrap_or(0);
        crate::types::CgroupUsage {
            timestamp_ns,
            cpu_usage_ns: has("cpuacct").then_some(cpu_ns),
            memory_usage: has("memory").then_some(memory),
            memory_working_set: has("memory").then_some(memory.saturating_sub(inactive)),
            pids: has("pids").then_some(stats.pids.current),
        }
    }

    /// `cgroup.procs` files of cgroup `rel`, to move a process in.
    pub fn procs_files(&self, rel: &str) -> Vec<PathBuf> {
        self.dirs(rel)
            .into_iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// The file holding the OOM kill counter of cgroup `rel`.
    pub fn oom_events_file(&self, rel: &str) -> Option<PathBuf> {
        self.dirs(rel)
            .into_iter()
            .find_map(|(c, d)| match c.as_str() {
                "memory" => Some(d.join("memory.oom_control")),
                "unified" => Some(d.join("memory.events")),
                _ => None,
            })
    }

    /// Limit files of cgroup `rel` and their values, for `inspect`.
    pub fn read_limits(&self, rel: &str) -> Vec<(String, String)> {
        let files: &[&str] = match self {
            Cgroups::V1 { .. } => &[
                "cpu.shares",
                "cpu.cfs_quota_us",
                "cpu.cfs_period_us",
                "memory.limit_in_bytes",
                "pids.max",
            ],
            Cgroups::V2 { .. } => &["cpu.weight", "cpu.max", "memory.max", "pids.max"],
        };
        let mut out = Vec::new();
        for (_, dir) in self.dirs(rel) {
            for f in files {
                if let Ok(v) = std::fs::read_to_string(dir.join(f)) {
                    out.push((f.to_string(), v.trim().to_string()));
                }
            }
        }
        out
    }

    /// Remove cgroup `rel` and everything under it, deepest first, each
    /// with libcgroups' `remove` (which kills what is left in it, then
    /// removes it from every hierarchy). libcgroups retries a busy rmdir
    /// for about 100 ms; a cgroup whose last tasks are still exiting gets
    /// more tries here, up to a second.
    pub fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let rel = rel.trim_matches('/');
        let mut tree = vec![rel.to_string()];
        for (_, dir) in self.dirs(rel) {
            descendants(&dir, rel, &mut tree);
        }
        tree.sort_by(|a, b| {
            b.matches('/')
                .count()
                .cmp(&a.matches('/').count())
                .then(a.cmp(b))
        });
        tree.dedup();
        for cg in &tree {
            let manager = self.manager(cg)?;
            let start = Instant::now();
            loop {
                match manager.remove() {
                    Ok(()) => break,
                    Err(_) if start.elapsed() < Duration::from_secs(1) => {}
                    Err(source) => {
                        return Err(CgroupError::Manager {
                            rel: cg.clone(),
                            source,
                        })
                    }
                }
            }
        }
        if let Cgroups::V1 { managers, .. } = self {
            managers.forget(rel);
        }
        Ok(())
    }

    /// SIGKILL everything in cgroup `rel` and below, and wait until it is
    /// empty (`timeout` at most). Membership of the cgroup is the proof of
    /// identity: no pid is taken from a file. The cgroup is frozen first
    /// (libcgroups' `freeze`), so nothing in it can fork between the
    /// listing and the kill; thawed, the killed tasks die. Without a
    /// freezer (a v1 cgroup made before peapod created cgroups in every
    /// hierarchy) the kill is repeated until the cgroup is empty.
    pub fn kill(&self, rel: &str, timeout: Duration) {
        if self.all_pids(rel).is_empty() {
            return;
        }
        let kill_all = |pids: Vec<i32>| {
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        };
        if let Ok(m) = self.manager(rel) {
            match m.freeze(FreezerState::Frozen) {
                Ok(()) => {
                    kill_all(self.all_pids(rel));
                    if let Err(e) = m.freeze(FreezerState::Thawed) {
                        tracing::warn!(cgroup = rel, error = %e, "thawing a killed cgroup");
                    }
                }
                Err(e) => {
                    tracing::debug!(cgroup = rel, error = %e, "freezing; killing unfrozen");
                    let _ = m.freeze(FreezerState::Thawed);
                }
            }
        }
        let start = Instant::now();
        loop {
            let pids = self.all_pids(rel);
            if pids.is_empty() || start.elapsed() > timeout {
                return;
            }
            kill_all(pids);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every process in cgroup `rel` and its descendants.
    pub fn all_pids(&self, rel: &str) -> Vec<i32> {
        fn walk(dir: &Path, out: &mut Vec<i32>) {
            if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (_, d) in self.dirs(rel) {
            walk(&d, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// libcgroups' v2 `stats` fails as a whole when any file it reads is
/// missing: the `*.pressure` files on a kernel booted with `psi=0` (the
/// default of some distributions), `io.stat` or the hugetlb files where
/// those controllers are not enabled (a cgroup parent kubelet made). Then
/// the four numbers CRI needs are read from the files libcgroups reads
/// them from, each on its own.
fn v2_usage_fallback(dir: &Path, timestamp_ns: i64) -> crate::types::CgroupUsage {
    use libcgroups::stats::{parse_single_value, pid_stats};
    let field = |file: &str, key: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()?
            .lines()
            .find_map(|l| match l.split_once(' ') {
                Some((k, v)) if k == key => v.trim().parse::<u64>().ok(),
                _ => None,
            })
    };
    let memory = parse_single_value(&dir.join("memory.current")).ok();
    let inactive = field("memory.stat", "inactive_file").unwrap_or(0);
    crate::types::CgroupUsage {
        timestamp_ns,
        cpu_usage_ns: field("cpu.stat", "usage_usec").map(|us| us.saturating_mul(1000)),
        memory_usage: memory,
        memory_working_set: memory.map(|m| m.saturating_sub(inactive)),
        pids: pid_stats(dir).ok().map(|p| p.current),
    }
}

/// libcgroups' v1 managers by cgroup. Building one reads
/// /proc/self/mountinfo and /proc/self/cgroup once per controller: about
/// 0.7 ms here, six times the stats call it serves (0.12 ms). The paths it
/// computes stay right while the mounts do; a removed cgroup's managers
/// are forgotten, and the cache is emptied past [`ManagerCache::MAX`].
#[derive(Clone, Default)]
pub struct ManagerCache(Arc<Mutex<HashMap<String, Arc<AnyCgroupManager>>>>);

impl ManagerCache {
    const MAX: usize = 4096;

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AnyCgroupManager>>> {
        // A panic elsewhere leaves the map as it was: still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_or_make(
        &self,
        rel: &str,
        make: impl FnOnce() -> Result<AnyCgroupManager, CgroupError>,
    ) -> Result<Arc<AnyCgroupManager>, CgroupError> {
        if let Some(m) = self.map().get(rel) {
            return Ok(m.clone());
        }
        let m = Arc::new(make()?);
        let mut map = self.map();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(rel.to_string(), m.clone());
        Ok(m)
    }

    /// Forget cgroup `rel` and those below it.
    fn forget(&self, rel: &str) {
        let below = format!("{rel}/");
        self.map().retain(|k, _| k != rel && !k.starts_with(&below));
    }

    fn len(&self) -> usize {
        self.map().len()
    }
}

impl std::fmt::Debug for ManagerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManagerCache({} managers)", self.len())
    }
}

/// A cache is no part of what a layout is.
impl PartialEq for ManagerCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ManagerCache {}

/// `dir` without its trailing `rel` components: the hierarchy's mount point.
fn strip_rel(dir: &Path, rel: &str) -> PathBuf {
    let depth = rel
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .count();
    let mut mount = dir.to_path_buf();
    for _ in 0..depth {
        mount.pop();
    }
    mount
}

/// The cgroups below `dir` (cgroup `rel`), as paths relative to the
/// hierarchy, into `out`.
fn descendants(dir: &Path, rel: &str, out: &mut Vec<String>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let child = format!("{rel}/{}", e.file_name().to_string_lossy());
                descendants(&e.path(), &child, out);
                out.push(child);
            }
        }
    }
}

/// Controllers libcgroups' v2 manager reads and writes.
const V2_CONTROLLERS: &[&str] = &["cpuset", "cpu", "io", "memory", "hugetlb", "pids"];

fn enable_v2_controllers(dir: &Path) {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in V2_CONTROLLERS {
        if available.split_whitespace().any(|a| a == *c) {
            let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

/// cpuset v1 cgroups start with empty `cpus`/`mems`, which refuses tasks:
/// copy each new level's values from its parent (libcgroups does the same,
/// but only inside `add_task`).
fn create_cpuset_chain(root: &Path, rel: &str) -> Result<(), CgroupError> {
    let mut cur = root.to_path_buf();
    for part in rel
        .trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
    {
        let parent = cur.clone();
        cur = cur.join(part);
        if !cur.exists() {
            std::fs::create_dir(&cur).map_err(io(&cur))?;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs =
                    std::fs::read_to_string(parent.join(f)).map_err(io(&parent.join(f)))?;
                let path = cur.join(f);
                std::fs::write(&path, theirs.trim()).map_err(io(&path))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::resources::*;
    use super::*;

    /// A fake cgroup2 tree: plain directories with the interface files the
    /// kernel would provide (libcgroups writes only to existing files).
    fn fake_v2() -> (tempfile::TempDir, Cgroups) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids",
        )
        .unwrap();
        std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        let root = dir.path().to_path_buf();
        (dir, Cgroups::V2 { root })
    }

    /// Cgroup `rel` of a fake v2 tree with its interface files.
    fn fake_v2_cgroup(root: &Path, rel: &str) -> PathBuf {
        let dir = root.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, v) in [
            ("cgroup.procs", ""),
            ("cgroup.controllers", "cpu memory pids"),
            // The kernel replaces a value on write; libcgroups opens
            // without truncating, so the fake files start empty.
            ("cpu.weight", ""),
            ("cpu.max", ""),
            ("memory.max", ""),
            ("pids.max", ""),
        ] {
            std::fs::write(dir.join(f), v).unwrap();
        }
        dir
    }

    #[test]
    fn v2_pod_cgroup_values_through_libcgroups() {
        let (dir, cg) = fake_v2();
        let pod = fake_v2_cgroup(dir.path(), "peapod/podabc");
        let v = CgroupValues {
            cpu_shares: Some(milli_to_shares(500)),
            cpu_quota: Some(milli_to_quota(500)),
            cpu_period: Some(QUOTA_PERIOD),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        };
        cg.create("peapod/podabc", &v).unwrap();
        let read = |f: &str| std::fs::read_to_string(pod.join(f)).unwrap();
        // runc's (and libcgroups') quadratic map of 512 shares.
        assert_eq!(read("cpu.weight"), "59");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "100");
        // Controllers were enabled on the ancestors, one per write.
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
            "+pids"
        );
        assert_eq!(
            cg.procs_files("peapod/podabc"),
            vec![pod.join("cgroup.procs")]
        );
        assert_eq!(
            cg.oom_events_file("peapod/podabc"),
            Some(pod.join("memory.events"))
        );
        let limits = cg.read_limits("peapod/podabc");
        assert!(limits.contains(&("memory.max".into(), (64u64 << 20).to_string())));
        assert!(limits.contains(&("cpu.weight".into(), "59".into())));
        assert!(cg.exists("peapod/podabc") && !cg.exists("peapod/other"));
    }

    #[test]
    fn v2_weight_from_shares_is_libcgroups_map() {
        // The least, kubelet's 1 cpu, and the most shares: the weights the
        // kernel's range ends and its default.
        let (dir, cg) = fake_v2();
        let pod = fake_v2_cgroup(dir.path(), "p");
        for (shares, weight) in [(2, "1"), (1024, "100"), (262_144, "10000")] {
            std::fs::write(pod.join("cpu.weight"), "").unwrap();
            cg.write_values(
                "p",
                &CgroupValues {
                    cpu_shares: Some(shares),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(
                std::fs::read_to_string(pod.join("cpu.weight")).unwrap(),
                weight,
                "{shares} shares"
            );
        }
    }

    #[test]
    fn v2_usage_from_libcgroups_stats() {
        let (dir, cg) = fake_v2();
        let c = fake_v2_cgroup(dir.path(), "p/c");
        let psi = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        for (f, v) in [
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
            ),
            ("cpu.pressure", psi),
            ("memory.current", "10000"),
            ("memory.max", "max"),
            ("pids.max", "max"),
            ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
            ("memory.swap.current", "0"),
            ("memory.swap.max", "max"),
            ("memory.swap.events", "max 0\nfail 0\n"),
            ("memory.stat", "anon 6000\nfile 4000\ninactive_file 3000\n"),
            ("memory.pressure", psi),
            ("io.pressure", psi),
            ("pids.current", "3"),
            ("io.stat", ""),
        ] {
            std::fs::write(c.join(f), v).unwrap();
        }
        for size in libcgroups::stats::supported_page_sizes().unwrap_or_default() {
            std::fs::write(c.join(format!("hugetlb.{size}.events")), "max 0\n").unwrap();
            std::fs::write(c.join(format!("hugetlb.{size}.current")), "0").unwrap();
        }
        if let Err(e) = cg.manager("p/c").unwrap().stats() {
            panic!("{e}");
        }
        let u = cg.usage("p/c");
        assert_eq!(u.cpu_usage_ns, Some(1_500_000), "{u:?}");
        assert_eq!(u.memory_usage, Some(10_000));
        assert_eq!(u.memory_working_set, Some(7_000));
        assert_eq!(u.pids, Some(3));
        assert!(u.timestamp_ns > 0);
        // Without PSI (psi=0) libcgroups' stats fail; the same numbers.
        for f in ["cpu.pressure", "memory.pressure", "io.pressure"] {
            std::fs::remove_file(c.join(f)).unwrap();
        }
        assert!(cg.manager("p/c").unwrap().stats().is_err());
        let fallback = cg.usage("p/c");
        assert_eq!(
            fallback,
            crate::types::CgroupUsage {
                timestamp_ns: fallback.timestamp_ns,
                ..u
            }
        );
        // No such cgroup: only the time of the reading.
        let none = cg.usage("p/gone");
        assert_eq!((none.cpu_usage_ns, none.pids), (None, None));
    }

    #[test]
    fn v1_usage_from_stats_like_kubelet() {
        let mut stats = Stats::default();
        stats.cpu.usage.usage_total = 42_000;
        stats.memory.memory.usage = 10_000;
        stats
            .memory
            .stats
            .insert("total_inactive_file".into(), 4_000);
        stats.memory.stats.insert("inactive_file".into(), 1_000);
        stats.pids.current = 2;
        let all = Cgroups::V1 {
            hierarchies: ["cpu", "cpuacct", "memory", "pids"]
                .iter()
                .map(|c| (c.to_string(), PathBuf::from("/x").join(c)))
                .collect(),
            managers: ManagerCache::default(),
        };
        let u = all.usage_from_stats(&stats, 7);
        assert_eq!(
            u,
            crate::types::CgroupUsage {
                timestamp_ns: 7,
                cpu_usage_ns: Some(42_000),
                memory_working_set: Some(6_000),
                memory_usage: Some(10_000),
                pids: Some(2),
            }
        );
        // Inactive file pages above usage (they are read apart): zero.
        stats
            .memory
            .stats
            .insert("total_inactive_file".into(), 20_000);
        assert_eq!(all.usage_from_stats(&stats, 7).memory_working_set, Some(0));
        // An unmounted controller gives no value rather than a zero.
        let no_pids = Cgroups::V1 {
            hierarchies: vec![("memory".into(), "/x/memory".into())],
            managers: ManagerCache::default(),
        };
        let u = no_pids.usage_from_stats(&stats, 7);
        assert_eq!((u.pids, u.cpu_usage_ns), (None, None));
        assert_eq!(u.memory_usage, Some(10_000));
    }

    #[test]
    fn manager_cache_reuses_and_forgets_subtrees() {
        let cache = ManagerCache::default();
        let made = std::cell::Cell::new(0);
        let get = |rel: &str| {
            cache
                .get_or_make(rel, || {
                    made.set(made.get() + 1);
                    Ok(
                        libcgroups::v2::manager::Manager::new("/x".into(), rel.into())
                            .unwrap()
                            .any(),
                    )
                })
                .unwrap()
        };
        let a = get("p/a");
        assert!(Arc::ptr_eq(&a, &get("p/a")));
        get("p/a/c");
        get("p");
        get("p/ab");
        assert_eq!((made.get(), cache.len()), (4, 4));
        cache.forget("p/a");
        // p/ab is a sibling, not below p/a.
        assert_eq!(cache.len(), 2);
        get("p/a");
        assert_eq!(made.get(), 5);
        for i in 0..ManagerCache::MAX {
            get(&format!("q/{i}"));
        }
        assert!(cache.len() <= ManagerCache::MAX);
    }

    #[test]
    fn v1_layout_paths() {
        let dir = tempfile::tempdir().unwrap();
        let m = |c: &str| dir.path().join(c);
        for c in ["cpu,cpuacct", "memory", "pids", "cpuset"] {
            std::fs::create_dir_all(m(c)).unwrap();
        }
        std::fs::write(m("cpuset").join("cpuset.cpus"), "0-1").unwrap();
        std::fs::write(m("cpuset").join("cpuset.mems"), "0").unwrap();
        let cg = Cgroups::V1 {
            hierarchies: vec![
                ("cpu".into(), m("cpu,cpuacct")),
                ("cpuacct".into(), m("cpu,cpuacct")),
                ("cpuset".into(), m("cpuset")),
                ("memory".into(), m("memory")),
                ("pids".into(), m("pids")),
            ],
            managers: ManagerCache::default(),
        };
        assert_eq!(cg.version(), 1);
        // Co-mounted controllers: one directory.
        assert_eq!(
            cg.procs_files("/p/x"),
            vec![
                m("cpu,cpuacct").join("p/x/cgroup.procs"),
                m("cpuset").join("p/x/cgroup.procs"),
                m("memory").join("p/x/cgroup.procs"),
                m("pids").join("p/x/cgroup.procs"),
            ]
        );
        // No values: directories only, nothing for libcgroups to write.
        cg.create("p/x", &CgroupValues::default()).unwrap();
        assert!(cg.exists("p/x"));
        for c in ["cpu,cpuacct", "memory", "pids"] {
            assert!(m(c).join("p/x").is_dir(), "{c}");
        }
        // cpuset levels get their parent's cpus and mems.
        for level in ["p", "p/x"] {
            let d = m("cpuset").join(level);
            assert_eq!(
                std::fs::read_to_string(d.join("cpuset.cpus")).unwrap(),
                "0-1"
            );
            assert_eq!(std::fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
        }
        assert_eq!(
            cg.oom_events_file("p/x"),
            Some(m("memory").join("p/x/memory.oom_control"))
        );
        std::fs::write(m("pids").join("p/x/cgroup.procs"), "12\n7\n").unwrap();
        std::fs::create_dir(m("memory").join("p/x/c")).unwrap();
        std::fs::write(m("memory").join("p/x/c/cgroup.procs"), "7\n30\n").unwrap();
        assert_eq!(cg.all_pids("p/x"), vec![7, 12, 30]);
        let mut tree = vec![];
        descendants(&m("memory").join("p"), "p", &mut tree);
        tree.sort();
        assert_eq!(tree, vec!["p/x".to_string(), "p/x/c".to_string()]);
        assert_eq!(strip_rel(&m("memory").join("p/x"), "/p/x/"), m("memory"));
    }

    /// The host's own cgroups, as root: a cgroup made with limits, a
    /// process in it, its stats, the kill and the removal, on whichever
    /// version the host has. Skipped when not root.
    #[test]
    fn host_cgroup_lifecycle() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let cg = Cgroups::detect().unwrap();
        // This machine's hybrid layout must be v1, as libcontainer sees it.
        let hybrid = nix::sys::statfs::statfs("/sys/fs/cgroup/unified")
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        if hybrid {
            assert_eq!(cg.version(), 1);
        }
        let top = format!("peapod-unit-{}", std::process::id());
        let rel = format!("{top}/pod");
        let v = CgroupValues {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(QUOTA_PERIOD),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        };
        let result = std::panic::catch_unwind(|| {
            cg.create(&rel, &v).unwrap();
            let limits = cg.read_limits(&rel);
            if cg.version() == 1 {
                for (f, want) in [
                    ("cpu.shares", "512"),
                    ("cpu.cfs_quota_us", "50000"),
                    ("cpu.cfs_period_us", "100000"),
                    ("memory.limit_in_bytes", "67108864"),
                    ("pids.max", "100"),
                ] {
                    assert!(limits.contains(&(f.into(), want.into())), "{f}: {limits:?}");
                }
            }
            let mut child = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            for f in cg.procs_files(&rel) {
                std::fs::write(&f, child.id().to_string()).unwrap();
            }
            let u = cg.usage(&rel);
            assert_eq!(u.pids, Some(1), "{u:?}");
            assert!(
                u.memory_usage.is_some() && u.cpu_usage_ns.is_some(),
                "{u:?}"
            );
            assert_eq!(cg.all_pids(&top), vec![child.id() as i32]);
            cg.kill(&top, Duration::from_secs(5));
            assert!(cg.all_pids(&top).is_empty());
            let status = child.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );

            // A shell that forks as fast as it can (up to the pids limit):
            // frozen, killed, thawed, nothing is left, nothing stays frozen.
            let mut forker = std::process::Command::new("sh")
                .args(["-c", "read go; while :; do sleep 30 & done"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            for f in cg.procs_files(&rel) {
                std::fs::write(&f, forker.id().to_string()).unwrap();
            }
            if let Some(stdin) = forker.stdin.as_mut() {
                use std::io::Write;
                stdin.write_all(b"go\n").unwrap();
            }
            let start = Instant::now();
            while cg.all_pids(&top).len() < 20 && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(cg.all_pids(&top).len() >= 20);
            cg.kill(&top, Duration::from_secs(5));
            assert!(cg.all_pids(&top).is_empty());
            forker.wait().unwrap();
            for (c, d) in cg.dirs(&top) {
                if c == "freezer" {
                    let state = std::fs::read_to_string(d.join("freezer.state")).unwrap();
                    assert_eq!(state.trim(), "THAWED");
                }
            }
        });
        let removed = cg.remove(&top);
        assert!(!cg.exists(&top) && !cg.exists(&rel));
        removed.unwrap();
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
