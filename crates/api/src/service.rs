//! Services (core/v1): the API server's defaults and validation of what
//! the user writes. Allocation (clusterIP from the service range, nodePort
//! from 30000-32767) needs the other Services and happens in the daemon;
//! [`validate_service`] runs after it.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::configmap::invalid;

/// The NodePort range, as the API server's default `--service-node-port-range`.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

/// The Service types peapod honours.
const TYPES: [&str; 3] = ["ClusterIP", "NodePort", "ExternalName"];

/// The API server's defaults: namespace, `type: ClusterIP`,
/// `sessionAffinity: None`, each port's `protocol: TCP` and `targetPort`
/// (= `port`), single-stack IPv4, the traffic policies.
pub fn default_service(s: &mut Service) {
    if s.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        s.metadata.namespace = Some(crate::DEFAULT_NAMESPACE.to_string());
    }
    let spec = s.spec.get_or_insert_with(Default::default);
    let ty = spec.type_.get_or_insert_with(|| "ClusterIP".into()).clone();
    spec.session_affinity.get_or_insert_with(|| "None".into());
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let cfg = spec
            .session_affinity_config
            .get_or_insert_with(Default::default);
        let ip = cfg.client_ip.get_or_insert_with(Default::default);
        ip.timeout_seconds.get_or_insert(10800);
    }
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        if p.target_port.is_none()
            || p.target_port == Some(IntOrString::Int(0))
            || p.target_port == Some(IntOrString::String(String::new()))
        {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    if ty == "ExternalName" {
        return;
    }
    spec.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".into());
    if ty == "NodePort" {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    if spec.cluster_ip.is_some() && spec.cluster_ips.is_none() {
        spec.cluster_ips = spec.cluster_ip.clone().map(|ip| vec![ip]);
    }
    spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
    spec.ip_family_policy
        .get_or_insert_with(|| "SingleStack".into());
}

/// Whether `s` has a virtual IP (not headless, not ExternalName).
pub fn has_cluster_ip(s: &Service) -> bool {
    s.spec
        .as_ref()
        .and_then(|sp| sp.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// Validate a defaulted Service (its clusterIP and nodePorts allocated or
/// given); the error reads like the API server's
/// (`Service "web" is invalid: spec.ports[0].port: ...`).
pub fn validate_service(s: &Service) -> Result<(), String> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push("metadata.name: Required value: name or generateName is required".into());
    } else if name.len() > 63
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !crate::validate::dns1123_label(&name).is_empty()
    {
        errs.push(format!("metadata.name: Invalid value: {name:?}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"));
    }
    let Some(spec) = &s.spec else {
        return invalid("Service", &name, vec!["spec: Required value".into()]);
    };
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    if ty == "LoadBalancer" {
        errs.push("spec.type: Unsupported value: \"LoadBalancer\": peapod runs on one machine and has no load balancer; use type NodePort".into());
    } else if !TYPES.contains(&ty) {
        errs.push(format!(
            "spec.type: Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"NodePort\""
        ));
    }
    if ty == "ExternalName" {
        if spec.external_name.as_deref().unwrap_or("").is_empty() {
            errs.push("spec.externalName: Required value".into());
        }
        if spec.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
            errs.push(
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services".into(),
            );
        }
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && spec.cluster_ip.as_deref() != Some("None") {
        errs.push("spec.ports: Required value".into());
    }
    match spec.session_affinity.as_deref() {
        None | Some("None") | Some("ClientIP") => {}
        Some(v) => errs.push(format!(
            "spec.sessionAffinity: Unsupported value: {v:?}: supported values: \"ClientIP\", \"None\""
        )),
    }
    if let Some(t) = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
    {
        if !(1..=86400).contains(&t) {
            errs.push(format!("spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: {t}: must be greater than 0 and less than 86400"));
        }
    }
    if spec.cluster_ip.as_deref() == Some("None") && ty != "ClusterIP" {
        errs.push(format!(
            "spec.clusterIPs[0]: Invalid value: \"None\": may only be set to 'None' for ClusterIP services (not {ty})"
        ));
    }
    if let Some(ip) = spec.cluster_ip.as_deref() {
        if !ip.is_empty() && ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_err() {
            errs.push(format!(
                "spec.clusterIPs[0]: Invalid value: {ip:?}: must be a valid IPv4 address"
            ));
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut seen = std::collections::HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        match p.name.as_deref().unwrap_or("") {
            "" if ports.len() > 1 => errs.push(format!("{at}.name: Required value")),
            "" => {}
            n => {
                let msgs = crate::validate::dns1123_label(n);
                if let Some(m) = msgs.first() {
                    errs.push(format!("{at}.name: Invalid value: {n:?}: {m}"));
                }
                if !names.insert(n.to_string()) {
                    errs.push(format!("{at}.name: Duplicate value: {n:?}"));
                }
            }
        }
        if !(1..=65535).contains(&p.port) {
            errs.push(format!(
                "{at}.port: Invalid value: {}: must be between 1 and 65535, inclusive",
                p.port
            ));
        }
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        if !["TCP", "UDP"].contains(&proto) {
            errs.push(format!(
                "{at}.protocol: Unsupported value: {proto:?}: supported values: \"TCP\", \"UDP\""
            ));
        }
        if !seen.insert((p.port, proto.to_string())) {
            errs.push(format!(
                "{at}: Duplicate value: {{\"port\":{},\"protocol\":{proto:?}}}",
                p.port
            ));
        }
        match &p.target_port {
            Some(IntOrString::Int(t)) if !(1..=65535).contains(t) => errs.push(format!(
                "{at}.targetPort: Invalid value: {t}: must be between 1 and 65535, inclusive"
            )),
            Some(IntOrString::String(n)) => {
                if let Some(m) = crate::validate::iana_svc_name(n).first() {
                    errs.push(format!("{at}.targetPort: Invalid value: {n:?}: {m}"));
                }
            }
            _ => {}
        }
        match (ty, p.node_port) {
            ("NodePort", Some(np)) if !NODE_PORT_RANGE.contains(&np) => errs.push(format!(
                "{at}.nodePort: Invalid value: {np}: provided port is not in the valid range. The range of valid ports is 30000-32767"
            )),
            ("NodePort", _) => {}
            (_, Some(np)) if np != 0 => errs.push(format!(
                "{at}.nodePort: Forbidden: may not be used when `type` is '{ty}'"
            )),
            _ => {}
        }
    }
    if let Some(sel) = &spec.selector {
        for (k, v) in sel {
            if k.is_empty() || v.len() > 63 {
                errs.push(format!("spec.selector: Invalid value: {k:?}: {v:?}"));
            }
        }
    }
    invalid("Service", &name, errs)
}

/// Validate replacing `old` by `new` (both defaulted, `new` with the
/// allocations it keeps): a clusterIP never changes.
pub fn validate_service_update(old: &Service, new: &Service) -> Result<(), String> {
    let ip = |s: &Service| s.spec.as_ref().and_then(|sp| sp.cluster_ip.clone());
    let name = new.metadata.name.clone().unwrap_or_default();
    let (o, n) = (ip(old), ip(new));
    let ty = |s: &Service| s.spec.as_ref().and_then(|sp| sp.type_.clone());
    // Changing to or from ExternalName releases or allocates the address.
    if o != n && ty(old) == ty(new) && o.as_deref().is_some_and(|v| !v.is_empty()) {
        return invalid(
            "Service",
            &name,
            vec![format!(
                "spec.clusterIPs[0]: Invalid value: {:?}: may not change once set",
                n.unwrap_or_default()
            )],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        let mut s: Service = serde_yaml_ng::from_str(yaml).unwrap();
        default_service(&mut s);
        s
    }

    #[test]
    fn defaults_as_the_api_server_fills_them() {
        let s =
            svc("metadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n");
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(s.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        let p = &spec.ports.as_ref().unwrap()[0];
        assert_eq!(p.protocol.as_deref(), Some("TCP"));
        assert_eq!(p.target_port, Some(IntOrString::Int(80)));
        validate_service(&s).unwrap();
        let s = svc(
            "metadata: {name: web}\nspec:\n  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n",
        );
        let cfg = s.spec.unwrap().session_affinity_config.unwrap();
        assert_eq!(cfg.client_ip.unwrap().timeout_seconds, Some(10800));
    }

    #[test]
    fn errors_name_the_service_and_field() {
        let e = validate_service(&svc(
            "metadata: {name: web}\nspec:\n  ports: [{port: 80}, {port: 81, name: b}]\n",
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "Service \"web\" is invalid: spec.ports[0].name: Required value"
        );
        let e = validate_service(&svc(
            "metadata: {name: web}\nspec:\n  ports: [{port: 70000, targetPort: Web_Port, protocol: SCTP}]\n",
        ))
        .unwrap_err();
        assert!(
            e.contains("spec.ports[0].port: Invalid value: 70000"),
            "{e}"
        );
        assert!(
            e.contains("spec.ports[0].targetPort: Invalid value: \"Web_Port\""),
            "{e}"
        );
        assert!(
            e.contains("spec.ports[0].protocol: Unsupported value: \"SCTP\""),
            "{e}"
        );
        let e = validate_service(&svc(
            "metadata: {name: web}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n",
        ))
        .unwrap_err();
        assert!(e.contains("spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range"), "{e}");
        let e = validate_service(&svc(
            "metadata: {name: web}\nspec:\n  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n",
        ))
        .unwrap_err();
        assert!(
            e.contains("may only be set to 'None' for ClusterIP services"),
            "{e}"
        );
        let e = validate_service(&svc(
            "metadata: {name: 1web}\nspec:\n  ports: [{port: 80}]\n",
        ))
        .unwrap_err();
        assert!(
            e.contains("metadata.name: Invalid value: \"1web\": a DNS-1035 label"),
            "{e}"
        );
    }

    #[test]
    fn cluster_ip_never_changes() {
        let old =
            svc("metadata: {name: web}\nspec:\n  clusterIP: 10.96.0.5\n  ports: [{port: 80}]\n");
        let new =
            svc("metadata: {name: web}\nspec:\n  clusterIP: 10.96.0.6\n  ports: [{port: 80}]\n");
        let e = validate_service_update(&old, &new).unwrap_err();
        assert!(e.contains("may not change once set"), "{e}");
        validate_service_update(&old, &old.clone()).unwrap();
    }
}
