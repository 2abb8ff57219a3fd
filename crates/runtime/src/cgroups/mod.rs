//! Pod and shim cgroups on cgroup v1 and v2, detected at run time.
//!
//! The runtime creates the pod cgroup (`<parent>/pod<uid>`) with the pod's
//! limits, a child for the infra process and a cgroup per shim; each
//! container's own child cgroup is created by libcontainer from the OCI
//! spec's `cgroupsPath` and resources, which [`resources`] computes.

pub mod resources;

use resources::{shares_to_weight, CgroupValues};
use std::path::{Path, PathBuf};

/// v1 controllers peapod manages directly (libcontainer creates the rest
/// for containers).
pub const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids", "cpuset"];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cgroup controllers found under {0}")]
    NoControllers(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// One hierarchy per controller at `<root>/<controller>`.
    V1 {
        root: PathBuf,
        controllers: Vec<String>,
    },
    /// The unified hierarchy at `root`.
    V2 { root: PathBuf },
}

impl Cgroups {
    /// Detect the host's layout: cgroup2 mounted at /sys/fs/cgroup means v2;
    /// otherwise v1 controllers (a hybrid host's extra cgroup2 mount at
    /// /sys/fs/cgroup/unified carries no controllers peapod uses).
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    pub fn detect_at(root: &Path) -> Result<Self, CgroupError> {
        let is_v2 = nix::sys::statfs::statfs(root)
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        if is_v2 {
            return Ok(Cgroups::V2 {
                root: root.to_path_buf(),
            });
        }
        let controllers: Vec<String> = V1_CONTROLLERS
            .iter()
            .filter(|c| root.join(c).join("cgroup.procs").exists())
            .map(|c| c.to_string())
            .collect();
        if controllers.is_empty() {
            return Err(CgroupError::NoControllers(root.to_path_buf()));
        }
        Ok(Cgroups::V1 {
            root: root.to_path_buf(),
            controllers,
        })
    }

    pub fn version(&self) -> u8 {
        match self {
            Cgroups::V1 { .. } => 1,
            Cgroups::V2 { .. } => 2,
        }
    }

    /// Directories of cgroup `rel` (one per v1 controller, or one).
    pub fn dirs(&self, rel: &str) -> Vec<(String, PathBuf)> {
        let rel = rel.trim_start_matches('/');
        match self {
            Cgroups::V1 { root, controllers } => controllers
                .iter()
                .map(|c| (c.clone(), root.join(c).join(rel)))
                .collect(),
            Cgroups::V2 { root } => vec![("unified".into(), root.join(rel))],
        }
    }

    /// Create cgroup `rel` (and missing parents) and write `values`.
    pub fn create(&self, rel: &str, values: &CgroupValues) -> Result<(), CgroupError> {
        match self {
            Cgroups::V1 { root, .. } => {
                for (ctrl, dir) in self.dirs(rel) {
                    if ctrl == "cpuset" {
                        create_cpuset_chain(&root.join("cpuset"), rel)?;
                    } else {
                        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                    }
                }
                self.write_v1(rel, values)
            }
            Cgroups::V2 { root } => {
                // Enable the controllers we use on every ancestor.
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
                self.write_v2(&cur, values)
            }
        }
    }

    fn write_v1(&self, rel: &str, v: &CgroupValues) -> Result<(), CgroupError> {
        for (ctrl, dir) in self.dirs(rel) {
            match ctrl.as_str() {
                "cpu" => {
                    if let Some(s) = v.cpu_shares {
                        write(&dir.join("cpu.shares"), &s.to_string())?;
                    }
                    if let Some(p) = v.cpu_period {
                        write(&dir.join("cpu.cfs_period_us"), &p.to_string())?;
                    }
                    if let Some(q) = v.cpu_quota {
                        write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                    }
                }
                "memory" => {
                    if let Some(m) = v.memory_limit {
                        write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    }
                }
                "pids" => {
                    if let Some(p) = v.pids_limit {
                        write(&dir.join("pids.max"), &p.to_string())?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn write_v2(&self, dir: &Path, v: &CgroupValues) -> Result<(), CgroupError> {
        if let Some(s) = v.cpu_shares {
            write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
        if let Some(q) = v.cpu_quota {
            let period = v.cpu_period.unwrap_or(resources::QUOTA_PERIOD);
            write(&dir.join("cpu.max"), &format!("{q} {period}"))?;
        }
        if let Some(m) = v.memory_limit {
            write(&dir.join("memory.max"), &m.to_string())?;
        }
        if let Some(p) = v.pids_limit {
            write(&dir.join("pids.max"), &p.to_string())?;
        }
        Ok(())
    }

    /// Whether cgroup `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.dirs(rel).iter().any(|(_, d)| d.exists())
    }

    /// Write `values` to an existing cgroup (UpdateContainerResources).
    pub fn write_values(&self, rel: &str, values: &CgroupValues) -> Result<(), CgroupError> {
        match self {
            Cgroups::V1 { .. } => self.write_v1(rel, values),
            Cgroups::V2 { root } => self.write_v2(&root.join(rel.trim_start_matches('/')), values),
        }
    }

    /// Usage of cgroup `rel`: cumulative cpu time, memory working set
    /// (usage minus inactive file pages, as kubelet and cAdvisor compute
    /// it) and the number of pids.
    pub fn usage(&self, rel: &str) -> crate::types::CgroupUsage {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        let num = |p: PathBuf| read(p).and_then(|s| s.trim().parse::<u64>().ok());
        let stat_field = |text: &str, key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
        };
        let mut u = crate::types::CgroupUsage {
            timestamp_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            ..Default::default()
        };
        for (ctrl, dir) in self.dirs(rel) {
            match ctrl.as_str() {
                "cpuacct" => u.cpu_usage_ns = num(dir.join("cpuacct.usage")),
                "cpu" if u.cpu_usage_ns.is_none() => {
                    // cpu and cpuacct are often one hierarchy mounted twice.
                    u.cpu_usage_ns = num(dir.join("cpuacct.usage"));
                }
                "memory" => {
                    u.memory_usage = num(dir.join("memory.usage_in_bytes"));
                    let inactive = read(dir.join("memory.stat"))
                        .and_then(|s| stat_field(&s, "total_inactive_file"))
                        .unwrap_or(0);
                    u.memory_working_set = u.memory_usage.map(|m| m.saturating_sub(inactive));
                }
                "pids" => u.pids = num(dir.join("pids.current")),
                "unified" => {
                    u.cpu_usage_ns = read(dir.join("cpu.stat"))
                        .and_then(|s| stat_field(&s, "usage_usec"))
                        .map(|us| us * 1000);
                    u.memory_usage = num(dir.join("memory.current"));
                    let inactive = read(dir.join("memory.stat"))
                        .and_then(|s| stat_field(&s, "inactive_file"))
                        .unwrap_or(0);
                    u.memory_working_set = u.memory_usage.map(|m| m.saturating_sub(inactive));
                    u.pids = num(dir.join("pids.current"));
                }
                _ => {}
            }
        }
        u
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

    /// Remove cgroup `rel` and everything under it (deepest first). A cgroup
    /// that still has processes stays and is reported.
    /// On v1 this covers every mounted hierarchy, not only the controllers
    /// peapod writes: libcontainer creates container cgroups in all of them.
    pub fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let rel = rel.trim_start_matches('/');
        let dirs: Vec<PathBuf> = match self {
            Cgroups::V1 { root, .. } => std::fs::read_dir(root)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                        .map(|e| e.path().join(rel))
                        .collect()
                })
                .unwrap_or_default(),
            Cgroups::V2 { root } => vec![root.join(rel)],
        };
        let mut first_err = None;
        for dir in dirs {
            if let Err(e) = remove_tree(&dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
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

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io(path))
}

fn enable_v2_controllers(dir: &Path) {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = ["cpu", "memory", "pids"]
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if !wanted.is_empty() {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), wanted.join(" "));
    }
}

/// cpuset v1 cgroups start with empty `cpus`/`mems`, which refuses tasks:
/// copy each new level's values from its parent.
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
                write(&cur.join(f), theirs.trim())?;
            }
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    // rmdir can fail with EBUSY for a moment after the last task exits.
    let mut last = None;
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    match last {
        Some(e) => Err(CgroupError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::resources::*;
    use super::*;

    /// A fake cgroup2 tree: plain directories with the interface files the
    /// kernel would provide.
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

    #[test]
    fn v2_pod_cgroup_values() {
        let (dir, cg) = fake_v2();
        let v = CgroupValues {
            cpu_shares: Some(milli_to_shares(500)),
            cpu_quota: Some(milli_to_quota(500)),
            cpu_period: Some(QUOTA_PERIOD),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        };
        cg.create("peapod/podabc", &v).unwrap();
        let pod = dir.path().join("peapod/podabc");
        assert_eq!(
            std::fs::read_to_string(pod.join("cpu.weight")).unwrap(),
            "20"
        );
        assert_eq!(
            std::fs::read_to_string(pod.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        assert_eq!(
            std::fs::read_to_string(pod.join("memory.max")).unwrap(),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            std::fs::read_to_string(pod.join("pids.max")).unwrap(),
            "100"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
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
        // A fake tree holds regular files, so remove them before the rmdir
        // the kernel would allow.
        for f in ["cpu.weight", "cpu.max", "memory.max", "pids.max"] {
            std::fs::remove_file(pod.join(f)).unwrap();
        }
        cg.remove("peapod/podabc").unwrap();
        assert!(!pod.exists());
    }

    #[test]
    fn v1_layout_paths() {
        let dir = tempfile::tempdir().unwrap();
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(dir.path().join(c)).unwrap();
            std::fs::write(dir.path().join(c).join("cgroup.procs"), "").unwrap();
        }
        let cg = Cgroups::detect_at(dir.path()).unwrap();
        assert_eq!(cg.version(), 1);
        let v = CgroupValues {
            cpu_shares: Some(512),
            memory_limit: Some(1 << 20),
            ..Default::default()
        };
        cg.create("p/x", &v).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cpu/p/x/cpu.shares")).unwrap(),
            "512"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("memory/p/x/memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
        assert_eq!(
            cg.oom_events_file("p/x"),
            Some(dir.path().join("memory/p/x/memory.oom_control"))
        );
    }
}
