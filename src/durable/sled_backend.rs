//! The durable layer on sled: one tree, the store directory's lock, and the rewrite that
//! reclaims sled's space.
//!
//! sled's files live in a directory of the store: `db` for a store never reclaimed, `db.N`
//! after the N-th reclaim. The file `CURRENT` names the one in use (no file: `db`). A reclaim
//! copies the live pairs into `db.N+1`, syncs it, and then replaces `CURRENT` by writing
//! `CURRENT.tmp`, syncing it and renaming it over `CURRENT` (then syncing the directory): the
//! rename is the moment of commit. Killed before it, the store opens on the old directory and
//! removes the half-made one; after it, on the new one, removing the old. Opening removes
//! every `db`/`db.N` directory that `CURRENT` does not name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{failed, Backend, Batch, Db, Iter, Repr, Rewrite, Value};
use crate::config::{Config, Durability};
use crate::error::{Error, Result};

/// The file naming the directory of sled's files (see the module docs).
const CURRENT: &str = "CURRENT";

/// The file whose exclusive lock says "a `Store` has this directory open". recostore takes it
/// before it opens sled, so a locked store is told apart by the lock call's own error kind
/// (`WouldBlock`), not by the text of sled's error.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long `open` keeps retrying a locked store before reporting [`Error::Locked`].
/// Dropping a `Store` releases sled's own file lock only once sled's flusher thread has wound
/// down, which can lag the drop by a few milliseconds; a close-then-reopen in one process must
/// not fail on that.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How sled is opened; kept to open the fresh files of a reclaim the same way.
#[derive(Debug, Clone)]
struct Settings {
    cache_capacity: u64,
    flush_ms: u64,
}

struct Sled {
    // Fields drop in order: sled's handles, then `retire` (which may remove the files they
    // used), then the lock.
    tree: sled::Tree,
    db: sled::Db,
    /// Removes this backend's directory once it is dropped, after a reclaim moved on.
    retire: Retire,
    /// The store directory.
    store_dir: PathBuf,
    /// N of `db.N` (0: `db`).
    generation: u64,
    settings: Settings,
    /// Held (locked) for as long as any backend of this store lives; dropped after `db`, so
    /// the directory counts as open until sled's handle is gone.
    _lock: Arc<std::fs::File>,
}

/// Removes a directory of sled's files when dropped, if armed: the old files once a reclaim
/// replaced them (when the last reader of the old backend lets go; a scan in flight keeps
/// them), or the fresh files of a reclaim that failed.
struct Retire {
    dir: PathBuf,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Retire {
    fn new(dir: PathBuf, armed: bool) -> Retire {
        Retire {
            dir,
            armed: Arc::new(armed.into()),
        }
    }

    fn arm(&self, armed: bool) {
        self.armed
            .store(armed, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for Retire {
    fn drop(&mut self) {
        if !self.armed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        // sled's flusher thread may still be winding down and write into the directory; a
        // failed removal is retried a few times, and what is left the next open removes.
        for attempt in 0..20 {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if attempt == 19 => {
                    tracing::warn!(dir = %self.dir.display(), error = %e,
                        "could not remove sled's replaced files; the next open removes them");
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(25)),
            }
        }
    }
}

/// The name of sled's directory after `generation` reclaims.
fn dir_name(generation: u64) -> String {
    match generation {
        0 => "db".to_string(),
        n => format!("db.{n}"),
    }
}

/// The generation a directory name stands for, if it is one of sled's directories.
fn parse_dir_name(name: &str) -> Option<u64> {
    match name {
        "db" => Some(0),
        _ => {
            let n = name.strip_prefix("db.")?;
            // Only the canonical spelling, so that `dir_name(parse(x)) == x`.
            let g: u64 = n.parse().ok()?;
            (g > 0 && dir_name(g) == name).then_some(g)
        }
    }
}

/// The generation `CURRENT` names (0 without the file).
fn current_generation(dir: &Path) -> Result<u64> {
    let path = dir.join(CURRENT);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let name = std::str::from_utf8(&text)
        .unwrap_or("")
        .trim_end_matches('\n');
    match parse_dir_name(name) {
        Some(g) if dir.join(name).is_dir() => Ok(g),
        Some(_) => Err(Error::DamagedDatabase {
            dir: dir.to_path_buf(),
            reason: format!(
                "{CURRENT} names `{name}`, which is missing; restore the store from a backup"
            ),
        }),
        None => Err(Error::DamagedDatabase {
            dir: dir.to_path_buf(),
            reason: format!(
                "{CURRENT} holds {:?}, not the name of sled's directory (`db` or `db.N`); \
                 restore the store from a backup",
                String::from_utf8_lossy(&text)
            ),
        }),
    }
}

/// Whether `dir` holds sled's files (a store has them from its first open on).
pub(crate) fn exists(dir: &Path) -> bool {
    dir.join(CURRENT).is_file() || dir.join("db").is_dir()
}

/// sled's directories under the store directory `dir` other than the current one: those a
/// reclaim replaced, until their last reader lets go (then they are removed).
pub(crate) fn replaced_dirs(dir: &Path) -> Vec<PathBuf> {
    let keep = current_generation(dir).unwrap_or(0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(parse_dir_name)
                .is_some_and(|g| g != keep)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Remove sled directories other than generation `keep`: what a reclaim killed before or
/// after its commit left behind.
fn remove_others(dir: &Path, keep: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(g) = name.to_str().and_then(parse_dir_name) else {
            continue;
        };
        if g != keep {
            let path = e.path();
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(dir = %path.display(), "removed sled files a reclaim left")
                }
                Err(e) => tracing::warn!(dir = %path.display(), error = %e,
                    "could not remove sled files a reclaim left"),
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(format!("{CURRENT}.tmp")));
}

/// fsync a directory, so that the names in it survive a power loss.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Make `generation` the one a crash recovers (the commit of a reclaim).
fn commit(dir: &Path, generation: u64) -> Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{CURRENT}.tmp"));
    let path = dir.join(CURRENT);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{}\n", dir_name(generation)).as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("replacing", &path, e))?;
    Ok(())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    crate::compact::dir_bytes(dir)
}

fn value(v: sled::IVec) -> Value {
    Value(Repr::Sled(v))
}

impl Backend for Sled {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.tree.get(key).map_err(failed)?.map(value))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'static> {
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

    fn file_bytes(&self) -> u64 {
        dir_bytes(&self.store_dir.join(dir_name(self.generation)))
    }

    fn begin_rewrite(&self) -> Result<Option<Box<dyn Rewrite>>> {
        let generation = self.generation + 1;
        let path = self.store_dir.join(dir_name(generation));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| Error::io("removing what an earlier reclaim left", &path, e))?;
        }
        // Armed from the start: dropped before its commit, the fresh files go.
        let retire = Retire::new(path.clone(), true);
        let db = open_files(&path, &self.settings)?;
        let tree: sled::Tree = (*db).clone();
        Ok(Some(Box::new(SledRewrite {
            fresh: Sled {
                tree,
                db,
                retire,
                store_dir: self.store_dir.clone(),
                generation,
                settings: self.settings.clone(),
                _lock: self._lock.clone(),
            },
            old_files: self.retire.armed.clone(),
        })))
    }
}

/// A reclaim's fresh sled files, `db.N+1` beside the store's `db.N`.
struct SledRewrite {
    fresh: Sled,
    /// The old backend's [`Retire`] switch, turned on at the commit.
    old_files: Arc<std::sync::atomic::AtomicBool>,
}

impl Rewrite for SledRewrite {
    fn apply(&self, batch: Batch) -> Result<()> {
        self.fresh.apply(batch)
    }

    fn commit(self: Box<Self>) -> Result<Box<dyn Backend>> {
        let fresh = &self.fresh;
        let path = fresh.store_dir.join(dir_name(fresh.generation));
        fresh.flush()?;
        sync_dir(&path).map_err(|e| Error::io("syncing", &path, e))?;
        commit(&fresh.store_dir, fresh.generation)?;
        // The rename is done: from here on the new files are the store's, whatever follows.
        fresh.retire.arm(false);
        match sync_dir(&fresh.store_dir) {
            Ok(()) => self
                .old_files
                .store(true, std::sync::atomic::Ordering::Release),
            // Until the directory is synced a power loss may bring the old name back, so the
            // old files stay (the next open removes whichever is not current).
            Err(e) => tracing::warn!(error = %e, "could not sync the store directory after a \
                reclaim; keeping the old files until the next open"),
        }
        let SledRewrite { fresh, .. } = *self;
        Ok(Box::new(fresh))
    }
}

/// Open sled's files in `path`. `Err` (the reason): sled panicked reading them, as sled 0.34
/// does on some damaged files instead of returning an error; a damaged file is input, so the
/// panic becomes a typed error.
fn try_open_files(
    path: &Path,
    settings: &Settings,
) -> std::result::Result<sled::Result<sled::Db>, String> {
    std::panic::catch_unwind(|| {
        sled::Config::new()
            .path(path)
            .cache_capacity(settings.cache_capacity)
            .flush_every_ms(Some(settings.flush_ms))
            .open()
    })
    .map_err(|panic| {
        format!(
            "sled failed reading its files: {}",
            crate::error::panic_text(&panic)
        )
    })
}

/// Open fresh sled files in `path` for a reclaim.
fn open_files(path: &Path, settings: &Settings) -> Result<sled::Db> {
    try_open_files(path, settings)
        .map_err(|reason| Error::DamagedDatabase {
            dir: path.to_path_buf(),
            reason,
        })?
        .map_err(failed)
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

/// Open the store's sled files under `dir` (the directory `CURRENT` names), after taking the
/// store's lock and removing what an interrupted reclaim left.
pub(crate) fn open(dir: &Path, config: &Config) -> Result<Db> {
    let lock = Arc::new(lock(dir)?);
    let generation = current_generation(dir)?;
    remove_others(dir, generation);
    let settings = Settings {
        cache_capacity: config.cache_capacity_bytes,
        flush_ms: match config.durability {
            Durability::GroupCommit { ms } => ms.max(1),
            Durability::Immediate => 500,
        },
    };
    let path = dir.join(dir_name(generation));
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match try_open_files(&path, &settings).map_err(|reason| Error::DamagedDatabase {
            dir: dir.to_path_buf(),
            reason,
        })? {
            Ok(db) => {
                let tree: sled::Tree = (*db).clone();
                return Ok(Db::new(Box::new(Sled {
                    tree,
                    db,
                    retire: Retire::new(path, false),
                    store_dir: dir.to_path_buf(),
                    generation,
                    settings,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;

    fn io(e: std::io::Error) -> Error {
        Error::io("test", "", e)
    }

    fn dump(db: &Db) -> Result<Model> {
        db.iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect()
    }

    fn sled_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| parse_dir_name(n).is_some())
            .collect();
        names.sort();
        names
    }

    /// Overwrite `keys` keys `rounds` times with values of 200 bytes, in the model too.
    fn churn(db: &Db, model: &mut Model, keys: u32, rounds: u32) -> Result<()> {
        for round in 0..rounds {
            for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
                let mut b = Batch::default();
                for &k in chunk {
                    let key = format!("k{k:06}").into_bytes();
                    let value = vec![(round as u8).wrapping_add(k as u8); 200];
                    model.insert(key.clone(), value.clone());
                    b.insert(key, value);
                }
                db.apply_batch(b)?;
            }
        }
        Ok(())
    }

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for g in [0, 1, 7, 123] {
            assert_eq!(parse_dir_name(&dir_name(g)), Some(g));
        }
        for bad in [
            "db.0", "db.01", "db.", "db.x", "dbx", "db.-1", "DB", "db.1/",
        ] {
            assert_eq!(parse_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_reclaim_keeps_every_pair_gives_the_space_back_and_survives_reopening() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io)?;
        let config = Config::default();
        let db = open(dir.path(), &config)?;
        let mut model = Model::new();
        churn(&db, &mut model, 5_000, 12)?;
        let mut b = Batch::default();
        b.remove(b"k000003");
        model.remove(&b"k000003"[..]);
        db.apply_batch(b)?;
        db.flush()?;

        let r = db
            .reclaim()?
            .ok_or_else(|| io(std::io::Error::other("no files")))?;
        assert_eq!(r.keys, 4_999);
        assert!(
            r.bytes_after < r.bytes_before,
            "{} -> {}",
            r.bytes_before,
            r.bytes_after
        );
        assert_eq!(dump(&db)?, model, "the reclaimed store answers as before");
        assert_eq!(sled_dirs(dir.path()), ["db.1"], "the old files are gone");
        let current = std::fs::read_to_string(dir.path().join(CURRENT)).map_err(io)?;
        assert_eq!(current, "db.1\n");

        // Writes after the swap land in the new files, and everything survives a reopen.
        churn(&db, &mut model, 100, 1)?;
        drop(db);
        let db = open(dir.path(), &config)?;
        assert_eq!(dump(&db)?, model);
        db.reclaim()?;
        assert_eq!(sled_dirs(dir.path()), ["db.2"]);
        assert_eq!(dump(&db)?, model);
        drop(db);
        assert_eq!(dump(&open(dir.path(), &config)?)?, model);
        Ok(())
    }

    /// A scan that started before a reclaim reads on from the old files to its end, and they
    /// are removed only when it is done.
    #[test]
    fn a_scan_in_flight_outlives_the_swap() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io)?;
        let db = open(dir.path(), &Config::default())?;
        let mut model = Model::new();
        churn(&db, &mut model, 3_000, 2)?;
        let mut scan = db.iter();
        let first = scan.next().transpose()?.map(|(k, _)| k.to_vec());
        assert_eq!(first.as_deref(), Some(&b"k000000"[..]));
        db.reclaim()?;
        assert_eq!(
            sled_dirs(dir.path()),
            ["db", "db.1"],
            "the scan holds the old files"
        );
        let rest = scan.count();
        assert_eq!(rest, 2_999);
        assert_eq!(sled_dirs(dir.path()), ["db.1"], "and lets go when it ends");
        assert_eq!(dump(&db)?, model);
        Ok(())
    }

    /// Writers on four threads while reclaims run back to back, each overwriting and removing
    /// keys of its own that the copies are reading, by batch and by compare-and-swap: every
    /// key ends at its last acknowledged value, afterwards and after a reopen.
    #[test]
    fn writes_during_reclaims_are_not_lost() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io)?;
        let config = Config::default();
        let db = open(dir.path(), &config)?;
        let mut model = Model::new();
        churn(&db, &mut model, 20_000, 1)?;
        let stop = std::sync::atomic::AtomicBool::new(false);
        let reclaims = std::thread::scope(|s| -> Result<Vec<Model>> {
            let writers: Vec<_> = (0..4u32)
                .map(|t| {
                    let (db, stop) = (&db, &stop);
                    s.spawn(move || -> Result<Model> {
                        // This writer's keys: every fourth of the churned ones.
                        let mut mine = Model::new();
                        let mut round = 0u32;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) || round < 3 {
                            for k in (t..20_000).step_by(4 * 97) {
                                let key = format!("k{k:06}").into_bytes();
                                let value = format!("t{t} r{round}").into_bytes();
                                match (k / 4 + round) % 3 {
                                    0 => {
                                        let mut b = Batch::default();
                                        b.insert(&key, value.clone());
                                        db.apply_batch(b)?;
                                        mine.insert(key, value);
                                    }
                                    1 => {
                                        let old = db.get(&key)?;
                                        assert!(db.compare_and_swap(
                                            &key,
                                            old.as_deref(),
                                            Some(&value)
                                        )?);
                                        mine.insert(key, value);
                                    }
                                    _ => {
                                        db.remove(&key)?;
                                        mine.insert(key, Vec::new());
                                    }
                                }
                            }
                            round += 1;
                        }
                        Ok(mine)
                    })
                })
                .collect();
            for _ in 0..6 {
                std::thread::sleep(std::time::Duration::from_millis(10));
                let r = db
                    .reclaim()?
                    .ok_or_else(|| io(std::io::Error::other("no files")))?;
                assert!(r.keys > 0);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            writers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })?;
        for mine in reclaims {
            for (k, v) in mine {
                if v.is_empty() {
                    model.remove(&k);
                } else {
                    model.insert(k, v);
                }
            }
        }
        assert_eq!(dump(&db)?, model);
        db.flush()?;
        drop(db);
        assert_eq!(dump(&open(dir.path(), &config)?)?, model);
        Ok(())
    }

    #[test]
    fn open_removes_what_a_killed_reclaim_left_and_refuses_a_bad_current() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io)?;
        let config = Config::default();
        let db = open(dir.path(), &config)?;
        db.insert(b"a", b"1".to_vec())?;
        db.reclaim()?;
        drop(db);
        // Killed during the next copy (db.2 half made) and after an earlier commit whose old
        // files were not removed yet (db).
        for leftover in ["db.2", "db"] {
            std::fs::create_dir(dir.path().join(leftover)).map_err(io)?;
            std::fs::write(dir.path().join(leftover).join("conf"), b"x").map_err(io)?;
        }
        std::fs::write(dir.path().join("CURRENT.tmp"), b"db.2\n").map_err(io)?;
        std::fs::create_dir(dir.path().join("db.other")).map_err(io)?;
        let db = open(dir.path(), &config)?;
        assert_eq!(db.get(b"a")?.as_deref(), Some(&b"1"[..]));
        assert_eq!(sled_dirs(dir.path()), ["db.1"]);
        assert!(!dir.path().join("CURRENT.tmp").exists());
        assert!(
            dir.path().join("db.other").exists(),
            "not one of sled's names: kept"
        );
        drop(db);

        for (current, says) in [
            ("db.9\n", "`db.9`, which is missing"),
            ("../etc\n", "not the name of sled's directory"),
        ] {
            std::fs::write(dir.path().join(CURRENT), current).map_err(io)?;
            match open(dir.path(), &config) {
                Err(e @ Error::DamagedDatabase { .. }) => {
                    assert!(e.to_string().contains(says), "{e}");
                }
                other => panic!("{current:?}: {:?}", other.map(|_| ())),
            }
        }
        Ok(())
    }
}
