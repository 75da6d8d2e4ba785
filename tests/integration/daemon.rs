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

/// rccd processes serving this environment's cache directory.
pub fn daemons_of(env: &TestEnv) -> usize {
    let ours = format!("RCC_DIR={}", env.cache.display());
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0 };
    procs
        .flatten()
        .filter(|p| {
            let dir = p.path();
            std::fs::read_link(dir.join("exe")).is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "rccd"))
                && std::fs::read(dir.join("environ"))
                    .is_ok_and(|e| e.split(|b| *b == 0).any(|kv| kv == ours.as_bytes()))
        })
        .count()
}

#[test]
fn make_j16_from_an_empty_cache_starts_one_daemon() {
    let env = TestEnv::new();
    many_sources(&env, 40);
    let cc = format!("{} gcc", env.rcc_bin().display());
    run_ok(env.command("make").args(["-j16", &format!("CC={cc}")]));
    assert_eq!(daemons_of(&env), 1, "exactly one daemon");
    assert_eq!(env.counter("misses"), 40, "{}", env.log());
    for i in [0, 17, 39] {
        run_ok(env.command("gcc").args(["-O1", "-Iinclude", "-c", &format!("src/f{i}.c"), "-o", "plain.o"]));
        assert_eq!(env.read(&format!("obj/f{i}.o")), env.read("plain.o"));
    }
    run_ok(env.command("make").arg("clean"));
    run_ok(env.command("make").args(["-j16", &format!("CC={cc}")]));
    assert_eq!(env.hits(), 40, "rebuild is all hits\n{}", env.log());
    assert_eq!(daemons_of(&env), 1);
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
