//! Every `RCC_*` environment variable rcc reads, declared once with its meaning.

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

/// Base directory: absolute paths under it are rewritten relative to the working directory (and the
/// working directory is mapped to `.` in debug information), so checkouts in different places share hits.
pub const RCC_BASE_DIR: &str = "RCC_BASE_DIR";

/// Variables that are rcc's own and never part of a compile's key.
pub fn is_rcc_var(name: &[u8]) -> bool {
    name.starts_with(b"RCC_")
}
