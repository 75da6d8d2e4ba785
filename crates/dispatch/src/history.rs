//! What the core remembers about each action kind: recent durations (their median orders the queue and
//! times speculative twins) and failure counts (what a worker's failures are compared against).
//!
//! Bounded twice: `history_len` durations per kind, `max_kinds` kinds (the oldest kind is forgotten first).

use super::types::Millis;
use rcc_proto::Digest;
use std::collections::{HashMap, VecDeque};

/// Pseudo-attempts that pull a kind's failure rate toward the global rate while it has few samples.
const PRIOR_WEIGHT: f64 = 2.0;

/// Per-kind durations and failure counts.
pub(crate) struct History {
    kinds: HashMap<Digest, KindStats>,
    /// Kinds in the order they were first seen, for eviction.
    order: VecDeque<Digest>,
    max_kinds: usize,
    len: usize,
    default_estimate: Millis,
    /// Failures and attempts over all kinds (decayed like a worker's), the prior for unknown kinds.
    global_failures: f64,
    global_attempts: f64,
    window: f64,
}

#[derive(Default)]
struct KindStats {
    durations: VecDeque<Millis>,
    median: Millis,
    failures: f64,
    attempts: f64,
}

impl History {
    pub(crate) fn new(len: usize, max_kinds: usize, default_estimate: Millis, window: f64) -> History {
        History {
            kinds: HashMap::new(),
            order: VecDeque::new(),
            max_kinds: max_kinds.max(1),
            len: len.max(1),
            default_estimate,
            global_failures: 0.0,
            global_attempts: 0.0,
            window,
        }
    }

    /// The expected duration of an action of `kind`: the median of its recent durations, or the default.
    pub(crate) fn estimate(&self, kind: &Digest) -> Millis {
        match self.kinds.get(kind) {
            Some(k) if !k.durations.is_empty() => k.median,
            _ => self.default_estimate,
        }
    }

    /// The median duration of `kind` if it has at least `min` samples.
    pub(crate) fn median(&self, kind: &Digest, min: usize) -> Option<Millis> {
        let k = self.kinds.get(kind)?;
        (k.durations.len() >= min.max(1)).then_some(k.median)
    }

    /// Records how long a successful run of `kind` took.
    pub(crate) fn record_duration(&mut self, kind: Digest, took: Millis) {
        let len = self.len;
        let k = self.entry(kind);
        if k.durations.len() == len {
            k.durations.pop_front();
        }
        k.durations.push_back(took);
        let mut sorted: Vec<Millis> = k.durations.iter().copied().collect();
        let mid = sorted.len() / 2;
        k.median = *sorted.select_nth_unstable(mid).1;
    }

    /// Records an attempt at `kind` and returns the failure probability expected *before* it (the kind's
    /// smoothed failure rate), which is what a worker's own failures are judged against.
    pub(crate) fn record_attempt(&mut self, kind: Digest, failed: bool) -> f64 {
        let prior = (self.global_failures + 0.01) / (self.global_attempts + 1.0);
        let window = self.window;
        let k = self.entry(kind);
        let expected = (k.failures + prior * PRIOR_WEIGHT) / (k.attempts + PRIOR_WEIGHT);
        k.attempts += 1.0;
        k.failures += f64::from(u8::from(failed));
        if k.attempts > window {
            k.attempts /= 2.0;
            k.failures /= 2.0;
        }
        self.global_attempts += 1.0;
        self.global_failures += f64::from(u8::from(failed));
        if self.global_attempts > window * 100.0 {
            self.global_attempts /= 2.0;
            self.global_failures /= 2.0;
        }
        expected
    }

    fn entry(&mut self, kind: Digest) -> &mut KindStats {
        if !self.kinds.contains_key(&kind) {
            while self.kinds.len() >= self.max_kinds {
                match self.order.pop_front() {
                    Some(old) => {
                        self.kinds.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(kind);
        }
        self.kinds.entry(kind).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(n: u8) -> Digest {
        Digest([n; 32])
    }

    #[test]
    fn median_of_recent_durations_and_default() {
        let mut h = History::new(3, 10, 777, 200.0);
        assert_eq!(h.estimate(&kind(1)), 777);
        for d in [100, 5, 300, 200] {
            h.record_duration(kind(1), d);
        }
        // Last three: 5, 300, 200.
        assert_eq!(h.estimate(&kind(1)), 200);
        assert_eq!(h.median(&kind(1), 3), Some(200));
        assert_eq!(h.median(&kind(1), 4), None);
    }

    #[test]
    fn kinds_are_bounded() {
        let mut h = History::new(3, 2, 1, 200.0);
        for n in 0..5 {
            h.record_duration(kind(n), 10);
        }
        assert_eq!(h.kinds.len(), 2);
        assert_eq!(h.estimate(&kind(0)), 1);
        assert_eq!(h.estimate(&kind(4)), 10);
    }
}
