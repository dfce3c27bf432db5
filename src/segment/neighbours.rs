//! The neighbour file: for each item of one segment generation, its most similar items.
//!
//! It sits beside the segment as `<generation>.nbr`, with the same footer layout and its own
//! magic. It is derived data and only an accelerator: when it is missing or damaged, item-to-item
//! queries fall back to the exact search and give the same answers, more slowly. That is why it
//! is a separate file rather than part of the segment: the segment must be written before the
//! lists can be computed over it, and losing the lists must never cost the segment.
//!
//! List semantics (what makes serving from it exact): the list of item `i` holds the best
//! `per_item` other items of the segment by cosine, in the engine's order (score descending,
//! id ascending), with their exact scores. Any segment item *not* in a full list ranks after
//! its last entry. A list shorter than `per_item` holds every item with a positive score.

use std::path::{Path, PathBuf};

use rkyv::rend::{f32_le, u32_le};
use rkyv::{Archive, Deserialize, Serialize};

use super::file::{write_archive, FileKind, Mapped};
use crate::config::SegmentVerify;
use crate::error::{Error, Result};

/// Footer magic of neighbour files.
pub const MAGIC: [u8; 8] = *b"RECONBR\0";
/// Layout version of neighbour files.
pub const FORMAT_VERSION: u32 = 1;
/// Describes [`NeighbourData`]; its hash is in the footer.
pub const SCHEMA: &str =
    "recostore-neighbours v1: Neighbours{generation:u64,per_item:u32,offsets:[u64],ids:[u32],scores:[f32]}";

fn kind() -> FileKind {
    FileKind {
        magic: MAGIC,
        version: FORMAT_VERSION,
        schema_hash: xxhash_rust::xxh3::xxh3_64(SCHEMA.as_bytes()),
        noun: "neighbour file",
    }
}

/// Root of the neighbour archive.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
pub struct NeighbourData {
    /// The segment generation the lists were computed over.
    pub generation: u64,
    /// The bound on list length.
    pub per_item: u32,
    /// `items + 1` offsets into `ids`/`scores`.
    pub offsets: Vec<u64>,
    /// Neighbour item ids, best first within each list.
    pub ids: Vec<u32>,
    /// Their cosine scores, parallel to `ids`.
    pub scores: Vec<f32>,
}

/// File name of the neighbour file of generation `g`.
pub fn file_name(generation: u64) -> String {
    format!("{generation:020}.nbr")
}

/// Write `data` atomically into `dir`, bound to store `store`.
pub fn write(dir: &Path, data: &NeighbourData, store: u32) -> Result<PathBuf> {
    let payload =
        rkyv::to_bytes::<rkyv::rancor::Error>(data).map_err(|e| Error::CorruptSegment {
            path: dir.to_path_buf(),
            reason: format!("could not serialise neighbour lists: {e}"),
        })?;
    write_archive(dir, &file_name(data.generation), kind(), &payload, store)
}

/// A mapped, validated neighbour file.
pub struct Neighbours {
    file: Mapped,
}

impl std::fmt::Debug for Neighbours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neighbours")
            .field("path", &self.file.path())
            .finish()
    }
}

impl Neighbours {
    /// The store the file says it belongs to (see [`crate::segment::format::Footer::store`]).
    pub fn store_tag(&self) -> u32 {
        self.file.store()
    }

    /// Map and validate `path`, which must belong to `generation`.
    pub fn open(path: &Path, generation: u64, verify: SegmentVerify) -> Result<Neighbours> {
        let file = Mapped::open(path, kind(), verify)?;
        let data = rkyv::access::<ArchivedNeighbourData, rkyv::rancor::Error>(file.payload())
            .map_err(|e| Error::CorruptSegment {
                path: path.to_path_buf(),
                reason: format!("neighbour file structure invalid: {e}"),
            })?;
        if data.generation.to_native() != generation {
            return Err(Error::CorruptSegment {
                path: path.to_path_buf(),
                reason: format!(
                    "neighbour file is for generation {}, the segment is {generation}",
                    data.generation
                ),
            });
        }
        Ok(Neighbours { file })
    }

    fn data(&self) -> &ArchivedNeighbourData {
        // SAFETY: `open` validated exactly these bytes with `rkyv::access`, and the read-only
        // mapping lives as long as `self`.
        unsafe { rkyv::access_unchecked::<ArchivedNeighbourData>(self.file.payload()) }
    }

    /// The bound on list length the lists were built with.
    pub fn per_item(&self) -> usize {
        self.data().per_item.to_native() as usize
    }

    /// The list of `item`: ids and scores, best first. Empty when the item has none (it was
    /// not in the segment) or the columns are inconsistent.
    pub fn list(&self, item: u32) -> (&[u32_le], &[f32_le]) {
        let d = self.data();
        let i = item as usize;
        let (Some(a), Some(b)) = (d.offsets.get(i), d.offsets.get(i + 1)) else {
            return (&[], &[]);
        };
        let r = crate::narrow::usize_from(a.to_native())..crate::narrow::usize_from(b.to_native());
        match (d.ids.get(r.clone()), d.scores.get(r)) {
            (Some(ids), Some(scores)) => (ids, scores),
            _ => (&[], &[]),
        }
    }

    /// Whether the file has a list slot for `item` at all (items added after the build do not).
    pub fn covers(&self, item: u32) -> bool {
        (item as usize) < self.data().offsets.len().saturating_sub(1)
    }

    pub(crate) fn verify_checksum(&self) -> Result<()> {
        self.file.verify_checksum()
    }

    pub(crate) fn retire(&self) {
        self.file.retire();
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.file.file_len()
    }
}
