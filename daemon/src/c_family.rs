//! C, C++ and assembler calls to gcc and clang (and the drivers named like them): the [`Language`] that
//! [`crate::pipeline::serve`] drives for them. A miss has the wrapper compile (with a depfile request added
//! when the user made none), then the result and its manifest entry are stored before the answer — so a
//! rebuild right after a cold build hits.
//!
//! Modes, fastest first: *direct* (manifest of inputs, no preprocessor run), *depend* (a miss learns the
//! inputs from the compile's own depfile), and *preprocessor* (key from `-E` output; used for `-MMD`, whose
//! depfile omits system headers, and when direct or depend mode is turned off). When the local compile
//! slots are full, a miss is compiled in the pool instead ([`crate::remote_exec`]).

use crate::context::Context;
use crate::invocation::Invocation;
use crate::key::args::{self, DepKind, ParsedArgs};
use crate::key::files::FileInfo;
use crate::key::identity::{Compiler, IdentityError};
use crate::key::manifest::{Entry, Manifest};
use crate::key::{base_dir, depfile, direct_key, search_dirs};
use crate::outputs::{self, CachedResult, OutputError, Role, StoredFile};
use crate::pipeline::{self, answer_hit, finish_miss, update_manifest, Decline, Event, Language, Ran, RunMode};
use crate::remote::Remote;
use crate::remote_exec;
use crate::scratch::TempPath;
use crate::store::Kind;
use crate::stored::load;
use rcc_proto::frame::{write_msg, FrameError};
use rcc_proto::ipc::{CompileOutcome, Response};
use rcc_proto::stats::{Counters, ErrorKind, HitMode, Reason, RemoteFallback};
use rcc_proto::{Digest, KeyHasher};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// The C family of languages, as gcc and clang compile them.
pub struct CFamily;

/// A cacheable call, understood.
pub struct Plan {
    inv: Invocation,
    parsed: ParsedArgs,
    /// What the compiler runs with on a miss: the original arguments, or their base-directory rewrite.
    run_args: Vec<OsString>,
    compiler: Arc<Compiler>,
    /// Everything but the source and the headers.
    common_key: Digest,
    /// `common_key` plus the source.
    direct_key: Digest,
    /// `SOURCE_DATE_EPOCH` is set: time macros are cacheable.
    source_date_epoch: bool,
}

impl From<IdentityError> for Decline {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Unsupported(_) => Decline::Uncacheable(Reason::UnsupportedCompiler),
            other => Decline::Error(ErrorKind::Identity, other.to_string()),
        }
    }
}

impl Language for CFamily {
    type Plan = Plan;
    type Result = CachedResult;
    type Prepared = Prepared;
    type Committed = Entry;

    fn understand(ctx: &Context, inv: Invocation) -> Result<Plan, Decline> {
        understand(ctx, inv)
    }

    fn direct_key(plan: &Plan) -> Digest {
        plan.direct_key
    }

    fn span(plan: &Plan) -> tracing::Span {
        tracing::debug_span!("compile", key = %plan.direct_key.to_hex()[..16].to_owned())
    }

    fn looks_up(ctx: &Context) -> bool {
        ctx.config.direct.value
    }

    fn lookup_local(ctx: &Context, plan: &Plan) -> Option<CachedResult> {
        let manifest: Manifest = load(ctx, Kind::Manifest, &plan.direct_key).unwrap_or_default();
        tracing::trace!(entries = manifest.entries.len(), "manifest loaded");
        let entry = manifest.find(&ctx.files, &plan.inv.cwd)?;
        tracing::trace!("manifest entry matched");
        load(ctx, Kind::Result, &entry.result)
    }

    fn lookup_shared(ctx: &Context, remote: &Remote, plan: &Plan) -> Option<CachedResult> {
        let manifest = remote.manifest(&ctx.stats, &plan.direct_key)?;
        let mut entry = manifest.find(&ctx.files, &plan.inv.cwd)?.clone();
        // The entry's facts decide the key, never its result field (see `remote`); kept locally under it too.
        entry.result = crate::remote::shared_result_key(&plan.direct_key, &entry);
        let result = remote.result(&ctx.stats, &entry.result)?;
        if pipeline::store_result(ctx, &entry.result, &result).is_some() {
            update_manifest(ctx, &plan.direct_key, |local: &mut Manifest| local.add(entry));
        }
        Some(result)
    }

    fn restore(plan: &Plan, result: &CachedResult) -> Result<(), OutputError> {
        outputs::restore(result, &plan.parsed, &plan.inv.cwd, plan.inv.umask)
    }

    fn hit_response(plan: &Plan, result: &CachedResult) -> Response {
        Response::Hit {
            stdout: result.stdout.clone(),
            stderr: result.stderr.clone(),
            exit_code: result.exit_code,
            forced_color: forces_color(&plan.parsed),
        }
    }

    fn compile_millis(result: &CachedResult) -> u64 {
        result.compile_millis
    }

    fn miss(ctx: &Context, plan: &Plan, start_ns: i64, conn: &mut UnixStream) -> Result<(), FrameError> {
        if ctx.remote.is_some()
            && ctx.pool.slots_full(ctx.config.local_jobs.value)
            && !records_command_line(&plan.parsed)
        {
            if let Some(done) = miss_remote(ctx, plan, start_ns, conn) {
                return done;
            }
        }
        // Depend mode adds a depfile request to the compile: not for -MMD (its depfile omits system headers)
        // nor when the command line is recorded into the object.
        let depend = ctx.config.direct.value
            && ctx.config.depend.value
            && plan.parsed.depfile.as_ref().is_none_or(|d| d.kind == DepKind::Md)
            && !records_command_line(&plan.parsed);
        if depend {
            miss_depend(ctx, plan, start_ns, conn)
        } else {
            miss_preprocessor(ctx, plan, start_ns, conn)
        }
    }

    fn commit(ctx: &Context, plan: &Plan, prepared: &Prepared) -> Option<Entry> {
        pipeline::store_result(ctx, &prepared.result_key, &prepared.result)?;
        add_manifest_entry(ctx, plan, prepared.inputs.clone(), prepared.result_key)
    }

    fn upload(ctx: &Context, remote: &Arc<Remote>, plan: &Plan, prepared: Prepared, entry: Entry) {
        remote.upload(ctx.stats.clone(), plan.direct_key, prepared.result, entry);
    }

    fn count(c: &mut Counters, event: Event) {
        match event {
            Event::Hit { mode, saved_millis } => {
                match mode {
                    HitMode::Direct => c.hits_direct += 1,
                    HitMode::Preprocessor => c.hits_preprocessor += 1,
                    HitMode::Remote => c.hits_remote += 1,
                }
                c.saved_millis += saved_millis;
            }
            Event::Miss { ran, millis, stored } => {
                c.misses += 1;
                match ran {
                    Ran::Locally => c.miss_millis += millis,
                    Ran::InPool => {
                        c.remote_compiles += 1;
                        c.remote_millis += millis;
                    }
                }
                match stored {
                    Ok(true) => c.stored += 1,
                    Ok(false) => {}
                    Err(reason) => c.count_uncacheable(reason),
                }
            }
            Event::Uncacheable(reason) => c.count_uncacheable(reason),
        }
    }
}

fn understand(ctx: &Context, inv: Invocation) -> Result<Plan, Decline> {
    let env_path = inv.var("PATH").unwrap_or_default().to_owned();
    tracing::trace!("request decoded");
    let driver = ctx.identities.identify(&inv.compiler, &[], &env_path)?;
    tracing::trace!("compiler identified");
    let mut parsed = args::parse(&inv.args, &inv.cwd, driver.family).map_err(Decline::Uncacheable)?;
    let mut run_args = inv.args.clone();
    if let Some(base) = inv.base_dir(ctx.config.base_dir.value.as_deref()) {
        if let Some(rewritten) = base_dir::rewrite(&parsed.expanded, &inv.cwd, &base) {
            parsed = args::parse(&rewritten, &inv.cwd, driver.family).map_err(Decline::Uncacheable)?;
            // The map rcc appended names this checkout's directory; what it does (cwd -> .) is in the key
            // through the mapped working directory, so the key names it generically.
            if let Some(last) = parsed.key_args.last_mut() {
                *last = OsString::from(base_dir::KEYED_CWD_MAP);
            }
            run_args = rewritten;
        }
    }
    let compiler = if parsed.b_prefixes.is_empty() {
        driver
    } else {
        ctx.identities.identify(&inv.compiler, &parsed.b_prefixes, &env_path)?
    };
    let source = ctx.files.info(&inv.cwd.join(&parsed.source)).map_err(|_| Decline::Uncacheable(Reason::NoSource))?;
    let source_date_epoch = inv.var("SOURCE_DATE_EPOCH").is_some();
    if source.time_macros && !source_date_epoch {
        return Err(Decline::Uncacheable(Reason::TimeMacros));
    }
    if reads_hidden_files(&source, &parsed) {
        return Err(Decline::Uncacheable(Reason::AssemblerInclude));
    }
    tracing::trace!(args = ?parsed.key_args, "arguments keyed");
    let common_key = direct_key::common(&ctx.files, &inv, &parsed, &compiler).map_err(Decline::Uncacheable)?;
    tracing::trace!(common = %common_key, source = %source.digest, "key parts");
    let mut h = KeyHasher::new("c-direct", 1);
    h.digest(b'c', &common_key).digest(b's', &source.digest);
    Ok(Plan { direct_key: h.finish(), inv, parsed, run_args, compiler, common_key, source_date_epoch })
}

/// Whether rcc compiles this call with colour forced on. Diagnostics are then recorded in colour whatever
/// the terminal, and the wrapper strips the colour when its stderr is not a terminal — what the compiler's
/// own `auto` would have done — so terminal and CI builds share entries. Not when the user chose a colour
/// mode, nor when the command line is recorded into the object.
fn forces_color(parsed: &ParsedArgs) -> bool {
    !records_command_line(parsed)
        && !parsed.expanded.iter().any(|a| {
            let a = a.as_bytes();
            a.starts_with(b"-fdiagnostics-color")
                || a.starts_with(b"-fno-diagnostics-color")
                || a.starts_with(b"-fcolor-diagnostics")
                || a.starts_with(b"-fno-color-diagnostics")
        })
}

/// Whether the command line ends up inside the object (then rcc must not add anything to it).
fn records_command_line(parsed: &ParsedArgs) -> bool {
    parsed
        .expanded
        .iter()
        .any(|a| matches!(a.as_bytes(), b"-grecord-command-line" | b"-frecord-command-line" | b"-frecord-gcc-switches"))
}

/// Has the wrapper run the compiler with `args`, plus forced colour where [`forces_color`] says so.
fn run_in_wrapper(
    ctx: &Context,
    conn: &mut UnixStream,
    plan: &Plan,
    args: &[OsString],
) -> Result<CompileOutcome, FrameError> {
    let forced_color = forces_color(&plan.parsed);
    let mut args = args.to_vec();
    if forced_color {
        args.push("-fdiagnostics-color=always".into());
    }
    pipeline::run_in_wrapper(ctx, conn, &args, RunMode { forced_color, stream_stderr: false })
}

/// Whether an input may make the assembler read files that no depfile lists: `.incbin` anywhere (also in
/// inline assembly), `.include` in assembler sources.
fn reads_hidden_files(info: &FileInfo, parsed: &ParsedArgs) -> bool {
    info.incbin || (info.asm_include && parsed.language.starts_with("assembler"))
}

/// A miss in depend mode: the compile itself writes the depfile that lists the inputs.
fn miss_depend(ctx: &Context, plan: &Plan, start_ns: i64, conn: &mut UnixStream) -> Result<(), FrameError> {
    let tmp_dep = TempPath::new(&ctx.tmp_dir, "d");
    let mut run_args = plan.run_args.clone();
    let depfile_path = match plan.parsed.depfile_path() {
        Some(user) => plan.inv.cwd.join(user),
        None => {
            run_args.extend(["-MD".into(), "-MF".into(), tmp_dep.0.clone().into_os_string()]);
            tmp_dep.0.clone()
        }
    };
    let outcome = run_in_wrapper(ctx, conn, plan, &run_args)?;
    tracing::trace!("compile finished");
    if outcome.exit_code != 0 {
        if run_args.len() > plan.run_args.len() && names_path(&outcome.stderr, &tmp_dep.0) {
            // The compiler could not write rcc's own depfile (a full or unwritable cache directory): the
            // user's command must run as typed, and give its own result.
            tracing::warn!(depfile = %tmp_dep.0.display(), "rcc's depfile could not be written; running the command untouched");
            ctx.stats.record(|c| c.count_error(ErrorKind::ScratchIo));
            return write_msg(conn, &Response::Passthrough { reason: Reason::CompileFailed });
        }
        return pipeline::answer_failed::<CFamily>(ctx, conn, outcome.exit_code);
    }
    let prepared = std::fs::read(&depfile_path)
        .ok()
        .and_then(|text| depfile::dependencies(&text))
        .ok_or(Reason::BadDepfile)
        .and_then(|deps| inputs_of(ctx, plan, &deps, start_ns))
        .and_then(|inputs| {
            let mut h = KeyHasher::new("c-result", 1);
            h.digest(b'k', &plan.direct_key);
            for (path, digest) in &inputs.files {
                h.bytes(b'p', path).digest(b'd', digest);
            }
            prepare(plan, &outcome, h.finish(), inputs)
        });
    finish_local_miss(ctx, plan, &outcome, conn, prepared)
}

/// Whether the compiler's diagnostics name `path` (a file rcc added to the command line).
fn names_path(stderr: &[u8], path: &std::path::Path) -> bool {
    let path = path.as_os_str().as_bytes();
    !path.is_empty() && memchr::memmem::find(stderr, path).is_some()
}

/// A finished miss ready to be stored.
pub struct Prepared {
    result_key: Digest,
    inputs: Inputs,
    result: CachedResult,
}

fn prepare(
    plan: &Plan,
    outcome: &rcc_proto::ipc::CompileOutcome,
    result_key: Digest,
    inputs: Inputs,
) -> Result<Prepared, Reason> {
    let result =
        outputs::collect(&plan.parsed, &plan.inv.cwd, outcome.stdout.clone(), outcome.stderr.clone(), outcome.millis)
            .map_err(|e| {
            tracing::warn!(error = %e, "outputs missing after a successful compile");
            Reason::BadDepfile
        })?;
    Ok(Prepared { result_key, inputs, result })
}

/// Answers a miss the wrapper compiled, then stores it (see [`pipeline::finish_miss`]).
fn finish_local_miss(
    ctx: &Context,
    plan: &Plan,
    outcome: &CompileOutcome,
    conn: &mut UnixStream,
    prepared: Result<Prepared, Reason>,
) -> Result<(), FrameError> {
    let answer = Response::Done { exit_code: outcome.exit_code };
    finish_miss::<CFamily>(ctx, plan, conn, &answer, outcome.millis, Ran::Locally, prepared)
}

/// What a compile read: every file with its digest, and the names `__has_include` probed.
#[derive(Clone)]
struct Inputs {
    files: Vec<(Vec<u8>, Digest)>,
    probes: Vec<Vec<u8>>,
    /// When the compile that read them started: files on the search path changed since are suspect.
    since_ns: i64,
}

/// Digests every input a compile read; refuses inputs changed since the compile started and time macros.
fn inputs_of(ctx: &Context, plan: &Plan, deps: &[OsString], start_ns: i64) -> Result<Inputs, Reason> {
    let mut inputs = Vec::with_capacity(deps.len());
    let mut probes = Vec::new();
    for dep in deps {
        let info = ctx.files.info(&plan.inv.cwd.join(dep)).map_err(|_| Reason::BadDepfile)?;
        if info.stamp.changed_ns() >= start_ns {
            return Err(Reason::InputModifiedDuringCompile);
        }
        if info.time_macros && !plan.source_date_epoch {
            return Err(Reason::TimeMacros);
        }
        if reads_hidden_files(&info, &plan.parsed) {
            return Err(Reason::AssemblerInclude);
        }
        if info.has_include {
            let content = std::fs::read(plan.inv.cwd.join(dep)).map_err(|_| Reason::BadDepfile)?;
            probes.extend(crate::key::files::has_include_names(&content).ok_or(Reason::UnhashableInput)?);
        }
        inputs.push((dep.as_bytes().to_vec(), info.digest));
    }
    Ok(Inputs { files: inputs, probes, since_ns: start_ns })
}

/// Records that these inputs lead to `result_key` in the direct key's manifest; the entry, `None` when the
/// manifest could not be written (counted).
fn add_manifest_entry(ctx: &Context, plan: &Plan, inputs: Inputs, result_key: Digest) -> Option<Entry> {
    let env_path = plan.inv.var("PATH").unwrap_or_default();
    let dirs = search_dirs::of(env_path, &plan.inv, &plan.parsed, &plan.compiler);
    let Some(entry) =
        Entry::new(&ctx.files, &plan.inv.cwd, inputs.files, &inputs.probes, &dirs, result_key, inputs.since_ns)
    else {
        // A header appeared on the search path while the compile ran: what it saw cannot be recorded.
        tracing::debug!("a search-path file changed during the compile; no manifest entry");
        ctx.stats.record(|c| c.count_uncacheable(Reason::InputModifiedDuringCompile));
        return None;
    };
    tracing::trace!(dirs = dirs.len(), "manifest entry made");
    update_manifest(ctx, &plan.direct_key, |manifest: &mut Manifest| manifest.add(entry.clone())).then_some(entry)
}

/// Runs the preprocessor for this call, writing a depfile of what it read; `None` when it fails (the compile
/// would fail the same way).
fn preprocess(ctx: &Context, plan: &Plan) -> Option<(Vec<u8>, TempPath)> {
    let tmp_d = TempPath::new(&ctx.tmp_dir, "d");
    let dep_args = vec!["-MD".into(), "-MF".into(), tmp_d.0.clone().into_os_string()];
    run_preprocessor(ctx, plan, dep_args).map(|text| (text, tmp_d))
}

/// Runs `-E` with these depfile options; the preprocessed text, `None` when the run fails.
fn run_preprocessor(ctx: &Context, plan: &Plan, dep_args: Vec<OsString>) -> Option<Vec<u8>> {
    let tmp_i = TempPath::new(&ctx.tmp_dir, "i");
    let mut pp_args = plan.parsed.preprocessor_args();
    pp_args.push("-E".into());
    pp_args.extend(dep_args);
    pp_args.extend(["-o".into(), tmp_i.0.clone().into_os_string()]);
    let ran = Command::new(&plan.inv.compiler)
        .args(&pp_args)
        .env_clear()
        .envs(&plan.inv.env)
        .current_dir(&plan.inv.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ran {
        Ok(s) if s.success() => std::fs::read(&tmp_i.0).ok(),
        _ => None,
    }
}

/// The preprocessor run of a miss that goes to the pool: its output, and the list of every file it read.
/// When the user asked for a depfile, the run writes exactly that depfile (same kind, `-MP`, targets) and
/// the depfile's text is returned too; `-MMD` leaves system headers out of it, so the full list is completed
/// from the unit's line markers. `Err` is the reason the miss stays local.
struct RemotePreprocessed {
    text: Vec<u8>,
    inputs: Option<Vec<OsString>>,
    user_depfile: Option<Vec<u8>>,
}

fn preprocess_for_remote(ctx: &Context, plan: &Plan) -> Result<RemotePreprocessed, RemoteFallback> {
    let tmp_d = TempPath::new(&ctx.tmp_dir, "d");
    let dep_args = match &plan.parsed.depfile {
        None => vec!["-MD".into(), "-MF".into(), tmp_d.0.clone().into_os_string()],
        Some(_) => plan.parsed.depfile_args_for_preprocessor(&tmp_d.0).ok_or(RemoteFallback::DepfileForm)?,
    };
    let text = run_preprocessor(ctx, plan, dep_args).ok_or(RemoteFallback::PreprocessingFailed)?;
    let depfile_text = std::fs::read(&tmp_d.0).ok();
    let mut inputs = depfile_text.as_deref().and_then(depfile::dependencies);
    if let (Some(list), Some(DepKind::Mmd)) = (&mut inputs, plan.parsed.depfile.as_ref().map(|d| d.kind)) {
        let listed: std::collections::HashSet<OsString> = list.iter().cloned().collect();
        list.extend(crate::key::line_markers::entered_files(&text).into_iter().filter(|f| !listed.contains(f)));
    }
    let user_depfile = match plan.parsed.depfile {
        Some(_) => Some(depfile_text.ok_or(RemoteFallback::PreprocessingFailed)?),
        None => None,
    };
    Ok(RemotePreprocessed { text, inputs, user_depfile })
}

/// A miss compiled on the remote pool: `None` when it stays local (the reason is counted).
fn miss_remote(ctx: &Context, plan: &Plan, start_ns: i64, conn: &mut UnixStream) -> Option<Result<(), FrameError>> {
    let fallback = |why: RemoteFallback| {
        tracing::debug!(%why, "compiled locally");
        ctx.stats.record(|c| c.count_remote_fallback(why));
        None
    };
    if ctx.remote.as_ref().is_some_and(|r| r.pool_held_off()) {
        return fallback(RemoteFallback::NoWorkersHeldOff);
    }
    let RemotePreprocessed { text: preprocessed, inputs, user_depfile } = match preprocess_for_remote(ctx, plan) {
        Ok(done) => done,
        Err(reason) => return fallback(reason),
    };
    if crate::key::files::has_time_macros(&preprocessed) && !plan.source_date_epoch {
        return fallback(RemoteFallback::TimeMacros);
    }
    let mut result = match remote_exec::compile(ctx, &plan.inv, &plan.parsed, &plan.compiler, &preprocessed) {
        Ok(result) => result,
        Err(reason) => return fallback(reason),
    };
    if let Some(text) = user_depfile {
        result.files.push(StoredFile { role: Role::Depfile, data: text });
        result.depfile_target = plan.parsed.depfile_target_text().map(|t| t.into_vec());
    }
    let result_key = preprocessed_result_key(plan, &preprocessed);
    if let Err(e) = outputs::restore(&result, &plan.parsed, &plan.inv.cwd, plan.inv.umask) {
        tracing::warn!(error = %e, "writing the remote object failed");
        return fallback(RemoteFallback::RestoreFailed);
    }
    // The pool's object is answered like a hit: the wrapper runs nothing.
    let answer = Response::Hit {
        stdout: result.stdout.clone(),
        stderr: result.stderr.clone(),
        exit_code: 0,
        forced_color: false,
    };
    let millis = result.compile_millis;
    let prepared = inputs
        .ok_or(Reason::BadDepfile)
        .and_then(|deps| inputs_of(ctx, plan, &deps, start_ns))
        .map(|inputs| Prepared { result_key, inputs, result });
    Some(finish_miss::<CFamily>(ctx, plan, conn, &answer, millis, Ran::InPool, prepared))
}

/// The result key of a compile known by its preprocessed text: the key of preprocessor-mode lookups, and of
/// pool compiles (which share entries with them).
fn preprocessed_result_key(plan: &Plan, preprocessed: &[u8]) -> Digest {
    let mut h = KeyHasher::new("c-preprocessed", 1);
    h.digest(b'c', &plan.common_key).digest(b'i', &Digest::of(preprocessed));
    h.finish()
}

/// A miss (or a lookup) in preprocessor mode: the key is the preprocessed text's digest; the inputs for a
/// direct-mode manifest come from a depfile the preprocessor run writes.
fn miss_preprocessor(ctx: &Context, plan: &Plan, start_ns: i64, conn: &mut UnixStream) -> Result<(), FrameError> {
    let Some((preprocessed, tmp_d)) = preprocess(ctx, plan) else {
        // The compile would fail the same way: let the compiler say so itself.
        ctx.stats.record(|c| c.count_uncacheable(Reason::CompileFailed));
        return write_msg(conn, &Response::Passthrough { reason: Reason::CompileFailed });
    };
    if crate::key::files::has_time_macros(&preprocessed) && !plan.source_date_epoch {
        ctx.stats.record(|c| c.count_uncacheable(Reason::TimeMacros));
        return write_msg(conn, &Response::Passthrough { reason: Reason::TimeMacros });
    }
    let result_key = preprocessed_result_key(plan, &preprocessed);
    let inputs = std::fs::read(&tmp_d.0)
        .ok()
        .and_then(|text| depfile::dependencies(&text))
        .ok_or(Reason::BadDepfile)
        .and_then(|deps| inputs_of(ctx, plan, &deps, start_ns));
    if let Some(result) = load::<CachedResult>(ctx, Kind::Result, &result_key) {
        if let (Ok(inputs), true) = (&inputs, ctx.config.direct.value) {
            add_manifest_entry(ctx, plan, inputs.clone(), result_key);
        }
        return answer_hit::<CFamily>(ctx, plan, &result, HitMode::Preprocessor, conn);
    }
    let outcome = run_in_wrapper(ctx, conn, plan, &plan.run_args)?;
    if outcome.exit_code != 0 {
        return pipeline::answer_failed::<CFamily>(ctx, conn, outcome.exit_code);
    }
    let prepared = inputs.and_then(|inputs| prepare(plan, &outcome, result_key, inputs));
    finish_local_miss(ctx, plan, &outcome, conn, prepared)
}
