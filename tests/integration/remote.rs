//! The shared cache over real QUIC on loopback: the real rcc-scheduler binary and two or more "machines"
//! (separate cache directories, so separate daemons) building real sources.

use crate::support::{bin_dir, run_ok, Stopped, TestEnv};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running rcc-scheduler with its address, fingerprint and state directory.
pub(crate) struct Scheduler {
    child: Child,
    /// Its log lines (stderr) after the listening line, the last 20 000.
    log: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    pub(crate) addr: String,
    pub(crate) fingerprint: String,
    pub(crate) state: PathBuf,
}

impl Scheduler {
    pub(crate) fn start(root: &Path) -> Scheduler {
        Scheduler::start_with(root, &[])
    }

    /// Started with extra `serve` arguments.
    pub(crate) fn start_with(root: &Path, extra: &[&str]) -> Scheduler {
        Scheduler::start_listening(root, "127.0.0.1:0", extra)
    }

    /// Listening on `listen` (e.g. `0.0.0.0:0` for workers in network namespaces), with extra arguments.
    pub(crate) fn start_listening(root: &Path, listen: &str, extra: &[&str]) -> Scheduler {
        Scheduler::start_full(root, listen, extra, &[])
    }

    /// With extra arguments and environment variables.
    pub(crate) fn start_with_env(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> Scheduler {
        Scheduler::start_full(root, "127.0.0.1:0", extra, env)
    }

    fn start_full(root: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Scheduler {
        let state = root.join("scheduler");
        let mut child = Command::new(bin_dir().join("rcc-scheduler"))
            .args(["--state", state.to_str().unwrap(), "serve", "--listen", listen])
            .args(extra)
            .env("RCC_LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rcc-scheduler");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut addr, mut fingerprint) = (String::new(), String::new());
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("listening") {
                for word in line.split_whitespace() {
                    if let Some(v) = word.strip_prefix("addr=") {
                        addr = v.to_owned();
                    }
                    if let Some(v) = word.strip_prefix("fingerprint=") {
                        fingerprint = v.to_owned();
                    }
                }
                break;
            }
        }
        assert!(!addr.is_empty(), "scheduler printed its address");
        // Keep draining its log so it never blocks on a full pipe; the last lines are kept for tests.
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut kept = kept.lock().unwrap();
                if kept.len() == 20_000 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        Scheduler { child, log, addr, fingerprint, state }
    }

    /// What the scheduler has logged since it listened (the last 20 000 lines).
    pub(crate) fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().cloned().collect()
    }

    /// The scheduler process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the scheduler process has held so far (VmHWM), in bytes.
    pub(crate) fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("the scheduler runs");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM in kB");
        kib * 1024
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit; its exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the scheduler") {
                return status;
            }
            assert!(Instant::now() < deadline, "the scheduler did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process still runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn token(&self, scopes: &str) -> String {
        let out = run_ok(Command::new(bin_dir().join("rcc-scheduler")).args([
            "--state",
            self.state.to_str().unwrap(),
            "token",
            "create",
            "--scope",
            scopes,
        ]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A client machine of this scheduler.
    fn machine(&self, scopes: &str) -> TestEnv {
        let mut env = TestEnv::new();
        env.set_env("RCC_SCHEDULER", &self.addr);
        env.set_env("RCC_SCHEDULER_FINGERPRINT", &self.fingerprint);
        env.set_env("RCC_TOKEN", &self.token(scopes));
        env
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Lua sources (shared corpus), copied into the machine's project directory.
fn lua_into(env: &TestEnv) -> Vec<String> {
    // ../shared beside the checkout (the runner's CARGO_MANIFEST_DIR, not the one compiled in: the tree may move).
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let corpus = manifest_dir.join("../../shared/corpus/get");
    let out = run_ok(Command::new(&corpus).arg("lua"));
    let src = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".c") || name.ends_with(".h") {
            std::fs::copy(entry.path(), env.proj.join(&name)).unwrap();
            crate::support::settle(&env.proj.join(&name));
        }
        if name.ends_with(".c") && !matches!(name.as_str(), "lua.c" | "luac.c" | "onelua.c") {
            sources.push(name);
        }
    }
    sources.sort();
    sources
}

fn build(env: &TestEnv, sources: &[String]) {
    for s in sources {
        let obj = s.replace(".c", ".o");
        env.rcc_ok(&["gcc", "-O2", "-c", s, "-o", &obj]);
    }
}

fn wait_for(env: &TestEnv, counter: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.counter(counter) < at_least {
        assert!(Instant::now() < deadline, "{counter} never reached {at_least}\n{}", env.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_machine_builds_lua_from_the_shared_cache() {
    let env_root = TestEnv::new();
    let scheduler = Scheduler::start(&env_root.root);
    let a = scheduler.machine("read,write");
    let sources = lua_into(&a);
    build(&a, &sources);
    assert_eq!(a.counter("misses"), sources.len() as u64);
    wait_for(&a, "uploads", sources.len() as u64);

    let b = scheduler.machine("read");
    lua_into(&b);
    build(&b, &sources);
    assert_eq!(b.counter("hits_remote"), sources.len() as u64, "all remote hits\n{}", b.log());
    assert_eq!(b.counter("misses"), 0);
    for s in &sources {
        let obj = s.replace(".c", ".o");
        assert_eq!(a.read(&obj), b.read(&obj), "{obj} is byte-identical across machines");
    }
    // The remote hits were copied into b's local store: a rebuild is local.
    build(&b, &sources[..3]);
    assert_eq!(b.counter("hits_direct"), 3);
}

#[test]
fn a_read_only_machine_never_writes_and_a_dead_scheduler_costs_no_build() {
    let env_root = TestEnv::new();
    let mut scheduler = Scheduler::start(&env_root.root);
    let reader = scheduler.machine("read");
    reader.write("only.c", "int only_here(void) { return 7; }\n");
    reader.rcc_ok(&["gcc", "-c", "only.c", "-o", "only.o"]);
    assert_eq!(reader.counter("misses"), 1);
    assert_eq!(reader.counter("uploads"), 0, "a read-only token uploads nothing");

    let writer = scheduler.machine("read,write");
    writer.write("only.c", "int only_here(void) { return 7; }\n");
    writer.rcc_ok(&["gcc", "-c", "only.c", "-o", "only.o"]);
    assert_eq!(writer.counter("hits_remote"), 0, "nothing of the reader's reached the shared cache");
    // The writer did reach the scheduler (so the miss above means something): its own result went up.
    wait_for(&writer, "uploads", 1);
    assert_eq!(writer.counter("remote_errors"), 0, "{}", writer.log());

    // Kill the scheduler mid-build: every compile still succeeds, with the right object.
    let c = scheduler.machine("read,write");
    let sources = lua_into(&c);
    let (first, rest) = sources.split_at(4);
    build(&c, first);
    // The uploads are done: no upload in flight fails when the scheduler dies, only the build's own calls.
    wait_for(&c, "uploads", first.len() as u64);
    assert_eq!(c.counter("remote_errors"), 0, "{}", c.log());
    scheduler.child.kill().unwrap();
    let _ = scheduler.child.wait();
    let started = Instant::now();
    build(&c, rest);
    let elapsed = started.elapsed();
    for s in rest.iter().take(3) {
        let obj = s.replace(".c", ".o");
        run_ok(c.command("gcc").args(["-O2", "-c", s, "-o", "plain.o"]));
        assert_eq!(c.read(&obj), c.read("plain.o"));
    }
    assert_eq!(c.counter("misses"), sources.len() as u64);
    assert!(elapsed < Duration::from_secs(120), "a dead scheduler costs bounded time");
    // The link backs off (1 s, doubling): the k-th failed attempt comes at least 2^(k-1) - 1 s after the
    // first, so a build of `elapsed` sees at most 1 + log2(1 + elapsed) attempts fail, however many
    // compiles it runs; one more for the first failure being seen by two calls at once. Without the backoff
    // every one of the compiles would pay a failed call (and its timeout).
    let errors = c.counter("remote_errors");
    let bound = 2 + (1.0 + elapsed.as_secs_f64()).log2().floor() as u64;
    assert!(
        errors >= 1 && errors <= bound,
        "{errors} remote errors after the kill for {} compiles in {elapsed:?} (at most {bound})\n{}",
        rest.len(),
        c.log()
    );
}

#[test]
fn unauthenticated_and_wrongly_pinned_machines_fall_back_to_local_builds() {
    let env_root = TestEnv::new();
    let scheduler = Scheduler::start(&env_root.root);
    let mut stranger = scheduler.machine("read,write");
    stranger.set_env("RCC_TOKEN", "rcc_not_a_real_token");
    stranger.write("a.c", "int a(void) { return 1; }\n");
    stranger.rcc_ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert!(stranger.counter("remote_errors") >= 1, "{}", stranger.log());
    assert!(stranger.log().contains("not authenticated"), "the log says why\n{}", stranger.log());

    let mut fooled = scheduler.machine("read,write");
    fooled.set_env("RCC_SCHEDULER_FINGERPRINT", &"0".repeat(64));
    fooled.write("a.c", "int a(void) { return 1; }\n");
    fooled.rcc_ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    assert!(fooled.log().contains("fingerprint"), "the log names the fingerprint mismatch\n{}", fooled.log());
    assert!(fooled.counter("remote_errors") >= 1);
    assert!(fooled.proj.join("a.o").is_file());
}

/// Rust through the shared cache: a second machine's clean `cargo build` of the fixture workspace (its
/// checkout elsewhere, each machine's base directory set to its own root) is all shared-cache hits.
#[test]
fn a_second_machine_builds_a_cargo_workspace_from_the_shared_cache() {
    use crate::rust::{app_binary, cargo_ok, copy_fixture, count, run_app, rust};
    let env_root = TestEnv::new();
    let scheduler = Scheduler::start(&env_root.root);
    let mut a = scheduler.machine("read,write");
    let root = a.root.to_str().unwrap().to_owned();
    a.set_env("RCC_BASE_DIR", &root);
    copy_fixture(&a.proj);
    cargo_ok(&a, &a.proj, &["build"]);
    let stored = count(&rust(&a), "stored");
    assert!(stored >= 15, "{}", rust(&a));
    wait_for(&a, "uploads", stored);

    let mut b = scheduler.machine("read");
    let root = b.root.to_str().unwrap().to_owned();
    b.set_env("RCC_BASE_DIR", &root);
    copy_fixture(&b.proj);
    cargo_ok(&b, &b.proj, &["build"]);
    let r = rust(&b);
    assert_eq!(count(&r, "misses"), 0, "{r}\n{}", b.log());
    assert_eq!(count(&r, "hits_remote"), stored, "{r}");
    assert_eq!(run_app(&b.proj), r#"{"greeting":"hello world","sum":42}"#);
    assert_eq!(std::fs::read(app_binary(&a.proj)).unwrap(), std::fs::read(app_binary(&b.proj)).unwrap());
}

/// `RCC_READ_ONLY` (the `read_only` key): a machine whose token may write uploads nothing, yet reads the
/// shared cache and keeps its own local cache as usual.
#[test]
fn a_read_only_machine_hits_the_shared_cache_and_uploads_nothing() {
    let env_root = TestEnv::new();
    let scheduler = Scheduler::start(&env_root.root);
    let sources = ["a.c", "b.c"];
    let write_sources = |env: &TestEnv, b_value: u32| {
        env.write("a.c", "int a_value(void) { return 1; }\n");
        env.write("b.c", &format!("int b_value(void) {{ return {b_value}; }}\n"));
    };
    let compile = |env: &TestEnv, source: &str| {
        env.rcc_ok(&["gcc", "-O1", "-c", source, "-o", &source.replace(".c", ".o")]);
    };
    let writer = scheduler.machine("read,write");
    write_sources(&writer, 2);
    for s in sources {
        compile(&writer, s);
    }
    wait_for(&writer, "uploads", 2);

    // Same token scopes, but read-only: a.c unchanged hits the shared cache; the changed b.c misses and is
    // compiled here, correctly.
    let mut reader = scheduler.machine("read,write");
    reader.set_env("RCC_READ_ONLY", "1");
    write_sources(&reader, 3);
    for s in sources {
        compile(&reader, s);
    }
    assert_eq!((reader.counter("hits_remote"), reader.counter("misses")), (1, 1), "{}", reader.log());
    run_ok(reader.command("gcc").args(["-O1", "-c", "b.c", "-o", "plain.o"]));
    assert_eq!(reader.read("b.o"), reader.read("plain.o"));
    assert_eq!(reader.read("a.o"), writer.read("a.o"));
    // Its local cache works as usual: a rebuild of b.c is a local hit.
    std::fs::remove_file(reader.proj.join("b.o")).unwrap();
    compile(&reader, "b.c");
    assert_eq!(reader.counter("hits_direct"), 1, "{}", reader.log());

    // A third machine with the changed b.c: the reader's result never reached the shared cache.
    let third = scheduler.machine("read,write");
    write_sources(&third, 3);
    for s in sources {
        compile(&third, s);
    }
    assert_eq!((third.counter("hits_remote"), third.counter("misses")), (1, 1), "{}", third.log());
    assert_eq!(reader.counter("uploads"), 0, "a read-only machine uploads nothing\n{}", reader.log());
    assert_eq!(reader.counter("remote_errors"), 0, "{}", reader.log());
    // And the third machine, not read-only, does upload it.
    wait_for(&third, "uploads", 1);
}

/// A scheduler that stops answering (alive, its socket open, but SIGSTOPped) mid-build: each compile waits
/// at most RCC_REMOTE_TIMEOUT_MS for it, and only while the link's backoff allows an attempt.
#[test]
fn a_stopped_scheduler_costs_a_bounded_wait_and_no_build() {
    let env_root = TestEnv::new();
    let scheduler = Scheduler::start(&env_root.root);
    let mut c = scheduler.machine("read,write");
    c.set_env("RCC_REMOTE_TIMEOUT_MS", "1000");
    let sources = lua_into(&c);
    // Sixteen of Lua's units: four with the scheduler answering, twelve with it stopped.
    let (first, rest) = sources[..16].split_at(4);
    build(&c, first);
    wait_for(&c, "uploads", first.len() as u64);
    assert_eq!(c.counter("remote_errors"), 0, "{}", c.log());
    let stopped = Stopped::stop(scheduler.child.id());
    let started = Instant::now();
    build(&c, rest);
    let elapsed = started.elapsed();
    drop(stopped);
    assert_eq!(c.counter("misses"), 16);
    for s in rest {
        let obj = s.replace(".c", ".o");
        run_ok(c.command("gcc").args(["-O2", "-c", s, "-o", "plain.o"]));
        assert_eq!(c.read(&obj), c.read("plain.o"), "{obj}");
    }
    // Every failed attempt costs at most the 1 s timeout, and attempts back off (1 s, doubling): at most
    // 2 + log2(1 + elapsed) of them (see the dead-scheduler test). Without the backoff each of the compiles
    // would wait the full timeout.
    let errors = c.counter("remote_errors");
    let bound = 2 + (1.0 + elapsed.as_secs_f64()).log2().floor() as u64;
    assert!(
        (1..=bound).contains(&errors),
        "{errors} remote errors for {} compiles in {elapsed:?} (at most {bound})\n{}",
        rest.len(),
        c.log()
    );
    assert!(elapsed < Duration::from_secs(60), "{} compiles took {elapsed:?} against a stopped scheduler", rest.len());
}

/// Writes a CA and, signed by it, a certificate for the name clients check (`rcc-scheduler`), with openssl.
/// Returns (CA certificate, server certificate, server key).
fn make_ca_and_server_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    assert!(
        crate::support::have("openssl"),
        "openssl is required to make a CA for this test (add openssl to scripts/install-deps)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let (ca_key, ca) = (dir.join(format!("{name}-ca.key")), dir.join(format!("{name}-ca.pem")));
    let (key, csr, cert) = (
        dir.join(format!("{name}-server.key")),
        dir.join(format!("{name}-server.csr")),
        dir.join(format!("{name}-server.pem")),
    );
    let ext = dir.join(format!("{name}-server.ext"));
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    run_ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
    ]));
    run_ok(Command::new("openssl").args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=rcc-scheduler",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
    ]));
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:rcc-scheduler\n",
    )
    .unwrap();
    run_ok(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&cert),
    ]));
    (ca, cert, key)
}

/// `RCC_SCHEDULER_CA` instead of a pinned fingerprint: a scheduler serving a certificate signed by the CA
/// is trusted (a second machine hits what the first uploaded), one signed by another CA is not.
#[test]
fn a_scheduler_certificate_signed_by_the_configured_ca_is_trusted() {
    let env_root = TestEnv::new();
    let tls = env_root.root.join("tls");
    let (ca, cert, key) = make_ca_and_server_cert(&tls, "good");
    let (other_ca, _, _) = make_ca_and_server_cert(&tls, "other");
    let scheduler =
        Scheduler::start_with(&env_root.root, &["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    let machine = |ca: &Path, scopes: &str| {
        let mut env = TestEnv::new();
        env.set_env("RCC_SCHEDULER", &scheduler.addr);
        env.set_env("RCC_SCHEDULER_CA", ca.to_str().unwrap());
        env.set_env("RCC_TOKEN", &scheduler.token(scopes));
        for (name, value) in [("a.c", 1), ("b.c", 2)] {
            env.write(name, &format!("int value_{value}(void) {{ return {value}; }}\n"));
        }
        env
    };
    let compile_both = |env: &TestEnv| {
        for s in ["a.c", "b.c"] {
            env.rcc_ok(&["gcc", "-O1", "-c", s, "-o", &s.replace(".c", ".o")]);
        }
    };
    let first = machine(&ca, "read,write");
    compile_both(&first);
    wait_for(&first, "uploads", 2);
    assert_eq!(first.counter("remote_errors"), 0, "{}", first.log());

    let second = machine(&ca, "read");
    compile_both(&second);
    assert_eq!((second.counter("hits_remote"), second.counter("misses")), (2, 0), "{}", second.log());
    assert_eq!(second.read("a.o"), first.read("a.o"));
    assert_eq!(second.read("b.o"), first.read("b.o"));

    let stranger = machine(&other_ca, "read");
    compile_both(&stranger);
    assert_eq!((stranger.counter("hits_remote"), stranger.counter("misses")), (0, 2), "{}", stranger.log());
    assert!(stranger.counter("remote_errors") >= 1, "{}", stranger.log());
    run_ok(stranger.command("gcc").args(["-O1", "-c", "a.c", "-o", "plain.o"]));
    assert_eq!(stranger.read("a.o"), stranger.read("plain.o"), "a local build, correct");
}

/// "A remote hit runs no preprocessor": the compiler is a script that records each call and then runs gcc
/// (the same script, at the same path, on both machines: the identity is digested). The second machine's
/// hits from the shared cache run it on no source at all, neither to preprocess nor to compile.
#[test]
fn a_shared_cache_hit_runs_no_preprocessor_or_compiler() {
    use std::os::unix::fs::PermissionsExt;
    let env_root = TestEnv::new();
    let scheduler = Scheduler::start(&env_root.root);
    let bin = env_root.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = env_root.root.join("calls.log");
    let gcc = bin.join("gcc");
    std::fs::write(&gcc, format!("#!/bin/sh\necho \"$PWD: $*\" >> '{}'\nexec /usr/bin/gcc \"$@\"\n", calls.display()))
        .unwrap();
    std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gcc = gcc.to_str().unwrap();
    let sources = ["one.c", "two.c", "three.c"];
    let build = |env: &TestEnv| {
        env.write("local.h", "#define BASE 10\n");
        for (i, s) in sources.iter().enumerate() {
            env.write(
                s,
                &format!("#include <stdio.h>\n#include \"local.h\"\nint f{i}(void) {{ return BASE + {i}; }}\n"),
            );
            env.rcc_ok(&[gcc, "-O1", "-c", s, "-o", &s.replace(".c", ".o")]);
        }
    };
    let calls_in = |env: &TestEnv| -> Vec<String> {
        let prefix = format!("{}: ", env.proj.display());
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    };
    let a = scheduler.machine("read,write");
    build(&a);
    assert_eq!(a.counter("misses"), 3, "{}", a.log());
    let a_calls = calls_in(&a);
    for s in sources {
        assert!(a_calls.iter().any(|l| l.contains(" -c ") && l.contains(s)), "the script compiled {s}: {a_calls:#?}");
    }
    wait_for(&a, "uploads", 3);

    let b = scheduler.machine("read");
    build(&b);
    assert_eq!((b.counter("hits_remote"), b.counter("misses")), (3, 0), "{}", b.log());
    let on_sources: Vec<String> = calls_in(&b).into_iter().filter(|l| sources.iter().any(|s| l.contains(s))).collect();
    assert!(on_sources.is_empty(), "the compiler ran on a source for a shared-cache hit: {on_sources:#?}");
    assert!(
        !calls_in(&b).iter().any(|l| l.contains("-E") && !l.contains("/dev/null")),
        "no preprocessor run except the compiler's own probes: {:#?}",
        calls_in(&b)
    );
    for s in sources {
        let obj = s.replace(".c", ".o");
        assert_eq!(b.read(&obj), a.read(&obj), "{obj}");
    }
}
