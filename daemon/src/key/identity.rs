//! Compiler identity: what actually produces the output, digested, memoized by file metadata.
//!
//! For gcc that is the driver and the programs it runs (`cc1`, `cc1plus`, `as`, as the driver itself
//! reports them with `-print-prog-name`, honouring `-B`), for clang the binary; each with the shared libraries
//! it loads (`ldd`). The memo is checked on every use by re-reading those files' metadata, so a compiler
//! swapped behind the same path is noticed.
//!
//! Also memoized per identity: the expansion of `-march=native` and the default include directories.

use super::args::Family;
use super::files::{digest_file, Stamp};
use rcc_proto::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Why a compiler could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Running or reading the compiler failed.
    #[error("identifying compiler {path}: {what}")]
    Failed {
        /// The compiler.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// Not gcc or clang.
    #[error("{0} is neither gcc nor clang")]
    Unsupported(PathBuf),
}

/// An identified compiler.
#[derive(Debug)]
pub struct Compiler {
    /// gcc or clang rules.
    pub family: Family,
    /// Digest over every file that produces output, and the version text.
    pub digest: Digest,
    record: Record,
    native: Mutex<Option<Vec<u8>>>,
    native_expansions: Mutex<HashMap<Vec<OsString>, Option<Vec<String>>>>,
    system_dirs: Mutex<HashMap<Vec<OsString>, Vec<PathBuf>>>,
}

/// What is persisted of an identity, so that a restarted daemon re-validates by metadata instead of running
/// and digesting the compiler again.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    key: IdentityKey,
    clang: bool,
    digest: Digest,
    /// Where the invoked path leads (links followed): relinking anything on the way is a new identity.
    canonical: PathBuf,
    files: Vec<(PathBuf, Stamp)>,
}

impl Compiler {
    fn from_record(record: Record) -> Compiler {
        Compiler {
            family: if record.clang { Family::Clang } else { Family::Gcc },
            digest: record.digest,
            record,
            native: Mutex::new(None),
            native_expansions: Mutex::new(HashMap::new()),
            system_dirs: Mutex::new(HashMap::new()),
        }
    }
}

/// What a compiler is looked up by: the path as invoked, the `-B` prefixes and `PATH`.
type IdentityKey = (PathBuf, Vec<PathBuf>, OsString);

/// Memo of identified compilers, persisted in a file when one is given.
#[derive(Default)]
pub struct IdentityCache {
    map: Mutex<HashMap<IdentityKey, Arc<Compiler>>>,
    computing: Mutex<()>,
    file: Option<PathBuf>,
}

impl IdentityCache {
    /// A new, empty memo kept only in memory.
    pub fn new() -> IdentityCache {
        IdentityCache::default()
    }

    /// A memo persisted at `file`, loaded now (an unreadable file is an empty memo).
    pub fn persisted(file: PathBuf) -> IdentityCache {
        let records: Vec<Record> = crate::persist::load(&file);
        let map = records.into_iter().map(|r| (r.key.clone(), Arc::new(Compiler::from_record(r)))).collect();
        IdentityCache { map: Mutex::new(map), computing: Mutex::new(()), file: Some(file) }
    }

    fn save(&self, map: &HashMap<IdentityKey, Arc<Compiler>>) {
        let Some(file) = &self.file else { return };
        let records: Vec<&Record> = map.values().map(|c| &c.record).collect();
        crate::persist::save(file, &records);
    }

    /// Identifies the compiler at `path`, from the memo when none of its files changed.
    pub fn identify(
        &self,
        path: &Path,
        b_prefixes: &[PathBuf],
        env_path: &OsStr,
    ) -> Result<Arc<Compiler>, IdentityError> {
        let key = (path.to_owned(), b_prefixes.to_vec(), env_path.to_owned());
        let current = |cache: &IdentityCache| {
            let map = cache.map.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&key).filter(|known| known.is_current(path)).cloned()
        };
        if let Some(known) = current(self) {
            return Ok(known);
        }
        // One identification at a time: under `make -j64` from a cold daemon, every compile arrives here at
        // once and all but the first find the result waiting.
        let _computing = self.computing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = current(self) {
            return Ok(known);
        }
        let compiler = Arc::new(identify_uncached(key.clone(), b_prefixes, env_path)?);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, compiler.clone());
        self.save(&map);
        Ok(compiler)
    }
}

fn failed(path: &Path, what: impl Into<String>) -> IdentityError {
    IdentityError::Failed { path: path.to_owned(), what: what.into() }
}

/// The `-m…` and `--param` options on the `cc1` line of a driver's `-###` output.
fn cc1_cpu_options(listing: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(listing).ok()?;
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next().is_some_and(|program| program.trim_matches('"').ends_with("/cc1")))?;
    let mut tokens = line.split_whitespace().map(|t| t.trim_matches('"'));
    let mut out = Vec::new();
    while let Some(token) = tokens.next() {
        if token.starts_with("-m") {
            out.push(token.to_owned());
        } else if token == "--param" {
            out.push(format!("--param={}", tokens.next()?));
        }
    }
    out.iter().any(|o| o.starts_with("-march=") || o.starts_with("-mtune=") || o.starts_with("-mcpu=")).then_some(out)
}

fn run(path: &Path, args: &[&OsStr], env_path: &OsStr) -> Result<std::process::Output, IdentityError> {
    // A clean environment: the daemon's own (inherited from whichever build started it) must not leak in.
    Command::new(path)
        .args(args)
        .env_clear()
        .env("PATH", env_path)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(path, format!("running it: {e}")))
}

fn identify_uncached(key: IdentityKey, b_prefixes: &[PathBuf], env_path: &OsStr) -> Result<Compiler, IdentityError> {
    let path = key.0.clone();
    let path = path.as_path();
    let version = run(path, &[OsStr::new("--version")], env_path)?;
    let text = String::from_utf8_lossy(&version.stdout).into_owned();
    let family = if text.contains("clang version") {
        Family::Clang
    } else if text.contains("Free Software Foundation") || text.starts_with("gcc") || text.starts_with("g++") {
        Family::Gcc
    } else {
        return Err(IdentityError::Unsupported(path.to_owned()));
    };
    let driver = path.canonicalize().map_err(|e| failed(path, format!("resolving it: {e}")))?;
    let mut programs = vec![driver.clone()];
    if family == Family::Gcc {
        let mut b_args: Vec<OsString> = Vec::new();
        for b in b_prefixes {
            b_args.push("-B".into());
            b_args.push(b.clone().into_os_string());
        }
        // One driver run lists where it looks for its programs (-B prefixes first); it falls back to PATH.
        let mut args: Vec<&OsStr> = b_args.iter().map(OsString::as_os_str).collect();
        args.push(OsStr::new("-print-search-dirs"));
        let out = run(path, &args, env_path)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let program_dirs: Vec<PathBuf> = text
            .lines()
            .find_map(|l| l.strip_prefix("programs: ="))
            .map(|dirs| std::env::split_paths(dirs).collect())
            .unwrap_or_default();
        for prog in ["cc1", "cc1plus", "as"] {
            let found = program_dirs
                .iter()
                .chain(std::env::split_paths(env_path).collect::<Vec<_>>().iter())
                .map(|d| d.join(prog))
                .find(|c| c.is_file());
            if let Some(found) = found.and_then(|f| f.canonicalize().ok()) {
                programs.push(found);
            }
        }
    }
    let mut files: Vec<PathBuf> = programs.clone();
    files.extend(shared_libraries(&programs));
    files.sort();
    files.dedup();
    let mut hasher = KeyHasher::new("compiler-identity", 1);
    hasher.bytes(b'v', text.as_bytes());
    // Digest the files on every core: this runs once per compiler, while the first compile of a build waits.
    let digests: Vec<Result<(fs::Metadata, Digest), IdentityError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                scope.spawn(move || {
                    let meta = fs::metadata(f).map_err(|e| failed(f, format!("reading metadata: {e}")))?;
                    let digest = digest_file(f).map_err(|e| failed(f, format!("digesting: {e}")))?;
                    Ok((meta, digest))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(failed(path, "digest thread panicked")))).collect()
    });
    let mut stamped = Vec::with_capacity(files.len());
    for (f, result) in files.into_iter().zip(digests) {
        let (meta, digest) = result?;
        hasher.bytes(b'p', f.as_os_str().as_bytes());
        hasher.digest(b'd', &digest);
        stamped.push((f, Stamp::of(&meta)));
    }
    Ok(Compiler::from_record(Record {
        key,
        clang: family == Family::Clang,
        digest: hasher.finish(),
        canonical: driver,
        files: stamped,
    }))
}

/// Shared libraries the programs load, as one `ldd` run reports them (empty when ldd is unavailable).
fn shared_libraries(programs: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").args(programs).env("LC_ALL", "C").stdin(Stdio::null()).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let target = line.split("=>").nth(1)?.trim();
            let path = target.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path)).and_then(|p| p.canonicalize().ok())
        })
        .collect()
}

impl Compiler {
    /// Whether `path` still leads to the same driver and none of the digested files changed.
    fn is_current(&self, path: &Path) -> bool {
        path.canonicalize().is_ok_and(|c| c == self.record.canonical)
            && self.record.files.iter().all(|(p, s)| fs::metadata(p).map(|m| Stamp::of(&m)).ok() == Some(*s))
    }

    /// Makes [`native_cpu`](Self::native_cpu) answer `expansion`, as on a host with another CPU (tests).
    #[cfg(test)]
    pub(crate) fn assume_native_cpu(&self, expansion: &[u8]) {
        *self.native.lock().unwrap_or_else(|e| e.into_inner()) = Some(expansion.to_vec());
    }

    /// What `-march=native`/`-mtune=native` expand to on this host: the compiler's own `-###` output.
    pub fn native_cpu(&self, path: &Path, env_path: &OsStr) -> Result<Vec<u8>, IdentityError> {
        let mut memo = self.native.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = memo.as_ref() {
            return Ok(known.clone());
        }
        let args: Vec<&OsStr> =
            ["-march=native", "-mtune=native", "-###", "-E", "-x", "c", "/dev/null"].iter().map(OsStr::new).collect();
        let out = run(path, &args, env_path)?;
        *memo = Some(out.stderr.clone());
        Ok(out.stderr)
    }

    /// The options a call's `-march=native`-style `flags` stand for on this host, as gcc's driver hands them
    /// to `cc1` (`-m…` options and `--param=…`), so that another machine compiles for this CPU. `None` for
    /// clang (its expansion is not driver options) or when the driver's `-###` output cannot be read.
    pub fn native_expansion(&self, path: &Path, env_path: &OsStr, flags: &[OsString]) -> Option<Vec<String>> {
        if self.family != Family::Gcc {
            return None;
        }
        if let Some(known) = self.native_expansions.lock().unwrap_or_else(|e| e.into_inner()).get(flags) {
            return known.clone();
        }
        let mut args: Vec<&OsStr> = flags.iter().map(OsString::as_os_str).collect();
        args.extend(["-###", "-E", "-x", "c", "/dev/null"].iter().map(OsStr::new));
        let expansion = run(path, &args, env_path).ok().and_then(|out| cc1_cpu_options(&out.stderr));
        self.native_expansions.lock().unwrap_or_else(|e| e.into_inner()).insert(flags.to_vec(), expansion.clone());
        expansion
    }

    /// The default `#include` search directories for a language under the given target/sysroot flags.
    pub fn system_include_dirs(
        &self,
        path: &Path,
        env_path: &OsStr,
        language: &str,
        probe_args: &[OsString],
    ) -> Vec<PathBuf> {
        let mut memo_key = probe_args.to_vec();
        memo_key.push(OsString::from(language));
        // Held across the probe: the first misses of a cold `make -j` all store at once, and all but one
        // find the answer waiting instead of each running the driver.
        let mut memo = self.system_dirs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = memo.get(&memo_key) {
            return known.clone();
        }
        let mut args: Vec<&OsStr> = probe_args.iter().map(OsString::as_os_str).collect();
        let lang = preprocessable_language(language);
        let tail = ["-E", "-v", "-x", lang, "/dev/null"];
        args.extend(tail.iter().map(OsStr::new));
        let dirs = run(path, &args, env_path).map(|out| parse_search_list(&out.stderr)).unwrap_or_default();
        memo.insert(memo_key, dirs.clone());
        dirs
    }
}

fn preprocessable_language(language: &str) -> &str {
    match language {
        "c++" | "c++-cpp-output" | "objective-c++" => "c++",
        "objective-c" => "objective-c",
        _ => "c",
    }
}

/// Parses the include search list printed by `-E -v`.
fn parse_search_list(stderr: &[u8]) -> Vec<PathBuf> {
    let text = String::from_utf8_lossy(stderr);
    let mut dirs = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("#include") && line.contains("search starts here") {
            inside = true;
        } else if line.starts_with("End of search list") {
            break;
        } else if inside && line.starts_with(' ') {
            let dir = line.trim().trim_end_matches(" (framework directory)");
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cc1_cpu_options_come_from_the_cc1_line() {
        let listing = b"Using built-in specs.\nCOLLECT_GCC=gcc\n \"/usr/lib/gcc/x86_64-linux-gnu/12/cc1\" \"-E\" \
\"-quiet\" \"/dev/null\" \"-march=znver3\" \"-mmmx\" \"-mno-xop\" \"--param\" \"l1-cache-size=32\" \
\"-mtune=znver3\" \"-dumpbase\" \"null\"\nCOMPILER_PATH=/usr/lib\n";
        assert_eq!(
            cc1_cpu_options(listing).unwrap(),
            ["-march=znver3", "-mmmx", "-mno-xop", "--param=l1-cache-size=32", "-mtune=znver3"]
        );
        assert_eq!(cc1_cpu_options(b" \"/usr/bin/as\" \"-mavx\"\n"), None, "no cc1 line");
        assert_eq!(cc1_cpu_options(b" /x/cc1 -E /dev/null -m64\n"), None, "no CPU in it");
    }

    #[test]
    fn gcc_expands_native_flags_on_this_host() {
        let identities = IdentityCache::default();
        let gcc = identities.identify(Path::new("/usr/bin/gcc"), &[], OsStr::new("/usr/bin:/bin")).expect("gcc");
        let native =
            gcc.native_expansion(Path::new("/usr/bin/gcc"), OsStr::new("/usr/bin:/bin"), &["-march=native".into()]);
        let native = native.expect("gcc's -### output names the CPU");
        assert!(native.iter().any(|o| o.starts_with("-march=") && o != "-march=native"), "{native:?}");
        assert!(native.iter().any(|o| o.starts_with("-mtune=")), "-march=native also tunes: {native:?}");
        let tune =
            gcc.native_expansion(Path::new("/usr/bin/gcc"), OsStr::new("/usr/bin:/bin"), &["-mtune=native".into()]);
        assert!(tune.unwrap().iter().all(|o| o != "-mtune=native"));
    }

    #[test]
    fn search_list_is_parsed() {
        let text = b"ignoring nonexistent directory \"/x\"\n#include \"...\" search starts here:\n\
#include <...> search starts here:\n /usr/lib/gcc/x86_64-linux-gnu/12/include\n /usr/local/include\n \
/usr/include\nEnd of search list.\n";
        assert_eq!(
            parse_search_list(text),
            vec![
                PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/include"),
                PathBuf::from("/usr/local/include"),
                PathBuf::from("/usr/include")
            ]
        );
    }

    #[test]
    fn gcc_is_identified_with_its_programs() {
        let gcc = which("gcc").expect("gcc on PATH (scripts/install-deps installs it)");
        let cache = IdentityCache::new();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let c = cache.identify(&gcc, &[], &path).unwrap();
        assert_eq!(c.family, Family::Gcc);
        assert!(c.record.files.iter().any(|(p, _)| p.ends_with("cc1")), "{:?}", c.record.files);
        let again = cache.identify(&gcc, &[], &path).unwrap();
        assert_eq!(c.digest, again.digest);
    }

    #[test]
    fn persisted_identity_survives_a_restart() {
        let gcc = which("gcc").expect("gcc on PATH (scripts/install-deps installs it)");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compilers.bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let first = IdentityCache::persisted(file.clone()).identify(&gcc, &[], &path).unwrap().digest;
        let reloaded = IdentityCache::persisted(file);
        assert_eq!(reloaded.map.lock().unwrap().len(), 1, "loaded from disk");
        assert_eq!(reloaded.identify(&gcc, &[], &path).unwrap().digest, first);
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        let path = std::env::var_os("PATH").ok_or(())?;
        std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).ok_or(())
    }
}
