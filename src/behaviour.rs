//! Recording behaviour events and reading back what they left: the write glue between
//! [`Event`]s and [`crate::activity`], and the public views of a user's and an item's activity.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::activity::ingest_items::Steps;
use crate::activity::log::{self, Logged};
use crate::activity::segments::in_segment;
use crate::activity::user::passed_tags;
use crate::activity::{Lifecycle, Rfm};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, StoredEvent, StoredKind};
use crate::model::{display_id, User};
use crate::snapshot::Snapshot;
use crate::view::View;
use crate::write::Pending;

/// The state of one de-duplicated import run ([`crate::Store::dedup_run`]): where the log stood when
/// it began, and how many copies of each already-logged event the run has met. It holds an
/// entry only per event that was logged before the run, so a first import keeps it empty.
#[derive(Debug, Default)]
pub struct DedupRun {
    before: u64,
    seen: HashMap<u64, u32>,
}

impl DedupRun {
    /// A run that counts the events logged up to sequence number `before`.
    pub(crate) fn new(before: u64) -> DedupRun {
        DedupRun {
            before,
            seen: HashMap::new(),
        }
    }
}

/// Batches of at least this many events apply the item half of each event on a second thread
/// (see `Pending::record_all`); below it, starting the thread costs more than it saves.
pub(crate) const PARALLEL_EVENTS: usize = 2_048;
/// Events whose item halves go to that thread at a time.
const STEPS_PER_HANDOVER: usize = 256;

/// Per [`Store::record_events_once`] call: each user's already-logged events, by time.
/// Per user met in a de-duplicated run: the newest time pruned from their log (if any), and
/// their logged events by time.
type LoggedBefore = HashMap<u32, (Option<u64>, HashMap<u64, Vec<Event>>)>;

impl Pending<'_> {
    /// The item's tags plus its category and price band (unless it has such tags already),
    /// scaled to unit L2 norm so every event adds the same total weight whatever the item.
    fn passed_tags(&mut self, item: u32) -> Result<Arc<Vec<(u32, f32)>>> {
        if let Some(t) = self.carried.passed.get(&item) {
            return Ok(t.clone());
        }
        let (tags, category, price) = match self.delta.items.get(&item) {
            Some(e) => match &e.row {
                Some(r) => (r.tags.clone(), r.category.clone(), r.price),
                None => (Vec::new(), String::new(), 0.0),
            },
            None => {
                let t = &self.seg.items;
                (
                    t.forward.row_vec(item),
                    t.category_of(item).to_string(),
                    t.price.get(item as usize).map_or(0.0, |p| p.to_native()),
                )
            }
        };
        let seg = self.seg;
        let names = self.delta.tag_names.clone(); // O(1): a persistent map
        let named = |t: u32, prefix: &str| match names.get(&t) {
            Some(n) => n.starts_with(prefix),
            None => seg.tags.get(t).is_some_and(|n| n.starts_with(prefix)),
        };
        let tags = passed_tags(tags, &category, price, named, |n| self.tag_id(n).map(Some))?;
        let tags = Arc::new(tags);
        self.carried.passed.insert(item, tags.clone());
        Ok(tags)
    }

    /// The live item called `name`.
    fn live_item(&self, name: &str) -> Option<u32> {
        self.item_id(name).filter(|&i| self.item_live(i))
    }

    /// The user called `name`, created with no explicit tags if new.
    fn ensure_user(&mut self, name: &str) -> Result<u32> {
        if let Some(id) = self.user_id(name).filter(|&u| self.user_live(u)) {
            return Ok(id);
        }
        self.upsert_user(&User::new(name, Vec::<(String, f32)>::new()), &[])?;
        self.user_id(name)
            .ok_or_else(|| Error::invalid("user", name, "could not be created"))
    }

    /// Stage `events`: their log entries and their effect on the behaviour state. A large
    /// batch applies the item half of each event ([`crate::activity::ingest_items`]) on a
    /// second thread while this one resolves names and applies the user half; the state
    /// comes out the same as applying one event after another.
    pub(crate) fn record_all(&mut self, events: &[Event]) -> Result<()> {
        let cfg = self.config;
        let mut side = self.ingest.take_items();
        let mut steps = Steps::default();
        let parallel = events.len() >= PARALLEL_EVENTS
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let staged = if parallel {
            let handed = &mut side;
            std::thread::scope(|scope| {
                let (send, recv) = std::sync::mpsc::sync_channel::<Steps>(4);
                // Applied steps come back emptied, so their buffers are reused rather than
                // allocated by this thread and freed by the other.
                let (give_back, take_back) = std::sync::mpsc::channel::<Steps>();
                let apply = move || {
                    for mut s in recv {
                        handed.parts().apply(cfg, &s);
                        s.clear();
                        let _ = give_back.send(s);
                    }
                };
                // Without the thread (it could not start) the steps pile up and are applied
                // below, after the scope.
                let worker = std::thread::Builder::new()
                    .name("recostore-items".into())
                    .spawn_scoped(scope, apply)
                    .ok();
                let staged = self.stage(events, &mut steps, |steps| {
                    if worker.is_some() {
                        // Fails only if the thread is gone (it panicked); the join raises that.
                        let empty = take_back.try_recv().unwrap_or_default();
                        let _ = send.send(std::mem::replace(steps, empty));
                    }
                });
                drop(send);
                if let Some(w) = worker {
                    if let Err(panic) = w.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                staged
            })
        } else {
            self.stage(events, &mut steps, |steps| {
                side.parts().apply(cfg, steps);
                steps.clear();
            })
        };
        side.parts().apply(cfg, &steps);
        self.ingest.restore_items(side);
        staged
    }

    /// [`Pending::record`] each of `events`, handing the steps over every
    /// [`STEPS_PER_HANDOVER`] events.
    fn stage(
        &mut self,
        events: &[Event],
        steps: &mut Steps,
        mut hand_over: impl FnMut(&mut Steps),
    ) -> Result<()> {
        for (i, e) in events.iter().enumerate() {
            self.record(i, e, steps)?;
            if steps.len() >= STEPS_PER_HANDOVER {
                hand_over(steps);
            }
        }
        Ok(())
    }

    /// Stage one event: its log entry and the user half of its effect on the behaviour state
    /// (the item half goes onto `steps`).
    fn record(&mut self, index: usize, ev: &Event, steps: &mut Steps) -> Result<()> {
        let user = match self.carried.users.get(ev.user.as_str()) {
            Some(&u) => u,
            None => {
                let u = self.ensure_user(&ev.user)?;
                self.carried.users.insert(ev.user.as_str().into(), u);
                u
            }
        };
        let item = match &ev.item {
            Some(name) => Some(match self.carried.items.get(name.as_str()) {
                Some(&i) => i,
                None => {
                    let i = self.live_item(name).ok_or_else(|| Error::InvalidEvent {
                        index,
                        user: display_id(&ev.user),
                        reason: format!(
                            "item `{}` is not in the store; upsert the item before recording events about it",
                            display_id(name)
                        ),
                    })?;
                    self.carried.items.insert(name.as_str().into(), i);
                    i
                }
            }),
            None => None,
        };
        let kind = match &ev.kind {
            EventKind::View => StoredKind::View,
            EventKind::Click => StoredKind::Click,
            EventKind::Search { query } => StoredKind::Search(query.clone()),
            EventKind::Favourite => StoredKind::Favourite,
            EventKind::Cart => StoredKind::Cart,
            EventKind::Purchase { qty, price } => StoredKind::Purchase {
                qty: *qty,
                price: *price,
            },
            EventKind::Rating { value } => StoredKind::Rating(*value),
            EventKind::Review => StoredKind::Review,
            EventKind::Impression {
                slot,
                strategy,
                items,
            } => StoredKind::Impression {
                slot: slot.clone(),
                strategy: strategy.clone(),
                items: items.iter().filter_map(|n| self.live_item(n)).collect(),
            },
        };
        let stored = StoredEvent {
            item,
            kind,
            session: ev.session.clone(),
        };
        let tags = match item {
            Some(i) if stored.kind.is_interest() => self.passed_tags(i)?,
            _ => Arc::default(),
        };
        self.ingest.apply_user(user, ev.ts, &stored, &tags, steps);
        let totals = &mut self.ingest.act.totals;
        totals.event_seq += 1;
        let seq = totals.event_seq;
        self.log.push(
            user,
            Logged {
                seq,
                ts: ev.ts,
                event: stored,
            },
        );
        Ok(())
    }

    /// Re-apply journalled events (see [`Store::replay_journal`]): `events` in arrival order,
    /// `entries` the journal entries they came from, removed by the checkpoint this forces.
    pub(crate) fn replay(&mut self, events: Vec<(u32, Logged)>, entries: &[u64]) -> Result<()> {
        for (user, e) in events {
            let tags = match e.event.item {
                Some(i) if e.event.kind.is_interest() => self.passed_tags(i)?,
                _ => Arc::default(),
            };
            self.ingest.apply(user, e.ts, &e.event, &tags);
            let totals = &mut self.ingest.act.totals;
            totals.event_seq = totals.event_seq.max(e.seq);
        }
        for &entry in entries {
            log::remove_journal(&mut self.batch, entry);
        }
        self.checkpoint = true;
        self.replayed = true;
        Ok(())
    }

    /// Derive the behaviour state of an older store (formats 1 to 3) again from its whole
    /// event log (`events`, in arrival order; see [`crate::activity::reload`]): replay every
    /// event into an empty state, remove `old_keys` (the old state and journal) and raise the
    /// format mark, all in this write's batch with the checkpoint it forces.
    pub(crate) fn upgrade_activity(
        &mut self,
        events: Vec<(u32, Logged)>,
        old_keys: Vec<crate::durable::Value>,
    ) -> Result<()> {
        for k in old_keys {
            self.batch.remove(k);
        }
        self.replay(events, &[])?;
        self.batch.insert(
            crate::codec::META_FORMAT,
            crate::codec::STORE_FORMAT.to_be_bytes(),
        );
        // The replay derived the exposure memory from the whole log too.
        if self.ingest.config().exposure_memory > 0 {
            self.batch
                .insert(crate::activity::checkpoint::META_EXPOSURE, [1u8]);
        }
        Ok(())
    }

    /// Drop user `id`'s event log and take their baskets and sessions out of the indexes;
    /// returns what was taken.
    pub(crate) fn forget_activity(
        &mut self,
        id: u32,
        tree: &crate::durable::Db,
    ) -> Result<crate::forget::Taken> {
        let (events, keys) = log::user_log(tree, id, u64::MAX)?;
        for k in keys {
            self.batch.remove(k);
        }
        // Events pruned from the log still count in the totals the user's removal lowers.
        let pruned = crate::retention::pruned(tree, id)?.events;
        self.batch.remove(crate::retention::pruned_key(id));
        let mut taken = crate::forget::Taken::default();
        if !events.is_empty() || pruned > 0 || self.ingest.act.user(id).is_some() {
            let all = events
                .len()
                .saturating_add(crate::narrow::usize_from(pruned));
            taken = self.ingest.forget_user(id, all);
            taken.events = events.len() as u64;
            taken.pruned = pruned;
        }
        self.checkpoint = true;
        Ok(taken)
    }
}

/// What behaviour says about one user, as of the store's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserActivity {
    /// Tags derived from behaviour, decayed to now, strongest first.
    pub derived_tags: Vec<(String, f32)>,
    /// Most recent items, newest last.
    pub recent_items: Vec<String>,
    /// Items ever shown interest in (count).
    pub seen: usize,
    /// Items ever bought (count).
    pub purchased: usize,
    /// Orders (purchase baskets).
    pub orders: u32,
    /// Money spent.
    pub spend: f64,
    /// Time of the newest order, if any.
    pub last_order: Option<u64>,
    /// Time of the first and the newest event.
    pub first_seen: u64,
    /// Time of the newest event.
    pub last_seen: u64,
    /// Events recorded.
    pub events: u64,
    /// RFM scores among this store's buyers.
    pub rfm: Rfm,
    /// Lifecycle stage.
    pub lifecycle: Lifecycle,
    /// The named segments the user is in (see `activity::segments::SEGMENTS`).
    pub segments: Vec<&'static str>,
}

/// What behaviour says about one item, as of the store's clock. A view rather than the stored
/// [`crate::activity::ItemStats`]: the stored popularity only means something together with
/// its reference time and the clock, so the view gives the decayed figure instead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemActivity {
    /// Product-page views.
    pub views: u64,
    /// Clicks in lists.
    pub clicks: u64,
    /// Wish-list saves.
    pub favourites: u64,
    /// Add-to-carts.
    pub carts: u64,
    /// Purchase events.
    pub orders: u64,
    /// Units sold.
    pub units: u64,
    /// Revenue.
    pub revenue: f64,
    /// Reviews.
    pub reviews: u64,
    /// Ratings.
    pub ratings: u64,
    /// Average rating, if rated.
    pub rating: Option<f32>,
    /// Purchases per view.
    pub conversion: f32,
    /// Time-decayed popularity.
    pub popularity: f32,
    /// Times shown in impressions.
    pub impressions: u64,
}

impl Snapshot {
    /// A user's derived tags, decayed to the store's clock, as `(tag id, weight)` sorted by id.
    pub(crate) fn derived_tags(&self, user: u32, half_life_secs: f64) -> Vec<(u32, f32)> {
        self.activity.user(user).map_or_else(Vec::new, |u| {
            u.derived_at_time(self.activity.now(), half_life_secs)
        })
    }
}

impl View {
    /// What behaviour says about user `id`, or `None` if the user does not exist.
    pub fn user_activity(&self, id: &str) -> Option<UserActivity> {
        let snap = self.snapshot();
        let uid = snap.user_id(id)?;
        snap.user_row(uid)?;
        let act = &snap.activity;
        let now = act.now();
        let cfg = self.config();
        let empty = crate::activity::UserState::default();
        let u = act.user(uid).unwrap_or(&empty);
        let mut derived: Vec<(String, f32)> = u
            .derived_at_time(now, cfg.user_half_life_secs())
            .into_iter()
            .filter_map(|(t, w)| Some((snap.tag_name(t)?.to_string(), w)))
            .collect();
        derived.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let rfm = act.rfm(u);
        let lifecycle = Lifecycle::of(u, now, &cfg.lifecycle);
        let segments = crate::activity::segments::SEGMENTS
            .iter()
            .filter(|(n, _)| in_segment(n, rfm, lifecycle) == Some(true))
            .map(|(n, _)| *n)
            .collect();
        Some(UserActivity {
            derived_tags: derived,
            recent_items: u
                .recent
                .iter()
                .filter_map(|&(i, _)| snap.item_name(i))
                .collect(),
            seen: u.seen.len(),
            purchased: u.purchased.len(),
            orders: u.orders,
            spend: u.spend,
            last_order: (u.orders > 0).then_some(u.last_order),
            first_seen: u.first_seen,
            last_seen: u.last_seen,
            events: u.events,
            rfm,
            lifecycle,
            segments,
        })
    }

    /// What behaviour says about item `id`, or `None` if the item does not exist.
    pub fn item_activity(&self, id: &str) -> Option<ItemActivity> {
        let snap = self.snapshot();
        let iid = snap.item_id(id)?;
        snap.item_row(iid)?;
        let s = snap.activity.item(iid).cloned().unwrap_or_default();
        Some(ItemActivity {
            views: s.views,
            clicks: s.clicks,
            favourites: s.favourites,
            carts: s.carts,
            orders: s.orders,
            units: s.units,
            revenue: s.revenue,
            reviews: s.reviews,
            ratings: s.ratings,
            rating: s.rating(),
            conversion: s.conversion(),
            popularity: s.popularity(
                snap.activity.now(),
                self.config().popularity_half_life_secs(),
            ),
            impressions: s.impressions,
        })
    }

    /// The users in segment `name` (see `activity::segments::SEGMENTS`), sorted by id.
    pub fn segment_users(&self, name: &str) -> Result<Vec<String>> {
        let snap = self.snapshot();
        let act = &snap.activity;
        let known = crate::activity::segments::SEGMENTS
            .iter()
            .any(|(n, _)| *n == name);
        if !known {
            let names: Vec<&str> = crate::activity::segments::SEGMENTS
                .iter()
                .map(|(n, _)| *n)
                .collect();
            return Err(Error::InvalidQuery {
                reason: format!("unknown segment `{name}`; known: {}", names.join(", ")),
            });
        }
        let now = act.now();
        let mut out: Vec<String> = act
            .users()
            .filter(|(_, u)| {
                let rfm = act.rfm(u);
                in_segment(name, rfm, Lifecycle::of(u, now, &self.config().lifecycle)) == Some(true)
            })
            .filter_map(|(id, _)| {
                snap.user_row(id)?;
                snap.user_name(id)
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

/// How many events equal to `e` were in `e.user`'s log with sequence number at most
/// `before`. Each user's log is read once per call, into `logs`.
/// The events of `events` that `run` should record: the k-th copy of an event in the run is
/// kept only if `tree`'s log held fewer than k identical events before the run (see
/// [`crate::Store::record_events_once`]).
pub(crate) fn unlogged(
    tree: &crate::durable::Db,
    snap: &Snapshot,
    events: &[Event],
    run: &mut DedupRun,
) -> Result<Vec<Event>> {
    let mut logs = LoggedBefore::new();
    let mut fresh = Vec::with_capacity(events.len());
    for e in events {
        let before = logged_before(tree, snap, e, run.before, &mut logs)?;
        let keep = before == 0 || {
            // Only events already logged are counted, so a first import keeps no state.
            let key = xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(e).unwrap_or_default());
            let copy = run.seen.entry(key).or_insert(0);
            *copy += 1;
            *copy > before
        };
        if keep {
            fresh.push(e.clone());
        }
    }
    Ok(fresh)
}

fn logged_before(
    tree: &crate::durable::Db,
    snap: &Snapshot,
    e: &Event,
    before: u64,
    logs: &mut LoggedBefore,
) -> Result<u32> {
    let Some(uid) = snap.user_id(&e.user) else {
        return Ok(0);
    };
    if let std::collections::hash_map::Entry::Vacant(slot) = logs.entry(uid) {
        let (events, _) = log::user_log(tree, uid, before)?;
        let mut by_ts: HashMap<u64, Vec<Event>> = HashMap::new();
        for l in events {
            by_ts
                .entry(l.ts)
                .or_default()
                .push(public_event(snap, &e.user, l.ts, l.event));
        }
        let pruned = crate::retention::pruned(tree, uid)?;
        let through = (pruned.events > 0).then_some(pruned.through_ts);
        slot.insert((through, by_ts));
    }
    let Some((through, by_ts)) = logs.get(&uid) else {
        return Ok(0);
    };
    // The log no longer holds what it held at or before this time: count every copy as
    // already recorded rather than record any twice.
    if through.is_some_and(|t| e.ts <= t) {
        return Ok(u32::MAX);
    }
    Ok(by_ts.get(&e.ts).map_or(0, |v| {
        crate::narrow::u32_from(v.iter().filter(|x| *x == e).count())
    }))
}

/// User `id`'s recorded events, oldest first (impression items that no longer exist are
/// left out). `NotFound` if the user does not exist.
pub(crate) fn user_events(
    snap: &Snapshot,
    tree: &crate::durable::Db,
    id: &str,
) -> Result<Vec<Event>> {
    let not_found = || Error::NotFound {
        what: "user",
        id: display_id(id),
    };
    let uid = snap.user_id(id).ok_or_else(not_found)?;
    snap.user_row(uid).ok_or_else(not_found)?;
    let (events, _) = log::user_log(tree, uid, u64::MAX)?;
    let out = events
        .into_iter()
        .map(|l| public_event(snap, id, l.ts, l.event))
        .collect();
    Ok(out)
}

/// The public form of a stored event.
pub(crate) fn public_event(snap: &Snapshot, user: &str, ts: u64, e: StoredEvent) -> Event {
    let kind = match e.kind {
        StoredKind::View => EventKind::View,
        StoredKind::Click => EventKind::Click,
        StoredKind::Search(query) => EventKind::Search { query },
        StoredKind::Favourite => EventKind::Favourite,
        StoredKind::Cart => EventKind::Cart,
        StoredKind::Purchase { qty, price } => EventKind::Purchase { qty, price },
        StoredKind::Rating(value) => EventKind::Rating { value },
        StoredKind::Review => EventKind::Review,
        StoredKind::Impression {
            slot,
            strategy,
            items,
        } => EventKind::Impression {
            slot,
            strategy,
            items: items.iter().filter_map(|&i| snap.item_name(i)).collect(),
        },
    };
    Event {
        user: user.to_string(),
        item: e.item.and_then(|i| snap.item_name(i)),
        kind,
        ts,
        session: e.session,
    }
}
