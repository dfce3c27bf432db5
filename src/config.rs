//! Tunables for a store, with defaults that are safe for a shop's request path.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a write counts as *acknowledged*, i.e. survives `kill -9` of the process.
///
/// The durable layer is sled, which buffers writes in memory and flushes them on a timer.
/// A write that has not been flushed is visible to reads at once but is lost if the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Every write call flushes (fsyncs) before it returns. Slow (one fsync per call) but each
    /// returned `Ok` is durable. Batch writes amortise the fsync over the batch.
    Immediate,
    /// Group commit: writes are flushed together at most every `ms` milliseconds by sled's
    /// background flusher. A write is durable once [`crate::Store::flush`] returns after it,
    /// or once the interval has passed. This is the default, with 500 ms.
    GroupCommit {
        /// Flush interval in milliseconds (sled's `flush_every_ms`).
        ms: u64,
    },
}

/// How much of a segment file is checked when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentVerify {
    /// Footer, magic, version, schema hash and full rkyv structural validation (every offset and
    /// length is bounds-checked, so no read can go out of the file). Cost does not grow with the
    /// size of the weight columns and the file is not paged in. A flipped bit inside a weight is
    /// not detected until the next full check (`Store::verify`).
    Structure,
    /// Everything `Structure` does plus the xxh3 checksum over the whole payload. Reads the whole
    /// file once through the page cache (not the process's mapping, so RSS stays flat).
    Checksum,
}

/// How much each kind of event adds to a user's derived tags and to an item's popularity.
/// Search and impression events name no item of interest and add nothing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventWeights {
    /// A product-page view. Default 1.
    pub view: f32,
    /// A click in a list. Default 1.
    pub click: f32,
    /// A wish-list save. Default 3.
    pub favourite: f32,
    /// An add-to-cart. Default 4.
    pub cart: f32,
    /// A purchase, times `1 + ln(qty)`. Default 8.
    pub purchase: f32,
    /// A written review. Default 2.
    pub review: f32,
    /// A rating adds `(stars - rating_neutral) × rating_per_star`: below neutral it subtracts,
    /// so a one-star rating weakens the tags it shares with the item. Default 2.
    pub rating_per_star: f32,
    /// The rating that says nothing either way. Default 2.5.
    pub rating_neutral: f32,
}

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights {
            view: 1.0,
            click: 1.0,
            favourite: 3.0,
            cart: 4.0,
            purchase: 8.0,
            review: 2.0,
            rating_per_star: 2.0,
            rating_neutral: 2.5,
        }
    }
}

/// Where the lifecycle stages of a user begin, in days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleDays {
    /// First seen at most this long ago, with at most one order: `new`. Default 30.
    pub new: u32,
    /// Last seen at most this long ago: `active`. Default 30.
    pub active: u32,
    /// Last seen at most this long ago (and not active): `dormant`; beyond it `churned`.
    /// Default 180.
    pub dormant: u32,
}

impl Default for LifecycleDays {
    fn default() -> Self {
        LifecycleDays {
            new: 30,
            active: 30,
            dormant: 180,
        }
    }
}

/// Options for [`crate::Store::open_with`]. Build with `Config::default()` and override fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// What "acknowledged" means. Default: group commit every 500 ms.
    pub durability: Durability,
    /// Checks run on segment files at open. Default: [`SegmentVerify::Checksum`].
    pub segment_verify: SegmentVerify,
    /// If a segment is missing or damaged, rebuild it from the durable records instead of
    /// failing. Default: `true` (sled is the source of truth; segments are derived).
    pub repair_segments: bool,
    /// Start the background upkeep of the in-memory delta once this many records have changed
    /// since the last segment, or since the last save of the delta (and at least half as many
    /// as that save held): a save of the delta to its file while it holds less than
    /// [`Config::fold_fraction`] of the catalogue, a fold into a new segment after that.
    /// `None`: neither happens unless asked for. Default: 100,000.
    ///
    /// Records whose tags changed (new, re-tagged or deleted items, and users) count one each:
    /// queries scan them, so they cost query time until the rebuild. Items whose attributes
    /// alone changed (stock, price, title, category, members-only) count a tenth each: the
    /// segment's index still finds them and they cost no query time, only memory
    /// ([`crate::Stats::attribute_overlay`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild_threshold: Option<usize>,
    /// How much of the catalogue the delta may hold before the background work folds it into
    /// a new segment. Below this share of the segment's live items (and below
    /// [`Config::rebuild_threshold`], whichever is larger) the work that the threshold starts
    /// saves the delta to a file instead ([`crate::Store::save_delta`]): in proportion to the
    /// delta rather than to the catalogue. The fold starts as soon as the delta reaches it.
    /// Queries search the delta through its index: at a quarter of a 1M-item catalogue they
    /// measured 1.24–1.29× the same catalogue folded (`bench/RESULTS.md`, "Freshness"). The
    /// delta's records are held in memory until the fold. Deleting a user folds whatever the
    /// delta holds (their row must leave the segment files). 0 (or NaN) folds every time, as
    /// before delta files. Default: 0.25.
    pub fold_fraction: f64,
    /// Index the delta's re-tagged records on a background thread once this many have been
    /// written since the last flush: they become a small in-memory segment (a *run*) that the
    /// pruned engine searches, instead of rows every query scores one by one. 0 never flushes
    /// on its own ([`crate::Store::index_delta`] still does). Default: 256, about a third of
    /// a millisecond of scanning (a row cost about 1.4 µs to score one by one in
    /// `bench/freshness.rs`, 24–32 tags per item).
    pub delta_index_rows: usize,
    /// Largest number of tags one record may carry. Default: 1,024.
    pub max_tags_per_record: usize,
    /// Number of recent items kept per user. Default: 50.
    pub max_recent_items: usize,
    /// sled page cache size in bytes. Default: 64 MiB.
    pub cache_capacity_bytes: u64,
    /// Length of the precomputed similar-item list kept per item with each segment (0: none).
    /// About 4× the `k` you query with, so filters still leave enough. Default: 40.
    /// Building them is one exact search per item at every rebuild, spread over
    /// [`Config::build_threads`]; see `bench/RESULTS.md` for what that costs at scale.
    pub neighbours: usize,
    /// Segments with more live items than this get no neighbour lists (item queries use the
    /// pruned engine instead, which is exact too). Building lists costs one search per item at
    /// every rebuild; above this size that is minutes of every core. Default: 250,000.
    pub neighbour_item_limit: usize,
    /// Threads a rebuild uses for the neighbour lists. 0 (the default) means one per core.
    pub build_threads: usize,
    /// Told how far long rebuild work has got (the neighbour lists, stage
    /// [`crate::search::NEIGHBOUR_STAGE`]). Default: `None`; the library draws nothing itself,
    /// the CLI turns reports into progress bars.
    #[serde(skip)]
    pub progress: Option<crate::progress::Progress>,
    /// Weights of the event kinds. See [`EventWeights`].
    pub event_weights: EventWeights,
    /// Half-life of a user's derived tags, in days: a preference shown this long ago counts
    /// half as much as one shown now. Default 30.
    pub user_tag_half_life_days: f32,
    /// Half-life of item popularity ("trending", and the popular part of `for-user` and
    /// `cart`), in days. Default 14: on Online Retail 7 to 14 days predict the next orders
    /// alike and 30 or more worse (bench/RESULTS.md, "Choice of the seed weights").
    pub popularity_half_life_days: f32,
    /// Most derived tags kept per user (the weakest go). Default 64.
    pub max_derived_tags: usize,
    /// Most items remembered per user as seen, and as purchased (for the "exclude already
    /// seen/purchased" filters). Default 10,000.
    pub max_seen_items: usize,
    /// Most (basket, item) lines each co-occurrence index keeps (one for bought together, one
    /// for viewed together). Beyond it the oldest baskets are dropped, 256 at a time, and
    /// the figures of items that lost baskets are reported as lower bounds ("at least 120×").
    /// A line costs about 28 bytes (measured at 1M items and 5M events, bench/RESULTS.md), so
    /// the default bounds each index at about 280 MB. Default 10,000,000.
    pub cooccurrence_lines: u64,
    /// Events of one user without a session id that are at most this many seconds apart share
    /// an implicit session. Default 1,800 (30 minutes).
    pub session_gap_secs: u64,
    /// How far past this machine's clock an event's time may be, in seconds; a later event is
    /// refused with a message that names it. Decay is relative to the newest event
    /// recorded, so without this one mistyped time (milliseconds for seconds, a year 3000)
    /// would move the store's clock there and decay every profile to nothing. `None` turns the
    /// check off (a replay of a simulated future, say). Default: one day, for clocks that are
    /// a little ahead and time zones written as UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub future_tolerance_secs: Option<u64>,
    /// Event batches write only their log and a journal entry; the behaviour state they
    /// change is written to sled (checkpointed) once this many events have piled up, by
    /// any item upsert or delete, and on close. A crash loses nothing: open replays the journal,
    /// which costs about the time it took to record those events. 0 checkpoints with every
    /// batch (slowest ingestion, nothing to replay). Replayed events are applied under the
    /// configuration of the open that replays them. Default: 100,000.
    pub checkpoint_events: usize,
    /// Reclaim sled's space while the store serves ([`crate::Store::reclaim_space`], on a
    /// background thread) once its files take this many times the bytes they took after the
    /// last reclaim (or at open), and at least [`Config::reclaim_min_bytes`]. sled frees replaced pages lazily: under
    /// a steady stream of events its files grow several times faster than the live data.
    /// Queries go on while the live data is copied; writes wait for it (about two seconds per
    /// 100 MB of live data).
    /// The check runs at most every 10 seconds, from the write path. `None`: only when asked.
    /// A growth that is not a number above 1 (which would reclaim after every write) is taken
    /// as 1.5. Default: 4.0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reclaim_growth: Option<f32>,
    /// sled's files smaller than this are never reclaimed in the background: the copy would
    /// cost more than the space is worth. Default: 64 MiB.
    pub reclaim_min_bytes: u64,
    /// Keep events in the event log for this many seconds of store time (the newest event
    /// time, which decay also counts from); older ones leave it in the background (see
    /// [`crate::Store::prune_event_log`]). What they did to behaviour state (derived tags,
    /// counters, baskets, co-occurrence) stays, so recommendations do not change; what goes
    /// is their record: a user's history ([`crate::Store::user_events`]), export and
    /// evaluation see the kept events only. Without it the log, and so the store, grows with
    /// every event for good. `None` (the default) keeps every event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_log_retention_secs: Option<u64>,
    /// Shows remembered per user for the exposure asks ([`crate::Ask::not_shown_within`],
    /// [`crate::Ask::cap`], [`crate::Ask::demote_shown`]): each item of an impression is one
    /// show; the oldest go first. A show costs 8 bytes in memory and in the user's `X`
    /// record, so the default costs 1.6 kB per user shown anything. A cap counts only the
    /// shows remembered. 0 turns the memory off (and asks that need it are refused).
    /// Default: 200.
    pub exposure_memory: usize,
    /// Half-life of a show for [`crate::Ask::demote_shown`], in seconds: a show this long
    /// ago demotes half as much as one now; 0: shows never decay. Default: 86,400 (a day).
    pub exposure_half_life_secs: u64,
    /// Record an impression for every answer whose ask names a user and a slot (the items
    /// served, in order, at the ask's time; see [`crate::Ask::at`]), so the app need not send
    /// them back. They are queued and written in batches off the request path
    /// ([`crate::Store::flush_impressions`] waits for them). A recorded impression is an
    /// event of the user like any other: it creates a user the store has not seen and counts
    /// in their last-seen time and lifecycle stage. Turn it off when the app sends
    /// its own impressions (only the rows the shopper actually scrolled to, say), or each
    /// show is counted twice. Replicas never record. Default: `true`.
    pub record_served_impressions: bool,
    /// How deep a paged ask ([`crate::Ask::paged`]) is ranked, once: its pages are slices
    /// of that list, so at most this many items can be paged through (more if the first
    /// page's `k` is larger). Default: 100.
    pub page_depth: usize,
    /// Seconds a cursor and a page view last ([`crate::Ask::cursor`],
    /// [`crate::Ask::page_view`]); an expired cursor is refused and the app starts again.
    /// Default: 900 (15 minutes).
    pub cursor_ttl_secs: u64,
    /// Most cursors kept at once (the oldest go first; page views: four times as many; 0 is
    /// taken as 1). A cursor holds its whole list in memory: up to [`Config::page_depth`]
    /// results with their titles and explanations. Default: 1,024.
    pub max_cursors: usize,
    /// Most items a bulk load ([`crate::Store::bulk_load_items`]) may update that the store
    /// already holds: they are written a key each in the load's one atomic batch, and sled's
    /// batches grow slow and large past about this many. Default:
    /// [`crate::BULK_LOAD_MAX_UPDATES`] (100,000).
    pub bulk_load_max_updates: usize,
    /// Lifecycle stage boundaries. See [`LifecycleDays`].
    pub lifecycle: LifecycleDays,
    /// Limits every ranking plugin runs under. See [`PluginLimits`].
    pub plugins: PluginLimits,
    /// The quota of the store opened with this configuration, and of every namespace
    /// [`Config::namespaces`] does not list. Default: no limits. See [`crate::Quota`].
    #[serde(skip_serializing_if = "is_unlimited")]
    pub quota: crate::Quota,
    /// Quotas of named namespaces ([`crate::Store::namespace`]), by name. Default: none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub namespaces: std::collections::BTreeMap<String, crate::Quota>,
}

fn is_unlimited(q: &crate::Quota) -> bool {
    *q == crate::Quota::default()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::GroupCommit { ms: 500 },
            segment_verify: SegmentVerify::Checksum,
            repair_segments: true,
            rebuild_threshold: Some(100_000),
            fold_fraction: 0.25,
            delta_index_rows: 256,
            max_tags_per_record: 1024,
            max_recent_items: 50,
            cache_capacity_bytes: 64 << 20,
            neighbours: 40,
            neighbour_item_limit: 250_000,
            build_threads: 0,
            progress: None,
            event_weights: EventWeights::default(),
            user_tag_half_life_days: 30.0,
            popularity_half_life_days: 14.0,
            max_derived_tags: 64,
            max_seen_items: 10_000,
            cooccurrence_lines: 10_000_000,
            session_gap_secs: 1_800,
            future_tolerance_secs: Some(86_400),
            checkpoint_events: 100_000,
            reclaim_growth: Some(4.0),
            reclaim_min_bytes: 64 << 20,
            event_log_retention_secs: None,
            exposure_memory: 200,
            exposure_half_life_secs: 86_400,
            record_served_impressions: true,
            page_depth: 100,
            cursor_ttl_secs: 900,
            max_cursors: 1_024,
            bulk_load_max_updates: crate::BULK_LOAD_MAX_UPDATES,
            lifecycle: LifecycleDays::default(),
            plugins: PluginLimits::default(),
            quota: crate::Quota::default(),
            namespaces: std::collections::BTreeMap::new(),
        }
    }
}

impl Config {
    /// Set [`Config::plugins`].
    pub fn plugins(mut self, limits: PluginLimits) -> Self {
        self.plugins = limits;
        self
    }
    /// Set [`Config::cooccurrence_lines`].
    pub fn cooccurrence_lines(mut self, lines: u64) -> Self {
        self.cooccurrence_lines = lines;
        self
    }
    /// Set [`Config::future_tolerance_secs`].
    pub fn future_tolerance_secs(mut self, secs: Option<u64>) -> Self {
        self.future_tolerance_secs = secs;
        self
    }
    /// Set [`Config::reclaim_growth`].
    pub fn reclaim_growth(mut self, growth: Option<f32>) -> Self {
        self.reclaim_growth = growth;
        self
    }
    /// Set [`Config::reclaim_min_bytes`].
    pub fn reclaim_min_bytes(mut self, bytes: u64) -> Self {
        self.reclaim_min_bytes = bytes;
        self
    }
    /// Set [`Config::event_log_retention_secs`].
    pub fn event_log_retention_secs(mut self, secs: Option<u64>) -> Self {
        self.event_log_retention_secs = secs;
        self
    }
    /// Set [`Config::exposure_memory`].
    pub fn exposure_memory(mut self, shows: usize) -> Self {
        self.exposure_memory = shows;
        self
    }
    /// Set [`Config::exposure_half_life_secs`].
    pub fn exposure_half_life_secs(mut self, secs: u64) -> Self {
        self.exposure_half_life_secs = secs;
        self
    }
    /// Set [`Config::page_depth`].
    pub fn page_depth(mut self, depth: usize) -> Self {
        self.page_depth = depth;
        self
    }
    /// Set [`Config::cursor_ttl_secs`].
    pub fn cursor_ttl_secs(mut self, secs: u64) -> Self {
        self.cursor_ttl_secs = secs;
        self
    }
    /// Set [`Config::bulk_load_max_updates`].
    pub fn bulk_load_max_updates(mut self, n: usize) -> Self {
        self.bulk_load_max_updates = n;
        self
    }

    /// Set [`Config::quota`].
    pub fn quota(mut self, quota: crate::Quota) -> Self {
        self.quota = quota;
        self
    }

    /// Set the quota of namespace `name` ([`Config::namespaces`]).
    pub fn namespace_quota(mut self, name: impl Into<String>, quota: crate::Quota) -> Self {
        self.namespaces.insert(name.into(), quota);
        self
    }

    /// The quota namespace `name` opens with: its entry in [`Config::namespaces`], or
    /// [`Config::quota`].
    pub(crate) fn quota_of(&self, name: &str) -> &crate::Quota {
        self.namespaces.get(name).unwrap_or(&self.quota)
    }

    /// Set [`Config::max_cursors`].
    pub fn max_cursors(mut self, cursors: usize) -> Self {
        self.max_cursors = cursors;
        self
    }
    /// Set [`Config::record_served_impressions`].
    pub fn record_served_impressions(mut self, on: bool) -> Self {
        self.record_served_impressions = on;
        self
    }
    /// Set [`Config::checkpoint_events`].
    pub fn checkpoint_events(mut self, events: usize) -> Self {
        self.checkpoint_events = events;
        self
    }
    /// Set [`Config::durability`].
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Set [`Config::segment_verify`].
    pub fn segment_verify(mut self, v: SegmentVerify) -> Self {
        self.segment_verify = v;
        self
    }
    /// Set [`Config::repair_segments`].
    pub fn repair_segments(mut self, on: bool) -> Self {
        self.repair_segments = on;
        self
    }
    /// Set [`Config::neighbours`].
    pub fn neighbours(mut self, per_item: usize) -> Self {
        self.neighbours = per_item;
        self
    }
    /// Set [`Config::neighbour_item_limit`].
    pub fn neighbour_item_limit(mut self, n: usize) -> Self {
        self.neighbour_item_limit = n;
        self
    }
    /// Set [`Config::build_threads`].
    pub fn build_threads(mut self, n: usize) -> Self {
        self.build_threads = n;
        self
    }
    /// Set [`Config::progress`].
    pub fn progress(mut self, progress: crate::progress::Progress) -> Self {
        self.progress = Some(progress);
        self
    }
    /// The number of build threads [`Config::build_threads`] resolves to.
    pub fn resolved_build_threads(&self) -> usize {
        if self.build_threads > 0 {
            self.build_threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
    /// Set [`Config::user_tag_half_life_days`].
    pub fn user_tag_half_life_days(mut self, days: f32) -> Self {
        self.user_tag_half_life_days = days;
        self
    }
    /// Set [`Config::popularity_half_life_days`].
    pub fn popularity_half_life_days(mut self, days: f32) -> Self {
        self.popularity_half_life_days = days;
        self
    }
    /// Set [`Config::event_weights`].
    pub fn event_weights(mut self, w: EventWeights) -> Self {
        self.event_weights = w;
        self
    }
    /// Half-life of derived user tags in seconds.
    pub(crate) fn user_half_life_secs(&self) -> f64 {
        f64::from(self.user_tag_half_life_days) * 86_400.0
    }
    /// Half-life of popularity in seconds.
    pub(crate) fn popularity_half_life_secs(&self) -> f64 {
        f64::from(self.popularity_half_life_days) * 86_400.0
    }
    /// Set [`Config::rebuild_threshold`].
    pub fn rebuild_threshold(mut self, t: Option<usize>) -> Self {
        self.rebuild_threshold = t;
        self
    }

    /// Set [`Config::fold_fraction`].
    pub fn fold_fraction(mut self, fraction: f64) -> Self {
        self.fold_fraction = fraction;
        self
    }

    /// Set [`Config::delta_index_rows`].
    pub fn delta_index_rows(mut self, rows: usize) -> Self {
        self.delta_index_rows = rows;
        self
    }
}

/// Limits every plugin call runs under, and how the host reacts to faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Largest module accepted at load, in bytes. Default 8 MiB.
    pub max_module_bytes: usize,
    /// Most linear memory one instance may grow to, in bytes. Default 32 MiB.
    pub memory_bytes: usize,
    /// Most elements all tables of one instance may hold, declared or grown. Default 100,000
    /// (a table element costs the host about 30 bytes, so 3 MiB); a Rust plugin's function
    /// table holds one element per function whose address is taken, a few hundred at most.
    pub table_elements: usize,
    /// Most functions a module may define. Default 10,000 (the SDK's example strategy has
    /// under 200); compile time and memory grow with the count.
    pub max_functions: usize,
    /// Largest function body, in bytes. Default 1 MiB.
    pub max_function_bytes: usize,
    /// Deepest nesting of blocks, loops and ifs in one function. Default 10,000 (a Rust
    /// `match` of n arms nests about n blocks); the compiler's memory grows with depth.
    pub max_nesting: usize,
    /// Most native stack wasm code may use, in bytes. Default 512 KiB.
    pub stack_bytes: usize,
    /// Wall-clock budget of one call, enforced by epoch interruption. Default 10 ms.
    #[serde(rename = "deadline_ms", with = "millis")]
    pub deadline: Duration,
    /// How often the ticker thread advances the epoch: the deadline's granularity. Default
    /// 1 ms.
    #[serde(rename = "tick_ms", with = "millis")]
    pub tick: Duration,
    /// Fuel (roughly, wasm instructions) one call may burn; `None` (the default) turns fuel
    /// metering off. Metering costs about 15% of plugin time on top of the epoch checks
    /// (bench/RESULTS.md); the deadline already bounds time, fuel makes the bound
    /// deterministic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Most candidates handed to a plugin per query: a scenario's best `rerank_depth` by its
    /// own score are re-ranked and the rest are dropped. Default 200: gathering and featurising
    /// a candidate costs about 0.3 µs, so depth, not the plugin, sets the query cost.
    pub rerank_depth: usize,
    /// Longest log line kept, in bytes (longer ones are cut). Default 512.
    pub log_bytes: usize,
    /// Log lines kept per call; further ones are dropped and counted. Default 8.
    pub logs_per_call: u32,
    /// Faults in a row after which a plugin is disabled. Default 5.
    pub faults_in_a_row: u32,
    /// Warm instances kept per plugin version. Default: twice the CPU count, at least 4.
    pub pool_size: usize,
    /// Shadow rankings that may wait for the shadow worker; a sampled answer that finds the
    /// queue full is not shadowed and is counted in `dropped`. Default 256 (at least 1).
    pub shadow_queue: usize,
    /// CPU the shadow worker may use, as a share of one core: after a ranking that took `t`
    /// it rests `t·(1−share)/share`, and answers sampled meanwhile queue or are dropped.
    /// Default 0.1; clamped to [0.001, 1].
    pub shadow_cpu: f64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        PluginLimits {
            max_module_bytes: 8 << 20,
            memory_bytes: 32 << 20,
            table_elements: 100_000,
            max_functions: 10_000,
            max_function_bytes: 1 << 20,
            max_nesting: 10_000,
            stack_bytes: 512 << 10,
            deadline: Duration::from_millis(10),
            tick: Duration::from_millis(1),
            fuel: None,
            rerank_depth: 200,
            log_bytes: 512,
            logs_per_call: 8,
            faults_in_a_row: 5,
            pool_size: (2 * cpus).max(4),
            shadow_queue: 256,
            shadow_cpu: 0.1,
        }
    }
}

impl PluginLimits {
    /// Set [`PluginLimits::deadline`].
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }
    /// Set [`PluginLimits::fuel`].
    pub fn fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }
    /// Set [`PluginLimits::memory_bytes`].
    pub fn memory_bytes(mut self, bytes: usize) -> Self {
        self.memory_bytes = bytes;
        self
    }
    /// Set [`PluginLimits::faults_in_a_row`].
    pub fn faults_in_a_row(mut self, n: u32) -> Self {
        self.faults_in_a_row = n;
        self
    }
    /// Set [`PluginLimits::shadow_queue`] and [`PluginLimits::shadow_cpu`].
    pub fn shadow(mut self, queue: usize, cpu: f64) -> Self {
        self.shadow_queue = queue;
        self.shadow_cpu = cpu;
        self
    }
    /// Set [`PluginLimits::rerank_depth`].
    pub fn rerank_depth(mut self, n: usize) -> Self {
        self.rerank_depth = n;
        self
    }

    /// The epoch deadline in ticks: at least `deadline`, at most one tick more.
    #[cfg(feature = "plugins")]
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        crate::narrow::u64_from(self.deadline.as_nanos().div_ceil(tick))
            .max(1)
            .saturating_add(1)
    }
}

/// A `Duration` as whole milliseconds, for configuration files (`deadline_ms = 10`).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(crate::narrow::u64_from(d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
