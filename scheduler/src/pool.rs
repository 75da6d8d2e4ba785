//! The pool as the QUIC service holds it: the sans-IO [`Dispatcher`] behind a lock, the clock it is fed
//! with, the ids given to registering workers, each worker's outgoing channel, and the requesters waiting
//! for actions. The dispatcher's commands are carried out here: assignments and cancellations go to the
//! workers' streams, deliveries to the waiting requesters. Time is milliseconds since the service started.

use crate::dispatch::{
    ActionSpec, Command, Config, Delivery, DispatchError, Dispatcher, FailureKind, Heartbeat, Millis, Outcome,
    RequesterId, WorkerId, WorkerInfo,
};
use crate::storage::Storage;
use rcc_proto::remote::{ActionResult, RemoteAction, RemoteError, SchedulerMessage};
use rcc_proto::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

type Waiter = oneshot::Sender<Result<ActionResult, RemoteError>>;

/// Actions in flight, who waits for them, and how to reach each connected worker.
#[derive(Default)]
struct Flights {
    actions: HashMap<Digest, RemoteAction>,
    waiters: HashMap<RequesterId, Waiter>,
    results: HashMap<Digest, ActionResult>,
    workers: HashMap<WorkerId, mpsc::UnboundedSender<SchedulerMessage>>,
}

/// The pool's shared state.
pub struct Pool {
    dispatcher: Mutex<Dispatcher>,
    flights: Mutex<Flights>,
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
            flights: Mutex::new(Flights::default()),
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

    fn flights(&self) -> std::sync::MutexGuard<'_, Flights> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a worker; returns the id its session uses and the channel its assignments arrive on.
    pub fn register(
        &self,
        name: String,
        pool: String,
        slots: u32,
        memory_bytes: u64,
    ) -> Result<(WorkerId, mpsc::UnboundedReceiver<SchedulerMessage>), DispatchError> {
        let id = WorkerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let info = WorkerInfo { id, name, pool, slots, memory_bytes, toolchains: Vec::new(), inputs: Vec::new() };
        let now = self.now();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut commands = self.dispatcher().handle_register(info, now)?;
        self.flights().workers.insert(id, tx);
        commands.extend(self.dispatcher().dispatch(now));
        self.carry_out(commands);
        Ok((id, rx))
    }

    /// Runs an action on the pool and waits for its result. Refused at once when no worker of its pool is
    /// active, so the requester compiles locally instead of waiting.
    pub async fn execute(&self, action: RemoteAction) -> Result<ActionResult, RemoteError> {
        action.validate()?;
        let now = self.now();
        if !self.dispatcher().has_active_worker(&action.pool) {
            return Err(RemoteError::NoWorkers(action.pool.clone()));
        }
        let digest = action.digest();
        let requester = RequesterId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let spec = ActionSpec {
            digest,
            pool: action.pool.clone(),
            kind: action.kind,
            toolchain: action.toolchain,
            inputs: action.inputs.iter().map(|(_, d)| *d).collect(),
            requester,
        };
        {
            let mut flights = self.flights();
            flights.actions.insert(digest, action);
            flights.waiters.insert(requester, tx);
        }
        if let Err(e) = self.dispatcher().handle_submit(spec, now) {
            self.flights().waiters.remove(&requester);
            return Err(RemoteError::Malformed(e.to_string()));
        }
        let commands = self.dispatcher().dispatch(now);
        self.carry_out(commands);
        rx.await.map_err(|_| RemoteError::Internal("the pool dropped the action".into()))?
    }

    /// A worker's report of an action it ran. The result is accepted only when every blob it names is in
    /// the store (their digests were checked on upload); otherwise the worker is reported corrupt.
    pub fn finished(
        &self,
        worker: WorkerId,
        action: Digest,
        result: Option<ActionResult>,
        error: Option<String>,
        storage: &dyn Storage,
    ) {
        let now = self.now();
        let commands = match result {
            Some(result) => {
                let blobs: Vec<Digest> = result.blobs().collect();
                if storage.find_missing(&blobs).is_ok_and(|missing| missing.is_empty()) {
                    let exit_code = result.exit_code;
                    let id = Digest::of(&postcard::to_allocvec(&result).unwrap_or_default());
                    self.flights().results.insert(id, result);
                    self.dispatcher().handle_result(worker, action, Outcome::Ran { exit_code, result: id }, now)
                } else {
                    tracing::warn!(worker = worker.0, "worker reported outputs that are not stored: corrupt");
                    self.dispatcher().handle_corrupt(worker, action, now)
                }
            }
            None => {
                tracing::warn!(worker = worker.0, error = error.as_deref().unwrap_or("?"), "action could not run");
                self.dispatcher().handle_result(worker, action, Outcome::Failed(FailureKind::Setup), now)
            }
        };
        match commands {
            Ok(mut commands) => {
                commands.extend(self.dispatcher().dispatch(now));
                self.carry_out(commands);
            }
            Err(e) => tracing::debug!(error = %e, "stale report"),
        }
    }

    /// A worker's stream ended: it is sent nothing more (the dispatcher requeues its actions once its
    /// heartbeats are overdue).
    pub fn disconnected(&self, worker: WorkerId) {
        self.flights().workers.remove(&worker);
    }

    /// Carries out the dispatcher's commands.
    fn carry_out(&self, commands: Vec<Command>) {
        log_commands(&commands);
        let mut flights = self.flights();
        for command in commands {
            match command {
                Command::Assign { action, worker, .. } => {
                    let Some(spec) = flights.actions.get(&action).cloned() else { continue };
                    let sent = flights
                        .workers
                        .get(&worker)
                        .is_some_and(|tx| tx.send(SchedulerMessage::Run { action: Box::new(spec) }).is_ok());
                    if !sent {
                        tracing::debug!(worker = worker.0, "assigned to a disconnected worker: requeued when lost");
                    }
                }
                Command::Cancel { action, worker } => {
                    if let Some(tx) = flights.workers.get(&worker) {
                        let _ = tx.send(SchedulerMessage::Cancel { action });
                    }
                }
                Command::Deliver { action, requesters, delivery } => {
                    let answer = match delivery {
                        Delivery::Ran { result, .. } => flights
                            .results
                            .remove(&result)
                            .ok_or_else(|| RemoteError::Internal("delivered result missing".into())),
                        Delivery::Failed { attempts, last } => {
                            Err(RemoteError::ExecutionFailed(format!("{attempts} attempt(s), last: {last:?}")))
                        }
                    };
                    for requester in requesters {
                        if let Some(waiter) = flights.waiters.remove(&requester) {
                            let _ = waiter.send(answer.clone());
                        }
                    }
                    flights.actions.remove(&action);
                }
                Command::WorkerLost { .. } | Command::Quarantined { .. } => {}
            }
        }
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
        let mut commands = self.dispatcher().handle_timeout(now);
        commands.extend(self.dispatcher().dispatch(now));
        self.carry_out(commands);
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
        let (quiet, _q) = pool.register("quiet".into(), "linux-x86_64".into(), 2, 1 << 30).unwrap();
        let (alive, _a) = pool.register("alive".into(), "linux-x86_64".into(), 4, 1 << 30).unwrap();
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
