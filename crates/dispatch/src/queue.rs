//! A pool's queue of waiting actions: requeued actions first, then the longest expected, ties first-come.

use super::types::Millis;
use rcc_proto::Digest;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Waiting actions of one pool, in dispatch order. O(log n) push and pop.
#[derive(Default)]
pub(crate) struct PoolQueue {
    heap: BinaryHeap<Entry>,
}

/// A place in the queue. The order is fixed when the action is queued (its estimate is not revised).
#[derive(PartialEq, Eq)]
struct Entry {
    /// Requeued after its worker was lost, failed or was quarantined: goes before fresh actions.
    front: bool,
    estimate: Millis,
    seq: u64,
    action: Digest,
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        // BinaryHeap pops the greatest: front first, then longer estimates, then the lower sequence number.
        self.front
            .cmp(&other.front)
            .then(self.estimate.cmp(&other.estimate))
            .then(other.seq.cmp(&self.seq))
            .then(self.action.cmp(&other.action))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PoolQueue {
    /// Queues `action`; `seq` must grow with every push (it breaks ties first-come first-served).
    pub(crate) fn push(&mut self, action: Digest, estimate: Millis, front: bool, seq: u64) {
        self.heap.push(Entry { front, estimate, seq, action });
    }

    /// Takes the next action to dispatch, with the sequence number it was queued under (an entry whose
    /// number no longer matches the action's is stale: the action was withdrawn meanwhile).
    pub(crate) fn pop(&mut self) -> Option<(Digest, u64)> {
        self.heap.pop().map(|e| (e.action, e.seq))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_then_long_then_fifo() {
        let mut q = PoolQueue::default();
        let d = |n: u8| Digest([n; 32]);
        q.push(d(1), 100, false, 1);
        q.push(d(2), 500, false, 2);
        q.push(d(3), 100, false, 3);
        q.push(d(4), 1, true, 4);
        q.push(d(5), 500, false, 5);
        let order: Vec<Digest> = std::iter::from_fn(|| q.pop().map(|(d, _)| d)).collect();
        assert_eq!(order, vec![d(4), d(2), d(5), d(1), d(3)]);
    }
}
