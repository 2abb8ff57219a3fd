//! The decisions of a RollingUpdate (kube's `deployment/rolling.go` and
//! `deployment/util`), as pure functions over the ReplicaSets' counts.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the decisions need to know of one ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsCounts {
    /// `spec.replicas`.
    pub spec: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// maxSurge (rounded up) and maxUnavailable (rounded down) of `replicas`;
/// both 0 makes maxUnavailable 1, as `ResolveFenceposts` does.
pub fn fenceposts(
    replicas: i32,
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = peapod_api::scaled_value(max_surge.unwrap_or(&zero), replicas, true)
        .map_err(|e| format!("spec.strategy.rollingUpdate.maxSurge: {e}"))?;
    let unavailable = peapod_api::scaled_value(max_unavailable.unwrap_or(&zero), replicas, false)
        .map_err(|e| format!("spec.strategy.rollingUpdate.maxUnavailable: {e}"))?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// The new ReplicaSet's next `spec.replicas` (`NewRSNewReplicas`): up to
/// `replicas`, never more pods in all than `replicas + max_surge`.
pub fn new_rs_replicas(replicas: i32, max_surge: i32, all_spec: i32, new_spec: i32) -> i32 {
    let max_total = replicas + max_surge;
    if all_spec >= max_total {
        return new_spec;
    }
    let up = (max_total - all_spec).min(replicas - new_spec).max(0);
    new_spec + up
}

/// How far the old ReplicaSets (oldest first) may be scaled down now
/// (`reconcileOldReplicaSets`): first their unavailable pods
/// (`cleanupUnhealthyReplicas`), then available ones while more than
/// `replicas - max_unavailable` stay available. Returns each old
/// ReplicaSet's new `spec.replicas`, in the order given.
pub fn old_rs_targets(
    replicas: i32,
    max_unavailable: i32,
    new: &RsCounts,
    olds: &[RsCounts],
) -> Vec<i32> {
    let mut targets: Vec<i32> = olds.iter().map(|o| o.spec).collect();
    let old_total: i32 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let all_total = old_total + new.spec;
    let min_available = replicas - max_unavailable;
    let new_unavailable = (new.spec - new.available).max(0);
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }
    // Unhealthy replicas first: they do not reduce availability.
    let mut cleaned = 0;
    for (i, o) in olds.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        if targets[i] == 0 {
            continue;
        }
        let unhealthy = (o.spec - o.available).max(0);
        let n = unhealthy.min(max_scaled_down - cleaned).min(targets[i]);
        targets[i] -= n;
        cleaned += n;
    }
    // Then available ones, keeping min_available.
    let available: i32 = new.available + olds.iter().map(|o| o.available).sum::<i32>();
    if available <= min_available {
        return targets;
    }
    let mut budget = available - min_available;
    for t in targets.iter_mut() {
        if budget <= 0 {
            break;
        }
        let n = (*t).min(budget);
        *t -= n;
        budget -= n;
    }
    targets
}

/// The old ReplicaSets (by revision, oldest first, with spec and status
/// replicas 0) to delete to keep `limit` of them (`cleanupDeployment`).
pub fn history_to_delete(old_idle_by_revision: usize, limit: i32) -> usize {
    old_idle_by_revision.saturating_sub(limit.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        // (replicas, surge, unavailable) -> (surge, unavailable)
        let table = [
            (3, p("25%"), p("25%"), (1, 0)),
            (10, p("25%"), p("25%"), (3, 2)),
            (4, IntOrString::Int(0), IntOrString::Int(0), (0, 1)),
            (5, IntOrString::Int(2), p("50%"), (2, 2)),
            (1, p("0%"), p("0%"), (0, 1)),
        ];
        for (r, s, u, want) in table {
            assert_eq!(
                fenceposts(r, Some(&s), Some(&u)),
                Ok(want),
                "{r} {s:?} {u:?}"
            );
        }
        assert!(fenceposts(3, Some(&p("x")), None).is_err());
    }

    #[test]
    fn the_new_replica_set_grows_within_max_surge() {
        // (replicas, surge, all, new) -> new target
        let table = [
            (3, 1, 3, 0, 1), // one extra pod
            (3, 1, 4, 1, 1), // at the limit: wait
            (3, 1, 3, 1, 2), // old scaled down: grow again
            (3, 0, 2, 0, 1), // no surge: only what was freed
            (3, 5, 3, 0, 3), // a big surge is capped at replicas
            (3, 1, 0, 0, 3), // fresh deployment
        ];
        for (r, s, all, new, want) in table {
            assert_eq!(new_rs_replicas(r, s, all, new), want, "{r} {s} {all} {new}");
        }
    }

    #[test]
    fn old_replica_sets_shrink_keeping_min_available() {
        let c = |spec, available| RsCounts { spec, available };
        // 3 replicas, maxUnavailable 0: new has 1 available surge pod.
        assert_eq!(old_rs_targets(3, 0, &c(1, 1), &[c(3, 3)]), vec![2]);
        // New pod not yet available: nothing may go.
        assert_eq!(old_rs_targets(3, 0, &c(1, 0), &[c(3, 3)]), vec![3]);
        // maxUnavailable 1: one old pod may go at once.
        assert_eq!(old_rs_targets(3, 1, &c(0, 0), &[c(3, 3)]), vec![2]);
        // Unavailable old pods go first (within the budget); available
        // ones only while more than min_available stay.
        assert_eq!(old_rs_targets(3, 0, &c(1, 1), &[c(3, 1)]), vec![2]);
        assert_eq!(old_rs_targets(3, 1, &c(1, 1), &[c(3, 1)]), vec![1]);
        // Oldest first across several old sets (rollover).
        assert_eq!(
            old_rs_targets(4, 1, &c(2, 2), &[c(1, 1), c(2, 2)]),
            vec![0, 1]
        );
        // Nothing old: nothing to do.
        assert_eq!(old_rs_targets(3, 1, &c(3, 3), &[c(0, 0)]), vec![0]);
    }

    #[test]
    fn history_keeps_the_limit() {
        assert_eq!(history_to_delete(5, 2), 3);
        assert_eq!(history_to_delete(1, 2), 0);
        assert_eq!(history_to_delete(3, 0), 3);
    }
}

/// One active ReplicaSet in a proportional scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sized {
    /// `spec.replicas`.
    pub spec: i32,
    /// Its `deployment.kubernetes.io/max-replicas` annotation: the
    /// Deployment's replicas + maxSurge when it was last scaled.
    pub max_replicas: Option<i32>,
    /// Creation order (higher is newer).
    pub age_rank: usize,
}

/// A scaled Deployment's active ReplicaSets mid-rollout, resized in
/// proportion to their sizes (kube's `scale` with `GetProportion`):
/// `replicas + max_surge` pods in all, the leftover to the largest.
/// `status_replicas` stands in for a missing annotation. Returns the new
/// sizes in the order given.
pub fn proportional_targets(
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    sets: &[Sized],
) -> Vec<i32> {
    let allowed = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let total: i32 = sets.iter().map(|s| s.spec).sum();
    let to_add = allowed - total;
    let mut order: Vec<usize> = (0..sets.len()).collect();
    // Larger first; on a tie newer first when growing, older first when
    // shrinking.
    order.sort_by(|&a, &b| {
        sets[b].spec.cmp(&sets[a].spec).then_with(|| {
            if to_add > 0 {
                sets[b].age_rank.cmp(&sets[a].age_rank)
            } else {
                sets[a].age_rank.cmp(&sets[b].age_rank)
            }
        })
    });
    let mut sizes: Vec<i32> = sets.iter().map(|s| s.spec).collect();
    if to_add == 0 {
        return sizes;
    }
    let mut added = 0;
    for &i in &order {
        let s = &sets[i];
        if s.spec == 0 || added == to_add {
            continue;
        }
        let fraction = if replicas == 0 {
            -s.spec
        } else {
            let annotated = s.max_replicas.unwrap_or(status_replicas).max(1);
            let scaled = (s.spec as f64 * allowed as f64 / annotated as f64).round() as i32;
            scaled - s.spec
        };
        let left = to_add - added;
        let p = if to_add > 0 {
            fraction.min(left)
        } else {
            fraction.max(left)
        };
        sizes[i] += p;
        added += p;
    }
    if let Some(&first) = order.first() {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod proportional_tests {
    use super::*;

    fn s(spec: i32, max: i32, age: usize) -> Sized {
        Sized {
            spec,
            max_replicas: Some(max),
            age_rank: age,
        }
    }

    #[test]
    fn a_scaled_deployment_mid_rollout_grows_its_sets_in_proportion() {
        // kube's example: 10 replicas (maxSurge 3) mid-rollout with 8 old
        // and 5 new, scaled to 15 (maxSurge 3 still): 18 in all.
        let t = proportional_targets(15, 3, 13, &[s(8, 13, 0), s(5, 13, 1)]);
        assert_eq!(t.iter().sum::<i32>(), 18);
        assert_eq!(t, vec![11, 7]);
        // Scaled down to 5 (maxSurge 1): 6 in all, the larger old set
        // shrinks most.
        let t = proportional_targets(5, 1, 13, &[s(8, 13, 0), s(5, 13, 1)]);
        assert_eq!(t.iter().sum::<i32>(), 6);
        assert_eq!(t, vec![4, 2]);
        // To zero: everything goes.
        assert_eq!(
            proportional_targets(0, 1, 13, &[s(8, 13, 0), s(5, 13, 1)]),
            vec![0, 0]
        );
        // Nothing to add: unchanged.
        assert_eq!(
            proportional_targets(10, 3, 13, &[s(8, 13, 0), s(5, 13, 1)]),
            vec![8, 5]
        );
    }
}
