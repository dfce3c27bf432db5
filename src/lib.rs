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
// Narrowing casts go through `narrow` or carry an `expect` with their reason.
#![cfg_attr(not(test), warn(clippy::cast_possible_truncation))]

pub mod activity;
#[cfg(feature = "admin")]
pub mod admin;
pub mod backup;
mod behaviour;
pub mod codec;
pub mod compact;
pub mod config;
pub mod delta;
#[cfg(feature = "cli")]
pub mod demo;
mod durable;

pub mod error;
#[cfg(feature = "cli")]
pub mod eval;
pub mod event;
pub mod export;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod import;

pub mod metrics;
pub mod model;
mod narrow;
pub mod plugin;
mod progress;
mod rebuild;
mod recommendation;
pub mod scenario;
pub mod search;
pub mod segment;
mod single_flight;
#[cfg(feature = "cli")]
pub mod sizing;
pub mod snapshot;
mod sparse;
pub mod store;
pub mod verify;
mod write;

pub use behaviour::{DedupRun, ItemActivity, UserActivity};
pub use config::{Config, Durability, EventWeights, LifecycleDays, SegmentVerify};
pub use error::{Error, Result};
pub use event::{Event, EventKind};
pub use model::{price_band, Item, Tag, User};
pub use plugin::{PluginLimits, Plugins};
pub use progress::{Progress, ProgressUpdate};
pub use scenario::{Ask, Boost, RankedBy, Reason, Scenario, Served, UserMatch};
pub use search::{
    Filter, Method, Query, QueryStats, Recommendation, Similarity, Target, Weighting,
};
pub use store::{RebuildReport, Stats, Store};

/// The README's Rust examples, compiled and run as doc tests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
