//! The workload and storage kinds beyond core/v1 Pods, Services, ConfigMaps
//! and Secrets: which ones peapod accepts ([`KINDS`], with their API group,
//! resource name and short names, so the CLI and the daemon agree on paths),
//! and the API server's defaults and validation for Deployments and
//! ReplicaSets (`pkg/apis/apps/v1/defaults.go`, `validation.go`).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// One kind of object peapod stores besides the core ones.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    /// API group: `apps`, `batch`, ... (`""` for core/v1).
    pub group: &'static str,
    pub version: &'static str,
    /// `Deployment`.
    pub kind: &'static str,
    /// `deployments`: the URL segment and the store key's first part.
    pub plural: &'static str,
    /// `deployment`.
    pub singular: &'static str,
    /// `deploy`.
    pub short: &'static [&'static str],
    pub namespaced: bool,
}

impl Kind {
    /// `apps/v1` (`v1` for core).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `/apis/apps/v1` (`/api/v1` for core).
    pub fn group_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// `deployment.apps` (`persistentvolumeclaim` for core): how kubectl
    /// names the kind in `deployment.apps/web created`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// `Deployment.apps`: the kind as the API server's messages name it.
    pub fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether `word` (`deploy`, `deployments`, `deployment`,
    /// `deployment.apps`) names this kind.
    pub fn is_named(&self, word: &str) -> bool {
        let w = word.to_ascii_lowercase();
        w == self.plural
            || w == self.singular
            || self.short.contains(&w.as_str())
            || w == self.qualified()
            || w == format!("{}.{}", self.plural, self.group)
    }
}

macro_rules! kind {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, [$($short:expr),*], $ns:expr) => {
        Kind {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short: &[$($short),*],
            namespaced: $ns,
        }
    };
}

/// Every kind accepted besides the core Pod/Service/ConfigMap/Secret/
/// Namespace.
pub const KINDS: &[Kind] = &[
    kind!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        ["deploy"],
        true
    ),
    kind!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        ["rs"],
        true
    ),
    kind!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        ["sts"],
        true
    ),
    kind!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        ["ds"],
        true
    ),
    kind!("batch", "v1", "Job", "jobs", "job", [], true),
    kind!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        ["cj"],
        true
    ),
    kind!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        ["pv"],
        false
    ),
    kind!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        ["pvc"],
        true
    ),
    kind!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        ["sc"],
        false
    ),
    kind!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        ["hpa"],
        true
    ),
];

/// The kind of `apiVersion`/`kind`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// The kind a CLI word (`deploy`, `replicasets`, `rs`) names.
pub fn kind_named(word: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.is_named(word))
}

/// The kind whose store resource (plural) is `plural`.
pub fn kind_of_plural(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

/// apimachinery's `GetScaledValueFromIntOrPercent`: an int as is, a
/// percentage of `total`, rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p = percent(s)?;
            let x = p as i64 * total as i64;
            Ok(if round_up {
                ((x + 99).div_euclid(100)) as i32
            } else {
                x.div_euclid(100) as i32
            })
        }
    }
}

/// `25%` as 25; an error for anything else.
fn percent(s: &str) -> Result<i32, String> {
    s.strip_suffix('%')
        .and_then(|n| n.parse::<i32>().ok())
        .ok_or_else(|| format!("{s:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))
}

/// The defaults of a pod template's spec: those of a Pod's.
pub fn default_pod_template(t: &mut PodTemplateSpec) {
    if let Some(spec) = t.spec.as_mut() {
        crate::defaults::default_spec(spec);
    }
}

fn default_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some(crate::DEFAULT_NAMESPACE.to_string());
    }
}

/// A Deployment's defaults: replicas 1, strategy RollingUpdate with
/// maxSurge and maxUnavailable 25%, revisionHistoryLimit 10,
/// progressDeadlineSeconds 600, and the pod template's.
pub fn default_deployment(d: &mut Deployment) {
    default_namespace(&mut d.metadata);
    let Some(spec) = d.spec.as_mut() else {
        return;
    };
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy.rolling_update.get_or_insert_with(Default::default);
        ru.max_surge
            .get_or_insert(IntOrString::String("25%".into()));
        ru.max_unavailable
            .get_or_insert(IntOrString::String("25%".into()));
    }
    default_pod_template(&mut spec.template);
}

/// A ReplicaSet's defaults: replicas 1 and the pod template's.
pub fn default_replica_set(rs: &mut ReplicaSet) {
    default_namespace(&mut rs.metadata);
    if let Some(spec) = rs.spec.as_mut() {
        spec.replicas.get_or_insert(1);
        if let Some(t) = spec.template.as_mut() {
            default_pod_template(t);
        }
    }
}

/// `Deployment.apps "web" is invalid: ERR` or `... is invalid: [ERR, ERR]`.
pub(crate) fn invalid(kind: &str, name: &str, errs: Vec<String>) -> Result<(), String> {
    match errs.as_slice() {
        [] => Ok(()),
        [one] => Err(format!("{kind} {name:?} is invalid: {one}")),
        _ => Err(format!("{kind} {name:?} is invalid: [{}]", errs.join(", "))),
    }
}

pub(crate) fn meta_errors(meta: &ObjectMeta, errs: &mut Vec<String>) {
    match meta.name.as_deref() {
        None | Some("") => errs.push("metadata.name: Required value: name is required".into()),
        Some(n) => {
            for e in crate::validate::dns1123_subdomain(n) {
                errs.push(format!("metadata.name: Invalid value: {n:?}: {e}"));
            }
        }
    }
}

fn labels_literal(labels: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}

/// The selector and template checks every controller with a pod template
/// shares (`ValidatePodTemplateSpecForReplicaSet` and friends).
fn selector_template_errors(
    selector: Option<&MetaSelector>,
    template: Option<&PodTemplateSpec>,
    errs: &mut Vec<String>,
) {
    match selector {
        None => errs.push("spec.selector: Required value".into()),
        Some(s)
            if s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|m| m.is_empty()) =>
        {
            errs.push(
                "spec.selector: Invalid value: {}: empty selector is invalid for deployment".into(),
            )
        }
        Some(s) => match crate::selector::LabelSelector::from_meta(s) {
            Err(e) => errs.push(format!("spec.selector.{e}")),
            Ok(sel) => {
                let labels = template.and_then(|t| t.metadata.as_ref()?.labels.as_ref());
                if !sel.matches(labels) {
                    errs.push(format!(
                        "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`; give the template the labels the selector asks for",
                        labels_literal(labels.unwrap_or(&BTreeMap::new()))
                    ));
                }
            }
        },
    }
    match template.and_then(|t| t.spec.as_ref()) {
        None => errs.push("spec.template.spec: Required value".into()),
        Some(spec) => {
            errs.extend(crate::validate::pod_template_spec_errors(
                spec,
                "spec.template.spec",
            ));
            let policy = spec.restart_policy.as_deref().unwrap_or("Always");
            if policy != "Always" {
                errs.push(format!("spec.template.spec.restartPolicy: Unsupported value: {policy:?}: supported values: \"Always\""));
            }
        }
    }
}

fn non_negative(field: &str, v: Option<i32>, errs: &mut Vec<String>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        errs.push(format!(
            "{field}: Invalid value: {v}: must be greater than or equal to 0"
        ));
    }
}

fn int_or_percent(field: &str, v: Option<&IntOrString>, errs: &mut Vec<String>) {
    match v {
        Some(IntOrString::Int(i)) if *i < 0 => errs.push(format!(
            "{field}: Invalid value: {i}: must be greater than or equal to 0"
        )),
        Some(IntOrString::String(s)) => match percent(s) {
            Err(e) => errs.push(format!("{field}: Invalid value: {e}")),
            Ok(p) if p < 0 => errs.push(format!(
                "{field}: Invalid value: {s:?}: must be greater than or equal to 0"
            )),
            Ok(p) if p > 100 && field.ends_with("maxUnavailable") => errs.push(format!(
                "{field}: Invalid value: {s:?}: must not be greater than 100%"
            )),
            Ok(_) => {}
        },
        _ => {}
    }
}

fn is_zero(v: Option<&IntOrString>) -> bool {
    match v {
        None => true,
        Some(IntOrString::Int(i)) => *i == 0,
        Some(IntOrString::String(s)) => percent(s) == Ok(0),
    }
}

/// A (defaulted) Deployment's errors, in the API server's words.
pub fn validate_deployment(d: &Deployment) -> Result<(), String> {
    let mut errs = Vec::new();
    meta_errors(&d.metadata, &mut errs);
    match d.spec.as_ref() {
        None => errs.push("spec: Required value".into()),
        Some(spec) => {
            non_negative("spec.replicas", spec.replicas, &mut errs);
            non_negative("spec.minReadySeconds", spec.min_ready_seconds, &mut errs);
            non_negative(
                "spec.revisionHistoryLimit",
                spec.revision_history_limit,
                &mut errs,
            );
            selector_template_errors(Some(&spec.selector), Some(&spec.template), &mut errs);
            if let Some(s) = spec.strategy.as_ref() {
                match s.type_.as_deref() {
                    Some("Recreate") if s.rolling_update.is_some() => errs.push(
                        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
                    ),
                    Some("Recreate") | None => {}
                    Some("RollingUpdate") => {
                        let ru = s.rolling_update.clone().unwrap_or_default();
                        let surge = "spec.strategy.rollingUpdate.maxSurge";
                        let unav = "spec.strategy.rollingUpdate.maxUnavailable";
                        int_or_percent(surge, ru.max_surge.as_ref(), &mut errs);
                        int_or_percent(unav, ru.max_unavailable.as_ref(), &mut errs);
                        if is_zero(ru.max_surge.as_ref()) && is_zero(ru.max_unavailable.as_ref()) {
                            errs.push(format!("{unav}: Invalid value: 0: may not be 0 when `maxSurge` is 0"));
                        }
                    }
                    Some(other) => errs.push(format!(
                        "spec.strategy.type: Unsupported value: {other:?}: supported values: \"Recreate\", \"RollingUpdate\""
                    )),
                }
            }
            if let Some(p) = spec.progress_deadline_seconds {
                if p <= spec.min_ready_seconds.unwrap_or(0) {
                    errs.push(format!("spec.progressDeadlineSeconds: Invalid value: {p}: must be greater than minReadySeconds"));
                }
            }
        }
    }
    invalid(
        "Deployment.apps",
        d.metadata.name.as_deref().unwrap_or(""),
        errs,
    )
}

/// A (defaulted) ReplicaSet's errors, in the API server's words.
pub fn validate_replica_set(rs: &ReplicaSet) -> Result<(), String> {
    let mut errs = Vec::new();
    meta_errors(&rs.metadata, &mut errs);
    match rs.spec.as_ref() {
        None => errs.push("spec: Required value".into()),
        Some(spec) => {
            non_negative("spec.replicas", spec.replicas, &mut errs);
            non_negative("spec.minReadySeconds", spec.min_ready_seconds, &mut errs);
            selector_template_errors(Some(&spec.selector), spec.template.as_ref(), &mut errs);
        }
    }
    invalid(
        "ReplicaSet.apps",
        rs.metadata.name.as_deref().unwrap_or(""),
        errs,
    )
}

/// `spec.selector` may not change (apps/v1).
fn selector_immutable(
    kind: &str,
    name: &str,
    old: Option<&MetaSelector>,
    new: Option<&MetaSelector>,
) -> Result<(), String> {
    if old != new {
        return Err(format!(
            "{kind} {name:?} is invalid: spec.selector: Invalid value: {}: field is immutable; delete the {} and apply it again to change its selector",
            serde_json::to_string(&new).unwrap_or_default(),
            kind.split('.').next().unwrap_or(kind)
        ));
    }
    Ok(())
}

pub fn validate_deployment_update(old: &Deployment, new: &Deployment) -> Result<(), String> {
    selector_immutable(
        "Deployment.apps",
        new.metadata.name.as_deref().unwrap_or(""),
        old.spec.as_ref().map(|s| &s.selector),
        new.spec.as_ref().map(|s| &s.selector),
    )
}

pub fn validate_replica_set_update(old: &ReplicaSet, new: &ReplicaSet) -> Result<(), String> {
    selector_immutable(
        "ReplicaSet.apps",
        new.metadata.name.as_deref().unwrap_or(""),
        old.spec.as_ref().map(|s| &s.selector),
        new.spec.as_ref().map(|s| &s.selector),
    )
}

/// A Pod of a template: its labels, annotations and spec (the caller sets
/// name, namespace and owner).
pub fn pod_from_template(t: &PodTemplateSpec) -> Pod {
    let meta = t.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            ..Default::default()
        },
        spec: t.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(yaml: &str) -> Deployment {
        let mut d: Deployment = serde_yaml_ng::from_str(yaml).expect("yaml");
        default_deployment(&mut d);
        d
    }

    const GOOD: &str = "metadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox}]}\n";

    #[test]
    fn deployment_defaults_as_the_api_server() {
        let d = deploy(GOOD);
        let s = d.spec.as_ref().expect("spec");
        assert_eq!(s.replicas, Some(1));
        assert_eq!(s.revision_history_limit, Some(10));
        assert_eq!(s.progress_deadline_seconds, Some(600));
        let st = s.strategy.as_ref().expect("strategy");
        assert_eq!(st.type_.as_deref(), Some("RollingUpdate"));
        let ru = st.rolling_update.as_ref().expect("rollingUpdate");
        assert_eq!(ru.max_surge, Some(IntOrString::String("25%".into())));
        assert_eq!(ru.max_unavailable, Some(IntOrString::String("25%".into())));
        let ps = s.template.spec.as_ref().expect("pod spec");
        assert_eq!(ps.restart_policy.as_deref(), Some("Always"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(validate_deployment(&d), Ok(()));
    }

    #[test]
    fn selector_must_match_template_labels() {
        let d = deploy(&GOOD.replace("{labels: {app: web}}", "{labels: {app: other}}"));
        let e = validate_deployment(&d).expect_err("mismatch");
        assert!(
            e.starts_with("Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"),
            "{e}"
        );
        let d = deploy(&GOOD.replace("  selector: {matchLabels: {app: web}}\n", ""));
        let e = validate_deployment(&d).expect_err("no selector");
        assert!(
            e.contains("spec.selector: Invalid value: {}: empty selector"),
            "{e}"
        );
    }

    #[test]
    fn zero_surge_and_unavailable_and_bad_percent_are_invalid() {
        let d = deploy(&format!(
            "{GOOD}  strategy: {{rollingUpdate: {{maxSurge: 0, maxUnavailable: 0}}}}\n"
        ));
        let e = validate_deployment(&d).expect_err("both zero");
        assert!(e.contains("may not be 0 when `maxSurge` is 0"), "{e}");
        let d = deploy(&format!(
            "{GOOD}  strategy: {{rollingUpdate: {{maxSurge: abc}}}}\n"
        ));
        let e = validate_deployment(&d).expect_err("bad percent");
        assert!(e.contains("spec.strategy.rollingUpdate.maxSurge"), "{e}");
    }

    #[test]
    fn scaled_values_round_as_kubernetes() {
        let p = |s: &str| IntOrString::String(s.into());
        // maxSurge rounds up, maxUnavailable down.
        assert_eq!(scaled_value(&p("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&p("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&p("25%"), 1, true), Ok(1));
        assert_eq!(scaled_value(&p("25%"), 1, false), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(2), 10, false), Ok(2));
        assert!(scaled_value(&p("x"), 10, false).is_err());
    }

    #[test]
    fn kinds_are_named_as_kubectl_names_them() {
        assert_eq!(kind_named("deploy").map(|k| k.kind), Some("Deployment"));
        assert_eq!(kind_named("rs").map(|k| k.kind), Some("ReplicaSet"));
        assert_eq!(
            kind_named("deployments.apps").map(|k| k.kind),
            Some("Deployment")
        );
        let d = find_kind("apps/v1", "Deployment").expect("kind");
        assert_eq!(d.group_path(), "/apis/apps/v1");
        assert_eq!(d.qualified(), "deployment.apps");
        let pvc = kind_named("pvc").expect("pvc");
        assert_eq!(pvc.group_path(), "/api/v1");
        assert!(find_kind("apps/v1beta1", "Deployment").is_none());
    }
}
