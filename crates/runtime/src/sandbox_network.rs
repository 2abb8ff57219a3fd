//! The sandbox on the pod network, as containerd does it for kubelet: CNI
//! ADD on the pinned network namespace inside RunPodSandbox (unless
//! hostNetwork), DEL inside StopPodSandbox and RemovePodSandbox
//! (idempotent, so a sandbox a crash left behind is released too). The
//! work itself is peapod-net's; this is where the runtime's records meet
//! it.

use crate::error::RuntimeError;
use crate::sandbox_run::{SandboxConfig, SandboxRecord};
use crate::types::SandboxNetwork;
use crate::Runtime;
use peapod_net::{Attachment, PodNetworkStatus, PodRef};

impl Runtime {
    /// The CNI view of sandbox `sid`.
    pub(crate) fn attachment(&self, sid: &str, cfg: &SandboxConfig) -> Attachment {
        Attachment {
            sandbox_id: sid.to_string(),
            netns: self.paths.ns_dir(sid).join("net"),
            pod: PodRef {
                name: cfg.metadata.name.clone(),
                namespace: cfg.metadata.namespace.clone(),
                uid: cfg.metadata.uid.clone(),
            },
            port_mappings: cfg.port_mappings.clone(),
        }
    }

    /// The pod network for `cfg`: None with hostNetwork or with no pod
    /// network configured.
    pub(crate) fn pod_network(&self, cfg: &SandboxConfig) -> Option<&peapod_net::PodNetwork> {
        self.opts.network.as_ref().filter(|_| !cfg.host_network)
    }

    /// CNI CHECK of a running sandbox's network against what ADD
    /// recorded (an adopted sandbox after a daemon restart). Ok when there
    /// is nothing to check (hostNetwork, no pod network, released).
    pub fn check_pod_network(&self, sid: &str) -> Result<(), RuntimeError> {
        let rec = self.sandbox_record(sid)?;
        let (Some(net), Some(recorded)) = (self.pod_network(&rec.config), rec.network.as_ref())
        else {
            return Ok(());
        };
        if rec.network_released || rec.stopped {
            return Ok(());
        }
        net.check(&self.attachment(sid, &rec.config), recorded)?;
        Ok(())
    }

    /// CNI DEL for the sandbox of `rec` unless it never needed one or it
    /// already ran; records that it ran.
    pub(crate) fn network_teardown(&self, rec: &mut SandboxRecord) -> Result<(), RuntimeError> {
        if rec.network_released {
            return Ok(());
        }
        let Some(net) = self.pod_network(&rec.config) else {
            return Ok(());
        };
        let a = self.attachment(&rec.id, &rec.config);
        net.detach(&a, rec.network.as_ref())?;
        rec.network_released = true;
        self.write_sandbox_record(rec)?;
        if let Some(e) = &self.opts.egress {
            e.detached(&rec.id);
        }
        Ok(())
    }

    /// The sandboxes that hold an address on the pod network (at start:
    /// the egress masquerade is written for them).
    pub(crate) fn seed_egress(&self) {
        let Some(e) = &self.opts.egress else { return };
        let holding = self
            .sandbox_ids()
            .into_iter()
            .filter_map(|sid| self.sandbox_record(&sid).ok())
            .filter(|r| r.network.is_some() && !r.network_released)
            .map(|r| r.id);
        if let Err(m) = e.seed(holding) {
            tracing::warn!("pod egress masquerade (table ip {}): {m}", e.table());
        }
    }
}

/// CRI's view of what ADD gave a sandbox.
pub(crate) fn sandbox_network(st: &PodNetworkStatus) -> Option<SandboxNetwork> {
    let ip = st.ip()?.to_string();
    Some(SandboxNetwork {
        additional_ips: st.ips.iter().skip(1).map(|p| p.ip.clone()).collect(),
        gateway: st.gateway().map(String::from),
        network: st.network.clone(),
        interface: st.interface.clone(),
        ip,
    })
}
