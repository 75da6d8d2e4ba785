//! Calls rcc cannot cache run the real compiler untouched, with the reason counted.

use crate::hits::sample;
use crate::support::{run_ok, TestEnv};

#[test]
fn linking_preprocessing_and_multiple_sources_pass_through() {
    let env = TestEnv::new();
    sample(&env);
    env.rcc_ok(&["gcc", "-Iinclude", "src/main.c", "src/util.c", "-o", "app"]);
    let out = run_ok(&mut std::process::Command::new(env.proj.join("app")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n", "the linked program runs");
    let pre = env.rcc_ok(&["gcc", "-E", "-Iinclude", "src/util.c"]);
    assert!(String::from_utf8_lossy(&pre.stdout).contains("scale"), "-E output reaches stdout");
    env.rcc_ok(&["gcc", "-c", "-Iinclude", "src/main.c", "src/util.c"]);
    assert!(env.proj.join("main.o").is_file() && env.proj.join("util.o").is_file());
    env.rcc_ok(&["gcc", "-o", "app2", "main.o", "util.o"]);
    assert!(env.proj.join("app2").is_file());
    assert_eq!(env.uncacheable("linking"), 2, "linking objects is linking");
    assert_eq!(env.uncacheable("preprocess-only"), 1);
    assert_eq!(env.uncacheable("multiple-sources"), 1);
}

#[test]
fn stdin_input_passes_through() {
    let env = TestEnv::new();
    let mut child = env
        .command(env.rcc_bin())
        .args(["gcc", "-x", "c", "-c", "-", "-o", "stdin.o"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"int from_stdin(void) { return 1; }\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(env.proj.join("stdin.o").is_file());
    assert_eq!(env.uncacheable("stdin-input"), 1);
}

#[test]
fn unknown_flags_pass_through_or_join_the_key() {
    let env = TestEnv::new();
    sample(&env);
    env.write("notes.txt", "");
    // A gcc flag rcc's table does not list, naming an existing file: run untouched, counted.
    env.rcc_ok(&["gcc", "-c", "src/util.c", "-Iinclude", "-o", "util.o", "-fprofile-note=notes.txt"]);
    assert_eq!(env.uncacheable("unknown-flag-naming-file"), 1, "{}", env.log());
    // Flags that name no file are part of the key: cached, and distinct from their absence.
    let with = ["gcc", "-c", "src/util.c", "-Iinclude", "-o", "util.o", "-fno-plt", "-fzero-call-used-regs=used"];
    env.rcc_ok(&with);
    env.rcc_ok(&with);
    assert_eq!(env.hits(), 1, "{}", env.log());
    env.rcc_ok(&["gcc", "-c", "src/util.c", "-Iinclude", "-o", "util.o", "-fno-plt"]);
    assert_eq!(env.hits(), 1, "dropping a flag is a miss");
}

#[test]
fn time_macros_are_uncacheable() {
    let env = TestEnv::new();
    env.write("stamp.c", "const char *when = __TIMESTAMP__;\n");
    env.rcc_ok(&["gcc", "-c", "stamp.c", "-o", "stamp.o"]);
    env.rcc_ok(&["gcc", "-c", "stamp.c", "-o", "stamp.o"]);
    assert_eq!(env.hits(), 0);
    assert_eq!(env.uncacheable("time-macros"), 2);
}

#[test]
fn rustc_typed_by_hand_is_cached_and_its_probes_pass_through() {
    let env = TestEnv::new();
    env.write("hello.rs", "fn main() { println!(\"hi\"); }\n");
    for _ in 0..2 {
        env.rcc_ok(&["rustc", "hello.rs", "-o", "hello"]);
        let out = run_ok(&mut std::process::Command::new(env.proj.join("hello")));
        assert_eq!(out.stdout, b"hi\n");
    }
    let rust = &env.stats()["counters"]["rust"];
    assert_eq!((rust["misses"].as_u64(), rust["hits"].as_u64()), (Some(1), Some(1)), "{rust}");
    let version = env.rcc_ok(&["rustc", "-vV"]);
    assert!(String::from_utf8_lossy(&version.stdout).contains("host: "));
    env.rcc_ok(&["rustc", "hello.rs", "--emit=obj,link", "-o", "x"]);
    let rust = &env.stats()["counters"]["rust"];
    assert_eq!(rust["uncacheable"]["rustc-probe"].as_u64(), Some(1), "{rust}");
    assert_eq!(rust["uncacheable"]["rustc-output-path"].as_u64(), Some(1), "{rust}");
}

#[test]
fn incbin_is_uncacheable() {
    let env = TestEnv::new();
    env.write("blob.bin", "payload one");
    env.write(
        "embed.c",
        "__asm__(\".section .rodata\\n.global blob\\nblob:\\n.incbin \\\"blob.bin\\\"\\n.previous\");\n",
    );
    env.rcc_ok(&["gcc", "-c", "embed.c", "-o", "embed.o"]);
    env.write("blob.bin", "payload two");
    env.rcc_ok(&["gcc", "-c", "embed.c", "-o", "embed.o"]);
    run_ok(env.command("gcc").args(["-c", "embed.c", "-o", "plain.o"]));
    assert_eq!(env.read("embed.o"), env.read("plain.o"), "the object holds the new blob");
    assert_eq!(env.uncacheable("assembler-include"), 2);
}

/// `RCC_DISABLE=1`: the real compiler runs, the daemon is not asked, nothing is stored or counted.
#[test]
fn disable_runs_the_compiler_and_stores_nothing() {
    let mut env = TestEnv::new();
    sample(&env);
    let args = ["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude"];
    env.set_env("RCC_DISABLE", "1");
    for _ in 0..2 {
        std::fs::remove_file(env.proj.join("util.o")).ok();
        env.rcc_ok(&args);
        run_ok(env.command("gcc").args(["-c", "src/util.c", "-o", "plain.o", "-Iinclude"]));
        assert_eq!(env.read("util.o"), env.read("plain.o"), "the real compiler's object");
    }
    assert_eq!(crate::daemon::daemons_of(&env), 0, "no daemon was started for a disabled cache");
    env.set_env("RCC_DISABLE", "0");
    let stats = env.stats();
    assert_eq!(stats["cache_entries"], 0, "nothing stored: {stats:#}");
    let counters = &stats["counters"];
    assert_eq!(
        (counters["misses"].as_u64(), counters["stored"].as_u64(), counters["hits_direct"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "nothing counted: {stats:#}"
    );
    assert_eq!(counters["uncacheable"], serde_json::json!({}), "{stats:#}");
    // Enabled again, the same compile misses: nothing of the disabled runs was kept.
    env.rcc_ok(&args);
    assert_eq!((env.counter("misses"), env.hits()), (1, 0), "{}", env.log());
}
