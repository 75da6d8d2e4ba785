//! Results being stored after their compile already returned.
//!
//! A miss answers the wrapper as soon as the compile is done and stores the result afterwards, so the build
//! does not wait for compression and disk writes. Whoever could observe the gap waits for it instead: a
//! lookup of the same direct key, a statistics request, shutdown. The wait is bounded; past it the caller
//! simply goes on (a miss, or slightly stale counts), never an error.

use rcc_proto::Digest;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Longest wait for stores in flight.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Keys whose result is being stored.
#[derive(Default)]
pub struct InFlight {
    keys: Mutex<HashMap<Digest, usize>>,
    done: Condvar,
}

/// Marks a key as being stored until dropped.
pub struct Storing<'a> {
    owner: &'a InFlight,
    key: Digest,
}

impl InFlight {
    /// A new, empty set.
    pub fn new() -> InFlight {
        InFlight::default()
    }

    /// Marks `key` as being stored.
    pub fn begin(&self, key: Digest) -> Storing<'_> {
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += 1;
        Storing { owner: self, key }
    }

    /// Waits (bounded) until no store of `key` is in flight.
    pub fn wait_for(&self, key: &Digest) {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.done.wait_timeout_while(keys, MAX_WAIT, |k| k.contains_key(key));
    }

    /// Waits (bounded) until no store at all is in flight.
    pub fn wait_all(&self) {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.done.wait_timeout_while(keys, MAX_WAIT, |k| !k.is_empty());
    }
}

impl Drop for Storing<'_> {
    fn drop(&mut self) {
        let mut keys = self.owner.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = keys.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                keys.remove(&self.key);
            }
        }
        self.owner.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_wake_when_the_store_ends() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let set = Arc::new(InFlight::new());
        let key = Digest::of(b"k");
        let guard = set.begin(key);
        let stored = Arc::new(AtomicBool::new(false));
        let waiter = {
            let (set, stored) = (set.clone(), stored.clone());
            std::thread::spawn(move || {
                set.wait_for(&key);
                let after_key = stored.load(Ordering::SeqCst);
                set.wait_all();
                (after_key, stored.load(Ordering::SeqCst))
            })
        };
        // Whenever the waiter got to wait, it may not return while the store is in flight.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a waiter returned while the entry was being stored");
        stored.store(true, Ordering::SeqCst);
        drop(guard);
        assert_eq!(waiter.join().unwrap(), (true, true), "both waits ended only after the store");
        set.wait_for(&Digest::of(b"other"));
    }
}
