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
    wait_until_dead(pid);
    std::fs::remove_file(env.proj.join("util.o")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.read("util.o"), good);
    // The new daemon serves hits from the store the dead one left.
    assert_eq!(env.hits(), 1, "{}", env.log());
}

/// Waits (at most 10 s) until every thread of the process is gone or a zombie. The leader of a
/// multi-threaded process turns zombie before its last thread exits, and the files (the listening
/// socket) close only then, so the leader's state alone is not enough.
fn wait_until_dead(pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !all_threads_dead(pid) {
        assert!(std::time::Instant::now() < deadline, "process {pid} still alive 10 s after SIGKILL");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether no thread of `pid` is still running (each is gone, a zombie or dead).
fn all_threads_dead(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return true };
    tasks.flatten().all(|task| {
        // `tid (comm) S …`: the state is the first field after the last ')'.
        let state = std::fs::read_to_string(task.path().join("stat")).ok().and_then(|stat| {
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        });
        matches!(state.as_deref(), None | Some("Z") | Some("X"))
    })
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

/// Compiles each of the sample's sources twice with `rcc` (run by `runner`, which may wrap it in setpriv), into
/// `out`, with and without a depfile, and compares every object and depfile with plain gcc's.
fn build_like_gcc(env: &TestEnv, what: &str, out: &str, runner: &dyn Fn(&[&str]) -> std::process::Command) {
    for round in 0..2 {
        for (source, extra) in [("src/util.c", &[][..]), ("src/main.c", &["-MD", "-MF"][..])] {
            let stem = source.trim_start_matches("src/").trim_end_matches(".c");
            let (obj, dep) = (format!("{out}/{stem}.o"), format!("{out}/{stem}.d"));
            let mut args = vec!["gcc", "-c", source, "-o", &obj, "-Iinclude"];
            if !extra.is_empty() {
                args.extend_from_slice(extra);
                args.push(&dep);
            }
            let built = run_ok(&mut runner(&args));
            assert!(built.stderr.is_empty(), "{what}, round {round}: nothing extra printed: {}", describe(&built));
            let (rcc_obj, rcc_dep) = (env.read(&obj), (!extra.is_empty()).then(|| env.read(&dep)));
            // The same command, plain gcc, over rcc's outputs.
            run_ok(env.command("gcc").args(&args[1..]));
            assert_eq!(rcc_obj, env.read(&obj), "{what}, round {round}: {obj} is gcc's");
            if let Some(rcc_dep) = rcc_dep {
                assert_eq!(rcc_dep, env.read(&dep), "{what}, round {round}: {dep} is gcc's");
            }
        }
    }
}

/// A tmpfs mounted for a test, unmounted (after stopping the daemon using it) when dropped.
struct Tmpfs {
    path: std::path::PathBuf,
    rcc: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(path: std::path::PathBuf, size: &str, rcc: std::path::PathBuf) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        run_ok(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&path),
        );
        Tmpfs { path, rcc }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.rcc).arg("--stop-daemon").env("RCC_DIR", &self.path).output();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let unmounted =
                std::process::Command::new("umount").arg(&self.path).output().is_ok_and(|o| o.status.success());
            if unmounted {
                return;
            }
            if std::time::Instant::now() > deadline {
                // Still busy: detach it now, the kernel frees it when the last user is gone.
                let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).output();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn unwritable_cache_directory_still_gives_a_correct_build() {
    let env = TestEnv::new();
    sample(&env);
    std::fs::create_dir_all(&env.cache).unwrap();
    std::fs::set_permissions(&env.cache, std::fs::Permissions::from_mode(0o500)).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    // As root permissions do not bind: point the cache below a regular file instead.
    std::fs::write(env.root.join("not-a-dir"), "").unwrap();
    std::fs::create_dir_all(env.proj.join("out")).unwrap();
    build_like_gcc(&env, "cache directory not writable", "out", &|args| {
        let mut cmd = env.command(env.rcc_bin());
        if root {
            cmd.env("RCC_DIR", env.root.join("not-a-dir/cache"));
        }
        cmd.args(args);
        cmd
    });
    std::fs::set_permissions(&env.cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    if !root {
        return;
    }

    // As an unprivileged user (nobody) whose HOME and RCC_DIR are root's: readable, not writable.
    assert!(crate::support::have("setpriv"), "setpriv (util-linux) is required to run rcc as another user");
    for dir in [&env.root, &env.proj] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (ro_home, ro_cache) = (env.root.join("home-ro"), env.root.join("cache-ro"));
    for dir in [&ro_home, &ro_cache] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let nobody_out = env.proj.join("out-nobody");
    std::fs::create_dir_all(&nobody_out).unwrap();
    std::os::unix::fs::chown(&nobody_out, Some(65534), Some(65534)).expect("chown to nobody");
    build_like_gcc(&env, "as nobody", "out-nobody", &|args| {
        let mut cmd = env.command("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env.rcc_bin())
            .args(args)
            .env("HOME", &ro_home)
            .env("RCC_DIR", &ro_cache)
            .env_remove("XDG_CACHE_HOME");
        cmd
    });
    assert_eq!(std::fs::read_dir(&ro_cache).unwrap().count(), 0, "nothing was written in the cache directory");

    // A cache directory on a file system that is full: a tmpfs filled with zeros up to ENOSPC.
    let full = Tmpfs::mount(env.root.join("full"), "1m", env.rcc_bin());
    let fill = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", full.path.join("fill").display()))
        .output()
        .expect("running dd");
    assert!(
        !fill.status.success() && String::from_utf8_lossy(&fill.stderr).contains("No space left on device"),
        "dd filled the tmpfs: {}",
        describe(&fill)
    );
    std::fs::create_dir_all(env.proj.join("out-full")).unwrap();
    build_like_gcc(&env, "cache on a full file system", "out-full", &|args| {
        let mut cmd = env.command(env.rcc_bin());
        cmd.env("RCC_DIR", &full.path).args(args);
        cmd
    });
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
