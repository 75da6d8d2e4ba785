//! Every way users put rcc in front of a compiler: `CC="rcc gcc" make`, masquerade shims on PATH,
//! `CC=rcc` alone, and CMake's compiler launcher with the Makefile and Ninja generators.

use crate::daemon::many_sources;
use crate::support::{have, run_ok, TestEnv};

fn path_with(dir: &std::path::Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn make_with_cc_rcc_gcc() {
    let env = TestEnv::new();
    many_sources(&env, 6);
    let cc = format!("CC={} gcc", env.rcc_bin().display());
    run_ok(env.command("make").args(["-j2", &cc]));
    run_ok(env.command("make").arg("clean"));
    run_ok(env.command("make").args(["-j2", &cc]));
    assert_eq!(env.hits(), 6, "{}", env.log());
}

#[test]
fn masquerade_shims_first_on_path() {
    let env = TestEnv::new();
    many_sources(&env, 4);
    let shims = env.root.join("shims");
    env.rcc_ok(&["shims", "install", shims.to_str().unwrap()]);
    for name in ["cc", "c++", "gcc", "g++", "clang", "clang++"] {
        assert!(shims.join(name).exists(), "{name} shim");
    }
    // A second shims directory and a link chain must not loop either.
    let shims2 = env.root.join("shims2");
    std::fs::create_dir_all(&shims2).unwrap();
    std::os::unix::fs::symlink(shims.join("gcc"), shims2.join("gcc")).unwrap();
    let path = format!("{}:{}", shims2.display(), path_with(&shims));
    run_ok(env.command("make").args(["-j2", "CC=gcc"]).env("PATH", &path));
    run_ok(env.command("make").arg("clean"));
    run_ok(env.command("make").args(["-j2", "CC=gcc"]).env("PATH", &path));
    assert_eq!(env.hits(), 4, "{}", env.log());
    run_ok(env.command("gcc").args(["-O1", "-Iinclude", "-c", "src/f2.c", "-o", "plain.o"]));
    assert_eq!(env.read("obj/f2.o"), env.read("plain.o"));
}

#[test]
fn rcc_alone_as_cc_uses_cc_and_cxx_by_source_language() {
    assert!(have("clang++"), "clang++ is required (scripts/install-deps installs clang)");
    let mut env = TestEnv::new();
    many_sources(&env, 3);
    let rcc = env.rcc_bin().display().to_string();
    run_ok(env.command("make").args(["-j2", &format!("CC={rcc}")]));
    run_ok(env.command("cc").args(["-O1", "-Iinclude", "-c", "src/f1.c", "-o", "plain.o"]));
    assert_eq!(env.read("obj/f1.o"), env.read("plain.o"));
    assert_eq!(env.counter("misses"), 3, "{}", env.log());
    // RCC_CXX names clang++: a C++ source goes to it (not to g++), a C source still to cc (gcc here).
    env.set_env("RCC_CXX", "clang++");
    env.write("x.cpp", "#include <string>\nstd::string hello() { return \"hello\"; }\n");
    env.rcc_ok(&["-c", "x.cpp", "-o", "x.o"]);
    run_ok(env.command("clang++").args(["-c", "x.cpp", "-o", "by-clang.o"]));
    run_ok(env.command("g++").args(["-c", "x.cpp", "-o", "by-gcc.o"]));
    assert_ne!(env.read("by-clang.o"), env.read("by-gcc.o"), "the two compilers' objects tell them apart");
    assert_eq!(env.read("x.o"), env.read("by-clang.o"), "a C++ source is compiled by RCC_CXX (clang++)");
    env.write("y.c", "int twice(int x) { return 2 * x; }\n");
    env.rcc_ok(&["-c", "y.c", "-o", "y.o"]);
    run_ok(env.command("cc").args(["-c", "y.c", "-o", "y-by-cc.o"]));
    run_ok(env.command("clang").args(["-c", "y.c", "-o", "y-by-clang.o"]));
    assert_ne!(env.read("y-by-cc.o"), env.read("y-by-clang.o"), "cc is not clang here");
    assert_eq!(env.read("y.o"), env.read("y-by-cc.o"), "a C source is compiled by RCC_CC (default cc)");
    assert_eq!(env.counter("misses"), 5, "{}", env.log());
}

fn cmake_project(env: &TestEnv) {
    many_sources(env, 5);
    env.write(
        "src/app.cpp",
        "#include <iostream>\nextern \"C\" int f0(void);\nint main() { std::cout << f0() << std::endl; }\n",
    );
    env.write(
        "CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.16)\nproject(demo C CXX)\nfile(GLOB SRCS src/f*.c)\n\
         add_library(funcs STATIC ${SRCS})\ntarget_include_directories(funcs PUBLIC include)\n\
         add_executable(app src/app.cpp)\ntarget_link_libraries(app funcs)\n",
    );
}

fn cmake_twice(generator: &str) {
    assert!(have("cmake"), "cmake is required (scripts/install-deps installs it)");
    let env = TestEnv::new();
    cmake_project(&env);
    let rcc = env.rcc_bin().display().to_string();
    for build in ["build1", "build2"] {
        run_ok(env.command("cmake").args([
            "-S",
            ".",
            "-B",
            build,
            "-G",
            generator,
            &format!("-DCMAKE_C_COMPILER_LAUNCHER={rcc}"),
            &format!("-DCMAKE_CXX_COMPILER_LAUNCHER={rcc}"),
        ]));
        run_ok(env.command("cmake").args(["--build", build, "-j", "2"]));
        let out = run_ok(&mut std::process::Command::new(env.proj.join(build).join("app")));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "100\n");
    }
    // build2 is another directory: objects have other paths, but without -g nothing embeds them.
    assert_eq!(env.hits(), 6, "second build directory is all hits\n{}", env.log());
    run_ok(env.command("cmake").args(["--build", "build1", "--target", "clean"]));
    run_ok(env.command("cmake").args(["--build", "build1", "-j", "2"]));
    assert_eq!(env.hits(), 12, "{}", env.log());
}

#[test]
fn cmake_launcher_with_makefiles() {
    cmake_twice("Unix Makefiles");
}

#[test]
fn cmake_launcher_with_ninja() {
    assert!(have("ninja"), "ninja is required (scripts/install-deps installs it)");
    cmake_twice("Ninja");
}

/// "rcc never calls itself … and known wrappers (ccache, sccache, distcc, icecc)": a masquerade directory of
/// other wrappers (as /usr/lib/ccache is) between rcc's shims and the real compilers. Each fake wrapper
/// records that it ran and fails; rcc must skip them and run the real compiler.
#[test]
fn other_compiler_wrappers_on_path_are_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    many_sources(&env, 2);
    let shims = env.root.join("shims");
    env.rcc_ok(&["shims", "install", shims.to_str().unwrap()]);
    let wrappers = env.root.join("wrappers");
    std::fs::create_dir_all(&wrappers).unwrap();
    let record = env.root.join("wrapper-calls.log");
    for (wrapper, compiler) in [("ccache", "gcc"), ("sccache", "cc"), ("distcc", "g++"), ("icecc", "clang")] {
        let script = wrappers.join(wrapper);
        std::fs::write(&script, format!("#!/bin/sh\necho \"{wrapper} $*\" >> '{}'\nexit 1\n", record.display()))
            .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(wrapper, wrappers.join(compiler)).unwrap();
    }
    let path = format!("{}:{}", shims.display(), path_with(&wrappers));
    // Through the shims (make's CC=gcc), by name, and by the path of a wrapper's link.
    run_ok(env.command("make").args(["-j2", "CC=gcc"]).env("PATH", &path));
    env.write("x.cpp", "int triple(int x) { return 3 * x; }\n");
    env.write("y.c", "int square(int x) { return x * x; }\n");
    run_ok(env.command(env.rcc_bin()).env("PATH", &path).args(["g++", "-c", "x.cpp", "-o", "x.o"]));
    run_ok(env.command(env.rcc_bin()).env("PATH", &path).args(["clang", "-c", "y.c", "-o", "y-clang.o"]));
    let via_link = wrappers.join("cc");
    run_ok(env.command(env.rcc_bin()).env("PATH", &path).args([via_link.to_str().unwrap(), "-c", "y.c", "-o", "y.o"]));
    assert!(!record.exists(), "a wrapper ran: {}", std::fs::read_to_string(&record).unwrap_or_default());
    assert_eq!(env.counter("misses"), 5, "every compile went through rcc\n{}", env.log());
    // The objects are the real compilers'.
    run_ok(env.command("gcc").args(["-O1", "-Iinclude", "-c", "src/f1.c", "-o", "plain.o"]));
    assert_eq!(env.read("obj/f1.o"), env.read("plain.o"));
    run_ok(env.command("g++").args(["-c", "x.cpp", "-o", "plain.o"]));
    assert_eq!(env.read("x.o"), env.read("plain.o"));
    run_ok(env.command("clang").args(["-c", "y.c", "-o", "plain.o"]));
    assert_eq!(env.read("y-clang.o"), env.read("plain.o"));
    run_ok(env.command("cc").args(["-c", "y.c", "-o", "plain.o"]));
    assert_eq!(env.read("y.o"), env.read("plain.o"));
}
