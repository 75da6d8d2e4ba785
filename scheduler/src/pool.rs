//! The pool as the QUIC service holds it: the sans-IO [`Dispatcher`] behind a lock, the clock it is fed
//! with, the ids given to registering workers, each worker's outgoing channel, and the requesters waiting
//! for actions. The dispatcher's commands are carried out here: assignments and cancellations go to the
//! workers' streams, deliveries to the waiting requesters. Time is milliseconds since the service started.
//!
//! Audits (`rcc_dispatch`'s `audit` module) compare workers' answers by [`answer_digest`]: the outputs and
//! the exit code. When a worker is convicted of a wrong answer, what the pool delivered of its answers is
//! undone as far as the scheduler can reach: the action results naming its outputs are dropped from the
//! action cache ([`Storage::drop_results_naming`]) and from the reuse memo. For that the pool remembers, per
//! worker, the output digests of its last [`PRODUCED_PER_WORKER`] delivered answers — in memory: a
//! scheduler restart forgets them (and they go [`DEPARTED_KEPT`] departures after the worker's own).
//! Copies a client already keeps in its *local* cache are out of reach; audited answers never get there
//! before the audit agreed.

use crate::storage::Storage;
use rcc_dispatch::{
    ActionSpec, Command, Config, Delivery, DispatchError, Dispatcher, FailureKind, Heartbeat, Millis, Outcome,
    QuarantineReason, RequesterId, WorkerId, WorkerInfo,
};
use rcc_proto::remote::{
    ActionResult, RemoteAction, RemoteError, SchedulerMessage, MAX_HELD_INPUTS, MAX_HELD_TOOLCHAINS,
};
use rcc_proto::Digest;
use std::collections::{HashMap, HashSet, VecDeque};
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
    /// Per action in flight, its answers so far by [`answer_digest`]: who gave each, and one such result.
    results: HashMap<Digest, HashMap<Digest, (Vec<WorkerId>, ActionResult)>>,
    workers: HashMap<WorkerId, mpsc::UnboundedSender<SchedulerMessage>>,
    recent: RecentResults,
    /// Output digests of each worker's delivered answers.
    produced: HashMap<WorkerId, Produced>,
    /// Workers gone, oldest first: their `produced` is kept for the [`DEPARTED_KEPT`] latest.
    departed: VecDeque<WorkerId>,
    /// Workers an audit convicted whose results are still to be dropped.
    convicted: Vec<WorkerId>,
    /// Action results dropped because they named a convicted worker's outputs.
    results_dropped: u64,
}

/// Output digests remembered per worker (about 7 MB at most for one worker).
pub const PRODUCED_PER_WORKER: usize = 100_000;
/// Departed workers whose output digests are still remembered.
pub const DEPARTED_KEPT: usize = 256;

/// The output digests of a worker's last [`PRODUCED_PER_WORKER`] delivered answers.
#[derive(Default)]
struct Produced {
    set: HashSet<Digest>,
    order: VecDeque<Digest>,
}

impl Produced {
    fn record(&mut self, digest: Digest) {
        if self.set.insert(digest) {
            self.order.push_back(digest);
        }
        while self.order.len() > PRODUCED_PER_WORKER {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

/// What audits compare of a worker's answer: its outputs (names, digests, sizes, modes) and exit code, not
/// stdout and stderr (honest runs may differ there, e.g. `-ftime-report`; they are shown, never linked).
pub fn answer_digest(result: &ActionResult) -> Digest {
    Digest::of(&postcard::to_allocvec(&(result.exit_code, &result.outputs)).unwrap_or_default())
}

/// Most recent results an action can be reused from.
const RECENT_RESULTS: usize = 65_536;

/// The successful results of the last [`RECENT_RESULTS`] actions run, by action digest: an identical action
/// submitted just after one ended (a second client a little behind the first) reuses its result instead of
/// running again. Kept in memory only, and written by nobody but the pool (clients cannot plant entries).
#[derive(Default)]
struct RecentResults {
    by_action: HashMap<Digest, ActionResult>,
    order: std::collections::VecDeque<Digest>,
}

impl RecentResults {
    fn insert(&mut self, action: Digest, result: ActionResult) {
        if self.by_action.insert(action, result).is_none() {
            self.order.push_back(action);
        }
        while self.order.len() > RECENT_RESULTS {
            if let Some(old) = self.order.pop_front() {
                self.by_action.remove(&old);
            }
        }
    }

    /// Forgets every result naming one of `blobs`.
    fn forget_naming(&mut self, blobs: &HashSet<Digest>) {
        self.by_action.retain(|_, r| !r.blobs().any(|b| blobs.contains(&b)));
        let kept = &self.by_action;
        self.order.retain(|a| kept.contains_key(a));
    }
}

/// A requester's wait for an action: dropped before the answer came (the requester went away), it
/// withdraws the requester's interest.
struct Interest<'a> {
    pool: &'a Pool,
    action: Digest,
    requester: RequesterId,
    answered: bool,
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.pool.withdraw(self.action, self.requester);
        }
    }
}

/// Where the pool's time comes from: the real clock, or one tests move by hand.
enum Clock {
    /// Milliseconds since this instant.
    Real(Instant),
    /// Milliseconds as last set.
    Manual(AtomicU64),
}

/// The pool's shared state.
pub struct Pool {
    dispatcher: Mutex<Dispatcher>,
    flights: Mutex<Flights>,
    clock: Clock,
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
            clock: Clock::Real(Instant::now()),
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

    /// A pool on a clock only [`advance`](Self::advance) moves (tests of heartbeat loss and timing).
    pub fn with_manual_clock(config: Config, heartbeat_interval: Duration) -> Pool {
        Pool { clock: Clock::Manual(AtomicU64::new(0)), ..Pool::new(config, heartbeat_interval) }
    }

    /// Moves a manual clock forward; a real clock is not moved.
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(now) = &self.clock {
            now.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
        }
    }

    fn now(&self) -> Millis {
        match &self.clock {
            Clock::Real(epoch) => epoch.elapsed().as_millis() as Millis,
            Clock::Manual(now) => now.load(Ordering::Relaxed) as Millis,
        }
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
        let mut interest = Interest { pool: self, action: digest, requester, answered: false };
        let answer = rx.await;
        interest.answered = true;
        answer.map_err(|_| RemoteError::Internal("the pool dropped the action".into()))?
    }

    /// A requester stopped waiting for an action before its answer: its interest is withdrawn, and an action
    /// nobody waits for any more is cancelled on the workers running it.
    fn withdraw(&self, action: Digest, requester: RequesterId) {
        self.flights().waiters.remove(&requester);
        let now = self.now();
        let (mut commands, dropped) = {
            let mut dispatcher = self.dispatcher();
            let commands = dispatcher.handle_withdraw(action, requester, now);
            (commands, !dispatcher.is_in_flight(&action))
        };
        if dropped {
            tracing::info!(action = %action, "nobody waits for the action any more: dropped");
            let mut flights = self.flights();
            flights.actions.remove(&action);
            flights.results.remove(&action);
        }
        commands.extend(self.dispatcher().dispatch(now));
        self.carry_out(commands);
    }

    /// The result of an identical action that ran successfully a moment ago, if every blob it names is still
    /// stored: the requester gets it without a run (counted as `reused`).
    pub fn reuse(&self, action: &RemoteAction, storage: &dyn Storage) -> Option<ActionResult> {
        let result = self.flights().recent.by_action.get(&action.digest()).cloned()?;
        let blobs: Vec<Digest> = result.blobs().collect();
        if !storage.find_missing(&blobs).is_ok_and(|missing| missing.is_empty()) {
            return None;
        }
        self.dispatcher().note_reused();
        Some(result)
    }

    /// A worker's report of an action it ran. The result is accepted only when every blob it names is in
    /// the store (their digests were checked on upload); otherwise the worker is reported corrupt. When an
    /// audit convicts a worker, the action results naming its outputs are dropped from `storage`.
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
                    let id = answer_digest(&result);
                    let mut flights = self.flights();
                    let answers = flights.results.entry(action).or_default();
                    answers.entry(id).or_insert_with(|| (Vec::new(), result)).0.push(worker);
                    drop(flights);
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
        // A report for a copy no longer running leaves its answer behind.
        if !self.dispatcher().is_in_flight(&action) {
            self.flights().results.remove(&action);
        }
        let convicted = std::mem::take(&mut self.flights().convicted);
        for worker in convicted {
            self.drop_results_of(worker, storage);
        }
    }

    /// Undoes what the pool delivered of a convicted worker's answers: results naming its outputs leave the
    /// reuse memo and the action cache. Convictions come of results only, so [`finished`](Self::finished)
    /// calls this (it holds the storage).
    fn drop_results_of(&self, worker: WorkerId, storage: &dyn Storage) {
        let blobs = {
            let mut flights = self.flights();
            let blobs = flights.produced.remove(&worker).map(|p| p.set).unwrap_or_default();
            flights.recent.forget_naming(&blobs);
            blobs
        };
        match storage.drop_results_naming(&blobs) {
            Ok(dropped) => {
                self.flights().results_dropped += dropped;
                tracing::warn!(
                    worker = worker.0,
                    outputs = blobs.len(),
                    dropped,
                    "convicted worker: the action results naming its outputs dropped"
                );
            }
            Err(e) => tracing::error!(worker = worker.0, error = %e, "dropping a convicted worker's results failed"),
        }
    }

    /// A worker's stream ended: it is sent nothing more (the dispatcher requeues its actions once its
    /// heartbeats are overdue).
    pub fn disconnected(&self, worker: WorkerId) {
        let mut flights = self.flights();
        flights.workers.remove(&worker);
        flights.departed.push_back(worker);
        while flights.departed.len() > DEPARTED_KEPT {
            if let Some(gone) = flights.departed.pop_front() {
                flights.produced.remove(&gone);
            }
        }
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
                    let answers = flights.results.remove(&action).unwrap_or_default();
                    let answer = match delivery {
                        Delivery::Ran { result, .. } => match answers.into_iter().find(|(id, _)| *id == result) {
                            Some((_, (workers, result))) => {
                                for worker in workers {
                                    let produced = flights.produced.entry(worker).or_default();
                                    for output in &result.outputs {
                                        produced.record(output.digest);
                                    }
                                }
                                Ok(result)
                            }
                            None => Err(RemoteError::Internal("delivered result missing".into())),
                        },
                        Delivery::Failed { attempts, last } => {
                            Err(RemoteError::ExecutionFailed(format!("{attempts} attempt(s), last: {last:?}")))
                        }
                    };
                    for requester in requesters {
                        if let Some(waiter) = flights.waiters.remove(&requester) {
                            let _ = waiter.send(answer.clone());
                        }
                    }
                    if let Ok(result) = answer.as_ref() {
                        if result.exit_code == 0 {
                            flights.recent.insert(action, result.clone());
                        }
                    }
                    flights.actions.remove(&action);
                }
                Command::Quarantined { worker, reason: QuarantineReason::AuditMismatch { .. } } => {
                    flights.convicted.push(worker);
                }
                Command::WorkerLost { .. } | Command::Quarantined { .. } => {}
            }
        }
    }

    /// A worker's heartbeat: its load from other work, and what it holds (the toolchains it materialized,
    /// the input blobs it keeps), which replaces what it held before: the dispatcher prefers it for actions
    /// needing them. Lists longer than [`MAX_HELD_TOOLCHAINS`] and [`MAX_HELD_INPUTS`] are cut: a worker's
    /// word is never taken unbounded.
    pub fn heartbeat(
        &self,
        worker: WorkerId,
        external_load: u32,
        toolchains: Option<Vec<Digest>>,
        inputs: Option<Vec<Digest>>,
    ) -> Result<(), DispatchError> {
        let bounded = |list: Option<Vec<Digest>>, max: usize, what: &str| {
            list.map(|mut list| {
                if list.len() > max {
                    tracing::debug!(
                        worker = worker.0,
                        what,
                        len = list.len(),
                        "heartbeat holdings over the bound: cut"
                    );
                    list.truncate(max);
                }
                list
            })
        };
        let toolchains = bounded(toolchains, MAX_HELD_TOOLCHAINS, "toolchains");
        let inputs = bounded(inputs, MAX_HELD_INPUTS, "inputs");
        let now = self.now();
        let beat = Heartbeat { external_load: Some(external_load), toolchains, inputs };
        self.dispatcher().handle_heartbeat(worker, beat, now)
    }

    /// Periodic work: workers whose heartbeats stopped are marked lost, due twins started.
    pub fn tick(&self) {
        let now = self.now();
        let mut commands = self.dispatcher().handle_timeout(now);
        commands.extend(self.dispatcher().dispatch(now));
        self.carry_out(commands);
    }

    /// The pool's state as JSON (what `rcc-scheduler status --json` prints): the dispatcher's status, and
    /// under `audit` how audits are configured and how many cached results convictions dropped.
    pub fn status_json(&self) -> String {
        let now = self.now();
        let (status, audit) = {
            let dispatcher = self.dispatcher();
            let cfg = dispatcher.config();
            let audit = serde_json::json!({
                "first": cfg.audit_first,
                "share": cfg.audit_share,
                "wait_ms": cfg.audit_wait,
            });
            (dispatcher.status(now), audit)
        };
        let results_dropped = self.flights().results_dropped;
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            let mut audit = audit;
            audit["results_dropped"] = results_dropped.into();
            object.insert("audit".into(), audit);
        }
        serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
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
        let pool = Pool::with_manual_clock(config, Duration::from_millis(20));
        let (quiet, _q) = pool.register("quiet".into(), "linux-x86_64".into(), 2, 1 << 30).unwrap();
        let (alive, _a) = pool.register("alive".into(), "linux-x86_64".into(), 4, 1 << 30).unwrap();
        for _ in 0..8 {
            pool.advance(Duration::from_millis(15));
            pool.heartbeat(alive, 0, None, None).unwrap();
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

    fn digests(range: std::ops::Range<u64>) -> Vec<Digest> {
        range.map(|i| Digest::of(&i.to_le_bytes())).collect()
    }

    /// Two idle workers, the second with these holdings: which one the action needing `toolchain` and
    /// `input` goes to (1 or 2; on a tie the first registered wins).
    async fn assignee(toolchain: Digest, input: Digest, toolchains: Vec<Digest>, inputs: Vec<Digest>) -> u8 {
        // Without audits: an audit would send the action to both.
        let config = Config { audit_first: 0, audit_share: 0.0, ..Config::default() };
        let pool = std::sync::Arc::new(Pool::new(config, Duration::from_secs(5)));
        let (_, mut first) = pool.register("w1".into(), "p".into(), 4, 1 << 30).unwrap();
        let (second_id, mut second) = pool.register("w2".into(), "p".into(), 4, 1 << 30).unwrap();
        pool.heartbeat(second_id, 0, Some(toolchains), Some(inputs)).unwrap();
        let action = RemoteAction {
            toolchain,
            program: "/usr/bin/cc".into(),
            args: vec!["-c".into(), "unit.i".into()],
            env: Vec::new(),
            inputs: vec![("unit.i".into(), input)],
            outputs: vec!["unit.o".into()],
            pool: "p".into(),
            kind: Digest::of(b"cc unit.i"),
            timeout_ms: 1_000,
            workdir: "/w".into(),
        };
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.execute(action).await }
        });
        let which = tokio::select! {
            Some(_) = first.recv() => 1,
            Some(_) = second.recv() => 2,
        };
        waiting.abort();
        which
    }

    #[tokio::test]
    async fn a_heartbeats_holdings_reach_the_dispatcher_bounded() {
        let (tool, input) = (Digest::of(b"gcc pack"), Digest::of(b"unit.i"));
        assert_eq!(assignee(tool, input, vec![], vec![]).await, 1, "a tie: the first registered");
        assert_eq!(assignee(tool, input, vec![tool], vec![]).await, 2, "it holds the toolchain");
        assert_eq!(assignee(tool, input, vec![], vec![input]).await, 2, "it holds the input");
        let mut toolchains = digests(0..MAX_HELD_TOOLCHAINS as u64);
        toolchains.push(tool);
        let mut inputs = digests(0..MAX_HELD_INPUTS as u64);
        inputs.push(input);
        assert_eq!(assignee(tool, input, toolchains, inputs).await, 1, "what lies past the bounds is ignored");
        let mut toolchains = digests(0..MAX_HELD_TOOLCHAINS as u64 - 1);
        toolchains.push(tool);
        assert_eq!(assignee(tool, input, toolchains, vec![]).await, 2, "within the bound it counts");
    }

    #[tokio::test]
    async fn an_identical_action_just_run_reuses_its_result_while_its_blobs_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::storage::DiskStorage::open(&dir.path().join("cas"), 1 << 30).unwrap();
        let pool = std::sync::Arc::new(Pool::with_defaults());
        let (worker, mut assignments) = pool.register("w".into(), "p".into(), 1, 1 << 30).unwrap();
        let action = RemoteAction {
            toolchain: Digest::of(b"pack"),
            program: "/usr/bin/cc".into(),
            args: vec!["-c".into(), "unit.i".into()],
            env: Vec::new(),
            inputs: vec![("unit.i".into(), Digest::of(b"unit"))],
            outputs: vec!["unit.o".into()],
            pool: "p".into(),
            kind: Digest::of(b"cc unit.i"),
            timeout_ms: 1_000,
            workdir: "/w".into(),
        };
        assert!(pool.reuse(&action, &storage).is_none(), "nothing ran yet");
        let waiting = tokio::spawn({
            let (pool, action) = (pool.clone(), action.clone());
            async move { pool.execute(action).await }
        });
        assert!(matches!(assignments.recv().await, Some(SchedulerMessage::Run { .. })));
        storage.put_blob(&Digest::of(b"object"), b"object").unwrap();
        let output = rcc_proto::remote::OutputFile {
            name: "unit.o".into(),
            digest: Digest::of(b"object"),
            size: 6,
            executable: false,
        };
        let result = ActionResult { outputs: vec![output], stdout: None, stderr: None, exit_code: 0 };
        pool.finished(worker, action.digest(), Some(result.clone()), None, &storage);
        assert_eq!(waiting.await.unwrap().unwrap(), result);
        // Just after: the same action is answered without running.
        assert_eq!(pool.reuse(&action, &storage), Some(result));
        let status: serde_json::Value = serde_json::from_str(&pool.status_json()).unwrap();
        assert_eq!((&status["counters"]["reused"], &status["counters"]["assigned"]), (&1.into(), &1.into()));
        // Not when its outputs are no longer stored.
        let empty = crate::storage::DiskStorage::open(&dir.path().join("empty"), 1 << 30).unwrap();
        assert!(pool.reuse(&action, &empty).is_none());
    }

    fn run_message(message: Option<SchedulerMessage>) -> Digest {
        match message {
            Some(SchedulerMessage::Run { action }) => action.digest(),
            other => panic!("expected a Run, got {other:?}"),
        }
    }

    fn result_with(storage: &dyn Storage, object: &[u8]) -> ActionResult {
        storage.put_blob(&Digest::of(object), object).unwrap();
        let output = rcc_proto::remote::OutputFile {
            name: "unit.o".into(),
            digest: Digest::of(object),
            size: object.len() as u64,
            executable: false,
        };
        ActionResult { outputs: vec![output], stdout: None, stderr: None, exit_code: 0 }
    }

    fn unit_action(source: &[u8]) -> RemoteAction {
        RemoteAction {
            toolchain: Digest::of(b"pack"),
            program: "/usr/bin/cc".into(),
            args: vec!["-c".into(), "unit.i".into()],
            env: Vec::new(),
            inputs: vec![("unit.i".into(), Digest::of(source))],
            outputs: vec!["unit.o".into()],
            pool: "p".into(),
            kind: Digest::of(b"cc unit.i"),
            timeout_ms: 1_000,
            workdir: "/w".into(),
        }
    }

    /// A liar alone in its pool is not audited (a pool of one cannot be): its wrong object reaches a client,
    /// which stores it in the action cache. Two honest workers join; the liar's next answer is outvoted and
    /// it is convicted: the earlier result leaves the action cache and the reuse memo.
    #[tokio::test]
    async fn a_convicted_workers_delivered_results_leave_the_action_cache_and_the_reuse_memo() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::storage::DiskStorage::open(&dir.path().join("cas"), 1 << 30).unwrap();
        let config = Config { audit_first: 1, audit_share: 0.0, ..Config::default() };
        let pool = std::sync::Arc::new(Pool::new(config, Duration::from_secs(5)));
        let (liar, mut to_liar) = pool.register("liar".into(), "p".into(), 1, 1 << 30).unwrap();
        let wrong = result_with(&storage, b"one fixed wrong object");

        let first = unit_action(b"int a;");
        let waiting = tokio::spawn({
            let (pool, first) = (pool.clone(), first.clone());
            async move { pool.execute(first).await }
        });
        assert_eq!(run_message(to_liar.recv().await), first.digest());
        pool.finished(liar, first.digest(), Some(wrong.clone()), None, &storage);
        assert_eq!(waiting.await.unwrap().unwrap(), wrong, "a pool of one delivers unaudited");
        let key = Digest::of(b"the client's key for the first unit");
        storage.update_action_result("default", &key, &wrong, "ci", false).unwrap();
        assert!(pool.reuse(&first, &storage).is_some());

        let (one, mut to_one) = pool.register("one".into(), "p".into(), 1, 1 << 30).unwrap();
        let (two, mut to_two) = pool.register("two".into(), "p".into(), 1, 1 << 30).unwrap();
        let second = unit_action(b"int b;");
        let right = result_with(&storage, b"the true object");
        let waiting = tokio::spawn({
            let (pool, second) = (pool.clone(), second.clone());
            async move { pool.execute(second).await }
        });
        // The liar (first registered, idle) runs it; one of the honest workers audits it.
        assert_eq!(run_message(to_liar.recv().await), second.digest());
        pool.finished(liar, second.digest(), Some(wrong.clone()), None, &storage);
        let (auditor, other, mut to_other) = tokio::select! {
            m = to_one.recv() => { run_message(m); (one, two, to_two) }
            m = to_two.recv() => { run_message(m); (two, one, to_one) }
        };
        pool.finished(auditor, second.digest(), Some(right.clone()), None, &storage);
        // Two new workers disagree: a third copy decides.
        assert_eq!(run_message(to_other.recv().await), second.digest());
        pool.finished(other, second.digest(), Some(right.clone()), None, &storage);
        assert_eq!(waiting.await.unwrap().unwrap(), right, "the majority's answer");

        assert_eq!(
            storage.get_action_result("default", &key).unwrap(),
            None,
            "the liar's result left the action cache"
        );
        assert!(pool.reuse(&first, &storage).is_none(), "and the reuse memo");
        let status: serde_json::Value = serde_json::from_str(&pool.status_json()).unwrap();
        let liar_status = status["workers"].as_array().unwrap().iter().find(|w| w["name"] == "liar").unwrap();
        assert_eq!(liar_status["state"], "quarantined", "{status:#}");
        assert_eq!(liar_status["quarantine_reason"]["kind"], "audit-mismatch", "{status:#}");
        assert_eq!(status["audit"]["results_dropped"], 1, "{status:#}");
        assert_eq!(status["counters"]["audits_skipped"], 1, "{status:#}");
        assert_eq!(status["counters"]["audits_mismatched"], 1, "{status:#}");
    }
}
