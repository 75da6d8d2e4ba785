//! The compile path: ask the daemon, then replay a hit, run a miss and report it, or run the compiler
//! untouched. Any failure of rcc itself ends in running the real compiler, so the build gets the
//! compiler's exact result.

use crate::daemon_client;
use crate::invocation::{self, CompileCall};
use crate::logging::log;
use rcc_proto::config::Config;
use rcc_proto::frame::{read_msg, write_msg};
use rcc_proto::ipc::{CompileOutcome, CompileRequest, Request, Response, ACCEPT_WAIT, ANSWER_WAIT, REPORT_WAIT};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs one compile through the cache and returns the exit code.
pub fn run(call: CompileCall) -> i32 {
    let config = rcc_proto::config::load().ok();
    let named = match &call.named {
        Some(n) => n.clone(),
        None => {
            let (cc, cxx) = config.as_ref().map_or(("cc", "c++"), |c| (c.cc.value.as_str(), c.cxx.value.as_str()));
            invocation::implicit_compiler(&call.args, cc, cxx)
        }
    };
    let Some(compiler) = invocation::resolve_compiler(&named) else {
        let mut err = std::io::stderr();
        let _ = writeln!(
            err,
            "rcc: cannot find the compiler `{}` on PATH (rcc itself and other compiler wrappers are skipped)",
            Path::new(&named).display()
        );
        return 127;
    };
    let Some(config) = config.filter(|c| !c.disable.value) else {
        return exec_compiler(&compiler, &call.args);
    };
    match through_daemon(&config, &compiler, &call.args) {
        Ok(code) => code,
        Err(Fallback(why)) => {
            log(Some(&config), &format!("running the compiler without the cache: {why}"));
            exec_compiler(&compiler, &call.args)
        }
    }
}

/// Something went wrong before the compiler ran: run it untouched.
struct Fallback(String);

impl<E: std::fmt::Display> From<E> for Fallback {
    fn from(e: E) -> Self {
        Fallback(e.to_string())
    }
}

fn through_daemon(config: &Config, compiler: &Path, args: &[OsString]) -> Result<i32, Fallback> {
    let mut stream = daemon_client::connect_or_start(config)?;
    let request = CompileRequest {
        compiler: compiler.as_os_str().as_bytes().to_vec(),
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        cwd: std::env::current_dir()?.into_os_string().into_vec(),
        env: std::env::vars_os().map(|(k, v)| (k.into_vec(), v.into_vec())).collect(),
        umask: current_umask(),
    };
    // Every read from the daemon is bounded: a stuck daemon costs a bounded wait, then a plain compile.
    stream.set_read_timeout(Some(ACCEPT_WAIT))?;
    write_msg(&mut stream, &Request::Compile(request))?;
    match read_msg::<_, Response>(&mut stream)? {
        Response::Accepted => {}
        other => return Err(Fallback(format!("unexpected daemon answer {other:?}"))),
    }
    stream.set_read_timeout(Some(ANSWER_WAIT))?;
    match read_msg::<_, Response>(&mut stream)? {
        Response::Hit { stdout, stderr, exit_code, forced_color } => {
            replay(&stdout, &stderr, forced_color);
            Ok(exit_code)
        }
        Response::Passthrough { .. } => Err(Fallback("not cacheable".into())),
        Response::Error { message } => Err(Fallback(format!("daemon error: {message}"))),
        Response::Run { args: run_args, forced_color, stream_stderr } => {
            match run_miss(config, stream, compiler, run_args, forced_color, stream_stderr) {
                Ran::Done(code) => Ok(code),
                // rcc's additions broke the compile: the user's own command, untouched.
                Ran::Retry => Err(Fallback("rcc's additions to the compile failed".into())),
            }
        }
        other => Err(Fallback(format!("unexpected daemon answer {other:?}"))),
    }
}

/// Runs the compiler for a miss, reports the outcome to the daemon (which stores it before answering) and
/// replays the compiler's output. From here on the compile has happened: daemon trouble changes nothing
/// for the build.
fn run_miss(
    config: &Config,
    mut stream: UnixStream,
    compiler: &Path,
    args: Vec<Vec<u8>>,
    forced_color: bool,
    stream_stderr: bool,
) -> Ran {
    let args: Vec<OsString> = args.into_iter().map(OsString::from_vec).collect();
    let outcome = match capture(compiler, &args, stream_stderr) {
        Ok(outcome) => outcome,
        Err(e) => {
            // The compiler could not even be started: report it the way a shell would.
            let mut err = std::io::stderr();
            let _ = writeln!(err, "rcc: cannot run {}: {e}", compiler.display());
            return Ran::Done(127);
        }
    };
    let exit_code = outcome.exit_code;
    let report = stream
        .set_read_timeout(Some(REPORT_WAIT))
        .map_err(rcc_proto::frame::FrameError::from)
        .and_then(|()| write_msg(&mut stream, &Request::Finished(outcome.clone())))
        .and_then(|()| read_msg::<_, Response>(&mut stream));
    match report {
        // Only a failed run may be retried: its outputs are not the build's yet (stderr not streamed).
        Ok(Response::Passthrough { .. }) if exit_code != 0 && !stream_stderr => return Ran::Retry,
        Ok(_) => {}
        Err(e) => log(Some(config), &format!("daemon did not take the compile's result: {e}")),
    }
    let stderr: &[u8] = if stream_stderr { &[] } else { &outcome.stderr };
    replay(&outcome.stdout, stderr, forced_color);
    Ran::Done(exit_code)
}

/// How a miss's run ended.
enum Ran {
    /// The compile ran; exit with this code (its output is replayed).
    Done(i32),
    /// It failed because of what rcc added: run the user's own command instead.
    Retry,
}

/// Runs the compiler, collecting stdout and stderr; with `stream_stderr`, stderr is also passed through to
/// this process's stderr as it arrives.
fn capture(compiler: &Path, args: &[OsString], stream_stderr: bool) -> std::io::Result<CompileOutcome> {
    let start = Instant::now();
    let mut child = Command::new(compiler)
        .args(args)
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout_pipe = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = stdout_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let mut stderr = Vec::new();
    if let Some(mut p) = child.stderr.take() {
        if stream_stderr {
            let mut out = std::io::stderr();
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match p.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let _ = out.write_all(&chunk[..n]);
                        stderr.extend_from_slice(&chunk[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        } else {
            let _ = p.read_to_end(&mut stderr);
        }
    }
    let stdout = reader.join().unwrap_or_default();
    let status = child.wait()?;
    let exit_code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(CompileOutcome { exit_code, stdout, stderr, millis: start.elapsed().as_millis() as u64 })
}

/// Writes recorded output to this process's stdout and stderr; the one place the wrapper prints a compile's
/// output. Colour that rcc forced on is kept only where the compiler would have used it: a terminal.
fn replay(stdout: &[u8], stderr: &[u8], forced_color: bool) {
    let stripped;
    let stderr = if forced_color && !color_terminal() {
        stripped = strip_ansi(stderr);
        &stripped[..]
    } else {
        stderr
    };
    if !stdout.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(stdout);
        let _ = out.flush();
    }
    if !stderr.is_empty() {
        let _ = std::io::stderr().lock().write_all(stderr);
    }
}

/// Replaces this process with the real compiler; returns only if that fails.
fn exec_compiler(compiler: &Path, args: &[OsString]) -> i32 {
    let err = Command::new(compiler).args(args).exec();
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "rcc: cannot run {}: {err}", PathBuf::from(compiler).display());
    127
}

/// What gcc's and clang's `-fdiagnostics-color=auto` check: stderr is a terminal and TERM is not `dumb`.
fn color_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(2) } == 1;
    tty && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

/// Removes ANSI escape sequences (CSI `ESC [ … final`, and OSC `ESC ] … ESC \\` or BEL) from text.
fn strip_ansi(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == 0x1b && text.get(i + 1) == Some(&b'[') {
            i += 2;
            while i < text.len() && !(0x40..=0x7e).contains(&text[i]) {
                i += 1;
            }
            i += 1;
        } else if text[i] == 0x1b && text.get(i + 1) == Some(&b']') {
            i += 2;
            while i < text.len() && text[i] != 0x07 && !(text[i] == 0x1b && text.get(i + 1) == Some(&b'\\')) {
                i += 1;
            }
            i += if text.get(i) == Some(&0x07) { 1 } else { 2 };
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

fn current_umask() -> u32 {
    // SAFETY: umask(2) cannot fail; it is set back at once (the wrapper is single-threaded here).
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    }
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_sgr_and_erase_sequences() {
        let colored = b"\x1b[01m\x1b[Ka.c:1:5:\x1b[m\x1b[K \x1b[01;35m\x1b[Kwarning: \x1b[m\x1b[Kunused\n";
        assert_eq!(strip_ansi(colored), b"a.c:1:5: warning: unused\n");
        assert_eq!(strip_ansi(b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), b"link");
        assert_eq!(strip_ansi(b"plain"), b"plain");
    }
}
