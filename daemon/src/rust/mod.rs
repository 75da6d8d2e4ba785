//! rustc calls (`RUSTC_WRAPPER=rcc`, `rcc rustc …`): the [`Language`] that [`crate::pipeline::serve`]
//! drives for them. A miss has the wrapper run rustc, then the outputs are stored with the manifest entry
//! that leads to them.
//!
//! Like C's direct mode, a hit runs no rustc at all: the direct key covers the toolchain, the arguments
//! (dependencies by the digest of the rlib/rmeta they name, not by path), the working directory and the
//! variables cargo sets; the manifest entry adds the sources and `env!` variables from the last dep-info and,
//! for calls that link (binaries, proc-macros, dylibs), every file the linker read, from the linker command
//! line rustc prints on a miss.
//!
//! - [`args`]: rustc command lines.
//! - [`toolchain`]: the toolchain's identity.
//! - [`key`]: the direct key.
//! - [`paths`]: target- and base-directory independence of stored text.
//! - [`link`]: the linker command line and what it reads.
//! - [`entry`]: manifests and results as stored.

pub mod args;
pub mod entry;
pub mod key;
pub mod link;
pub mod paths;
pub mod toolchain;

use crate::context::Context;
use crate::invocation::Invocation;
use crate::key::depfile;
use crate::key::files::{wait_for_tick_after, Stamp};
use crate::outputs::write_atomically;
use crate::outputs::OutputError;
use crate::pipeline::{self, finish_miss, update_manifest, Decline, Event, Language, Ran, RunMode};
use crate::remote::Remote;
use crate::scratch::TempPath;
use crate::store::Kind;
use crate::stored::load;
use args::RustArgs;
use entry::{OutputFile, RustEntry, RustManifest, RustResult};
use paths::PathMap;
use rcc_proto::frame::FrameError;
use rcc_proto::ipc::{CompileOutcome, Response};
use rcc_proto::stats::{Counters, ErrorKind, HitMode, Reason};
use rcc_proto::{Digest, KeyHasher};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether the named compiler is rustc (or a driver taking rustc's arguments).
pub fn is_rustc(compiler: &Path) -> bool {
    compiler
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"rustc") || n.as_bytes().starts_with(b"clippy-driver"))
}

/// A cacheable rustc call, understood.
pub struct Plan {
    inv: Invocation,
    args: RustArgs,
    map: PathMap,
    /// What rustc runs with on a miss (the base-directory remap added).
    run_args: Vec<OsString>,
    direct_key: Digest,
    /// Stamps of the dependency files the key digested, taken before the compile.
    dependency_stamps: HashMap<PathBuf, Stamp>,
}

/// rustc, as the pipeline drives it.
pub struct Rust;

impl Language for Rust {
    type Plan = Plan;
    type Result = RustResult;
    type Prepared = Prepared;
    type Committed = Vec<u8>;

    fn understand(ctx: &Context, inv: Invocation) -> Result<Plan, Decline> {
        // The arguments are kept for the log line only when it will be written (every rustc call passes here).
        let args = tracing::enabled!(tracing::Level::DEBUG).then(|| inv.args.clone());
        understand(ctx, inv).inspect_err(|_| tracing::debug!(?args, "rustc call not cached"))
    }

    fn direct_key(plan: &Plan) -> Digest {
        plan.direct_key
    }

    fn span(plan: &Plan) -> tracing::Span {
        tracing::debug_span!("rustc", krate = %plan.args.crate_name, key = %&plan.direct_key.to_hex()[..16])
    }

    fn lookup_local(ctx: &Context, plan: &Plan) -> Option<RustResult> {
        let manifest: RustManifest = load(ctx, Kind::Manifest, &plan.direct_key)?;
        let entry = manifest.find(&ctx.files, &plan.map, &plan.inv.env)?;
        load(ctx, Kind::Result, &entry.result)
    }

    /// A shared result whose bytes do not decode is dropped like a corrupt local entry.
    fn lookup_shared(ctx: &Context, remote: &Remote, plan: &Plan) -> Option<RustResult> {
        let listed = remote.manifest_entries(&ctx.stats, remote_manifest_key(&plan.direct_key))?;
        // Newest last, as manifests keep them; only entries whose result key is the one their facts give.
        let entries = listed
            .iter()
            .rev()
            .filter_map(|bytes| postcard::from_bytes::<RustEntry>(bytes).ok())
            .filter(|e| e.result == RustEntry::result_key(&plan.direct_key, &e.files, &e.env))
            .collect();
        let manifest = RustManifest { entries };
        let entry = manifest.find(&ctx.files, &plan.map, &plan.inv.env)?.clone();
        let bytes = remote.get_opaque(&ctx.stats, &remote_result_key(&plan.direct_key, &entry))?;
        let Ok(result) = postcard::from_bytes::<RustResult>(&bytes) else {
            ctx.stats.record(|c| c.count_error(ErrorKind::CorruptEntry));
            return None;
        };
        if pipeline::store_encoded(ctx, &entry.result, &bytes) {
            update_manifest(ctx, &plan.direct_key, |local: &mut RustManifest| local.add(entry));
        }
        Some(result)
    }

    fn restore(plan: &Plan, result: &RustResult) -> Result<(), OutputError> {
        let out_dir = out_dir(plan);
        let umask = plan.inv.umask;
        for file in &result.files {
            let mode = if file.executable { 0o777 } else { 0o666 } & !umask;
            let path = out_dir.join(&file.name);
            if result.dep_info.as_deref() == Some(file.name.as_str()) {
                write_atomically(&path, &plan.map.to_real(&file.data), mode)?;
            } else {
                write_atomically(&path, &file.data, mode)?;
            }
        }
        Ok(())
    }

    fn hit_response(plan: &Plan, result: &RustResult) -> Response {
        Response::Hit {
            stdout: result.stdout.clone(),
            stderr: plan.map.to_real(&result.stderr),
            exit_code: 0,
            forced_color: false,
        }
    }

    fn compile_millis(result: &RustResult) -> u64 {
        result.compile_millis
    }

    fn miss(ctx: &Context, plan: &Plan, start_ns: i64, conn: &mut UnixStream) -> Result<(), FrameError> {
        miss(ctx, plan, start_ns, conn)
    }

    fn commit(ctx: &Context, plan: &Plan, prepared: &Prepared) -> Option<Vec<u8>> {
        let encoded = pipeline::store_result(ctx, &prepared.entry.result, &prepared.result)?;
        let entry = prepared.entry.clone();
        update_manifest(ctx, &plan.direct_key, |manifest: &mut RustManifest| manifest.add(entry)).then_some(encoded)
    }

    fn upload(ctx: &Context, remote: &Arc<Remote>, plan: &Plan, prepared: Prepared, encoded: Vec<u8>) {
        let entry = prepared.entry;
        remote.upload_opaque(
            ctx.stats.clone(),
            remote_result_key(&plan.direct_key, &entry),
            encoded,
            remote_manifest_key(&plan.direct_key),
            postcard::to_allocvec(&entry).unwrap_or_default(),
        );
    }

    fn count(c: &mut Counters, event: Event) {
        match event {
            Event::Hit { mode, saved_millis } => {
                match mode {
                    HitMode::Remote => c.rust.hits_remote += 1,
                    HitMode::Direct | HitMode::Preprocessor => c.rust.hits += 1,
                }
                c.rust.saved_millis += saved_millis;
            }
            Event::Miss { ran: _, millis, stored } => {
                c.rust.misses += 1;
                c.rust.miss_millis += millis;
                match stored {
                    Ok(true) => c.rust.stored += 1,
                    Ok(false) => {}
                    Err(reason) => c.rust.count_uncacheable(reason),
                }
            }
            Event::Uncacheable(reason) => c.rust.count_uncacheable(reason),
        }
    }
}

fn understand(ctx: &Context, inv: Invocation) -> Result<Plan, Decline> {
    if !inv.compiler.file_name().is_some_and(|n| n.as_bytes().starts_with(b"rustc")) {
        // clippy-driver (cargo clippy's RUSTC_WORKSPACE_WRAPPER): its lints are its own; not cached.
        return Err(Decline::Uncacheable(Reason::UnsupportedCompiler));
    }
    let args = args::parse(&inv.args, &inv.cwd).map_err(Decline::Uncacheable)?;
    let toolchain =
        ctx.toolchains.identify(&inv.compiler, args.target.as_deref(), &inv.env, &inv.cwd).map_err(|e| match e {
            toolchain::ToolchainError::Proxy(_) => Decline::Uncacheable(Reason::RustupProxy),
            other => Decline::Error(ErrorKind::Identity, other.to_string()),
        })?;
    let base = inv.base_dir(ctx.config.base_dir.value.as_deref());
    let map = PathMap::new(&inv.cwd, &args.out_dir, base);
    let mut run_args = inv.args.clone();
    let remapped = match &map.base {
        Some(base) => {
            // First, so that the user's own remaps (later ones win) still apply to their paths.
            let mut remap = OsString::from("--remap-path-prefix=");
            remap.push(base);
            remap.push("=.");
            run_args.insert(0, remap);
            true
        }
        None => false,
    };
    let (direct_key, dependency_stamps) =
        key::direct_key(&ctx.files, &ctx.identities, &inv, &args, &toolchain, &map, remapped)
            .map_err(Decline::Uncacheable)?;
    Ok(Plan { inv, args, map, run_args, direct_key, dependency_stamps })
}

/// The shared cache's keys for Rust entries.
fn remote_manifest_key(direct_key: &Digest) -> Digest {
    let mut h = KeyHasher::new("rust-remote-manifest", 1);
    h.digest(b'k', direct_key);
    h.finish()
}

/// The shared key of the result an entry leads to: the direct key and every fact the entry states (its
/// result field is itself derived from them), so an entry someone else wrote can only lead to the result
/// stored for exactly those facts.
fn remote_result_key(direct_key: &Digest, entry: &RustEntry) -> Digest {
    let mut h = KeyHasher::new("rust-remote-result", 2);
    h.digest(b'k', direct_key).bytes(b'e', &postcard::to_allocvec(entry).unwrap_or_default());
    h.finish()
}

fn out_dir(plan: &Plan) -> PathBuf {
    plan.inv.cwd.join(&plan.args.out_dir)
}

/// A finished miss ready to store.
pub struct Prepared {
    entry: RustEntry,
    result: RustResult,
}

fn miss(ctx: &Context, plan: &Plan, start_ns: i64, conn: &mut UnixStream) -> Result<(), FrameError> {
    tracing::debug!("miss");
    wait_for_tick_after(start_ns);
    let link_args = TempPath::new(&ctx.tmp_dir, "link");
    let own_dep_info = TempPath::new(&ctx.tmp_dir, "d");
    let mut run_args = plan.run_args.clone();
    if plan.args.links() {
        let mut print = OsString::from("--print=link-args=");
        print.push(&link_args.0);
        run_args.push(print);
    }
    let dep_info_path = match plan.args.dep_info_name() {
        Some(name) => out_dir(plan).join(name),
        None => {
            // An --emit replaces rustc's default (link): say it too when the user relied on the default.
            let mut emit =
                OsString::from(if plan.args.explicit_emit { "--emit=dep-info=" } else { "--emit=link,dep-info=" });
            emit.push(&own_dep_info.0);
            run_args.push(emit);
            own_dep_info.0.clone()
        }
    };
    let outcome = pipeline::run_in_wrapper(ctx, conn, &run_args, RunMode { forced_color: false, stream_stderr: true })?;
    if outcome.exit_code != 0 {
        tracing::debug!(code = outcome.exit_code, stderr = %String::from_utf8_lossy(&outcome.stderr), "rustc failed");
        return pipeline::answer_failed::<Rust>(ctx, conn, outcome.exit_code);
    }
    let prepared = prepare(ctx, plan, &outcome, &dep_info_path, &link_args.0, start_ns);
    let answer = Response::Done { exit_code: 0 };
    finish_miss::<Rust>(ctx, plan, conn, &answer, outcome.millis, Ran::Locally, prepared)
}
/// Reads what the compile wrote and read; refuses inputs changed since it started.
fn prepare(
    ctx: &Context,
    plan: &Plan,
    outcome: &CompileOutcome,
    dep_info_path: &Path,
    link_args_path: &Path,
    start_ns: i64,
) -> Result<Prepared, Reason> {
    let dep_info = std::fs::read(dep_info_path).map_err(|_| Reason::NoDepInfo)?;
    let sources = depfile::dependencies(&dep_info).ok_or(Reason::NoDepInfo)?;
    let mut files = Vec::new();
    let mut pinned_target = None;
    let mut record = |path: &Path, is_source: bool| -> Result<(), Reason> {
        let full = plan.inv.cwd.join(path);
        let info = ctx.files.info(&full).map_err(|_| Reason::UnhashableInput)?;
        // A dependency whose inode only gained a link meanwhile (cargo uplifting it) is unchanged.
        let relinked = plan.dependency_stamps.get(&full).is_some_and(|before| before.same_content_as(&info.stamp));
        if info.stamp.changed_ns() > start_ns && !relinked {
            tracing::debug!(path = %path.display(), before = ?plan.dependency_stamps.get(&full), after = ?info.stamp, start_ns, "input changed during the compile");
            return Err(Reason::InputModifiedDuringCompile);
        }
        let stored = plan.map.to_stored(path.as_os_str().as_bytes());
        if is_source && plan.map.embeds_target_path(&stored) {
            pinned_target = Some(plan.map.target_root.as_os_str().as_bytes().to_vec());
        }
        files.push((stored, info.digest));
        Ok(())
    };
    for source in &sources {
        record(Path::new(source), true)?;
    }
    if plan.args.links() {
        let text = std::fs::read(link_args_path).map_err(|_| Reason::UnhashableInput)?;
        let line = link::parse(&text).ok_or(Reason::UnhashableInput)?;
        for input in link::inputs(&line, &plan.inv.cwd, &plan.args.stem()) {
            record(&input, false)?;
        }
        // The linker driver is in the direct key; the programs it runs are not: `ld` on its PATH.
        if let Some(ld) = system_ld(&line) {
            record(&ld, false)?;
        }
    }
    files.sort();
    files.dedup();
    let env = env_deps(&dep_info)
        .into_iter()
        .map(|name| {
            let value = plan.inv.env.get(OsStr::from_bytes(&name)).map(|v| plan.map.to_stored(v.as_bytes()));
            (name, value)
        })
        .collect::<Vec<_>>();
    let result_key = RustEntry::result_key(&plan.direct_key, &files, &env);
    let out_dir = out_dir(plan);
    let mut outputs = Vec::new();
    for name in plan.args.output_names() {
        let path = out_dir.join(&name);
        let data = std::fs::read(&path).map_err(|_| Reason::BadDepfile)?;
        let executable = std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
        let data =
            if plan.args.dep_info_name().as_deref() == Some(name.as_str()) { plan.map.to_stored(&data) } else { data };
        outputs.push(OutputFile { name, data, executable });
    }
    let result = RustResult {
        files: outputs,
        dep_info: plan.args.dep_info_name(),
        stdout: outcome.stdout.clone(),
        stderr: plan.map.to_stored(&outcome.stderr),
        compile_millis: outcome.millis,
    };
    Ok(Prepared { entry: RustEntry { files, env, pinned_target, result: result_key }, result })
}

/// The linker program the C driver runs: `ld`, or `ld.NAME` for `-fuse-ld=NAME`, found in the `-B`
/// directories and then on the PATH rustc gave it.
fn system_ld(line: &link::LinkLine) -> Option<PathBuf> {
    let mut program = OsString::from("ld");
    let mut dirs: Vec<PathBuf> = Vec::new();
    for arg in &line.args {
        let bytes = arg.as_bytes();
        if let Some(name) = bytes.strip_prefix(b"-fuse-ld=") {
            program = OsString::from("ld.");
            program.push(OsStr::from_bytes(name));
        } else if let Some(dir) = bytes.strip_prefix(b"-B") {
            dirs.push(PathBuf::from(OsStr::from_bytes(dir)));
        }
    }
    let path = line.path_var.clone().unwrap_or_default();
    dirs.extend(std::env::split_paths(&path));
    dirs.iter().map(|d| d.join(&program)).find(|p| p.is_file()).and_then(|p| p.canonicalize().ok())
}

/// The variable names of dep-info's `# env-dep:NAME[=VALUE]` lines.
fn env_deps(dep_info: &[u8]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = dep_info
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"# env-dep:"))
        .map(|rest| rest.split(|&b| b == b'=').next().unwrap_or(rest).to_vec())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_dep_names_are_read() {
        let text = b"out/m.d: main.rs\n\nmain.rs:\n\n# env-dep:CARGO_PKG_NAME=zz\n# env-dep:MYV\n";
        assert_eq!(env_deps(text), vec![b"CARGO_PKG_NAME".to_vec(), b"MYV".to_vec()]);
    }
}
