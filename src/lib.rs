//! # recostore
//!
//! An embedded recommendation store: durable item and user tag records in sled, an immutable
//! memory-mapped rkyv segment for reads, and recommendation queries over both.
//!
//! ```
//! use recostore::{Item, Store, User};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! store.upsert_items(&[
//!     Item::new("mug-red", [("category:kitchen/mugs", 1.0), ("colour:red", 1.0)]),
//!     Item::new("mug-blue", [("category:kitchen/mugs", 1.0), ("colour:blue", 1.0)]),
//!     Item::new("tshirt-red", [("category:apparel/tops", 1.0), ("colour:red", 1.0)]),
//! ])?;
//! store.upsert_user(&User::new("user-9", [("colour:red", 2.0), ("tier:prime", 1.0)]))?;
//! store.flush()?; // acknowledged: survives kill -9 from here on
//!
//! let similar = store.similar_items("mug-red", 2)?;
//! assert_eq!(similar.len(), 2);
//! assert!(similar.iter().any(|r| r.id == "mug-blue"));
//! assert_eq!(store.get_user("user-9").unwrap().tags.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See `ARCHITECTURE.md` for the codemap and `FORMAT.md` for the bytes on disk.

#![warn(missing_docs)]
// A public signature that reaches a type the crate does not export is a leak of internals.
#![warn(unnameable_types)]
// Narrowing casts go through `narrow` or carry an `expect` with their reason.
#![cfg_attr(not(test), warn(clippy::cast_possible_truncation))]

// The modules are private: the API is what is re-exported below, plus the namespaces of
// whole subsystems (`import`, `plugin`, `admin`, and the tools behind the `cli` feature).
// `internals` is the one door to the rest, for this crate's own tests, benches and fuzz
// targets; it is hidden and carries no stability promise.
mod activity;
#[cfg(feature = "admin")]
pub mod admin;
mod backup;
mod behaviour;
mod chunks;
mod codec;
mod compact;
mod config;
mod delta;
#[cfg(feature = "cli")]
pub mod demo;
mod durable;
mod error;
pub mod eval;
mod event;
mod export;
mod fields;
mod forget;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
mod impressions;
#[cfg_attr(not(feature = "replication"), allow(dead_code))]
mod manifest;
mod metrics;
mod model;
mod name_table;
mod namespace;
mod narrow;
mod pages;
#[cfg_attr(not(feature = "replication"), allow(dead_code))]
mod pairs;
pub mod plugin;
mod progress;
mod rebuild;
mod reclaim;
mod recommendation;
#[cfg(feature = "replication")]
pub mod replica;
mod retention;
mod scenario;
mod search;
mod segment;
mod single_flight;
#[cfg(feature = "cli")]
pub mod sizing;
mod snapshot;
mod sparse;
mod splitmix;
mod store;
mod verify;
mod view;
mod write;

pub use activity::segments::SEGMENTS as USER_SEGMENTS;
pub use activity::{Lifecycle, Rfm};
pub use backup::{BackupReport, INCOMPLETE_MARKER};
pub use behaviour::{DedupRun, ItemActivity, UserActivity};
pub use compact::CompactReport;
pub use config::{Config, Durability, EventWeights, LifecycleDays, SegmentVerify};
pub use error::{Error, Result};
pub use event::{Event, EventKind, MAX_IMPRESSION_ITEMS, MAX_QUANTITY};
pub use export::ExportSummary;
pub use forget::{BackupRecord, DeletionReceipt, ForgottenReport, Found};
pub use impressions::{ImpressionCounts, Recording, QUEUE_CAPACITY as IMPRESSION_QUEUE};
pub use metrics::Latency;
pub use model::{price_band, Item, Tag, User, MAX_ID_BYTES, MAX_TAG_BYTES, MAX_TEXT_BYTES};
pub use namespace::{Quota, MAX_NAME_BYTES as MAX_NAMESPACE_BYTES};
pub use plugin::{PluginLimits, Plugins};
pub use progress::{Progress, ProgressUpdate};
pub use reclaim::ReclaimReport;
pub use recommendation::LIFT_MIN_SUPPORT;
#[cfg(feature = "replication")]
pub use replica::{
    PublishOptions, PublishReport, Publisher, PublisherStatus, Replica, ReplicaSource,
    ReplicaStatus, RestoreReport,
};
pub use retention::PruneReport;
pub use scenario::relations::BOUGHT_NEWEST as SUBSTITUTE_BASKETS;
pub use scenario::relations::VIEWED_NEWEST as SUBSTITUTE_SESSIONS;
pub use scenario::{
    Answer, Ask, Boost, Interleaved, RankedBy, Reason, Scenario, Served, ShowCap, UserMatch,
    MAX_BOOST, MAX_BOOSTS, MIN_BOOST,
};
pub use search::{
    Filter, Method, Path as SearchPath, Query, QueryStats, Recommendation, Similarity, Target,
    Weighting, MAX_K, NEIGHBOUR_STAGE,
};
pub use snapshot::Snapshot;
pub use store::{
    BulkLoadReport, DeltaSaveReport, RebuildReport, Stats, Store, BULK_LOAD_MAX_UPDATES,
};
pub use verify::VerifyReport;
pub use view::View;

/// The crate's insides, for its own tests, benches and fuzz targets: segment files and their
/// archived columns, the durable key layout, raw snapshots. Not part of the API: anything here
/// may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::activity::user::OpenSession;
    pub use crate::activity::{
        Activity, Baskets, Exposure, ItemStats, Pair, Relation, Totals, UserState,
    };
    pub use crate::metrics::resident_bytes;

    /// The durable key layout and value encoding.
    pub mod codec {
        pub use crate::codec::{decode, encode, StoredItem, StoredUser};
    }

    /// Segment files and their archived columns.
    pub mod segment {
        pub use crate::segment::{
            builder, file, format, neighbours, postings, read, Neighbours, Segment, SegmentBuilder,
            SegmentData,
        };
    }

    /// A snapshot over `segment` alone (no delta, no behaviour), as of sequence number `seq`.
    pub fn snapshot_of(
        segment: std::sync::Arc<crate::segment::Segment>,
        seq: u64,
    ) -> crate::Snapshot {
        crate::Snapshot {
            segment,
            delta: Default::default(),
            seq,
            activity: Default::default(),
        }
    }

    /// The archived columns `snap` reads.
    pub fn segment_data(snap: &crate::Snapshot) -> &crate::segment::format::ArchivedSegmentData {
        snap.seg()
    }

    /// The behaviour state in `snap`.
    pub fn activity(snap: &crate::Snapshot) -> &crate::activity::Activity {
        &snap.activity
    }

    /// Item `id`'s record as `snap` holds it.
    pub fn stored_item(snap: &crate::Snapshot, id: u32) -> Option<crate::codec::StoredItem> {
        snap.stored_item(id)
    }

    /// User `id`'s record as `snap` holds it.
    pub fn stored_user(snap: &crate::Snapshot, id: u32) -> Option<crate::codec::StoredUser> {
        snap.stored_user(id)
    }

    /// The segment `snap` reads.
    pub fn segment(snap: &crate::Snapshot) -> &crate::segment::Segment {
        &snap.segment
    }
}

/// The README's Rust examples, compiled and run as doc tests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
