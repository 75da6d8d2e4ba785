//! Waiting after failures: [`Backoff`] (how long to wait before trying again) and [`Hold`] (a way that
//! stays closed for that long, so callers arriving meanwhile skip the attempt at no cost).

use std::time::{Duration, Instant};

/// The wait before redialling the scheduler: 1 s after a success, doubling per failure up to 30 s. The
/// daemon's shared-cache connection and a pool worker's registration both use it.
#[derive(Debug, Clone, Copy)]
pub struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    /// The shortest wait.
    pub fn new() -> Backoff {
        Backoff(Self::MIN)
    }

    /// Back to the shortest wait (the link works).
    pub fn reset(&mut self) {
        self.0 = Self::MIN;
    }

    /// The wait before the next attempt; the one after it is twice as long (up to the maximum).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// A way that closes for a while after a failure: for a [`Backoff`] wait (1 s, doubling per failure, at most
/// 30 s); a success opens it and resets the doubling. Failures noted while it is closed (callers that failed
/// together) close it once, not once each. The scheduler link and the pool (while it has no worker) use it.
#[derive(Debug)]
pub struct Hold {
    until: Option<Instant>,
    backoff: Backoff,
}

impl Hold {
    /// An open hold.
    pub fn new() -> Hold {
        Hold { until: None, backoff: Backoff::new() }
    }

    /// Whether it is closed at `now`.
    pub fn closed(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// Closes it after a failure; the wait when this closed it, `None` when it was closed already.
    pub fn failed(&mut self, now: Instant) -> Option<Duration> {
        if self.closed(now) {
            return None;
        }
        let wait = self.backoff.next_wait();
        self.until = Some(now + wait);
        Some(wait)
    }

    /// Opens it after a success and resets the doubling.
    pub fn succeeded(&mut self) {
        self.until = None;
        self.backoff.reset();
    }
}

impl Default for Hold {
    fn default() -> Hold {
        Hold::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_closes_once_for_failures_noted_together_doubles_while_failing_and_opens_on_success() {
        let mut hold = Hold::new();
        let t0 = Instant::now();
        assert!(!hold.closed(t0));
        // Four misses asked at once and all heard "no workers": one hold of 1 s.
        assert_eq!(hold.failed(t0), Some(Duration::from_secs(1)));
        for _ in 0..3 {
            assert_eq!(hold.failed(t0), None);
        }
        assert!(hold.closed(t0 + Duration::from_millis(999)));
        assert!(!hold.closed(t0 + Duration::from_secs(1)));
        // Still failing after the hold: the next one is twice as long.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(hold.failed(t1), Some(Duration::from_secs(2)));
        assert!(hold.closed(t1 + Duration::from_millis(1999)));
        assert!(!hold.closed(t1 + Duration::from_secs(2)));
        // A success opens it and ends the doubling.
        hold.succeeded();
        assert!(!hold.closed(t1));
        assert_eq!(hold.failed(t1), Some(Duration::from_secs(1)));
        assert!(!hold.closed(t1 + Duration::from_secs(1)));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..7).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(1));
    }
}
