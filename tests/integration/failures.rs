//! What goes wrong stays the compiler's: failing compiles, corrupt entries, a dead daemon, a cache
//! directory that cannot be written.

use crate::hits::sample;
use crate::support::{describe, run_ok, TestEnv};
use crate::with_compilers;
use std::os::unix::fs::PermissionsExt;

with_compilers!(failing_compile_keeps_the_compilers_message_and_exit_code, |env, cc| {
    env.write("bad.c", "int f(void) { return missing_symbol; }\n");
    let plain = env.command(cc).args(["-c", "bad.c", "-o", "bad.o"]).output().unwrap();
    assert!(!plain.status.success());
    for _ in 0..2 {
        let out = env.command(env.rcc_bin()).args([cc, "-c", "bad.c", "-o", "bad.o"]).output().unwrap();
        assert_eq!(out.status.code(), plain.status.code(), "{}", describe(&out));
        assert_eq!(out.stderr, plain.stderr, "the compiler's own message");
        assert!(!env.proj.join("bad.o").exists());
    }
    assert_eq!(env.hits(), 0, "failures are never stored");
    assert_eq!(env.uncacheable("compile-failed"), 2);
});

#[test]
fn corrupt_cache_entry_is_counted_dropped_and_recompiled() {
    let env = TestEnv::new();
    sample(&env);
    let args = ["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude"];
    env.rcc_ok(&args);
    let good = env.read("util.o");
    assert_eq!(env.counter("stored"), 1, "stored before we damage it");
    // Damage every stored result.
    let mut damaged = 0;
    for entry in walk(&env.cache.join("store/r")) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        bytes[50] ^= 0x55;
        std::fs::write(&entry, bytes).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0, "a result was stored");
    std::fs::remove_file(env.proj.join("util.o")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.read("util.o"), good, "the compile ran and produced the right object");
    assert_eq!(env.stats()["counters"]["errors"]["corrupt-entry"], 1, "{}", env.log());
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "the entry was stored again");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn killed_daemon_still_gives_a_correct_build() {
    let env = TestEnv::new();
    sample(&env);
    let args = ["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude"];
    env.rcc_ok(&args);
    let good = env.read("util.o");
    // (Statistics wait for stores in flight: the result is on disk before the kill.)
    assert_eq!(env.counter("stored"), 1);
    let pid = daemon_pid(&env);
    // SAFETY: plain kill(2) of a process this test started (through rcc).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::fs::remove_file(env.proj.join("util.o")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.read("util.o"), good);
    // The new daemon serves hits from the store the dead one left.
    assert_eq!(env.hits(), 1, "{}", env.log());
}

fn daemon_pid(env: &TestEnv) -> i32 {
    let out = run_ok(std::process::Command::new("pgrep").args([
        "-f",
        "-x",
        &format!("{}", env.rcc_bin().with_file_name("rccd").display()),
    ]));
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect();
    // Several tests run at once; find the one whose environment has our cache directory.
    let ours = format!("RCC_DIR={}", env.cache.display());
    pids.into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.split(|b| *b == 0).any(|kv| kv == ours.as_bytes()))
        })
        .expect("our daemon is running")
}

#[test]
fn unwritable_cache_directory_still_gives_a_correct_build() {
    let env = TestEnv::new();
    sample(&env);
    std::fs::create_dir_all(&env.cache).unwrap();
    std::fs::set_permissions(&env.cache, std::fs::Permissions::from_mode(0o500)).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    // As root permissions do not bind: point the cache below a regular file instead.
    let mut cmd = env.command(env.rcc_bin());
    if root {
        std::fs::write(env.root.join("not-a-dir"), "").unwrap();
        cmd.env("RCC_DIR", env.root.join("not-a-dir/cache"));
    }
    let out = run_ok(cmd.args(["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude"]));
    assert!(out.stderr.is_empty(), "nothing extra printed: {}", describe(&out));
    run_ok(env.command("gcc").args(["-c", "src/util.c", "-o", "plain.o", "-Iinclude"]));
    assert_eq!(env.read("util.o"), env.read("plain.o"));
    std::fs::set_permissions(&env.cache, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn input_modified_while_compiling_is_not_stored() {
    let env = TestEnv::new();
    sample(&env);
    // A "compiler" that edits a header while it compiles: what an editor saving mid-build looks like.
    let bin = env.root.join("slowbin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("gcc");
    let header = env.proj.join("include/config.h");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n/usr/bin/gcc \"$@\" || exit $?\ncase \" $* \" in *\" -c \"*) echo '/* edited */' >> {} ;; esac\n", header.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let args = ["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude"];
    run_ok(env.command(env.rcc_bin()).env("PATH", &path).args(args));
    assert_eq!(env.uncacheable("input-modified-during-compile"), 1, "{}", env.log());
    crate::support::settle(&header);
    // Nothing was stored under the edited header's digest: the next compile (plain gcc now) misses.
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 0);
}
