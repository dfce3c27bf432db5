//! The delta file: the delta of one segment generation saved beside its segment, so that
//! neither an open nor the background work has to fold the whole catalogue to keep the
//! delta cheap.
//!
//! Without it the delta lives only in memory. An open reads it back from sled's dirty log (a
//! look-up per changed record) and indexes its re-tagged rows again, and the only way to make
//! that cheap was a rebuild: a fold of every item into a new segment, seconds at a million
//! items whatever changed. With it, the background work that a growing delta calls for is
//! usually a save, in proportion to the delta, and the fold waits until the delta holds
//! [`crate::Config::fold_fraction`] of the catalogue (see ARCHITECTURE.md, "The delta file").
//!
//! It is derived data, like a segment: sled holds every record it holds. A file that is
//! missing, damaged, of another store or of another generation is ignored and the delta comes
//! from the dirty log as before. What makes it safe to use is one rule: it is written only
//! after sled has flushed every write it holds, so it never claims a write that a crash took
//! from sled. Writes after it are replayed from the dirty log on top of it (their sequence
//! numbers are above the file's).
//!
//! Layout (FORMAT.md, "Delta files"): a bincode header (`Saved`) with every record, the name
//! maps and the shape of each run of the delta's index, then each run's archived segment
//! bytes back to back, then the footer every archive file of the store ends with.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::index::Run;
use super::Delta;
use crate::codec::{StoredItem, StoredUser};
use crate::config::SegmentVerify;
use crate::error::{Error, Result};
use crate::segment::file::{write_parts, FileKind, Mapped};
use crate::segment::Segment;

/// Footer magic of delta files.
pub const MAGIC: [u8; 8] = *b"RECODLT\0";
/// Layout version of delta files.
pub const FORMAT_VERSION: u32 = 1;
/// Describes the header and what follows it; its hash is in the footer.
pub const SCHEMA: &str = "recostore-delta v1: bincode(standard) \
Saved{generation:u64,seq:u64,items:[(u32,u64,Option<StoredItem>)],users:[(u32,u64,Option<StoredUser>)],\
item_names:[(str,u32)],user_names:[(str,u32)],runs:[Run{global:[u32],seqs:[u64],bytes:u64}]}; \
then each run's archived segment (recostore-segment v3), bytes long";

/// The largest header bincode may decode. The payload's checksum is checked first, so this
/// only keeps a file written by something else from asking for absurd allocations.
const MAX_HEADER_BYTES: usize = 1 << 36;

fn kind() -> FileKind {
    FileKind {
        magic: MAGIC,
        version: FORMAT_VERSION,
        schema_hash: xxhash_rust::xxh3::xxh3_64(SCHEMA.as_bytes()),
        noun: "delta file",
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_HEADER_BYTES>()
}

/// File name of the delta file of generation `g`.
pub fn file_name(generation: u64) -> String {
    format!("{generation:020}.dlt")
}

/// The header as written: borrowed from the delta, so saving copies no record.
#[derive(Serialize)]
struct SavedRef<'a> {
    generation: u64,
    seq: u64,
    items: Vec<(u32, u64, Option<&'a StoredItem>)>,
    users: Vec<(u32, u64, Option<&'a StoredUser>)>,
    item_names: Vec<(&'a str, u32)>,
    user_names: Vec<(&'a str, u32)>,
    runs: Vec<RunRef<'a>>,
}

#[derive(Serialize)]
struct RunRef<'a> {
    global: &'a [u32],
    seqs: &'a [u64],
    bytes: u64,
}

/// The header as read back (the same bincode as [`SavedRef`]).
#[derive(Deserialize)]
struct Saved {
    generation: u64,
    seq: u64,
    items: Vec<(u32, u64, Option<StoredItem>)>,
    users: Vec<(u32, u64, Option<StoredUser>)>,
    item_names: Vec<(String, u32)>,
    user_names: Vec<(String, u32)>,
    runs: Vec<SavedRun>,
}

#[derive(Deserialize)]
struct SavedRun {
    global: Vec<u32>,
    seqs: Vec<u64>,
    bytes: u64,
}

/// A delta read back from its file.
pub(crate) struct Loaded {
    /// The delta as it was saved, over the segment it was read against.
    pub delta: Delta,
    /// The newest write it holds: dirty-log entries above it are replayed on top.
    pub seq: u64,
}

/// Save `delta`, the delta of generation `generation` as of write `seq`, as that
/// generation's delta file in `dir`, bound to store `store`. Replaces an older one
/// atomically. Returns the file's size in bytes.
///
/// The caller must have made every write up to `seq` durable in sled first.
pub(crate) fn write(
    dir: &Path,
    store: u32,
    generation: u64,
    seq: u64,
    delta: &Delta,
) -> Result<u64> {
    let mut items: Vec<_> = delta
        .items
        .iter()
        .map(|(id, e)| (*id, e.seq, e.row.as_deref()))
        .collect();
    items.sort_unstable_by_key(|r| r.0);
    let mut users: Vec<_> = delta
        .users
        .iter()
        .map(|(id, e)| (*id, e.seq, e.row.as_deref()))
        .collect();
    users.sort_unstable_by_key(|r| r.0);
    let saved = SavedRef {
        generation,
        seq,
        items,
        users,
        item_names: sorted_names(&delta.item_names),
        user_names: sorted_names(&delta.user_names),
        runs: delta
            .runs
            .iter()
            .map(|r| {
                let (global, seqs, bytes) = r.parts();
                RunRef {
                    global,
                    seqs,
                    bytes: bytes.len() as u64,
                }
            })
            .collect(),
    };
    let path = write_parts(dir, &file_name(generation), kind(), store, |mut out| {
        bincode::serde::encode_into_std_write(&saved, &mut out, bincode_config())
            .map_err(std::io::Error::other)?;
        for run in &delta.runs {
            out.write_all(run.parts().2)?;
        }
        Ok(())
    })?;
    std::fs::metadata(&path)
        .map(|m| m.len())
        .map_err(|e| Error::io("reading the delta file's size", &path, e))
}

fn sorted_names(m: &imbl::HashMap<Arc<str>, u32>) -> Vec<(&str, u32)> {
    let mut v: Vec<(&str, u32)> = m.iter().map(|(n, id)| (&**n, *id)).collect();
    v.sort_unstable();
    v
}

/// Read generation `seg`'s delta file from `dir`, if there is one, and rebuild the delta it
/// holds over `seg`. `Ok(None)`: no file. An error: the file is unusable (damaged, of another
/// store or generation); the caller falls back to the dirty log.
pub(crate) fn read(dir: &Path, seg: &Segment, store: u32) -> Result<Option<Loaded>> {
    let path = dir.join(file_name(seg.generation()));
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading the delta file", &path, e)),
        Ok(_) => {}
    }
    let bad = |reason: String| Error::CorruptSegment {
        path: path.clone(),
        reason,
    };
    let file = Mapped::open(&path, kind(), SegmentVerify::Checksum)?;
    if file.store() != store {
        return Err(bad(format!(
            "it belongs to another store (store id {:08x}, this store is {store:08x})",
            file.store()
        )));
    }
    let payload = file.payload();
    let (saved, used): (Saved, usize) =
        bincode::serde::decode_from_slice(payload, bincode_config())
            .map_err(|e| bad(format!("its header does not decode: {e}")))?;
    let seg_max_seq = seg.data().max_seq.to_native();
    if saved.generation != seg.generation() || saved.seq < seg_max_seq {
        return Err(bad(format!(
            "it holds the delta of generation {} up to write {}, not of generation {} (built \
             up to write {seg_max_seq})",
            saved.generation,
            saved.seq,
            seg.generation()
        )));
    }
    let table = &seg.data().items;
    let mut d = Delta::default();
    for (id, seq, row) in saved.items {
        if seq > saved.seq || seq <= seg_max_seq {
            return Err(bad(format!(
                "item {id} carries write {seq}, outside the file's writes {seg_max_seq}..={}",
                saved.seq
            )));
        }
        d.put_item(id, seq, row.map(Arc::new), table);
    }
    for (id, seq, row) in saved.users {
        if seq > saved.seq || seq <= seg_max_seq {
            return Err(bad(format!(
                "user {id} carries write {seq}, outside the file's writes {seg_max_seq}..={}",
                saved.seq
            )));
        }
        d.put_user(id, seq, row.map(Arc::new));
    }
    d.item_names = saved
        .item_names
        .into_iter()
        .map(|(n, id)| (Arc::from(n), id))
        .collect();
    d.user_names = saved
        .user_names
        .into_iter()
        .map(|(n, id)| (Arc::from(n), id))
        .collect();
    let mut rest = payload.get(used..).unwrap_or_default();
    for r in saved.runs {
        let len = usize::try_from(r.bytes).unwrap_or(usize::MAX);
        let Some((bytes, tail)) = rest.split_at_checked(len) else {
            return Err(bad(format!(
                "a run of {} bytes runs past the end of the file",
                r.bytes
            )));
        };
        rest = tail;
        let run = Run::from_parts(r.global, r.seqs, bytes).map_err(|e| bad(e.to_string()))?;
        // The rows a run holds as current are indexed; `put_item` put them among the rows
        // to scan, as a write does.
        for local in 0..crate::narrow::u32_from(run.len()) {
            if run.current(&d, local) {
                d.unindexed.remove(&run.global(local));
            }
        }
        d.runs.push(Arc::new(run));
    }
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes follow the last run (written by another build?)",
            rest.len()
        )));
    }
    Ok(Some(Loaded {
        delta: d,
        seq: saved.seq,
    }))
}
