//! A container's environment, as kubelet's `makeEnvironmentVariables`
//! builds it: `envFrom` sources first (ConfigMaps and Secrets, with
//! `prefix`; keys that are not valid variable names are skipped and
//! reported), then `env` in order, each value `$(VAR)`-expanded against
//! the variables before it; `valueFrom` reads ConfigMaps, Secrets, pod
//! fields (downward API) and container resources. `command` and `args`
//! are expanded against the result.
//!
//! Values (Secrets' above all) never appear in errors or logs: errors name
//! objects and keys only.

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, ResourceFieldSelector, Secret, Service,
};
use std::collections::BTreeMap;

/// Where ConfigMaps and Secrets come from (the store; a map in tests).
pub trait Sources {
    fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, String>;
    fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String>;
    /// The Services of a namespace (for service environment variables).
    fn services(&self, _ns: &str) -> Result<Vec<Service>, String> {
        Ok(Vec::new())
    }
    /// The host directory of a bound PersistentVolumeClaim.
    fn claim_path(&self, _ns: &str, claim: &str) -> Result<std::path::PathBuf, String> {
        Err(format!("persistentvolumeclaim {claim:?} not found"))
    }
}

impl Sources for crate::store::Store {
    fn claim_path(&self, ns: &str, claim: &str) -> Result<std::path::PathBuf, String> {
        crate::controllers::volume::claim_path(self, ns, claim)
    }
    fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        self.get(&crate::store::key("configmaps", ns, name))
            .map_err(|e| e.to_string())
    }
    fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String> {
        self.get(&crate::store::key("secrets", ns, name))
            .map_err(|e| e.to_string())
    }
    fn services(&self, ns: &str) -> Result<Vec<Service>, String> {
        self.list(&format!("services/{ns}/"))
            .map_err(|e| e.to_string())
    }
}

/// What the downward API needs besides the pod: the node's name, the
/// pod's and host's IPs, the node's allocatable resources (the default of
/// unset limits).
#[derive(Debug, Clone, Default)]
pub struct PodContext {
    pub node_name: String,
    pub host_ip: String,
    /// The pod's addresses, primary first (empty before its sandbox has
    /// an IP).
    pub pod_ips: Vec<String>,
    pub allocatable: Allocatable,
}

/// Node allocatable: CPU in millicores, memory and ephemeral storage in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocatable {
    pub cpu_milli: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Allocatable {
    /// This machine: online CPUs, MemTotal, the size of the filesystem of
    /// `root` (where pods' writable layers and logs live).
    pub fn of_host(root: &std::path::Path) -> Self {
        let host = crate::admission::host_allocatable();
        let ephemeral_storage = nix::sys::statvfs::statvfs(root)
            .map(|s| s.blocks() as i64 * s.fragment_size() as i64)
            .unwrap_or(0);
        Allocatable {
            cpu_milli: host.milli_cpu,
            memory: host.memory,
            ephemeral_storage,
        }
    }
}

/// Why a container cannot get its config (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// The environment of `c` and the warnings to record as
/// `InvalidEnvironmentVariableNames` events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Environment {
    pub vars: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

impl Environment {
    fn set(&mut self, k: String, v: String) {
        match self.vars.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => self.vars.push((k, v)),
        }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// A valid environment variable name (the relaxed rule the API server
/// uses): printable ASCII but `=`, not empty.
pub fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// `configmap "x" not found` / `secret "x" not found`: kubelet's words.
fn not_found(kind: &str, name: &str) -> EnvError {
    EnvError(format!("{kind} \"{name}\" not found"))
}

pub fn make_environment(
    pod: &Pod,
    c: &Container,
    src: &dyn Sources,
    ctx: &PodContext,
) -> Result<Environment, EnvError> {
    let ns = crate::node::namespace_of(&pod.metadata);
    let mut env = service_links(pod, src, &ns)?;
    let mut config_maps: BTreeMap<String, Option<ConfigMap>> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut get_cm = |name: &str| -> Result<Option<ConfigMap>, EnvError> {
        if let Some(c) = config_maps.get(name) {
            return Ok(c.clone());
        }
        let got = src
            .config_map(&ns, name)
            .map_err(|e| EnvError(format!("couldn't get configMap {ns}/{name}: {e}")))?;
        config_maps.insert(name.to_string(), got.clone());
        Ok(got)
    };
    let mut get_secret = |name: &str| -> Result<Option<Secret>, EnvError> {
        if let Some(s) = secrets.get(name) {
            return Ok(s.clone());
        }
        let got = src
            .secret(&ns, name)
            .map_err(|e| EnvError(format!("couldn't get secret {ns}/{name}: {e}")))?;
        secrets.insert(name.to_string(), got.clone());
        Ok(got)
    };

    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, pairs) = if let Some(r) = &from.config_map_ref {
            match get_cm(&r.name)? {
                Some(cm) => (
                    "configMap",
                    &r.name,
                    cm.data.unwrap_or_default().into_iter().collect::<Vec<_>>(),
                ),
                None if r.optional == Some(true) => continue,
                None => return Err(not_found("configmap", &r.name)),
            }
        } else if let Some(r) = &from.secret_ref {
            match get_secret(&r.name)? {
                Some(s) => (
                    "secret",
                    &r.name,
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect(),
                ),
                None if r.optional == Some(true) => continue,
                None => return Err(not_found("secret", &r.name)),
            }
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            let k = format!("{prefix}{k}");
            if !valid_env_name(&k) {
                invalid.push(k);
                continue;
            }
            env.set(k, v);
        }
        if !invalid.is_empty() {
            invalid.sort();
            env.warnings.push(format!(
                "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }

    for var in c.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                pod_field(pod, &f.field_path, ctx)
                    .ok_or_else(|| EnvError(format!("unsupported fieldPath: {}", f.field_path)))?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(pod, r, Some(&c.name), ctx.allocatable)?
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                match get_cm(&r.name)? {
                    None if optional => continue,
                    None => return Err(not_found("configmap", &r.name)),
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            )))
                        }
                    },
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                match get_secret(&r.name)? {
                    None if optional => continue,
                    None => return Err(not_found("secret", &r.name)),
                    Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            )))
                        }
                    },
                }
            } else {
                String::new()
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            expand(&raw, |name| env.get(name).map(str::to_string))
        };
        env.set(var.name.clone(), value);
    }
    Ok(env)
}

/// The service environment variables kubelet sets first (everything
/// after overrides them): those of the Services of the pod's namespace
/// when `enableServiceLinks` is not false.
fn service_links(pod: &Pod, src: &dyn Sources, ns: &str) -> Result<Environment, EnvError> {
    let mut env = Environment::default();
    if pod.spec.as_ref().and_then(|s| s.enable_service_links) == Some(false) {
        return Ok(env);
    }
    let services = src
        .services(ns)
        .map_err(|e| EnvError(format!("couldn't list services of namespace {ns}: {e}")))?;
    for (k, v) in crate::services::service_env(&services) {
        env.set(k, v);
    }
    Ok(env)
}

/// `command` and `args` of `c` with `$(VAR)` expanded against `env`.
pub fn expand_command_and_args(c: &Container, env: &Environment) -> (Vec<String>, Vec<String>) {
    let map = |list: &Option<Vec<String>>| {
        list.iter()
            .flatten()
            .map(|s| expand(s, |n| env.get(n).map(str::to_string)))
            .collect()
    };
    (map(&c.command), map(&c.args))
}

/// `$(VAR)` expansion with Kubernetes' rules
/// (`third_party/forked/golang/expansion`): `$(NAME)` becomes the value of
/// NAME, or stays as written when NAME is not defined; `$$` is an escaped
/// `$`; a `$` followed by anything else, or an unclosed `$(`, is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(next) = after.chars().next() else {
            // A trailing `$` is kept.
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            c => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `metadata.labels['k']` → ("labels", "k").
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (field, rest) = path.strip_prefix("metadata.")?.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    matches!(field, "labels" | "annotations").then_some((field, key))
}

/// `k="v"` lines, sorted, as kubelet's `FormatMap`.
pub fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a downward API field of `pod`; None when the path is not
/// one the downward API offers.
pub fn pod_field(pod: &Pod, path: &str, ctx: &PodContext) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some((field, key)) = subscript(path) {
        let map = if field == "labels" {
            m.labels.as_ref()
        } else {
            m.annotations.as_ref()
        };
        return Some(map.and_then(|l| l.get(key)).cloned().unwrap_or_default());
    }
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => crate::node::namespace_of(m),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref()),
        "metadata.annotations" => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        // kubelet joins them with commas.
        "status.podIPs" => ctx.pod_ips.join(","),
        _ => return None,
    })
}

/// A container resource as the downward API gives it: limits default to
/// node allocatable, the value is divided by `divisor` (default 1) and
/// rounded up, as kubelet's `ExtractContainerResourceValue`.
pub fn resource_value(
    pod: &Pod,
    r: &ResourceFieldSelector,
    default_container: Option<&str>,
    alloc: Allocatable,
) -> Result<String, EnvError> {
    let name = r
        .container_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .or(default_container)
        .unwrap_or_default();
    let spec = pod.spec.as_ref();
    let c = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == name)
        .ok_or_else(|| EnvError(format!("container {name:?} not found in the pod")))?;
    let (which, res) = r
        .resource
        .split_once('.')
        .ok_or_else(|| EnvError(format!("unsupported container resource: {}", r.resource)))?;
    let res_map = c.resources.as_ref().and_then(|rr| match which {
        "limits" => rr.limits.as_ref(),
        _ => rr.requests.as_ref(),
    });
    let q = res_map
        .and_then(|m| m.get(res))
        .and_then(|q| peapod_api::parse_quantity(&q.0).ok());
    let divisor = r
        .divisor
        .as_ref()
        .and_then(|d| peapod_api::parse_quantity(&d.0).ok())
        .filter(|d| !d.is_zero());
    let ceil_div = |v: i64, d: i64| -> i64 {
        if d <= 0 {
            return v;
        }
        (v + d - 1).div_euclid(d)
    };
    let value = match res {
        "cpu" => {
            let milli = q.map(|q| q.as_millis()).unwrap_or(if which == "limits" {
                alloc.cpu_milli
            } else {
                0
            });
            ceil_div(milli, divisor.map(|d| d.as_millis()).unwrap_or(1000))
        }
        "memory" | "ephemeral-storage" => {
            let default = match (which, res) {
                ("limits", "memory") => alloc.memory,
                ("limits", _) => alloc.ephemeral_storage,
                _ => 0,
            };
            let bytes = q.map(|q| q.as_bytes()).unwrap_or(default);
            ceil_div(bytes, divisor.map(|d| d.as_bytes()).unwrap_or(1))
        }
        _ => {
            return Err(EnvError(format!(
                "unsupported container resource: {}",
                r.resource
            )))
        }
    };
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_as_kubernetes_documents_it() {
        let vars: BTreeMap<&str, &str> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into();
        let lookup = |n: &str| vars.get(n).map(|v| v.to_string());
        // The cases of Kubernetes' expansion tests.
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("$(VAR_EMPTY)", ""),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("foo$$(VAR_A)", "foo$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$$", "$"),
            ("$", "$"),
            ("$(", "$("),
            ("$(VAR_A", "$(VAR_A"),
            ("$()", "$()"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$(VAR_A)$", "A$"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("$)", "$)"),
            ("$(VAR_A)))", "A))"),
            ("$(UNKNOWN)$(VAR_A)", "$(UNKNOWN)A"),
            ("no refs here", "no refs here"),
            ("$é$(VAR_A)", "$éA"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, lookup), want, "{input:?}");
        }
    }

    struct Map {
        cms: BTreeMap<String, ConfigMap>,
        secrets: BTreeMap<String, Secret>,
    }
    impl Sources for Map {
        fn config_map(&self, _: &str, name: &str) -> Result<Option<ConfigMap>, String> {
            Ok(self.cms.get(name).cloned())
        }
        fn secret(&self, _: &str, name: &str) -> Result<Option<Secret>, String> {
            Ok(self.secrets.get(name).cloned())
        }
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn sources() -> Map {
        let cm: ConfigMap =
            serde_yaml_ng::from_str("metadata: {name: cfg}\ndata: {A: '1', 'bäd': x, B: '$(A)'}\n")
                .unwrap();
        let mut s: Secret =
            serde_yaml_ng::from_str("metadata: {name: sec}\nstringData: {PASS: hunter2}\n")
                .unwrap();
        peapod_api::default_secret(&mut s);
        Map {
            cms: [("cfg".to_string(), cm)].into(),
            secrets: [("sec".to_string(), s)].into(),
        }
    }

    #[test]
    fn env_from_then_env_with_expansion_and_refs() {
        let p = pod(r#"
metadata: {name: web, namespace: default, uid: u1, labels: {app: web}}
spec:
  containers:
  - name: app
    image: x
    command: [sh, -c, 'echo $(GREETING) $$(A) $(NOPE)']
    resources: {limits: {memory: 64Mi}}
    envFrom:
    - configMapRef: {name: cfg}
      prefix: CM_
    - secretRef: {name: missing, optional: true}
    env:
    - {name: GREETING, value: 'hi-$(CM_A)'}
    - {name: P, valueFrom: {secretKeyRef: {name: sec, key: PASS}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: OPT, valueFrom: {configMapKeyRef: {name: cfg, key: nope, optional: true}}}
    - {name: CM_A, value: overridden}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}
"#);
        let ctx = PodContext {
            pod_ips: vec!["10.88.0.5".into(), "fd00::5".into()],
            allocatable: Allocatable {
                cpu_milli: 2000,
                memory: 1 << 30,
                ephemeral_storage: 0,
            },
            ..Default::default()
        };
        let c = &p.spec.as_ref().unwrap().containers[0];
        let env = make_environment(&p, c, &sources(), &ctx).unwrap();
        let get = |k: &str| env.get(k).map(str::to_string);
        assert_eq!(get("CM_A").as_deref(), Some("overridden"));
        // envFrom values are not expanded.
        assert_eq!(get("CM_B").as_deref(), Some("$(A)"));
        assert_eq!(get("GREETING").as_deref(), Some("hi-1"));
        assert_eq!(get("P").as_deref(), Some("hunter2"));
        assert_eq!(get("APP").as_deref(), Some("web"));
        assert_eq!(get("MEM").as_deref(), Some("64"));
        assert_eq!(get("CPU").as_deref(), Some("2000"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("IP").as_deref(), Some("10.88.0.5"));
        assert_eq!(get("IPS").as_deref(), Some("10.88.0.5,fd00::5"));
        assert_eq!(
            env.warnings,
            ["Keys [CM_bäd] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names."]
        );
        let (cmd, _) = expand_command_and_args(c, &env);
        assert_eq!(cmd, ["sh", "-c", "echo hi-1 $(A) $(NOPE)"]);
    }

    #[test]
    fn missing_sources_are_errors_in_kubelets_words() {
        let mk = |env: &str| {
            pod(&format!(
                "metadata: {{name: web, namespace: default}}\nspec:\n  containers:\n  - name: app\n    image: x\n    env: [{env}]\n"
            ))
        };
        let run = |p: &Pod| {
            make_environment(
                p,
                &p.spec.as_ref().unwrap().containers[0],
                &sources(),
                &PodContext::default(),
            )
        };
        assert_eq!(
            run(&mk(
                "{name: X, valueFrom: {configMapKeyRef: {name: nope, key: a}}}"
            ))
            .unwrap_err()
            .0,
            "configmap \"nope\" not found"
        );
        assert_eq!(
            run(&mk(
                "{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: zz}}}"
            ))
            .unwrap_err()
            .0,
            "couldn't find key zz in ConfigMap default/cfg"
        );
        let e = run(&mk(
            "{name: X, valueFrom: {secretKeyRef: {name: sec, key: zz}}}",
        ))
        .unwrap_err();
        assert_eq!(e.0, "couldn't find key zz in Secret default/sec");
        assert_eq!(
            run(&mk(
                "{name: X, valueFrom: {secretKeyRef: {name: gone, key: a}}}"
            ))
            .unwrap_err()
            .0,
            "secret \"gone\" not found"
        );
    }
}
