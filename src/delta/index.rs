//! The index of the delta's re-tagged items: immutable in-memory *runs*, each a small segment
//! that the pruned engine searches exactly as it searches the base segment.
//!
//! Without it every query scores every re-tagged item one by one, so a store that has taken
//! 100,000 tag changes since its last rebuild pays for 100,000 rows per query. With it, a
//! query scans only the few re-tagged rows written since the last *flush* and searches each
//! run with the same windowed block-max engine (Lucene's and tantivy's tiered segments, kept
//! in memory: sled already holds every row durably, so a run is derived data, built again
//! from the dirty log's delta after a restart).
//!
//! * A run holds the rows of some re-tagged items as of a flush, under *local* ids `0..len`
//!   given in ascending global id, so the engine's tie order (lower id first) is the global
//!   one. `global` maps back.
//! * A run is never changed. A slot is *current* while the delta's entry for its item still
//!   has the sequence number the slot was built from; a later write to the item makes the slot
//!   stale (the query's filter drops it) and puts the item back among the rows to scan.
//! * Flushing builds a run from the rows to scan and, by a binary-counter merge policy,
//!   folds in the newest runs that are no more than twice its size, so there are
//!   O(log n) runs and each row is rebuilt O(log n) times: work in proportion to what
//!   changed, never the whole catalogue.

use std::sync::Arc;

use super::Delta;
use crate::codec::StoredItem;
use crate::error::{Error, Result};
use crate::segment::format::{ArchivedItemTable, ArchivedSegmentData};
use crate::segment::SegmentBuilder;

/// One immutable run of the delta's index.
pub(crate) struct Run {
    /// The archived segment (items only), validated once when built.
    bytes: rkyv::util::AlignedVec,
    /// Global item id of each local slot, ascending.
    global: Vec<u32>,
    /// The sequence number of the write each slot holds.
    seqs: Vec<u64>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("rows", &self.global.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Run {
    /// Build a run from `rows` (global id, sequence number, row), sorted by global id with no
    /// id twice.
    pub fn build(rows: &[(u32, u64, Arc<StoredItem>)]) -> Result<Run> {
        let mut b = SegmentBuilder::new();
        for (local, (_, _, row)) in rows.iter().enumerate() {
            b.push_item(crate::narrow::u32_from(local), Some(row));
        }
        let data = b.finish(0, 0, 0);
        let bytes =
            rkyv::to_bytes::<rkyv::rancor::Error>(&data).map_err(|e| Error::CorruptSegment {
                path: "<delta index run>".into(),
                reason: format!("could not serialise a run of the delta's index: {e}"),
            })?;
        // Validate once here, so `table` may access without checking.
        rkyv::access::<ArchivedSegmentData, rkyv::rancor::Error>(&bytes).map_err(|e| {
            Error::CorruptSegment {
                path: "<delta index run>".into(),
                reason: format!("a run of the delta's index failed validation: {e}"),
            }
        })?;
        Ok(Run {
            bytes,
            global: rows.iter().map(|r| r.0).collect(),
            seqs: rows.iter().map(|r| r.1).collect(),
        })
    }

    /// A run read back from its saved parts ([`Run::parts`]), validated as [`Run::build`]
    /// validates: the ids ascending, one sequence number and one slot of the table per id.
    pub fn from_parts(global: Vec<u32>, seqs: Vec<u64>, archived: &[u8]) -> Result<Run> {
        let bad = |reason: String| Error::CorruptSegment {
            path: "<saved delta run>".into(),
            reason,
        };
        if seqs.len() != global.len() || global.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(
                "its item ids are not ascending, or not one sequence number each".into(),
            ));
        }
        let mut bytes = rkyv::util::AlignedVec::with_capacity(archived.len());
        bytes.extend_from_slice(archived);
        let data = rkyv::access::<ArchivedSegmentData, rkyv::rancor::Error>(&bytes)
            .map_err(|e| bad(format!("its archive failed validation: {e}")))?;
        if data.items.slots() != global.len() {
            return Err(bad(format!(
                "its table has {} slots for {} item ids",
                data.items.slots(),
                global.len()
            )));
        }
        Ok(Run {
            bytes,
            global,
            seqs,
        })
    }

    /// What [`Run::from_parts`] reads back: the global ids, their sequence numbers and the
    /// archived table.
    pub fn parts(&self) -> (&[u32], &[u64], &[u8]) {
        (&self.global, &self.seqs, &self.bytes)
    }

    /// The run's item table, indexed by local id.
    pub fn table(&self) -> &ArchivedItemTable {
        // SAFETY: `build` ran `rkyv::access` (full bytecheck validation) on exactly these
        // bytes, which are never changed afterwards and live as long as `self`.
        unsafe { &rkyv::access_unchecked::<ArchivedSegmentData>(&self.bytes).items }
    }

    /// Rows in the run (current or stale).
    pub fn len(&self) -> usize {
        self.global.len()
    }

    /// Global id of local slot `local`.
    #[inline]
    pub fn global(&self, local: u32) -> u32 {
        self.global.get(local as usize).copied().unwrap_or(u32::MAX)
    }

    /// Local slot of global id `id`, if the run has one.
    pub fn local(&self, id: u32) -> Option<u32> {
        self.global
            .binary_search(&id)
            .ok()
            .map(crate::narrow::u32_from)
    }

    /// Is local slot `local` still the item's current row in `delta`? (A deletion is a newer
    /// write too, so a current slot is a live row.)
    #[inline]
    pub fn current(&self, delta: &Delta, local: u32) -> bool {
        self.seqs
            .get(local as usize)
            .is_some_and(|&seq| delta.latest.get(self.global(local)) == seq)
    }

    /// The current rows of this run, as (global id, seq, row).
    fn current_rows(&self, delta: &Delta) -> Vec<(u32, u64, Arc<StoredItem>)> {
        self.global
            .iter()
            .zip(&self.seqs)
            .filter_map(|(&id, &seq)| {
                let e = delta.items.get(&id)?;
                (e.seq == seq).then(|| Some((id, seq, e.row.clone()?)))?
            })
            .collect()
    }

    /// Approximate heap bytes.
    pub fn bytes(&self) -> usize {
        self.bytes.len() + self.global.len() * 12
    }
}

/// What a flush publishes: the runs to keep (a prefix of the delta's runs) and the new run.
pub(crate) struct Flush {
    /// How many of the delta's runs, from the oldest, stay as they are.
    pub keep: usize,
    /// The run that replaces the rest and holds the rows that were scanned.
    pub run: Arc<Run>,
    /// (global id, seq) of every row the new run holds.
    pub indexed: Vec<(u32, u64)>,
}

/// Plan and build a flush of `delta`: its rows to scan, merged with the newest runs no more
/// than twice the size of what is being built. `None` when there is nothing to index.
pub(crate) fn flush(delta: &Delta) -> Result<Option<Flush>> {
    let mut rows: Vec<(u32, u64, Arc<StoredItem>)> = delta
        .unindexed
        .iter()
        .filter_map(|&id| {
            let e = delta.items.get(&id)?;
            Some((id, e.seq, e.row.clone()?))
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let mut keep = delta.runs.len();
    while keep > 0 && delta.runs[keep - 1].len() <= 2 * rows.len() {
        keep -= 1;
        rows.extend(delta.runs[keep].current_rows(delta));
    }
    rows.sort_unstable_by_key(|r| r.0);
    // An item in a merged run and among the rows to scan has one current version at most,
    // but keep the newest if both appear.
    rows.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same && later.1 > earlier.1 {
            std::mem::swap(later, earlier);
        }
        same
    });
    let indexed = rows.iter().map(|r| (r.0, r.1)).collect();
    Ok(Some(Flush {
        keep,
        run: Arc::new(Run::build(&rows)?),
        indexed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, tags: &[(u32, f32)]) -> Arc<StoredItem> {
        Arc::new(StoredItem {
            name: name.into(),
            tags: tags.to_vec(),
            title: String::new(),
            category: "c".into(),
            price: 1.0,
            stock: 1,
            members_only: false,
            created_at: 0,
        })
    }

    #[test]
    fn a_run_maps_local_ids_to_global_in_order() {
        let rows = vec![
            (4, 10, row("a", &[(1, 1.0)])),
            (9, 11, row("b", &[(1, 0.5), (7, 2.0)])),
            (70_000, 12, row("c", &[(3, 1.0)])),
        ];
        let run = Run::build(&rows).expect("run");
        assert_eq!(run.len(), 3);
        assert_eq!(run.global(1), 9);
        assert_eq!(run.local(70_000), Some(2));
        assert_eq!(run.local(5), None);
        assert_eq!(run.global(3), u32::MAX);
        let t = run.table();
        assert_eq!(t.slots(), 3);
        assert_eq!(t.forward.row_vec(1), vec![(1, 0.5), (7, 2.0)]);
        assert_eq!(t.postings.list(1).len(), 2);
    }
}
