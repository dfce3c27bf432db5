//! Tunables for a store, with defaults that are safe for a shop's request path.

/// When a write counts as *acknowledged*, i.e. survives `kill -9` of the process.
///
/// The durable layer is sled, which buffers writes in memory and flushes them on a timer.
/// A write that has not been flushed is visible to reads at once but is lost if the process dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Options for [`crate::Store::open_with`]. Build with `Config::default()` and override fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// What "acknowledged" means. Default: group commit every 500 ms.
    pub durability: Durability,
    /// Checks run on segment files at open. Default: [`SegmentVerify::Checksum`].
    pub segment_verify: SegmentVerify,
    /// If a segment is missing or damaged, rebuild it from the durable records instead of
    /// failing. Default: `true` (sled is the source of truth; segments are derived).
    pub repair_segments: bool,
    /// Fold the in-memory delta into a new segment on a background thread once this many records
    /// have changed since the last segment. `None` rebuilds only when asked. Default: 100,000.
    pub rebuild_threshold: Option<usize>,
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
    /// Draw progress bars on stderr during long rebuilds. Default: off (a library should not
    /// write to the terminal unasked; the CLI turns it on).
    pub show_progress: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            durability: Durability::GroupCommit { ms: 500 },
            segment_verify: SegmentVerify::Checksum,
            repair_segments: true,
            rebuild_threshold: Some(100_000),
            max_tags_per_record: 1024,
            max_recent_items: 50,
            cache_capacity_bytes: 64 << 20,
            neighbours: 40,
            neighbour_item_limit: 250_000,
            build_threads: 0,
            show_progress: false,
        }
    }
}

impl Config {
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
    /// Set [`Config::show_progress`].
    pub fn show_progress(mut self, on: bool) -> Self {
        self.show_progress = on;
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
    /// Set [`Config::rebuild_threshold`].
    pub fn rebuild_threshold(mut self, t: Option<usize>) -> Self {
        self.rebuild_threshold = t;
        self
    }
}
