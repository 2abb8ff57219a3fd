//! EndpointSlices of a Service, as the endpointslice controller computes
//! them: one endpoint per pod the selector matches that has an IP and has
//! not finished, `conditions.ready` following the pod's Ready condition
//! (never ready while terminating), each Service port's targetPort
//! resolved per pod (a named targetPort looks up the pod's container
//! ports). Pods that resolve the ports differently go into different
//! slices, as in Kubernetes.

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.peapod.io";

/// The port of `pod` a Service port's `targetPort` names: a number as is,
/// a name by the pod's container ports of that name and protocol.
pub fn resolve_target_port(pod: &Pod, target: &IntOrString, protocol: &str) -> Option<i32> {
    match target {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(name) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A short stable suffix for a slice name.
fn suffix(parts: &impl Hash) -> String {
    // DefaultHasher::new() has fixed keys: the same name after a restart.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    let v = h.finish();
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|i| ALPHABET[((v >> (i * 8)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// The slices `svc` should have given every pod of its namespace; `None`
/// for a Service without a selector (its slices are the user's).
pub fn desired_slices(svc: &Service, pods: &[Pod], node_name: &str) -> Option<Vec<EndpointSlice>> {
    let spec = svc.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let ns = crate::node::namespace_of(&svc.metadata);
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ports = spec.ports.as_deref().unwrap_or_default();
    // Resolved ports → endpoints.
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<Endpoint>> = BTreeMap::new();
    let mut sorted: Vec<&Pod> = pods
        .iter()
        .filter(|p| crate::node::namespace_of(&p.metadata) == ns && selects(selector, p))
        .collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in sorted {
        let status = pod.status.as_ref();
        let Some(ip) = status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let resolved: Vec<(String, i32, String)> = ports
            .iter()
            .filter_map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
                let port = resolve_target_port(pod, &target, &proto)?;
                Some((p.name.clone().unwrap_or_default(), port, proto))
            })
            .collect();
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let ready = pod_ready(pod);
        // A pod's hostname names its endpoint when its subdomain is this
        // Service (what DNS answers as <hostname>.<service>...).
        let pspec = pod.spec.as_ref();
        let hostname = pspec
            .and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty())
            .filter(|_| pspec.and_then(|s| s.subdomain.as_deref()) == Some(name.as_str()));
        groups.entry(resolved).or_default().push(Endpoint {
            addresses: vec![ip],
            hostname,
            conditions: Some(EndpointConditions {
                ready: Some(ready && !terminating),
                serving: Some(ready),
                terminating: Some(terminating),
            }),
            node_name: Some(node_name.to_string()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(ns.clone()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if groups.is_empty() {
        // A Service with no endpoints keeps one empty slice, as in
        // Kubernetes.
        groups.insert(Vec::new(), Vec::new());
    }
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    labels.insert(SERVICE_NAME_LABEL.to_string(), name.clone());
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    Some(
        groups
            .into_iter()
            .map(|(ports, endpoints)| EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-{}", suffix(&(&uid, &ports)))),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Service".into(),
                        name: name.clone(),
                        uid: uid.clone(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints,
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: Some(name),
                            port: Some(port),
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            })
            .collect(),
    )
}

/// Whether two slices say the same (ignoring server-set metadata).
pub fn same_slice(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.endpoints == b.endpoints
        && a.ports == b.ports
        && a.address_type == b.address_type
        && a.metadata.labels == b.metadata.labels
        && a.metadata.owner_references == b.metadata.owner_references
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        let mut s: Service = serde_yaml_ng::from_str(yaml).unwrap();
        peapod_api::default_service(&mut s);
        s
    }

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i32) -> Pod {
        serde_yaml_ng::from_str(&format!(
            "metadata: {{name: {name}, namespace: default, labels: {{app: web}}, uid: u-{name}}}\n\
             spec: {{containers: [{{name: c, image: x, ports: [{{name: {port_name}, containerPort: {port}}}]}}]}}\n\
             status: {{phase: Running, podIP: '{ip}', conditions: [{{type: Ready, status: '{}'}}]}}\n",
            if ready { "True" } else { "False" }
        ))
        .unwrap()
    }

    #[test]
    fn one_endpoint_per_selected_pod_with_readiness_and_named_ports() {
        let s = svc("metadata: {name: web, uid: s1}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: web}]\n");
        let mut other = pod("other", "10.0.0.9", true, "web", 8080);
        other.metadata.labels = None;
        let pods = vec![
            pod("a", "10.0.0.1", true, "web", 8080),
            pod("b", "10.0.0.2", false, "web", 8080),
            pod("c", "10.0.0.3", true, "web", 9090),
            other,
        ];
        let slices = desired_slices(&s, &pods, "n").unwrap();
        assert_eq!(slices.len(), 2, "{slices:?}");
        let by_port = |p: i32| {
            slices
                .iter()
                .find(|s| s.ports.as_ref().unwrap()[0].port == Some(p))
                .unwrap()
        };
        let s8080 = by_port(8080);
        let ips: Vec<(&str, bool)> = s8080
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.addresses[0].as_str(),
                    e.conditions.as_ref().unwrap().ready.unwrap(),
                )
            })
            .collect();
        assert_eq!(ips, [("10.0.0.1", true), ("10.0.0.2", false)]);
        assert_eq!(by_port(9090).endpoints[0].addresses, ["10.0.0.3"]);
        assert_eq!(
            s8080.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
            "web"
        );
        assert!(s8080.metadata.name.as_ref().unwrap().starts_with("web-"));
        // The same input gives the same names.
        assert_eq!(desired_slices(&s, &pods, "n").unwrap(), slices);
    }

    #[test]
    fn no_selector_no_managed_slices_and_empty_service_keeps_one() {
        let s = svc("metadata: {name: web}\nspec:\n  ports: [{port: 80}]\n");
        assert!(desired_slices(&s, &[], "n").is_none());
        let s =
            svc("metadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n");
        let slices = desired_slices(&s, &[], "n").unwrap();
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty());
    }
}
