//! One admin connection: read request lines (bounded in size and time), answer each in
//! order, and close on EOF, on a limit, or when the server stops between requests.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::commands::{handle, Ctx};
use super::protocol::{Code, Request, Response};
use super::{AdminOptions, POLL};

/// What the accept loop sees of one connection, to pick one to close when the cap is
/// reached: how long it has waited for a request with nothing pending, and a flag asking it
/// to close.
pub(super) struct ConnState {
    born: Instant,
    /// Milliseconds after `born` when it last became idle; `u64::MAX` while a request is
    /// pending or being answered.
    idle_from_ms: AtomicU64,
    evict: AtomicBool,
}

impl ConnState {
    pub(super) fn new() -> ConnState {
        ConnState {
            born: Instant::now(),
            idle_from_ms: AtomicU64::new(0),
            evict: AtomicBool::new(false),
        }
    }

    /// How long it has been idle (nothing pending), or `None` while busy or already asked to
    /// close.
    pub(super) fn idle_for(&self) -> Option<Duration> {
        let from = self.idle_from_ms.load(Ordering::SeqCst);
        if from == u64::MAX || self.evict.load(Ordering::SeqCst) {
            return None;
        }
        let now = crate::narrow::u64_from(self.born.elapsed().as_millis());
        Some(Duration::from_millis(now.saturating_sub(from)))
    }

    /// Ask the connection to close at its next poll (it only does so while idle).
    pub(super) fn evict(&self) {
        self.evict.store(true, Ordering::SeqCst);
    }

    fn set_idle(&self, idle: bool) {
        let v = if idle {
            crate::narrow::u64_from(self.born.elapsed().as_millis())
        } else {
            u64::MAX
        };
        self.idle_from_ms.store(v, Ordering::SeqCst);
    }
}

/// Tell a client over the connection cap that it is refused, and close.
pub(super) fn refuse(mut stream: UnixStream, opts: &AdminOptions) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(opts.request_timeout));
    let msg = format!(
        "too many admin connections (limit {}); retry later or close idle clients",
        opts.max_connections
    );
    let _ = stream.write_all(&Response::err(None, Code::Busy, msg).line());
}

/// Parse and answer one line. A panic in a handler becomes a `failed` response: the
/// connection and the process carry on.
pub(super) fn respond(ctx: &Ctx, line: &[u8]) -> Response {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => {
            return Response::err(
                None,
                Code::BadJson,
                format!(
                    "not a request ({e}); send one JSON object per line: \
                     {{\"id\": 1, \"cmd\": \"ping\", \"args\": {{}}}}"
                ),
            )
        }
    };
    let id = req.id.clone();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(ctx, req))).unwrap_or_else(
        |_| {
            Response::err(
                id,
                Code::Failed,
                "internal error while handling the request (logged); the store is unharmed",
            )
        },
    )
}

/// Serve `stream` until EOF, an error, a limit, eviction, or shutdown between requests. A
/// connection that has sent no request yet is held to `request_timeout`, not
/// `idle_timeout`: connections that never speak cannot hold the cap for minutes.
pub(super) fn serve(
    mut stream: UnixStream,
    ctx: &Ctx,
    opts: &AdminOptions,
    stop: &AtomicBool,
    state: &ConnState,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(opts.request_timeout));
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut last_request = Instant::now();
    let mut partial_since: Option<Instant> = None;
    let mut answered = false;
    loop {
        // Answer every whole line received, in order (pipelining).
        while let Some(pos) = memchr::memchr(b'\n', &buf) {
            if pos > opts.max_line_bytes {
                break;
            }
            let mut line: Vec<u8> = buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            state.set_idle(false);
            let resp = respond(ctx, &line);
            if stream.write_all(&resp.line()).is_err() {
                return;
            }
            last_request = Instant::now();
            answered = true;
        }
        let pending = memchr::memchr(b'\n', &buf).unwrap_or(buf.len());
        if pending > opts.max_line_bytes {
            let msg = format!(
                "request line over {} bytes; the connection is closed",
                opts.max_line_bytes
            );
            let _ = stream.write_all(&Response::err(None, Code::TooLarge, msg).line());
            return;
        }
        partial_since = if buf.is_empty() {
            None
        } else {
            partial_since.or(Some(Instant::now()))
        };
        let idle = buf.is_empty();
        if idle && state.idle_from_ms.load(Ordering::SeqCst) == u64::MAX {
            state.set_idle(true);
        } else if !idle {
            state.set_idle(false);
        }
        if idle && state.evict.load(Ordering::SeqCst) {
            let msg = format!(
                "closed after {:?} idle to make room: the server holds at most {} admin \
                 connections; reconnect when needed",
                last_request.elapsed(),
                opts.max_connections
            );
            let _ = stream.write_all(&Response::err(None, Code::Busy, msg).line());
            return;
        }
        if stop.load(Ordering::SeqCst) {
            if !buf.is_empty() {
                let msg = "the server is shutting down; this request was not run";
                let _ = stream.write_all(&Response::err(None, Code::ShuttingDown, msg).line());
            }
            return;
        }
        match stream.read(&mut chunk) {
            // EOF. A half-sent request (no newline) is dropped: there is no one to answer.
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(t) = partial_since {
                    if t.elapsed() > opts.request_timeout {
                        let msg = format!(
                            "request line not finished within {:?}; the connection is closed",
                            opts.request_timeout
                        );
                        let _ = stream.write_all(&Response::err(None, Code::Timeout, msg).line());
                        return;
                    }
                } else if !answered && last_request.elapsed() > opts.request_timeout {
                    let msg = format!(
                        "no request within {:?} of connecting; the connection is closed",
                        opts.request_timeout
                    );
                    let _ = stream.write_all(&Response::err(None, Code::Timeout, msg).line());
                    return;
                } else if last_request.elapsed() > opts.idle_timeout {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
