//! Property tests: encodings round-trip, segments read back what was written, and a store
//! driven by random operations (with rebuilds and reopens) always equals a plain map.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use recostore::internals::codec::{self, StoredItem, StoredUser};
use recostore::internals::segment::{self, Segment, SegmentBuilder};
use recostore::{Config, Item, SegmentVerify, Store};

fn stored_item() -> impl Strategy<Value = StoredItem> {
    (
        "[a-z0-9-]{1,12}",
        prop::collection::btree_map(0u32..50, 0.001f32..100.0, 0..8),
        ".{0,10}",
        "[a-z/]{0,10}",
        0f32..1000.0,
        any::<u32>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(name, tags, title, category, price, stock, members_only, created_at)| StoredItem {
                name,
                tags: tags.into_iter().collect(),
                title,
                category,
                price,
                stock,
                members_only,
                created_at,
            },
        )
}

fn stored_user() -> impl Strategy<Value = StoredUser> {
    (
        "[a-z0-9]{1,10}",
        prop::collection::btree_map(0u32..50, 0.001f32..10.0, 0..6),
        prop::collection::vec(0u32..40, 0..5),
    )
        .prop_map(|(name, tags, recent)| StoredUser {
            name,
            tags: tags.into_iter().collect(),
            recent,
        })
}

proptest! {
    #[test]
    fn codec_round_trips(item in stored_item(), user in stored_user()) {
        let b = codec::encode(b"k", &item).unwrap();
        prop_assert_eq!(codec::decode::<StoredItem>(b"k", &b).unwrap(), item);
        let b = codec::encode(b"k", &user).unwrap();
        prop_assert_eq!(codec::decode::<StoredUser>(b"k", &b).unwrap(), user);
    }

    #[test]
    fn codec_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = codec::decode::<StoredItem>(b"k", &bytes);
        let _ = codec::decode::<StoredUser>(b"k", &bytes);
    }

    #[test]
    fn segment_reads_equal_what_was_written(
        items in prop::collection::vec(prop::option::of(stored_item()), 0..40),
        users in prop::collection::vec(prop::option::of(stored_user()), 0..20),
    ) {
        // Names must be unique per table for reverse look-ups to be meaningful.
        let items: Vec<Option<StoredItem>> = items.into_iter().enumerate()
            .map(|(i, o)| o.map(|mut it| { it.name = format!("{}-{i}", it.name); it })).collect();
        let users: Vec<Option<StoredUser>> = users.into_iter().enumerate()
            .map(|(i, o)| o.map(|mut u| { u.name = format!("{}-{i}", u.name); u })).collect();
        let mut b = SegmentBuilder::new();
        for t in 0..50 { b.push_tag(t, &format!("tag{t}")); }
        for (i, it) in items.iter().enumerate() { b.push_item(i as u32, it.as_ref()); }
        for (i, u) in users.iter().enumerate() { b.push_user(i as u32, u.as_ref()); }
        let dir = tempfile::tempdir().unwrap();
        let data = b.finish(7, 99, 0);
        let path = segment::file::write(dir.path(), &data, 0).unwrap();
        let seg = Segment::open(&path, SegmentVerify::Checksum).unwrap();
        prop_assert_eq!(seg.generation(), 7);
        let snap = recostore::internals::snapshot_of(Arc::new(seg), 99);
        for (i, it) in items.iter().enumerate() {
            prop_assert_eq!(&recostore::internals::stored_item(&snap, i as u32), it);
            if let Some(it) = it {
                prop_assert_eq!(snap.item_id(&it.name), Some(i as u32));
            }
        }
        for (i, u) in users.iter().enumerate() {
            prop_assert_eq!(&recostore::internals::stored_user(&snap, i as u32), u);
        }
        prop_assert_eq!(snap.tag_name(13), Some("tag13"));
        prop_assert_eq!(snap.tag_id("tag49"), Some(49));
        prop_assert_eq!(snap.live_items(), items.iter().flatten().count());
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u8, Vec<(u8, u8)>),
    Delete(u8),
    Rebuild,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..12, prop::collection::vec((0u8..10, 1u8..5), 0..4)).prop_map(|(i, t)| Op::Upsert(i, t)),
        2 => (0u8..12).prop_map(Op::Delete),
        1 => Just(Op::Rebuild),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn store_equals_a_map_through_rebuilds_and_reopens(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = || Config::default().rebuild_threshold(None);
        let mut store = Some(Store::open_with(dir.path(), cfg()).unwrap());
        let mut model: BTreeMap<String, Vec<(String, f32)>> = BTreeMap::new();
        for op in ops {
            let s = store.as_ref().unwrap();
            match op {
                Op::Upsert(i, tags) => {
                    let mut t: BTreeMap<String, f32> = BTreeMap::new();
                    for (n, w) in tags { t.insert(format!("t{n}"), f32::from(w)); }
                    let tags: Vec<(String, f32)> = t.into_iter().collect();
                    s.upsert_item(&Item::new(format!("i{i}"), tags.clone())).unwrap();
                    model.insert(format!("i{i}"), tags);
                }
                Op::Delete(i) => {
                    let existed = s.delete_item(&format!("i{i}")).unwrap();
                    prop_assert_eq!(existed, model.remove(&format!("i{i}")).is_some());
                }
                Op::Rebuild => { s.rebuild().unwrap(); }
                Op::Reopen => {
                    drop(store.take());
                    store = Some(Store::open_with(dir.path(), cfg()).unwrap());
                }
            }
            let s = store.as_ref().unwrap();
            for i in 0..12u8 {
                let id = format!("i{i}");
                prop_assert_eq!(s.get_item(&id).map(|it| it.tags), model.get(&id).cloned(), "item {}", id);
            }
            prop_assert_eq!(s.stats().items, model.len());
        }
    }
}

/// Encoding refuses what decoding would refuse (a value over the 64 MiB limit), so the store
/// never writes a record it cannot read back; just under the limit both ways work.
#[test]
fn encode_refuses_what_decode_would_refuse() {
    let item = |title_bytes: usize| StoredItem {
        name: "big".into(),
        tags: vec![(1, 1.0)],
        title: "x".repeat(title_bytes),
        category: String::new(),
        price: 0.0,
        stock: 0,
        members_only: false,
        created_at: 0,
    };
    let limit = 64 << 20;
    let under = item(limit - 1024);
    let bytes = codec::encode(b"Ik", &under).expect("under the limit");
    assert_eq!(
        codec::decode::<StoredItem>(b"Ik", &bytes).expect("reads back"),
        under
    );
    match codec::encode(b"Ik", &item(limit + 1)) {
        Err(recostore::Error::ValueTooLarge {
            bytes, limit: l, ..
        }) => {
            assert_eq!(l, limit);
            assert!(bytes > limit, "{bytes}");
        }
        other => panic!("expected ValueTooLarge, got {:?}", other.map(|b| b.len())),
    }
}
