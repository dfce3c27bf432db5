//! Accessors over the archived (memory-mapped) columns.
//!
//! Structural validation at open proves every vector lies inside the file, but not that the
//! *values* (our offsets, ids) are consistent. So every accessor here uses checked indexing and
//! degrades to "absent" on nonsense instead of panicking: a damaged segment can give wrong
//! answers until the checksum catches it, but never a crash or undefined behaviour.

use rkyv::rend::{f32_le, u32_le, u64_le};

use super::format::{
    ArchivedDictionary, ArchivedForward, ArchivedItemTable, ArchivedUserTable, NONE,
};

fn range(offsets: &[u64_le], i: usize) -> Option<std::ops::Range<usize>> {
    let a = crate::narrow::usize_from(offsets.get(i)?.to_native());
    let b = crate::narrow::usize_from(offsets.get(i + 1)?.to_native());
    (a <= b).then_some(a..b)
}

/// Test bit `i` of a little-endian `u64` bitset; out of range reads as clear.
pub fn bit(bits: &[u64_le], i: usize) -> bool {
    bits.get(i / 64)
        .is_some_and(|w| w.to_native() >> (i % 64) & 1 == 1)
}

impl ArchivedDictionary {
    /// Number of ids (live or dead).
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// True when there are no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw bytes of `id`'s string.
    pub fn bytes_of(&self, id: u32) -> Option<&[u8]> {
        self.bytes.get(range(&self.offsets, id as usize)?)
    }

    /// The string of `id`, if present and valid UTF-8.
    pub fn get(&self, id: u32) -> Option<&str> {
        std::str::from_utf8(self.bytes_of(id)?).ok()
    }

    /// Reverse look-up through the hash table.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        let slots = self.slots.as_slice();
        if slots.is_empty() || !slots.len().is_power_of_two() {
            return None;
        }
        let mask = slots.len() - 1;
        let mut pos = crate::narrow::usize_from(xxhash_rust::xxh3::xxh3_64(name.as_bytes())) & mask;
        // Bounded probe: a damaged table without empty slots must not loop forever.
        for _ in 0..slots.len() {
            let id = slots[pos].to_native();
            if id == NONE {
                return None;
            }
            if self.bytes_of(id) == Some(name.as_bytes()) {
                return Some(id);
            }
            pos = (pos + 1) & mask;
        }
        None
    }
}

impl ArchivedForward {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.norms.len()
    }

    /// Tag ids and weights of row `r`; empty if absent or inconsistent.
    pub fn row(&self, r: u32) -> (&[u32_le], &[f32_le]) {
        let Some(rg) = range(&self.offsets, r as usize) else {
            return (&[], &[]);
        };
        match (self.tag_ids.get(rg.clone()), self.weights.get(rg)) {
            (Some(t), Some(w)) => (t, w),
            _ => (&[], &[]),
        }
    }

    /// L2 norm of row `r` (0 if absent).
    pub fn norm(&self, r: u32) -> f32 {
        self.norms.get(r as usize).map_or(0.0, |n| n.to_native())
    }

    /// Row `r` as owned `(tag id, weight)` pairs.
    pub fn row_vec(&self, r: u32) -> Vec<(u32, f32)> {
        let (t, w) = self.row(r);
        t.iter()
            .zip(w)
            .map(|(t, w)| (t.to_native(), w.to_native()))
            .collect()
    }
}

impl ArchivedItemTable {
    /// Number of item slots (live or dead).
    pub fn slots(&self) -> usize {
        self.price.len()
    }

    /// Whether item `id` exists in this segment.
    pub fn is_live(&self, id: u32) -> bool {
        bit(&self.live, id as usize)
    }

    /// Category path of item `id`.
    pub fn category_of(&self, id: u32) -> &str {
        let c = self
            .category
            .get(id as usize)
            .map_or(NONE, |c| c.to_native());
        self.categories.get(c).unwrap_or("")
    }
}

impl ArchivedUserTable {
    /// Number of user slots (live or dead).
    pub fn slots(&self) -> usize {
        self.forward.rows()
    }

    /// Whether user `id` exists in this segment.
    pub fn is_live(&self, id: u32) -> bool {
        bit(&self.live, id as usize)
    }

    /// Recent item ids of user `id`, newest last.
    pub fn recent_of(&self, id: u32) -> Vec<u32> {
        range(&self.recent_offsets, id as usize)
            .and_then(|r| self.recent.get(r))
            .map(|s| s.iter().map(|v| v.to_native()).collect())
            .unwrap_or_default()
    }
}
