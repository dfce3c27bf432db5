//! A consistent, immutable view of the store: one segment plus the delta over it.
//!
//! Readers get one from an `ArcSwap` (a lock-free load), run their whole query against it and
//! drop it. Nothing in here takes a lock or mutates shared state.

use std::sync::Arc;

use crate::activity::Activity;
use crate::codec::{StoredItem, StoredUser};
use crate::delta::Delta;
use crate::model::{Item, User};
use crate::segment::format::ArchivedSegmentData;
use crate::segment::Segment;

/// A consistent, immutable view of the whole store at one instant: the segment, the writes
/// since it, and the behaviour state, published atomically as a unit. Get one with
/// [`crate::Store::snapshot`], hold it for the length of a query (or several that must agree),
/// and drop it; writes meanwhile publish newer snapshots and never change this one.
#[derive(Debug)]
pub struct Snapshot {
    /// The mapped base segment.
    pub(crate) segment: Arc<Segment>,
    /// Writes since the segment.
    pub(crate) delta: Delta,
    /// Highest write sequence number visible in this snapshot.
    pub(crate) seq: u64,
    /// Behaviour state: derived user tags, item statistics, co-occurrence.
    pub(crate) activity: Activity,
}

/// Where a record's current contents live.
#[derive(Debug, Clone)]
pub(crate) enum Row<T> {
    /// In the segment, at this dense id.
    Segment(u32),
    /// In the delta.
    Delta(Arc<T>),
}

impl Snapshot {
    /// The archived segment root.
    #[inline]
    pub(crate) fn seg(&self) -> &ArchivedSegmentData {
        self.segment.data()
    }

    /// Dense id for an item name, if the name is known (the item may be deleted; deleted ones have no row).
    pub fn item_id(&self, name: &str) -> Option<u32> {
        self.delta
            .item_names
            .get(name)
            .copied()
            .or_else(|| self.seg().items.names.lookup(name))
    }

    /// Dense id for a user name, if known.
    pub fn user_id(&self, name: &str) -> Option<u32> {
        self.delta
            .user_names
            .get(name)
            .copied()
            .or_else(|| self.seg().users.names.lookup(name))
    }

    /// Dense id for a tag name, if known.
    pub fn tag_id(&self, name: &str) -> Option<u32> {
        self.delta
            .tags
            .get(name)
            .copied()
            .or_else(|| self.seg().tags.lookup(name))
    }

    /// Tag name for a dense tag id.
    pub fn tag_name(&self, id: u32) -> Option<&str> {
        match self.delta.tag_names.get(&id) {
            Some(n) => Some(n),
            None => self.seg().tags.get(id),
        }
    }

    /// Current row of item `id`, or `None` if it does not exist (never did, or deleted).
    pub(crate) fn item_row(&self, id: u32) -> Option<Row<StoredItem>> {
        if self.delta.item_shadow.get(id) {
            return self
                .delta
                .items
                .get(&id)
                .and_then(|e| e.row.clone())
                .map(Row::Delta);
        }
        self.seg().items.is_live(id).then_some(Row::Segment(id))
    }

    /// Current row of user `id`, or `None`.
    pub(crate) fn user_row(&self, id: u32) -> Option<Row<StoredUser>> {
        if self.delta.user_shadow.get(id) {
            return self
                .delta
                .users
                .get(&id)
                .and_then(|e| e.row.clone())
                .map(Row::Delta);
        }
        self.seg().users.is_live(id).then_some(Row::Segment(id))
    }

    /// Item name of a live item id.
    pub fn item_name(&self, id: u32) -> Option<String> {
        match self.item_row(id)? {
            Row::Delta(r) => Some(r.name.clone()),
            Row::Segment(i) => self.seg().items.names.get(i).map(str::to_string),
        }
    }

    /// User name of a live user id.
    pub fn user_name(&self, id: u32) -> Option<String> {
        match self.user_row(id)? {
            Row::Delta(r) => Some(r.name.clone()),
            Row::Segment(i) => self.seg().users.names.get(i).map(str::to_string),
        }
    }

    /// Item `id` as an owned [`StoredItem`] (the rebuild reads rows through this).
    pub(crate) fn stored_item(&self, id: u32) -> Option<StoredItem> {
        match self.item_row(id)? {
            Row::Delta(r) => Some((*r).clone()),
            Row::Segment(i) => {
                let t = &self.seg().items;
                Some(StoredItem {
                    name: t.names.get(i)?.to_string(),
                    tags: t.forward.row_vec(i),
                    title: t.titles.get(i).unwrap_or("").to_string(),
                    category: t.category_of(i).to_string(),
                    price: t.price.get(i as usize).map_or(0.0, |v| v.to_native()),
                    stock: t.stock.get(i as usize).map_or(0, |v| v.to_native()),
                    members_only: crate::segment::read::bit(&t.members_only, i as usize),
                    created_at: t.created_at.get(i as usize).map_or(0, |v| v.to_native()),
                })
            }
        }
    }

    /// User `id` as an owned [`StoredUser`].
    pub(crate) fn stored_user(&self, id: u32) -> Option<StoredUser> {
        match self.user_row(id)? {
            Row::Delta(r) => Some((*r).clone()),
            Row::Segment(i) => {
                let t = &self.seg().users;
                Some(StoredUser {
                    name: t.names.get(i)?.to_string(),
                    tags: t.forward.row_vec(i),
                    recent: t.recent_of(i),
                })
            }
        }
    }

    /// Tags by name, sorted by name so the public order does not depend on dense ids.
    fn tags_public(&self, tags: &[(u32, f32)]) -> Vec<(String, f32)> {
        let mut out: Vec<(String, f32)> = tags
            .iter()
            .filter_map(|&(t, w)| Some((self.tag_name(t)?.to_string(), w)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The public form of item `name`.
    pub fn item(&self, name: &str) -> Option<Item> {
        let s = self.stored_item(self.item_id(name)?)?;
        Some(Item {
            id: s.name,
            tags: self.tags_public(&s.tags),
            title: s.title,
            category: s.category,
            price: s.price,
            stock: s.stock,
            members_only: s.members_only,
            created_at: s.created_at,
        })
    }

    /// The public form of user `name`.
    pub fn user(&self, name: &str) -> Option<User> {
        let s = self.stored_user(self.user_id(name)?)?;
        Some(User {
            id: s.name,
            tags: self.tags_public(&s.tags),
            recent_items: s.recent.iter().filter_map(|&i| self.item_name(i)).collect(),
        })
    }

    /// Upper bound (exclusive) of item ids that may be live.
    pub fn item_id_bound(&self) -> u32 {
        let seg = crate::narrow::u32_from(self.seg().items.slots());
        self.delta
            .items
            .keys()
            .map(|k| k + 1)
            .max()
            .unwrap_or(0)
            .max(seg)
    }

    /// Upper bound (exclusive) of user ids that may be live.
    pub fn user_id_bound(&self) -> u32 {
        let seg = crate::narrow::u32_from(self.seg().users.slots());
        self.delta
            .users
            .keys()
            .map(|k| k + 1)
            .max()
            .unwrap_or(0)
            .max(seg)
    }

    /// Upper bound (exclusive) of tag ids.
    pub fn tag_id_bound(&self) -> u32 {
        let seg = crate::narrow::u32_from(self.seg().tags.len());
        self.delta
            .tag_names
            .keys()
            .map(|k| k + 1)
            .max()
            .unwrap_or(0)
            .max(seg)
    }

    /// Count live items (segment minus shadowed, plus live delta rows).
    pub fn live_items(&self) -> usize {
        live_items(self.seg(), &self.delta)
    }

    /// Count live users.
    pub fn live_users(&self) -> usize {
        live_users(self.seg(), &self.delta)
    }

    /// Tag ids with a name that no live item, no live user and no user's derived profile
    /// uses: what a deleted user (or item) alone had. A scan of every record.
    pub(crate) fn unused_tags(&self) -> Vec<u32> {
        let bound = self.tag_id_bound() as usize;
        let mut used = vec![false; bound];
        let mut mark = |tags: &[(u32, f32)]| {
            for &(t, _) in tags {
                if let Some(u) = used.get_mut(t as usize) {
                    *u = true;
                }
            }
        };
        for id in 0..self.item_id_bound() {
            if let Some(item) = self.stored_item(id) {
                mark(&item.tags);
            }
        }
        for id in 0..self.user_id_bound() {
            if let Some(user) = self.stored_user(id) {
                mark(&user.tags);
            }
        }
        for (_, state) in self.activity.users() {
            mark(&state.derived);
        }
        (0..bound)
            .filter(|&t| !used[t])
            .map(crate::narrow::u32_from)
            .filter(|&t| self.tag_name(t).is_some_and(|n| !n.is_empty()))
            .collect()
    }
}

/// Live items of a segment with a delta over it: the segment's, less those the delta
/// shadows, plus the delta's live rows. Also what a write call's private copy of the delta
/// holds (the records quota, `store/namespace.rs`).
pub(crate) fn live_items(seg: &ArchivedSegmentData, delta: &crate::delta::Delta) -> usize {
    let t = &seg.items;
    let seg_live: usize = t
        .live
        .iter()
        .map(|w| w.to_native().count_ones() as usize)
        .sum();
    let shadowed_live = delta.items.keys().filter(|&&id| t.is_live(id)).count();
    let delta_live = delta.items.values().filter(|e| e.row.is_some()).count();
    seg_live - shadowed_live + delta_live
}

/// Live users; see [`live_items`].
pub(crate) fn live_users(seg: &ArchivedSegmentData, delta: &crate::delta::Delta) -> usize {
    let t = &seg.users;
    let seg_live: usize = t
        .live
        .iter()
        .map(|w| w.to_native().count_ones() as usize)
        .sum();
    let shadowed_live = delta.users.keys().filter(|&&id| t.is_live(id)).count();
    let delta_live = delta.users.values().filter(|e| e.row.is_some()).count();
    seg_live - shadowed_live + delta_live
}
