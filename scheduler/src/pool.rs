//! The pool as the QUIC service holds it: the sans-IO [`Dispatcher`] behind a lock, the clock it is fed
//! with, and the ids given to registering workers. Time is milliseconds since the service started.

use crate::dispatch::{Command, Config, DispatchError, Dispatcher, Heartbeat, Millis, WorkerId, WorkerInfo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pool's shared state.
pub struct Pool {
    dispatcher: Mutex<Dispatcher>,
    epoch: Instant,
    next_id: AtomicU64,
    heartbeat_interval: Duration,
}

impl Pool {
    /// A pool whose workers heartbeat every `heartbeat_interval` and are lost after
    /// `config.heartbeat_timeout` without one.
    pub fn new(config: Config, heartbeat_interval: Duration) -> Pool {
        Pool {
            dispatcher: Mutex::new(Dispatcher::new(config)),
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            heartbeat_interval,
        }
    }

    /// A pool with the default timeouts (5 s heartbeats, lost after 15 s).
    pub fn with_defaults() -> Pool {
        Pool::new(Config::default(), Duration::from_secs(5))
    }

    /// How often workers are asked to heartbeat.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    fn now(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis
    }

    fn dispatcher(&self) -> std::sync::MutexGuard<'_, Dispatcher> {
        self.dispatcher.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a worker; returns the id its session uses.
    pub fn register(
        &self,
        name: String,
        pool: String,
        slots: u32,
        memory_bytes: u64,
    ) -> Result<WorkerId, DispatchError> {
        let id = WorkerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let info = WorkerInfo { id, name, pool, slots, memory_bytes, toolchains: Vec::new(), inputs: Vec::new() };
        let now = self.now();
        let commands = self.dispatcher().handle_register(info, now)?;
        log_commands(&commands);
        Ok(id)
    }

    /// A worker's heartbeat.
    pub fn heartbeat(&self, worker: WorkerId, external_load: u32) -> Result<(), DispatchError> {
        let now = self.now();
        let beat = Heartbeat { external_load: Some(external_load), ..Heartbeat::default() };
        self.dispatcher().handle_heartbeat(worker, beat, now)
    }

    /// Periodic work: workers whose heartbeats stopped are marked lost, due twins started.
    pub fn tick(&self) {
        let now = self.now();
        let commands = self.dispatcher().handle_timeout(now);
        log_commands(&commands);
    }

    /// The pool's state as JSON (what `rcc-scheduler status --json` prints).
    pub fn status_json(&self) -> String {
        let now = self.now();
        let status = self.dispatcher().status(now);
        serde_json::to_string_pretty(&status).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

fn log_commands(commands: &[Command]) {
    for command in commands {
        match command {
            Command::WorkerLost { worker } => tracing::warn!(worker = worker.0, "worker lost: no heartbeat"),
            Command::Quarantined { worker, reason } => {
                tracing::warn!(worker = worker.0, ?reason, "worker quarantined")
            }
            other => tracing::debug!(?other, "pool command"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_worker_is_lost_and_shows_so() {
        let config = Config { heartbeat_timeout: 50, ..Config::default() };
        let pool = Pool::new(config, Duration::from_millis(20));
        let quiet = pool.register("quiet".into(), "linux-x86_64".into(), 2, 1 << 30).unwrap();
        let alive = pool.register("alive".into(), "linux-x86_64".into(), 4, 1 << 30).unwrap();
        for _ in 0..8 {
            std::thread::sleep(Duration::from_millis(15));
            pool.heartbeat(alive, 0).unwrap();
            pool.tick();
        }
        let status: serde_json::Value = serde_json::from_str(&pool.status_json()).unwrap();
        let state = |id: WorkerId| {
            status["workers"].as_array().unwrap().iter().find(|w| w["id"] == id.0).unwrap()["state"].clone()
        };
        assert_eq!(state(quiet), "lost", "{status}");
        assert_eq!(state(alive), "active", "{status}");
        assert!(pool.register("bad".into(), "linux-x86_64".into(), 0, 0).is_err(), "no slots refused");
    }
}
