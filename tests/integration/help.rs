//! Every binary's command line is clap's: `--help` prints help and exits 0 (never starts a daemon), an
//! unknown flag is an error naming it, and `rcc --help` documents every `RCC_*` variable.

use crate::support::{bin_dir, TestEnv};
use rcc_proto::vars;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs a binary of the workspace with `args`, failing the test if it runs longer than 10 s (a daemon
/// started in the foreground instead of help printed).
fn run(env: &TestEnv, program: &str, args: &[&str]) -> Output {
    let mut child = env
        .command(bin_dir().join(program))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the binary");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{program} {args:?} was still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting the output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn rccd_help_prints_help_and_starts_no_daemon() {
    let env = TestEnv::new();
    let out = run(&env, "rccd", &["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    assert!(help.contains("Usage: rccd") && help.contains("worker"), "{help}");
    assert!(!env.cache.join("stats.json").exists() && !env.cache.exists(), "no daemon set up its directory");

    let out = run(&env, "rccd", &["worker", "--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for flag in
        ["--scheduler", "--fingerprint", "--ca", "--token-file", "--pool", "--slots", "--name", "--dir", "--cache-mb"]
    {
        assert!(help.contains(flag), "`rccd worker --help` names {flag}:\n{help}");
    }
    assert!(help.contains("--keep-toolchains"), "{help}");
    assert!(help.contains(vars::RCC_SCHEDULER) && help.contains(vars::RCC_WORKER_DIR), "env fallbacks shown:\n{help}");
}

#[test]
fn an_unknown_flag_is_an_error_that_names_it() {
    let env = TestEnv::new();
    for (program, args) in [
        ("rccd", &["--bogus-flag"][..]),
        ("rccd", &["worker", "--scheduler", "127.0.0.1:1", "--fingerprint", "00", "--bogus-flag"][..]),
        ("rcc", &["stats", "--bogus-flag"][..]),
        ("rcc-scheduler", &["status", "--bogus-flag"][..]),
    ] {
        let out = run(&env, program, args);
        assert_eq!(out.status.code(), Some(2), "{program} {args:?}: {out:?}");
        assert!(text(&out.stderr).contains("--bogus-flag"), "{program} {args:?} names the flag: {}", text(&out.stderr));
    }
    // A worker flag whose value is malformed is refused before anything starts.
    let out = run(&env, "rccd", &["worker", "--scheduler", "x:1", "--keep-toolchains", "0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("--keep-toolchains"), "{}", text(&out.stderr));
}

#[test]
fn rcc_help_covers_every_language_the_shared_cache_the_pool_and_every_variable() {
    let env = TestEnv::new();
    let out = run(&env, "rcc", &["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for needle in ["C, C++ and Rust", "RUSTC_WRAPPER=rcc", "CMAKE_C_COMPILER_LAUNCHER", "Shared cache", "pool"] {
        assert!(help.contains(needle), "`rcc --help` mentions {needle}:\n{help}");
    }
    for command in ["stats", "cache", "config", "shims", "--stop-daemon", "--version"] {
        assert!(help.contains(command), "`rcc --help` names {command}:\n{help}");
    }
    for var in vars::ALL {
        let line = help.lines().find(|l| l.trim_start().starts_with(var.name)).unwrap_or_else(|| {
            panic!("`rcc --help` documents {}:\n{help}", var.name);
        });
        assert!(line.contains(var.doc), "{} is documented with its meaning: {line}", var.name);
    }
    // `rcc` alone prints the same help.
    assert_eq!(text(&run(&env, "rcc", &[]).stdout), help);
}

#[test]
fn rcc_config_shows_variables_without_a_config_key_with_their_source() {
    let mut env = TestEnv::new();
    env.set_env(vars::RCC_WORKER_NAME, "build-box-7");
    let out = env.rcc_ok(&["config"]);
    let shown = text(&out.stdout);
    let line = shown.lines().find(|l| l.contains(vars::RCC_WORKER_NAME)).expect("RCC_WORKER_NAME listed");
    assert!(line.contains("build-box-7") && line.contains("environment RCC_WORKER_NAME"), "{line}");
    let line = shown.lines().find(|l| l.contains(vars::RCC_START_TIMEOUT)).expect("RCC_START_TIMEOUT listed");
    assert!(line.contains("5000") && line.contains("(default)"), "{line}");
    assert!(!shown.contains(vars::RCC_WORKER_TEST_DELAY_MS), "test knobs are not settings: {shown}");
}

#[test]
fn the_scheduler_binary_carries_no_benchmarks() {
    let env = TestEnv::new();
    let help = text(&run(&env, "rcc-scheduler", &["--help"]).stdout);
    assert!(help.contains("serve") && !help.contains("bench"), "{help}");
    let out = run(&env, "rcc-scheduler", &["bench-dispatch"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // They live in rcc-bench, beside the benchmark scripts.
    let bench = Command::new(bin_dir().join("rcc-bench")).arg("--help").output().expect("rcc-bench built");
    let help = text(&bench.stdout);
    assert!(help.contains("dispatch") && help.contains("client"), "{help}");
}
