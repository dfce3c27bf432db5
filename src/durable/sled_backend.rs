//! The durable layer on sled: one tree, and the store directory's lock.

use std::path::Path;
use std::sync::Arc;

use super::{failed, Backend, Batch, Db, Iter, Repr, Value};
use crate::config::{Config, Durability};
use crate::error::{Error, Result};

/// The file whose exclusive lock says "a `Store` has this directory open". recostore takes it
/// before it opens sled, so a locked store is told apart by the lock call's own error kind
/// (`WouldBlock`), not by the text of sled's error.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long `open` keeps retrying a locked store before reporting [`Error::Locked`].
/// Dropping a `Store` releases sled's own file lock only once sled's flusher thread has wound
/// down, which can lag the drop by a few milliseconds; a close-then-reopen in one process must
/// not fail on that.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

struct Sled {
    db: sled::Db,
    tree: sled::Tree,
    /// Held (locked) for as long as this backend lives; dropped after `db`, so the directory
    /// counts as open until sled's handle is gone.
    _lock: std::fs::File,
}

fn value(v: sled::IVec) -> Value {
    Value(Repr::Sled(v))
}

impl Backend for Sled {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.tree.get(key).map_err(failed)?.map(value))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'_> {
        let iter = match end {
            Some(end) => self.tree.range(start.to_vec()..end.to_vec()),
            None => self.tree.range(start.to_vec()..),
        };
        Box::new(iter.map(|kv| kv.map(|(k, v)| (value(k), value(v))).map_err(failed)))
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        let mut b = sled::Batch::default();
        for (k, v) in batch.ops {
            match v {
                Some(v) => b.insert(k, v),
                None => b.remove(k),
            }
        }
        self.tree.apply_batch(b).map_err(failed)
    }

    fn compare_and_swap(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        Ok(self
            .tree
            .compare_and_swap(key, old, new)
            .map_err(failed)?
            .is_ok())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(failed)?;
        Ok(())
    }
}

/// Take the store directory's lock, waiting up to [`LOCK_WAIT`] for another handle to let go.
fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening the store's lock file", &path, e))?;
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking the store", &path, e))
            }
        }
    }
}

/// Open the sled database under `dir` (in `dir/db`), after taking the store's lock.
pub(crate) fn open(dir: &Path, config: &Config) -> Result<Db> {
    let lock = lock(dir)?;
    let flush_ms = match config.durability {
        Durability::GroupCommit { ms } => ms.max(1),
        Durability::Immediate => 500,
    };
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    let cache_capacity = config.cache_capacity_bytes;
    loop {
        // sled 0.34 panics on some damaged files instead of returning an error; a damaged
        // file is input, so the panic becomes a typed error here.
        let opened = std::panic::catch_unwind(|| {
            sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(cache_capacity)
                .flush_every_ms(Some(flush_ms))
                .open()
        })
        .map_err(|panic| Error::DamagedDatabase {
            dir: dir.to_path_buf(),
            reason: format!(
                "sled failed reading its files: {}",
                crate::error::panic_text(&panic)
            ),
        })?;
        match opened {
            Ok(db) => {
                let tree: sled::Tree = (*db).clone();
                return Ok(Db::new(Arc::new(Sled {
                    db,
                    tree,
                    _lock: lock,
                })));
            }
            // We hold the directory's lock, so an I/O error of these kinds here is sled's own
            // lock still held by the handle that let ours go a moment ago (see `LOCK_WAIT`),
            // or a real failure that is still there when the wait is over. Permission and
            // missing-file errors are reported at once.
            Err(sled::Error::Io(ref io))
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::Other | std::io::ErrorKind::WouldBlock
                ) && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Err(other) => return Err(failed(other)),
        }
    }
}
