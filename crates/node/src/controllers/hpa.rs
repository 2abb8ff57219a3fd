//! The HorizontalPodAutoscaler controller (autoscaling/v2, as
//! kube-controller-manager's `pkg/controller/podautoscaler`): every sync
//! period (the daemon's `--metrics-interval`, which is also how fresh the
//! metrics are) it reads the target's pods' usage from the node's metrics,
//! asks `crate::autoscaling` for the replica count, stabilises and bounds
//! it by `spec.behavior`, and writes `spec.replicas` of the Deployment,
//! ReplicaSet or StatefulSet it scales. Status (current and desired
//! replicas, current metrics, lastScaleTime) and the AbleToScale,
//! ScalingActive and ScalingLimited conditions follow kube's wording.
//!
//! Recommendations and scale events are kept in memory, as kube does: a
//! daemon restart starts a fresh stabilisation window.

use super::{Controller, Reconciled};
use crate::autoscaling::{self, Limited, PodSample, PolicyKind, Rules, Select, Stamped};
use crate::events::About;
use crate::node::Node;
use chrono::Utc;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as MetaSelector, Time};
use peapod_api::selector::LabelSelector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const ABOUT: About = About {
    kind: "HorizontalPodAutoscaler",
    api_version: "autoscaling/v2",
    component: "horizontal-pod-autoscaler",
};

/// What kube keeps between syncs of one autoscaler.
#[derive(Default)]
struct Memory {
    recommendations: Vec<Stamped>,
    /// Replica changes made (positive up, negative down).
    events: Vec<Stamped>,
}

#[derive(Default)]
pub struct HpaController {
    memory: Mutex<HashMap<String, Memory>>,
}

impl Controller for HpaController {
    fn name(&self) -> &'static str {
        "horizontalpodautoscaler"
    }
    fn primary_prefix(&self) -> &'static str {
        "horizontalpodautoscalers/"
    }
    fn reconcile(&self, node: &Arc<Node>, key: &str) -> Reconciled {
        // An autoscaler keeps the metrics sampled.
        node.metrics.want();
        let period = node.metrics.interval();
        let Some(hpa) = node
            .store
            .get::<HorizontalPodAutoscaler>(key)
            .map_err(|e| e.to_string())?
        else {
            self.memory().remove(key);
            return Ok(None);
        };
        if hpa.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let outcome = self.sync(node, key, &hpa);
        write_status(node, key, &hpa, outcome)?;
        Ok(Some(period))
    }
}

/// The result of one sync, for the status.
struct Outcome {
    current: i32,
    desired: i32,
    metrics: Vec<MetricStatus>,
    scaled_at: Option<Time>,
    /// (type, status, reason, message)
    conditions: Vec<(&'static str, &'static str, &'static str, String)>,
}

/// A scale target's replicas and selector.
struct Target {
    kind: &'static str,
    key: String,
    replicas: i32,
    selector: Option<MetaSelector>,
}

fn target_of(node: &Node, ns: &str, hpa: &HorizontalPodAutoscaler) -> Result<Target, String> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let r = &spec.scale_target_ref;
    let (kind, plural) = match r.kind.as_str() {
        "Deployment" => ("Deployment", "deployments"),
        "ReplicaSet" => ("ReplicaSet", "replicasets"),
        "StatefulSet" => ("StatefulSet", "statefulsets"),
        other => {
            return Err(format!(
            "the HPA controller can scale Deployments, ReplicaSets and StatefulSets, not {other:?}"
        ))
        }
    };
    let key = crate::store::key(plural, ns, &r.name);
    let missing = || format!("{}.apps \"{}\" not found", plural, r.name);
    let err = |e: crate::store::StoreError| e.to_string();
    let (replicas, selector) = match kind {
        "Deployment" => {
            let d = node
                .store
                .get::<Deployment>(&key)
                .map_err(err)?
                .ok_or_else(missing)?;
            let s = d.spec.unwrap_or_default();
            (s.replicas.unwrap_or(1), Some(s.selector))
        }
        "ReplicaSet" => {
            let d = node
                .store
                .get::<ReplicaSet>(&key)
                .map_err(err)?
                .ok_or_else(missing)?;
            let s = d.spec.unwrap_or_default();
            (s.replicas.unwrap_or(1), Some(s.selector))
        }
        _ => {
            let d = node
                .store
                .get::<StatefulSet>(&key)
                .map_err(err)?
                .ok_or_else(missing)?;
            let s = d.spec.unwrap_or_default();
            (s.replicas.unwrap_or(1), Some(s.selector))
        }
    };
    Ok(Target {
        kind,
        key,
        replicas,
        selector,
    })
}

/// Sets the target's `spec.replicas`.
fn scale(node: &Node, t: &Target, replicas: i32) -> Result<(), String> {
    let set = |r: &mut Option<i32>| {
        if *r == Some(replicas) {
            return false;
        }
        *r = Some(replicas);
        true
    };
    let res = match t.kind {
        "Deployment" => node
            .store
            .update_with::<Deployment>(&t.key, |d| {
                d.spec.as_mut().is_some_and(|s| set(&mut s.replicas))
            })
            .map(|_| ()),
        "ReplicaSet" => node
            .store
            .update_with::<ReplicaSet>(&t.key, |d| {
                d.spec.as_mut().is_some_and(|s| set(&mut s.replicas))
            })
            .map(|_| ()),
        _ => node
            .store
            .update_with::<StatefulSet>(&t.key, |d| {
                d.spec.as_mut().is_some_and(|s| set(&mut s.replicas))
            })
            .map(|_| ()),
    };
    res.map_err(|e| e.to_string())
}

/// `spec.behavior` for one direction, over kube's defaults.
fn rules(given: Option<&HPAScalingRules>, default: Rules) -> Rules {
    let Some(g) = given else {
        return default;
    };
    let policies = match g.policies.as_ref() {
        Some(p) => p
            .iter()
            .map(|p| {
                let kind = if p.type_ == "Pods" {
                    PolicyKind::Pods
                } else {
                    PolicyKind::Percent
                };
                (
                    kind,
                    p.value,
                    Duration::from_secs(p.period_seconds.max(0) as u64),
                )
            })
            .collect(),
        None => default.policies,
    };
    Rules {
        stabilization: g
            .stabilization_window_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(default.stabilization),
        policies,
        select: match g.select_policy.as_deref() {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            Some(_) => Select::Max,
            None => default.select,
        },
    }
}

/// The resource's requests of a pod, summed (None when a container has
/// none), in millicores for cpu and bytes otherwise.
fn pod_request(pod: &Pod, resource: &str, container: Option<&str>) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let mut total = 0;
    for c in &spec.containers {
        if container.is_some_and(|n| n != c.name) {
            continue;
        }
        let q = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource))?;
        let q = peapod_api::parse_quantity(&q.0).ok()?;
        total += if resource == "cpu" {
            q.as_millis()
        } else {
            q.as_bytes()
        };
    }
    Some(total)
}

impl HpaController {
    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memory>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync(&self, node: &Node, key: &str, hpa: &HorizontalPodAutoscaler) -> Outcome {
        let ns = crate::node::namespace_of(&hpa.metadata);
        let name = hpa.metadata.name.clone().unwrap_or_default();
        let status = hpa.status.clone().unwrap_or_default();
        let mut out = Outcome {
            current: status.current_replicas.unwrap_or(0),
            desired: status.desired_replicas,
            metrics: Vec::new(),
            scaled_at: status.last_scale_time.clone(),
            conditions: Vec::new(),
        };
        let target = match target_of(node, &ns, hpa) {
            Ok(t) => t,
            Err(e) => {
                let msg =
                    format!("the HPA controller was unable to get the target's current scale: {e}");
                node.events.record_for(
                    &ABOUT,
                    &hpa.metadata,
                    "Warning",
                    "FailedGetScale",
                    msg.clone(),
                );
                out.conditions
                    .push(("AbleToScale", "False", "FailedGetScale", msg));
                return out;
            }
        };
        out.current = target.replicas;
        out.desired = target.replicas;
        out.conditions.push((
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        ));
        let spec = hpa.spec.clone().unwrap_or_default();
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        if target.replicas == 0 && min != 0 {
            out.desired = 0;
            out.conditions.push((
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            ));
            return out;
        }

        let selector = target
            .selector
            .as_ref()
            .map(LabelSelector::from_meta)
            .transpose()
            .ok()
            .flatten();
        let pods: Vec<Pod> = node
            .store
            .list::<Pod>(&format!("pods/{ns}/"))
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                selector
                    .as_ref()
                    .is_some_and(|s| s.matches(p.metadata.labels.as_ref()))
                    && p.metadata.deletion_timestamp.is_none()
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Failed" | "Succeeded")
                    )
            })
            .collect();

        // The largest proposal over the metrics (kube's default: CPU at
        // 80 % of request when none is given).
        let now = SystemTime::now();
        let mut proposal: Option<(i32, String)> = None;
        let mut failure: Option<(&'static str, String)> = None;
        let default_metric = vec![default_cpu_metric()];
        let metrics = spec
            .metrics
            .as_ref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&default_metric);
        for m in metrics {
            let (resource, container, t) = match (
                m.type_.as_str(),
                m.resource.as_ref(),
                m.container_resource.as_ref(),
            ) {
                ("Resource", Some(r), _) => (r.name.as_str(), None, &r.target),
                ("ContainerResource", _, Some(r)) => {
                    (r.name.as_str(), Some(r.container.as_str()), &r.target)
                }
                (other, _, _) => {
                    failure = Some((
                        "FailedGetExternalMetric",
                        format!("metric type {other:?} is not supported by peapod: use Resource or ContainerResource metrics (cpu, memory)"),
                    ));
                    continue;
                }
            };
            let samples: Vec<PodSample> = pods
                .iter()
                .map(|p| sample(node, p, resource, container))
                .collect();
            let (target_pct, samples) = match (
                t.type_.as_str(),
                t.average_utilization,
                t.average_value.as_ref(),
            ) {
                ("Utilization", Some(u), _) => (u, samples),
                ("AverageValue", _, Some(v)) => {
                    // A raw average target: usage against the target value
                    // per pod, as a percentage of 100.
                    let per_pod = peapod_api::parse_quantity(&v.0)
                        .map(|q| {
                            if resource == "cpu" {
                                q.as_millis()
                            } else {
                                q.as_bytes()
                            }
                        })
                        .unwrap_or(0);
                    (
                        100,
                        samples
                            .into_iter()
                            .map(|mut s| {
                                s.request = Some(per_pod);
                                s
                            })
                            .collect(),
                    )
                }
                _ => {
                    failure = Some((
                        "InvalidMetricSourceType",
                        format!("the {resource} metric needs target.averageUtilization (type Utilization) or target.averageValue (type AverageValue)"),
                    ));
                    continue;
                }
            };
            match autoscaling::replicas_for_utilization(target.replicas, target_pct, &samples) {
                Ok(p) => {
                    let current = if t.type_ == "Utilization" {
                        MetricValueStatus {
                            average_utilization: Some(p.utilization),
                            average_value: Some(quantity(resource, p.average)),
                            ..Default::default()
                        }
                    } else {
                        MetricValueStatus {
                            average_value: Some(quantity(resource, p.average)),
                            ..Default::default()
                        }
                    };
                    out.metrics.push(MetricStatus {
                        type_: "Resource".into(),
                        resource: Some(ResourceMetricStatus {
                            name: resource.to_string(),
                            current,
                        }),
                        ..Default::default()
                    });
                    let reason = format!(
                        "{resource} resource {} above target",
                        if t.type_ == "Utilization" {
                            "utilization (percentage of request)"
                        } else {
                            ""
                        }
                    )
                    .replace("  ", " ");
                    if proposal.as_ref().is_none_or(|(r, _)| p.replicas > *r) {
                        proposal = Some((p.replicas, reason));
                    }
                }
                Err(e) => {
                    failure = Some((
                        "FailedGetResourceMetric",
                        format!("failed to get {resource} utilization: {e}"),
                    ));
                }
            }
        }
        let Some((recommended, mut reason)) = proposal else {
            let (why, msg) = failure.unwrap_or(("FailedGetResourceMetric", "no metrics".into()));
            node.events
                .record_for(&ABOUT, &hpa.metadata, "Warning", why, msg.clone());
            out.conditions.push((
                "ScalingActive",
                "False",
                why,
                format!("the HPA was unable to compute the replica count: {msg}"),
            ));
            return out;
        };
        out.conditions.push((
            "ScalingActive",
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from the metrics".into(),
        ));

        let behavior = spec.behavior.as_ref();
        let up = rules(
            behavior.and_then(|b| b.scale_up.as_ref()),
            Rules::default_up(),
        );
        let down = rules(
            behavior.and_then(|b| b.scale_down.as_ref()),
            Rules::default_down(),
        );
        let mut memory = self.memory();
        let mem = memory.entry(key.to_string()).or_default();
        let keep = up.stabilization.max(down.stabilization);
        mem.recommendations
            .retain(|r| now.duration_since(r.at).map(|d| d <= keep).unwrap_or(true));
        let longest_period = up
            .policies
            .iter()
            .chain(down.policies.iter())
            .map(|p| p.2)
            .max()
            .unwrap_or_default();
        mem.events.retain(|e| {
            now.duration_since(e.at)
                .map(|d| d <= longest_period)
                .unwrap_or(true)
        });
        let stabilized = autoscaling::stabilize(
            now,
            target.replicas,
            recommended,
            &mem.recommendations,
            &up,
            &down,
        );
        mem.recommendations.push(Stamped {
            at: now,
            value: recommended,
        });
        let (desired, limited) = autoscaling::bound(
            now,
            target.replicas,
            stabilized,
            (min, max),
            &mem.events,
            &up,
            &down,
        );
        out.conditions.push(match limited {
            Some(Limited::TooManyReplicas) => (
                "ScalingLimited",
                "True",
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count".into(),
            ),
            Some(Limited::TooFewReplicas) => (
                "ScalingLimited",
                "True",
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count".into(),
            ),
            Some(Limited::ScaleUpLimit) => (
                "ScalingLimited",
                "True",
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate".into(),
            ),
            Some(Limited::ScaleDownLimit) => (
                "ScalingLimited",
                "True",
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate".into(),
            ),
            None => (
                "ScalingLimited",
                "False",
                "DesiredWithinRange",
                "the desired count is within the acceptable range".into(),
            ),
        });
        out.desired = desired;
        if desired != target.replicas {
            if desired < target.replicas {
                reason = "All metrics below target".into();
            }
            if let Err(e) = scale(node, &target, desired) {
                let msg = format!("New size: {desired}; reason: {reason}; error: {e}");
                node.events.record_for(
                    &ABOUT,
                    &hpa.metadata,
                    "Warning",
                    "FailedRescale",
                    msg.clone(),
                );
                out.conditions[0] = ("AbleToScale", "False", "FailedUpdateScale", msg);
                return out;
            }
            mem.events.push(Stamped {
                at: now,
                value: desired - target.replicas,
            });
            node.events.record_for(
                &ABOUT,
                &hpa.metadata,
                "Normal",
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            );
            tracing::info!(hpa = %format!("{ns}/{name}"), from = target.replicas, to = desired, "rescaled");
            out.scaled_at = Some(crate::time::now());
            out.conditions[0] = (
                "AbleToScale",
                "True",
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
        } else {
            out.conditions[0] = (
                "AbleToScale",
                "True",
                "ReadyForNewScale",
                "recommended size matches current size".into(),
            );
        }
        out
    }
}

fn default_cpu_metric() -> k8s_openapi::api::autoscaling::v2::MetricSpec {
    k8s_openapi::api::autoscaling::v2::MetricSpec {
        type_: "Resource".into(),
        resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricSource {
            name: "cpu".into(),
            target: k8s_openapi::api::autoscaling::v2::MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(80),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// A pod as the calculator sees it, for `resource`.
fn sample(node: &Node, pod: &Pod, resource: &str, container: Option<&str>) -> PodSample {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let usage = node.metrics.pod(&uid);
    let value = usage.as_ref().map(|u| {
        u.containers
            .iter()
            .filter(|c| container.is_none_or(|n| n == c.name))
            .map(|c| {
                if resource == "cpu" {
                    (c.nano_cpu / 1_000_000) as i64
                } else {
                    c.memory as i64
                }
            })
            .sum::<i64>()
    });
    // CPU of a pod that is not Ready, or turned Ready after the sample
    // window began while it is still starting, is not trusted.
    let unready = resource == "cpu" && {
        let ready = super::replicaset::ready_since(pod).map(|t| t.timestamp());
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_second());
        let starting = started.is_some_and(|start| {
            Utc::now().timestamp() - start < autoscaling::CPU_INITIALIZATION_PERIOD.as_secs() as i64
        });
        match (ready, usage.as_ref()) {
            (None, _) => true,
            (Some(since), Some(u)) if starting => {
                let window_start = u.timestamp.timestamp() - u.window.as_secs() as i64;
                window_start < since
            }
            _ => false,
        }
    };
    PodSample {
        name: pod.metadata.name.clone().unwrap_or_default(),
        request: pod_request(pod, resource, container),
        usage: value,
        unready,
    }
}

fn quantity(resource: &str, value: i64) -> Quantity {
    Quantity(if resource == "cpu" {
        format!("{value}m")
    } else {
        value.to_string()
    })
}

fn write_status(
    node: &Node,
    key: &str,
    hpa: &HorizontalPodAutoscaler,
    out: Outcome,
) -> Result<(), String> {
    let now = crate::time::now();
    node.store
        .update_with_sync::<HorizontalPodAutoscaler>(key, crate::store::Sync::Lazy, |cur| {
            if cur.metadata.uid != hpa.metadata.uid {
                return false;
            }
            let old = cur.status.clone().unwrap_or_default();
            let conditions: Vec<HorizontalPodAutoscalerCondition> = out
                .conditions
                .iter()
                .map(|(t, s, r, m)| {
                    let same = old
                        .conditions
                        .as_ref()
                        .and_then(|cs| cs.iter().find(|c| c.type_ == *t && c.status == *s));
                    HorizontalPodAutoscalerCondition {
                        type_: t.to_string(),
                        status: s.to_string(),
                        reason: Some(r.to_string()),
                        message: Some(m.clone()),
                        last_transition_time: Some(
                            same.and_then(|c| c.last_transition_time.clone())
                                .unwrap_or_else(|| now.clone()),
                        ),
                    }
                })
                .collect();
            let status = HorizontalPodAutoscalerStatus {
                current_replicas: Some(out.current),
                desired_replicas: out.desired,
                current_metrics: (!out.metrics.is_empty()).then(|| out.metrics.clone()),
                last_scale_time: out.scaled_at.clone(),
                observed_generation: cur.metadata.generation,
                conditions: Some(conditions),
            };
            if cur.status.as_ref() == Some(&status) {
                return false;
            }
            cur.status = Some(status);
            true
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}
