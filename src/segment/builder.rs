//! Turns records, pushed in dense-id order, into the columnar [`SegmentData`].

use super::format::{Dictionary, Forward, ItemTable, SegmentData, UserTable, NONE};
use crate::codec::{StoredItem, StoredUser};

/// Accumulates strings by dense id and builds the reverse hash table at the end.
#[derive(Default)]
struct DictBuilder {
    offsets: Vec<u64>,
    bytes: Vec<u8>,
    /// Ids to put in the hash table (dead slots stay out).
    indexed: Vec<u32>,
}

impl DictBuilder {
    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    fn push(&mut self, s: &str, index: bool) -> u32 {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let id = crate::narrow::u32_from(self.len());
        self.bytes.extend_from_slice(s.as_bytes());
        self.offsets.push(self.bytes.len() as u64);
        if index {
            self.indexed.push(id);
        }
        id
    }

    fn finish(mut self, with_index: bool) -> Dictionary {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let mut slots = Vec::new();
        if with_index && !self.indexed.is_empty() {
            // Load factor <= 0.5 keeps linear probes short.
            let cap = (self.indexed.len() * 2).next_power_of_two();
            slots = vec![NONE; cap];
            let mask = cap - 1;
            for &id in &self.indexed {
                let (a, b) = (
                    crate::narrow::usize_from(self.offsets[id as usize]),
                    crate::narrow::usize_from(self.offsets[id as usize + 1]),
                );
                let mut pos =
                    crate::narrow::usize_from(xxhash_rust::xxh3::xxh3_64(&self.bytes[a..b])) & mask;
                while slots[pos] != NONE {
                    pos = (pos + 1) & mask;
                }
                slots[pos] = id;
            }
        }
        Dictionary {
            offsets: self.offsets,
            bytes: self.bytes,
            slots,
        }
    }
}

#[derive(Default)]
struct ForwardBuilder {
    offsets: Vec<u64>,
    tag_ids: Vec<u32>,
    weights: Vec<f32>,
    norms: Vec<f32>,
}

impl ForwardBuilder {
    fn push(&mut self, tags: &[(u32, f32)]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        for &(t, w) in tags {
            self.tag_ids.push(t);
            self.weights.push(w);
        }
        self.offsets.push(self.tag_ids.len() as u64);
        self.norms.push(l2_norm(tags.iter().map(|p| p.1)));
    }

    fn finish(mut self) -> Forward {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        Forward {
            offsets: self.offsets,
            tag_ids: self.tag_ids,
            weights: self.weights,
            norms: self.norms,
        }
    }
}

/// The L2 norm of a row's weights, as stored in [`Forward::norms`]. Rows that live in the delta
/// go through the same function, so a record scores bit-for-bit the same before and after a
/// rebuild moves it into a segment.
pub fn l2_norm(weights: impl Iterator<Item = f32>) -> f32 {
    crate::narrow::f32_from(
        weights
            .map(|w| f64::from(w) * f64::from(w))
            .sum::<f64>()
            .sqrt(),
    )
}

fn set_bit(bits: &mut Vec<u64>, i: usize) {
    let w = i / 64;
    if bits.len() <= w {
        bits.resize(w + 1, 0);
    }
    bits[w] |= 1 << (i % 64);
}

/// Builds a [`SegmentData`]. Push tags, items and users each in increasing id order; ids that
/// are skipped become dead slots.
#[derive(Default)]
pub struct SegmentBuilder {
    tags: DictBuilder,
    item_names: DictBuilder,
    item_live: Vec<u64>,
    item_fwd: ForwardBuilder,
    titles: DictBuilder,
    category: Vec<u32>,
    categories: DictBuilder,
    category_ids: std::collections::HashMap<String, u32>,
    price: Vec<f32>,
    stock: Vec<u32>,
    members_only: Vec<u64>,
    created_at: Vec<u64>,
    user_names: DictBuilder,
    user_live: Vec<u64>,
    user_fwd: ForwardBuilder,
    recent_offsets: Vec<u64>,
    recent: Vec<u32>,
}

impl SegmentBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of item slots pushed so far (live or dead).
    pub fn item_slots(&self) -> usize {
        self.price.len()
    }

    /// Add a tag name for `id`. Ids must increase; gaps become empty names.
    pub fn push_tag(&mut self, id: u32, name: &str) {
        while self.tags.len() < id as usize {
            self.tags.push("", false);
        }
        if self.tags.len() == id as usize {
            self.tags.push(name, true);
        }
    }

    /// Make the tag dictionary `n` slots long (the new ones empty and unnamed), so a segment
    /// whose last tags were dropped still covers every tag id handed out.
    pub fn pad_tags(&mut self, n: u32) {
        while self.tags.len() < n as usize {
            self.tags.push("", false);
        }
    }

    fn push_dead_item(&mut self) {
        self.item_names.push("", false);
        self.item_fwd.push(&[]);
        self.titles.push("", false);
        self.category.push(NONE);
        self.price.push(0.0);
        self.stock.push(0);
        self.created_at.push(0);
    }

    /// Add item `id`. Ids must increase; gaps (and `None`) become dead slots.
    pub fn push_item(&mut self, id: u32, item: Option<&StoredItem>) {
        while self.item_slots() < id as usize {
            self.push_dead_item();
        }
        if self.item_slots() != id as usize {
            return; // out of order: ignored, callers push in order
        }
        let Some(it) = item else {
            self.push_dead_item();
            return;
        };
        self.item_names.push(&it.name, true);
        set_bit(&mut self.item_live, id as usize);
        self.item_fwd.push(&it.tags);
        self.titles.push(&it.title, false);
        let cat = match self.category_ids.get(&it.category) {
            Some(&c) => c,
            None => {
                let c = self.categories.push(&it.category, true);
                self.category_ids.insert(it.category.clone(), c);
                c
            }
        };
        self.category.push(cat);
        self.price.push(it.price);
        self.stock.push(it.stock);
        if it.members_only {
            set_bit(&mut self.members_only, id as usize);
        }
        self.created_at.push(it.created_at);
    }

    fn user_slots(&self) -> usize {
        self.user_fwd.norms.len()
    }

    fn push_dead_user(&mut self) {
        self.user_names.push("", false);
        self.user_fwd.push(&[]);
        self.push_recent(&[]);
    }

    fn push_recent(&mut self, r: &[u32]) {
        if self.recent_offsets.is_empty() {
            self.recent_offsets.push(0);
        }
        self.recent.extend_from_slice(r);
        self.recent_offsets.push(self.recent.len() as u64);
    }

    /// Add user `id`. Ids must increase; gaps (and `None`) become dead slots.
    pub fn push_user(&mut self, id: u32, user: Option<&StoredUser>) {
        while self.user_slots() < id as usize {
            self.push_dead_user();
        }
        if self.user_slots() != id as usize {
            return;
        }
        let Some(u) = user else {
            self.push_dead_user();
            return;
        };
        self.user_names.push(&u.name, true);
        set_bit(&mut self.user_live, id as usize);
        self.user_fwd.push(&u.tags);
        self.push_recent(&u.recent);
    }

    /// Finish into the archive root.
    pub fn finish(mut self, generation: u64, max_seq: u64, created_at: u64) -> SegmentData {
        if self.recent_offsets.is_empty() {
            self.recent_offsets.push(0);
        }
        let slots_items = self.item_slots();
        let slots_users = self.user_slots();
        let words = |n: usize| n.div_ceil(64);
        self.item_live.resize(words(slots_items), 0);
        self.members_only.resize(words(slots_items), 0);
        self.user_live.resize(words(slots_users), 0);
        let item_fwd = self.item_fwd.finish();
        // Every tag id a row uses gets a list, even one whose name was never pushed.
        let tag_slots = item_fwd
            .tag_ids
            .iter()
            .max()
            .map_or(0, |&m| m as usize + 1)
            .max(self.tags.len());
        let postings = super::postings::build(&item_fwd, tag_slots);
        let category_items =
            super::postings::group_by(&self.category, &self.item_live, self.categories.len());
        let live_count = self
            .item_live
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        SegmentData {
            generation,
            max_seq,
            created_at,
            tags: self.tags.finish(true),
            items: ItemTable {
                names: self.item_names.finish(true),
                live: self.item_live,
                live_count,
                forward: item_fwd,
                postings,
                titles: self.titles.finish(false),
                category: self.category,
                categories: self.categories.finish(true),
                category_items,
                price: self.price,
                stock: self.stock,
                members_only: self.members_only,
                created_at: self.created_at,
            },
            users: UserTable {
                names: self.user_names.finish(true),
                live: self.user_live,
                forward: self.user_fwd.finish(),
                recent_offsets: self.recent_offsets,
                recent: self.recent,
            },
        }
    }
}
