//! Cache misses compiled on the remote pool. When the local compile slots ([`Config::local_jobs`]) are all
//! taken and the scheduler grants remote execution, a miss is preprocessed here and sent as an action: the
//! preprocessed unit plus the compiler's toolchain pack ([`rcc_pack`]), compiled on a worker in its
//! sandbox with the work directory at this invocation's working directory when it compiles debug information
//! (which records it, so the object matches a local compile), else at a fixed path (so the same sources in
//! two checkouts are one action). Sending the preprocessed unit rather than the source and its header tree keeps actions
//! small and self-contained: nothing of this machine's include directories needs to exist on the worker.
//! Anything that fails — no workers, a timeout, a refused or failing compile — leaves the miss to the local
//! compiler, counted by reason.
//!
//! [`Config::local_jobs`]: rcc_proto::config::Config

use crate::context::Context;
use crate::invocation::Invocation;
use crate::key::args::ParsedArgs;
use crate::outputs::{CachedResult, Role, StoredFile};
use crate::remote::Blob;
use rcc_proto::remote::RemoteAction;
use rcc_proto::stats::RemoteFallback;
use rcc_proto::{Digest, KeyHasher};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Longest a remote compile may take before the miss is compiled locally.
const REMOTE_WAIT: Duration = Duration::from_secs(300);
const UNIT: &str = "rcc-unit.i";
/// The work directory of actions whose output does not depend on it.
const NEUTRAL_WORKDIR: &str = "/rcc/work";
const OBJECT: &str = "rcc-unit.o";

/// What this call's `-march=native`-style flags stand for here, to go first on the worker's command line
/// (where gcc's driver puts its own expansion, before the call's other `-m` options). Only without debug
/// information: its producer string lists the options, and explicit `--param`s land elsewhere in it.
fn native_cpu_options(
    inv: &Invocation,
    parsed: &ParsedArgs,
    compiler: &crate::key::identity::Compiler,
) -> Result<Vec<String>, RemoteFallback> {
    if parsed.debug_info {
        return Err(RemoteFallback::NativeCpuWithDebugInfo);
    }
    let env_path = inv.var("PATH").unwrap_or_default();
    compiler.native_expansion(&inv.compiler, env_path, &parsed.native_flags()).ok_or(RemoteFallback::NativeCpu)
}

/// Compiles `preprocessed` (this call's `-E` output) on the pool. `Err` is the reason it stays local.
pub fn compile(
    ctx: &Context,
    inv: &Invocation,
    parsed: &ParsedArgs,
    compiler: &crate::key::identity::Compiler,
    preprocessed: &[u8],
) -> Result<CachedResult, RemoteFallback> {
    let identity = compiler.digest;
    let remote = ctx.remote.as_ref().ok_or(RemoteFallback::NoScheduler)?;
    if !remote.can_execute(&ctx.stats) {
        return Err(RemoteFallback::NoExecuteScope);
    }
    let mut args = parsed.compile_args_for_preprocessed(UNIT, OBJECT).ok_or(RemoteFallback::NotRemotable)?;
    if parsed.native_cpu {
        args.splice(0..0, native_cpu_options(inv, parsed, compiler)?.into_iter().map(Into::into));
    }
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.into_string().map_err(|_| RemoteFallback::NotRemotable))
        .collect::<Result<_, _>>()?;
    let program = inv.compiler.to_str().filter(|p| p.starts_with('/')).ok_or(RemoteFallback::NotRemotable)?.to_owned();
    // Only debug information records the working directory (as the local key says): without it the action
    // runs in a fixed directory, so checkouts at different paths share actions (run once) and results.
    let workdir = match parsed.debug_info {
        true => inv.cwd.to_str().ok_or(RemoteFallback::NotRemotable)?.to_owned(),
        false => NEUTRAL_WORKDIR.to_owned(),
    };
    let packed = ctx.pool.packed(identity, &inv.compiler)?;
    let toolchain = packed.digest;
    packed.ensure_stored(&ctx.stats, remote, REMOTE_WAIT)?;
    let unit = Digest::of(preprocessed);
    let blobs = vec![(unit, Blob::Bytes(preprocessed.to_vec()))];
    // The variables a compile of preprocessed text reads: the message language and colours.
    let mut env: Vec<(String, String)> = ["LANG", "LC_ALL", "LC_MESSAGES", "GCC_COLORS", "SOURCE_DATE_EPOCH"]
        .iter()
        .filter_map(|k| Some((k.to_string(), inv.var(k)?.to_str()?.to_owned())))
        .collect();
    let driver_dir = inv.compiler.parent().and_then(|d| d.to_str()).unwrap_or("/usr/bin");
    env.push(("PATH".into(), format!("{driver_dir}:/usr/bin:/bin")));
    let mut kind = KeyHasher::new("remote-kind", 1);
    kind.digest(b'c', &identity).bytes(b's', parsed.source.as_os_str().as_bytes());
    let action = RemoteAction {
        toolchain,
        program,
        args,
        env,
        inputs: vec![(UNIT.into(), unit)],
        outputs: vec![OBJECT.into()],
        pool: rcc_proto::remote::default_pool(),
        kind: kind.finish(),
        timeout_ms: REMOTE_WAIT.as_millis() as u64,
        workdir,
    };
    let start = Instant::now();
    let executed = remote.execute(&ctx.stats, blobs, action, REMOTE_WAIT);
    if matches!(executed, Err(RemoteFallback::RemoteError)) {
        // The scheduler may have lost the pack (evicted), so the worker could not fetch it: check again.
        packed.stored.store(false, Ordering::Release);
    }
    let crate::remote::Executed { result, outputs, stdout, stderr } = executed?;
    if result.exit_code != 0 {
        // Let the local compiler report the error itself.
        return Err(RemoteFallback::RemoteCompileFailed);
    }
    let object = outputs.into_iter().find(|(name, _)| name == OBJECT).ok_or(RemoteFallback::RemoteError)?.1;
    Ok(CachedResult {
        files: vec![StoredFile { role: Role::Object, data: object }],
        stdout,
        stderr,
        exit_code: 0,
        depfile_target: None,
        compile_millis: start.elapsed().as_millis() as u64,
    })
}
