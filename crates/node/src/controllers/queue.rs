//! The work queue of one controller, as client-go's workqueue: keys are
//! deduplicated (a key added ten times before a worker takes it is
//! reconciled once), a key is never handed to two workers at once (added
//! while in progress, it is handed out again when `done`), `add_after`
//! delays, and `add_rate_limited` retries a failing key with exponential
//! back-off until `forget`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// First and longest retry delay of a failing key.
const BASE_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys waiting to be handed out (in `queue`, or to be queued again
    /// once `done` when in `processing`).
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    shutdown: bool,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    ready: Notify,
}

impl Queue {
    pub fn new() -> Arc<Self> {
        Arc::new(Queue::default())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `key` (once, however often it is added before it is taken).
    pub fn add(&self, key: &str) {
        let mut s = self.state();
        if s.shutdown || s.dirty.contains(key) {
            return;
        }
        s.dirty.insert(key.to_string());
        if !s.processing.contains(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Queue `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: &str, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let q = self.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(&key);
        });
    }

    /// Queue `key` again after its next back-off delay (50 ms, doubling,
    /// at most 60 s); the delay grows until `forget`.
    pub fn add_rate_limited(self: &Arc<Self>, key: &str) -> Duration {
        let n = {
            let mut s = self.state();
            let n = s.failures.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        let delay = backoff(n);
        self.add_after(key, delay);
        delay
    }

    /// The key succeeded: its next failure starts the back-off anew.
    pub fn forget(&self, key: &str) {
        self.state().failures.remove(key);
    }

    /// The next key to work on, or None once shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state();
                if s.shutdown {
                    return None;
                }
                if let Some(k) = s.queue.pop_front() {
                    s.dirty.remove(&k);
                    s.processing.insert(k.clone());
                    // Another worker may take the next one.
                    if !s.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return Some(k);
                }
            }
            notified.await;
        }
    }

    /// The worker is finished with `key`; if it was added meanwhile it is
    /// queued again.
    pub fn done(&self, key: &str) {
        let mut s = self.state();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            drop(s);
            self.ready.notify_one();
        }
    }

    pub fn shutdown(&self) {
        self.state().shutdown = true;
        self.ready.notify_waiters();
    }

    /// Keys queued or in progress (for tests and benchmarks).
    pub fn len(&self) -> usize {
        let s = self.state();
        s.queue.len() + s.processing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The delay before retry `n` (1-based).
fn backoff(n: u32) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(20);
    BASE_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_worked_on_twice_at_once() {
        let q = Queue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.get().await.as_deref(), Some("a"));
        // Added while in progress: not handed out until done.
        q.add("a");
        assert_eq!(q.get().await.as_deref(), Some("b"));
        let none = tokio::time::timeout(Duration::from_millis(50), q.get()).await;
        assert!(none.is_err(), "a was handed out while in progress");
        q.done("a");
        assert_eq!(q.get().await.as_deref(), Some("a"));
        q.done("a");
        q.done("b");
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn delayed_and_rate_limited_adds() {
        let q = Queue::new();
        q.add_after("later", Duration::from_millis(30));
        let start = std::time::Instant::now();
        assert_eq!(q.get().await.as_deref(), Some("later"));
        assert!(start.elapsed() >= Duration::from_millis(30));
        q.done("later");
        assert_eq!(q.add_rate_limited("x"), Duration::from_millis(50));
        assert_eq!(q.add_rate_limited("x"), Duration::from_millis(100));
        q.forget("x");
        assert_eq!(q.add_rate_limited("x"), Duration::from_millis(50));
        assert_eq!(backoff(100), MAX_DELAY);
    }

    #[tokio::test]
    async fn shutdown_wakes_workers() {
        let q = Queue::new();
        let q2 = q.clone();
        let w = tokio::spawn(async move { q2.get().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        q.shutdown();
        assert_eq!(w.await.expect("worker"), None);
    }
}
