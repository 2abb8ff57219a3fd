//! The HorizontalPodAutoscaler's arithmetic, as kube-controller-manager's
//! `podautoscaler` does it: the replica count a resource-utilisation
//! target asks for (`replica_calculator.go`), then the stabilisation
//! windows and `behavior` policies that bound how fast it may move
//! (`horizontal.go`). Pure functions; the controller feeds them.

use std::time::{Duration, SystemTime};

/// kube-controller-manager's `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;
/// How long after start a pod's CPU is not trusted unless it is Ready
/// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// A pod that turned Ready within this time of starting may still be
/// warming up (`--horizontal-pod-autoscaler-initial-readiness-delay`).
pub const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);
/// The default scale-down stabilisation window.
pub const DEFAULT_SCALE_DOWN_WINDOW: Duration = Duration::from_secs(300);

/// One pod the target's selector matches, as the calculator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSample {
    pub name: String,
    /// The resource's request summed over the pod's containers; None when
    /// a container has none (utilisation is then undefined).
    pub request: Option<i64>,
    /// Usage from the metrics (millicores or bytes); None when missing.
    pub usage: Option<i64>,
    /// Counted as not yet ready (CPU only: not Ready, or just started).
    pub unready: bool,
}

/// What the calculator proposes for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub replicas: i32,
    /// The average utilisation of the pods with metrics, percent of
    /// request (what `kubectl get hpa` shows as the current value).
    pub utilization: i32,
    /// The average raw usage of those pods.
    pub average: i64,
}

/// The replicas that bring average utilisation to `target` percent
/// (`GetResourceReplicas`): missing pods count as 100 % of their request
/// when scaling down and 0 % when scaling up, not-yet-ready pods as 0 %
/// when scaling up, and nothing moves within the tolerance.
pub fn replicas_for_utilization(
    current: i32,
    target: i32,
    pods: &[PodSample],
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods match the target's selector".into());
    }
    if let Some(p) = pods.iter().find(|p| p.request.is_none()) {
        return Err(format!(
            "missing request for the resource in pod {:?}: set resources.requests on every container",
            p.name
        ));
    }
    let with_metrics: Vec<&PodSample> = pods
        .iter()
        .filter(|p| p.usage.is_some() && !p.unready)
        .collect();
    if with_metrics.is_empty() && pods.iter().all(|p| p.usage.is_none()) {
        return Err("did not receive metrics for any ready pods".into());
    }
    let usage: i64 = with_metrics.iter().filter_map(|p| p.usage).sum();
    let request: i64 = with_metrics.iter().filter_map(|p| p.request).sum();
    let (ratio, utilization) = utilization_ratio(usage, request, target);
    let average = usage / with_metrics.len().max(1) as i64;
    let missing: Vec<&PodSample> = pods.iter().filter(|p| p.usage.is_none()).collect();
    let unready: Vec<&PodSample> = pods
        .iter()
        .filter(|p| p.usage.is_some() && p.unready)
        .collect();
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    let scale_up_unready = ratio > 1.0 && !unready.is_empty();
    if missing.is_empty() && !scale_up_unready {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal((ratio * with_metrics.len() as f64).ceil() as i32));
    }
    // Recompute with the assumptions above.
    let mut usage = usage;
    let mut request = request;
    let mut counted = with_metrics.len();
    for p in &missing {
        let r = p.request.unwrap_or(0);
        if ratio < 1.0 {
            // On a scale-down a missing pod counts as using all of its
            // request (or the target, when that is above 100 %).
            usage += r * target.max(100) as i64 / 100;
        }
        request += r;
        counted += 1;
    }
    if scale_up_unready {
        for p in &unready {
            request += p.request.unwrap_or(0);
            counted += 1;
        }
    }
    let (new_ratio, _) = utilization_ratio(usage, request, target);
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * counted as f64).ceil() as i32;
    // A change against the direction of the first estimate is no change.
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

/// Utilisation in whole percent of request (as the metrics client rounds
/// it) and its ratio to the target.
fn utilization_ratio(usage: i64, request: i64, target: i32) -> (f64, i32) {
    if request <= 0 || target <= 0 {
        return (0.0, 0);
    }
    let util = (usage * 100 / request) as i32;
    (util as f64 / target as f64, util)
}

/// `spec.behavior` for one direction, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization: Duration,
    /// (`Pods` or `Percent`, value, period).
    pub policies: Vec<(PolicyKind, i32, Duration)>,
    pub select: Select,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

impl Rules {
    /// Kubernetes' default scale-up: no window, 4 pods or 100 % per 15 s,
    /// whichever allows more.
    pub fn default_up() -> Self {
        Rules {
            stabilization: Duration::ZERO,
            policies: vec![
                (PolicyKind::Pods, 4, Duration::from_secs(15)),
                (PolicyKind::Percent, 100, Duration::from_secs(15)),
            ],
            select: Select::Max,
        }
    }

    /// Kubernetes' default scale-down: a 300 s window, 100 % per 15 s.
    pub fn default_down() -> Self {
        Rules {
            stabilization: DEFAULT_SCALE_DOWN_WINDOW,
            policies: vec![(PolicyKind::Percent, 100, Duration::from_secs(15))],
            select: Select::Max,
        }
    }
}

/// A past recommendation or scale event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamped {
    pub at: SystemTime,
    pub value: i32,
}

/// The stabilised recommendation: the lowest of the scale-up window's
/// recommendations and the highest of the scale-down window's, as
/// `stabilizeRecommendationWithBehaviors` does.
pub fn stabilize(
    now: SystemTime,
    current: i32,
    desired: i32,
    recommendations: &[Stamped],
    up: &Rules,
    down: &Rules,
) -> i32 {
    let within = |r: &&Stamped, window: Duration| {
        now.duration_since(r.at)
            .map(|d| d <= window)
            .unwrap_or(true)
    };
    let mut up_rec = desired;
    let mut down_rec = desired;
    for r in recommendations {
        if within(&r, up.stabilization) {
            up_rec = up_rec.min(r.value);
        }
        if within(&r, down.stabilization) {
            down_rec = down_rec.max(r.value);
        }
    }
    // Scale up only as far as every recent recommendation agrees, down
    // only as far as every recent one agrees; never past the current
    // count in the other direction.
    let mut result = current;
    if result < up_rec {
        result = up_rec;
    }
    if result > down_rec {
        result = down_rec;
    }
    result
}

/// How many replicas were added (up) or removed (down) within `period`.
fn changed_in(now: SystemTime, events: &[Stamped], period: Duration, up: bool) -> i32 {
    events
        .iter()
        .filter(|e| {
            now.duration_since(e.at)
                .map(|d| d <= period)
                .unwrap_or(true)
        })
        .map(|e| e.value)
        .filter(|v| if up { *v > 0 } else { *v < 0 })
        .map(|v| v.abs())
        .sum()
}

/// The most the policies let the count rise to, from `current`, given the
/// scale-up events (positive changes) in `events`.
pub fn scale_up_limit(now: SystemTime, current: i32, events: &[Stamped], rules: &Rules) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut result: Option<i32> = None;
    for (kind, value, period) in &rules.policies {
        let start = current - changed_in(now, events, *period, true);
        let proposed = match kind {
            PolicyKind::Pods => start + value,
            PolicyKind::Percent => (start as f64 * (1.0 + *value as f64 / 100.0)).ceil() as i32,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            (Some(r), Select::Max) => r.max(proposed),
            (Some(r), _) => r.min(proposed),
        });
    }
    result.unwrap_or(current).max(current)
}

/// The least the policies let the count fall to, given the scale-down
/// events (negative changes) in `events`.
pub fn scale_down_limit(now: SystemTime, current: i32, events: &[Stamped], rules: &Rules) -> i32 {
    if rules.select == Select::Disabled {
        return current;
    }
    let mut result: Option<i32> = None;
    for (kind, value, period) in &rules.policies {
        let start = current + changed_in(now, events, *period, false);
        let proposed = match kind {
            PolicyKind::Pods => start - value,
            PolicyKind::Percent => (start as f64 * (1.0 - *value as f64 / 100.0)) as i32,
        };
        result = Some(match (result, rules.select) {
            (None, _) => proposed,
            // Max selects the policy that allows the most change.
            (Some(r), Select::Max) => r.min(proposed),
            (Some(r), _) => r.max(proposed),
        });
    }
    result.unwrap_or(current).min(current)
}

/// Why the final count differs from the recommendation (the
/// ScalingLimited condition's reason), if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    TooFewReplicas,
    TooManyReplicas,
    ScaleUpLimit,
    ScaleDownLimit,
}

/// Bounds `desired` by the policies and by min/max replicas.
pub fn bound(
    now: SystemTime,
    current: i32,
    desired: i32,
    (min, max): (i32, i32),
    events: &[Stamped],
    up: &Rules,
    down: &Rules,
) -> (i32, Option<Limited>) {
    let mut limited = None;
    let mut result = desired;
    if desired > current {
        let limit = scale_up_limit(now, current, events, up);
        if result > limit {
            result = limit;
            limited = Some(Limited::ScaleUpLimit);
        }
    } else if desired < current {
        let limit = scale_down_limit(now, current, events, down);
        if result < limit {
            result = limit;
            limited = Some(Limited::ScaleDownLimit);
        }
    }
    if result > max {
        result = max;
        limited = Some(Limited::TooManyReplicas);
    }
    if result < min {
        result = min;
        limited = Some(Limited::TooFewReplicas);
    }
    (result, limited)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(usage: Option<i64>, request: i64) -> PodSample {
        PodSample {
            name: "p".into(),
            request: Some(request),
            usage,
            unready: false,
        }
    }

    #[test]
    fn utilization_replicas() {
        // (current, target %, usages of 100m-request pods) → replicas.
        let table: &[(i32, i32, &[i64], i32)] = &[
            // At target: no change.
            (2, 50, &[50, 50], 2),
            // Within 10 % tolerance: no change.
            (2, 50, &[54, 54], 2),
            // Twice the target: twice the pods.
            (2, 50, &[100, 100], 4),
            // ceil(3 × 90/50) = 6.
            (3, 50, &[90, 90, 90], 6),
            // Idle: down to ceil(0.1 × 4) = 1.
            (4, 50, &[5, 5, 5, 5], 1),
            // 150 % of target over 3 pods: ceil(4.5) = 5.
            (3, 60, &[90, 90, 90], 5),
        ];
        for (current, target, usages, want) in table {
            let pods: Vec<_> = usages.iter().map(|u| pod(Some(*u), 100)).collect();
            let got = replicas_for_utilization(*current, *target, &pods).unwrap();
            assert_eq!(
                got.replicas, *want,
                "{current} pods at {usages:?}, target {target}%"
            );
        }
        let got =
            replicas_for_utilization(2, 50, &[pod(Some(100), 100), pod(Some(60), 100)]).unwrap();
        assert_eq!(got.utilization, 80);
        assert_eq!(got.average, 80);
    }

    #[test]
    fn missing_and_unready_pods_damp_the_change() {
        // Scaling up with a pod without metrics: it counts as 0 %:
        // (100+100+0)/300 = 66 % of request vs target 50 → ratio 1.33,
        // ceil(1.33 × 3) = 4.
        let pods = [pod(Some(100), 100), pod(Some(100), 100), pod(None, 100)];
        assert_eq!(replicas_for_utilization(3, 50, &pods).unwrap().replicas, 4);
        // Scaling down with a missing pod: it counts as using all its
        // request, so (0+0+0+100)/400 = 25 % → ratio 0.5 → 2 (not 0).
        let pods = [
            pod(Some(0), 100),
            pod(Some(0), 100),
            pod(Some(0), 100),
            pod(None, 100),
        ];
        assert_eq!(replicas_for_utilization(4, 50, &pods).unwrap().replicas, 2);
        // ... and a change it turns around is no change: (10+10+100)/300
        // = 40 % → ratio 0.8 → ceil(2.4) = 3, the current count.
        let pods = [pod(Some(10), 100), pod(Some(10), 100), pod(None, 100)];
        assert_eq!(replicas_for_utilization(3, 50, &pods).unwrap().replicas, 3);
        // An unready pod while scaling up counts as 0 %.
        let mut unready = pod(Some(100), 100);
        unready.unready = true;
        let pods = [pod(Some(60), 100), unready];
        // Ready alone: 60/50 = 1.2 → up; with the unready one at 0:
        // 60/200 = 30 % → ratio 0.6, crosses 1: no change.
        assert_eq!(replicas_for_utilization(2, 50, &pods).unwrap().replicas, 2);
    }

    #[test]
    fn errors_name_the_cause() {
        let mut p = pod(Some(1), 1);
        p.request = None;
        let e = replicas_for_utilization(1, 50, &[p]).unwrap_err();
        assert!(e.contains("missing request"), "{e}");
        assert!(replicas_for_utilization(1, 50, &[]).is_err());
        assert!(replicas_for_utilization(1, 50, &[pod(None, 100)]).is_err());
    }

    #[test]
    fn stabilization_windows() {
        let now = SystemTime::now();
        let ago = |s: u64| now - Duration::from_secs(s);
        let recs = [
            Stamped {
                at: ago(200),
                value: 5,
            },
            Stamped {
                at: ago(100),
                value: 3,
            },
            Stamped {
                at: ago(400),
                value: 9,
            },
        ];
        let up = Rules::default_up();
        let down = Rules::default_down();
        // Scale down from 5 to 1 is held at the highest recommendation of
        // the last 300 s (5).
        assert_eq!(stabilize(now, 5, 1, &recs, &up, &down), 5);
        // With a 150 s window only the 3 counts.
        let short = Rules {
            stabilization: Duration::from_secs(150),
            ..Rules::default_down()
        };
        assert_eq!(stabilize(now, 5, 1, &recs, &up, &short), 3);
        // Scale up is immediate by default.
        assert_eq!(stabilize(now, 2, 8, &recs, &up, &down), 8);
        // A scale-up window holds at the lowest recent recommendation.
        let slow_up = Rules {
            stabilization: Duration::from_secs(150),
            ..Rules::default_up()
        };
        assert_eq!(stabilize(now, 2, 8, &recs, &slow_up, &down), 3);
    }

    #[test]
    fn policies_limit_the_rate() {
        let now = SystemTime::now();
        let up = Rules::default_up();
        let down = Rules::default_down();
        // From 1: +4 pods beats +100 %: at most 5.
        assert_eq!(
            bound(now, 1, 10, (1, 20), &[], &up, &down),
            (5, Some(Limited::ScaleUpLimit))
        );
        // From 10: +100 % (20) beats +4.
        assert_eq!(
            bound(now, 10, 30, (1, 50), &[], &up, &down),
            (20, Some(Limited::ScaleUpLimit))
        );
        // Max replicas wins.
        assert_eq!(
            bound(now, 10, 30, (1, 12), &[], &up, &down),
            (12, Some(Limited::TooManyReplicas))
        );
        // 100 % down per 15 s: straight to the recommendation, floored at min.
        assert_eq!(
            bound(now, 10, 0, (2, 12), &[], &up, &down),
            (2, Some(Limited::TooFewReplicas))
        );
        // One pod per minute down, one already removed this minute.
        let one_per_min = Rules {
            stabilization: Duration::ZERO,
            policies: vec![(PolicyKind::Pods, 1, Duration::from_secs(60))],
            select: Select::Max,
        };
        let events = [Stamped {
            at: now - Duration::from_secs(10),
            value: -1,
        }];
        assert_eq!(
            bound(now, 5, 1, (1, 10), &events, &up, &one_per_min),
            (5, Some(Limited::ScaleDownLimit))
        );
        assert_eq!(
            bound(now, 5, 1, (1, 10), &[], &up, &one_per_min),
            (4, Some(Limited::ScaleDownLimit))
        );
        // Disabled: no change at all.
        let off = Rules {
            select: Select::Disabled,
            ..Rules::default_down()
        };
        assert_eq!(bound(now, 5, 1, (1, 10), &[], &up, &off).0, 5);
        // Within limits: unchanged.
        assert_eq!(bound(now, 4, 6, (1, 10), &[], &up, &down), (6, None));
    }
}
