//! Status: RuntimeReady (the runtime's directories and cgroups are
//! usable) and NetworkReady (every CNI plugin of the pod network is found
//! and speaks the list's version).

use crate::{pb, Cri};
use tonic::Status;

pub async fn status(cri: &Cri, req: pb::StatusRequest) -> Result<pb::StatusResponse, Status> {
    let (runtime_ready, network_problems) = cri
        .blocking(|rt| {
            let dirs_ok = rt.paths.sandboxes_state().is_dir() && rt.paths.sandboxes_data().is_dir();
            let problems = match &rt.opts.network {
                Some(net) => net.check_plugins(),
                None => vec!["no pod network is configured".to_string()],
            };
            Ok((dirs_ok, problems))
        })
        .await?;
    let runtime = pb::RuntimeCondition {
        r#type: "RuntimeReady".into(),
        status: runtime_ready,
        reason: if runtime_ready {
            String::new()
        } else {
            "RuntimeStateDirMissing".into()
        },
        message: if runtime_ready {
            String::new()
        } else {
            "the runtime's state or root directory is missing".into()
        },
    };
    let network_ready = network_problems.is_empty();
    let network = pb::RuntimeCondition {
        r#type: "NetworkReady".into(),
        status: network_ready,
        reason: if network_ready {
            String::new()
        } else {
            "NetworkPluginNotReady".into()
        },
        message: network_problems.join("; "),
    };
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        let net = cri
            .runtime
            .opts
            .network
            .as_ref()
            .map(|n| format!("{} (CNI {})", n.config().name, n.config().cni_version))
            .unwrap_or_default();
        info.insert(
            "config".into(),
            serde_json::json!({
                "root": cri.runtime.paths.root(),
                "state": cri.runtime.paths.state(),
                "cgroupParent": cri.runtime.paths.cgroup_parent(),
                "network": net,
            })
            .to_string(),
        );
    }
    Ok(pb::StatusResponse {
        status: Some(pb::RuntimeStatus {
            conditions: vec![runtime, network],
        }),
        info,
        ..Default::default()
    })
}
