//! The background publisher: a store published every few seconds, rounds with nothing new
//! skipped, failures logged and retried at the next round.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use object_store::path::Path as ObjPath;
use object_store::ObjectStore;
use serde::Serialize;

use super::{PublishOptions, PublishReport, StoreVersion};
use crate::store::Store;

/// What the background publisher has done so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PublisherStatus {
    /// Generations it committed.
    pub published: u64,
    /// Rounds skipped because nothing changed since the last publish.
    pub skipped: u64,
    /// Rounds that failed (each is retried at the next round).
    pub failed: u64,
    /// The last successful publish.
    pub last: Option<PublishReport>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
}

struct Shared {
    status: Mutex<PublisherStatus>,
    stop: (Mutex<bool>, Condvar),
    running: AtomicBool,
}

/// A store published every `every` to an object store, on a thread of its own, until
/// [`Publisher::stop`] or drop ([`Store::start_publisher`]). A round publishes only when a
/// write, a fold or a plugin change happened since the last one ([`StoreVersion`]).
pub struct Publisher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Publisher {
    pub(crate) fn start(
        store: Store,
        to: Arc<dyn ObjectStore>,
        prefix: ObjPath,
        every: Duration,
        opts: PublishOptions,
    ) -> crate::Result<Publisher> {
        let shared = Arc::new(Shared {
            status: Mutex::new(PublisherStatus::default()),
            stop: (Mutex::new(false), Condvar::new()),
            running: AtomicBool::new(true),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("recostore-publish".into())
            .spawn(move || {
                let mut last: Option<StoreVersion> = None;
                loop {
                    let version = StoreVersion::of(&store);
                    if last.as_ref() == Some(&version) {
                        lock(&theirs.status).skipped += 1;
                    } else {
                        match store.publish_with(&*to, &prefix, &opts) {
                            Ok(r) => {
                                tracing::info!(generation = r.generation, bytes_uploaded = r.bytes_uploaded, "published");
                                let mut st = lock(&theirs.status);
                                st.published += 1;
                                st.last = Some(r);
                                st.last_error = None;
                                last = Some(version);
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "publish failed; retrying at the next round");
                                let mut st = lock(&theirs.status);
                                st.failed += 1;
                                st.last_error = Some(e.to_string());
                            }
                        }
                    }
                    let (flag, cv) = &theirs.stop;
                    let guard = lock(flag);
                    let (guard, _) = cv
                        .wait_timeout_while(guard, every, |stopped| !*stopped)
                        .unwrap_or_else(|p| p.into_inner());
                    if *guard {
                        break;
                    }
                }
                theirs.running.store(false, Ordering::Release);
            })
            .map_err(|e| crate::Error::io("starting the publisher thread", "", e))?;
        Ok(Publisher {
            shared,
            thread: Some(thread),
        })
    }

    /// What it has done so far.
    pub fn status(&self) -> PublisherStatus {
        lock(&self.shared.status).clone()
    }

    /// Whether its thread is still running.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Stop after the publish in flight, if any, and wait for it.
    pub fn stop(mut self) -> PublisherStatus {
        self.halt();
        self.status()
    }

    fn halt(&mut self) {
        let (flag, cv) = &self.shared.stop;
        *lock(flag) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.halt();
    }
}
