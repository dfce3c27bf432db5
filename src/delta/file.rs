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

/// The header as read back (the same bincode as [`SavedRef`]), its strings borrowed from the
/// file: bincode allocates an owned string's claimed length before reading it, so a file
/// whose checksum was made to match could ask for any amount of memory. Sequences go
/// through serde, which preallocates cautiously.
#[derive(Deserialize)]
struct Saved<'a> {
    generation: u64,
    seq: u64,
    #[serde(borrow)]
    items: Vec<(u32, u64, Option<ItemIn<'a>>)>,
    #[serde(borrow)]
    users: Vec<(u32, u64, Option<UserIn<'a>>)>,
    #[serde(borrow)]
    item_names: Vec<(&'a str, u32)>,
    #[serde(borrow)]
    user_names: Vec<(&'a str, u32)>,
    runs: Vec<SavedRun>,
}

/// [`StoredItem`] as decoded from a delta file, field for field (a test holds them equal).
#[derive(Deserialize)]
struct ItemIn<'a> {
    name: &'a str,
    tags: Vec<(u32, f32)>,
    title: &'a str,
    category: &'a str,
    price: f32,
    stock: u32,
    members_only: bool,
    created_at: u64,
}

impl ItemIn<'_> {
    fn owned(self) -> StoredItem {
        StoredItem {
            name: self.name.to_string(),
            tags: self.tags,
            title: self.title.to_string(),
            category: self.category.to_string(),
            price: self.price,
            stock: self.stock,
            members_only: self.members_only,
            created_at: self.created_at,
        }
    }
}

/// [`StoredUser`] as decoded from a delta file.
#[derive(Deserialize)]
struct UserIn<'a> {
    name: &'a str,
    tags: Vec<(u32, f32)>,
    recent: Vec<u32>,
}

impl UserIn<'_> {
    fn owned(self) -> StoredUser {
        StoredUser {
            name: self.name.to_string(),
            tags: self.tags,
            recent: self.recent,
        }
    }
}

#[derive(Deserialize)]
struct SavedRun {
    global: Vec<u32>,
    seqs: Vec<u64>,
    bytes: u64,
}

/// What sled says the store holds, which a delta file must not go past: its counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// The next item id sled would hand out.
    pub next_item: u32,
    /// The next user id.
    pub next_user: u32,
    /// The newest write sled holds.
    pub seq: u64,
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
        item_names: live_names(&delta.item_names, |id| {
            delta.items.get(&id).is_some_and(|e| e.row.is_some())
        }),
        user_names: live_names(&delta.user_names, |id| {
            delta.users.get(&id).is_some_and(|e| e.row.is_some())
        }),
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

/// The names of `m` whose record is live, sorted. A deleted record's name stays in the live
/// delta (a write of the same name gets the id back), but it is not written to a file: a
/// deletion must not leave the name on disk (the dirty log keeps no such name either).
fn live_names(m: &imbl::HashMap<Arc<str>, u32>, live: impl Fn(u32) -> bool) -> Vec<(&str, u32)> {
    let mut v: Vec<(&str, u32)> = m
        .iter()
        .filter(|(_, id)| live(**id))
        .map(|(n, id)| (&**n, *id))
        .collect();
    v.sort_unstable();
    v
}

/// Read generation `seg`'s delta file from `dir`, if there is one, and rebuild the delta it
/// holds over `seg`. `Ok(None)`: no file. An error: the file is unusable (damaged, of another
/// store or generation, or holding ids or writes past sled's `bounds`); the caller falls back
/// to the dirty log.
pub(crate) fn read(
    dir: &Path,
    seg: &Segment,
    store: u32,
    bounds: Bounds,
) -> Result<Option<Loaded>> {
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
    let (saved, used): (Saved<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(payload, bincode_config())
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
    if saved.seq > bounds.seq {
        return Err(bad(format!(
            "it holds writes up to {} but the durable records end at write {} (a file from \
             another copy of this store?)",
            saved.seq, bounds.seq
        )));
    }
    let in_range = |what: &str, id: u32, bound: u32, seq: u64| {
        if id >= bound {
            Err(bad(format!(
                "{what} {id} is past the ids the store has handed out ({bound})"
            )))
        } else if seq > saved.seq || seq <= seg_max_seq {
            Err(bad(format!(
                "{what} {id} carries write {seq}, outside the file's writes {}..={}",
                seg_max_seq + 1,
                saved.seq
            )))
        } else {
            Ok(())
        }
    };
    let table = &seg.data().items;
    let mut d = Delta::default();
    for (id, seq, row) in saved.items {
        in_range("item", id, bounds.next_item, seq)?;
        d.put_item(id, seq, row.map(|r| Arc::new(r.owned())), table);
    }
    for (id, seq, row) in saved.users {
        in_range("user", id, bounds.next_user, seq)?;
        d.put_user(id, seq, row.map(|r| Arc::new(r.owned())));
    }
    for (name, id) in saved.item_names {
        let named = d.items.get(&id).and_then(|e| e.row.as_deref());
        if named.map(|r| r.name.as_str()) != Some(name) {
            return Err(bad(format!(
                "item name {name:?} maps to {id}, whose record it is not"
            )));
        }
        d.item_names.insert(Arc::from(name), id);
    }
    for (name, id) in saved.user_names {
        let named = d.users.get(&id).and_then(|e| e.row.as_deref());
        if named.map(|r| r.name.as_str()) != Some(name) {
            return Err(bad(format!(
                "user name {name:?} maps to {id}, whose record it is not"
            )));
        }
        d.user_names.insert(Arc::from(name), id);
    }
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
        // to scan, as a write does. A current slot must hold its record's tags, or the
        // index would serve another row than record reads do.
        for local in 0..crate::narrow::u32_from(run.len()) {
            if !run.current(&d, local) {
                continue;
            }
            let id = run.global(local);
            let row = d.items.get(&id).and_then(|e| e.row.clone());
            let (ids, weights) = run.table().forward.row(local);
            let same = row.is_some_and(|row| {
                row.tags.len() == ids.len()
                    && ids.len() == weights.len()
                    && row
                        .tags
                        .iter()
                        .zip(ids.iter().zip(weights))
                        .all(|(&(t, w), (i, x))| {
                            t == i.to_native() && w.to_bits() == x.to_native().to_bits()
                        })
            });
            if !same {
                return Err(bad(format!(
                    "a run's current row of item {id} is not its record (or the record is deleted)"
                )));
            }
            d.unindexed.remove(&id);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The borrowed records decode exactly what the stored ones encode, so a field added to
    /// `StoredItem` or `StoredUser` and not here fails this, not a user's open.
    #[test]
    fn borrowed_records_decode_the_stored_ones() {
        let item = StoredItem {
            name: "n".into(),
            tags: vec![(3, 0.5), (9, 2.0)],
            title: "t".into(),
            category: "a/b".into(),
            price: 4.5,
            stock: 7,
            members_only: true,
            created_at: 99,
        };
        let bytes = bincode::serde::encode_to_vec(&item, bincode_config()).expect("encode");
        let (back, used): (ItemIn<'_>, usize) =
            bincode::serde::borrow_decode_from_slice(&bytes, bincode_config()).expect("decode");
        assert_eq!(used, bytes.len());
        assert_eq!(back.owned(), item);
        let user = StoredUser {
            name: "u".into(),
            tags: vec![(1, 1.0)],
            recent: vec![4, 2],
        };
        let bytes = bincode::serde::encode_to_vec(&user, bincode_config()).expect("encode");
        let (back, used): (UserIn<'_>, usize) =
            bincode::serde::borrow_decode_from_slice(&bytes, bincode_config()).expect("decode");
        assert_eq!(used, bytes.len());
        assert_eq!(back.owned(), user);
    }
}
