//! The admin socket: a Unix socket where operators inspect, query and steer a live store.
//!
//! [`AdminServer::start`] starts it on plain threads (no async runtime): one accept thread and
//! one thread per connection, up to [`AdminOptions::max_connections`]. The protocol is one
//! JSON request per line and one JSON response per line ([`protocol`], `PROTOCOL.md`).
//!
//! - [`protocol`]: request and response types, error codes.
//! - [`commands`]: what each command does.
//! - `conn`: one connection: bounded line reads, timeouts, pipelining.
//! - `socket`: binding safely (mode 0600, never stealing a live socket).
//! - [`client`]: a blocking client, used by `recostore admin` and the tests.

pub mod client;
pub mod commands;
mod conn;
pub mod prometheus;
pub mod protocol;
mod socket;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::Store;

pub use client::AdminClient;

/// Changes the process's log filter (e.g. `info,recostore=debug`); `Err` explains a bad one.
/// The library cannot reach the app's `tracing` subscriber, so the app passes this in;
/// `recostore serve` passes a `tracing_subscriber` reload handle.
pub type LogLevelHook = Arc<dyn Fn(&str) -> std::result::Result<(), String> + Send + Sync>;

/// Limits and hooks of an admin server.
#[derive(Clone)]
pub struct AdminOptions {
    /// Longest request line, in bytes; a longer one gets `too_large` and the connection is
    /// closed. Default 1 MiB.
    pub max_line_bytes: usize,
    /// Connections served at once. When all are taken, a new one closes the connection idle
    /// longest (if idle for at least `request_timeout`); if none is, the new one gets `busy`
    /// and is closed. Default 128.
    pub max_connections: usize,
    /// A connection with no request for this long is closed. Default 5 minutes. A new
    /// connection must send its first request within `request_timeout`.
    pub idle_timeout: Duration,
    /// A request line must arrive whole within this long of its first byte, and a response
    /// must be taken by the client within it; otherwise the connection is closed. Default 10 s.
    pub request_timeout: Duration,
    /// The `log.level` command's hook; without one the command answers `failed`.
    pub log_level: Option<LogLevelHook>,
    /// The namespace of requests that name none (`None`: the default one). Set by
    /// `recostore serve --ns`.
    pub namespace: Option<String>,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            max_line_bytes: 1 << 20,
            max_connections: 128,
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            log_level: None,
            namespace: None,
        }
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("max_line_bytes", &self.max_line_bytes)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("log_level", &self.log_level.is_some())
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// How often idle threads look at the shutdown flag: the bound on how long shutdown waits
/// for a connection that is not in a request.
const POLL: Duration = Duration::from_millis(50);

/// A running admin server. [`AdminServer::shutdown`] (or dropping it) stops it gracefully.
pub struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Mutex<Option<JoinHandle<()>>>,
    store: Store,
}

impl std::fmt::Debug for AdminServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AdminServer {
    /// Serve `store`'s admin socket at `path` with the default [`AdminOptions`], on
    /// background threads, until the returned server is shut down or dropped.
    pub fn start(store: &Store, path: impl AsRef<Path>) -> Result<AdminServer> {
        AdminServer::start_with(store, path, AdminOptions::default())
    }

    /// [`AdminServer::start`] with explicit limits and hooks. The socket file is created
    /// with mode 0600 (only its owner can connect); a live socket already at `path` is an
    /// error, a stale one (no server behind it) is replaced.
    pub fn start_with(
        store: &Store,
        path: impl AsRef<Path>,
        opts: AdminOptions,
    ) -> Result<AdminServer> {
        AdminServer::start_ctx(
            store,
            #[cfg(feature = "replication")]
            None,
            path.as_ref(),
            opts,
        )
    }

    /// Serve a replica's admin socket: every request runs on the generation the replica
    /// serves at that moment, writes answer `read_only`, and `stats` carries the replica's
    /// generation, lag and last poll.
    #[cfg(feature = "replication")]
    pub fn start_replica(
        replica: &crate::Replica,
        path: impl AsRef<Path>,
        opts: AdminOptions,
    ) -> Result<AdminServer> {
        AdminServer::start_ctx(&replica.store(), Some(replica.clone()), path.as_ref(), opts)
    }

    fn start_ctx(
        store: &Store,
        #[cfg(feature = "replication")] replica: Option<crate::Replica>,
        path: &Path,
        opts: AdminOptions,
    ) -> Result<AdminServer> {
        let path = path.to_path_buf();
        let listener = socket::bind(&path)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("configuring admin socket", &path, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let ctx = Arc::new(commands::Ctx {
            store: store.clone(),
            #[cfg(feature = "replication")]
            replica,
            started: Instant::now(),
            log_level: opts.log_level.clone(),
            namespace: opts.namespace.clone(),
            connections: connections.clone(),
        });
        let thread_stop = stop.clone();
        let accept = std::thread::Builder::new()
            .name("recostore-admin".into())
            .spawn(move || accept_loop(listener, ctx, opts, thread_stop, connections))
            .map_err(|e| Error::io("starting the admin thread", &path, e))?;
        tracing::info!(socket = %path.display(), "admin socket serving");
        Ok(AdminServer {
            path,
            stop,
            accept: Mutex::new(Some(accept)),
            store: store.clone(),
        })
    }
}

impl AdminServer {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting, let every connection finish the request it is in, flush the store and
    /// remove the socket file. Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else {
            return Ok(());
        };
        let _ = handle.join();
        let _ = std::fs::remove_file(&self.path);
        tracing::info!(socket = %self.path.display(), "admin socket closed");
        self.store.flush()
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "flush after closing the admin socket failed");
        }
    }
}

/// Accept until stopped; then wait for the connection threads.
fn accept_loop(
    listener: std::os::unix::net::UnixListener,
    ctx: Arc<commands::Ctx>,
    opts: AdminOptions,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
) {
    let mut workers: Vec<(JoinHandle<()>, Arc<conn::ConnState>)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                workers.retain(|(w, _)| !w.is_finished());
                if connections.load(Ordering::SeqCst) >= opts.max_connections {
                    // Full: close the connection idle longest (at least `request_timeout`),
                    // so clients that connect and go quiet cannot lock operators out.
                    let idlest = workers
                        .iter()
                        .filter_map(|(_, s)| Some((s.idle_for()?, s)))
                        .filter(|(d, _)| *d >= opts.request_timeout)
                        .max_by_key(|(d, _)| *d);
                    match idlest {
                        Some((_, s)) => s.evict(),
                        None => {
                            conn::refuse(stream, &opts);
                            continue;
                        }
                    }
                }
                connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::new(conn::ConnState::new());
                let (ctx, opts, stop, count, st) = (
                    ctx.clone(),
                    opts.clone(),
                    stop.clone(),
                    connections.clone(),
                    state.clone(),
                );
                let spawned = std::thread::Builder::new()
                    .name("recostore-admin-conn".into())
                    .spawn(move || {
                        conn::serve(stream, &ctx, &opts, &stop, &st);
                        count.fetch_sub(1, Ordering::SeqCst);
                    });
                match spawned {
                    Ok(h) => workers.push((h, state)),
                    Err(e) => {
                        connections.fetch_sub(1, Ordering::SeqCst);
                        tracing::error!(error = %e, "could not start an admin connection thread");
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
    drop(listener);
    for (w, _) in workers {
        let _ = w.join();
    }
}

/// Answer one request line against `store` as a connection would (the fuzz target's entry).
#[cfg(feature = "fuzzing")]
pub(crate) fn respond_line(store: &Store, line: &[u8]) -> protocol::Response {
    let ctx = commands::Ctx {
        store: store.clone(),
        #[cfg(feature = "replication")]
        replica: None,
        started: std::time::Instant::now(),
        log_level: None,
        namespace: None,
        connections: Arc::new(AtomicUsize::new(1)),
    };
    conn::respond(&ctx, line)
}
