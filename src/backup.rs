//! A consistent copy of a live store: `Store::backup`, behind the admin socket's `backup`.
//!
//! Writes and rebuilds wait while the copy runs; queries do not. The copy is a store directory
//! of its own (`Store::open` it, or copy it back in place of the original) holding every
//! durable record and event as of one instant, and the segment that was serving then.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::segment;
use crate::store::Store;

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// The new store directory.
    pub path: PathBuf,
    /// Durable keys copied (records, events, behaviour state, metadata).
    pub keys: u64,
    /// Segment generation copied.
    pub generation: u64,
    /// Bytes of segment (and neighbour) files copied.
    pub segment_bytes: u64,
}

impl Store {
    /// Copy this store to `to`, a directory that must not exist yet (or be empty), as of one
    /// instant, while it keeps serving queries. Writes wait for the copy; it reads every
    /// durable key once, so it takes about as long as a scan of the store.
    pub fn backup(&self, to: impl AsRef<Path>) -> Result<BackupReport> {
        let to = to.as_ref();
        let occupied = std::fs::read_dir(to).map(|mut d| d.next().is_some());
        if matches!(occupied, Ok(true)) {
            return Err(Error::io(
                "backing up to",
                to,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the directory is not empty; give a new path so no backup is overwritten",
                ),
            ));
        }
        if to.starts_with(self.dir()) {
            return Err(Error::io(
                "backing up to",
                to,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path is inside the store directory; choose a path outside it",
                ),
            ));
        }
        let seg_to = to.join("segments");
        std::fs::create_dir_all(&seg_to)
            .map_err(|e| Error::io("creating backup directory", &seg_to, e))?;
        self.paused(|tree, snap, seg_dir| {
            let copy = sled::Config::new().path(to.join("db")).open()?;
            let mut keys = 0u64;
            let mut batch = sled::Batch::default();
            for kv in tree.iter() {
                let (k, v) = kv?;
                batch.insert(k, v);
                keys += 1;
                if keys.is_multiple_of(10_000) {
                    copy.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            copy.apply_batch(batch)?;
            copy.flush()?;
            let generation = snap.segment.generation();
            let mut segment_bytes = 0;
            if generation > 0 {
                for name in [
                    segment::file::file_name(generation),
                    segment::neighbours::file_name(generation),
                ] {
                    let from = seg_dir.join(&name);
                    if name.ends_with(".nbr") && !from.exists() {
                        continue;
                    }
                    segment_bytes += std::fs::copy(&from, seg_to.join(&name))
                        .map_err(|e| Error::io("copying segment file", &from, e))?;
                }
            }
            tracing::info!(to = %to.display(), keys, generation, "backup written");
            Ok(BackupReport {
                path: to.to_path_buf(),
                keys,
                generation,
                segment_bytes,
            })
        })
    }
}
