//! Offline compaction: `Store::compact` rewrites a store's files with its live data only.
//!
//! sled reclaims the space of replaced and removed values lazily, and may keep their bytes
//! in its files long after: a deleted user's id, searches and sessions could still be read
//! from the `db` directory after `delete_user`. Compaction copies the live keys into fresh
//! files (a backup, with everything that makes backups safe) and swaps the new directory with
//! the old in one atomic `renameat2(RENAME_EXCHANGE)`, then deletes the old one. Interrupted
//! at any moment, the store's path holds either the old store or the compacted one, whole.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// The store compacted.
    pub path: PathBuf,
    /// Bytes of the store directory before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Durable keys copied.
    pub keys: u64,
    /// Tag names that no record and no profile used (for example, those only a deleted user
    /// had), removed from the records and the segment before the copy.
    pub unused_tags_removed: u64,
    /// Records of bulk-loaded items that later writes or deletions replaced, dropped from
    /// the bulk chunks before the copy (FORMAT.md, "Bulk loads").
    pub stale_chunk_records: u64,
    /// Item records the copy packed into bulk chunks: all but those of the items the dirty
    /// log names (written since the last rebuild, or whose entries a failed cleanup left),
    /// which stay keys for open to read. sled opens a thousand chunk values far faster than
    /// a million keys.
    pub packed_records: u64,
}

/// Bytes of the files under `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Swap directories `a` and `b` atomically.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call;
    // renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "compaction needs an atomic directory exchange (Linux renameat2)",
    ))
}

/// Where a compaction builds the new files, and how it swaps them in.
pub(crate) struct Plan {
    /// The store's directory, resolved.
    real: PathBuf,
    /// The fresh copy, beside it (after the swap: the old files).
    pub(crate) fresh: PathBuf,
}

impl Plan {
    /// Plan the compaction of the store in `dir`, removing what an interrupted one left.
    pub(crate) fn new(dir: &Path) -> Result<Plan> {
        let real = dir
            .canonicalize()
            .map_err(|e| Error::io("resolving", dir, e))?;
        let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
            return Err(Error::io(
                "compacting",
                dir,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a store directory"),
            ));
        };
        let fresh = parent.join(format!(
            ".{}.compact-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh)
                .map_err(|e| Error::io("removing an old compaction leftover", &fresh, e))?;
        }
        Ok(Plan { real, fresh })
    }

    /// Swap the fresh copy with the store's files, in one atomic exchange. Call it while the
    /// store is still open (and locked): no other process can then open the old files and
    /// write to what is about to be deleted.
    pub(crate) fn exchange(&self) -> Result<()> {
        exchange(&self.real, &self.fresh)
            .map_err(|e| Error::io("swapping in the compacted store", &self.real, e))
    }

    /// After the store was closed: delete the old files (or, if the exchange failed, the
    /// fresh copy) and report.
    pub(crate) fn finish(
        self,
        swapped: Result<()>,
        dir: &Path,
        bytes_before: u64,
        copied: &crate::backup::BackupReport,
        unused_tags_removed: u64,
        stale_chunk_records: u64,
    ) -> Result<CompactReport> {
        if let Err(e) = swapped {
            let _ = std::fs::remove_dir_all(&self.fresh);
            return Err(e);
        }
        std::fs::remove_dir_all(&self.fresh)
            .map_err(|e| Error::io("removing the old store files", &self.fresh, e))?;
        tracing::info!(store = %self.real.display(), before = bytes_before, "store compacted");
        Ok(CompactReport {
            path: dir.to_path_buf(),
            bytes_before,
            bytes_after: dir_bytes(dir),
            keys: copied.keys,
            unused_tags_removed,
            stale_chunk_records,
            packed_records: copied.packed_records,
        })
    }
}
