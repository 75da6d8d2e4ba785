//! The local path against hostile or careless conditions: another local user at the daemon's socket or
//! posing as the daemon, store files moved between keys, a header created right after a compile, a daemon
//! out of file descriptors, and the privacy of what the cache holds.

use crate::support::{describe, rcc_and_gcc, run_ok, settle, TestEnv};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

fn the_daemon_log(env: &TestEnv) -> String {
    env.log()
}

/// Runs a tiny Python program as `uid` (setpriv), returning its output.
fn python_as(uid: u32, program: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    assert!(crate::support::have("setpriv"), "setpriv (util-linux) is required to act as another user");
    Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()])
        .args(["/usr/bin/python3", "-c", program])
        .args(args)
        .output()
        .expect("running python3 as another user")
}

#[test]
fn a_header_created_right_after_a_compile_is_never_shadowed_by_the_stored_result() {
    let env = TestEnv::new();
    // Ten tries, each with its own directories (its own keys): the header appears as soon as the first
    // compile returns, while the daemon may still be storing its result.
    for i in 0..10 {
        let (inc1, inc2) = (format!("t{i}/inc1"), format!("t{i}/inc2"));
        env.write(&format!("{inc2}/a.h"), "#define VALUE 2\n");
        std::fs::create_dir_all(env.proj.join(&inc1)).unwrap();
        let src = format!("t{i}/s.c");
        env.write(&src, "#include \"a.h\"\nint value(void) { return VALUE; }\n");
        let obj = format!("t{i}/s.o");
        let args = ["-O2", "-I", &inc1, "-I", &inc2, "-c", &src, "-o", &obj];
        run_ok(env.command(env.rcc_bin()).arg("gcc").args(args));
        std::fs::write(env.proj.join(&inc1).join("a.h"), "#define VALUE 1\n").unwrap();
        let (rcc, gcc) = rcc_and_gcc(&env, &args);
        assert_eq!(rcc, gcc, "try {i}: the new inc1/a.h shadows inc2/a.h; the old object was served");
    }
    assert_eq!(env.hits(), 0, "no try hit: {:#}", env.stats());
}

#[test]
fn store_files_swapped_between_keys_are_caught_not_served() {
    let env = TestEnv::new();
    env.write("a.c", "int a(void) { return 1; }\n");
    env.write("b.c", "int b(void) { return 2; }\n");
    for src in ["a.c", "b.c"] {
        run_ok(env.command(env.rcc_bin()).args(["gcc", "-O2", "-c", src, "-o", &src.replace(".c", ".o")]));
    }
    // (Statistics wait for stores in flight: both results are on disk after this.)
    assert_eq!(env.counter("stored"), 2);
    // Every result entry on disk moves to the next one's place.
    let results: Vec<PathBuf> = walk(&env.cache.join("store/r"));
    assert_eq!(results.len(), 2, "two results stored: {results:?}");
    let contents: Vec<Vec<u8>> = results.iter().map(|p| std::fs::read(p).unwrap()).collect();
    for (i, path) in results.iter().enumerate() {
        std::fs::write(path, &contents[(i + 1) % contents.len()]).unwrap();
    }
    env.zero_stats();
    for src in ["a.c", "b.c"] {
        let obj = src.replace(".c", ".o");
        let (rcc, gcc) = rcc_and_gcc(&env, &["-O2", "-c", src, "-o", &obj]);
        assert_eq!(rcc, gcc, "{obj} is its own, not the other unit's");
    }
    let stats = env.stats()["counters"].clone();
    assert_eq!(stats["errors"]["corrupt-entry"], 2, "both swapped entries counted: {stats:#}");
    assert_eq!(env.hits(), 0);
}

/// Every file under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn what_the_cache_holds_is_private_whatever_the_umask() {
    let env = TestEnv::new();
    env.write("a.c", "int a(void) { return 1; }\n");
    // A group-shared setup: umask 000, the cache directory made group- and world-writable beforehand.
    std::fs::create_dir_all(&env.cache).unwrap();
    std::fs::set_permissions(&env.cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = env.command("sh");
    cmd.args(["-c", "umask 000 && exec \"$0\" gcc -O2 -c a.c -o a.o"]).arg(env.rcc_bin());
    run_ok(&mut cmd);
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.cache), 0o700, "the cache directory");
    let socket = walk(&env.cache).into_iter().find(|p| p.extension().is_some_and(|e| e == "sock"));
    let socket = socket.expect("the daemon's socket is in the cache directory");
    assert_eq!(mode(&socket) & 0o077, 0, "the socket is its owner's alone");
    // (Statistics wait for stores in flight.)
    assert_eq!(env.counter("stored"), 1);
    let store = walk(&env.cache.join("store"));
    assert!(!store.is_empty());
    for file in &store {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert_eq!(mode(file.parent().unwrap()), 0o700, "{}", file.parent().unwrap().display());
    }
    // The object itself follows the user's umask, as gcc's would.
    assert_eq!(mode(&env.proj.join("a.o")), 0o666);
}

/// A daemon of this test's environment started and answering, and its socket path.
fn started_daemon(env: &TestEnv) -> PathBuf {
    env.write("a.c", "int a(void) { return 1; }\n");
    run_ok(env.command(env.rcc_bin()).args(["gcc", "-O2", "-c", "a.c"]));
    walk(&env.cache).into_iter().find(|p| p.extension().is_some_and(|e| e == "sock")).expect("the daemon's socket")
}

#[test]
fn another_local_user_reaching_the_socket_is_refused() {
    let env = TestEnv::new();
    let socket = started_daemon(&env);
    let entries = env.stats()["cache_entries"].as_u64().unwrap();
    assert!(entries > 0);
    // As if the socket had been left reachable (a group-shared directory under umask 002): open the way.
    for dir in [&env.root, &env.cache] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Another user sends a well-formed request to clear the cache.
    let request = env.root.join("clear.frame");
    std::fs::write(&request, rcc_proto::frame::encode(&rcc_proto::ipc::Request::ClearCache).unwrap()).unwrap();
    std::fs::set_permissions(&request, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = python_as(
        NOBODY,
        "import socket, sys\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.connect(sys.argv[1])\n\
         s.settimeout(5)\n\
         try:\n\
         \x20   s.sendall(open(sys.argv[2], 'rb').read())\n\
         \x20   print(len(s.recv(100)))\n\
         except (BrokenPipeError, ConnectionResetError):\n\
         \x20   print(0)",
        &[socket.as_os_str(), request.as_os_str()],
    );
    assert!(out.status.success(), "the other user could connect: {}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "closed unanswered: {}", describe(&out));
    assert_eq!(env.stats()["cache_entries"].as_u64().unwrap(), entries, "the cache was not cleared");
    assert!(the_daemon_log(&env).contains("refused a connection from another user"), "{}", the_daemon_log(&env));
}

#[test]
fn a_daemon_of_another_user_is_not_believed() {
    let env = TestEnv::new();
    env.write("a.c", "int a(void) { return 1; }\n");
    // Another user listens where the wrapper looks for its daemon and answers every request with a "hit"
    // that prints their message and writes no object.
    let theirs = env.root.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::set_permissions(&env.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let socket = theirs.join("rccd.sock");
    let answer = theirs.join("answer.frame");
    let mut frames = rcc_proto::frame::encode(&rcc_proto::ipc::Response::Accepted).unwrap();
    frames.extend(
        rcc_proto::frame::encode(&rcc_proto::ipc::Response::Hit {
            stdout: b"PWNED\n".to_vec(),
            stderr: Vec::new(),
            exit_code: 0,
            forced_color: false,
        })
        .unwrap(),
    );
    std::fs::write(&answer, frames).unwrap();
    let mut fake = Command::new("setpriv")
        .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()])
        .args([
            "/usr/bin/python3",
            "-c",
            "import socket, sys, os\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(16)\n\
             answer = open(sys.argv[2], 'rb').read()\n\
             print('ready', flush=True)\n\
             while True:\n\
             \x20   c, _ = s.accept()\n\
             \x20   c.recv(1 << 20)\n\
             \x20   c.sendall(answer)\n\
             \x20   c.close()",
        ])
        .arg(&socket)
        .arg(&answer)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the other user's fake daemon");
    let mut ready = [0u8; 5];
    std::io::Read::read_exact(fake.stdout.as_mut().unwrap(), &mut ready).expect("the fake daemon listens");
    let out = env
        .command(env.rcc_bin())
        .env("RCC_SOCKET", &socket)
        .env("RCC_START_TIMEOUT", "500")
        .args(["gcc", "-O2", "-c", "a.c", "-o", "a.o"])
        .output()
        .unwrap();
    let _ = fake.kill();
    let _ = fake.wait();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PWNED"), "the fake daemon's answer was replayed");
    let rcc = env.read("a.o");
    run_ok(env.command("gcc").args(["-O2", "-c", "a.c", "-o", "a.o"]));
    assert_eq!(rcc, env.read("a.o"), "compiled by gcc itself");
}

#[test]
fn without_a_home_rcc_uses_no_shared_directory_and_compiles_plainly() {
    let env = TestEnv::new();
    env.write("a.c", "int a(void) { return 1; }\n");
    // A uid with no passwd entry and no HOME (a service account, a container user): no cache directory
    // can be found. rcc must not fall back to a shared place another user could have prepared.
    const HOMELESS: u32 = 54321;
    std::fs::set_permissions(&env.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&env.proj, std::fs::Permissions::from_mode(0o777)).unwrap();
    let shared = std::env::temp_dir().join("rcc");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let before = mtime(&shared);
    let out = env
        .command("setpriv")
        .args([format!("--reuid={HOMELESS}"), format!("--regid={HOMELESS}"), "--clear-groups".into(), "--".into()])
        .arg(env.rcc_bin())
        .args(["gcc", "-O2", "-c", "a.c", "-o", "a.o"])
        .env_remove("RCC_DIR")
        .env_remove("RCC_CONFIG")
        .env_remove("RCC_LOG")
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let rcc = env.read("a.o");
    run_ok(env.command("gcc").args(["-O2", "-c", "a.c", "-o", "a.o"]));
    assert_eq!(rcc, env.read("a.o"));
    assert_eq!(mtime(&shared), before, "{} was created or written to", shared.display());
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon's stat");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state field (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn daemon_pid_of(env: &TestEnv) -> i32 {
    let out = run_ok(Command::new("pgrep").args(["-x", "rccd"]));
    let ours = format!("RCC_DIR={}", env.cache.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.split(|b| *b == 0).any(|kv| kv == ours.as_bytes()))
        })
        .expect("our daemon is running")
}

#[test]
fn a_daemon_out_of_file_descriptors_neither_spins_nor_hangs_the_build() {
    let env = TestEnv::new();
    env.write("a.c", "int a(void) { return 1; }\n");
    env.write("b.c", "int b(void) { return 2; }\n");
    // The daemon starts with room for 48 file descriptors (it inherits the limit from the wrapper).
    run_ok(env.command("prlimit").args(["--nofile=48:48", "--"]).arg(env.rcc_bin()).args(["gcc", "-c", "a.c"]));
    let pid = daemon_pid_of(&env);
    let socket = walk(&env.cache).into_iter().find(|p| p.extension().is_some_and(|e| e == "sock")).expect("the socket");
    // Idle connections (a leak, or another process of the user's) take every descriptor and more.
    let idle: Vec<UnixStream> = (0..80).map(|_| UnixStream::connect(&socket).expect("connecting")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let spent = cpu_ticks(pid) - before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(spent < hz / 2, "the daemon spun at the descriptor limit: {spent} ticks of CPU in 3 s (hz {hz})");
    // A compile meanwhile ends, correct, in bounded time.
    let started = Instant::now();
    let mut child = env
        .command(env.rcc_bin())
        .args(["gcc", "-O2", "-c", "b.c", "-o", "b.o"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the compile hung behind a daemon out of descriptors");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let took = started.elapsed();
    let rcc = env.read("b.o");
    run_ok(env.command("gcc").args(["-O2", "-c", "b.c", "-o", "b.o"]));
    assert_eq!(rcc, env.read("b.o"));
    assert!(took < Duration::from_secs(30), "bounded: {took:?}");
    drop(idle);
    // Once the idle connections are gone, the daemon serves again.
    settle(&env.proj.join("a.c"));
    run_ok(env.command(env.rcc_bin()).args(["gcc", "-c", "a.c"]));
}

#[test]
fn an_unwritable_scratch_directory_gives_the_compilers_own_result() {
    let env = TestEnv::new();
    env.write("include/config.h", "#define N 3\n");
    env.write("src/main.c", "#include \"config.h\"\nint main(void) { return N; }\n");
    // The cache directory is the other user's own, but its tmp/ was left by root (a `sudo rcc` once).
    for dir in [&env.root, &env.proj] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(env.cache.join("tmp")).unwrap();
    std::fs::write(env.cache.join("tmp/left-by-root"), "").unwrap();
    std::fs::set_permissions(env.cache.join("tmp"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&env.cache, Some(NOBODY), Some(NOBODY)).unwrap();
    let home = env.root.join("home-nobody");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let out_dir = env.proj.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::os::unix::fs::chown(&out_dir, Some(NOBODY), Some(NOBODY)).unwrap();
    assert_eq!(std::fs::metadata(env.cache.join("tmp")).unwrap().uid(), 0);
    for round in 0..2 {
        let mut cmd = env.command("setpriv");
        cmd.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into(), "--".into()])
            .arg(env.rcc_bin())
            .args(["gcc", "-Iinclude", "-c", "src/main.c", "-o", "out/main.o"])
            .env("HOME", &home)
            .env("RCC_LOG", home.join("rcc.log"));
        let built = run_ok(&mut cmd);
        assert!(built.stderr.is_empty(), "round {round}: nothing extra printed: {}", describe(&built));
        let rcc = env.read("out/main.o");
        run_ok(env.command("gcc").args(["-Iinclude", "-c", "src/main.c", "-o", "out/main.o"]));
        assert_eq!(rcc, env.read("out/main.o"), "round {round}: gcc's object");
    }
}
