//! The write path: validate, resolve names to dense ids, write one atomic sled batch, then
//! publish a new snapshot. Writers are serialised by one mutex (sled is the bottleneck anyway);
//! readers never wait for it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::durable::Batch;

use crate::activity::checkpoint::{self, Touched, Unsaved};
use crate::activity::ingest::Ingest;
use crate::activity::log::LogBatch;
use crate::activity::Activity;
use crate::codec::{self, Kind, StoredItem, StoredUser};
use crate::config::Config;
use crate::delta::Delta;
use crate::error::{Error, Result};
use crate::model::{Item, User};
use crate::segment::format::ArchivedSegmentData;
use crate::snapshot::Snapshot;

/// Id and sequence counters, persisted under `M*` keys in the same batch as each write.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub next_item: u32,
    pub next_user: u32,
    pub next_tag: u32,
    pub seq: u64,
    /// Item ids below this may have a record in a bulk chunk ([`codec::META_CHUNKED`]):
    /// deleting one writes a tombstone instead of removing its key. Written only by a bulk
    /// load.
    pub chunked: u32,
}

impl Counters {
    fn alloc(next: &mut u32, what: &'static str) -> Result<u32> {
        if *next == u32::MAX {
            return Err(Error::IdSpaceExhausted(what));
        }
        let id = *next;
        *next += 1;
        Ok(id)
    }

    fn persist(&self, batch: &mut Batch) {
        batch.insert(codec::META_NEXT_ITEM, self.next_item.to_be_bytes());
        batch.insert(codec::META_NEXT_USER, self.next_user.to_be_bytes());
        batch.insert(codec::META_NEXT_TAG, self.next_tag.to_be_bytes());
        batch.insert(codec::META_SEQ, self.seq.to_be_bytes());
    }
}

/// What the writer keeps from call to call to spare look-ups in event batches. All of it
/// depends only on item rows, the tag dictionary and which users exist, so it stays valid
/// until a call changes items or deletes anything (such calls set `Pending::checkpoint`),
/// which clears it; so does a failed call (it may hold ids that call allocated and never
/// stored), and growing past [`CARRIED_MAX`] entries in one table.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    /// The tags each item passes on to the users who touch it (see `Pending::passed_tags`).
    pub passed: HashMap<u32, Arc<Vec<(u32, f32)>>>,
    /// Live users by name. Events repeat their users, and a flat table answers a repeat
    /// several times faster than the persistent maps behind `Pending::user_id` (a chain of
    /// pointer hops per name).
    pub users: HashMap<Box<str>, u32>,
    /// Live items by name, for the same reason.
    pub items: HashMap<Box<str>, u32>,
}

/// Entries the writer keeps at most in each table of [`Carried`] (about 100 bytes each): a
/// bound on memory, far above what one checkpoint interval usually touches.
const CARRIED_MAX: usize = 1 << 18;

impl Carried {
    fn full(&self) -> bool {
        self.passed
            .len()
            .max(self.users.len())
            .max(self.items.len())
            > CARRIED_MAX
    }
}

/// The stored row of `item`, whose tags resolve to `tags` (sorted by tag id).
fn stored_item(item: &Item, tags: Vec<(u32, f32)>) -> StoredItem {
    StoredItem {
        name: item.id.clone(),
        tags,
        title: item.title.clone(),
        category: item.category.clone(),
        price: item.price,
        stock: item.stock,
        members_only: item.members_only,
        created_at: item.created_at,
    }
}

/// The rows of a run of a bulk load's items: their ids, their validated tags (`part`) and
/// the ids of the part's distinct tag names.
fn rows_of(
    &(items, item_ids, part, tag_ids): &(&[Item], &[u32], &crate::model::BulkPart<'_>, &[u32]),
) -> Vec<(u32, StoredItem)> {
    items
        .iter()
        .zip(item_ids)
        .zip(part.per_item())
        .map(|((item, &id), tags)| {
            let mut resolved: Vec<(u32, f32)> = tags
                .iter()
                // Validation numbered the names it pushed to `part.names`.
                .filter_map(|t| Some((*tag_ids.get(t.name as usize)?, t.weight)))
                .collect();
            resolved.sort_unstable_by_key(|&(t, _)| t);
            (id, stored_item(item, resolved))
        })
        .collect()
}

/// What [`Pending::bulk_items`] staged.
pub(crate) struct BulkRows {
    /// Every row, ascending by id, the last of a repeated name winning.
    pub rows: Vec<(u32, StoredItem)>,
    /// The first id the load handed out: rows from here on are new to the store.
    pub first_fresh: u32,
    /// `T` keys and names of the tags new to the store. Not in the batch: the caller writes
    /// them ahead of the commit, with the chunks, because a hundred thousand small keys in
    /// the commit batch cost sled half a second. Until the commit's counters pass their ids
    /// they are garbage, which open and the next bulk load remove.
    pub new_tags: Vec<([u8; 5], Vec<u8>)>,
}

/// One write call in progress: a private copy of the delta and counters, plus the sled batch.
/// Nothing is visible to anyone until [`Pending::commit`] hands back the new snapshot.
pub(crate) struct Pending<'a> {
    pub seg: &'a ArchivedSegmentData,
    pub delta: Delta,
    pub counters: Counters,
    pub batch: Batch,
    /// Behaviour changes of this call (events, forgotten users).
    pub ingest: Ingest<'a>,
    /// This call's events, for the log.
    pub log: LogBatch,
    /// Set by a journal replay (see [`Pending::finish`]).
    pub replayed: bool,
    /// Look-ups carried from call to call by the writer.
    pub carried: Carried,
    /// Whether this call must checkpoint the behaviour state (see [`checkpoint`]): set by
    /// writes that event replay depends on, or that un-apply state.
    pub checkpoint: bool,
    pub config: &'a Config,
}

/// How a finished write left the behaviour state in sled.
pub(crate) enum Saved {
    /// The call did not change it.
    Nothing,
    /// Only in the journal: the writer remembers what to checkpoint later.
    Journal {
        touched: Box<Touched>,
        entry: u64,
        events: usize,
    },
    /// Checkpointed: everything unsaved so far is written.
    Checkpoint,
}

/// What a finished write hands to the store to apply and publish.
pub(crate) struct Staged {
    pub batch: Batch,
    pub delta: Delta,
    pub counters: Counters,
    /// The new behaviour state, if this write changed it.
    pub activity: Option<Activity>,
    /// What the batch did with the behaviour state.
    pub saved: Saved,
    /// The look-ups to carry to the next call; empty after a call that changed items.
    pub carried: Carried,
    /// Whether to hand everything unsaved to a background checkpoint once applied.
    pub background: bool,
}

impl<'a> Pending<'a> {
    pub fn new(base: &'a Snapshot, counters: Counters, config: &'a Config) -> Self {
        Pending {
            seg: base.seg(),
            delta: base.delta.clone(),
            counters,
            batch: Batch::default(),
            ingest: Ingest::new(&base.activity, config),
            log: LogBatch::default(),
            replayed: false,
            carried: Carried::default(),
            checkpoint: false,
            config,
        }
    }

    pub fn item_id(&self, name: &str) -> Option<u32> {
        self.delta
            .item_names
            .get(name)
            .copied()
            .or_else(|| self.seg.items.names.lookup(name))
    }

    pub fn user_id(&self, name: &str) -> Option<u32> {
        self.delta
            .user_names
            .get(name)
            .copied()
            .or_else(|| self.seg.users.names.lookup(name))
    }

    pub fn item_live(&self, id: u32) -> bool {
        match self.delta.items.get(&id) {
            Some(e) => e.row.is_some(),
            None => self.seg.items.is_live(id),
        }
    }

    pub fn user_live(&self, id: u32) -> bool {
        match self.delta.users.get(&id) {
            Some(e) => e.row.is_some(),
            None => self.seg.users.is_live(id),
        }
    }

    pub fn tag_id(&mut self, name: &str) -> Result<u32> {
        let (id, new) = self.tag_id_unwritten(name)?;
        if new {
            self.batch.insert(codec::tag_key(id), name.as_bytes());
        }
        Ok(id)
    }

    /// [`Pending::tag_id`] without the `T` key of a new name, which the caller writes; says
    /// whether the name is new.
    fn tag_id_unwritten(&mut self, name: &str) -> Result<(u32, bool)> {
        if let Some(id) = self
            .delta
            .tags
            .get(name)
            .copied()
            .or_else(|| self.seg.tags.lookup(name))
        {
            return Ok((id, false));
        }
        let id = Counters::alloc(&mut self.counters.next_tag, "tags")?;
        let n: Arc<str> = Arc::from(name);
        self.delta.tags.insert(n.clone(), id);
        self.delta.tag_names.insert(id, n);
        Ok((id, true))
    }

    fn resolve_tags(&mut self, tags: &[(&str, f32)]) -> Result<Vec<(u32, f32)>> {
        let mut out = Vec::with_capacity(tags.len());
        for &(n, w) in tags {
            out.push((self.tag_id(n)?, w));
        }
        out.sort_unstable_by_key(|&(t, _)| t);
        Ok(out)
    }

    /// Find or allocate the dense id for `name`, registering the name in the delta when the
    /// record is new or was deleted. sled keeps no name index: names live in the records, and
    /// the segment's dictionaries are rebuilt from them.
    fn claim(&mut self, kind: Kind, name: &str) -> Result<u32> {
        let (found, live) = match kind {
            Kind::Item => {
                let f = self.item_id(name);
                (f, f.is_some_and(|i| self.item_live(i)))
            }
            Kind::User => {
                let f = self.user_id(name);
                (f, f.is_some_and(|i| self.user_live(i)))
            }
        };
        let id = match found {
            Some(id) => id,
            None => match kind {
                Kind::Item => Counters::alloc(&mut self.counters.next_item, "items")?,
                Kind::User => Counters::alloc(&mut self.counters.next_user, "users")?,
            },
        };
        if !live {
            let n: Arc<str> = Arc::from(name);
            match kind {
                Kind::Item => self.delta.item_names.insert(n, id),
                Kind::User => self.delta.user_names.insert(n, id),
            };
        }
        Ok(id)
    }

    fn next_seq(&mut self, kind: Kind, id: u32) -> u64 {
        self.counters.seq += 1;
        let seq = self.counters.seq;
        self.batch
            .insert(codec::dirty_key(kind, id), seq.to_be_bytes());
        seq
    }

    /// Stage an item upsert. `tags` are the validated tags of `item`.
    pub fn upsert_item(&mut self, item: &Item, tags: &[(&str, f32)]) -> Result<()> {
        // Event replay reads item rows: the journal must not outlive the rows it was made on.
        self.checkpoint = true;
        let id = self.claim(Kind::Item, &item.id)?;
        let row = stored_item(item, self.resolve_tags(tags)?);
        let key = codec::record_key(Kind::Item, id);
        self.batch.insert(key, codec::encode(&key, &row)?);
        let seq = self.next_seq(Kind::Item, id);
        self.delta
            .put_item(id, seq, Some(Arc::new(row)), &self.seg.items);
        Ok(())
    }

    /// Stage the items of a bulk load (see `Inner::bulk_load_items`): ids and tag names are
    /// resolved as [`Pending::upsert_item`] does, but nothing goes into the delta and no
    /// dirty-log entry is written, because the caller folds the rows straight into a new
    /// segment in the same commit. Items that already have an id (live, deleted, or named
    /// earlier in `items`) get `I` keys here; items with fresh ids are returned for the
    /// caller to write as chunks, and the `T` keys of new tag names for the caller to write
    /// with them (see [`BulkRows::new_tags`]).
    pub fn bulk_items<'i>(
        &mut self,
        items: &'i [Item],
        tags: &crate::model::BulkTags<'i>,
    ) -> Result<BulkRows> {
        self.checkpoint = true;
        let first_fresh = self.counters.next_item;
        // Flat tables for this call's names: the persistent maps behind `tag_id` and
        // `item_id` cost a chain of pointer hops per look-up. The delta is not told the new
        // item names: the caller's segment is.
        let mut names = crate::name_table::BorrowedNames::with_capacity(items.len());
        let mut tag_ids = crate::name_table::ArenaNames::default();
        let mut new_tags = Vec::new();
        // Each part's distinct tag names once, in order of first appearance, so that ids are
        // handed out in the order a record-by-record load would.
        let mut part_ids = Vec::with_capacity(tags.parts().len());
        for part in tags.parts() {
            let mut ids = Vec::with_capacity(part.names.len());
            for &(hash, name) in &part.names {
                let id = match tag_ids.get(hash, name) {
                    Some(id) => id,
                    None => {
                        let (id, new) = self.tag_id_unwritten(name)?;
                        if new {
                            new_tags.push((codec::tag_key(id), name.as_bytes().to_vec()));
                        }
                        tag_ids.insert(hash, name, id);
                        id
                    }
                };
                ids.push(id);
            }
            part_ids.push(ids);
        }
        drop(tag_ids);
        let mut item_ids = Vec::with_capacity(items.len());
        for item in items {
            let id = match names.get(&item.id) {
                Some(id) => id,
                None => {
                    let id = match self.item_id(&item.id) {
                        Some(id) => id,
                        None => Counters::alloc(&mut self.counters.next_item, "items")?,
                    };
                    names.insert(&item.id, id);
                    id
                }
            };
            item_ids.push(id);
        }
        drop(names);
        self.counters.seq += items.len() as u64;
        // The rows themselves (tags resolved and sorted, strings copied: most of the work)
        // need nothing of the writer's, so each part builds its own, the later on a thread.
        let mut jobs = Vec::with_capacity(tags.parts().len());
        let mut at = 0;
        for (part, ids) in tags.parts().iter().zip(&part_ids) {
            let end = (at + part.len()).min(items.len());
            jobs.push((&items[at..end], &item_ids[at..end], part, ids.as_slice()));
            at = end;
        }
        let mut rows = match jobs.as_slice() {
            [first, later] => std::thread::scope(|s| {
                let later = s.spawn(|| rows_of(later));
                let mut rows = rows_of(first);
                // A panic in building rows is a bug; re-raise it here rather than hide it.
                rows.extend(
                    later
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p)),
                );
                rows
            }),
            jobs => jobs.iter().flat_map(rows_of).collect(),
        };
        // A load of new names is ascending already; otherwise sort (stably: of two rows for
        // one id, the later stays last, and wins below).
        if !rows.windows(2).all(|w| w[0].0 < w[1].0) {
            rows.sort_by_key(|&(id, _)| id);
            let mut kept: Vec<(u32, StoredItem)> = Vec::with_capacity(rows.len());
            for (id, row) in rows {
                match kept.last_mut() {
                    Some(last) if last.0 == id => last.1 = row,
                    _ => kept.push((id, row)),
                }
            }
            rows = kept;
        }
        for (id, row) in rows.iter().take_while(|(id, _)| *id < first_fresh) {
            let key = codec::record_key(Kind::Item, *id);
            self.batch.insert(key, codec::encode(&key, row)?);
        }
        Ok(BulkRows {
            rows,
            first_fresh,
            new_tags,
        })
    }

    /// Stage a user upsert. Recent items that are not in the store are dropped.
    pub fn upsert_user(&mut self, user: &User, tags: &[(&str, f32)]) -> Result<()> {
        let id = self.claim(Kind::User, &user.id)?;
        let mut recent: Vec<u32> = user
            .recent_items
            .iter()
            .filter_map(|r| self.item_id(r).filter(|&i| self.item_live(i)))
            .collect();
        let max_recent = self.config.max_recent_items;
        if recent.len() > max_recent {
            recent.drain(..recent.len() - max_recent);
        }
        let row = StoredUser {
            name: user.id.clone(),
            tags: self.resolve_tags(tags)?,
            recent,
        };
        let key = codec::record_key(Kind::User, id);
        self.batch.insert(key, codec::encode(&key, &row)?);
        let seq = self.next_seq(Kind::User, id);
        self.delta.put_user(id, seq, Some(Arc::new(row)));
        Ok(())
    }

    /// Stage a delete. Returns whether the record existed.
    pub fn delete(&mut self, kind: Kind, name: &str) -> bool {
        let (id, live) = match kind {
            Kind::Item => match self.item_id(name) {
                Some(i) => (i, self.item_live(i)),
                None => return false,
            },
            Kind::User => match self.user_id(name) {
                Some(i) => (i, self.user_live(i)),
                None => return false,
            },
        };
        if !live {
            return false;
        }
        self.checkpoint = true;
        let key = codec::record_key(kind, id);
        if kind == Kind::Item && id < self.counters.chunked {
            // A bulk chunk may hold an older record of it, which only a present key shadows.
            self.batch.insert(key, codec::ITEM_TOMBSTONE);
        } else {
            self.batch.remove(key);
        }
        let seq = self.next_seq(kind, id);
        match kind {
            Kind::Item => self.delta.put_item(id, seq, None, &self.seg.items),
            Kind::User => self.delta.put_user(id, seq, None),
        }
        true
    }

    /// Whether this call must checkpoint in its own batch: it changed what replay depends on,
    /// or it changed behaviour state without events (a deleted user's).
    pub fn must_checkpoint(&self) -> bool {
        self.checkpoint || (self.ingest.changed() && self.log.len() == 0)
    }

    /// Finish: persist the counters, the log chunks and either a journal entry or a checkpoint
    /// of the behaviour state into the batch, and return what to apply and publish. `unsaved`
    /// is what earlier event batches left to checkpoint; `busy` says a background checkpoint
    /// is still running.
    pub fn finish(mut self, unsaved: &Unsaved, busy: bool) -> Result<Staged> {
        self.counters.persist(&mut self.batch);
        let events = self.log.len();
        let changed = self.ingest.changed();
        // The dense counts follow the statistics this batch changed, before it is published.
        self.ingest.sync_holdings();
        let every = self.config.checkpoint_events;
        let due = unsaved.events + events >= every;
        // A checkpoint the count calls for runs in the background after this batch (unless
        // one still runs: a later batch starts it); `checkpoint_events` 0 keeps it inline.
        // A replay's batch removes the journal entries: it is applied even if nothing changed.
        let inline = self.replayed
            || ((changed || !unsaved.is_empty())
                && (self.must_checkpoint() || (due && every == 0)));
        let background = !inline && changed && due && !busy;
        let entry = self.log.write(&mut self.batch, changed && !inline)?;
        let saved = if inline {
            tracing::debug!(
                events = unsaved.events + events,
                batches = unsaved.journal.len(),
                "checkpoint with this write"
            );
            checkpoint::write(
                &self.ingest.act,
                &self.ingest.touched,
                unsaved,
                &mut self.batch,
            )?;
            Saved::Checkpoint
        } else {
            match entry {
                Some(entry) => Saved::Journal {
                    touched: Box::new(std::mem::take(&mut self.ingest.touched)),
                    entry,
                    events,
                },
                None => Saved::Nothing,
            }
        };
        Ok(Staged {
            batch: self.batch,
            delta: self.delta,
            counters: self.counters,
            activity: changed.then_some(self.ingest.act),
            carried: if self.checkpoint || self.carried.full() {
                Carried::default()
            } else {
                self.carried
            },
            saved,
            background,
        })
    }
}

impl Staged {
    /// Whether applying it would change nothing.
    pub fn is_noop(&self, before: &Counters) -> bool {
        self.counters.seq == before.seq
            && self.counters.next_tag == before.next_tag
            && self.activity.is_none()
            && matches!(self.saved, Saved::Nothing)
    }
}

impl Unsaved {
    /// Account for a batch that `sled` has applied.
    pub(crate) fn applied(&mut self, saved: Saved) {
        match saved {
            Saved::Nothing => {}
            Saved::Journal {
                touched,
                entry,
                events,
            } => {
                self.touched.absorb(*touched);
                self.journal.push(entry);
                self.events += events;
            }
            Saved::Checkpoint => *self = Unsaved::default(),
        }
    }
}
