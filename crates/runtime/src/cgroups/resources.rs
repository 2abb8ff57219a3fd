//! Cgroup values computed from Kubernetes resources the way kubelet does
//! (`pkg/kubelet/cm`): cpu shares from requests, CFS quota over a 100 ms
//! period from limits, memory limit from limits.

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

/// kubelet's minimum cpu shares (a BestEffort container gets this).
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: u64 = 1024;
/// CFS period kubelet uses: 100 ms.
pub const QUOTA_PERIOD: u64 = 100_000;
/// kubelet's minimum CFS quota: 1 ms.
pub const MIN_QUOTA: i64 = 1000;

/// A container's (or pod's) resources in Kubernetes units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requested {
    /// cpu request in millicores.
    pub cpu_request_milli: Option<i64>,
    /// cpu limit in millicores.
    pub cpu_limit_milli: Option<i64>,
    /// memory limit in bytes.
    pub memory_limit: Option<i64>,
}

/// Values to write into a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupValues {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

impl CgroupValues {
    /// The OCI resources libcgroups' `apply` writes: cpu shares, CFS quota
    /// and period, memory limit, pids limit; nothing else (no devices, no
    /// swap), so a write changes only what the pod or container asked for.
    pub fn to_linux_resources(&self) -> LinuxResources {
        let mut r = LinuxResources::default();
        if self.cpu_shares.is_some() || self.cpu_quota.is_some() || self.cpu_period.is_some() {
            let mut cpu = LinuxCpu::default();
            cpu.set_shares(self.cpu_shares);
            cpu.set_quota(self.cpu_quota);
            cpu.set_period(self.cpu_period);
            r.set_cpu(Some(cpu));
        }
        if let Some(limit) = self.memory_limit {
            let mut memory = LinuxMemory::default();
            memory.set_limit(Some(limit));
            r.set_memory(Some(memory));
        }
        if let Some(limit) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(limit);
            r.set_pids(Some(pids));
        }
        r
    }
}

/// kubelet's `MilliCPUToShares`.
pub fn milli_to_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    let shares = (milli as u64 * SHARES_PER_CPU) / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// kubelet's `MilliCPUToQuota` for a 100 ms period.
pub fn milli_to_quota(milli: i64) -> i64 {
    let quota = milli * QUOTA_PERIOD as i64 / 1000;
    quota.max(MIN_QUOTA)
}

impl Requested {
    /// The API server defaults a missing request to the limit.
    fn effective_request(&self) -> Option<i64> {
        self.cpu_request_milli.or(self.cpu_limit_milli)
    }
}

/// Values for one container's cgroup.
pub fn container_values(r: &Requested) -> CgroupValues {
    CgroupValues {
        cpu_shares: Some(milli_to_shares(r.effective_request().unwrap_or(0))),
        cpu_quota: r.cpu_limit_milli.map(milli_to_quota),
        cpu_period: r.cpu_limit_milli.map(|_| QUOTA_PERIOD),
        memory_limit: r.memory_limit,
        pids_limit: None,
    }
}

/// Values for the pod cgroup: requests summed; limits summed only when every
/// container has one (kubelet's `ResourceConfigForPod`). Init containers run
/// one at a time, so each resource is the larger of the app containers' sum
/// and the largest init container's value.
pub fn pod_values(app: &[Requested], init: &[Requested], pids_limit: Option<i64>) -> CgroupValues {
    let sum = |f: &dyn Fn(&Requested) -> Option<i64>, all: bool| -> Option<i64> {
        let app_sum: Option<i64> = if all {
            app.iter().map(f).sum::<Option<i64>>()
        } else {
            Some(app.iter().filter_map(f).sum())
        };
        let init_max: Option<i64> = if all {
            init.iter()
                .map(f)
                .try_fold(0i64, |acc, v| v.map(|v| acc.max(v)))
        } else {
            init.iter().filter_map(f).max().or(Some(0))
        };
        match (app_sum, init_max) {
            (Some(a), Some(i)) => Some(a.max(i)),
            _ => None,
        }
    };
    let request = sum(&|r: &Requested| r.effective_request(), false).unwrap_or(0);
    let cpu_limit = sum(&|r: &Requested| r.cpu_limit_milli, true).filter(|_| !app.is_empty());
    let memory = sum(&|r: &Requested| r.memory_limit, true).filter(|_| !app.is_empty());
    CgroupValues {
        cpu_shares: Some(milli_to_shares(request)),
        cpu_quota: cpu_limit.map(milli_to_quota),
        cpu_period: cpu_limit.map(|_| QUOTA_PERIOD),
        memory_limit: memory,
        pids_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_quota_like_kubelet() {
        assert_eq!(milli_to_shares(0), 2);
        assert_eq!(milli_to_shares(1), 2);
        assert_eq!(milli_to_shares(250), 256);
        assert_eq!(milli_to_shares(1000), 1024);
        assert_eq!(milli_to_quota(500), 50_000);
        assert_eq!(milli_to_quota(5), 1000);
    }

    #[test]
    fn values_become_only_the_oci_resources_asked_for() {
        let r = CgroupValues {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(QUOTA_PERIOD),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        }
        .to_linux_resources();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(512), Some(50_000), Some(100_000))
        );
        assert_eq!(cpu.cpus(), &None);
        let memory = r.memory().as_ref().unwrap();
        assert_eq!((memory.limit(), memory.swap()), (Some(64 << 20), None));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 100);
        assert_eq!(r.devices(), &None);

        let only_shares = CgroupValues {
            cpu_shares: Some(2),
            ..Default::default()
        }
        .to_linux_resources();
        assert_eq!(only_shares.cpu().as_ref().unwrap().quota(), None);
        assert!(only_shares.memory().is_none() && only_shares.pids().is_none());
        assert_eq!(
            CgroupValues::default().to_linux_resources(),
            LinuxResources::default()
        );
    }

    #[test]
    fn container_request_defaults_to_limit() {
        let v = container_values(&Requested {
            cpu_limit_milli: Some(500),
            memory_limit: Some(32 << 20),
            ..Default::default()
        });
        assert_eq!(v.cpu_shares, Some(512));
        assert_eq!(v.cpu_quota, Some(50_000));
        assert_eq!(v.cpu_period, Some(100_000));
        assert_eq!(v.memory_limit, Some(32 << 20));
    }

    #[test]
    fn pod_limits_only_when_all_have_them() {
        let a = Requested {
            cpu_request_milli: Some(100),
            cpu_limit_milli: Some(200),
            memory_limit: Some(100),
        };
        let b = Requested {
            cpu_request_milli: Some(300),
            cpu_limit_milli: None,
            memory_limit: Some(50),
        };
        let v = pod_values(&[a, b], &[], Some(1024));
        assert_eq!(v.cpu_shares, Some(milli_to_shares(400)));
        assert_eq!(v.cpu_quota, None);
        assert_eq!(v.memory_limit, Some(150));
        assert_eq!(v.pids_limit, Some(1024));
        let init = Requested {
            cpu_request_milli: Some(1000),
            cpu_limit_milli: Some(1000),
            memory_limit: Some(1000),
        };
        let v = pod_values(&[a], &[init], None);
        assert_eq!(v.memory_limit, Some(1000));
        assert_eq!(v.cpu_quota, Some(milli_to_quota(1000)));
        assert_eq!(v.cpu_shares, Some(milli_to_shares(1000)));
    }
}
