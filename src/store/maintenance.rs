//! Operators' work on a whole store, each a delegation to the module that owns the idea:
//! export (`export`), the deep check (`verify`), backup (`backup`), compaction (`compact`).
//! The store lends what each needs (durable records, a snapshot, held writes); the modules
//! never see a `Store`.

use std::path::Path;

use super::Store;
use crate::backup::{self, BackupReport};
use crate::codec;
use crate::compact::{self, CompactReport};
use crate::config::Config;
use crate::error::Result;
use crate::export::{self, ExportSummary};
use crate::verify::{self, VerifyReport};

impl Store {
    /// Write `items.jsonl`, `users.jsonl` and `events.jsonl` into `dir` (created if needed;
    /// existing files of those names are replaced). Safe while the store is being written to.
    pub fn export_jsonl(&self, dir: impl AsRef<Path>) -> Result<ExportSummary> {
        export::export_jsonl(&self.snapshot(), self.tree(), dir.as_ref())
    }

    /// Check the whole store: the segment's checksum and its binding to this store, every
    /// durable key (read through sled's own checksums), every record against what queries
    /// serve, and every user's event log against their behaviour state. Returns what it
    /// found; `Err` only when the check itself could not run. Writes wait while it runs; it
    /// costs about a full read of the store (seconds at 1M items).
    pub fn verify_deep(&self) -> Result<VerifyReport> {
        let store_tag = self.store_tag();
        self.paused(|tree, snap, seg_dir| {
            let mut report = verify::deep(store_tag, tree, snap)?;
            // Paused and flushed: sled's counters are current.
            let bounds = crate::delta::file::Bounds {
                next_item: super::open::meta_u32(tree, codec::META_NEXT_ITEM)?,
                next_user: super::open::meta_u32(tree, codec::META_NEXT_USER)?,
                seq: super::open::meta_u64(tree, codec::META_SEQ)?,
            };
            verify::delta_file(&mut report, seg_dir, snap, store_tag, bounds);
            Ok(report)
        })
    }

    /// Give back the space sled holds for replaced and removed values, while the store keeps
    /// serving: the live durable data is copied into fresh files, which then replace the old
    /// ones (see [`crate::Config::reclaim_growth`], which does this in the background).
    /// Queries go on throughout; writes wait for the copy, about two seconds per 100 MB of
    /// live data ([`crate::ReclaimReport::writes_held_seconds`]; the durable module's docs say
    /// why they cannot go on). It needs free space for one more copy of the live data.
    ///
    /// Killed at any moment, the store opens whole: on the old files if the copy was not yet
    /// complete, on the new ones if it was (the rename of the file `CURRENT` decides, see
    /// FORMAT.md); the other directory is removed at that open. Unlike [`Store::compact`] it
    /// keeps the names of unused tags, and needs no exclusive hold on the store.
    pub fn reclaim_space(&self) -> Result<crate::ReclaimReport> {
        self.inner.reclaim()?.ok_or_else(|| {
            crate::Error::io(
                "reclaiming space in",
                self.dir(),
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "this store's durable layer has no files",
                ),
            )
        })
    }

    /// Copy this store to `to`, a directory that must not exist yet (or be empty), as of one
    /// instant, while it keeps serving queries. Writes wait for the copy; it reads every
    /// durable key once, so it takes about as long as a scan of the store.
    ///
    /// The copy is built in a hidden directory beside `to`, marked as incomplete
    /// ([`crate::INCOMPLETE_MARKER`]), synced, and renamed to `to` only when whole: a backup
    /// interrupted at any moment leaves no directory at `to`, and its leftover refuses to open
    /// as a store. Of several backups to one new path at once, one wins and the others fail.
    /// A path inside the live store (however spelled: `..`, symlinks) is refused.
    ///
    /// Each backup is remembered in the store (the last 1,000, [`Store::backups`]), so that a
    /// later [`Store::forget_users`] can list the backups that still hold the users.
    pub fn backup(&self, to: impl AsRef<Path>) -> Result<BackupReport> {
        self.copy_to(to.as_ref(), false)
    }

    /// [`Store::backup`], with the item records packed into bulk chunks when `pack` is set.
    fn copy_to(&self, to: &Path, pack: bool) -> Result<BackupReport> {
        let modules_from = self.dir().join(crate::plugin::MODULES_DIR);
        // A namespace's backup must not land inside the store that holds it either.
        backup::run(self.root_dir(), to, |work| {
            let seg_to = backup::prepare(work)?;
            // Plugin changes wait too: the copied records name exactly the copied modules.
            self.plugins().hold_writes(|| {
                self.paused(|tree, snap, seg_dir| {
                    let pack = match pack {
                        true => Some(self.packing(tree)?),
                        false => None,
                    };
                    backup::copy(
                        tree,
                        snap,
                        seg_dir,
                        &modules_from,
                        work,
                        &seg_to,
                        pack.as_ref(),
                    )
                    .and_then(|mut report| {
                        // A backup of the store takes its namespaces along (compaction
                        // is a backup too); one of a namespace is that namespace alone.
                        if !tree.is_namespace() {
                            report.keys += backup::copy_namespaces(tree, self.dir(), work)?;
                        }
                        if pack.is_none() {
                            self.log_backup(to)?;
                        }
                        Ok(report)
                    })
                })
            })
        })
    }

    /// Remember a backup to `to` ([`Store::backups`]), still under the paused writer and
    /// rebuild lock: a deletion's receipt reads the log after its fold, and so lists every
    /// backup that could have copied the segment from before it. A backup that then fails to
    /// land stays listed, which errs on the side of the receipt. A replica remembers none (it
    /// writes nothing).
    fn log_backup(&self, to: &Path) -> Result<()> {
        if self.tree().is_read_only() {
            return Ok(());
        }
        let path = match to.parent().map(std::fs::canonicalize) {
            Some(Ok(dir)) => to.file_name().map_or_else(|| dir.clone(), |n| dir.join(n)),
            _ => std::path::absolute(to).unwrap_or_else(|_| to.to_path_buf()),
        };
        crate::forget::log_backup(self.tree(), &path, self.namespace_name())?;
        self.tree().flush()
    }

    /// What packing needs to know, read under the paused writer: the items the dirty log
    /// names (open reads their records from their `I` keys) and the bound past every id.
    fn packing(&self, tree: &crate::durable::Db) -> Result<backup::Pack> {
        let mut keep = std::collections::HashSet::new();
        for kv in tree.scan_prefix(b"D") {
            let (k, _) = kv?;
            if let (codec::Kind::Item, id) = codec::parse_dirty_key(&k)? {
                keep.insert(id);
            }
        }
        // The caller paused the writer and flushed: the counters in sled are current.
        let next_item = super::open::meta_u32(tree, codec::META_NEXT_ITEM)?;
        let chunked = super::open::meta_u32(tree, codec::META_CHUNKED)?;
        Ok(backup::Pack {
            keep,
            chunked: chunked.max(next_item),
        })
    }

    /// Rewrite the store in `dir` with its live data only (see `compact`'s module docs): first
    /// the names of tags that no record and no profile uses leave the records and the segment
    /// (a deleted user's own tags, say), and bulk chunks drop the records that later writes
    /// or deletions replaced, then the live keys are copied to fresh files. The
    /// store must not be open elsewhere ([`crate::Error::Locked`] otherwise); it needs free
    /// space for one more copy of the live data while it runs.
    pub fn compact(dir: impl AsRef<Path>, config: Config) -> Result<CompactReport> {
        let dir = dir.as_ref();
        let bytes_before = compact::dir_bytes(dir);
        let store = Store::open_with(dir, config)?;
        let plan = compact::Plan::new(dir)?;
        // This process holds the store alone: no write can name a tag while it is dropped.
        let unused = store.inner.forget_unused_tags()?;
        let (stale, _tombstones) = store.inner.prune_chunks()?;
        // Pruned, chunk records and `I` records are disjoint: the copy packs both.
        let report = store.copy_to(&plan.fresh, true)?;
        // The store stays open (and locked) across the exchange. Its directory then holds
        // the compacted copy, whose delta no close of this store may write.
        store
            .inner
            .save_on_close
            .store(false, std::sync::atomic::Ordering::Release);
        let swapped = plan.exchange();
        drop(store);
        plan.finish(swapped, dir, bytes_before, &report, unused, stale)
    }
}
