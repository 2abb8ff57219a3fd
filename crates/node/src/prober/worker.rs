//! The pure core of one probe worker (kubelet's `prober/worker.go`): when
//! a probe runs, and how its results become the published result through
//! the success and failure thresholds.
//!
//! kubelet's rules, kept here exactly:
//! - the published result starts as `Failure` for readiness, `Success` for
//!   liveness and unknown (none) for startup;
//! - nothing is probed while the container has run for less than
//!   `initialDelaySeconds`;
//! - liveness and readiness wait until the startup probe succeeded; the
//!   startup probe stops once it has;
//! - a result is published once it repeated `successThreshold` (success)
//!   or `failureThreshold` (failure) times in a row;
//! - a published liveness or startup failure puts the worker on hold (the
//!   container is killed); a new container gets a new worker, so counters
//!   start again after a restart.

use k8s_openapi::api::core::v1::Probe;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeType {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeType {
    /// As kubelet names it in events (`Liveness probe failed: ...`).
    pub fn title(self) -> &'static str {
        match self {
            ProbeType::Liveness => "Liveness",
            ProbeType::Readiness => "Readiness",
            ProbeType::Startup => "Startup",
        }
    }

    pub fn lower(self) -> &'static str {
        match self {
            ProbeType::Liveness => "liveness",
            ProbeType::Readiness => "readiness",
            ProbeType::Startup => "startup",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure,
}

/// A probe's timing and thresholds, with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(v.filter(|v| *v > 0).map(|v| v as u64).unwrap_or(default))
        };
        let count = |v: Option<i32>, default: u32| {
            v.filter(|v| *v > 0).map(|v| v as u32).unwrap_or(default)
        };
        Timing {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64),
            period: secs(p.period_seconds, 10),
            timeout: secs(p.timeout_seconds, 1),
            success_threshold: count(p.success_threshold, 1),
            failure_threshold: count(p.failure_threshold, 3),
        }
    }
}

/// What the worker does at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Run the probe now.
    Probe,
    /// Not now (initial delay, waiting for the startup probe).
    Wait,
    /// Never again for this container (startup done, or on hold).
    Stop,
}

/// One probe of one container (one container id).
#[derive(Debug, Clone)]
pub struct Counter {
    pub probe: ProbeType,
    pub timing: Timing,
    last: Option<ProbeResult>,
    run: u32,
    on_hold: bool,
    /// The published result (`None`: none yet).
    pub published: Option<ProbeResult>,
}

impl Counter {
    /// A new worker; `seed` replaces kubelet's initial value when the
    /// result is known from before (a daemon restart adopting the pod).
    pub fn new(probe: ProbeType, timing: Timing, seed: Option<ProbeResult>) -> Counter {
        let initial = match probe {
            ProbeType::Readiness => Some(ProbeResult::Failure),
            ProbeType::Liveness => Some(ProbeResult::Success),
            ProbeType::Startup => None,
        };
        Counter {
            probe,
            timing,
            last: None,
            run: 0,
            on_hold: false,
            published: seed.or(initial),
        }
    }

    /// Whether to probe at a tick: `running_for` is how long the container
    /// has run, `started` whether its startup probe succeeded (true when it
    /// has none).
    pub fn tick(&self, running_for: Duration, started: bool) -> Tick {
        if self.on_hold {
            return Tick::Stop;
        }
        if running_for < self.timing.initial_delay {
            return Tick::Wait;
        }
        match (self.probe, started) {
            (ProbeType::Startup, true) => Tick::Stop,
            (ProbeType::Startup, false) => Tick::Probe,
            (_, true) => Tick::Probe,
            (_, false) => Tick::Wait,
        }
    }

    /// Count one probe's result; true when the published result changed.
    pub fn observe(&mut self, r: ProbeResult) -> bool {
        if self.last == Some(r) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(r);
            self.run = 1;
        }
        let threshold = match r {
            ProbeResult::Success => self.timing.success_threshold,
            ProbeResult::Failure => self.timing.failure_threshold,
        };
        if self.run < threshold {
            return false;
        }
        let changed = self.published != Some(r);
        self.published = Some(r);
        if r == ProbeResult::Failure && self.probe != ProbeType::Readiness {
            // The container is killed: stop until a new container runs.
            self.on_hold = true;
            self.run = 0;
        }
        changed
    }

    pub fn on_hold(&self) -> bool {
        self.on_hold
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeResult::{Failure as F, Success as S};
    use super::*;

    fn timing(yaml: &str) -> Timing {
        Timing::of(&serde_yaml_ng::from_str::<Probe>(yaml).unwrap())
    }

    #[test]
    fn defaults_are_kubernetes_defaults() {
        let t = timing("exec: {command: [true]}");
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let t = timing("{initialDelaySeconds: 5, periodSeconds: 2, timeoutSeconds: 3, successThreshold: 2, failureThreshold: 1}");
        assert_eq!(
            (
                t.initial_delay.as_secs(),
                t.period.as_secs(),
                t.timeout.as_secs()
            ),
            (5, 2, 3)
        );
        assert_eq!((t.success_threshold, t.failure_threshold), (2, 1));
    }

    /// Published result after each observed probe result.
    #[test]
    fn thresholds_table() {
        struct Case {
            what: &'static str,
            probe: ProbeType,
            timing: &'static str,
            seed: Option<ProbeResult>,
            results: Vec<ProbeResult>,
            published: Vec<Option<ProbeResult>>,
            hold: bool,
        }
        let cases = vec![
            Case {
                what: "readiness starts as failure, one success makes it ready",
                probe: ProbeType::Readiness,
                timing: "{}",
                seed: None,
                results: vec![S],
                published: vec![Some(S)],
                hold: false,
            },
            Case {
                what: "readiness: failureThreshold 3 failures in a row make it unready",
                probe: ProbeType::Readiness,
                timing: "{}",
                seed: None,
                results: vec![S, F, F, S, F, F, F],
                published: vec![
                    Some(S),
                    Some(S),
                    Some(S),
                    Some(S),
                    Some(S),
                    Some(S),
                    Some(F),
                ],
                hold: false,
            },
            Case {
                what: "readiness: successThreshold 2",
                probe: ProbeType::Readiness,
                timing: "{successThreshold: 2}",
                seed: None,
                results: vec![S, F, S, S],
                published: vec![Some(F), Some(F), Some(F), Some(S)],
                hold: false,
            },
            Case {
                what: "readiness seeded ready after a daemon restart stays ready",
                probe: ProbeType::Readiness,
                timing: "{}",
                seed: Some(S),
                results: vec![F, S],
                published: vec![Some(S), Some(S)],
                hold: false,
            },
            Case {
                what: "liveness starts as success; 3 failures kill and hold",
                probe: ProbeType::Liveness,
                timing: "{}",
                seed: None,
                results: vec![F, F, F],
                published: vec![Some(S), Some(S), Some(F)],
                hold: true,
            },
            Case {
                what: "liveness failureThreshold 1",
                probe: ProbeType::Liveness,
                timing: "{failureThreshold: 1}",
                seed: None,
                results: vec![S, F],
                published: vec![Some(S), Some(F)],
                hold: true,
            },
            Case {
                what: "startup has no result until it succeeds",
                probe: ProbeType::Startup,
                timing: "{failureThreshold: 5}",
                seed: None,
                results: vec![F, F, S],
                published: vec![None, None, Some(S)],
                hold: false,
            },
            Case {
                what: "startup failing past its threshold",
                probe: ProbeType::Startup,
                timing: "{failureThreshold: 2}",
                seed: None,
                results: vec![F, F],
                published: vec![None, Some(F)],
                hold: true,
            },
        ];
        for c in cases {
            let mut w = Counter::new(c.probe, timing(c.timing), c.seed);
            let got: Vec<_> = c
                .results
                .iter()
                .map(|r| {
                    w.observe(*r);
                    w.published
                })
                .collect();
            assert_eq!(got, c.published, "{}", c.what);
            assert_eq!(w.on_hold(), c.hold, "{}", c.what);
        }
    }

    #[test]
    fn ticks_table() {
        let secs = Duration::from_secs;
        // (what, probe, initialDelaySeconds, running for, started, tick)
        let cases = [
            (
                "in the initial delay",
                ProbeType::Liveness,
                5,
                secs(4),
                true,
                Tick::Wait,
            ),
            (
                "initial delay over",
                ProbeType::Liveness,
                5,
                secs(5),
                true,
                Tick::Probe,
            ),
            (
                "liveness waits for startup",
                ProbeType::Liveness,
                0,
                secs(30),
                false,
                Tick::Wait,
            ),
            (
                "readiness waits for startup",
                ProbeType::Readiness,
                0,
                secs(30),
                false,
                Tick::Wait,
            ),
            (
                "readiness after startup",
                ProbeType::Readiness,
                0,
                secs(0),
                true,
                Tick::Probe,
            ),
            (
                "startup probes until started",
                ProbeType::Startup,
                0,
                secs(1),
                false,
                Tick::Probe,
            ),
            (
                "startup stops once started",
                ProbeType::Startup,
                0,
                secs(1),
                true,
                Tick::Stop,
            ),
            (
                "startup honours its delay",
                ProbeType::Startup,
                3,
                secs(1),
                false,
                Tick::Wait,
            ),
        ];
        for (what, probe, delay, running, started, want) in cases {
            let t = timing(&format!("{{initialDelaySeconds: {delay}}}"));
            assert_eq!(
                Counter::new(probe, t, None).tick(running, started),
                want,
                "{what}"
            );
        }
        let mut held = Counter::new(ProbeType::Liveness, timing("{failureThreshold: 1}"), None);
        held.observe(F);
        assert_eq!(
            held.tick(secs(100), true),
            Tick::Stop,
            "on hold after a kill"
        );
    }
}
