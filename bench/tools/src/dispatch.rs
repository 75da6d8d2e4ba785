//! `rcc-bench dispatch`: the dispatch core alone, with thousands of simulated workers and a
//! million queued actions, on a simulated clock.
//!
//! Every action is submitted at time 0. Then, until all are delivered: dispatch decisions are made until no
//! slot is free (each [`Dispatcher::poll_dispatch`] call that assigns is timed on the real clock), and the
//! simulated clock jumps to the next event: an action finishing (durations drawn per kind, with a few
//! stragglers so speculative twins happen), or the next second, when a fifth of the workers heartbeat and
//! [`Dispatcher::handle_timeout`] runs. Workers hold 1–2 of their pool's toolchains and a few hundred input
//! blobs, so locality is compared for real.

use rcc_dispatch::{
    ActionSpec, Command, Config, Dispatcher, Heartbeat, Millis, Outcome, RequesterId, WorkerId, WorkerInfo,
};
use rcc_proto::Digest;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Simulated workers.
    pub workers: usize,
    /// Actions queued at the start.
    pub actions: usize,
    /// Pools the workers and actions are spread over.
    pub pools: usize,
    /// Seed of the pseudo-random choices (the run is deterministic but for the timings).
    pub seed: u64,
    /// Slots per worker.
    pub slots: u32,
    /// Distinct action kinds.
    pub kinds: usize,
    /// Inputs per action.
    pub inputs_per_action: usize,
    /// Input blobs each worker holds.
    pub held_inputs: usize,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            workers: 10_000,
            actions: 1_000_000,
            pools: 4,
            seed: 1,
            slots: 8,
            kinds: 10_000,
            inputs_per_action: 8,
            held_inputs: 256,
        }
    }
}

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// The options it ran with.
    pub options: BenchOptions,
    /// Assignments made by timed `poll_dispatch` calls (requeued actions included).
    pub decisions: u64,
    /// Speculative twins started (by `handle_timeout`, not timed as decisions).
    pub twins: u64,
    /// Requesters that received a result (must equal the actions).
    pub delivered: u64,
    /// Seconds spent inside assigning `poll_dispatch` calls.
    pub dispatch_secs: f64,
    /// Decisions per second of dispatch time.
    pub decisions_per_sec: f64,
    /// Median time of one decision, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Slowest decision, µs.
    pub max_us: f64,
    /// Seconds to submit all actions.
    pub submit_secs: f64,
    /// Wall seconds of the whole simulation after submission (results, heartbeats, ticks included).
    pub loop_secs: f64,
    /// Simulated seconds until the last delivery.
    pub simulated_secs: f64,
}

impl BenchReport {
    /// Column names of [`csv_row`](Self::csv_row).
    pub const CSV_HEADER: &'static str = "workers,actions,pools,slots,seed,decisions,twins,delivered,dispatch_s,\
        decisions_per_s,p50_us,p99_us,max_us,submit_s,loop_s,simulated_s";

    /// One CSV line of the figures.
    pub fn csv_row(&self) -> String {
        let o = &self.options;
        format!(
            "{},{},{},{},{},{},{},{},{:.3},{:.0},{:.2},{:.2},{:.1},{:.3},{:.3},{:.0}",
            o.workers,
            o.actions,
            o.pools,
            o.slots,
            o.seed,
            self.decisions,
            self.twins,
            self.delivered,
            self.dispatch_secs,
            self.decisions_per_sec,
            self.p50_us,
            self.p99_us,
            self.max_us,
            self.submit_secs,
            self.loop_secs,
            self.simulated_secs
        )
    }
}

/// xorshift64*: enough randomness for a simulation, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn digest(&mut self) -> Digest {
        let mut d = [0u8; 32];
        for chunk in d.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        Digest(d)
    }
}

/// The digest of action `i`: its first bytes carry `i`, so a result can be mapped back to its duration.
fn action_digest(i: usize, salt: u64) -> Digest {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&(i as u64).to_le_bytes());
    d[8..16].copy_from_slice(&salt.to_le_bytes());
    Digest(d)
}

fn action_index(d: &Digest) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    u64::from_le_bytes(b) as usize
}

/// Runs the simulation.
pub fn run(opts: &BenchOptions) -> BenchReport {
    let pools = opts.pools.max(1);
    let mut rng = Rng(opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let pool_names: Vec<String> = (0..pools).map(|p| format!("pool-{p}")).collect();
    let toolchains: Vec<Vec<Digest>> = (0..pools).map(|_| (0..4).map(|_| rng.digest()).collect()).collect();
    let universe: Vec<Digest> = (0..20_000).map(|_| rng.digest()).collect();
    // Per kind: pool, toolchain, typical duration (0.5–30 s, log-uniform-ish), first input.
    let kinds: Vec<(usize, Digest, Digest, Millis, usize)> = (0..opts.kinds.max(1))
        .map(|_| {
            let pool = rng.below(pools);
            let tc = toolchains[pool][rng.below(4)];
            let typical = (500.0 * 60f64.powf((rng.next() % 1000) as f64 / 1000.0)) as Millis;
            (pool, rng.digest(), tc, typical, rng.below(universe.len()))
        })
        .collect();

    let mut d = Dispatcher::new(Config::default());
    for w in 0..opts.workers {
        let pool = w % pools;
        let mut held = vec![toolchains[pool][rng.below(4)]];
        if rng.below(2) == 0 {
            held.push(toolchains[pool][rng.below(4)]);
        }
        let inputs = (0..opts.held_inputs).map(|_| universe[rng.below(universe.len())]).collect();
        let info = WorkerInfo {
            id: WorkerId(w as u64),
            name: format!("sim-{w}"),
            pool: pool_names[pool].clone(),
            slots: opts.slots.max(1),
            memory_bytes: 16 << 30,
            toolchains: held,
            inputs,
        };
        // Invariant: slots ≥ 1 and the pool name is not empty, so registration cannot fail.
        d.handle_register(info, 0).expect("valid simulated worker");
    }

    let salt = rng.next();
    let mut durations: Vec<Millis> = Vec::with_capacity(opts.actions);
    let submit_start = Instant::now();
    for i in 0..opts.actions {
        let (pool, kind, tc, typical, first) = kinds[rng.below(kinds.len())];
        // 0.7–1.5 × typical, and one action in a hundred a 5× straggler.
        let mut took = typical * (70 + rng.below(80) as Millis) / 100;
        if rng.below(100) == 0 {
            took *= 5;
        }
        durations.push(took.max(1));
        let inputs =
            (0..opts.inputs_per_action).map(|j| universe[(first + j * 7 + rng.below(3)) % universe.len()]).collect();
        let spec = ActionSpec {
            digest: action_digest(i, salt),
            pool: pool_names[pool].clone(),
            kind,
            toolchain: tc,
            inputs,
            requester: RequesterId(i as u64),
        };
        d.handle_submit(spec, 0).expect("valid simulated action");
    }
    let submit_secs = submit_start.elapsed().as_secs_f64();

    let mut latencies: Vec<u32> = Vec::with_capacity(opts.actions + opts.actions / 20);
    let mut events: BinaryHeap<Reverse<(Millis, u64, usize)>> = BinaryHeap::new();
    let (mut twins, mut delivered) = (0u64, 0u64);
    let mut now: Millis = 0;
    let mut next_tick: Millis = 1_000;
    let mut dispatch_secs = 0.0;
    let result = rng.digest();
    let loop_start = Instant::now();
    let mut handle = |cmds: Vec<Command>, now: Millis, events: &mut BinaryHeap<_>, twins: &mut u64| {
        for c in cmds {
            match c {
                Command::Assign { action, worker, twin } => {
                    *twins += u64::from(twin);
                    // A twin is no straggler: it takes a third of the original's time.
                    let took = durations[action_index(&action)];
                    let took = if twin { took / 3 + 1 } else { took };
                    events.push(Reverse((now + took, worker.0, action_index(&action))));
                }
                Command::Deliver { requesters, .. } => delivered += requesters.len() as u64,
                Command::Cancel { .. } | Command::WorkerLost { .. } | Command::Quarantined { .. } => {}
            }
        }
    };
    loop {
        loop {
            let t0 = Instant::now();
            let Some(cmd) = d.poll_dispatch(now) else { break };
            let dt = t0.elapsed();
            dispatch_secs += dt.as_secs_f64();
            latencies.push(dt.as_nanos().min(u128::from(u32::MAX)) as u32);
            handle(vec![cmd], now, &mut events, &mut twins);
        }
        let Some(&Reverse((at, _, _))) = events.peek() else { break };
        if next_tick <= at {
            now = next_tick;
            next_tick += 1_000;
            let fifth = (now / 1_000) % 5;
            for w in (fifth as usize..opts.workers).step_by(5) {
                // Invariant: every simulated worker registered above.
                d.handle_heartbeat(WorkerId(w as u64), Heartbeat::default(), now).expect("registered worker");
            }
            let cmds = d.handle_timeout(now);
            handle(cmds, now, &mut events, &mut twins);
            continue;
        }
        now = at;
        while let Some(&Reverse((at, worker, i))) = events.peek() {
            if at != now {
                break;
            }
            events.pop();
            let outcome = Outcome::Ran { exit_code: 0, result };
            let cmds = d.handle_result(WorkerId(worker), action_digest(i, salt), outcome, now).expect("registered");
            handle(cmds, now, &mut events, &mut twins);
        }
    }
    let loop_secs = loop_start.elapsed().as_secs_f64();

    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
        f64::from(latencies[i]) / 1_000.0
    };
    let decisions = latencies.len() as u64;
    BenchReport {
        options: opts.clone(),
        decisions,
        twins,
        delivered,
        dispatch_secs,
        decisions_per_sec: if dispatch_secs > 0.0 { decisions as f64 / dispatch_secs } else { 0.0 },
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: latencies.last().map_or(0.0, |&n| f64::from(n) / 1_000.0),
        submit_secs,
        loop_secs,
        simulated_secs: now as f64 / 1_000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_simulation_delivers_everything() {
        let opts = BenchOptions { workers: 20, actions: 2_000, pools: 2, kinds: 50, ..BenchOptions::default() };
        let r = run(&opts);
        assert_eq!(r.delivered, 2_000);
        assert!(r.decisions >= 2_000);
    }
}
