//! Forgetting customers with a receipt, and checking the raw files for them, on [`Store`]
//! (the receipt's types and the scan are in `crate::forget`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Store;
use crate::error::Result;
use crate::forget::{self, DeletionReceipt, ForgottenReport};

/// How long a receipt waits for readers to let go of the files the users' bytes were in.
const FILES_WAIT: Duration = Duration::from_secs(5);

impl Store {
    /// Delete user `id` and everything they did, and make their bytes leave the store's
    /// files; see [`Store::forget_users`].
    pub fn forget_user(&self, id: &str) -> Result<DeletionReceipt> {
        self.forget_users(&[id])
    }

    /// Delete users as [`Store::delete_users`] does (records, event log, behaviour state,
    /// baskets and sessions, exposure memory, cursors), then make their bytes leave every file
    /// of the store: a fold writes a segment generation without them and retires the ones
    /// that held them, a reclaim rewrites sled's files with the live pairs only (so the values
    /// sled had freed but kept go too), and the call waits (up to 5 s) until the files those
    /// replaced are unlinked. The receipt counts what was taken back, says from when no file
    /// held their bytes (or which files a reader of this process still holds open), and lists
    /// the backups taken before, which still hold them.
    ///
    /// Costs a fold and a reclaim (seconds on a large store; writes wait for the reclaim's
    /// copy). For many users, pass them in one call. In a namespace, the fold is the
    /// namespace's and the reclaim rewrites the sled every namespace shares. Ids the store
    /// does not hold are listed in the receipt and cost nothing. If the fold or the reclaim
    /// fails, the users are deleted already (a retry lists them as not found):
    /// [`Store::verify_forgotten`] finishes the job.
    pub fn forget_users(&self, ids: &[&str]) -> Result<DeletionReceipt> {
        let mut not_found = Vec::new();
        for id in ids {
            if !not_found.iter().any(|n: &String| n == id) && self.get_user(id).is_none() {
                not_found.push((*id).to_string());
            }
        }
        let unused_before = self.snapshot().unused_tags().len();
        let before = self.snapshot().segment.generation();
        // No background fold of its own: the fold below is the one that counts.
        let (deleted, taken) = self.delete_users_with(ids, false)?;
        not_found.retain(|n| !deleted.contains(n));
        let mut receipt = DeletionReceipt {
            deleted,
            not_found,
            events_removed: taken.events,
            events_pruned_earlier: taken.pruned,
            baskets_taken_back: taken.baskets,
            sessions_taken_back: taken.sessions,
            cooccurrence_lines: taken.lines,
            derived_tags_purged: taken.derived_tags,
            shows_purged: taken.shows,
            generation: before,
            generations_retired: Vec::new(),
            own_tag_names_kept: 0,
            sled_bytes_before: 0,
            sled_bytes_after: 0,
            bytes_gone_at_ms: None,
            files_held: Vec::new(),
            backups_before: Vec::new(),
        };
        if receipt.deleted.is_empty() {
            return Ok(receipt);
        }
        // Every generation up to the one current after the deletion held them (a fold
        // between the two reads only makes this wait for one more).
        let held_up_to = self.snapshot().segment.generation();
        let fail = |e: crate::Error| {
            tracing::error!(error = %e, users = ?receipt.deleted, "the users are deleted, but their bytes may remain in the store's files: Store::verify_forgotten finishes the job");
            e
        };
        let fold = self.rebuild().map_err(fail)?;
        // After the fold: a backup copies under the rebuild lock and logs itself inside it, so
        // every backup that could have copied the old segment is in the log by now.
        receipt.backups_before = forget::backups(self.tree(), self.namespace_name())?;
        let reclaim = self.reclaim_space().map_err(fail)?;
        receipt.generation = fold.generation;
        receipt.generations_retired = (before..fold.generation).filter(|&g| g > 0).collect();
        receipt.own_tag_names_kept = self
            .snapshot()
            .unused_tags()
            .len()
            .saturating_sub(unused_before) as u64;
        receipt.sled_bytes_before = reclaim.bytes_before;
        receipt.sled_bytes_after = reclaim.bytes_after;
        receipt.files_held = self.wait_for_replaced_files(held_up_to);
        if receipt.files_held.is_empty() {
            receipt.bytes_gone_at_ms = Some(forget::now_ms());
        }
        Ok(receipt)
    }

    /// Look for `id` in every file of the store, byte by byte: sled's files (rewritten with
    /// the live pairs first, so that what sled freed but kept is not mistaken for what the
    /// store holds), the segment, neighbour and delta files, plugin modules and every
    /// namespace's files, a file at a time in memory. Each place the id's bytes occur as a
    /// whole token is reported; after
    /// [`Store::forget_users`] there is none, unless an item, a tag or another namespace's
    /// user has the same name (the scan reads bytes, not records, and says so).
    ///
    /// [`Store::verify_deep`] runs with it ([`ForgottenReport::problems`]): the event log is
    /// keyed by users' numbers, and the deep check is what finds a deleted user's events.
    pub fn verify_forgotten(&self, id: &str) -> Result<ForgottenReport> {
        self.reclaim_space()?;
        let current = self.snapshot().segment.generation();
        self.wait_for_replaced_files(current.saturating_sub(1));
        let mut report = forget::scan(self.root_dir(), id)?;
        report.problems = self.verify_deep()?.problems;
        Ok(report)
    }

    /// The backups that hold this store, oldest first (of the last 1,000 taken): those of
    /// the whole store, and in a namespace also the namespace's own.
    pub fn backups(&self) -> Result<Vec<forget::BackupRecord>> {
        forget::backups(self.tree(), self.namespace_name())
    }

    /// Wait until the segment files of generations up to `up_to` and sled's replaced
    /// directories are unlinked, up to [`FILES_WAIT`]; returns those still there.
    fn wait_for_replaced_files(&self, up_to: u64) -> Vec<PathBuf> {
        let until = Instant::now() + FILES_WAIT;
        loop {
            let held = self.replaced_files(up_to);
            if held.is_empty() || Instant::now() >= until {
                return held;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn replaced_files(&self, up_to: u64) -> Vec<PathBuf> {
        let mut held = crate::durable::replaced_dirs(self.root_dir());
        if let Ok(entries) = std::fs::read_dir(&self.inner.seg_dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                // `<generation, 20 digits>.seg` / `.nbr` / `.dlt` (a `.tmp` is being written,
                // of a newer generation).
                let generation = name
                    .to_str()
                    .filter(|n| !n.ends_with(".tmp"))
                    .and_then(|n| n.split('.').next())
                    .and_then(|g| g.parse::<u64>().ok());
                if generation.is_some_and(|g| g <= up_to) {
                    held.push(e.path());
                }
            }
        }
        held.sort();
        held
    }
}
