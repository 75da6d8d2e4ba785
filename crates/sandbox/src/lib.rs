//! `rcc-sandbox`: the hermetic sandbox a pool worker runs one remote compile action in. Depends on
//! rcc-fs (link resolution), seccompiler and libc; never on tokio. Start reading at [`run`].
//!
//! A [`SandboxSpec`] goes in, a [`SandboxOutcome`] comes out ([`run`]). Inside, the action sees:
//! - a fresh mount namespace whose root is an empty, read-only tmpfs holding only the [`Mount`]s of the spec
//!   (the toolchain, see [`toolchain_mounts`], and the action's inputs, read-only), its work directory
//!   (writable), a private `/tmp` (a tmpfs bounded by the output limit, discarded afterwards), a minimal
//!   `/dev` (null, zero, full, random, urandom, tty) and a `/proc` of its own PID namespace;
//! - private PID, network, IPC, UTS, cgroup and user namespaces: the action is PID 2 and sees no host
//!   process, has no network device but a loopback of its own, and cannot create further user namespaces;
//! - a seccomp filter ([`seccomp`]) under which `socket`/`socketpair` for anything but `AF_UNIX`, `ptrace`,
//!   `mount`, `unshare`, `setns`, `bpf`, `io_uring_*` and other syscalls a compiler never needs fail with
//!   `EPERM`, so an attempt shows up as an error message in the action's stderr;
//! - resource limits ([`limits`]): CPU time, address space, file size, processes, plus a wall-clock timeout
//!   and a cap on captured stdout/stderr enforced by the worker (`supervise.rs`);
//! - an environment holding only [`SandboxSpec::env`].
//!
//! # Why bubblewrap
//! Namespaces and mounts are set up by [bubblewrap](https://github.com/containers/bubblewrap) (`bwrap`, the
//! Debian package `bubblewrap`), the tool Flatpak and GNOME's thumbnailers rely on: small, audited, in every
//! distribution, and it gets the fiddly parts right (pivot_root into a tmpfs, unmounting the old root,
//! dropping capabilities, `PR_SET_NO_NEW_PRIVS`, `--die-with-parent`, a reaping PID 1). It measured about
//! 6.5 ms a call here. Alternatives weighed: the `hakoniwa` crate (a Rust library doing the same in-process)
//! would spare the external binary, but it forks from a multi-threaded tokio process and is far younger;
//! a home-made `unshare`/`pivot_root` sequence would be the riskiest of all. The seccomp program is compiled
//! by rust-vmm's `seccompiler` (Firecracker's filter compiler) and handed to bwrap as BPF bytes
//! (`--add-seccomp-fd`), so bwrap installs it as the very last step before `execve` of the action.
//!
//! # Privileges
//! When the worker runs as root, bwrap is started as the unprivileged [`SandboxSpec::user`] (by default
//! `nobody`) and builds its namespaces in a user namespace of that user: the action holds no capability
//! anywhere and, unlike root, is subject to `RLIMIT_NPROC` (the kernel exempts real root from it). Every
//! mount source must then be reachable by that user (its parent directories searchable, files readable);
//! the work directory is handed to it (`chown`), so outputs belong to it. A worker with several slots should
//! give each slot a uid of its own, because `RLIMIT_NPROC` counts the processes of a uid. When the worker
//! is not root the action runs as the worker's uid in a user namespace and the process limit is not set
//! (it would count every task of that uid, the worker's own threads included).
//!
//! [`run`] blocks until the action ends: call it from `spawn_blocking` in async code.

mod bwrap;
pub mod limits;
mod mounts;
pub mod seccomp;
mod supervise;

pub use mounts::toolchain_mounts;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to run one action in the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// A name for the action in logs (e.g. its digest).
    pub name: String,
    /// The program to run, as a path inside the sandbox.
    pub program: PathBuf,
    /// Its arguments (without `argv[0]`, which is [`SandboxSpec::program`]).
    pub args: Vec<OsString>,
    /// The whole environment of the action: the variables that are part of the action's key, nothing else
    /// but `PWD`, which bwrap always sets to [`SandboxSpec::cwd`] (itself part of the action).
    pub env: Vec<(OsString, OsString)>,
    /// What of the host is visible, in order: toolchain, inputs.
    pub mounts: Vec<Mount>,
    /// The action's writable directory.
    pub work_dir: WorkDir,
    /// The working directory of the action, inside the sandbox.
    pub cwd: PathBuf,
    /// Resource limits.
    pub limits: Limits,
    /// Whom the sandbox runs as when the worker is root (see the module doc, "Privileges").
    pub user: SandboxUser,
    /// Set from elsewhere to stop the action (its sandbox is killed within [`CANCEL_POLL`]).
    pub cancel: CancelFlag,
}

/// How often a running sandbox looks at its [`CancelFlag`].
pub const CANCEL_POLL: Duration = Duration::from_millis(50);

/// A flag another thread sets to stop a sandboxed action (a speculative twin lost, the requester left).
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CancelFlag {
    /// Asks the action to stop: its sandbox is killed.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SandboxSpec {
    /// A spec running `program` with the work directory `host` mounted at `inside` (also the cwd), default
    /// limits, no mounts, arguments or environment.
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>, host: PathBuf, inside: PathBuf) -> SandboxSpec {
        SandboxSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            mounts: Vec::new(),
            cwd: inside.clone(),
            work_dir: WorkDir { host, inside },
            limits: Limits::default(),
            user: SandboxUser::default(),
            cancel: CancelFlag::default(),
        }
    }
}

/// A piece of the sandbox's file system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mount {
    /// A host file or directory bound at `inside`.
    Bind {
        /// Path on the host.
        host: PathBuf,
        /// Path inside the sandbox.
        inside: PathBuf,
        /// Whether the action may write to it (inputs and toolchains never are).
        writable: bool,
    },
    /// A symbolic link created inside the sandbox (e.g. `/lib -> usr/lib`, so that paths compiled into the
    /// toolchain, such as the dynamic loader's, resolve as on the host).
    Symlink {
        /// The link's target, as `readlink` returns it.
        target: PathBuf,
        /// Where the link is, inside the sandbox.
        inside: PathBuf,
    },
}

impl Mount {
    /// A read-only bind of `host` at `inside`.
    pub fn read_only(host: impl Into<PathBuf>, inside: impl Into<PathBuf>) -> Mount {
        Mount::Bind { host: host.into(), inside: inside.into(), writable: false }
    }

    /// A path's place inside the sandbox.
    pub fn inside(&self) -> &std::path::Path {
        match self {
            Mount::Bind { inside, .. } | Mount::Symlink { inside, .. } => inside,
        }
    }
}

/// The action's writable directory: where its outputs go.
#[derive(Debug, Clone)]
pub struct WorkDir {
    /// The directory on the host (the worker creates it, empty or with the output directories).
    pub host: PathBuf,
    /// Where the action sees it.
    pub inside: PathBuf,
}

/// The unprivileged identity of the sandbox when the worker runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxUser {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Default for SandboxUser {
    /// `nobody:nogroup` (65534).
    fn default() -> SandboxUser {
        SandboxUser { uid: 65534, gid: 65534 }
    }
}

/// Resource limits of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time, enforced by the worker (the whole sandbox is killed).
    pub wall: Duration,
    /// CPU time of each process (`RLIMIT_CPU`; whole seconds, rounded up).
    pub cpu: Duration,
    /// Address space of each process (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Processes (and threads) the action may have at once, itself included (`RLIMIT_NPROC`; only when the
    /// worker is root, see the module doc).
    pub processes: u64,
    /// Size of each file the action writes (`RLIMIT_FSIZE`), of its `/tmp` and of each of stdout and stderr.
    pub output_bytes: u64,
}

impl Default for Limits {
    /// Generous limits for one compile: 10 min wall, 5 min CPU, 4 GiB, 64 processes, 1 GiB of output.
    fn default() -> Limits {
        Limits {
            wall: Duration::from_secs(600),
            cpu: Duration::from_secs(300),
            memory_bytes: 4 << 30,
            processes: 64,
            output_bytes: 1 << 30,
        }
    }
}

/// How a sandboxed action ended.
#[derive(Debug, Clone)]
pub struct SandboxOutcome {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to stdout (at most [`Limits::output_bytes`]).
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (at most [`Limits::output_bytes`]).
    pub stderr: Vec<u8>,
    /// The limit that stopped it, when one did.
    pub limit: Option<LimitHit>,
    /// Wall time from spawning the sandbox to its end.
    pub wall: Duration,
}

impl SandboxOutcome {
    /// Whether the action exited with 0 and no limit tripped.
    pub fn success(&self) -> bool {
        self.status == ExitStatus::Exited(0) && self.limit.is_none()
    }
}

/// An action's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// A signal ended it. bwrap reports a child killed by signal N as exit code 128 + N, so an action that
    /// itself exits with such a code is reported as signalled too.
    Signaled(i32),
    /// The worker killed the sandbox (a limit it enforces tripped) before the action's status was known.
    Killed,
}

/// The resource limit that stopped an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitHit {
    /// The wall-clock timeout: the worker killed it.
    Wall,
    /// CPU time (`SIGXCPU`).
    Cpu,
    /// Address space: the action failed reporting it was out of memory (the kernel sends no signal, so
    /// this is read from its stderr).
    Memory,
    /// Processes: the action failed reporting that `fork` was refused (read from its stderr).
    Processes,
    /// Output: a file grew past the limit (`SIGXFSZ`), or stdout/stderr did and the worker killed it.
    Output,
    /// Not a limit: the worker was told to stop the action and killed it.
    Cancelled,
}

impl LimitHit {
    /// A short name for logs and statistics.
    pub fn name(self) -> &'static str {
        match self {
            LimitHit::Wall => "wall-time",
            LimitHit::Cpu => "cpu-time",
            LimitHit::Memory => "memory",
            LimitHit::Processes => "processes",
            LimitHit::Output => "output-size",
            LimitHit::Cancelled => "cancellation",
        }
    }
}

/// Why the sandbox could not run an action (an action that runs and fails is an outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bwrap is not installed.
    #[error("bubblewrap (bwrap) not found on PATH or in /usr/bin: install the `bubblewrap` package")]
    NoBwrap,
    /// The spec cannot be expressed (relative path, variable name with `=`, …).
    #[error("invalid sandbox spec for {action}: {why}")]
    Spec {
        /// The action.
        action: String,
        /// What is wrong.
        why: String,
    },
    /// A host path could not be examined or prepared.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Setting the sandbox up failed at the operating-system level (pipes, memfd, spawning bwrap).
    #[error("{what}: {source}")]
    Os {
        /// What was attempted.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The seccomp filter could not be compiled.
    #[error("compiling the seccomp filter: {0}")]
    Seccomp(String),
    /// bwrap failed before the action started (a mount source missing or unreachable, the program not
    /// found inside the sandbox, namespaces unavailable).
    #[error("sandbox setup failed for {action} (bwrap exit {code:?}): {stderr}")]
    Setup {
        /// The action.
        action: String,
        /// bwrap's exit code.
        code: Option<i32>,
        /// bwrap's stderr (and whatever the action wrote, if it got that far).
        stderr: String,
    },
}

/// Runs an action in the sandbox and waits for it. Logs a warning naming the action, the reason and its
/// stderr when it fails, so that a denied read, write or socket is visible in the worker's log.
pub fn run(spec: &SandboxSpec) -> Result<SandboxOutcome, SandboxError> {
    let outcome = supervise::run(spec);
    match &outcome {
        Ok(outcome) if outcome.success() => {
            tracing::debug!(action = %spec.name, wall_ms = outcome.wall.as_millis() as u64, "sandboxed action done");
        }
        Ok(outcome) => {
            let reason = match outcome.limit {
                Some(limit) => format!("{} limit", limit.name()),
                None => format!("{:?}", outcome.status),
            };
            tracing::warn!(
                action = %spec.name,
                %reason,
                wall_ms = outcome.wall.as_millis() as u64,
                "sandboxed action failed: {reason}; stderr: {}",
                tail(&outcome.stderr)
            );
        }
        Err(e) => tracing::warn!(action = %spec.name, "sandbox error: {e}"),
    }
    outcome
}

/// Checks that actions can be sandboxed here: bwrap is installed and the namespaces, the privilege drop,
/// seccomp and the limits all work, by running `bwrap --version` in a sandbox that sees only `/usr`.
/// Returns a human-readable reason otherwise.
pub fn available() -> Result<(), String> {
    let bwrap = bwrap::find().map_err(|e| e.to_string())?;
    // One directory per call: several threads may probe at once.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rcc-sandbox-probe-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut spec = SandboxSpec::new("availability probe", &bwrap, dir.clone(), "/probe".into());
    spec.mounts = vec![Mount::read_only("/usr", "/usr")];
    for link in ["bin", "lib", "lib64", "sbin"] {
        if let Ok(target) = std::fs::read_link(std::path::Path::new("/").join(link)) {
            spec.mounts.push(Mount::Symlink { target, inside: std::path::Path::new("/").join(link) });
        }
    }
    spec.args = vec!["--version".into()];
    let result = supervise::run(&spec);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(outcome) if outcome.success() => Ok(()),
        Ok(outcome) => Err(format!(
            "a probe in the sandbox failed ({:?}): {}",
            outcome.status,
            String::from_utf8_lossy(&outcome.stderr).trim()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The last part of an action's stderr, for a log line.
fn tail(stderr: &[u8]) -> String {
    const MAX: usize = 2000;
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    match text.char_indices().rev().nth(MAX) {
        Some((at, _)) => format!("…{}", &text[at..]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
