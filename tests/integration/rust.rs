//! Rust: real cargo with `RUSTC_WRAPPER=rcc` (and `CC="rcc cc"` for the C the `cc` crate compiles) on a
//! workspace using crates from the registry: serde with its proc-macro, a build script compiling C, and a
//! crate reading `option_env!` and `include_str!` (tests/fixtures/rust-ws).

use crate::support::{describe, run_ok, settle, TestEnv};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixture workspace, copied into `dest`.
pub(crate) fn copy_fixture(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rust-ws");
    copy_dir(&src, dest);
}

fn copy_dir(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).expect("creating a fixture directory");
    for entry in fs::read_dir(src).expect("reading the fixture") {
        let entry = entry.expect("fixture entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).expect("copying a fixture file");
            settle(&to);
        }
    }
}

/// `cargo <args>` in `dir` with rcc as the rustc wrapper and as the C compiler launcher, and nothing of the
/// test process's own cargo environment (nextest runs under cargo, which sets many `CARGO_*` variables).
fn cargo(env: &TestEnv, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = env.command("cargo");
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        let cargo_var = k.starts_with("CARGO_") && k != "CARGO_HOME";
        if cargo_var || k.starts_with("RUSTC") || k.starts_with("RUSTFLAGS") || k == "RUSTDOCFLAGS" {
            cmd.env_remove(&key);
        }
    }
    let rcc = env.rcc_bin();
    cmd.current_dir(dir)
        .args(args)
        .env("RUSTC_WRAPPER", &rcc)
        .env("CC", format!("{} cc", rcc.display()))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TERM_COLOR", "never");
    cmd
}

pub(crate) fn cargo_ok(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let out = cargo(env, dir, args).output().expect("running cargo");
    assert!(out.status.success(), "cargo {args:?} failed:\n{}\nlog:\n{}", describe(&out), tail(&env.log()));
    out
}

/// What the daemon logged of Rust misses and refusals, for assertion messages.
fn why(env: &TestEnv) -> String {
    env.log()
        .lines()
        .filter(|l| l.contains("rccd::rust") && !l.contains("rustc-probe"))
        .map(|l| l.chars().take(400).collect::<String>())
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .take(12)
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(6000);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    &text[start..]
}

/// The Rust counters.
pub(crate) fn rust(env: &TestEnv) -> serde_json::Value {
    env.stats()["counters"]["rust"].clone()
}

pub(crate) fn count(v: &serde_json::Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or(0)
}

pub(crate) fn app_binary(dir: &Path) -> PathBuf {
    dir.join("target/debug/app")
}

pub(crate) fn run_app(dir: &Path) -> String {
    let out = run_ok(&mut Command::new(app_binary(dir)));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Removes the build's outputs (`cargo clean`) and zeroes the statistics: the next build is a clean one.
fn clean(env: &TestEnv, dir: &Path) {
    cargo_ok(env, dir, &["clean", "-q"]);
    env.zero_stats();
}

#[test]
fn clean_rebuild_hits_every_cacheable_call_and_gives_the_same_binary() {
    let env = TestEnv::new();
    copy_fixture(&env.proj);
    cargo_ok(&env, &env.proj, &["build"]);
    let cold = rust(&env);
    let stored = count(&cold, "stored");
    assert!(stored >= 15, "registry crates, proc-macros, build scripts and the bin are stored: {cold}");
    assert_eq!(count(&cold, "misses"), stored, "every cacheable call is stored: {cold}");
    assert_eq!(run_app(&env.proj), r#"{"greeting":"hello world","sum":42}"#);
    let first = fs::read(app_binary(&env.proj)).expect("binary");
    let c_misses = env.counter("misses");
    assert!(c_misses >= 1, "the build script's C compile went through rcc");

    clean(&env, &env.proj);
    cargo_ok(&env, &env.proj, &["build"]);
    let warm = rust(&env);
    assert_eq!(count(&warm, "misses"), 0, "a clean rebuild misses nothing: {warm}\n{}", why(&env));
    assert_eq!(count(&warm, "hits"), stored, "every stored call hits, the bin and proc-macros included: {warm}");
    assert_eq!(env.counter("misses"), 0, "the C compile hits too");
    assert!(env.hits() >= 1);
    assert_eq!(fs::read(app_binary(&env.proj)).expect("binary"), first, "the binary is byte-identical");
    assert_eq!(run_app(&env.proj), r#"{"greeting":"hello world","sum":42}"#);
    let probes = warm["uncacheable"]["rustc-probe"].as_u64().unwrap_or(0);
    assert!(probes >= 1, "cargo's probes pass through, counted: {warm}");
}

/// A clean build (`cargo clean`, statistics zeroed, `cargo <args>`); returns the Rust counters.
fn clean_build(env: &TestEnv, dir: &Path, args: &[&str]) -> serde_json::Value {
    clean(env, dir);
    cargo_ok(env, dir, args);
    rust(env)
}

/// Writes `content` to `path` and waits for the timestamp clock to move on.
fn rewrite(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    settle(path);
}

/// A clean build after a change that must miss texty and the bin that links it, and nothing else.
fn texty_and_app_miss(env: &TestEnv, dir: &Path, args: &[&str], all: u64, greeting: &str) {
    let r = clean_build(env, dir, args);
    assert_eq!(count(&r, "misses"), 2, "texty and app: {r}\n{}", why(env));
    assert_eq!(count(&r, "hits"), all - 2, "{r}");
    assert_eq!(run_app(dir), format!(r#"{{"greeting":"{greeting}","sum":42}}"#));
}

#[test]
fn changes_miss_exactly_where_the_output_changes() {
    let mut env = TestEnv::new();
    copy_fixture(&env.proj);
    let dir = env.proj.clone();
    cargo_ok(&env, &dir, &["build"]);
    let all = count(&rust(&env), "stored");

    // A touched file with the same content is no reason to miss.
    let word = dir.join("texty/src/word.txt");
    rewrite(&word, &fs::read(&word).expect("word.txt"));
    let r = clean_build(&env, &dir, &["build"]);
    assert_eq!(count(&r, "misses"), 0, "same content: {r}\n{}", why(&env));

    // A file read by include_str!.
    rewrite(&word, b"there\n");
    texty_and_app_miss(&env, &dir, &["build"], all, "hello there");

    // A Rust source.
    let lib = dir.join("texty/src/lib.rs");
    rewrite(&lib, fs::read_to_string(&lib).expect("lib.rs").replace("{} {}", "{}, {}").as_bytes());
    texty_and_app_miss(&env, &dir, &["build"], all, "hello, there");

    // A feature of texty.
    texty_and_app_miss(&env, &dir, &["build", "--features", "texty/loud"], all, "HELLO, THERE");

    // A variable read by option_env!.
    env.set_env("RCC_TEST_GREETING", "hi");
    texty_and_app_miss(&env, &dir, &["build"], all, "hi, there");

    // The same again: all hits.
    let r = clean_build(&env, &dir, &["build"]);
    assert_eq!(count(&r, "misses"), 0, "{r}\n{}", why(&env));

    // RUSTFLAGS reach every crate.
    env.set_env("RUSTFLAGS", "--cfg rcc_test_flag");
    let r = clean_build(&env, &dir, &["build"]);
    assert_eq!(count(&r, "hits"), 0, "every call has a new argument: {r}");
    assert_eq!(count(&r, "misses"), all);
}

/// A second toolchain: the same files, but a rustc binary whose content differs (one byte appended, which
/// an ELF loader ignores). Every call must miss.
#[test]
fn another_toolchain_misses_everything() {
    let mut env = TestEnv::new();
    copy_fixture(&env.proj);
    let dir = env.proj.clone();
    cargo_ok(&env, &dir, &["build"]);
    let all = count(&rust(&env), "stored");

    let sysroot = run_ok(Command::new("rustc").args(["--print", "sysroot"]).current_dir(&dir));
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let toolchain = env.root.join("toolchain");
    fs::create_dir_all(toolchain.join("bin")).expect("toolchain dir");
    std::os::unix::fs::symlink(sysroot.join("lib"), toolchain.join("lib")).expect("linking the libraries");
    let mut rustc = fs::read(sysroot.join("bin/rustc")).expect("reading rustc");
    rustc.push(0);
    let new_rustc = toolchain.join("bin/rustc");
    fs::write(&new_rustc, rustc).expect("writing rustc");
    fs::set_permissions(&new_rustc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    env.set_env("RUSTC", new_rustc.to_str().expect("utf-8 path"));

    let r = clean_build(&env, &dir, &["build"]);
    assert_eq!(count(&r, "hits"), 0, "{r}");
    assert_eq!(count(&r, "misses"), all, "{r}");
    assert_eq!(run_app(&dir), r#"{"greeting":"hello world","sum":42}"#);
}

/// What cargo reports of each compile (`--message-format=json`): the artifacts per crate, which come from
/// rustc's own artifact notifications and dep-info. A cached build must report the same.
fn artifacts(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .map(|v| format!("{} {} {}", v["target"]["name"], v["filenames"], v["fresh"]))
        .collect();
    lines.sort();
    lines
}

#[test]
fn pipelined_build_check_and_test_work_and_report_the_same_artifacts() {
    let env = TestEnv::new();
    copy_fixture(&env.proj);
    let dir = env.proj.clone();
    let cold = cargo_ok(&env, &dir, &["build", "--message-format=json"]);
    clean(&env, &dir);
    let warm = cargo_ok(&env, &dir, &["build", "--message-format=json"]);
    assert_eq!(count(&rust(&env), "misses"), 0, "{}", why(&env));
    assert_eq!(artifacts(&cold), artifacts(&warm), "cargo sees the same artifacts from a cached build");

    clean(&env, &dir);
    cargo_ok(&env, &dir, &["check"]);
    let checked = count(&rust(&env), "misses");
    assert!(checked >= 3, "check compiles metadata only, under other keys: {}", rust(&env));
    clean(&env, &dir);
    cargo_ok(&env, &dir, &["check"]);
    assert_eq!(count(&rust(&env), "misses"), 0, "{}\n{}", rust(&env), why(&env));

    clean(&env, &dir);
    let first = cargo_ok(&env, &dir, &["test"]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("test tests::adds ... ok"), "{}", describe(&first));
    clean(&env, &dir);
    let again = cargo_ok(&env, &dir, &["test"]);
    assert_eq!(count(&rust(&env), "misses"), 0, "test harnesses hit too: {}", rust(&env));
    assert!(String::from_utf8_lossy(&again.stdout).contains("test tests::adds ... ok"), "{}", describe(&again));
}

#[test]
fn incremental_builds_succeed_uncached() {
    let env = TestEnv::new();
    copy_fixture(&env.proj);
    let dir = env.proj.clone();
    let out = cargo(&env, &dir, &["build"]).env("CARGO_INCREMENTAL", "1").output().expect("cargo");
    assert!(out.status.success(), "{}", describe(&out));
    let r = rust(&env);
    assert!(count(&r["uncacheable"], "incremental") >= 3, "the workspace members are incremental: {r}");
    assert!(count(&r, "stored") >= 10, "registry crates are not incremental and are cached: {r}");
    assert_eq!(run_app(&dir), r#"{"greeting":"hello world","sum":42}"#);
}

/// Two users: each has the checkout under their home and their own cargo home (registry sources at
/// different paths). With the base directory set to each home, the second build hits everything.
#[test]
fn base_directory_shares_hits_across_checkouts_and_homes() {
    let mut env = TestEnv::new();
    let mut binaries = Vec::new();
    for (i, user) in ["alice", "bob"].iter().enumerate() {
        let home = env.root.join(user);
        let dir = home.join("src/proj");
        copy_fixture(&dir);
        env.set_env("CARGO_HOME", home.join(".cargo").to_str().expect("utf-8"));
        env.set_env("RCC_BASE_DIR", home.to_str().expect("utf-8"));
        env.zero_stats();
        cargo_ok(&env, &dir, &["build"]);
        let r = rust(&env);
        if i == 0 {
            assert!(count(&r, "stored") >= 15, "{r}");
        } else {
            assert_eq!(count(&r, "misses"), 0, "the second home hits everything: {r}");
            assert!(count(&r, "hits") >= 15, "{r}");
            assert_eq!(env.counter("misses"), 0, "and the C compile too");
        }
        assert_eq!(run_app(&dir), r#"{"greeting":"hello world","sum":42}"#);
        binaries.push(fs::read(app_binary(&dir)).expect("binary"));
    }
    // With the home remapped, nothing of alice's paths is in bob's binary.
    let alice = env.root.join("alice");
    let needle = alice.to_str().expect("utf-8").as_bytes();
    assert!(!binaries[1].windows(needle.len()).any(|w| w == needle), "no path of alice's in bob's binary");
}
