//! The test environment: each case gets a temporary project directory, its own cache directory (so its own
//! daemon), config path and log, and finds the built `rcc` beside the test executable.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Directory holding the built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RCC_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/integration-<hash> -> target/<profile>
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target directory").to_owned();
    assert!(
        dir.join("rcc").is_file() && dir.join("rccd").is_file(),
        "rcc and rccd must be built first (cargo build --bins); looked in {}",
        dir.display()
    );
    dir
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

/// A test's world.
pub struct TestEnv {
    _root: tempfile::TempDir,
    /// Root of everything the test owns.
    pub root: PathBuf,
    /// The project directory (working directory of commands).
    pub proj: PathBuf,
    /// RCC_DIR.
    pub cache: PathBuf,
    extra_env: Vec<(String, String)>,
}

impl TestEnv {
    /// A fresh environment.
    pub fn new() -> TestEnv {
        let root_dir = tempfile::Builder::new().prefix("rcc-test-").tempdir().expect("temp dir");
        let root = root_dir.path().canonicalize().expect("canonical temp dir");
        let proj = root.join("proj");
        fs::create_dir_all(&proj).expect("project dir");
        TestEnv { _root: root_dir, cache: root.join("cache"), proj, root, extra_env: Vec::new() }
    }

    /// Sets an environment variable for every command of this environment.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// Path of the rcc binary.
    pub fn rcc_bin(&self) -> PathBuf {
        bin_dir().join("rcc")
    }

    /// A command with this environment's variables, run in the project directory.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.proj)
            .env("RCC_DIR", &self.cache)
            .env("RCC_CONFIG", self.root.join("config.toml"))
            .env("RCC_LOG", self.root.join("rcc.log"))
            .env("RCC_IDLE_TIMEOUT", "60")
            .env_remove("RCC_DISABLE")
            .env_remove("RCC_SOCKET")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("CPATH")
            .env("LC_ALL", "C");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `rcc <args>` in the project directory.
    pub fn rcc(&self, args: &[&str]) -> Output {
        self.command(self.rcc_bin()).args(args).output().expect("running rcc")
    }

    /// `rcc <args>`, asserting success.
    pub fn rcc_ok(&self, args: &[&str]) -> Output {
        let out = self.rcc(args);
        assert!(out.status.success(), "rcc {args:?} failed:\n{}", describe(&out));
        out
    }

    /// Writes a file under the project directory, creating directories.
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.proj.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("parent dir");
        }
        fs::write(&path, content).expect("writing a project file");
        settle(&path);
    }

    /// Reads a file under the project directory.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.proj.join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// `rcc stats --json`, parsed.
    pub fn stats(&self) -> serde_json::Value {
        let out = self.rcc_ok(&["stats", "--json"]);
        serde_json::from_slice(&out.stdout).expect("stats JSON")
    }

    /// A counter from the stats (`hits_direct`, `misses`, …).
    pub fn counter(&self, name: &str) -> u64 {
        self.stats()["counters"][name].as_u64().unwrap_or(0)
    }

    /// Number of hits of either mode.
    pub fn hits(&self) -> u64 {
        let s = self.stats();
        s["counters"]["hits_direct"].as_u64().unwrap_or(0) + s["counters"]["hits_preprocessor"].as_u64().unwrap_or(0)
    }

    /// An uncacheable counter by reason name.
    pub fn uncacheable(&self, reason: &str) -> u64 {
        self.stats()["counters"]["uncacheable"][reason].as_u64().unwrap_or(0)
    }

    /// Zeroes the statistics.
    pub fn zero_stats(&self) {
        self.rcc_ok(&["stats", "--zero"]);
    }

    /// The log written so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("rcc.log")).unwrap_or_default()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = self.command(self.rcc_bin()).arg("--stop-daemon").output();
    }
}

/// Waits until the file-timestamp clock has moved past the file's last change (a few milliseconds at
/// most). rcc refuses to store a result when an input changed at or after the compile started, which a
/// file written in the same clock tick as the compile looks like.
pub fn settle(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(path) else { return };
    let changed = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime fills the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        let now = ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128;
        if now > changed || std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command and asserts success.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", describe(&out));
    out
}

/// A process stopped with SIGSTOP until this is dropped (SIGCONT).
pub struct Stopped(pub u32);

impl Stopped {
    pub fn stop(pid: u32) -> Stopped {
        // SAFETY: kill(2) of a process this test started.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0, "SIGSTOP {pid}");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// A child process killed (and reaped) if the test ends before it does.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs a test body once with gcc and once with clang (as `#[test]`s named `<name>_gcc`, `<name>_clang`).
#[macro_export]
macro_rules! with_compilers {
    ($name:ident, |$env:ident, $cc:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn case($env: &mut $crate::support::TestEnv, $cc: &str) $body
            #[test]
            fn gcc() {
                case(&mut $crate::support::TestEnv::new(), "gcc");
            }
            #[test]
            fn clang() {
                assert!($crate::support::have("clang"), "clang is required (scripts/install-deps installs it)");
                case(&mut $crate::support::TestEnv::new(), "clang");
            }
        }
    };
}

/// Runs `rcc gcc ARGS`, then plain `gcc ARGS`, in `env`'s project; the object (`-o`) each wrote.
pub fn rcc_and_gcc(env: &TestEnv, args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut cmd = env.command(env.rcc_bin());
    run_ok(cmd.arg("gcc").args(args));
    let obj = args.iter().position(|a| *a == "-o").map(|i| args[i + 1]).expect("-o in the args");
    let rcc = env.read(obj);
    run_ok(env.command("gcc").args(args));
    (rcc, env.read(obj))
}
