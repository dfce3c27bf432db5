//! [`Progress`]: how long work (imports, neighbour-list builds) tells the caller how far it
//! has got. The library draws nothing; the CLI turns these reports into progress bars, an app
//! into a log line or a metric.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One report: which stage, and how far into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressUpdate<'a> {
    /// What is running: a file's name for an import, `"neighbour lists"` for that build.
    pub stage: &'a str,
    /// Units done so far (bytes read for an import, items for a build).
    pub done: u64,
    /// Units in the stage; 0 when unknown (reading stdin).
    pub total: u64,
    /// The stage ended (this is its last report).
    pub finished: bool,
}

/// A callback for [`ProgressUpdate`]s, set in [`crate::Config::progress`] or
/// [`crate::import::ImportOptions::progress`]. It is called from the working threads, often
/// (every read of an import, every 64 items of a build): keep it cheap.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(&ProgressUpdate<'_>) + Send + Sync>);

impl Progress {
    /// Report to `f`.
    pub fn new(f: impl Fn(&ProgressUpdate<'_>) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(f))
    }

    fn report(&self, update: &ProgressUpdate<'_>) {
        (self.0)(update)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// Two callbacks are equal when they are the same callback (so a `Config` compares).
impl PartialEq for Progress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One stage's counter, shared by the threads doing its work. Without a callback it costs an
/// atomic add.
pub(crate) struct Meter {
    to: Option<Progress>,
    stage: String,
    total: u64,
    done: AtomicU64,
}

impl Meter {
    pub(crate) fn new(to: Option<&Progress>, stage: impl Into<String>, total: u64) -> Meter {
        Meter {
            to: to.cloned(),
            stage: stage.into(),
            total,
            done: AtomicU64::new(0),
        }
    }

    /// Count `n` more units done.
    pub(crate) fn add(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(to) = &self.to {
            to.report(&ProgressUpdate {
                stage: &self.stage,
                done,
                total: self.total,
                finished: false,
            });
        }
    }

    /// The stage ended.
    pub(crate) fn finish(&self) {
        if let Some(to) = &self.to {
            to.report(&ProgressUpdate {
                stage: &self.stage,
                done: self.done.load(Ordering::Relaxed),
                total: self.total,
                finished: true,
            });
        }
    }
}

/// A reader that counts the bytes read through it into a [`Meter`].
pub(crate) struct Metered<R> {
    inner: R,
    meter: Arc<Meter>,
}

impl<R> Metered<R> {
    pub(crate) fn new(inner: R, meter: Arc<Meter>) -> Metered<R> {
        Metered { inner, meter }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_metered_read_reports_every_byte_and_the_end() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let p = Progress::new(move |u| {
            log.lock()
                .expect("log")
                .push((u.stage.to_string(), u.done, u.total, u.finished))
        });
        let meter = Arc::new(Meter::new(Some(&p), "file.csv", 10));
        let mut r = Metered::new(&b"0123456789"[..], meter.clone());
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        meter.finish();
        let seen = seen.lock().expect("log");
        let last = seen.last().expect("reports");
        assert_eq!(last, &("file.csv".to_string(), 10, 10, true));
        assert!(seen[..seen.len() - 1].iter().all(|r| !r.3 && r.1 <= 10));
    }
}
