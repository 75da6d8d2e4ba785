//! A rebuild of identical inputs is all hits, with outputs byte-identical to a plain compile.

use crate::support::{run_ok, TestEnv};
use crate::with_compilers;

/// A small project: two sources, a header directory.
pub fn sample(env: &TestEnv) {
    env.write("include/config.h", "#define FACTOR 3\n");
    env.write("include/util.h", "#include \"config.h\"\nint scale(int x);\n");
    env.write("src/util.c", "#include <stdio.h>\n#include \"util.h\"\nint scale(int x) { return x * FACTOR; }\n");
    env.write(
        "src/main.c",
        "#include <stdio.h>\n#include \"util.h\"\nint main(void) { printf(\"%d\\n\", scale(14)); return 0; }\n",
    );
}

with_compilers!(identical_rebuild_is_all_hits_with_identical_objects, |env, cc| {
    sample(env);
    let args = [cc, "-c", "src/util.c", "-o", "util.o", "-Iinclude", "-O2", "-Wall"];
    env.rcc_ok(&args);
    assert_eq!(env.counter("misses"), 1, "first compile misses\n{}", env.log());
    let first = env.read("util.o");
    run_ok(env.command(cc).args(["-c", "src/util.c", "-o", "plain.o", "-Iinclude", "-O2", "-Wall"]));
    assert_eq!(first, env.read("plain.o"), "rcc's object equals a plain compile's");
    std::fs::remove_file(env.proj.join("util.o")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.counter("hits_direct"), 1, "second compile hits in direct mode\n{}", env.log());
    assert_eq!(env.read("util.o"), first, "restored object is byte-identical");
});

with_compilers!(hit_restores_the_object_mode_of_the_umask, |env, cc| {
    use std::os::unix::fs::PermissionsExt;
    sample(env);
    let args = [cc, "-c", "src/util.c", "-o", "util.o", "-Iinclude"];
    env.rcc_ok(&args);
    let mode = |env: &TestEnv| std::fs::metadata(env.proj.join("util.o")).unwrap().permissions().mode() & 0o777;
    let compiled = mode(env);
    std::fs::remove_file(env.proj.join("util.o")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1);
    assert_eq!(mode(env), compiled, "a hit gives the file the compiler's mode");
});

with_compilers!(warnings_are_replayed_on_every_hit, |env, cc| {
    env.write("warn.c", "int f(void) { int unused_variable; return 0; }\n");
    let args = [cc, "-c", "warn.c", "-o", "warn.o", "-Wall"];
    let first = env.rcc_ok(&args);
    let warning = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(warning.contains("unused_variable"), "compiler warns: {warning}");
    for _ in 0..2 {
        let again = env.rcc_ok(&args);
        assert_eq!(String::from_utf8_lossy(&again.stderr), warning, "same warning on a hit");
    }
    assert_eq!(env.hits(), 2);
});

with_compilers!(split_dwarf_restores_the_dwo, |env, cc| {
    sample(env);
    let args = [cc, "-c", "src/util.c", "-o", "obj/util.o", "-Iinclude", "-g", "-gsplit-dwarf"];
    std::fs::create_dir_all(env.proj.join("obj")).unwrap();
    env.rcc_ok(&args);
    let obj = env.read("obj/util.o");
    let dwo = env.read("obj/util.dwo");
    assert!(!dwo.is_empty());
    std::fs::remove_file(env.proj.join("obj/util.o")).unwrap();
    std::fs::remove_file(env.proj.join("obj/util.dwo")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "{}", env.log());
    assert_eq!(env.read("obj/util.o"), obj);
    assert_eq!(env.read("obj/util.dwo"), dwo, ".dwo restored");
});

with_compilers!(cxx_sources_hit_too, |env, cc| {
    let cxx = if cc == "gcc" { "g++" } else { "clang++" };
    env.write("a.cpp", "#include <vector>\nint total() { std::vector<int> v{1, 2, 3}; int s = 0; for (int x : v) s += x; return s; }\n");
    env.rcc_ok(&[cxx, "-c", "a.cpp", "-o", "a.o", "-O1"]);
    let obj = env.read("a.o");
    env.rcc_ok(&[cxx, "-c", "a.cpp", "-o", "a.o", "-O1"]);
    assert_eq!(env.hits(), 1);
    assert_eq!(env.read("a.o"), obj);
});

#[test]
fn assembly_output_with_dash_s_is_cached() {
    let env = TestEnv::new();
    sample(&env);
    env.rcc_ok(&["gcc", "-S", "src/util.c", "-Iinclude", "-O2"]);
    let asm = env.read("util.s");
    std::fs::remove_file(env.proj.join("util.s")).unwrap();
    env.rcc_ok(&["gcc", "-S", "src/util.c", "-Iinclude", "-O2"]);
    assert_eq!(env.hits(), 1);
    assert_eq!(env.read("util.s"), asm);
}

#[test]
fn preprocessor_mode_hits_when_direct_mode_is_off() {
    let mut env = TestEnv::new();
    env.set_env("RCC_DIRECT", "0");
    sample(&env);
    let args = ["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude"];
    env.rcc_ok(&args);
    let obj = env.read("util.o");
    // With direct mode off every lookup preprocesses; the identical text is found again.
    env.rcc_ok(&args);
    assert_eq!(env.counter("hits_preprocessor"), 1, "{}", env.log());
    assert_eq!(env.read("util.o"), obj);
}

with_compilers!(coverage_notes_are_restored, |env, cc| {
    sample(env);
    std::fs::create_dir_all(env.proj.join("obj")).unwrap();
    let args = [cc, "-c", "src/util.c", "-o", "obj/util.o", "-Iinclude", "--coverage"];
    env.rcc_ok(&args);
    let obj = env.read("obj/util.o");
    let gcno = env.read("obj/util.gcno");
    std::fs::remove_file(env.proj.join("obj/util.o")).unwrap();
    std::fs::remove_file(env.proj.join("obj/util.gcno")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "{}", env.log());
    assert_eq!(env.read("obj/util.o"), obj);
    assert_eq!(env.read("obj/util.gcno"), gcno, ".gcno restored");
});

#[test]
fn march_native_is_cached_under_this_hosts_expansion() {
    let env = TestEnv::new();
    sample(&env);
    let args = ["gcc", "-c", "src/util.c", "-o", "util.o", "-Iinclude", "-O2", "-march=native"];
    env.rcc_ok(&args);
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "{}", env.log());
    run_ok(env.command("gcc").args(["-c", "src/util.c", "-o", "plain.o", "-Iinclude", "-O2", "-march=native"]));
    assert_eq!(env.read("util.o"), env.read("plain.o"));
}

#[test]
fn small_cache_size_limit_evicts_and_stays_correct() {
    let mut env = TestEnv::new();
    env.set_env("RCC_CACHE_SIZE", "24K");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..12 {
        // About 6 KiB of data that compresses poorly, so a dozen entries overflow the limit.
        let data: String = (0..1500)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                format!("{},", (seed >> 33) as u32)
            })
            .collect();
        env.write(&format!("f{i}.c"), &format!("unsigned g{i}[] = {{{data}}};\n"));
        env.rcc_ok(&["gcc", "-c", &format!("f{i}.c"), "-o", &format!("f{i}.o"), "-g"]);
    }
    let stats = env.stats();
    let bytes = stats["cache_bytes"].as_u64().unwrap();
    assert!(bytes <= 24 * 1024, "store kept within its limit: {bytes} bytes");
    // The most recent compile is still a hit; the oldest was evicted.
    env.rcc_ok(&["gcc", "-c", "f11.c", "-o", "f11.o", "-g"]);
    assert_eq!(env.hits(), 1, "{}", env.log());
    env.rcc_ok(&["gcc", "-c", "f0.c", "-o", "f0.o", "-g"]);
    assert_eq!(env.hits(), 1, "least recently used entry was evicted");
    run_ok(env.command("gcc").args(["-c", "f0.c", "-o", "plain.o", "-g"]));
    assert_eq!(env.read("f0.o"), env.read("plain.o"));
}

#[test]
fn recorded_command_line_gets_nothing_added() {
    let env = TestEnv::new();
    sample(&env);
    for (cc, flag) in [("clang", "-grecord-command-line"), ("gcc", "-frecord-gcc-switches")] {
        let args = [cc, "-c", "src/util.c", "-o", "util.o", "-Iinclude", "-g", flag];
        env.rcc_ok(&args);
        run_ok(env.command(cc).args(["-c", "src/util.c", "-o", "util.o", "-Iinclude", "-g", flag]).env("X", "1"));
        let plain = env.read("util.o");
        env.rcc_ok(&args);
        assert_eq!(env.read("util.o"), plain, "{cc} {flag}: the recorded command line is the user's");
    }
    assert_eq!(env.hits(), 2, "{}", env.log());
}

#[test]
fn diagnostics_keep_colour_on_a_terminal_only() {
    let env = TestEnv::new();
    env.write("warn.c", "int f(void) { int unused_variable; return 0; }\n");
    assert!(crate::support::have("script"), "util-linux `script` runs a command under a terminal");
    let rcc = env.rcc_bin();
    let line = format!("{} gcc -c warn.c -o warn.o -Wall", rcc.display());
    for round in 0..2 {
        let tty = run_ok(env.command("script").args(["-qec", &line, "/dev/null"]).env("TERM", "xterm"));
        assert!(tty.stdout.windows(2).any(|w| w == b"\x1b["), "round {round}: colour on a terminal");
        let piped = env.rcc_ok(&["gcc", "-c", "warn.c", "-o", "warn.o", "-Wall"]);
        assert!(!piped.stderr.contains(&0x1b), "round {round}: no colour into a pipe");
        assert!(String::from_utf8_lossy(&piped.stderr).contains("unused_variable"));
    }
    assert_eq!(env.hits(), 3, "{}", env.log());
}
