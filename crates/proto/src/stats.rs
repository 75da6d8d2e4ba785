//! Statistics: what happened to each compile, and why a compile was not cached.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a compile was run without the cache. Each variant is counted separately in `rcc stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Reason {
    /// No `-c` or `-S`: the call links.
    Linking,
    /// `-E`: preprocessing only.
    PreprocessOnly,
    /// `-M`/`-MM` without `-MD`/`-MMD`: dependency output only.
    DependenciesOnly,
    /// Several source files in one call.
    MultipleSources,
    /// No source file found among the arguments.
    NoSource,
    /// The source is read from standard input.
    StdinInput,
    /// The output goes to standard output (`-o -`).
    StdoutOutput,
    /// `-save-temps`.
    SaveTemps,
    /// `-ftime-trace`.
    TimeTrace,
    /// C++20 modules or clang modules.
    Modules,
    /// `-fprofile-generate` and other profile instrumentation that writes run-time files.
    ProfileGenerate,
    /// A flag that writes extra files rcc does not track (`-fdump-*`, `-fstack-usage`, `-aux-info`, …).
    ExtraOutputs,
    /// A flag rcc does not know whose value names an existing file.
    UnknownFileFlag,
    /// An argument that is neither a flag nor a source rcc recognises (e.g. an object or library).
    UnknownInput,
    /// A response file could not be read.
    BadResponseFile,
    /// A flag that names an input rcc cannot digest (missing `-specs` file, `-fprofile-use` without a path, …).
    UnhashableInput,
    /// A precompiled header is involved.
    PrecompiledHeader,
    /// `__DATE__`, `__TIME__` or `__TIMESTAMP__` used without `SOURCE_DATE_EPOCH`.
    TimeMacros,
    /// An assembler `.incbin` (or, in assembler sources, `.include`) reads a file no depfile lists.
    AssemblerInclude,
    /// An input changed while the compile ran: the result was not stored.
    InputModifiedDuringCompile,
    /// The compile failed: failures are not stored.
    CompileFailed,
    /// The compiler is not gcc or clang (by its own `--version`), or could not be identified.
    UnsupportedCompiler,
    /// cargo's probes of rustc (`-vV`, `--print`, `-` on stdin) and other calls that compile nothing.
    RustcProbe,
    /// `-C incremental`: rustc reads and writes its incremental state, which a cache cannot restore.
    Incremental,
    /// rustc named through the rustup proxy without `RUSTUP_TOOLCHAIN`: the real toolchain is unknown.
    RustupProxy,
    /// `-o` or `--emit KIND=PATH`: outputs outside the output directory.
    RustcOutputPath,
    /// A rustc option rcc does not know, or one whose effect it cannot key (`--sysroot`, `-C split-debuginfo`).
    UnsupportedRustcOption,
    /// rustc wrote no dep-info, so the sources it read are unknown.
    NoDepInfo,
    /// A Rust compiler invocation (not cached yet).
    Rustc,
    /// The depfile the compiler wrote could not be understood.
    BadDepfile,
    /// The user turned caching off (`RCC_DISABLE`).
    Disabled,
    /// The daemon could not be reached or started: the wrapper ran the compiler alone.
    DaemonUnavailable,
}

impl Reason {
    /// Every reason, in display order.
    pub const ALL: &'static [Reason] = &[
        Reason::Linking,
        Reason::PreprocessOnly,
        Reason::DependenciesOnly,
        Reason::MultipleSources,
        Reason::NoSource,
        Reason::StdinInput,
        Reason::StdoutOutput,
        Reason::SaveTemps,
        Reason::TimeTrace,
        Reason::Modules,
        Reason::ProfileGenerate,
        Reason::ExtraOutputs,
        Reason::UnknownFileFlag,
        Reason::UnknownInput,
        Reason::BadResponseFile,
        Reason::UnhashableInput,
        Reason::PrecompiledHeader,
        Reason::TimeMacros,
        Reason::AssemblerInclude,
        Reason::InputModifiedDuringCompile,
        Reason::CompileFailed,
        Reason::UnsupportedCompiler,
        Reason::RustcProbe,
        Reason::Incremental,
        Reason::RustupProxy,
        Reason::RustcOutputPath,
        Reason::UnsupportedRustcOption,
        Reason::NoDepInfo,
        Reason::Rustc,
        Reason::BadDepfile,
        Reason::Disabled,
        Reason::DaemonUnavailable,
    ];

    /// Stable name used in `rcc stats` and in the persisted statistics.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Linking => "linking",
            Reason::PreprocessOnly => "preprocess-only",
            Reason::DependenciesOnly => "dependencies-only",
            Reason::MultipleSources => "multiple-sources",
            Reason::NoSource => "no-source",
            Reason::StdinInput => "stdin-input",
            Reason::StdoutOutput => "output-to-stdout",
            Reason::SaveTemps => "save-temps",
            Reason::TimeTrace => "time-trace",
            Reason::Modules => "modules",
            Reason::ProfileGenerate => "profile-generate",
            Reason::ExtraOutputs => "extra-outputs",
            Reason::UnknownFileFlag => "unknown-flag-naming-file",
            Reason::UnknownInput => "unknown-input",
            Reason::BadResponseFile => "bad-response-file",
            Reason::UnhashableInput => "unhashable-input",
            Reason::PrecompiledHeader => "precompiled-header",
            Reason::TimeMacros => "time-macros",
            Reason::AssemblerInclude => "assembler-include",
            Reason::InputModifiedDuringCompile => "input-modified-during-compile",
            Reason::CompileFailed => "compile-failed",
            Reason::UnsupportedCompiler => "unsupported-compiler",
            Reason::RustcProbe => "rustc-probe",
            Reason::Incremental => "incremental",
            Reason::RustupProxy => "rustup-proxy",
            Reason::RustcOutputPath => "rustc-output-path",
            Reason::UnsupportedRustcOption => "unsupported-rustc-option",
            Reason::NoDepInfo => "no-dep-info",
            Reason::Rustc => "rustc",
            Reason::BadDepfile => "bad-depfile",
            Reason::Disabled => "disabled",
            Reason::DaemonUnavailable => "daemon-unavailable",
        }
    }
}

/// Why a miss that could have gone to the remote pool was compiled locally. Each variant is counted under
/// its [`name`](RemoteFallback::name) in `rcc stats` (`remote_fallbacks` in `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteFallback {
    /// The scheduler said recently that the pool has no active worker: not asked again yet.
    #[error("the pool had no worker a moment ago")]
    NoWorkersHeldOff,
    /// The scheduler answered that the pool has no active worker.
    #[error("the pool has no active worker")]
    NoWorkers,
    /// No scheduler is configured.
    #[error("no scheduler configured")]
    NoScheduler,
    /// The scheduler could not be reached.
    #[error("the scheduler is unreachable")]
    SchedulerUnreachable,
    /// The token lacks the `execute` scope.
    #[error("the token may not execute")]
    NoExecuteScope,
    /// The depfile options cannot be reproduced by the preprocessor run.
    #[error("depfile options the preprocessor run cannot reproduce")]
    DepfileForm,
    /// The local preprocessor run failed (the compile would fail too: the compiler reports it).
    #[error("preprocessing failed")]
    PreprocessingFailed,
    /// `__DATE__`/`__TIME__` in the preprocessed unit without `SOURCE_DATE_EPOCH`.
    #[error("time macros")]
    TimeMacros,
    /// A flag the pool cannot reproduce (names a file, `-B`, `-S`, split DWARF, coverage, a non-UTF-8 or
    /// relative path, …).
    #[error("arguments the pool cannot reproduce")]
    NotRemotable,
    /// `-march=native` with debug information (the producer string would differ).
    #[error("-march=native with debug information")]
    NativeCpuWithDebugInfo,
    /// `-march=native` whose expansion could not be learned (clang, or the compiler's `-###` failed).
    #[error("-march=native could not be expanded")]
    NativeCpu,
    /// The compiler's toolchain could not be packed.
    #[error("packing the compiler failed")]
    PackFailed,
    /// The scheduler or the worker failed the action, or sent something wrong.
    #[error("the pool failed the action")]
    RemoteError,
    /// An output, stdout or stderr the scheduler sent failed its digest check (damaged in its store, or
    /// altered on the way): nothing of it reaches the build.
    #[error("a pool output failed its digest check")]
    CorruptOutput,
    /// The action took longer than the client waits.
    #[error("the pool did not answer in time")]
    Timeout,
    /// The compile failed on the worker: the local compiler reports the error itself.
    #[error("the compile failed on the pool")]
    RemoteCompileFailed,
    /// Writing the remote outputs into the build failed.
    #[error("writing the remote outputs failed")]
    RestoreFailed,
}

impl RemoteFallback {
    /// Every fallback reason, in display order.
    pub const ALL: &'static [RemoteFallback] = &[
        RemoteFallback::NoWorkersHeldOff,
        RemoteFallback::NoWorkers,
        RemoteFallback::NoScheduler,
        RemoteFallback::SchedulerUnreachable,
        RemoteFallback::NoExecuteScope,
        RemoteFallback::DepfileForm,
        RemoteFallback::PreprocessingFailed,
        RemoteFallback::TimeMacros,
        RemoteFallback::NotRemotable,
        RemoteFallback::NativeCpuWithDebugInfo,
        RemoteFallback::NativeCpu,
        RemoteFallback::PackFailed,
        RemoteFallback::RemoteError,
        RemoteFallback::CorruptOutput,
        RemoteFallback::Timeout,
        RemoteFallback::RemoteCompileFailed,
        RemoteFallback::RestoreFailed,
    ];

    /// Stable name used in `rcc stats` and in the persisted statistics.
    pub fn name(self) -> &'static str {
        match self {
            RemoteFallback::NoWorkersHeldOff => "no-workers-held-off",
            RemoteFallback::NoWorkers => "no-workers",
            RemoteFallback::NoScheduler => "no-scheduler",
            RemoteFallback::SchedulerUnreachable => "scheduler-unreachable",
            RemoteFallback::NoExecuteScope => "no-execute-scope",
            RemoteFallback::DepfileForm => "depfile-form",
            RemoteFallback::PreprocessingFailed => "preprocessing-failed",
            RemoteFallback::TimeMacros => "time-macros",
            RemoteFallback::NotRemotable => "not-remotable",
            RemoteFallback::NativeCpuWithDebugInfo => "native-cpu-with-debug-info",
            RemoteFallback::NativeCpu => "native-cpu",
            RemoteFallback::PackFailed => "pack-failed",
            RemoteFallback::RemoteError => "remote-error",
            RemoteFallback::CorruptOutput => "corrupt-output",
            RemoteFallback::Timeout => "timeout",
            RemoteFallback::RemoteCompileFailed => "remote-compile-failed",
            RemoteFallback::RestoreFailed => "restore-failed",
        }
    }
}

/// How a hit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HitMode {
    /// From the direct-mode manifest: no preprocessor run.
    Direct,
    /// From the preprocessed output's digest.
    Preprocessor,
    /// From the shared cache.
    Remote,
}

/// Kinds of internal error, counted; each one fell back to a plain compile or a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorKind {
    /// A cache entry failed its digest check or did not decode; it was removed.
    CorruptEntry,
    /// Reading or writing the store failed (full disk, permissions, …).
    StoreIo,
    /// The compiler could not be identified or digested.
    Identity,
    /// A file rcc adds to a compile (its depfile under the cache directory) could not be written: the
    /// user's command ran untouched instead.
    ScratchIo,
    /// Anything else inside the daemon.
    Internal,
}

impl ErrorKind {
    /// Stable name used in `rcc stats`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::CorruptEntry => "corrupt-entry",
            ErrorKind::StoreIo => "store-io",
            ErrorKind::Identity => "compiler-identity",
            ErrorKind::ScratchIo => "scratch-io",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The persisted counters. Maps are keyed by the stable names above so that old files stay readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Hits served from a direct-mode manifest.
    pub hits_direct: u64,
    /// Hits found through the preprocessed output.
    pub hits_preprocessor: u64,
    /// Hits served from the shared cache (its entries now also in the local store).
    pub hits_remote: u64,
    /// Cacheable compiles that missed.
    pub misses: u64,
    /// Results uploaded to the shared cache.
    pub uploads: u64,
    /// Bytes downloaded from the shared cache.
    pub bytes_down: u64,
    /// Bytes uploaded to the shared cache.
    pub bytes_up: u64,
    /// Shared-cache operations that failed or timed out (each fell back to the local path).
    pub remote_errors: u64,
    /// Misses whose result was stored.
    pub stored: u64,
    /// Uncacheable compiles by reason name.
    pub uncacheable: BTreeMap<String, u64>,
    /// Errors by kind name.
    pub errors: BTreeMap<String, u64>,
    /// Compile time saved by hits, in milliseconds (the recorded compile time of each hit entry).
    pub saved_millis: u64,
    /// Time spent compiling misses, in milliseconds.
    pub miss_millis: u64,
    /// Misses compiled on the remote pool.
    pub remote_compiles: u64,
    /// Compile time the pool took off this machine, in milliseconds (the remote compiles' own times).
    pub remote_millis: u64,
    /// Misses that could have gone to the pool but were compiled locally, by reason.
    pub remote_fallbacks: BTreeMap<String, u64>,
    /// rustc invocations, counted apart from C and C++.
    pub rust: RustCounters,
}

/// What happened to rustc invocations (`RUSTC_WRAPPER=rcc`, `rcc rustc …`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RustCounters {
    /// Hits from the local cache.
    pub hits: u64,
    /// Hits from the shared cache.
    pub hits_remote: u64,
    /// Cacheable invocations that missed.
    pub misses: u64,
    /// Misses whose result was stored.
    pub stored: u64,
    /// Invocations run without the cache, by reason name.
    pub uncacheable: BTreeMap<String, u64>,
    /// Compile time saved by hits, in milliseconds.
    pub saved_millis: u64,
    /// Time spent compiling misses, in milliseconds.
    pub miss_millis: u64,
}

impl RustCounters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &RustCounters) {
        self.hits += other.hits;
        self.hits_remote += other.hits_remote;
        self.misses += other.misses;
        self.stored += other.stored;
        for (k, v) in &other.uncacheable {
            *self.uncacheable.entry(k.clone()).or_default() += v;
        }
        self.saved_millis += other.saved_millis;
        self.miss_millis += other.miss_millis;
    }

    /// Counts one invocation run without the cache.
    pub fn count_uncacheable(&mut self, reason: Reason) {
        *self.uncacheable.entry(reason.name().to_owned()).or_default() += 1;
    }

    /// Hits over hits and misses, when there were any.
    pub fn hit_rate(&self) -> Option<f64> {
        let hits = self.hits + self.hits_remote;
        let total = hits + self.misses;
        (total > 0).then(|| hits as f64 / total as f64)
    }
}

impl Counters {
    /// Adds every counter of `other` to `self`.
    pub fn add(&mut self, other: &Counters) {
        self.hits_direct += other.hits_direct;
        self.hits_preprocessor += other.hits_preprocessor;
        self.hits_remote += other.hits_remote;
        self.misses += other.misses;
        self.uploads += other.uploads;
        self.bytes_down += other.bytes_down;
        self.bytes_up += other.bytes_up;
        self.remote_errors += other.remote_errors;
        self.stored += other.stored;
        for (k, v) in &other.uncacheable {
            *self.uncacheable.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.saved_millis += other.saved_millis;
        self.miss_millis += other.miss_millis;
        self.rust.add(&other.rust);
        self.remote_compiles += other.remote_compiles;
        self.remote_millis += other.remote_millis;
        for (k, v) in &other.remote_fallbacks {
            *self.remote_fallbacks.entry(k.clone()).or_default() += v;
        }
    }

    /// Counts one uncacheable compile.
    pub fn count_uncacheable(&mut self, reason: Reason) {
        *self.uncacheable.entry(reason.name().to_owned()).or_default() += 1;
    }

    /// Counts one miss kept local although the pool was wanted.
    pub fn count_remote_fallback(&mut self, why: RemoteFallback) {
        *self.remote_fallbacks.entry(why.name().to_owned()).or_default() += 1;
    }

    /// Counts one error.
    pub fn count_error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind.name().to_owned()).or_default() += 1;
    }

    /// All hits.
    pub fn hits(&self) -> u64 {
        self.hits_direct + self.hits_preprocessor + self.hits_remote
    }

    /// Hit rate over cacheable compiles (hits / (hits + misses)), or `None` before any.
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits() + self.misses;
        (total > 0).then(|| self.hits() as f64 / total as f64)
    }
}

/// What `rcc stats` shows: the counters plus the state of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// The counters.
    pub counters: Counters,
    /// Bytes the local store occupies on disk.
    pub cache_bytes: u64,
    /// Number of entries in the local store.
    pub cache_entries: u64,
    /// The configured size limit in bytes.
    pub cache_limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_unique() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }

    #[test]
    fn remote_fallback_names_are_unique_and_all_listed() {
        let mut names: Vec<_> = RemoteFallback::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RemoteFallback::ALL.len());
        let mut c = Counters::default();
        c.count_remote_fallback(RemoteFallback::NativeCpuWithDebugInfo);
        assert_eq!(c.remote_fallbacks["native-cpu-with-debug-info"], 1);
    }

    #[test]
    fn add_merges_maps() {
        let mut a = Counters::default();
        a.count_uncacheable(Reason::Linking);
        let mut b = Counters::default();
        b.count_uncacheable(Reason::Linking);
        b.hits_direct = 2;
        a.add(&b);
        assert_eq!(a.uncacheable["linking"], 2);
        assert_eq!(a.hits(), 2);
    }
}
