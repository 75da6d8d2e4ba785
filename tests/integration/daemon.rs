//! The daemon: one per cache directory even under `make -j16`, several daemons sharing one store, idle exit.

use crate::support::{run_ok, TestEnv};

/// Writes `n` sources and a Makefile compiling them with `$(CC)`.
pub fn many_sources(env: &TestEnv, n: usize) {
    let mut objs = Vec::new();
    for i in 0..n {
        env.write(
            &format!("src/f{i}.c"),
            &format!("#include <stdio.h>\n#include \"common.h\"\nint f{i}(void) {{ return COMMON + {i}; }}\n"),
        );
        objs.push(format!("obj/f{i}.o"));
    }
    env.write("include/common.h", "#define COMMON 100\n");
    env.write(
        "Makefile",
        &format!(
            "OBJS = {}\nall: $(OBJS)\nobj/%.o: src/%.c include/common.h\n\t@mkdir -p obj\n\t$(CC) -O1 -Iinclude -c $< -o $@\nclean:\n\trm -rf obj\n",
            objs.join(" ")
        ),
    );
}

/// rccd processes of this environment's cache directory: (pid, parent pid, state).
fn rccd_processes_of(env: &TestEnv) -> Vec<(u32, u32, char)> {
    let ours = format!("RCC_DIR={}", env.cache.display());
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let dir = p.path();
            let exe = std::fs::read_link(dir.join("exe")).ok()?;
            let env_ok = std::fs::read(dir.join("environ")).ok()?.split(|b| *b == 0).any(|kv| kv == ours.as_bytes());
            if exe.file_name()? != "rccd" || !env_ok {
                return None;
            }
            // `pid (comm) S ppid …`: the fields after the last ')'.
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some((pid, ppid, state))
        })
        .collect()
}

/// rccd daemons serving this environment's cache directory. A daemon's child between fork and exec (the
/// compiler probes it runs) still shows rccd's executable and environment: it is the daemon's, not a daemon.
pub fn daemons_of(env: &TestEnv) -> usize {
    let procs = rccd_processes_of(env);
    procs.iter().filter(|(_, ppid, _)| !procs.iter().any(|(pid, _, _)| pid == ppid)).count()
}

/// Asserts that exactly one daemon served this environment: one listened, and one is left once any
/// second starter (which finds the socket's lock taken and exits at once) is gone.
fn assert_one_daemon(env: &TestEnv) {
    let log = env.log();
    let listened = log.matches("rccd listening").count();
    let lost_the_lock = log.matches("another daemon serves this socket").count();
    assert_eq!(listened, 1, "daemons that listened ({lost_the_lock} more exited at once)\n{log}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while daemons_of(env) != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(daemons_of(env), 1, "rccd processes (pid, ppid, state): {:?}\n{log}", rccd_processes_of(env));
}

#[test]
fn make_j16_from_an_empty_cache_starts_one_daemon() {
    let env = TestEnv::new();
    many_sources(&env, 40);
    let cc = format!("{} gcc", env.rcc_bin().display());
    run_ok(env.command("make").args(["-j16", &format!("CC={cc}")]));
    assert_one_daemon(&env);
    assert_eq!(env.counter("misses"), 40, "{}", env.log());
    for i in [0, 17, 39] {
        run_ok(env.command("gcc").args(["-O1", "-Iinclude", "-c", &format!("src/f{i}.c"), "-o", "plain.o"]));
        assert_eq!(env.read(&format!("obj/f{i}.o")), env.read("plain.o"));
    }
    run_ok(env.command("make").arg("clean"));
    run_ok(env.command("make").args(["-j16", &format!("CC={cc}")]));
    assert_eq!(env.hits(), 40, "rebuild is all hits\n{}", env.log());
    assert_one_daemon(&env);
}

#[test]
fn two_daemons_share_one_store() {
    let env = TestEnv::new();
    many_sources(&env, 12);
    let cc = format!("{} gcc", env.rcc_bin().display());
    let a = env.root.join("a.sock");
    let b = env.root.join("b.sock");
    // Two builds at once, each through its own daemon, into one cache directory.
    let mut first = env.command("make").args(["-j4", &format!("CC={cc}")]).env("RCC_SOCKET", &a).spawn().unwrap();
    std::fs::create_dir_all(env.proj.join("copy")).unwrap();
    let copy = env.proj.join("copy");
    for entry in ["src", "include", "Makefile"] {
        run_ok(std::process::Command::new("cp").args(["-a", entry]).arg(&copy).current_dir(&env.proj));
    }
    crate::support::settle(&copy.join("Makefile"));
    let mut second = env
        .command("make")
        .args(["-j4", &format!("CC={cc}")])
        .current_dir(&copy)
        .env("RCC_SOCKET", &b)
        .spawn()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    assert_eq!(daemons_of(&env), 2);
    // Daemon a flushes its counts when it stops; from then on only b counts.
    run_ok(env.command(env.rcc_bin()).arg("--stop-daemon").env("RCC_SOCKET", &a));
    // Everything is now in the shared store: a third build through daemon b hits every file.
    run_ok(env.command("make").arg("clean"));
    let hits_via_b = || {
        let out = run_ok(env.command(env.rcc_bin()).args(["stats", "--json"]).env("RCC_SOCKET", &b));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["counters"]["hits_direct"].as_u64().unwrap_or(0)
    };
    let before = hits_via_b();
    run_ok(env.command("make").args(["-j4", &format!("CC={cc}")]).env("RCC_SOCKET", &b));
    assert_eq!(hits_via_b() - before, 12, "{}", env.log());
    let _ = env.command(env.rcc_bin()).arg("--stop-daemon").env("RCC_SOCKET", &b).output();
}

#[test]
fn idle_daemon_exits_and_statistics_survive() {
    let mut env = TestEnv::new();
    env.set_env("RCC_IDLE_TIMEOUT", "1");
    env.write("a.c", "int a(void) { return 1; }\n");
    env.rcc_ok(&["gcc", "-c", "a.c", "-o", "a.o"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while daemons_of(&env) > 0 {
        assert!(std::time::Instant::now() < deadline, "daemon did not exit when idle");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(env.counter("misses"), 1, "statistics persisted across the restart");
}
