//! [`View`]: the store at one instant, for reading. Every query runs on one.
//!
//! tantivy's `Searcher` is the model: the [`crate::Store`] owns durability, the writer and the
//! background work; a view is taken from it once (a lock-free load of the current snapshot and
//! a reference count on what queries share) and every read is a function of it. Writes after
//! the view was taken publish newer snapshots and never change this one, so a page that asks
//! several questions of one view gets answers that agree with each other.

use std::sync::Arc;

use crate::config::Config;
use crate::error::Result;
use crate::metrics::Histogram;
use crate::model::{Item, User};
use crate::plugin::Plugins;
use crate::scenario::{self, Ask, Derivations, Env, Served, UserMatch};
use crate::search::{Query, QueryStats, Recommendation};
use crate::snapshot::Snapshot;

/// What every view of one store shares: owned by the store, referenced by its views.
pub(crate) struct Shared {
    /// The configuration the store was opened with.
    pub(crate) config: Config,
    /// The plugin registry (strategies, slots, A/B routing).
    pub(crate) plugins: Plugins,
    /// Latency of the queries answered through this store's views.
    pub(crate) latency: Histogram,
    /// The same, per scenario (by the plugin ABI's scenario code; 0 for a similarity query),
    /// for the metrics export.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) by_scenario: [Histogram; 13],
    /// Write calls that stored something (records, events, deletes), for the metrics export.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) writes: std::sync::atomic::AtomicU64,
    /// Relations derived from snapshots, kept between queries.
    pub(crate) derived: Derivations,
    /// Cursors of paged asks and the page views ([`crate::pages`]).
    pub(crate) pages: crate::pages::Pages,
    /// Impressions of served answers on their way to the recorder; `None` when the store
    /// records none ([`Config::record_served_impressions`] off, or a replica).
    pub(crate) impressions: Option<crate::impressions::Queue>,
}

/// The store at one instant, for reading: its snapshot, the relations derived from it, and the
/// plugin registry. Cheap to clone and to take ([`crate::Store::view`]); `Send + Sync`, so one
/// view may serve several threads. Take one per page (or per request) and ask it everything
/// that page shows.
///
/// ```
/// use recostore::{Item, Query, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.upsert_items(&[
///     Item::new("mug-red", [("mugs", 1.0), ("red", 1.0)]),
///     Item::new("mug-blue", [("mugs", 1.0), ("blue", 1.0)]),
/// ])?;
/// let view = store.view();
/// store.delete_item("mug-blue")?; // a later write: the view does not see it
/// assert_eq!(view.similar_items("mug-red", 5)?.len(), 1);
/// assert!(store.view().similar_items("mug-red", 5)?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct View {
    snap: Arc<Snapshot>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("generation", &self.snap.segment.generation())
            .field("seq", &self.snap.seq)
            .finish()
    }
}

impl View {
    pub(crate) fn new(snap: Arc<Snapshot>, shared: Arc<Shared>) -> View {
        View { snap, shared }
    }

    fn env(&self) -> Env<'_> {
        Env {
            config: &self.shared.config,
            plugins: &self.shared.plugins,
            derived: &self.shared.derived,
            shadow: false,
            shown: None,
        }
    }

    /// The configuration of the store this view was taken from.
    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The snapshot this view reads.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// Item `id` as of this view.
    pub fn get_item(&self, id: &str) -> Option<Item> {
        self.snap.item(id)
    }

    /// User `id` as of this view.
    pub fn get_user(&self, id: &str) -> Option<User> {
        self.snap.user(id)
    }

    /// Run a similarity query. Never waits on writers.
    pub fn query(&self, q: &Query) -> Result<Vec<Recommendation>> {
        Ok(self.query_with_stats(q)?.0)
    }

    /// Like [`View::query`], also reporting which path answered and how much it scored.
    pub fn query_with_stats(&self, q: &Query) -> Result<(Vec<Recommendation>, QueryStats)> {
        let started = std::time::Instant::now();
        let out = self.snap.query(q);
        let took = started.elapsed();
        self.shared.latency.record(took);
        self.shared.by_scenario[0].record(took);
        out
    }

    /// The `k` items most similar to item `id` by tag cosine ("more like this"), best first.
    pub fn similar_items(&self, id: &str, k: usize) -> Result<Vec<Recommendation>> {
        self.query(&Query::similar_to(id).k(k))
    }

    /// The `k` items that best match a weighted tag profile (e.g. a user's tags), best first.
    /// Tags unknown to the store are ignored.
    pub fn profile_items(&self, tags: &[(String, f32)], k: usize) -> Result<Vec<Recommendation>> {
        self.query(&Query::profile(tags.iter().cloned()).k(k))
    }

    /// Answer a scenario query.
    pub fn recommend(&self, ask: &Ask) -> Result<Vec<Recommendation>> {
        Ok(self.serve(ask)?.items)
    }

    /// [`View::recommend`], also saying which strategy and version ranked the answer and
    /// whether it fell back to the built-in ranker.
    pub fn serve(&self, ask: &Ask) -> Result<Served> {
        let started = std::time::Instant::now();
        let out = self.serve_page(ask).map(|mut served| {
            served.impression = self.record_impression(ask, &served);
            served
        });
        let took = started.elapsed();
        self.shared.latency.record(took);
        let code = crate::scenario::strategy::scenario_code(&ask.scenario) as usize;
        if let Some(h) = self.shared.by_scenario.get(code) {
            h.record(took);
        }
        out
    }

    /// The answer to `ask` as shown: a later page from its cursor, or the ranking (ranked
    /// [`Config::page_depth`] deep and cut to its first page when paged), less what the other
    /// modules of its page view showed. See [`crate::pages`].
    fn serve_page(&self, ask: &Ask) -> Result<Served> {
        let pages = &self.shared.pages;
        // Before any table is touched: an invalid page view id must not take a place.
        ask.validate()?;
        ask.validate_with(&self.shared.config)?;
        let user_known = ask
            .user
            .as_deref()
            .and_then(|u| self.snap.user_id(u))
            .is_some_and(|id| self.snap.user_row(id).is_some());
        if let Some(cursor) = &ask.cursor {
            let page = pages.next(ask, cursor, user_known)?;
            return Ok(Served {
                items: page.items,
                ranked_by: page.ranked_by,
                impression: None,
                next_cursor: page.next_cursor,
            });
        }
        // The view's record stays locked while this module is ranked, so that two modules
        // asked at once cannot both take an item.
        let record = ask.page_view.as_deref().map(|id| pages.view(id));
        let mut shown_in_view = record.as_deref().map(crate::pages::hold);
        let mut asked = std::borrow::Cow::Borrowed(ask);
        if let Some(v) = &shown_in_view {
            if !v.items.is_empty() {
                let a = asked.to_mut();
                a.filter.exclude_items.extend(v.items.iter().cloned());
            }
        }
        let mut env = self.env();
        if ask.paged {
            let depth = self
                .shared
                .config
                .page_depth
                .max(ask.k)
                .min(crate::search::MAX_K);
            env.shown = Some(ask.k);
            asked.to_mut().k = depth;
        }
        let (mut served, shadows) = scenario::run_with_shadows(&env, &self.snap, &asked)?;
        if ask.paged {
            let page = pages.start(ask, user_known, served.items, served.ranked_by);
            served.items = page.items;
            served.ranked_by = page.ranked_by;
            served.next_cursor = page.next_cursor;
        }
        // The shadow ranks what this answer ranked from: the page view's exclusions in, the
        // paging depth out.
        if !shadows.is_empty() {
            let mut shadow_ask = asked.into_owned();
            shadow_ask.k = ask.k;
            self.queue_shadows(&shadow_ask, &served, shadows);
        }
        if let Some(v) = shown_in_view.as_mut() {
            v.items.extend(served.items.iter().map(|r| r.id.clone()));
        }
        Ok(served)
    }

    /// Queue the impression of `served` if the ask names a user and a slot and the store
    /// records served impressions: the items in order (the first
    /// [`crate::MAX_IMPRESSION_ITEMS`]), at the ask's time.
    fn record_impression(
        &self,
        ask: &Ask,
        served: &Served,
    ) -> Option<crate::impressions::Recording> {
        let (Some(user), Some(slot), Some(q)) = (&ask.user, &ask.slot, &self.shared.impressions)
        else {
            return None;
        };
        if !q.is_recording() {
            return None;
        }
        let items: Vec<String> = served
            .items
            .iter()
            .take(crate::event::MAX_IMPRESSION_ITEMS)
            .map(|r| r.id.clone())
            .collect();
        if items.is_empty() {
            return None;
        }
        let ts = scenario::shown::ask_time(&self.snap, ask);
        let event = crate::event::Event::impression(
            user.clone(),
            slot.clone(),
            served.ranked_by.strategy.clone(),
            items,
            ts,
        );
        Some(q.push(event, self.snap.seq))
    }

    /// Hand the shadows sampled for `ask` to the shadow worker, each with this view's
    /// snapshot, the ask and the ids served. The query thread only clones and queues.
    fn queue_shadows(
        &self,
        ask: &Ask,
        served: &Served,
        shadows: Vec<crate::plugin::registry::ShadowPick>,
    ) {
        let Some(slot) = ask.slot.as_deref() else {
            return;
        };
        if shadows.is_empty() {
            return;
        }
        // Built once, and only if some shadow's task is queued.
        let mut shared_parts: Option<(Arc<Ask>, Arc<[String]>)> = None;
        for pick in shadows {
            let plugins = &self.shared.plugins;
            let key = pick.clone();
            plugins.shadow(slot, &key, || {
                let (ask, ids) = shared_parts
                    .get_or_insert_with(|| {
                        (
                            Arc::new(ask.clone()),
                            served.items.iter().map(|r| r.id.clone()).collect(),
                        )
                    })
                    .clone();
                let (snap, shared) = (self.snap.clone(), self.shared.clone());
                Box::new(move || {
                    let env = Env {
                        config: &shared.config,
                        plugins: &shared.plugins,
                        derived: &shared.derived,
                        shadow: true,
                        shown: None,
                    };
                    scenario::shadow(&env, &snap, &ask, &pick, &ids)
                })
            });
        }
    }

    /// The `k` users whose tag profiles (explicit plus derived) are most like `user`'s, best
    /// first (ties by id). An exact scan over every user with a profile, through a contiguous
    /// copy of the profiles that the store keeps between queries (built by the first query
    /// after a segment rebuild or after an eighth of the users changed).
    pub fn users_like(&self, user: &str, k: usize) -> Result<Vec<UserMatch>> {
        scenario::users_like::users_like(&self.env(), &self.snap, user, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StoredItem;
    use crate::scenario::Scenario;
    use crate::segment::{file, Segment, SegmentBuilder};

    /// A view over a segment written here, with no store and no durable layer behind it: the
    /// queries and scenarios are functions of the view alone.
    fn view_of(items: &[(&str, &[(u32, f32)])]) -> (tempfile::TempDir, View) {
        let mut b = SegmentBuilder::new();
        for (t, name) in ["mugs", "red", "blue", "shirts"].iter().enumerate() {
            b.push_tag(t as u32, name);
        }
        for (i, (name, tags)) in items.iter().enumerate() {
            let item = StoredItem {
                name: name.to_string(),
                tags: tags.to_vec(),
                title: String::new(),
                category: String::new(),
                price: 0.0,
                stock: 0,
                members_only: false,
                created_at: 0,
            };
            b.push_item(i as u32, Some(&item));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file::write(dir.path(), &b.finish(1, 0, 0), 0).expect("segment");
        let seg = Segment::open(&path, crate::config::SegmentVerify::Checksum).expect("open");
        let snap = Arc::new(Snapshot {
            segment: Arc::new(seg),
            delta: Default::default(),
            seq: 0,
            activity: Default::default(),
        });
        let config = Config::default();
        let shared = Arc::new(Shared {
            plugins: Plugins::new(config.plugins.clone()),
            config,
            latency: Histogram::default(),
            by_scenario: Default::default(),
            writes: Default::default(),
            derived: Derivations::default(),
            impressions: None,
            pages: crate::pages::Pages::new(std::time::Duration::from_secs(900), 1024),
        });
        (dir, View::new(snap, shared))
    }

    #[test]
    fn queries_and_scenarios_run_on_a_view_without_a_store() {
        let (_dir, view) = view_of(&[
            ("mug-red", &[(0, 1.0), (1, 1.0)]),
            ("mug-blue", &[(0, 1.0), (2, 1.0)]),
            ("shirt-red", &[(1, 1.0), (3, 1.0)]),
        ]);
        let similar = view.similar_items("mug-red", 5).expect("similar");
        let mut ids: Vec<&str> = similar.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["mug-blue", "shirt-red"]);
        assert_eq!(similar[0].score, 0.5, "{similar:?}");
        let ask = Ask::new(Scenario::Similar {
            item: "mug-blue".into(),
        })
        .k(1);
        assert_eq!(view.recommend(&ask).expect("ask")[0].id, "mug-red");
        assert!(view.get_item("shirt-red").is_some());
        assert_eq!(view.shared.latency.latency().count, 2);
    }
}
