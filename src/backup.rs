//! A consistent copy of a live store: `Store::backup`, behind the admin socket's `backup`.
//!
//! Writes and rebuilds wait while the copy runs; queries do not. The copy is a store directory
//! of its own (`Store::open` it, or copy it back in place of the original) holding every
//! durable record and event as of one instant, and the segment that was serving then.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::codec;
use crate::error::{Error, Result};
use crate::segment;

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
    /// Item records packed into bulk chunks on the way (only `compact` packs; a backup
    /// copies keys as they are, and says 0).
    pub packed_records: u64,
}

/// How a copy packs item records into bulk chunks (see [`crate::chunks::pack`]).
pub(crate) struct Pack {
    /// Items whose `I` keys are copied as they are: those the dirty log names.
    pub keep: std::collections::HashSet<u32>,
    /// The new `M chunked`: past every item id handed out.
    pub chunked: u32,
}

/// Written first into every backup under construction and removed just before it is renamed
/// into place. A directory holding it is an interrupted backup, and `Store::open` refuses it.
pub const INCOMPLETE_MARKER: &str = "BACKUP-INCOMPLETE";

fn refused(to: &Path, kind: std::io::ErrorKind, why: &'static str) -> Error {
    Error::io("backing up to", to, std::io::Error::new(kind, why))
}

/// `path` with every existing part resolved (symlinks, `..`), and the parts that do not exist
/// yet appended as given: where a write to `path` would land.
fn resolved(path: &Path) -> Result<PathBuf> {
    let mut missing = Vec::new();
    let mut at = path.to_path_buf();
    loop {
        match at.canonicalize() {
            Ok(real) => {
                return Ok(missing.iter().rev().fold(real, |p, part| p.join(part)));
            }
            Err(_) => {
                let Some(name) = at.file_name().map(|n| n.to_os_string()) else {
                    // Only "/" or a bare prefix is left: nothing resolves, keep the path as is.
                    return Ok(path.to_path_buf());
                };
                if name == ".." || name == "." {
                    return Ok(path.to_path_buf());
                }
                missing.push(name);
                at = match at.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => std::env::current_dir().map_err(|e| Error::io("resolving", path, e))?,
                };
            }
        }
    }
}

/// fsync a file or directory.
fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("syncing backup", path, e))
}

/// Back up the store in `store_dir` to `to` (see [`crate::Store::backup`]): check the path,
/// have `copy` fill a hidden work directory beside it (marked incomplete, see [`prepare`]),
/// then sync it and rename it into place.
pub(crate) fn run(
    store_dir: &Path,
    to: &Path,
    copy: impl FnOnce(&Path) -> Result<BackupReport>,
) -> Result<BackupReport> {
    use std::io::ErrorKind;
    let occupied = std::fs::read_dir(to).map(|mut d| d.next().is_some());
    if matches!(occupied, Ok(true)) {
        return Err(refused(
            to,
            ErrorKind::AlreadyExists,
            "the directory is not empty; give a new path so no backup is overwritten",
        ));
    }
    let real_to = resolved(to)?;
    let real_store = resolved(store_dir)?;
    if real_to.starts_with(&real_store) || real_store.starts_with(&real_to) {
        return Err(refused(
            to,
            ErrorKind::InvalidInput,
            "the path is inside the live store directory (or holds it); choose a path \
                 outside it",
        ));
    }
    let (Some(parent), Some(name)) = (real_to.parent(), real_to.file_name()) else {
        return Err(refused(
            to,
            ErrorKind::InvalidInput,
            "the path names no directory",
        ));
    };
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io("creating backup parent directory", parent, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let work = parent.join(format!(
        ".{}.partial-{}-{nanos}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = copy(&work).and_then(|report| {
        std::fs::remove_file(work.join(INCOMPLETE_MARKER))
            .map_err(|e| Error::io("finishing backup", &work, e))?;
        sync(&work)?;
        // rename(2) replaces an empty directory and fails on a non-empty one: of racing
        // backups to one path, exactly one lands.
        std::fs::rename(&work, &real_to).map_err(|e| {
            let why = if to.exists() {
                std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    "another backup reached this path first; give a new path",
                )
            } else {
                e
            };
            Error::io("backing up to", to, why)
        })?;
        sync(parent)?;
        Ok(BackupReport {
            path: to.to_path_buf(),
            ..report
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

/// Create the work directory `work` of a backup, marked incomplete, with its `segments`
/// directory, which it returns.
pub(crate) fn prepare(work: &Path) -> Result<PathBuf> {
    // The marker goes in before anything else: until it is there the directory is empty
    // (which opens as a new, empty store, never as a partial copy of this one).
    std::fs::create_dir(work).map_err(|e| Error::io("creating backup directory", work, e))?;
    let marker = work.join(INCOMPLETE_MARKER);
    std::fs::write(
        &marker,
        b"an interrupted recostore backup: delete this directory\n",
    )
    .map_err(|e| Error::io("creating backup directory", &marker, e))?;
    sync(work)?;
    let seg_to = work.join("segments");
    std::fs::create_dir_all(&seg_to)
        .map_err(|e| Error::io("creating backup directory", &seg_to, e))?;
    Ok(seg_to)
}

/// Copy the durable keys of `tree`, `snap`'s segment files from `seg_dir` and the plugin
/// modules from `modules_from` into the work directory `work` (segments into `seg_to`), with
/// writes and plugin changes held off by the caller.
pub(crate) fn copy(
    tree: &crate::durable::Db,
    snap: &crate::snapshot::Snapshot,
    seg_dir: &Path,
    modules_from: &Path,
    work: &Path,
    seg_to: &Path,
    pack: Option<&Pack>,
) -> Result<BackupReport> {
    {
        let copy = crate::durable::open_sled(work, &crate::config::Config::default())?;
        let mut keys = 0u64;
        let mut packed_records = 0u64;
        let mut batch = crate::durable::Batch::default();
        if let Some(pack) = pack {
            // The item records first, as chunks: a thousand values instead of a million keys
            // is what lets sled open the copy quickly.
            let mut bytes = 0usize;
            packed_records = crate::chunks::pack(tree, &pack.keep, |k, v| {
                bytes += v.len();
                batch.insert(k, v);
                keys += 1;
                if bytes >= 64 << 20 {
                    bytes = 0;
                    copy.apply_batch(std::mem::take(&mut batch))?;
                }
                Ok(())
            })?;
        }
        let item_prefix = codec::record_prefix(codec::Kind::Item)[0];
        for kv in tree.iter() {
            let (k, v) = kv?;
            if let Some(pack) = pack {
                // Packed above: every chunk, and the `I` keys of items the dirty log does
                // not name.
                let packed = match k.first() {
                    Some(&c) if c == codec::CHUNK_PREFIX[0] => true,
                    Some(&c) if c == item_prefix => !pack.keep.contains(&codec::record_key_id(&k)?),
                    _ => false,
                };
                if packed {
                    continue;
                }
            }
            batch.insert(k, v);
            keys += 1;
            if keys.is_multiple_of(10_000) {
                copy.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        if let Some(pack) = pack {
            if packed_records > 0 {
                // After the copied metadata, so these values win: every packed chunk lies
                // below the bound, which the copy would otherwise take for uncommitted.
                batch.insert(codec::META_CHUNKED, pack.chunked.to_be_bytes());
                batch.insert(
                    codec::META_FORMAT,
                    codec::raised_format(tree, codec::CHUNKED_FORMAT)?,
                );
            }
        }
        copy.apply_batch(batch)?;
        copy.flush()?;
        drop(copy);
        let (generation, segment_bytes) =
            copy_files(snap, seg_dir, modules_from, work, seg_to, false)?;
        tracing::info!(to = %work.display(), keys, generation, packed_records, "backup written");
        Ok(BackupReport {
            path: work.to_path_buf(),
            keys,
            generation,
            segment_bytes,
            packed_records,
        })
    }
}

/// Copy every named namespace of the store in `store_dir` into the backup being written in
/// `work` (whose sled this opens again): their sled pairs as they are (prefixes and all), with
/// every write of every namespace held off so each namespace's records are those of one
/// moment, their plugin modules, and the segment and neighbour files of the generation the
/// copied records name. Returns the pairs copied.
pub(crate) fn copy_namespaces(
    tree: &crate::durable::Db,
    store_dir: &Path,
    work: &Path,
) -> Result<u64> {
    let copy = crate::durable::open_sled(work, &crate::config::Config::default())?;
    let mut keys = 0u64;
    // The modules inside the hold too: a plugin change writes its module before the record
    // naming it and deletes it after the record that dropped it, so with the records held
    // every module a copied record names is on disk.
    tree.with_writes_held(|| -> Result<()> {
        let mut batch = crate::durable::Batch::default();
        for kv in tree.namespace_pairs() {
            let (k, v) = kv?;
            batch.insert(k, v);
            keys += 1;
            if keys.is_multiple_of(10_000) {
                copy.apply_batch(std::mem::take(&mut batch))?;
            }
        }
        copy.apply_batch(batch)?;
        for name in tree.namespace_names()? {
            let rel = Path::new(crate::namespace::DIR).join(&name);
            copy_dir_files(
                &store_dir.join(&rel).join(crate::plugin::MODULES_DIR),
                &work.join(&rel).join(crate::plugin::MODULES_DIR),
                |file| file.ends_with(".wasm"),
            )?;
            // The segment the copied records name (a rebuild publishes its generation with
            // a write, which waits): the restored namespace opens on it instead of building
            // it again.
            let generation = match tree.namespace(&name).get(codec::META_GENERATION)? {
                Some(v) => codec::decode_u64(codec::META_GENERATION, &v)?,
                None => 0,
            };
            if generation > 0 {
                let names = [
                    segment::file::file_name(generation),
                    segment::neighbours::file_name(generation),
                ];
                copy_dir_files(
                    &store_dir.join(&rel).join("segments"),
                    &work.join(&rel).join("segments"),
                    |file| names.iter().any(|n| n == file),
                )?;
            }
        }
        Ok(())
    })?;
    copy.flush()?;
    Ok(keys)
}

/// Copy the files of `from` whose names `wanted` picks into `to` (created), syncing each
/// and `to`. A missing `from` copies nothing; any other failure to read it is an error, not
/// a backup that silently lacks a file.
fn copy_dir_files(from: &Path, to: &Path, wanted: impl Fn(&str) -> bool) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("creating backup directory", to, e))?;
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return sync(to),
        Err(e) => return Err(Error::io("reading", from, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("reading", from, e))?;
        let name = entry.file_name();
        if wanted(&name.to_string_lossy()) {
            let dest = to.join(&name);
            match std::fs::copy(entry.path(), &dest) {
                Ok(_) => sync(&dest)?,
                // Gone since the listing: a plugin module whose dropping record came before
                // the hold, which no copied record names.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("copying into the backup", entry.path(), e)),
            }
        }
    }
    sync(to)
}

/// Copy `snap`'s segment (and neighbour) files from `seg_dir` into `seg_to`, and every plugin
/// module from `modules_from` into `work`'s modules directory, syncing each; with writes and
/// plugin changes held off by the caller. Returns the segment generation and its bytes.
///
/// With `link`, segment files are hard-linked where the file system allows (they are never
/// written once made): for a copy that lives only until it is uploaded, not for a backup,
/// which must not share a damaged disk block with the store.
pub(crate) fn copy_files(
    snap: &crate::snapshot::Snapshot,
    seg_dir: &Path,
    modules_from: &Path,
    work: &Path,
    seg_to: &Path,
    link: bool,
) -> Result<(u64, u64)> {
    let modules_to = work.join(crate::plugin::MODULES_DIR);
    std::fs::create_dir_all(&modules_to)
        .map_err(|e| Error::io("creating backup directory", &modules_to, e))?;
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
            let dest = seg_to.join(&name);
            if link && std::fs::hard_link(&from, &dest).is_ok() {
                segment_bytes += std::fs::metadata(&dest)
                    .map_err(|e| Error::io("linking segment file", &dest, e))?
                    .len();
                continue;
            }
            segment_bytes += std::fs::copy(&from, &dest)
                .map_err(|e| Error::io("copying segment file", &from, e))?;
            sync(&dest)?;
        }
    }
    sync(seg_to)?;
    // Every module file: the records just copied name exactly these (the registry
    // deletes the ones no record names, and its writes are held).
    if let Ok(entries) = std::fs::read_dir(modules_from) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".wasm") {
                let from = entry.path();
                let dest = modules_to.join(&name);
                std::fs::copy(&from, &dest)
                    .map_err(|e| Error::io("copying plugin module", &from, e))?;
                sync(&dest)?;
            }
        }
    }
    sync(&modules_to)?;
    Ok((generation, segment_bytes))
}
