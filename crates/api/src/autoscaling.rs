//! HorizontalPodAutoscaler (autoscaling/v2): the API server's defaults and
//! validation.

use crate::workloads::{invalid, meta_errors};
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, MetricSpec, MetricTarget, ResourceMetricSource,
};

/// minReplicas 1 and, without metrics, CPU at 80 % of request.
pub fn default_hpa(hpa: &mut HorizontalPodAutoscaler) {
    let Some(spec) = hpa.spec.as_mut() else {
        return;
    };
    if spec.min_replicas.is_none() {
        spec.min_replicas = Some(1);
    }
    if spec.metrics.as_ref().is_none_or(|m| m.is_empty()) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
}

fn target_errors(at: &str, t: &MetricTarget, errs: &mut Vec<String>) {
    match t.type_.as_str() {
        "Utilization" => match t.average_utilization {
            Some(u) if u > 0 => {}
            _ => errs.push(format!(
                "{at}.target.averageUtilization: Required value: must be a positive percentage for type Utilization"
            )),
        },
        "AverageValue" => {
            let ok = t
                .average_value
                .as_ref()
                .and_then(|q| crate::parse_quantity(&q.0).ok())
                .is_some_and(|q| !q.is_negative() && !q.is_zero());
            if !ok {
                errs.push(format!(
                    "{at}.target.averageValue: Required value: must be a positive quantity for type AverageValue"
                ));
            }
        }
        other => errs.push(format!(
            "{at}.target.type: Unsupported value: {other:?}: supported values: \"Utilization\", \"AverageValue\""
        )),
    }
}

pub fn validate_hpa(hpa: &HorizontalPodAutoscaler) -> Result<(), String> {
    let mut errs = Vec::new();
    meta_errors(&hpa.metadata, &mut errs);
    let name = hpa.metadata.name.as_deref().unwrap_or("");
    let Some(spec) = hpa.spec.as_ref() else {
        errs.push("spec: Required value".into());
        return invalid("HorizontalPodAutoscaler.autoscaling", name, errs);
    };
    if spec.scale_target_ref.kind.is_empty() {
        errs.push("spec.scaleTargetRef.kind: Required value".into());
    }
    if spec.scale_target_ref.name.is_empty() {
        errs.push("spec.scaleTargetRef.name: Required value".into());
    }
    let min = spec.min_replicas.unwrap_or(1);
    if min < 1 {
        errs.push(format!(
            "spec.minReplicas: Invalid value: {min}: must be greater than or equal to 1"
        ));
    }
    if spec.max_replicas < min.max(1) {
        errs.push(format!(
            "spec.maxReplicas: Invalid value: {}: must be greater than or equal to `minReplicas`",
            spec.max_replicas
        ));
    }
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        let at = format!("spec.metrics[{i}]");
        match (m.type_.as_str(), m.resource.as_ref(), m.container_resource.as_ref()) {
            ("Resource", Some(r), _) => {
                if !matches!(r.name.as_str(), "cpu" | "memory") {
                    errs.push(format!(
                        "{at}.resource.name: Unsupported value: {:?}: supported values: \"cpu\", \"memory\"",
                        r.name
                    ));
                }
                target_errors(&format!("{at}.resource"), &r.target, &mut errs);
            }
            ("ContainerResource", _, Some(r)) => {
                if r.container.is_empty() {
                    errs.push(format!("{at}.containerResource.container: Required value"));
                }
                target_errors(&format!("{at}.containerResource"), &r.target, &mut errs);
            }
            ("Resource", None, _) => errs.push(format!(
                "{at}.resource: Required value: must populate information for the given metric source"
            )),
            ("ContainerResource", _, None) => errs.push(format!(
                "{at}.containerResource: Required value: must populate information for the given metric source"
            )),
            (other, _, _) => errs.push(format!(
                "{at}.type: Unsupported value: {other:?}: peapod autoscales on \"Resource\" and \"ContainerResource\" metrics (cpu, memory) from its own metrics; Pods, Object and External metrics need a custom metrics API"
            )),
        }
    }
    invalid("HorizontalPodAutoscaler.autoscaling", name, errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(yaml: &str) -> HorizontalPodAutoscaler {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_and_errors() {
        let mut h = hpa("metadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 5\n");
        default_hpa(&mut h);
        assert_eq!(h.spec.as_ref().unwrap().min_replicas, Some(1));
        let m = &h.spec.as_ref().unwrap().metrics.as_ref().unwrap()[0];
        assert_eq!(
            m.resource.as_ref().unwrap().target.average_utilization,
            Some(80)
        );
        validate_hpa(&h).unwrap();

        let h = hpa("metadata: {name: web}\nspec:\n  scaleTargetRef: {kind: Deployment, name: ''}\n  minReplicas: 3\n  maxReplicas: 2\n  metrics:\n  - type: Resource\n    resource: {name: gpu, target: {type: Utilization}}\n  - type: External\n");
        let e = validate_hpa(&h).unwrap_err();
        for want in [
            "HorizontalPodAutoscaler.autoscaling \"web\" is invalid",
            "spec.scaleTargetRef.name: Required value",
            "spec.maxReplicas: Invalid value: 2",
            "spec.metrics[0].resource.name: Unsupported value: \"gpu\"",
            "spec.metrics[0].resource.target.averageUtilization: Required value",
            "spec.metrics[1].type: Unsupported value: \"External\"",
        ] {
            assert!(e.contains(want), "{want} not in {e}");
        }
    }
}
