//! Every `RCC_*` environment variable rcc reads, declared once: a constant for the code, and an entry of
//! [`ALL`] with its meaning, default and config-file key, from which `rcc --help` and `rcc config` are
//! printed. A test checks that no other `RCC_` name appears in the sources.

/// Cache directory (store, socket, statistics). Default: the user's cache directory + `/rcc`.
pub const RCC_DIR: &str = "RCC_DIR";
/// Path of the TOML config file. Default: the user's config directory + `/rcc/config.toml`.
pub const RCC_CONFIG: &str = "RCC_CONFIG";
/// Size limit of the local store (`10G`, `500M`, `4096`). Default 10 GiB.
pub const RCC_CACHE_SIZE: &str = "RCC_CACHE_SIZE";
/// Path of the daemon's Unix socket. Default: `<dir>/rccd-<version>.sock`.
pub const RCC_SOCKET: &str = "RCC_SOCKET";
/// Seconds the daemon stays up with nothing to do. Default 600.
pub const RCC_IDLE_TIMEOUT: &str = "RCC_IDLE_TIMEOUT";
/// Diagnostic log file; `1` means `<dir>/rcc.log`. Default: no logging.
pub const RCC_LOG: &str = "RCC_LOG";
/// What the daemon, workers and the scheduler log (a tracing filter: `debug`, `info,rcc_worker=debug`).
pub const RCC_LOG_LEVEL: &str = "RCC_LOG_LEVEL";
/// `0` turns off direct mode (every lookup runs the preprocessor).
pub const RCC_DIRECT: &str = "RCC_DIRECT";
/// `0` turns off depend mode (a miss learns headers from a preprocessor run instead of the compile's depfile).
pub const RCC_DEPEND: &str = "RCC_DEPEND";
/// `1` bypasses the cache entirely: the real compiler runs untouched.
pub const RCC_DISABLE: &str = "RCC_DISABLE";
/// Compiler used by `CC=rcc` (no compiler named) for C. Default `cc`.
pub const RCC_CC: &str = "RCC_CC";
/// Compiler used by `CXX=rcc` (no compiler named) when a C++ source is compiled. Default `c++`.
pub const RCC_CXX: &str = "RCC_CXX";
/// Path of the `rccd` binary to start. Default: `rccd` beside `rcc`.
pub const RCC_DAEMON: &str = "RCC_DAEMON";
/// Milliseconds the wrapper waits for a daemon it started to listen. Default 5000.
pub const RCC_START_TIMEOUT: &str = "RCC_START_TIMEOUT";

/// Shared-cache scheduler address, `host:port`. Default: none (local cache only).
pub const RCC_SCHEDULER: &str = "RCC_SCHEDULER";
/// SHA-256 fingerprint of the scheduler's certificate to pin (`rcc-scheduler fingerprint` prints it).
pub const RCC_SCHEDULER_FINGERPRINT: &str = "RCC_SCHEDULER_FINGERPRINT";
/// CA certificate file the scheduler's certificate must chain to (instead of a fingerprint).
pub const RCC_SCHEDULER_CA: &str = "RCC_SCHEDULER_CA";
/// Bearer token for the scheduler (`rcc-scheduler token create`).
pub const RCC_TOKEN: &str = "RCC_TOKEN";
/// `1`: read the shared cache, never write it.
pub const RCC_READ_ONLY: &str = "RCC_READ_ONLY";
/// Milliseconds a QUIC connection of the link (daemon, worker, scheduler) may stay silent; keep-alives go
/// every third of it. Default 30000.
pub const RCC_LINK_IDLE_TIMEOUT_MS: &str = "RCC_LINK_IDLE_TIMEOUT_MS";
/// Longest wait for the scheduler on the compile path, in milliseconds. Default 2000.
pub const RCC_REMOTE_TIMEOUT_MS: &str = "RCC_REMOTE_TIMEOUT_MS";

/// Cache misses compiled locally at once before the rest go to the remote pool. Default: the cores.
pub const RCC_LOCAL_JOBS: &str = "RCC_LOCAL_JOBS";
/// `rccd worker`: actions run at once. Default: the number of cores.
pub const RCC_WORKER_SLOTS: &str = "RCC_WORKER_SLOTS";
/// `rccd worker`: the pool served. Default: `<os>-<arch>`, e.g. `linux-x86_64`.
pub const RCC_WORKER_POOL: &str = "RCC_WORKER_POOL";
/// `rccd worker`: the name shown in `rcc-scheduler status`. Default: the host name.
pub const RCC_WORKER_NAME: &str = "RCC_WORKER_NAME";
/// `rccd worker`: where toolchains are materialized and actions run. Default: `<dir>/worker`.
pub const RCC_WORKER_DIR: &str = "RCC_WORKER_DIR";
/// `rccd worker`: a file holding the worker's token (owned by the worker's user, mode 0600 or 0400);
/// without it the token comes from [`RCC_TOKEN`]. Never on the command line.
pub const RCC_TOKEN_FILE: &str = "RCC_TOKEN_FILE";
/// `rccd worker`: the longest an action may run, in seconds, whatever timeout its client asks. Default 600.
pub const RCC_WORKER_MAX_ACTION_SECS: &str = "RCC_WORKER_MAX_ACTION_SECS";
/// `rcc-scheduler`: its state directory (certificate, tokens, storage).
pub const RCC_SCHEDULER_STATE: &str = "RCC_SCHEDULER_STATE";

/// Base directory: absolute paths under it are rewritten relative to the working directory (and the
/// working directory is mapped to `.` in debug information), so checkouts in different places share hits.
pub const RCC_BASE_DIR: &str = "RCC_BASE_DIR";

/// Test knob of `rccd worker` (never set in production): each action first sleeps this many milliseconds
/// inside its sandbox.
pub const RCC_WORKER_TEST_DELAY_MS: &str = "RCC_WORKER_TEST_DELAY_MS";
/// Test knob of `rccd worker` (never set in production): `1` uploads altered outputs under their true
/// digests and reports them as stored.
pub const RCC_WORKER_TEST_CORRUPT: &str = "RCC_WORKER_TEST_CORRUPT";
/// Test knob of `rccd worker` (never set in production): `1` answers every action with one fixed wrong
/// object, uploaded under its own true digest (a self-consistent lie only an audit catches).
pub const RCC_WORKER_TEST_WRONG: &str = "RCC_WORKER_TEST_WRONG";
/// Where the integration tests find the built binaries (default: beside the test executable).
pub const RCC_TEST_BIN_DIR: &str = "RCC_TEST_BIN_DIR";

/// What a variable is about; `rcc --help` groups them by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The local cache and the daemon.
    Cache,
    /// Which compiler `CC=rcc` runs.
    Compilers,
    /// The shared cache (`rcc-scheduler`).
    SharedCache,
    /// Sending misses to the remote pool.
    Pool,
    /// `rccd worker`.
    Worker,
    /// `rcc-scheduler`.
    Scheduler,
    /// Logging.
    Diagnostics,
    /// Tests only: never set in production.
    Tests,
}

impl Group {
    /// Every group, in the order `rcc --help` shows them.
    pub const ALL: &'static [Group] = &[
        Group::Cache,
        Group::Compilers,
        Group::SharedCache,
        Group::Pool,
        Group::Worker,
        Group::Scheduler,
        Group::Diagnostics,
        Group::Tests,
    ];

    /// The heading of the group.
    pub fn title(self) -> &'static str {
        match self {
            Group::Cache => "Local cache",
            Group::Compilers => "Compilers",
            Group::SharedCache => "Shared cache",
            Group::Pool => "Remote pool (clients)",
            Group::Worker => "Pool workers (rccd worker)",
            Group::Scheduler => "Scheduler (rcc-scheduler)",
            Group::Diagnostics => "Diagnostics",
            Group::Tests => "Tests only",
        }
    }
}

/// One variable: its name, its config-file key (when the config file may set it too), its default and
/// what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The variable's name.
    pub name: &'static str,
    /// The config-file key setting the same thing, if any.
    pub key: Option<&'static str>,
    /// The default, as text.
    pub default: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
    /// What it is about.
    pub group: Group,
    /// Its value is a secret: shown masked.
    pub secret: bool,
}

const fn var(
    name: &'static str,
    key: Option<&'static str>,
    default: &'static str,
    doc: &'static str,
    group: Group,
) -> Var {
    Var { name, key, default, doc, group, secret: false }
}

/// Every variable, in the order `rcc --help` lists them.
pub const ALL: &[Var] = &[
    var(RCC_DIR, Some("dir"), "~/.cache/rcc", "cache directory: store, daemon socket, statistics", Group::Cache),
    var(
        RCC_CACHE_SIZE,
        Some("cache_size"),
        "10G",
        "local store size limit (least recently used go first)",
        Group::Cache,
    ),
    var(RCC_DIRECT, Some("direct"), "1", "0: no direct mode (every lookup runs the preprocessor)", Group::Cache),
    var(
        RCC_DEPEND,
        Some("depend"),
        "1",
        "0: learn headers from a preprocessor run, not the compile's depfile",
        Group::Cache,
    ),
    var(RCC_DISABLE, Some("disable"), "0", "1: bypass the cache, run the compiler untouched", Group::Cache),
    var(RCC_BASE_DIR, Some("base_dir"), "none", "checkouts under this directory share entries", Group::Cache),
    var(RCC_CONFIG, None, "~/.config/rcc/config.toml", "the config file", Group::Cache),
    var(RCC_SOCKET, Some("socket"), "<dir>/rccd-<version>.sock", "the daemon's socket", Group::Cache),
    var(RCC_IDLE_TIMEOUT, Some("idle_timeout"), "600", "seconds the daemon stays up with nothing to do", Group::Cache),
    var(RCC_DAEMON, None, "rccd beside rcc", "the daemon binary to start", Group::Cache),
    var(RCC_START_TIMEOUT, None, "5000", "milliseconds to wait for a daemon being started", Group::Cache),
    var(RCC_CC, Some("cc"), "cc", "the C compiler of CC=rcc (no compiler named)", Group::Compilers),
    var(RCC_CXX, Some("cxx"), "c++", "the C++ compiler of CC=rcc for C++ sources", Group::Compilers),
    var(RCC_SCHEDULER, Some("scheduler"), "none", "the scheduler's host:port (shared cache, pool)", Group::SharedCache),
    var(
        RCC_SCHEDULER_FINGERPRINT,
        Some("scheduler_fingerprint"),
        "none",
        "pinned SHA-256 of its certificate",
        Group::SharedCache,
    ),
    var(RCC_SCHEDULER_CA, Some("scheduler_ca"), "none", "CA file its certificate must chain to", Group::SharedCache),
    Var {
        secret: true,
        ..var(RCC_TOKEN, Some("token"), "none", "bearer token (rcc-scheduler token create)", Group::SharedCache)
    },
    var(RCC_READ_ONLY, Some("read_only"), "0", "1: read the shared cache, never upload", Group::SharedCache),
    var(
        RCC_REMOTE_TIMEOUT_MS,
        Some("remote_timeout_ms"),
        "2000",
        "longest wait for the scheduler on a compile",
        Group::SharedCache,
    ),
    var(
        RCC_LINK_IDLE_TIMEOUT_MS,
        None,
        "30000",
        "a silent QUIC connection is dropped after this; keep-alives every third",
        Group::SharedCache,
    ),
    var(
        RCC_LOCAL_JOBS,
        Some("local_jobs"),
        "the cores",
        "misses compiled locally at once; the rest go to the pool",
        Group::Pool,
    ),
    var(RCC_WORKER_POOL, None, "<os>-<arch>", "the pool served", Group::Worker),
    var(RCC_WORKER_SLOTS, None, "the cores", "actions run at once", Group::Worker),
    var(RCC_WORKER_NAME, None, "the host name", "the name shown in rcc-scheduler status", Group::Worker),
    var(RCC_WORKER_DIR, None, "<dir>/worker", "blobs, toolchains and work directories", Group::Worker),
    var(RCC_TOKEN_FILE, None, "none", "file holding the worker's token (mode 0600); else RCC_TOKEN", Group::Worker),
    var(RCC_WORKER_MAX_ACTION_SECS, None, "600", "longest an action may run, whatever its client asks", Group::Worker),
    var(
        RCC_SCHEDULER_STATE,
        None,
        "rcc-scheduler-state",
        "state directory: certificate, tokens, storage",
        Group::Scheduler,
    ),
    var(RCC_LOG, Some("log"), "off", "diagnostic log file (1: <dir>/rcc.log)", Group::Diagnostics),
    var(RCC_LOG_LEVEL, None, "debug (daemon), info", "what gets logged (a tracing filter)", Group::Diagnostics),
    var(RCC_WORKER_TEST_DELAY_MS, None, "none", "worker sleeps this long in each action's sandbox first", Group::Tests),
    var(RCC_WORKER_TEST_CORRUPT, None, "none", "1: worker uploads altered outputs under true digests", Group::Tests),
    var(
        RCC_WORKER_TEST_WRONG,
        None,
        "none",
        "1: worker answers every action with one fixed wrong object",
        Group::Tests,
    ),
    var(RCC_TEST_BIN_DIR, None, "beside the tests", "where the integration tests find the binaries", Group::Tests),
];

/// The entry of a variable, by name.
pub fn find(name: &str) -> Option<&'static Var> {
    ALL.iter().find(|v| v.name == name)
}

/// Variables that are rcc's own and never part of a compile's key.
pub fn is_rcc_var(name: &[u8]) -> bool {
    name.starts_with(b"RCC_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "target" && name != "fixtures" && !name.to_string_lossy().starts_with('.') {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = ALL.iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }

    /// Every `"RCC_…"` literal in the workspace's product code is declared here, and none is spelled out
    /// outside this file: each variable is declared once.
    #[test]
    fn every_variable_in_the_sources_is_declared_here_once() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 50, "found the workspace's sources");
        let this = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/vars.rs").canonicalize().unwrap();
        let mut spelled_out = Vec::new();
        for file in files {
            // Test code sets variables as a user would, and its fixtures have variables of their own.
            let test_code = file.components().any(|c| c.as_os_str() == "tests")
                || file.file_name().is_some_and(|n| n == "tests.rs" || n == "proptests.rs");
            if test_code {
                continue;
            }
            let whole = std::fs::read_to_string(&file).unwrap();
            // Unit tests sit at the bottom of their file, after `#[cfg(test)]`.
            let text = whole.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, _) in text.match_indices("\"RCC_") {
                let name: String = text[i + 1..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
                if name.len() <= "RCC_".len() {
                    continue; // a prefix, as in this test's own search
                }
                assert!(find(&name).is_some(), "{name} ({}) is not declared in vars.rs", file.display());
                if file.canonicalize().unwrap() != this {
                    spelled_out.push(format!("{}: {name}", file.display()));
                }
            }
        }
        assert!(spelled_out.is_empty(), "use rcc_proto::vars instead of spelling these out: {spelled_out:#?}");
    }
}
