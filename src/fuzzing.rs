//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`, off by default):
//! thin wrappers that reach crate-private decoders and handlers with arbitrary bytes. Each
//! must return (an error is fine) and never panic, hang or allocate without bound.

use std::path::Path;

use crate::activity::baskets::Chunk;
use crate::activity::checkpoint::ItemRecord;
use crate::activity::log::Logged;
use crate::activity::{Totals, UserState};
use crate::codec::{self, StoredItem, StoredUser};
use crate::search::Query;
use crate::segment::file::Segment;
use crate::{Config, SegmentVerify, Store};

/// Decode `bytes` as every type the store reads back from sled, and use what decodes the
/// way the store would (a basket chunk is checked, then indexed).
pub fn decode_all(bytes: &[u8]) {
    let key = b"fuzz";
    let _ = codec::decode::<StoredItem>(key, bytes);
    let _ = codec::decode::<StoredUser>(key, bytes);
    let _ = codec::decode::<UserState>(key, bytes);
    let _ = codec::decode::<ItemRecord>(key, bytes);
    let _ = codec::decode::<Totals>(key, bytes);
    let _ = codec::decode::<Vec<Logged>>(key, bytes);
    if let Ok(chunk) = codec::decode::<Chunk>(key, bytes) {
        // The bound a store of 65,536 items would pass.
        if chunk.is_valid(1 << 16) {
            let b = crate::activity::baskets::Baskets::from_chunks([(0, chunk)]);
            for item in 0..8 {
                b.baskets_of(item, |basket| {
                    std::hint::black_box(basket);
                });
            }
        }
    }
    let _ = crate::activity::log::decode_entry(&[b'E', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], bytes);
}

/// Open `bytes` as segment generation 1 in `dir` (a scratch directory), and if it validates,
/// run a fixed set of reads and queries against it.
pub fn segment_queries(dir: &Path, bytes: &[u8]) {
    let path = dir.join(crate::segment::file::file_name(1));
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    for verify in [SegmentVerify::Structure, SegmentVerify::Checksum] {
        let Ok(seg) = Segment::open(&path, verify) else {
            continue;
        };
        let snap = crate::snapshot::Snapshot {
            segment: std::sync::Arc::new(seg),
            delta: Default::default(),
            seq: 0,
            activity: Default::default(),
        };
        let bound = snap.item_id_bound().min(64);
        for id in 0..bound {
            let _ = snap.stored_item(id);
            if let Some(name) = snap.item_name(id) {
                let _ = snap.query(&Query::similar_to(name).k(5));
            }
        }
        for id in 0..snap.user_id_bound().min(16) {
            let _ = snap.stored_user(id);
        }
        let _ = snap.query(&Query::profile([("a", 1.0), ("b", 0.5)]).k(10));
    }
}

/// A small store for the request targets: three items, two users, a few events.
pub fn small_store(dir: &Path) -> crate::Result<Store> {
    use crate::{Event, Item, User};
    let store = Store::open_with(dir, Config::default().future_tolerance_secs(None))?;
    store.upsert_items(&[
        Item::new("a", [("colour:red", 1.0), ("kind:mug", 1.0)]).category("kitchen"),
        Item::new("b", [("colour:red", 1.0), ("kind:cup", 0.5)]).category("kitchen"),
        Item::new("c", [("colour:blue", 1.0)]).price(3.0),
    ])?;
    store.upsert_users(&[
        User::new("u", [("colour:red", 1.0)]),
        User::new("v", [("colour:blue", 1.0)]),
    ])?;
    store.record_events(&[
        Event::view("u", "a", 10),
        Event::purchase("u", "b", 1, 2.0, 11).session("s1"),
        Event::purchase("v", "a", 1, 2.0, 12).session("s2"),
        Event::purchase("v", "b", 1, 2.0, 12).session("s2"),
    ])?;
    Ok(store)
}

/// Answer one admin request line against `store`, as a connection would.
pub fn admin_line(store: &Store, line: &[u8]) {
    let _ = crate::admin::respond_line(store, line);
}

/// Check one JSONL line as each of the three kinds.
pub fn jsonl_line(store: &Store, line: &[u8]) {
    crate::import::jsonl::check_line_every_kind(store, line);
}
