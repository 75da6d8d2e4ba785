//! Anything that can change the output changes the key: each mutation below must miss, and the object
//! produced must be the one a plain compile gives.

use crate::hits::sample;
use crate::support::{run_ok, TestEnv};
use crate::with_compilers;

/// Compiles through rcc and asserts whether it hit, and that the object equals a plain compile's.
fn compile_expect(env: &TestEnv, cc: &str, args: &[&str], hit: bool) {
    let before = env.hits();
    let mut full = vec![cc];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "out.o"]);
    env.rcc_ok(&full);
    let after = env.hits();
    assert_eq!(
        after - before,
        u64::from(hit),
        "expected a {} for {args:?}\n{}",
        if hit { "hit" } else { "miss" },
        env.log()
    );
    run_ok(env.command(cc).args(args).args(["-o", "plain.o"]));
    assert_eq!(env.read("out.o"), env.read("plain.o"), "object differs from a plain compile for {args:?}");
}

with_compilers!(changed_header_misses, |env, cc| {
    sample(env);
    let args = ["-c", "src/util.c", "-Iinclude"];
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
    env.write("include/config.h", "#define FACTOR 4\n");
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
});

with_compilers!(changed_define_and_flag_miss, |env, cc| {
    sample(env);
    compile_expect(env, cc, &["-c", "src/util.c", "-Iinclude"], false);
    compile_expect(env, cc, &["-c", "src/util.c", "-Iinclude", "-DEXTRA=1"], false);
    compile_expect(env, cc, &["-c", "src/util.c", "-Iinclude", "-DEXTRA=2"], false);
    compile_expect(env, cc, &["-c", "src/util.c", "-Iinclude", "-O2"], false);
    compile_expect(env, cc, &["-c", "src/util.c", "-Iinclude", "-O2"], true);
});

with_compilers!(new_shadowing_header_in_an_existing_directory_misses, |env, cc| {
    sample(env);
    env.write("first/placeholder.txt", "an existing include directory that shadows nothing yet\n");
    let args = ["-c", "src/util.c", "-Ifirst", "-Iinclude"];
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
    // config.h is included as "config.h" from include/util.h: a new one in first/ does not shadow it
    // (quote includes search the includer's directory first) but util.h in first/ does.
    env.write("first/util.h", "#include \"config.h\"\nint scale(int x);\nint shadowed = 1;\n");
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
});

with_compilers!(new_header_beside_the_source_shadows_a_system_header, |env, cc| {
    env.write("src/a.c", "#include \"limits.h\"\nint big(void) { return INT_MAX; }\n");
    let args = ["-c", "src/a.c"];
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
    env.write("src/limits.h", "#define INT_MAX 7\n");
    compile_expect(env, cc, &args, false);
});

with_compilers!(cpath_change_misses, |env, cc| {
    sample(env);
    env.write("alt/config.h", "#define FACTOR 9\n");
    let args = ["-c", "src/util.c", "-iquote", "include"];
    compile_expect(env, cc, &args, false);
    // CPATH adds a directory searched for <> and "" after -iquote; the key must still change.
    env.set_env("CPATH", &env.proj.join("alt").display().to_string());
    let misses = env.counter("misses");
    // A miss, and the object is what the compiler gives under the new CPATH (compile_expect's plain compile
    // runs with this environment's CPATH too).
    compile_expect(env, cc, &args, false);
    assert_eq!(env.counter("misses"), misses + 1, "CPATH change is a miss\n{}", env.log());
    // A header found only through CPATH: another CPATH, another header, another object.
    env.write("one/factor.h", "#define SCALE 3\n");
    env.write("two/factor.h", "#define SCALE 9\n");
    env.write("src/scaled.c", "#include <factor.h>\nint scaled(int x) { return x * SCALE; }\n");
    let args = ["-c", "src/scaled.c"];
    env.set_env("CPATH", &env.proj.join("one").display().to_string());
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
    let with_one = env.read("out.o");
    env.set_env("CPATH", &env.proj.join("two").display().to_string());
    let misses = env.counter("misses");
    compile_expect(env, cc, &args, false);
    assert_eq!(env.counter("misses"), misses + 1, "{}", env.log());
    assert_ne!(env.read("out.o"), with_one, "the object is the one of the new CPATH's header");
});

with_compilers!(response_file_change_misses, |env, cc| {
    sample(env);
    env.write("flags.rsp", "-Iinclude -DA=1\n");
    compile_expect(env, cc, &["-c", "src/util.c", "@flags.rsp"], false);
    compile_expect(env, cc, &["-c", "src/util.c", "@flags.rsp"], true);
    env.write("flags.rsp", "-Iinclude -DA=2\n");
    compile_expect(env, cc, &["-c", "src/util.c", "@flags.rsp"], false);
    // Nested response files.
    env.write("outer.rsp", "@flags.rsp -O1\n");
    compile_expect(env, cc, &["-c", "src/util.c", "@outer.rsp"], false);
    compile_expect(env, cc, &["-c", "src/util.c", "@outer.rsp"], true);
    env.write("flags.rsp", "-Iinclude -DA=3\n");
    compile_expect(env, cc, &["-c", "src/util.c", "@outer.rsp"], false);
});

#[test]
fn compiler_swapped_behind_a_shim_of_the_same_name_misses() {
    let env = TestEnv::new();
    sample(&env);
    let bin = env.root.join("toolbin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("cc");
    let gcc = which("gcc");
    let clang = which("clang");
    std::os::unix::fs::symlink(&gcc, &link).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let compile = |env: &TestEnv| {
        run_ok(env.command(env.rcc_bin()).env("PATH", &path).args([
            "cc",
            "-c",
            "src/util.c",
            "-Iinclude",
            "-o",
            "out.o",
        ]))
    };
    compile(&env);
    compile(&env);
    assert_eq!(env.hits(), 1);
    let by_gcc = env.read("out.o");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&clang, &link).unwrap();
    compile(&env);
    assert_eq!(env.hits(), 1, "a different compiler behind the same name is a miss\n{}", env.log());
    run_ok(env.command(&clang).args(["-c", "src/util.c", "-Iinclude", "-o", "plain.o"]));
    assert_eq!(env.read("out.o"), env.read("plain.o"), "the object is clang's");
    assert_ne!(env.read("out.o"), by_gcc);
}

fn which(name: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not on PATH"))
        .canonicalize()
        .unwrap()
}

#[test]
fn source_date_epoch_makes_time_macros_cacheable_and_keyed() {
    let mut env = TestEnv::new();
    env.write("stamp.c", "const char *built = __DATE__ \" \" __TIME__;\n");
    let args = ["gcc", "-c", "stamp.c", "-o", "stamp.o"];
    env.rcc_ok(&args);
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 0, "__DATE__ without SOURCE_DATE_EPOCH is never cached");
    assert_eq!(env.uncacheable("time-macros"), 2);
    env.set_env("SOURCE_DATE_EPOCH", "1700000000");
    env.rcc_ok(&args);
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "with SOURCE_DATE_EPOCH it is\n{}", env.log());
    env.set_env("SOURCE_DATE_EPOCH", "1800000000");
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "another SOURCE_DATE_EPOCH is another key");
}

#[test]
fn manifest_made_in_one_checkout_checks_the_other_checkouts_directories() {
    let env = TestEnv::new();
    let a = env.proj.join("a");
    let b = env.proj.join("b");
    for dir in [&a, &b] {
        for (rel, text) in [
            ("include/config.h", "#define FACTOR 3\n"),
            ("include/util.h", "#include \"config.h\"\nint scale(int x);\n"),
            ("src/util.c", "#include \"util.h\"\nint scale(int x) { return x * FACTOR; }\n"),
            ("first/.keep", ""),
        ] {
            std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
            std::fs::write(dir.join(rel), text).unwrap();
        }
    }
    crate::support::settle(&b.join("first/.keep"));
    let args = ["gcc", "-c", "src/util.c", "-Ifirst", "-Iinclude", "-o", "util.o"];
    run_ok(env.command(env.rcc_bin()).current_dir(&a).args(args));
    run_ok(env.command(env.rcc_bin()).current_dir(&b).args(args));
    assert_eq!(env.hits(), 1, "same relative command line in another checkout hits\n{}", env.log());
    // A shadowing header in b's first/ must be seen by the entry made in a.
    std::fs::write(b.join("first/util.h"), "#include \"config.h\"\nint scale(int x);\nint extra;\n").unwrap();
    crate::support::settle(&b.join("first/util.h"));
    run_ok(env.command(env.rcc_bin()).current_dir(&b).args(args));
    assert_eq!(env.hits(), 1, "new header in b/first shadows b/include/util.h");
}

/// Writes the sample project into `dir`.
fn sample_in(dir: &std::path::Path) {
    for (rel, text) in [
        ("include/config.h", "#define FACTOR 3\n"),
        ("include/util.h", "#include \"config.h\"\nint scale(int x);\n"),
        (
            "src/util.c",
            "#include <assert.h>\n#include \"util.h\"\nint scale(int x) { assert(x > 0); return x * FACTOR; }\n",
        ),
    ] {
        std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
        std::fs::write(dir.join(rel), text).unwrap();
        crate::support::settle(&dir.join(rel));
    }
}

#[test]
fn two_checkouts_share_hits_with_a_base_directory() {
    for base in [true, false] {
        let mut env = TestEnv::new();
        if base {
            let proj = env.proj.display().to_string();
            env.set_env("RCC_BASE_DIR", &proj);
        }
        for checkout in ["one", "two"] {
            let work = env.proj.join(checkout).join("work");
            sample_in(&work);
            let src = work.join("src/util.c");
            let inc = format!("-I{}", work.join("include").display());
            run_ok(env.command(env.rcc_bin()).current_dir(&work).args([
                "gcc",
                "-c",
                src.to_str().unwrap(),
                &inc,
                "-g",
                "-O1",
                "-o",
                "util.o",
            ]));
        }
        let two = env.proj.join("two/work");
        if base {
            assert_eq!(env.hits(), 1, "the second checkout hits\n{}", env.log());
            // What the compiler produces there with rcc's command line (paths relative, cwd mapped to .).
            let map = format!("-ffile-prefix-map={}=.", two.display());
            run_ok(env.command("gcc").current_dir(&two).args([
                "-c",
                "src/util.c",
                "-Iinclude",
                "-g",
                "-O1",
                "-o",
                "plain.o",
                &map,
            ]));
            assert_eq!(std::fs::read(two.join("util.o")).unwrap(), std::fs::read(two.join("plain.o")).unwrap());
            let strings = String::from_utf8_lossy(&std::fs::read(two.join("util.o")).unwrap()).into_owned();
            assert!(!strings.contains("/one/"), "nothing of the other checkout's path in the object");
        } else {
            assert_eq!(env.hits(), 0, "without a base directory absolute paths keep checkouts apart");
        }
    }
}

with_compilers!(a_header_that_has_include_probed_for_and_later_appears_misses, |env, cc| {
    env.write(
        "src/probe.c",
        "#if __has_include(\"extra.h\")\n#include \"extra.h\"\n#else\n#define EXTRA 0\n#endif\nint extra(void) { return EXTRA; }\n",
    );
    let args = ["-c", "src/probe.c"];
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
    // The probe found nothing; now it would: no input of the old entry changed, yet the output does.
    env.write("src/extra.h", "#define EXTRA 42\n");
    compile_expect(env, cc, &args, false);
    compile_expect(env, cc, &args, true);
});
