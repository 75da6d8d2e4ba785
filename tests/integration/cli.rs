//! rcc's own command line.

use crate::support::TestEnv;

#[test]
fn help_and_version() {
    let env = TestEnv::new();
    let help = String::from_utf8_lossy(&env.rcc_ok(&["--help"]).stdout).into_owned();
    // Each command has its usage line: the command as typed, then what it does.
    let usage = |command: &str| -> String {
        help.lines()
            .find_map(|l| l.strip_prefix("  ")?.strip_prefix(command)?.strip_prefix(' ').map(str::trim))
            .filter(|what| !what.is_empty())
            .unwrap_or_else(|| panic!("no usage line for `{command}` in:\n{help}"))
            .to_owned()
    };
    assert!(usage("rcc <compiler> [args…]").contains("compile through the cache"), "{help}");
    assert!(usage("rcc [args…]").contains("RCC_CXX") && usage("rcc [args…]").contains("RCC_CC"), "{help}");
    assert!(usage("rcc stats [--json] [--zero]").contains("statistics"), "{help}");
    assert!(usage("rcc cache clear").contains("empty the local cache"), "{help}");
    assert!(usage("rcc config").contains("effective settings"), "{help}");
    assert!(usage("rcc shims install <DIR>").contains("cc, c++, gcc, g++, clang, clang++"), "{help}");
    assert!(usage("rcc --stop-daemon").contains("stop the background daemon"), "{help}");
    assert!(help.lines().any(|l| l.trim() == "rcc --help | --version"), "{help}");
    assert!(help.contains("make CC=\"rcc gcc\" CXX=\"rcc g++\""), "{help}");
    assert!(help.contains("-DCMAKE_C_COMPILER_LAUNCHER=rcc -DCMAKE_CXX_COMPILER_LAUNCHER=rcc"), "{help}");
    // The other spellings give the same text.
    for spelling in [&["-h"][..], &["help"], &[]] {
        assert_eq!(env.rcc_ok(spelling).stdout, help.as_bytes(), "rcc {spelling:?}");
    }
    // And each command it names is one rcc runs.
    let shims = env.root.join("shims");
    for command in
        [&["stats", "--json"][..], &["stats", "--zero"], &["cache", "clear"], &["config"], &["--stop-daemon"]]
    {
        env.rcc_ok(command);
    }
    env.rcc_ok(&["shims", "install", shims.to_str().unwrap()]);
    let version = String::from_utf8_lossy(&env.rcc_ok(&["--version"]).stdout).into_owned();
    assert_eq!(version, format!("rcc {}\n", env!("CARGO_PKG_VERSION")));
    assert_eq!(env.rcc_ok(&["-V"]).stdout, version.as_bytes());
}

#[test]
fn config_shows_values_and_where_they_came_from() {
    let mut env = TestEnv::new();
    std::fs::write(env.root.join("config.toml"), "cache_size = \"2G\"\nidle_timeout = 30\n").unwrap();
    env.set_env("RCC_IDLE_TIMEOUT", "45");
    let out = String::from_utf8_lossy(&env.rcc_ok(&["config"]).stdout).into_owned();
    assert!(out.contains("cache_size   2.0 GiB") && out.contains("(config file"), "{out}");
    assert!(out.contains("45s") && out.contains("(environment RCC_IDLE_TIMEOUT)"), "{out}");
    assert!(out.contains("(environment RCC_DIR)"), "{out}");
    env.set_env("RCC_TOKEN", "rcc_supersecret0123456789");
    let out = String::from_utf8_lossy(&env.rcc_ok(&["config"]).stdout).into_owned();
    assert!(out.contains("token") && !out.contains("supersecret0123456789"), "token masked: {out}");
    std::fs::write(env.root.join("config.toml"), "cache_sise = 1\n").unwrap();
    let bad = env.rcc(&["config"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cache_sise"), "names the bad key");
}

#[test]
fn stats_zero_and_cache_clear() {
    let env = TestEnv::new();
    env.write("a.c", "int a(void) { return 1; }\n");
    env.rcc_ok(&["gcc", "-c", "a.c"]);
    env.rcc_ok(&["gcc", "-c", "a.c"]);
    let text = String::from_utf8_lossy(&env.rcc_ok(&["stats"]).stdout).into_owned();
    assert!(text.contains("cache hits (direct)") && text.contains("hit rate"), "{text}");
    assert!(text.contains("50.0 %"), "one hit, one miss: {text}");
    assert!(env.stats()["cache_entries"].as_u64().unwrap() >= 2);
    env.zero_stats();
    assert_eq!(env.hits(), 0);
    env.rcc_ok(&["cache", "clear"]);
    assert_eq!(env.stats()["cache_entries"], 0);
    env.rcc_ok(&["gcc", "-c", "a.c"]);
    assert_eq!(env.counter("misses"), 1, "cleared cache misses");
}

#[test]
fn unknown_command_is_a_clear_error() {
    let env = TestEnv::new();
    let out = env.rcc(&["stats", "--bogus"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
