//! Fields that pass validation but that peapod does not honour yet.
//!
//! peapod never ignores a manifest field silently: `apply` prints one warning
//! per field listed here, e.g.
//! `spec.containers[0].livenessProbe is not supported yet and is ignored`.
//! When support for a field lands, remove it from this module.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, PodSpec, SecurityContext};

use crate::path::FieldPath;

/// Lists the fields of a (defaulted) pod that peapod does not honour yet, one
/// warning per field, in field order:
/// `"spec.containers[0].livenessProbe is not supported yet and is ignored"`.
pub fn unsupported_fields(pod: &Pod) -> Vec<String> {
    let mut found = Found::default();
    if let Some(spec) = &pod.spec {
        spec_fields(spec, &FieldPath::new("spec"), &mut found);
    }
    found.0
}

/// [`unsupported_fields`] of a pod template's spec, named from `root`
/// (`spec.template.spec` of a Deployment).
pub fn unsupported_template_fields(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    root: &str,
) -> Vec<String> {
    let mut found = Found::default();
    spec_fields(spec, &FieldPath::new(root), &mut found);
    found.0
}

/// The warnings collected so far.
#[derive(Default)]
struct Found(Vec<String>);

impl Found {
    /// Reports `path` when `set`.
    fn check(&mut self, set: bool, path: &FieldPath) {
        if set {
            self.0
                .push(format!("{path} is not supported yet and is ignored"));
        }
    }

    /// Reports `path` with its value (for fields where only some values are
    /// unsupported).
    fn check_value(&mut self, set: bool, path: &FieldPath, value: &str) {
        if set {
            self.0.push(format!(
                "{path} {value:?} is not supported yet and is ignored"
            ));
        }
    }
}

/// A list that is present and has at least one element.
fn non_empty<T>(list: &Option<Vec<T>>) -> bool {
    list.as_ref().is_some_and(|l| !l.is_empty())
}

/// A map that is present and has at least one entry.
fn non_empty_map<K, V>(map: &Option<BTreeMap<K, V>>) -> bool {
    map.as_ref().is_some_and(|m| !m.is_empty())
}

/// A string that is present and not empty.
fn non_empty_str(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

fn spec_fields(spec: &PodSpec, path: &FieldPath, found: &mut Found) {
    let p = |name: &str| path.child(name);

    found.check(spec.affinity.is_some(), &p("affinity"));
    found.check(
        spec.automount_service_account_token == Some(true),
        &p("automountServiceAccountToken"),
    );
    found.check(spec.dns_config.is_some(), &p("dnsConfig"));
    if let Some(policy) = &spec.dns_policy {
        found.check_value(
            !matches!(policy.as_str(), "" | "ClusterFirst" | "Default"),
            &p("dnsPolicy"),
            policy,
        );
    }
    found.check(
        non_empty(&spec.ephemeral_containers),
        &p("ephemeralContainers"),
    );
    found.check(non_empty(&spec.host_aliases), &p("hostAliases"));
    // hostUsers: true is what peapod does anyway; false asks for a user namespace.
    found.check(spec.host_users == Some(false), &p("hostUsers"));
    found.check(non_empty_str(&spec.hostname), &p("hostname"));
    found.check(
        non_empty_str(&spec.hostname_override),
        &p("hostnameOverride"),
    );
    // imagePullSecrets is honoured: the node pulls with their credentials.
    found.check(non_empty_str(&spec.node_name), &p("nodeName"));
    found.check(non_empty_map(&spec.node_selector), &p("nodeSelector"));
    // peapod runs Linux pods only, which is what `os: {name: linux}` asks for.
    found.check(
        spec.os.as_ref().is_some_and(|os| os.name != "linux"),
        &p("os"),
    );
    found.check(non_empty_map(&spec.overhead), &p("overhead"));
    found.check(
        non_empty_str(&spec.preemption_policy),
        &p("preemptionPolicy"),
    );
    found.check(spec.priority.is_some(), &p("priority"));
    found.check(
        non_empty_str(&spec.priority_class_name),
        &p("priorityClassName"),
    );
    found.check(non_empty(&spec.readiness_gates), &p("readinessGates"));
    found.check(non_empty(&spec.resource_claims), &p("resourceClaims"));
    found.check(spec.resources.is_some(), &p("resources"));
    found.check(
        non_empty_str(&spec.runtime_class_name),
        &p("runtimeClassName"),
    );
    found.check(non_empty(&spec.scheduling_gates), &p("schedulingGates"));
    if let Some(sc) = &spec.security_context {
        pod_security_context_fields(sc, &p("securityContext"), found);
    }
    let custom_account = |name: &Option<String>| {
        name.as_deref()
            .is_some_and(|n| !n.is_empty() && n != "default")
    };
    found.check(custom_account(&spec.service_account), &p("serviceAccount"));
    found.check(
        custom_account(&spec.service_account_name),
        &p("serviceAccountName"),
    );
    found.check(
        spec.set_hostname_as_fqdn == Some(true),
        &p("setHostnameAsFQDN"),
    );
    found.check(non_empty_str(&spec.subdomain), &p("subdomain"));
    found.check(non_empty(&spec.tolerations), &p("tolerations"));
    found.check(
        non_empty(&spec.topology_spread_constraints),
        &p("topologySpreadConstraints"),
    );

    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        container_fields(c, &p("initContainers").index(i), found);
    }
    for (i, c) in spec.containers.iter().enumerate() {
        container_fields(c, &p("containers").index(i), found);
    }

    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vpath = p("volumes").index(i);
        for (j, src) in v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .enumerate()
        {
            let spath = vpath.child("projected").child("sources").index(j);
            found.check(
                src.service_account_token.is_some(),
                &spath.child("serviceAccountToken"),
            );
            found.check(
                src.cluster_trust_bundle.is_some(),
                &spath.child("clusterTrustBundle"),
            );
            found.check(
                src.pod_certificate.is_some(),
                &spath.child("podCertificate"),
            );
        }
    }
}

fn pod_security_context_fields(sc: &PodSecurityContext, path: &FieldPath, found: &mut Found) {
    let p = |name: &str| path.child(name);
    found.check(sc.app_armor_profile.is_some(), &p("appArmorProfile"));
    found.check(sc.fs_group.is_some(), &p("fsGroup"));
    found.check(
        non_empty_str(&sc.fs_group_change_policy),
        &p("fsGroupChangePolicy"),
    );
    found.check(
        non_empty_str(&sc.se_linux_change_policy),
        &p("seLinuxChangePolicy"),
    );
    found.check(sc.se_linux_options.is_some(), &p("seLinuxOptions"));
    found.check(non_empty(&sc.supplemental_groups), &p("supplementalGroups"));
    found.check(
        non_empty_str(&sc.supplemental_groups_policy),
        &p("supplementalGroupsPolicy"),
    );
    found.check(non_empty(&sc.sysctls), &p("sysctls"));
    found.check(sc.windows_options.is_some(), &p("windowsOptions"));
}

fn container_fields(c: &Container, path: &FieldPath, found: &mut Found) {
    let p = |name: &str| path.child(name);

    // env valueFrom (configMapKeyRef, secretKeyRef, fieldRef,
    // resourceFieldRef) and envFrom are honoured; fileKeyRef is not.
    for (i, var) in c.env.iter().flatten().enumerate() {
        found.check(
            var.value_from
                .as_ref()
                .is_some_and(|f| f.file_key_ref.is_some()),
            &p("env").index(i).child("valueFrom").child("fileKeyRef"),
        );
    }
    if let Some(l) = &c.lifecycle {
        found.check(
            non_empty_str(&l.stop_signal),
            &p("lifecycle").child("stopSignal"),
        );
    }
    found.check(non_empty(&c.resize_policy), &p("resizePolicy"));
    if let Some(resources) = &c.resources {
        found.check(
            non_empty(&resources.claims),
            &p("resources").child("claims"),
        );
    }
    found.check(non_empty(&c.restart_policy_rules), &p("restartPolicyRules"));
    if let Some(sc) = &c.security_context {
        security_context_fields(sc, &p("securityContext"), found);
    }
    found.check(non_empty(&c.volume_devices), &p("volumeDevices"));
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mpath = p("volumeMounts").index(i);
        if let Some(propagation) = &m.mount_propagation {
            found.check_value(
                !matches!(propagation.as_str(), "" | "None"),
                &mpath.child("mountPropagation"),
                propagation,
            );
        }
        if let Some(rro) = &m.recursive_read_only {
            found.check_value(
                !matches!(rro.as_str(), "" | "Disabled"),
                &mpath.child("recursiveReadOnly"),
                rro,
            );
        }
    }
}

fn security_context_fields(sc: &SecurityContext, path: &FieldPath, found: &mut Found) {
    let p = |name: &str| path.child(name);
    found.check(sc.app_armor_profile.is_some(), &p("appArmorProfile"));
    if let Some(proc_mount) = &sc.proc_mount {
        found.check_value(
            !matches!(proc_mount.as_str(), "" | "Default"),
            &p("procMount"),
            proc_mount,
        );
    }
    found.check(sc.se_linux_options.is_some(), &p("seLinuxOptions"));
    found.check(sc.windows_options.is_some(), &p("windowsOptions"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn warnings(spec: serde_json::Value) -> Vec<String> {
        let mut pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": spec,
        }))
        .unwrap();
        crate::default_pod(&mut pod);
        unsupported_fields(&pod)
    }

    fn msg(path: &str) -> String {
        format!("{path} is not supported yet and is ignored")
    }

    #[test]
    fn probes_hooks_and_deadline_are_supported() {
        assert_eq!(
            warnings(json!({
                "activeDeadlineSeconds": 30,
                "containers": [{
                "name": "app",
                "image": "nginx",
                "livenessProbe": {"httpGet": {"port": 80}},
                "readinessProbe": {"tcpSocket": {"port": 80}},
                "startupProbe": {"exec": {"command": ["true"]}},
                "lifecycle": {
                    "postStart": {"exec": {"command": ["true"]}},
                    "preStop": {"sleep": {"seconds": 1}},
                },
            }]})),
            Vec::<String>::new()
        );
        assert_eq!(
            warnings(json!({"containers": [{
                "name": "app",
                "image": "nginx",
                "livenessProbe": {"grpc": {"port": 80}},
                "readinessProbe": {"httpGet": {"port": 80, "scheme": "HTTPS"}},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "scheme": "HTTPS"}}},
            }]})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn plain_pod_has_no_warnings() {
        assert_eq!(
            warnings(json!({
                "restartPolicy": "OnFailure",
                "terminationGracePeriodSeconds": 5,
                "shareProcessNamespace": true,
                "hostNetwork": true,
                "hostIPC": true,
                "serviceAccountName": "default",
                "automountServiceAccountToken": false,
                "hostUsers": true,
                "imagePullSecrets": [{"name": "regcred"}],
                "os": {"name": "linux"},
                "dnsPolicy": "Default",
                "securityContext": {"runAsUser": 1000, "runAsNonRoot": true,
                    "seccompProfile": {"type": "RuntimeDefault"}},
                "initContainers": [{"name": "sidecar", "image": "x", "restartPolicy": "Always"}],
                "containers": [{
                    "name": "app",
                    "image": "nginx",
                    "command": ["sh"],
                    "args": ["-c", "true"],
                    "env": [{"name": "A", "value": "b"}],
                    "workingDir": "/",
                    "tty": true,
                    "stdin": true,
                    "stdinOnce": true,
                    "ports": [{"containerPort": 80}],
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/tmp/msg",
                    "resources": {"limits": {"cpu": "1", "memory": "64Mi"}},
                    "securityContext": {
                        "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": false,
                        "privileged": false, "readOnlyRootFilesystem": true,
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                        "seccompProfile": {"type": "Unconfined"},
                    },
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/data", "readOnly": true, "subPath": "x"},
                    ],
                }],
                "volumes": [
                    {"name": "data", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": "/srv"}},
                ],
            })),
            Vec::<String>::new()
        );
    }

    #[test]
    fn config_sources_have_no_warnings() {
        assert_eq!(
            warnings(json!({
                "containers": [{
                    "name": "app",
                    "image": "nginx",
                    "env": [
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "E", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    ],
                    "envFrom": [{"secretRef": {"name": "s"}, "prefix": "S_"}],
                }],
                "volumes": [
                    {"name": "cm", "configMap": {"name": "cm"}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "dapi", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                    {"name": "all", "projected": {"sources": [{"secret": {"name": "s"}}]}},
                ],
            })),
            Vec::<String>::new()
        );
    }

    #[test]
    fn container_fields_reported() {
        let probe = json!({"exec": {"command": ["true"]}});
        let container = json!({
            "name": "app",
            "image": "nginx",
            "livenessProbe": probe,
            "readinessProbe": probe,
            "startupProbe": probe,
            "lifecycle": {"preStop": {"exec": {"command": ["true"]}}, "stopSignal": "SIGUSR1"},
            "ports": [{"containerPort": 80}, {"containerPort": 443, "hostPort": 8443}],
            "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
            "envFrom": [{"configMapRef": {"name": "cm"}}],
            "env": [
                {"name": "A", "value": "b"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "F", "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}}},
            ],
            "securityContext": {
                "seLinuxOptions": {"level": "s0"},
                "appArmorProfile": {"type": "RuntimeDefault"},
                "windowsOptions": {"runAsUserName": "x"},
                "procMount": "Unmasked",
            },
            "resources": {"claims": [{"name": "gpu"}]},
            "volumeMounts": [{"name": "data", "mountPath": "/d", "mountPropagation": "Bidirectional"}],
        });
        let c = "spec.containers[0]";
        assert_eq!(
            warnings(json!({"containers": [container]})),
            [
                msg(&format!("{c}.env[2].valueFrom.fileKeyRef")),
                msg(&format!("{c}.lifecycle.stopSignal")),
                msg(&format!("{c}.resizePolicy")),
                msg(&format!("{c}.resources.claims")),
                msg(&format!("{c}.securityContext.appArmorProfile")),
                msg(&format!("{c}.securityContext.procMount \"Unmasked\"")),
                msg(&format!("{c}.securityContext.seLinuxOptions")),
                msg(&format!("{c}.securityContext.windowsOptions")),
                msg(&format!(
                    "{c}.volumeMounts[0].mountPropagation \"Bidirectional\""
                )),
            ]
        );
    }

    #[test]
    fn init_container_paths() {
        assert_eq!(
            warnings(json!({
                "initContainers": [{"name": "init", "image": "x", "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}],
                "containers": [{"name": "app", "image": "nginx"}],
            })),
            [msg("spec.initContainers[0].resizePolicy")]
        );
    }

    #[test]
    fn pod_fields_reported() {
        assert_eq!(
            warnings(json!({
                "containers": [{"name": "app", "image": "nginx"}],
                "affinity": {},
                "automountServiceAccountToken": true,
                "dnsConfig": {"nameservers": ["1.1.1.1"]},
                "dnsPolicy": "None",
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["x"]}],
                "hostUsers": false,
                "hostname": "h",
                "nodeName": "n",
                "nodeSelector": {"disk": "ssd"},
                "os": {"name": "windows"},
                "overhead": {"cpu": "1"},
                "preemptionPolicy": "Never",
                "priority": 5,
                "priorityClassName": "high",
                "readinessGates": [{"conditionType": "x"}],
                "resourceClaims": [{"name": "gpu"}],
                "runtimeClassName": "kata",
                "schedulingGates": [{"name": "wait"}],
                "securityContext": {
                    "fsGroup": 2000,
                    "supplementalGroups": [3000],
                    "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
                    "seLinuxOptions": {"level": "s0"},
                },
                "serviceAccount": "builder",
                "serviceAccountName": "builder",
                "setHostnameAsFQDN": true,
                "subdomain": "s",
                "tolerations": [{"operator": "Exists"}],
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"
                }],
                "volumes": [
                    {"name": "cm", "configMap": {"name": "cm"}},
                    {"name": "sec", "secret": {"secretName": "s"}},
                    {"name": "all", "projected": {"sources": [
                        {"configMap": {"name": "cm"}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]}},
                ],
            })),
            [
                msg("spec.affinity"),
                msg("spec.automountServiceAccountToken"),
                msg("spec.dnsConfig"),
                msg("spec.dnsPolicy \"None\""),
                msg("spec.ephemeralContainers"),
                msg("spec.hostAliases"),
                msg("spec.hostUsers"),
                msg("spec.hostname"),
                msg("spec.nodeName"),
                msg("spec.nodeSelector"),
                msg("spec.os"),
                msg("spec.overhead"),
                msg("spec.preemptionPolicy"),
                msg("spec.priority"),
                msg("spec.priorityClassName"),
                msg("spec.readinessGates"),
                msg("spec.resourceClaims"),
                msg("spec.runtimeClassName"),
                msg("spec.schedulingGates"),
                msg("spec.securityContext.fsGroup"),
                msg("spec.securityContext.seLinuxOptions"),
                msg("spec.securityContext.supplementalGroups"),
                msg("spec.securityContext.sysctls"),
                msg("spec.serviceAccount"),
                msg("spec.serviceAccountName"),
                msg("spec.setHostnameAsFQDN"),
                msg("spec.subdomain"),
                msg("spec.tolerations"),
                msg("spec.topologySpreadConstraints"),
                msg("spec.volumes[2].projected.sources[1].serviceAccountToken"),
            ]
        );
    }
}
