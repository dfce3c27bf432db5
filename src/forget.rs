//! Forgetting a customer, with proof: what a deletion takes back (the receipt), the log of
//! backups that still hold what was deleted, and the scan of a store's raw files for an id's
//! bytes (`Store::verify_forgotten`).
//!
//! The deletion itself is `Store::delete_users` (the records, the event log, the behaviour
//! state, baskets and sessions in the same batch); `Store::forget_users` adds what makes the
//! bytes go too, in `store/forget.rs`: a fold (the segment files are rewritten without the
//! users), a reclaim (sled's files are rewritten with live pairs only), and a wait until the
//! files they replaced are unlinked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sled key of the backup log: bincode of `Vec<BackupRecord>`, oldest first.
pub(crate) const META_BACKUPS: &[u8] = b"Mbackups";

/// Backups the log keeps (the oldest go first).
const BACKUPS_KEPT: usize = 1_000;

/// What one deletion took back from the behaviour state; summed over the users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Taken {
    /// Events of the users' logs.
    pub events: u64,
    /// Events retention had pruned from their logs earlier (still counted in the totals).
    pub pruned: u64,
    /// Purchase baskets taken out of "bought together".
    pub baskets: u64,
    /// View sessions taken out of "viewed together".
    pub sessions: u64,
    /// Item lines those baskets and sessions held.
    pub lines: u64,
    /// Tags derived from the users' behaviour.
    pub derived_tags: u64,
    /// Shows of the users' exposure memories.
    pub shows: u64,
}

impl Taken {
    pub(crate) fn add(&mut self, o: &Taken) {
        self.events += o.events;
        self.pruned += o.pruned;
        self.baskets += o.baskets;
        self.sessions += o.sessions;
        self.lines += o.lines;
        self.derived_tags += o.derived_tags;
        self.shows += o.shows;
    }
}

/// A backup taken of this store ([`crate::Store::backup`]), as the backup log remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Where the backup was written.
    pub path: PathBuf,
    /// When it was finished, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The namespace backed up alone; `None`: the whole store, every namespace included.
    pub namespace: Option<String>,
}

/// What [`crate::Store::forget_users`] did: everything the deletion took back, and the moment
/// from which no file of the store held the users' bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletionReceipt {
    /// The users that existed and were deleted.
    pub deleted: Vec<String>,
    /// The ids asked for that the store did not hold (nothing was done for them).
    pub not_found: Vec<String>,
    /// Events taken out of their logs.
    pub events_removed: u64,
    /// Events retention had pruned from their logs before (gone from the files then; taken
    /// out of the totals now).
    pub events_pruned_earlier: u64,
    /// Purchase baskets whose co-occurrence ("bought together", complements) was taken back.
    pub baskets_taken_back: u64,
    /// View sessions whose co-occurrence ("viewed together", substitutes) was taken back.
    pub sessions_taken_back: u64,
    /// Item lines of those baskets and sessions: every pair they added is gone, exactly.
    pub cooccurrence_lines: u64,
    /// Tags derived from their behaviour, purged with their profiles.
    pub derived_tags_purged: u64,
    /// Shows of their exposure memories, purged.
    pub shows_purged: u64,
    /// The segment generation folded without them.
    pub generation: u64,
    /// The segment generations current from just before the deletion up to that fold, all
    /// retired now (an older generation a reader still held would be in
    /// [`Self::files_held`]).
    pub generations_retired: Vec<u64>,
    /// Names of tags that only these users had (their own tags, or derived ones): no record
    /// uses them any more, but the names stay in sled and the segment until `recostore
    /// compact` (which needs the store to itself) removes them. Not in the scan unless the
    /// id is part of a name.
    pub own_tag_names_kept: u64,
    /// Bytes of sled's files before and after they were rewritten with the live pairs only.
    pub sled_bytes_before: u64,
    /// See [`DeletionReceipt::sled_bytes_before`].
    pub sled_bytes_after: u64,
    /// When the last file that held their bytes was unlinked, in milliseconds since the Unix
    /// epoch; `None` while a reader of this process still holds one ([`Self::files_held`]),
    /// or when no user was deleted. Events or served answers that name an id after the
    /// deletion make that user anew: the receipt is about what was there before.
    pub bytes_gone_at_ms: Option<u64>,
    /// Files that held their bytes and were still open when the receipt was written (a
    /// [`crate::View`] or a scan an app keeps); each is unlinked when its last reader lets
    /// go. Empty when [`Self::bytes_gone_at_ms`] is set.
    pub files_held: Vec<PathBuf>,
    /// Backups taken before the fold (of the last 1,000 the store remembers): they may hold
    /// the users, and must be deleted or forgotten in too (restore one, forget the users in
    /// it, back it up again). Copies the store does not take (exports, published
    /// generations, file-system snapshots) are not known to it.
    pub backups_before: Vec<BackupRecord>,
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| crate::narrow::u64_from(d.as_millis()))
}

/// The backups that hold namespace `namespace` (`None`: the default one): those of the whole
/// store and its own. The log is the whole store's, kept with its own keys.
pub(crate) fn backups(
    tree: &crate::durable::Db,
    namespace: Option<&str>,
) -> Result<Vec<BackupRecord>> {
    let all: Vec<BackupRecord> = match tree.root().get(META_BACKUPS)? {
        Some(v) => crate::codec::decode(META_BACKUPS, &v)?,
        None => Vec::new(),
    };
    Ok(all
        .into_iter()
        .filter(|b| b.namespace.is_none() || b.namespace.as_deref() == namespace)
        .collect())
}

/// Add the backup at `path` of namespace `namespace` (`None`: the whole store) to the
/// backup log (a compare-and-swap loop: backups may finish at once).
pub(crate) fn log_backup(
    tree: &crate::durable::Db,
    path: &Path,
    namespace: Option<&str>,
) -> Result<()> {
    let tree = tree.root();
    loop {
        let old = tree.get(META_BACKUPS)?;
        let mut log: Vec<BackupRecord> = match &old {
            Some(v) => crate::codec::decode(META_BACKUPS, v)?,
            None => Vec::new(),
        };
        log.push(BackupRecord {
            path: path.to_path_buf(),
            at_ms: now_ms(),
            namespace: namespace.map(str::to_string),
        });
        let drop = log.len().saturating_sub(BACKUPS_KEPT);
        log.drain(..drop);
        let new = crate::codec::encode(META_BACKUPS, &log)?;
        if tree.compare_and_swap(META_BACKUPS, old.as_deref(), Some(&new))? {
            return Ok(());
        }
    }
}

/// One place a file holds an id's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// The byte offset of the id in it.
    pub offset: u64,
    /// Whether the bytes around it are not id characters (letters, digits, `-`, `_`, `.`,
    /// `@`). A match inside a longer string is reported too, as `false`: the segment stores
    /// names back to back, and a longer id (`cust-7-order-0`) may carry it.
    pub whole_token: bool,
}

/// What [`crate::Store::verify_forgotten`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForgottenReport {
    /// The id searched for.
    pub id: String,
    /// Files read: every regular file under the store's directory.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Every place the id's bytes occur, at most 100 of them. An item, a tag, another
    /// namespace's user or a longer id that contains it is found too: the scan reads bytes,
    /// not records.
    pub found: Vec<Found>,
    /// Whether more were found than listed.
    pub more: bool,
    /// Entries under the directory that are not regular files and were not read (the admin
    /// socket, a symbolic link).
    pub not_read: Vec<PathBuf>,
    /// What [`crate::Store::verify_deep`] found wrong, run with the scan. The event log is
    /// keyed by a user's number, not their id, so a deleted user's events left in it would
    /// not show in the byte scan; the deep check finds them, because every logged event must
    /// belong to a user whose behaviour state counts it.
    pub problems: Vec<String>,
}

impl ForgottenReport {
    /// Whether no file holds the id's bytes and the deep check found nothing wrong.
    pub fn clean(&self) -> bool {
        self.found.is_empty() && self.problems.is_empty()
    }
}

/// Most places a report lists.
const MAX_FOUND: usize = 100;

/// Bytes read at a time.
const CHUNK: usize = 8 << 20;

/// Whether `b` can be part of an id next to a match.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@')
}

/// Scan every regular file under `dir` for `id`'s bytes, a file at a time in chunks of
/// [`CHUNK`] (so a file of any size is read in bounded memory).
pub(crate) fn scan(dir: &Path, id: &str) -> Result<ForgottenReport> {
    let mut report = ForgottenReport {
        id: id.to_string(),
        files: 0,
        bytes: 0,
        found: Vec::new(),
        more: false,
        not_read: Vec::new(),
        problems: Vec::new(),
    };
    if id.is_empty() {
        return Err(Error::InvalidQuery {
            reason: "an empty id cannot be searched for".into(),
        });
    }
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // Removed since it was listed (sled's replaced files, a retired segment).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => return Err(Error::io("reading", &d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading", &d, e))?;
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("reading", &path, e)),
            };
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                scan_file(&path, id.as_bytes(), &mut report)?;
            } else {
                report.not_read.push(path);
            }
        }
    }
    report
        .found
        .sort_by(|a, b| (&a.path, a.offset).cmp(&(&b.path, b.offset)));
    report.not_read.sort();
    Ok(report)
}

fn scan_file(path: &Path, needle: &[u8], report: &mut ForgottenReport) -> Result<()> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    report.files += 1;
    let finder = memchr::memmem::Finder::new(needle);
    // `buf` holds the tail of the previous chunk (one byte more than the needle, so a match
    // across the boundary is seen whole with the byte before it) and then the new chunk;
    // `base` is the file offset of `buf[0]`.
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + needle.len() + 1);
    let mut base = 0u64;
    let mut kept = 0usize;
    loop {
        let start = buf.len();
        buf.resize(start + CHUNK, 0);
        let n = match file.read(&mut buf[start..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        buf.truncate(start + n);
        report.bytes += n as u64;
        let last = n == 0;
        for at in finder.find_iter(&buf) {
            // A match that reaches the end of a chunk that is not the last waits for the next
            // (which has the byte after it): it ends exactly at the kept tail's end there.
            // One that ends before that was reported with the previous chunk.
            if at + needle.len() < kept || (!last && at + needle.len() >= buf.len()) {
                continue;
            }
            let before = at.checked_sub(1).and_then(|i| buf.get(i));
            let after = buf.get(at + needle.len());
            if report.found.len() == MAX_FOUND {
                report.more = true;
                return Ok(());
            }
            report.found.push(Found {
                path: path.to_path_buf(),
                offset: base + at as u64,
                whole_token: !before.is_some_and(|&b| token_byte(b))
                    && !after.is_some_and(|&b| token_byte(b)),
            });
        }
        if last {
            return Ok(());
        }
        let keep = (needle.len() + 1).min(buf.len());
        let drop = buf.len() - keep;
        buf.drain(..drop);
        base += drop as u64;
        kept = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(r: &ForgottenReport) -> Vec<(String, u64, bool)> {
        r.found
            .iter()
            .map(|f| {
                let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), f.offset, f.whole_token)
            })
            .collect()
    }

    #[test]
    fn every_occurrence_is_found_and_whole_tokens_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        std::fs::write(dir.path().join("a"), b"\x05u-17\x00 xu-17 u-17.x").expect("a");
        std::fs::write(dir.path().join("sub").join("b"), b"u-17").expect("b");
        let r = scan(dir.path(), "u-17").expect("scan");
        assert_eq!(
            places(&r),
            vec![
                ("a".into(), 1, true),
                ("a".into(), 8, false),
                ("a".into(), 13, false),
                ("b".into(), 0, true)
            ]
        );
        assert_eq!((r.files, r.bytes), (2, 23));
        assert!(!r.clean());
        assert!(scan(dir.path(), "").is_err());
    }

    #[test]
    fn matches_across_chunk_boundaries_are_found_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let needle = b"cust-42";
        let mut bytes = vec![0u8; 3 * CHUNK];
        // Straddling the first boundary, ending exactly at the second, and at the very end.
        let at = [
            CHUNK - 3,
            2 * CHUNK - needle.len(),
            3 * CHUNK - needle.len(),
        ];
        for &a in &at {
            bytes[a..a + needle.len()].copy_from_slice(needle);
        }
        std::fs::write(dir.path().join("big"), &bytes).expect("big");
        let r = scan(dir.path(), "cust-42").expect("scan");
        let got: Vec<u64> = r.found.iter().map(|f| f.offset).collect();
        assert_eq!(got, at.iter().map(|&a| a as u64).collect::<Vec<_>>());
        assert!(r.found.iter().all(|f| f.whole_token));
    }
}
