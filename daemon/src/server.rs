//! The Unix-socket listener: a thread per connection, an idle timer, and orderly shutdown (statistics
//! flushed, socket removed).
//!
//! Only the daemon's own user is served: a connection from another uid (`SO_PEERCRED`) is closed unread,
//! since a request names the compiler the daemon runs. A connection that sends no request within
//! [`REQUEST_WAIT`] is closed, and when accepting fails (no file descriptor left, say) the loop backs off
//! instead of spinning, so idle or leaked connections cannot starve the builds.

use crate::c_family::CFamily;
use crate::context::Context;
use crate::invocation::Invocation;
use crate::{pipeline, rust};
use rcc_proto::frame::{read_msg, write_msg, FrameError};
use rcc_proto::ipc::{CompileRequest, Request, Response, REQUEST_WAIT};
use rcc_proto::stats::StatsSnapshot;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first pause after a failed accept; it doubles up to [`ACCEPT_BACKOFF_MAX`] while failures last.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Activity bookkeeping for the idle timer.
struct Activity {
    started: Instant,
    active: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the last connection began or ended. A connection may touch between reading the clock
    /// and reading its mark, leaving the mark ahead of the reading: that is no idleness, not an underflow
    /// (which killed the idle timer in debug builds and read as ages of idleness in release builds).
    fn idle_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Serves connections until idle for `idle`, asked to stop, or replaced (the socket path no longer ours).
pub fn run(ctx: Arc<Context>, listener: UnixListener, socket: PathBuf, idle: Duration) {
    let activity =
        Arc::new(Activity { started: Instant::now(), active: AtomicUsize::new(0), last_ms: AtomicU64::new(0) });
    let socket_ino = std::fs::metadata(&socket).map(|m| m.ino()).ok();
    {
        let (ctx, activity, socket) = (ctx.clone(), activity.clone(), socket.clone());
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let _ = ctx.stats.flush();
            let ours = std::fs::metadata(&socket).map(|m| m.ino()).ok() == socket_ino;
            let idle_now = activity.active.load(Ordering::Relaxed) == 0 && activity.idle_ms() > idle.as_millis() as u64;
            if !ours || idle_now {
                tracing::info!(replaced = !ours, "daemon exiting");
                shutdown(&ctx, &socket, ours);
            }
        });
    }
    let own_uid = rcc_fs::private::own_uid();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(e) => {
                tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, "accepting a connection failed");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        match rcc_fs::private::peer_uid(&stream) {
            Ok(uid) if uid == own_uid => {}
            Ok(uid) => {
                tracing::warn!(uid, "refused a connection from another user");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a connection whose peer is unknown");
                continue;
            }
        }
        activity.active.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        let (ctx, activity, socket) = (ctx.clone(), activity.clone(), socket.clone());
        std::thread::spawn(move || {
            if let Err(e) = handle(&ctx, stream, &socket) {
                tracing::debug!(error = %e, "connection ended");
            }
            activity.touch();
            activity.active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn shutdown(ctx: &Context, socket: &PathBuf, remove_socket: bool) -> ! {
    ctx.in_flight.wait_all();
    let _ = ctx.stats.flush();
    if remove_socket {
        let _ = std::fs::remove_file(socket);
    }
    std::process::exit(0)
}

/// Serves one `Compile` request: rustc's or a C compiler's, along the one pipeline.
fn serve_compile(ctx: &Context, req: CompileRequest, conn: &mut UnixStream) -> Result<(), FrameError> {
    let inv = Invocation::from_request(req);
    if rust::is_rustc(&inv.compiler) {
        pipeline::serve::<rust::Rust>(ctx, inv, conn)
    } else {
        pipeline::serve::<CFamily>(ctx, inv, conn)
    }
}

fn handle(ctx: &Context, mut stream: UnixStream, socket: &PathBuf) -> Result<(), FrameError> {
    stream.set_read_timeout(Some(REQUEST_WAIT))?;
    let request: Request = read_msg(&mut stream)?;
    // The wrapper's report of a compile comes when the compiler is done: no bound here.
    stream.set_read_timeout(None)?;
    match request {
        Request::Compile(req) => {
            write_msg(&mut stream, &Response::Accepted)?;
            serve_compile(ctx, req, &mut stream)
        }
        Request::Ping => write_msg(&mut stream, &Response::Ok),
        Request::Stats => {
            ctx.in_flight.wait_all();
            let answer = match ctx.stats.snapshot() {
                Ok(counters) => {
                    let usage = ctx.store.usage();
                    Response::Stats(Box::new(StatsSnapshot {
                        counters,
                        cache_bytes: usage.bytes,
                        cache_entries: usage.entries,
                        cache_limit: ctx.store.limit(),
                    }))
                }
                Err(e) => Response::Error { message: format!("reading statistics: {e}") },
            };
            write_msg(&mut stream, &answer)
        }
        Request::ZeroStats => {
            ctx.in_flight.wait_all();
            let answer = match ctx.stats.zero() {
                Ok(()) => Response::Ok,
                Err(e) => Response::Error { message: format!("zeroing statistics: {e}") },
            };
            write_msg(&mut stream, &answer)
        }
        Request::ClearCache => {
            ctx.in_flight.wait_all();
            let answer = match ctx.store.clear() {
                Ok(()) => Response::Ok,
                Err(e) => Response::Error { message: e.to_string() },
            };
            write_msg(&mut stream, &answer)
        }
        Request::Shutdown => {
            let _ = write_msg(&mut stream, &Response::Ok);
            shutdown(ctx, socket, true)
        }
        Request::Finished(_) => write_msg(&mut stream, &Response::Error { message: "no compile in progress".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_after_the_clock_was_read_is_no_idleness_and_no_underflow() {
        let activity = Activity { started: Instant::now(), active: AtomicUsize::new(0), last_ms: AtomicU64::new(0) };
        // A connection's mark ahead of this thread's reading of the clock.
        activity.last_ms.store(activity.started.elapsed().as_millis() as u64 + 1_000, Ordering::Relaxed);
        assert_eq!(activity.idle_ms(), 0);
        activity.last_ms.store(0, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert!(activity.idle_ms() >= 20);
    }
}
