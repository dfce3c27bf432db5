//! What an app developer does with records: write, read back, update, delete, reopen.

use std::collections::BTreeMap;

use recostore::{Config, Error, Item, Store, User};

fn item(id: &str, tags: &[(&str, f32)]) -> Item {
    Item {
        id: id.into(),
        tags: tags.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
        title: format!("title of {id}"),
        category: "kitchen/mugs".into(),
        price: 12.5,
        stock: 3,
        members_only: id.ends_with('m'),
        created_at: 1_700_000_000,
    }
}

fn sorted(mut tags: Vec<(String, f32)>) -> Vec<(String, f32)> {
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    tags
}

#[test]
fn items_and_users_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = item(
        "mug-1",
        &[("colour:red", 1.0), ("category:kitchen/mugs", 0.5)],
    );
    let b = item("mug-2m", &[("colour:blue", 2.0)]);
    let mut u = User::new("user-1", [("tier:prime", 1.0), ("colour:red", 0.25)]);
    u.recent_items = vec!["mug-1".into(), "not-in-store".into(), "mug-2m".into()];
    {
        let store = Store::open(dir.path()).unwrap();
        store.upsert_items(&[a.clone(), b.clone()]).unwrap();
        store.upsert_user(&u).unwrap();
        // Read-your-writes, before any rebuild.
        let got = store.get_item("mug-1").unwrap();
        assert_eq!(
            got,
            Item {
                tags: sorted(a.tags.clone()),
                ..a.clone()
            }
        );
        assert!(store.get_item("mug-2m").unwrap().members_only);
        let gu = store.get_user("user-1").unwrap();
        assert_eq!(gu.tags, sorted(u.tags.clone()));
        assert_eq!(
            gu.recent_items,
            vec!["mug-1", "mug-2m"],
            "unknown recent items are dropped"
        );
        store.flush().unwrap();
    }
    // Reopen without a rebuild: the delta is replayed from the dirty log.
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get_item("mug-1").unwrap().tags,
            sorted(a.tags.clone())
        );
        assert_eq!(store.get_user("user-1").unwrap().recent_items.len(), 2);
        let s = store.stats();
        assert_eq!((s.items, s.users, s.tags), (2, 1, 4));
        store.rebuild().unwrap();
        assert_eq!(store.stats().delta_records, 0);
        assert_eq!(
            store.get_item("mug-2m").unwrap().tags,
            vec![("colour:blue".to_string(), 2.0)]
        );
    }
    // Reopen after a rebuild: everything is in the segment.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.stats().delta_records, 0);
    assert_eq!(store.get_item("mug-1").unwrap().price, 12.5);
    assert_eq!(store.get_user("user-1").unwrap().tags, sorted(u.tags));
}

#[test]
fn updates_replace_and_deletes_remove_across_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.upsert_item(&item("a", &[("t:1", 1.0)])).unwrap();
    store.rebuild().unwrap();
    store.upsert_item(&item("a", &[("t:2", 1.0)])).unwrap();
    assert_eq!(
        store.get_item("a").unwrap().tags,
        vec![("t:2".to_string(), 1.0)]
    );
    assert!(store.delete_item("a").unwrap());
    assert!(
        !store.delete_item("a").unwrap(),
        "second delete reports absence"
    );
    assert!(store.get_item("a").is_none());
    store.rebuild().unwrap();
    assert!(store.get_item("a").is_none());
    // Re-creating a deleted id works and is visible.
    store.upsert_item(&item("a", &[("t:3", 1.0)])).unwrap();
    assert_eq!(
        store.get_item("a").unwrap().tags,
        vec![("t:3".to_string(), 1.0)]
    );
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.get_item("a").unwrap().tags,
        vec![("t:3".to_string(), 1.0)]
    );
    assert_eq!(store.stats().items, 1);
}

#[test]
fn deleting_a_user_erases_it_from_sled_and_segment_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "user-forget-me-7f3a";
    {
        let store = Store::open(dir.path()).unwrap();
        store
            .upsert_user(&User::new(secret, [("region:somewhere-secret-9c1", 1.0)]))
            .unwrap();
        store
            .upsert_user(&User::new("keeper", [("tier:prime", 1.0)]))
            .unwrap();
        store.rebuild().unwrap();
        assert!(store.delete_user(secret).unwrap());
        assert!(store.get_user(secret).is_none());
        store.rebuild().unwrap();
        assert_eq!(store.stats().users, 1);
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.get_user(secret).is_none());
    assert!(store.get_user("keeper").is_some());
    // No segment file mentions the user any more.
    for e in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "segment still holds the deleted user's id"
        );
    }
}

#[test]
fn invalid_records_are_rejected_whole_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.upsert_item(&item("ok", &[("t", 1.0)])).unwrap();
    let cases: Vec<(Item, &str)> = vec![
        (item("", &[("t", 1.0)]), "empty"),
        (item("nan", &[("t", f32::NAN)]), "finite"),
        (item("inf", &[("t", f32::INFINITY)]), "finite"),
        (item("neg", &[("t", -1.0)]), ">= 0"),
        (item("dup", &[("t", 1.0), ("t", 2.0)]), "twice"),
        (item("long-tag", &[(&"x".repeat(2000), 1.0)]), "limit"),
        (item(&"y".repeat(600), &[("t", 1.0)]), "limit"),
        (
            Item {
                price: f32::NAN,
                ..item("price", &[])
            },
            "price",
        ),
    ];
    for (bad, needle) in cases {
        // A bad record in a batch rejects the whole batch: the good one beside it is not stored.
        let good = item("good-neighbour", &[("t", 1.0)]);
        let err = store.upsert_items(&[good, bad]).unwrap_err();
        assert!(matches!(err, Error::InvalidRecord { .. }), "{err}");
        assert!(
            err.to_string().contains(needle),
            "`{err}` should mention `{needle}`"
        );
        assert!(err
            .to_string()
            .contains("Nothing from this call was stored"));
        assert!(store.get_item("good-neighbour").is_none());
    }
    let many: Vec<(String, f32)> = (0..10_000).map(|i| (format!("t{i}"), 1.0)).collect();
    let err = store
        .upsert_item(&Item {
            id: "wide".into(),
            tags: many,
            ..Item::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("max_tags_per_record"), "{err}");
    assert_eq!(store.stats().items, 1);
    assert!(store.get_item("ok").is_some());
    // Zero weights are dropped rather than stored.
    store
        .upsert_item(&item("zero", &[("t", 0.0), ("u", 1.0)]))
        .unwrap();
    assert_eq!(
        store.get_item("zero").unwrap().tags,
        vec![("u".to_string(), 1.0)]
    );
}

#[test]
fn a_second_handle_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    match Store::open(dir.path()) {
        Err(Error::Locked { .. }) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("two handles opened one store"),
    }
}

#[test]
fn many_threads_read_while_one_writes_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open_with(dir.path(), Config::default().rebuild_threshold(Some(200))).unwrap();
    let base: Vec<Item> = (0..500)
        .map(|i| {
            item(
                &format!("base-{i}"),
                &[("k", 1.0), (&format!("g{}", i % 7), 1.0)],
            )
        })
        .collect();
    store.upsert_items(&base).unwrap();
    std::thread::scope(|s| {
        for r in 0..3 {
            let store = &store;
            s.spawn(move || {
                for i in 0..2_000 {
                    let id = format!("base-{}", (i * 7 + r) % 500);
                    let got = store.get_item(&id).expect("base items are never deleted");
                    assert!(
                        got.tags.iter().any(|(t, _)| t == "k"),
                        "torn record {got:?}"
                    );
                    let snap = store.snapshot();
                    assert!(snap.live_items() >= 500);
                }
            });
        }
        let store = &store;
        s.spawn(move || {
            for i in 0..1_000 {
                store
                    .upsert_item(&item(&format!("new-{i}"), &[("k", 1.0)]))
                    .unwrap();
                if i % 3 == 0 {
                    store.delete_item(&format!("new-{}", i / 2)).unwrap();
                }
            }
        });
    });
    store.rebuild().unwrap();
    let live = store.stats().items;
    let expect_deleted: std::collections::BTreeSet<usize> =
        (0..1_000).filter(|i| i % 3 == 0).map(|i| i / 2).collect();
    // Each delete of new-{i/2} ran after new-{i/2} was written (i/2 < i), so they all took.
    assert_eq!(live, 500 + 1_000 - expect_deleted.len());
}

#[test]
fn old_generations_are_deleted_once_the_last_reader_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.upsert_item(&item("a", &[("t", 1.0)])).unwrap();
    store.rebuild().unwrap();
    let held = store.snapshot(); // a reader in the middle of a query
    let old_path = recostore::internals::segment(&held).path().to_path_buf();
    store.upsert_item(&item("b", &[("t", 1.0)])).unwrap();
    store.rebuild().unwrap();
    assert!(old_path.exists(), "file must stay while a reader maps it");
    assert!(held.item("a").is_some(), "the held snapshot still reads");
    drop(held);
    assert!(
        !old_path.exists(),
        "retired segment file should be deleted after the last reader"
    );
    let files: BTreeMap<String, u64> = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    let current = store.stats().generation;
    let keep = [
        recostore::internals::segment::file::file_name(current),
        recostore::internals::segment::neighbours::file_name(current),
    ];
    assert!(
        files.keys().all(|f| keep.contains(f)) && files.len() == 2,
        "only the current generation (segment + neighbour lists) remains: {files:?}"
    );
    // The mapping is released too: no maps of deleted segment files remain in this process.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    assert!(
        !maps.contains(&old_path.display().to_string()),
        "old segment still mapped"
    );
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

/// Stock, price and category changes are attribute-only: the segment's index keeps finding
/// the item (nothing is re-indexed, `delta_records` stays 0), filters and reads see the new
/// values at once, a reopen classifies them again from the dirty log, and a rebuild folds
/// them in. Changing tags re-indexes the item; changing them back makes it attribute-only
/// again.
#[test]
fn stock_and_price_updates_are_not_reindexed() {
    use recostore::{Filter, Query, SearchPath};
    let dir = tempfile::tempdir().unwrap();
    let config = || Config::default().neighbours(0).rebuild_threshold(None);
    let items: Vec<Item> = (0..200)
        .map(|i| {
            item(
                &format!("mug-{i}"),
                &[("type:mug", 1.0), ("size", 0.1 * (i % 7) as f32)],
            )
        })
        .collect();
    {
        let store = Store::open_with(dir.path(), config()).unwrap();
        store.upsert_items(&items).unwrap();
        store.rebuild().unwrap();
        let mut sold_out = items[5].clone();
        sold_out.stock = 0;
        let mut moved = items[6].clone();
        moved.category = "garden".into();
        moved.price = 99.0;
        store.upsert_items(&[sold_out, moved]).unwrap();
        let s = store.stats();
        assert_eq!((s.delta_records, s.attribute_overlay), (0, 2));
        let in_stock = Query::profile([("type:mug", 1.0)])
            .k(300)
            .filter(Filter::new().in_stock());
        let (recs, stats) = store.query_with_stats(&in_stock).unwrap();
        assert_eq!(stats.path, SearchPath::Pruned);
        assert_eq!(recs.len(), 199);
        assert!(recs.iter().all(|r| r.id != "mug-5"));
        let garden = Query::profile([("type:mug", 1.0)]).filter(Filter::new().category("garden"));
        let recs = store.query(&garden).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["mug-6"]
        );
        assert_eq!(store.get_item("mug-6").unwrap().price, 99.0);
        store.flush().unwrap();
    }
    let store = Store::open_with(dir.path(), config()).unwrap();
    let s = store.stats();
    assert_eq!(
        (s.delta_records, s.attribute_overlay),
        (0, 2),
        "classified again on open"
    );
    let mut retagged = items[7].clone();
    retagged.tags.push(("colour:red".into(), 1.0));
    store.upsert_item(&retagged).unwrap();
    assert_eq!(store.stats().delta_records, 1);
    store.upsert_item(&items[7]).unwrap();
    let s = store.stats();
    assert_eq!(
        (s.delta_records, s.attribute_overlay),
        (0, 3),
        "tags back as indexed"
    );
    store.delete_item("mug-8").unwrap();
    assert_eq!(store.stats().delta_records, 1, "a deletion is re-indexed");
    store.rebuild().unwrap();
    let s = store.stats();
    assert_eq!((s.delta_records, s.attribute_overlay, s.items), (0, 0, 199));
    assert_eq!(store.get_item("mug-5").unwrap().stock, 0);
    assert_eq!(store.get_item("mug-6").unwrap().category, "garden");
}

/// Deletions are re-tagged but leave nothing to index: they never count toward a flush of the
/// delta's index, and a flush indexes only live rows.
#[test]
fn deletions_are_not_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default()
        .neighbours(0)
        .rebuild_threshold(None)
        .delta_index_rows(0);
    let store = Store::open_with(dir.path(), config).unwrap();
    let items: Vec<Item> = (0..50)
        .map(|i| item(&format!("mug-{i}"), &[("type:mug", 1.0)]))
        .collect();
    store.upsert_items(&items).unwrap();
    store.rebuild().unwrap();
    let doomed: Vec<String> = (0..20).map(|i| format!("mug-{i}")).collect();
    let refs: Vec<&str> = doomed.iter().map(String::as_str).collect();
    store.delete_items(&refs).unwrap();
    store
        .upsert_item(&item("mug-new", &[("type:mug", 1.0), ("colour:red", 1.0)]))
        .unwrap();
    let s = store.stats();
    assert_eq!((s.delta_records, s.delta_unindexed), (21, 1));
    assert_eq!(store.index_delta().unwrap(), 1);
    let s = store.stats();
    assert_eq!((s.delta_runs, s.delta_unindexed), (1, 0));
    let recs = store
        .query(&recostore::Query::profile([("type:mug", 1.0)]).k(100))
        .unwrap();
    assert_eq!(recs.len(), 31);
    assert!(recs.iter().any(|r| r.id == "mug-new"));
}
