//! The remote build pool over real QUIC on loopback: `rccd worker` processes register with the real
//! rcc-scheduler and heartbeat; `rcc-scheduler status` shows them, and a killed worker turns lost.

use crate::remote::Scheduler;
use crate::support::{bin_dir, run_ok, Running, Stopped, TestEnv};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A worker process of the scheduler's pool.
pub(crate) struct Worker(pub(crate) Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn status_json(scheduler: &Scheduler) -> serde_json::Value {
    let out = run_ok(Command::new(bin_dir().join("rcc-scheduler")).args([
        "--state",
        scheduler.state.to_str().unwrap(),
        "status",
        "--json",
    ]));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// Polls the status until `ok` holds (at most 20 s).
pub(crate) fn wait_for(
    scheduler: &Scheduler,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_for_within(scheduler, what, Duration::from_secs(20), ok)
}

/// Polls the status until `ok` holds, for at most `limit`.
pub(crate) fn wait_for_within(
    scheduler: &Scheduler,
    what: &str,
    limit: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = status_json(scheduler);
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} never happened; last status:\n{status:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn worker<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["workers"].as_array()?.iter().find(|w| w["name"] == name)
}

#[test]
fn workers_register_heartbeat_show_in_status_and_a_killed_one_is_lost() {
    let env = TestEnv::new();
    let scheduler = Scheduler::start_with(&env.root, &["--heartbeat-ms", "200", "--heartbeat-timeout-ms", "1000"]);
    let _alpha = start_faulty_worker(&scheduler, &env, "alpha", 2, &[]);
    let mut beta = start_faulty_worker(&scheduler, &env, "beta", 3, &[]);

    let status = wait_for(&scheduler, "both workers active", |s| {
        ["alpha", "beta"].iter().all(|n| worker(s, n).is_some_and(|w| w["state"] == "active"))
    });
    let pool = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    assert_eq!(worker(&status, "alpha").unwrap()["slots"], 2);
    assert_eq!(worker(&status, "beta").unwrap()["pool"], pool.as_str());
    let pools = status["pools"].as_array().expect("pools");
    let this = pools.iter().find(|p| p["pool"] == pool.as_str()).expect("the workers' pool");
    assert_eq!(
        (this["workers"].as_u64(), this["slots"].as_u64(), this["queued"].as_u64()),
        (Some(2), Some(5), Some(0))
    );

    // Heartbeats keep arriving: still active well past the timeout.
    std::thread::sleep(Duration::from_millis(1500));
    let status = status_json(&scheduler);
    assert_eq!(worker(&status, "alpha").unwrap()["state"], "active", "{status:#}");

    // A killed worker stops heartbeating and is marked lost; the other stays.
    let _ = beta.0.kill();
    let _ = beta.0.wait();
    let status = wait_for(&scheduler, "beta lost", |s| worker(s, "beta").is_some_and(|w| w["state"] == "lost"));
    assert_eq!(worker(&status, "alpha").unwrap()["state"], "active");

    // The table form names them too.
    let table = run_ok(Command::new(bin_dir().join("rcc-scheduler")).args([
        "--state",
        scheduler.state.to_str().unwrap(),
        "status",
    ]));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("alpha") && text.contains("lost") && text.contains("desired"), "{text}");
}

#[test]
fn a_token_without_the_worker_scope_cannot_register() {
    let env = TestEnv::new();
    let scheduler = Scheduler::start(&env.root);
    let out = Command::new(bin_dir().join("rccd"))
        .args(["worker", "--scheduler", &scheduler.addr, "--fingerprint", &scheduler.fingerprint])
        .env("RCC_TOKEN", scheduler.token("read,write"))
        .output()
        .expect("running rccd worker");
    assert!(!out.status.success(), "refused registration ends the worker with an error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("registration refused") && stderr.contains("`worker` scope"), "{stderr}");
    let status = status_json(&scheduler);
    assert_eq!(status["workers"].as_array().map(Vec::len), Some(0));
}

/// A small C project: six units and a header; its Makefile asks for depfiles only with `DEPFLAGS=…`.
pub(crate) fn write_project(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("parts.h"), "int part(int i, int x);\n").unwrap();
    let mut objects = Vec::new();
    for i in 0..6 {
        std::fs::write(
            dir.join(format!("part{i}.c")),
            format!("#include \"parts.h\"\nstatic int helper{i}(int x) {{ return x * {i} + 1; }}\nint part{i}(int x) {{ return helper{i}(x); }}\n"),
        )
        .unwrap();
        objects.push(format!("part{i}.o"));
    }
    let calls: String = (0..6).map(|i| format!(" + part{i}(n)")).collect();
    let decls: String = (0..6).map(|i| format!("int part{i}(int x);\n")).collect();
    std::fs::write(
        dir.join("main.c"),
        format!("#include <stdio.h>\n{decls}int main(void) {{ int n = 3; printf(\"%d\\n\", 0{calls}); return 0; }}\n"),
    )
    .unwrap();
    objects.push("main.o".into());
    std::fs::write(
        dir.join("Makefile"),
        format!(
            "CFLAGS = -O2 -g $(DEPFLAGS)\nOBJS = {objs}\napp: $(OBJS)\n\t$(CC) -o app $(OBJS)\n%.o: %.c\n\t$(CC) $(CFLAGS) -c $< -o $@\n",
            objs = objects.join(" ")
        ),
    )
    .unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        crate::support::settle(&entry.unwrap().path());
    }
}

pub(crate) fn objects(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    files_ending(dir, ".o")
}

pub(crate) fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

/// Opens the test's directories to the sandbox's unprivileged user (workers run actions as `nobody`).
pub(crate) fn open_to_sandbox(env: &TestEnv) {
    use std::os::unix::fs::PermissionsExt;
    for dir in [&env.root, &env.proj] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn start_worker_in(scheduler: &Scheduler, env: &TestEnv, name: &str) -> Worker {
    start_faulty_worker(scheduler, env, name, 2, &[])
}

/// A worker with test faults (`RCC_WORKER_TEST_DELAY_MS`, `RCC_WORKER_TEST_CORRUPT`).
pub(crate) fn start_faulty_worker(
    scheduler: &Scheduler,
    env: &TestEnv,
    name: &str,
    slots: u32,
    faults: &[(&str, &str)],
) -> Worker {
    let log = std::fs::File::create(env.root.join(format!("worker-{name}.log"))).expect("worker log");
    // A directory relative to the worker's cwd, as an operator would type it.
    let child = Command::new(bin_dir().join("rccd"))
        .current_dir(&env.root)
        .envs(faults.iter().copied())
        .args(["worker", "--scheduler", &scheduler.addr, "--fingerprint", &scheduler.fingerprint])
        .env("RCC_TOKEN", scheduler.token("worker,read,write"))
        .args(["--name", name, "--slots", &slots.to_string()])
        .args(["--dir", &format!("worker-{name}")])
        .env("RCC_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting rccd worker");
    Worker(child)
}

/// A scheduler (300 ms heartbeats) and two workers with two slots each, registered.
fn two_worker_pool(env: &TestEnv) -> (Scheduler, [Worker; 2]) {
    open_to_sandbox(env);
    let scheduler = Scheduler::start_with(&env.root, &["--heartbeat-ms", "300"]);
    let workers = [start_worker_in(&scheduler, env, "one"), start_worker_in(&scheduler, env, "two")];
    wait_for(&scheduler, "two workers", |s| s["workers"].as_array().is_some_and(|w| w.len() == 2));
    (scheduler, workers)
}

#[test]
fn a_make_build_with_no_local_jobs_compiles_on_the_workers_byte_identically() {
    let mut env = TestEnv::new();
    let (scheduler, _workers) = two_worker_pool(&env);

    env.set_env("RCC_SCHEDULER", &scheduler.addr);
    env.set_env("RCC_SCHEDULER_FINGERPRINT", &scheduler.fingerprint);
    env.set_env("RCC_TOKEN", &scheduler.token("read,write,execute"));
    env.set_env("RCC_LOCAL_JOBS", "0");
    write_project(&env.proj);
    let rcc = env.rcc_bin();
    // Depfiles as automake writes them (-MMD -MP: no system headers, phony targets).
    let deps = "DEPFLAGS=-MMD -MP";
    run_ok(env.command("make").args(["-j4", deps, &format!("CC={} gcc", rcc.display())]));
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_compiles"], 7, "every unit compiled on the pool: {stats:#}\n{}", env.log());
    assert_eq!(stats["stored"], 7, "{stats:#}");
    let app = run_ok(&mut Command::new(env.proj.join("app")));
    assert_eq!(String::from_utf8_lossy(&app.stdout).trim(), "51");

    // The same project built locally without rcc, in the same directory: identical objects and depfiles.
    let remote_objects = objects(&env.proj);
    let remote_depfiles = files_ending(&env.proj, ".d");
    assert_eq!(remote_depfiles.len(), 7);
    run_ok(env.command("make").args(["-B", "-j4", deps, "CC=gcc"]));
    assert_eq!(remote_objects, objects(&env.proj), "remote objects are byte-identical to local ones");
    assert_eq!(remote_depfiles, files_ending(&env.proj, ".d"), "so are the depfiles");

    // A rebuild is all cache hits: the remote results were stored like local ones. A header change then
    // misses (the -MMD depfile's headers are inputs) and compiles on the pool again.
    env.zero_stats();
    for o in remote_objects.iter().chain(&remote_depfiles) {
        std::fs::remove_file(env.proj.join(&o.0)).unwrap();
    }
    run_ok(env.command("make").args(["-j4", deps, &format!("CC={} gcc", rcc.display())]));
    assert_eq!(env.counter("hits_direct"), 7);
    assert_eq!(remote_depfiles, files_ending(&env.proj, ".d"), "depfiles restored from the cache");
    std::fs::write(env.proj.join("parts.h"), "int part(int i, int x);\nint other(void);\n").unwrap();
    crate::support::settle(&env.proj.join("parts.h"));
    env.zero_stats();
    run_ok(env.command("make").args(["-B", "-j4", deps, &format!("CC={} gcc", rcc.display())]));
    assert_eq!(env.counter("remote_compiles"), 6, "the six units including parts.h recompile");
    assert_eq!(env.counter("hits_direct"), 1, "main.c does not include it");
}

#[test]
fn a_pool_without_workers_means_local_compiles() {
    let mut env = TestEnv::new();
    let scheduler = Scheduler::start(&env.root);
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    let make = |env: &TestEnv| {
        run_ok(env.command("make").args(["-B", "-j4", &format!("CC={} gcc", env.rcc_bin().display())]));
    };
    let started = Instant::now();
    make(&env);
    assert!(started.elapsed() < Duration::from_secs(60), "no hang");
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_compiles"], 0);
    // The first misses ask and hear that the pool is empty; the misses after them stay local without
    // asking (no preprocessing run, no round trip) while the hold lasts.
    let fallback = |name: &str| env.stats()["counters"]["remote_fallbacks"][name].as_u64().unwrap_or(0);
    let asked = fallback("no-workers");
    assert_eq!(asked + fallback("no-workers-held-off"), 7, "{stats:#}");
    assert!(asked >= 1, "the first misses ask: {stats:#}");
    assert_eq!(stats["misses"], 7);

    // While the pool stays empty, each ask after a hold ends holds twice as long (1 s, 2 s, 4 s, 8 s): new
    // misses one at a time until the scheduler's answer holds them off for 8 s.
    let holds = |env: &TestEnv| -> Vec<u64> {
        env.log()
            .lines()
            .filter(|l| l.contains("the pool has no active worker"))
            .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("wait_ms=")?.parse().ok()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut long_hold_from = None;
    for i in 0.. {
        env.write(&format!("one{i}.c"), &format!("int one{i}(void) {{ return {i}; }}\n"));
        let asked_at = Instant::now();
        env.rcc_ok(&["gcc", "-c", &format!("one{i}.c"), "-o", &format!("one{i}.o")]);
        if holds(&env).last() == Some(&8000) {
            long_hold_from = Some(asked_at);
            break;
        }
        assert!(Instant::now() < deadline, "no 8 s hold yet: {:?}\n{}", holds(&env), env.log());
        // Pacing only: the loop waits for the holds to end, whatever their length.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(holds(&env), [1000, 2000, 4000, 8000], "each hold twice the one before");
    let asked = fallback("no-workers");
    let held_off = fallback("no-workers-held-off");

    // Within that hold, a whole new build asks nothing: every miss stays local at once.
    change_every_unit(&env.proj);
    make(&env);
    let long_hold_from = long_hold_from.expect("the loop ends with the 8 s hold");
    assert!(
        long_hold_from.elapsed() < Duration::from_secs(8),
        "the build did not fit in the 8 s hold ({:?}): this machine is far too slow for this test",
        long_hold_from.elapsed()
    );
    assert_eq!(fallback("no-workers"), asked, "held off: nobody asked the scheduler\n{}", env.log());
    assert_eq!(fallback("no-workers-held-off"), held_off + 6, "the six changed units stayed local");
    assert_eq!(env.counter("remote_compiles"), 0);
    let local = objects(&env.proj);
    run_ok(env.command("make").args(["-B", "-j4", "CC=gcc"]));
    assert_eq!(local, objects(&env.proj), "the local compiles are gcc's");
}

/// A client machine of the pool that compiles nothing locally.
pub(crate) fn pool_client(scheduler: &Scheduler, env: &mut TestEnv) {
    env.set_env("RCC_SCHEDULER", &scheduler.addr);
    env.set_env("RCC_SCHEDULER_FINGERPRINT", &scheduler.fingerprint);
    env.set_env("RCC_TOKEN", &scheduler.token("read,write,execute"));
    env.set_env("RCC_LOCAL_JOBS", "0");
}

/// The project's objects from a plain local build in a copy of it.
pub(crate) fn local_objects(env: &TestEnv) -> Vec<(String, Vec<u8>)> {
    // In place (-g records the directory), then the remote objects are put back.
    let saved = objects(&env.proj);
    run_ok(env.command("make").args(["-B", "-j4", "CC=gcc"]));
    let local = objects(&env.proj);
    for (name, data) in &saved {
        std::fs::write(env.proj.join(name), data).unwrap();
    }
    local
}

#[test]
fn killing_a_worker_mid_build_leaves_the_build_green_with_its_actions_rerun_elsewhere() {
    let mut env = TestEnv::new();
    open_to_sandbox(&env);
    let scheduler = Scheduler::start_with(&env.root, &["--heartbeat-ms", "200", "--heartbeat-timeout-ms", "800"]);
    let mut slow = start_faulty_worker(&scheduler, &env, "slow", 2, &[("RCC_WORKER_TEST_DELAY_MS", "60000")]);
    let _fast = start_worker_in(&scheduler, &env, "fast");
    wait_for(&scheduler, "two workers", |s| s["workers"].as_array().is_some_and(|w| w.len() == 2));
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    let mut make = env
        .command("make")
        .args(["-j4", &format!("CC={} gcc", env.rcc_bin().display())])
        .stdout(Stdio::null())
        .spawn()
        .expect("make");
    // Once the slow worker holds actions, it dies.
    wait_for(&scheduler, "an action on the slow worker", |s| {
        worker(s, "slow").is_some_and(|w| w["running"].as_u64().unwrap_or(0) > 0)
    });
    let _ = slow.0.kill();
    let _ = slow.0.wait();
    let status = make.wait().expect("make");
    assert!(status.success(), "the build stays green\n{}", env.log());
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_compiles"], 7, "the dead worker's actions ran on the other one: {stats:#}");
    let remote = objects(&env.proj);
    assert_eq!(remote, local_objects(&env), "byte-identical to a local build");
    let status = status_json(&scheduler);
    assert_eq!(worker(&status, "slow").unwrap()["state"], "lost");
}

#[test]
fn a_worker_returning_corrupt_outputs_is_caught_and_quarantined() {
    let mut env = TestEnv::new();
    open_to_sandbox(&env);
    let scheduler = Scheduler::start_with(&env.root, &["--heartbeat-ms", "300"]);
    let _liar = start_faulty_worker(&scheduler, &env, "liar", 2, &[("RCC_WORKER_TEST_CORRUPT", "1")]);
    // One slow slot on the honest worker: however the holdings steer dispatch, the liar gets actions.
    let _honest = start_faulty_worker(&scheduler, &env, "honest", 1, &[("RCC_WORKER_TEST_DELAY_MS", "300")]);
    wait_for(&scheduler, "two workers", |s| s["workers"].as_array().is_some_and(|w| w.len() == 2));
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    // Depfiles as CMake asks for them: every header, named targets, a chosen file name.
    let deps = "DEPFLAGS=-MD -MT $@ -MF $@.dep";
    run_ok(env.command("make").args(["-j4", deps, &format!("CC={} gcc", env.rcc_bin().display())]));
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_compiles"], 7, "{stats:#}");
    let remote = objects(&env.proj);
    let remote_depfiles = files_ending(&env.proj, ".o.dep");
    assert_eq!(remote_depfiles.len(), 7);
    run_ok(env.command("make").args(["-B", "-j4", deps, "CC=gcc"]));
    assert_eq!(remote, objects(&env.proj), "no corrupt object reached the build");
    assert_eq!(remote_depfiles, files_ending(&env.proj, ".o.dep"), "depfiles as gcc writes them");
    let status = status_json(&scheduler);
    assert_eq!(worker(&status, "liar").unwrap()["state"], "quarantined", "{status:#}");
    assert_eq!(worker(&status, "honest").unwrap()["state"], "active");
    // The liar did send bytes under its outputs' true digests: the scheduler's upload check refused them.
    let log = std::fs::read_to_string(env.root.join("worker-liar.log")).unwrap_or_default();
    assert!(log.contains("altered output refused by the scheduler"), "the liar uploaded altered bytes:\n{log}");
    assert!(!log.contains("stored altered bytes"), "the scheduler never stores altered bytes:\n{log}");
}

#[test]
fn tampered_bytes_served_under_an_outputs_name_fail_the_clients_digest_check() {
    let mut env = TestEnv::new();
    open_to_sandbox(&env);
    let scheduler = Scheduler::start_with(&env.root, &["--heartbeat-ms", "300"]);
    let _worker = start_worker_in(&scheduler, &env, "w");
    wait_for(&scheduler, "one worker", |s| s["workers"].as_array().is_some_and(|w| w.len() == 1));
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    run_ok(env.command("make").args(["-j4", &format!("CC={} gcc", env.rcc_bin().display())]));
    assert_eq!(env.counter("remote_compiles"), 7);
    let remote = objects(&env.proj);
    // The scheduler's disk is damaged: each object's blob now holds other bytes of the same size, in a valid
    // frame, under the object's own name. The scheduler sends blobs as stored; the client must catch it.
    for (name, data) in &remote {
        let hex = rcc_proto::Digest::of(data).to_hex();
        let path = scheduler.state.join("cas").join("blobs").join(&hex[..2]).join(&hex[2..]);
        assert!(path.is_file(), "{name}'s blob is stored at {}", path.display());
        let mut altered = data.clone();
        altered[0] ^= 0xff;
        std::fs::write(&path, zstd::bulk::compress(&altered, 3).unwrap()).unwrap();
    }
    // The same build again from an empty local cache: the scheduler answers every action from its records.
    env.rcc_ok(&["cache", "clear"]);
    env.zero_stats();
    run_ok(env.command("make").args(["-B", "-j4", &format!("CC={} gcc", env.rcc_bin().display())]));
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_fallbacks"]["corrupt-output"], 7, "every damaged object was caught: {stats:#}");
    assert_eq!((&stats["remote_compiles"], &stats["misses"]), (&0.into(), &7.into()), "{stats:#}");
    assert_eq!(objects(&env.proj), remote, "the build has the true objects, compiled here");
    assert_eq!(remote, local_objects(&env));
}

/// Rewrites the units' helpers (new actions of the same kinds: same compiler, same source names).
pub(crate) fn change_every_unit(dir: &std::path::Path) {
    for i in 0..6 {
        let path = dir.join(format!("part{i}.c"));
        let text = std::fs::read_to_string(&path).unwrap().replace("+ 1;", "+ 2;");
        std::fs::write(&path, text).unwrap();
        crate::support::settle(&path);
    }
}

#[test]
fn a_slow_worker_gets_speculative_twins_that_win_and_its_copies_are_cancelled() {
    let mut env = TestEnv::new();
    open_to_sandbox(&env);
    // No audits: a worker alone in its pool is never proven, so with the straggler joining both would be
    // new, and every answer would wait for the straggler's audit copy (then go to local compiles).
    let args = ["--heartbeat-ms", "200", "--twin-min-history", "1", "--audit-first", "0", "--audit-share", "0"];
    let scheduler = Scheduler::start_with(&env.root, &args);
    let _fast = start_faulty_worker(&scheduler, &env, "fast", 4, &[]);
    wait_for(&scheduler, "one worker", |s| s["workers"].as_array().is_some_and(|w| w.len() == 1));
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    // A first build on the fast worker teaches the scheduler how long each unit takes.
    run_ok(env.command("make").args(["-j4", &format!("CC={} gcc", env.rcc_bin().display())]));
    assert_eq!(env.counter("remote_compiles"), 7);

    // A straggler joins: every action it takes sleeps a minute in its sandbox before compiling.
    let slow = start_faulty_worker(&scheduler, &env, "slow", 4, &[("RCC_WORKER_TEST_DELAY_MS", "60000")]);
    wait_for(&scheduler, "two workers", |s| s["workers"].as_array().is_some_and(|w| w.len() == 2));
    change_every_unit(&env.proj);
    env.zero_stats();
    let started = Instant::now();
    let mut make = env
        .command("make")
        .args(["-B", "-j4", &format!("CC={} gcc", env.rcc_bin().display())])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting make");
    // The delay is a real sandbox: the straggler's stalled actions show as sandboxed processes under it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !descendants(slow.0.id()).iter().any(|(_, name)| name == STALL_PROGRAM_NAME) {
        assert!(
            Instant::now() < deadline,
            "no stalled sandbox ever ran under the slow worker: {:?}\n{}",
            descendants(slow.0.id()),
            std::fs::read_to_string(env.root.join("worker-slow.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(make.wait().expect("make").success(), "the build failed");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(40), "twins finished the build long before the straggler: {took:?}");
    let stats = env.stats()["counters"].clone();
    assert_eq!(
        (&stats["remote_compiles"], &stats["hits_direct"]),
        (&6.into(), &1.into()),
        "main.c unchanged: {stats:#}"
    );
    let status = status_json(&scheduler);
    let counters = &status["counters"];
    assert!(counters["twins_won"].as_u64().unwrap_or(0) >= 1, "{status:#}");
    assert!(counters["twins"].as_u64() >= counters["twins_won"].as_u64(), "{status:#}");
    let remote = objects(&env.proj);
    assert_eq!(remote, local_objects(&env), "the twins' objects are the local ones");
    // The straggler was told to stop the copies it lost: their sandboxes are killed and nothing is left
    // running under it (the worker itself lives on).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !descendants(slow.0.id()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left under the slow worker after its copies were cancelled: {:?}",
            descendants(slow.0.id())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(env.root.join("worker-slow.log")).unwrap_or_default();
    assert!(log.contains("cancelled: its sandbox is killed"), "the slow worker's copies were cancelled:\n{log}");
    assert!(
        log.lines().any(|l| l.contains("(test stall)") && l.contains("cancellation limit")),
        "a stalled sandbox was killed by the cancellation:\n{log}"
    );
    assert!(worker(&status_json(&scheduler), "slow").is_some_and(|w| w["state"] == "active"), "the straggler lives on");
}

/// The name a stalled action's process has (the worker mounts `sleep` at `/rcc-test-stall`).
pub(crate) const STALL_PROGRAM_NAME: &str = "rcc-test-stall";

/// Every process below `pid` (children, their children…), with its command name.
pub(crate) fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parents = std::collections::HashMap::<u32, Vec<(u32, String)>>::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid …"; comm may hold spaces and parentheses, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let (Ok(child), Some(ppid)) = (
            stat[..open].trim().parse::<u32>(),
            stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()),
        ) else {
            continue;
        };
        parents.entry(ppid).or_default().push((child, stat[open + 1..close].to_owned()));
    }
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        for (child, name) in parents.get(&parent).into_iter().flatten() {
            queue.push(*child);
            found.push((*child, name.clone()));
        }
    }
    found
}

#[test]
fn two_clients_building_the_same_sources_at_once_run_each_action_once() {
    let mut first = TestEnv::new();
    let mut second = TestEnv::new();
    open_to_sandbox(&first);
    open_to_sandbox(&second);
    // A stopped worker sends no heartbeats: a long timeout keeps it active while it is held.
    let scheduler = Scheduler::start_with(&first.root, &["--heartbeat-ms", "300", "--heartbeat-timeout-ms", "60000"]);
    let worker = start_faulty_worker(&scheduler, &first, "only", 8, &[]);
    wait_for(&scheduler, "one worker", |s| s["workers"].as_array().is_some_and(|w| w.len() == 1));
    for env in [&mut first, &mut second] {
        pool_client(&scheduler, env);
        write_project(&env.proj);
    }
    // The worker is held (stopped) until both builds submitted all their actions, so they overlap.
    let held = Stopped::stop(worker.0.id());
    // Two checkouts at different paths, no debug information: the same actions. -j8: all seven units of a
    // build are in flight at once.
    let build = |env: &TestEnv| {
        env.command("make")
            .args(["-j8", "CFLAGS=-O2", &format!("CC={} gcc", env.rcc_bin().display())])
            .stdout(Stdio::null())
            .spawn()
            .expect("make")
    };
    let (mut a, mut b) = (Running(build(&first)), Running(build(&second)));
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    // (Each client first packs its compiler, the first one uploads it: seconds on a busy machine.)
    let status = wait_for_within(&scheduler, "all 14 compiles submitted", Duration::from_secs(90), |s| {
        n(&s["counters"]["submitted"]) == 14
    });
    let counters = &status["counters"];
    // Each of the 7 actions was assigned once; the other client's copy of each joined it in flight.
    assert_eq!((n(&counters["assigned"]), n(&counters["attached"])), (7, 7), "{status:#}");
    drop(held);
    assert!(a.0.wait().expect("make").success(), "{}", first.log());
    assert!(b.0.wait().expect("make").success(), "{}", second.log());
    let status = status_json(&scheduler);
    let counters = &status["counters"];
    assert_eq!(
        (n(&counters["submitted"]), n(&counters["assigned"]), n(&counters["attached"]), n(&counters["reused"])),
        (14, 7, 7, 0),
        "each of the 7 actions ran once: {status:#}"
    );
    for env in [&first, &second] {
        let c = env.stats()["counters"].clone();
        assert_eq!((n(&c["remote_compiles"]), n(&c["hits_remote"])), (7, 0), "{c:#}");
    }
    assert_eq!(objects(&first.proj), objects(&second.proj));
    run_ok(first.command("make").args(["-B", "-j4", "CFLAGS=-O2", "CC=gcc"]));
    assert_eq!(objects(&first.proj), objects(&second.proj), "and they are what gcc gives locally");
}

#[test]
fn march_native_compiles_on_the_workers_for_this_machines_cpu() {
    let mut env = TestEnv::new();
    let (scheduler, _workers) = two_worker_pool(&env);
    pool_client(&scheduler, &mut env);
    write_project(&env.proj);
    // -mno-avx2 after -march=native must still win, as it does locally.
    let flags = "CFLAGS=-O2 -march=native -mno-avx2";
    run_ok(env.command("make").args(["-j4", flags, &format!("CC={} gcc", env.rcc_bin().display())]));
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_compiles"], 7, "the workers compiled for this CPU: {stats:#}\n{}", env.log());
    let remote = objects(&env.proj);
    run_ok(env.command("make").args(["-B", "-j4", flags, "CC=gcc"]));
    assert_eq!(remote, objects(&env.proj), "byte-identical to gcc -march=native here");
    // What the workers ran: gcc's expansion for this CPU, never the word `native` (on a worker with
    // another CPU it would mean that worker's CPU).
    let ran: Vec<String> = ["one", "two"]
        .iter()
        .flat_map(|w| {
            std::fs::read_to_string(env.root.join(format!("worker-{w}.log")))
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| l.contains("running an action"))
        .collect();
    // Seven actions; new workers audit each other, so an action may have run on both.
    let actions: std::collections::HashSet<&str> =
        ran.iter().filter_map(|l| l.split("action=").nth(1)?.split_whitespace().next()).collect();
    assert_eq!(actions.len(), 7, "{ran:#?}");
    for line in &ran {
        assert!(line.contains("\"-march=") && line.contains("\"-mno-avx2\""), "{line}");
        assert!(!line.contains("native"), "the expansion, not -march=native: {line}");
    }

    // With debug information the producer string would list the options in another order: local.
    env.zero_stats();
    for o in &remote {
        std::fs::remove_file(env.proj.join(&o.0)).unwrap();
    }
    let flags = "CFLAGS=-O2 -g -march=native";
    run_ok(env.command("make").args(["-j4", flags, &format!("CC={} gcc", env.rcc_bin().display())]));
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["remote_fallbacks"]["native-cpu-with-debug-info"], 7, "{stats:#}");
}

/// `RCC_LOCAL_JOBS=1`: one miss at a time compiles here, the misses beyond it go to the pool. The first unit
/// takes long to compile, so while it holds the local slot the others find it taken.
#[test]
fn local_jobs_above_zero_split_a_build_between_this_machine_and_the_pool() {
    let mut env = TestEnv::new();
    let (scheduler, _workers) = two_worker_pool(&env);
    pool_client(&scheduler, &mut env);
    env.set_env("RCC_LOCAL_JOBS", "1");
    write_project(&env.proj);
    // part0.c: a few hundred functions, a second or more to compile at -O2 -g, still defining part0.
    let mut slow = String::from("#include \"parts.h\"\n");
    for i in 0..300 {
        slow.push_str(&format!(
            "int slow{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i} ^ (s >> 3); return s; }}\n"
        ));
    }
    slow.push_str("static int helper0(int x) { return x * 0 + 1; }\nint part0(int x) { return helper0(x); }\n");
    std::fs::write(env.proj.join("part0.c"), slow).unwrap();
    crate::support::settle(&env.proj.join("part0.c"));
    run_ok(env.command("make").args(["-j4", &format!("CC={} gcc", env.rcc_bin().display())]));
    let stats = env.stats()["counters"].clone();
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    assert_eq!(n(&stats["misses"]), 7, "{stats:#}");
    let remote = n(&stats["remote_compiles"]);
    assert!((1..7).contains(&remote), "some units on the pool, some here: {stats:#}\n{}", env.log());
    assert_eq!(stats["remote_fallbacks"], serde_json::json!({}), "none went local for want of the pool: {stats:#}");
    let app = run_ok(&mut Command::new(env.proj.join("app")));
    assert_eq!(String::from_utf8_lossy(&app.stdout).trim(), "51");
    let built = objects(&env.proj);
    assert_eq!(built, local_objects(&env), "byte-identical to gcc's");
}

/// What the pool cannot compile stays local even when its workers are idle and no local slot is free, each
/// counted under its reason: `-S` and a flag naming a file (not-remotable), `-march=native` with `-g`.
#[test]
fn not_remotable_compiles_stay_local_counted_by_reason() {
    let mut env = TestEnv::new();
    let (scheduler, _workers) = two_worker_pool(&env);
    pool_client(&scheduler, &mut env);
    env.write("u.c", "int twice(int x) { return 2 * x; }\n");
    env.write("empty.specs", "");
    let fallbacks = |env: &TestEnv| env.stats()["counters"]["remote_fallbacks"].clone();
    let cases: [(&[&str], &str, &str); 3] = [
        (&["-O2", "-S", "u.c", "-o", "u.s"], "u.s", "not-remotable"),
        (&["-O2", "-g", "-march=native", "-c", "u.c", "-o", "native.o"], "native.o", "native-cpu-with-debug-info"),
        (&["-O2", "-specs=empty.specs", "-c", "u.c", "-o", "specs.o"], "specs.o", "not-remotable"),
    ];
    for (args, output, reason) in cases {
        let before = fallbacks(&env)[reason].as_u64().unwrap_or(0);
        let mut full = vec!["gcc"];
        full.extend_from_slice(args);
        env.rcc_ok(&full);
        assert_eq!(
            fallbacks(&env)[reason].as_u64(),
            Some(before + 1),
            "{args:?}: {:#}\n{}",
            fallbacks(&env),
            env.log()
        );
        let built = env.read(output);
        run_ok(env.command("gcc").args(args));
        assert_eq!(built, env.read(output), "{args:?}: what gcc gives");
    }
    assert_eq!(env.counter("remote_compiles"), 0);
    assert_eq!(env.counter("misses"), 3);
    // The same pool takes a plain compile: the three stayed local for their reasons only.
    env.rcc_ok(&["gcc", "-O2", "-c", "u.c", "-o", "u.o"]);
    assert_eq!(env.counter("remote_compiles"), 1, "{:#}\n{}", fallbacks(&env), env.log());
}
