//! `Store::bulk_load_items` against two oracles that share none of its code: the input itself
//! (every record read back must be the last input row of its name) and a twin store that takes
//! the same items through `upsert_items` and `rebuild` (every answer must be equal). Then the
//! states a bulk-loaded store goes on to: updates and deletes of chunked items (tombstones), a
//! reopen, and a segment rebuilt from sled alone, which reads the chunks back.

use rand::{Rng, SeedableRng};
use recostore::{Config, Item, Store};

/// Items from a generator of this test's own: a small vocabulary with a few popular tags,
/// some names repeated (the later row must win), and prices, stock and flags that vary.
fn catalogue(n: usize, seed: u64, prefix: &str) -> Vec<Item> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            // About one in twenty rows repeats an earlier name.
            let name = if i > 10 && rng.gen_bool(0.05) {
                rng.gen_range(0..i)
            } else {
                i
            };
            let mut picked = std::collections::BTreeMap::new();
            for _ in 0..rng.gen_range(1..7) {
                let t: u32 = if rng.gen_bool(0.3) {
                    rng.gen_range(0..5)
                } else {
                    rng.gen_range(0..400)
                };
                picked.insert(format!("t{t}"), rng.gen_range(0.05f32..3.0));
            }
            let tags = picked.into_iter().collect();
            Item {
                id: format!("{prefix}{name}"),
                tags,
                title: format!("title {i}"),
                category: format!("c{}", rng.gen_range(0..6)),
                price: rng.gen_range(0.0f32..500.0),
                stock: rng.gen_range(0..20),
                members_only: rng.gen_bool(0.1),
                created_at: rng.gen_range(0..1_000_000),
            }
        })
        .collect()
}

/// What the store must hold for each name: the last row of that name in `items`, with its
/// tags sorted by name, as the store returns them.
fn expected(items: &[Item]) -> std::collections::BTreeMap<String, Item> {
    let mut out = std::collections::BTreeMap::new();
    for it in items {
        let mut it = it.clone();
        it.tags.sort_by(|a, b| a.0.cmp(&b.0));
        out.insert(it.id.clone(), it);
    }
    out
}

fn answers(store: &Store, name: &str) -> Vec<(String, u32)> {
    store
        .similar_items(name, 10)
        .expect("similar items")
        .into_iter()
        .map(|r| (r.id, r.score.to_bits()))
        .collect()
}

fn same_store(a: &Store, b: &Store, names: &[String], what: &str) {
    assert_eq!(a.stats().items, b.stats().items, "{what}: live items");
    for name in names {
        assert_eq!(a.get_item(name), b.get_item(name), "{what}: record {name}");
    }
    for name in names.iter().step_by(7) {
        if a.get_item(name).is_some() {
            assert_eq!(
                answers(a, name),
                answers(b, name),
                "{what}: similar to {name}"
            );
        }
    }
}

fn healthy(store: &Store, what: &str) {
    let report = store.verify_deep().expect("verify runs");
    assert!(report.healthy(), "{what}: {report:?}");
}

#[test]
fn a_bulk_load_equals_upserts_then_a_rebuild_through_updates_deletes_reopen_and_repair() {
    let dir = tempfile::tempdir().unwrap();
    let twin_dir = tempfile::tempdir().unwrap();
    // Several chunks (1,024 items each) and a partial one.
    let items = catalogue(5_000, 7, "sku-");
    let want = expected(&items);
    let names: Vec<String> = want.keys().cloned().collect();

    let store = Store::open(dir.path()).unwrap();
    let report = store.bulk_load_items(&items).expect("bulk load");
    assert_eq!(report.items, want.len(), "{report:?}");
    assert_eq!(report.new_items, want.len(), "{report:?}");
    let twin =
        Store::open_with(twin_dir.path(), Config::default().rebuild_threshold(None)).unwrap();
    twin.upsert_items(&items).unwrap();
    twin.rebuild().unwrap();

    // Oracle 1: the input.
    for (name, item) in &want {
        assert_eq!(store.get_item(name).as_ref(), Some(item), "record {name}");
    }
    // The fast state: nothing waits in the delta.
    let stats = store.stats();
    assert_eq!(stats.delta_records, 0, "{stats:?}");
    assert_eq!(stats.generation, report.generation);
    // Oracle 2: the twin.
    same_store(&store, &twin, &names, "after the load");
    healthy(&store, "after the load");

    // Updates and deletes of chunked items, a new item, and a deleted name written again.
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut changed = catalogue(300, 9, "sku-");
    changed.push(Item {
        id: "brand-new".into(),
        tags: vec![("t1".into(), 1.0)],
        ..Item::default()
    });
    let gone: Vec<String> = (0..200)
        .map(|_| names[rng.gen_range(0..names.len())].clone())
        .collect();
    let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
    for s in [&store, &twin] {
        s.upsert_items(&changed).unwrap();
        s.delete_items(&gone).unwrap();
        s.upsert_items(&changed[..3]).unwrap();
    }
    let mut names = names;
    names.push("brand-new".into());
    same_store(&store, &twin, &names, "after updates and deletes");
    healthy(&store, "after updates and deletes");
    store.rebuild().unwrap();
    same_store(&store, &twin, &names, "after a rebuild");
    healthy(&store, "after a rebuild");

    // Reopen, then lose the segment: open rebuilds it from sled alone, where the chunks, the
    // tombstones and the later `I` keys must add up to the same store.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &names, "after a reopen");
    drop(store);
    for e in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &names, "after a repair from sled");
    healthy(&store, "after a repair from sled");
}

#[test]
fn a_bulk_load_into_a_serving_store_updates_what_it_names_and_adds_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let twin_dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let twin = Store::open(twin_dir.path()).unwrap();
    let first = catalogue(1_500, 1, "a-");
    let second = [catalogue(800, 2, "a-"), catalogue(2_100, 3, "b-")].concat();
    let mut names: Vec<String> = expected(&first).into_keys().collect();
    names.extend(expected(&second).into_keys());
    names.sort();
    names.dedup();
    for s in [&store, &twin] {
        s.upsert_items(&first).unwrap();
        s.delete_items(&["a-3", "a-5", "a-8"]).unwrap();
    }
    // The delta holds writes the load must fold in, and deleted names it may bring back.
    assert!(store.stats().delta_records > 0);
    let report = store.bulk_load_items(&second).unwrap();
    twin.upsert_items(&second).unwrap();
    twin.rebuild().unwrap();
    assert_eq!(report.items, expected(&second).len());
    // New: the names the store never had. Deleted names get their old ids back.
    let had = expected(&first);
    let fresh = expected(&second)
        .into_keys()
        .filter(|n| !had.contains_key(n))
        .count();
    assert_eq!(report.new_items, fresh);
    same_store(&store, &twin, &names, "second load");
    healthy(&store, "second load");
    // A second bulk load on top of the first's chunks.
    let third = catalogue(3_000, 4, "b-");
    store.bulk_load_items(&third).unwrap();
    twin.upsert_items(&third).unwrap();
    same_store(&store, &twin, &names, "third load");
    healthy(&store, "third load");
    drop(store);
    for e in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &names, "third load, repaired from sled");
}

#[test]
fn an_invalid_item_fails_the_whole_load_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let good = catalogue(100, 5, "ok-");
    store.bulk_load_items(&good).unwrap();
    let before = store.stats();
    let mut bad = catalogue(2_000, 6, "new-");
    bad[1_500].tags = vec![("t1".into(), f32::NAN)];
    let err = store.bulk_load_items(&bad).unwrap_err();
    assert!(
        err.to_string().contains("new-"),
        "the error names the item: {err}"
    );
    let after = store.stats();
    assert_eq!(
        (after.items, after.generation),
        (before.items, before.generation)
    );
    assert!(store.get_item("new-0").is_none());
    // An empty load is a no-op.
    let empty = store.bulk_load_items(&[]).unwrap();
    assert_eq!((empty.items, empty.generation), (0, before.generation));
    healthy(&store, "after the refused load");
}

#[test]
fn queries_and_writes_beside_a_bulk_load_see_one_state_or_the_other_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
    let before = catalogue(3_000, 11, "old-");
    store.bulk_load_items(&before).unwrap();
    let load = catalogue(20_000, 12, "new-");
    let want_before = expected(&before);
    let want_load = expected(&load);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader: every view is the store before the load or after it, never between (the
    // side writer's items may be there in either).
    let probes: Vec<String> = want_load.keys().step_by(997).cloned().collect();
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        let (n_before, n_after) = (want_before.len(), want_before.len() + want_load.len());
        std::thread::spawn(move || {
            let mut views = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let view = store.view();
                let items = view.snapshot().live_items();
                let seen = probes.iter().filter(|n| view.get_item(n).is_some()).count();
                assert!(
                    seen == 0 && (n_before..=n_before + 200).contains(&items)
                        || seen == probes.len() && items >= n_after,
                    "a view between states: {items} items, {seen} of {} probes",
                    probes.len()
                );
                views += 1;
            }
            views
        })
    };
    // A writer: its upserts queue behind the load and must all be there afterwards.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                store
                    .upsert_item(&Item::new(format!("side-{i}"), [("t1", 1.0)]))
                    .unwrap();
            }
        })
    };
    let report = store.bulk_load_items(&load).unwrap();
    writer.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let views = reader.join().unwrap();
    assert!(views > 0);
    assert_eq!(report.new_items, want_load.len());
    for (name, item) in want_before.iter().chain(&want_load) {
        assert_eq!(store.get_item(name).as_ref(), Some(item), "{name}");
    }
    for i in 0..200 {
        assert!(store.get_item(&format!("side-{i}")).is_some(), "side-{i}");
    }
    healthy(&store, "after the concurrent load");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.get_item("side-199").is_some());
    assert_eq!(
        store.stats().items,
        want_before.len() + want_load.len() + 200
    );
}

#[test]
fn past_the_update_limit_a_bulk_load_is_refused_whole_and_an_import_rerun_still_works() {
    // The limit lowered from its 100,000, so the test takes a second instead of ninety: the
    // logic is the same at any limit, and the default is the constant.
    assert_eq!(
        recostore::Config::default().bulk_load_max_updates,
        recostore::BULK_LOAD_MAX_UPDATES
    );
    let limit = 1_000;
    let config = || recostore::Config::default().bulk_load_max_updates(limit);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), config()).unwrap();
    let n = limit + 1;
    let items: Vec<Item> = (0..n)
        .map(|i| Item::new(format!("k{i}"), [(format!("t{}", i % 50), 1.0)]))
        .collect();
    store.bulk_load_items(&items).unwrap();
    let before = store.stats();
    // The same names again, plus new ones: more known items than one batch takes.
    let mut again = items.clone();
    again.push(Item::new("fresh", [("t1", 1.0)]));
    let err = store.bulk_load_items(&again).unwrap_err();
    assert!(
        matches!(err, recostore::Error::BulkLoadTooManyUpdates { updates, .. } if updates == n),
        "{err}"
    );
    assert!(
        err.to_string().contains("upsert_items"),
        "says what to do: {err}"
    );
    assert!(store.get_item("fresh").is_none(), "nothing was stored");
    assert_eq!(store.stats().generation, before.generation);
    // At the limit it goes through.
    store.bulk_load_items(&items[..limit]).unwrap();

    // `import jsonl` run twice over the same file: the second run writes the known items
    // through upsert_items and stays under the limit.
    let file = dir.path().join("items.jsonl");
    let lines: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"j{i}\", \"tags\": {{\"t{}\": 1.0}}, \"price\": {i}}}\n",
                i % 7
            )
        })
        .collect();
    std::fs::write(&file, lines).unwrap();
    let other = tempfile::tempdir().unwrap();
    let imported = Store::open_with(other.path(), config()).unwrap();
    let files = recostore::import::jsonl::JsonlFiles {
        items: Some(file),
        users: None,
        events: None,
    };
    let opts = recostore::import::ImportOptions::default();
    for run in 0..2 {
        let sum = recostore::import::jsonl::import(&imported, &files, &opts).unwrap();
        assert_eq!(sum.items, n, "run {run}");
        assert_eq!(imported.stats().items, n, "run {run}");
        assert_eq!(imported.stats().delta_records, 0, "run {run}: left folded");
    }
    assert_eq!(imported.get_item("j77").map(|i| i.price), Some(77.0));
    healthy(&imported, "after two imports");
}

#[test]
fn compact_drops_the_chunk_records_that_later_writes_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let twin_dir = tempfile::tempdir().unwrap();
    let items = catalogue(4_000, 21, "c-");
    let names: Vec<String> = expected(&items).into_keys().collect();
    let store = Store::open(dir.path()).unwrap();
    let twin = Store::open(twin_dir.path()).unwrap();
    store.bulk_load_items(&items).unwrap();
    twin.upsert_items(&items).unwrap();
    let changed = catalogue(500, 22, "c-");
    // Of the changed names, those the bulk load wrote (the generators skip some names).
    let changed_names = expected(&changed)
        .keys()
        .filter(|n| names.contains(n))
        .count();
    let gone: Vec<&str> = names
        .iter()
        .skip(3)
        .step_by(40)
        .map(String::as_str)
        .collect();
    let gone_not_changed = gone
        .iter()
        .filter(|g| !expected(&changed).contains_key(**g))
        .count();
    for s in [&store, &twin] {
        s.upsert_items(&changed).unwrap();
        s.delete_items(&gone).unwrap();
    }
    drop(store);
    let report = Store::compact(dir.path(), Config::default()).unwrap();
    // Each changed name that the load wrote replaced one chunk record; each deleted name that
    // was not also changed, one more.
    assert_eq!(
        report.stale_chunk_records as usize,
        changed_names + gone_not_changed,
        "{report:?}"
    );
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &names, "after compact");
    healthy(&store, "after compact");
    drop(store);
    // The pruned chunks and the remaining keys still rebuild the same store.
    for e in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    same_store(
        &store,
        &twin,
        &names,
        "after compact and a repair from sled",
    );
    // A second compaction finds nothing more to drop.
    drop(store);
    let again = Store::compact(dir.path(), Config::default()).unwrap();
    assert_eq!(again.stale_chunk_records, 0);
}

/// Hostile items from a small name space, so that one load repeats names, tags collide and
/// every kind of fault shows up: empty, oversized and repeated tag names, zero, negative,
/// NaN, infinite and subnormal weights, NaN and negative prices.
fn hostile_item() -> impl proptest::strategy::Strategy<Value = Item> {
    use proptest::prelude::*;
    let name = prop_oneof![
        6 => prop::sample::select(vec!["red", "blue", "shoe", "sale", "x"]).prop_map(String::from),
        1 => Just(String::new()),
        1 => Just("n".repeat(300)),
    ];
    let weight = prop_oneof![
        6 => 0.01f32..5.0,
        1 => Just(0.0f32),
        1 => prop::sample::select(vec![-1.0f32, f32::NAN, f32::INFINITY, 1e-40, 3e38]),
    ];
    let price = prop_oneof![8 => 0.0f32..100.0, 1 => Just(f32::NAN), 1 => Just(-2.0f32)];
    (
        prop::sample::select(vec!["a", "b", "c", "d"]),
        prop::collection::vec((name, weight), 0..5),
        price,
    )
        .prop_map(|(id, tags, price)| Item {
            id: id.to_string(),
            tags,
            price,
            ..Item::default()
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// The bulk path validates with its own code (names hashed on two threads, duplicates
    /// found by hash); `upsert_items` is the oracle. Same input: the same error, word for
    /// word, or the same records.
    #[test]
    fn bulk_load_and_upsert_items_judge_every_item_alike(
        items in proptest::collection::vec(hostile_item(), 1..6)
    ) {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bulk = Store::open(da.path()).unwrap();
        let upsert = Store::open(db.path()).unwrap();
        let a = bulk.bulk_load_items(&items).map(|_| ()).map_err(|e| e.to_string());
        let b = upsert.upsert_items(&items).map(|_| ()).map_err(|e| e.to_string());
        proptest::prop_assert_eq!(&a, &b);
        for name in ["a", "b", "c", "d"] {
            proptest::prop_assert_eq!(bulk.get_item(name), upsert.get_item(name), "{}", name);
        }
    }
}

#[test]
fn a_load_validated_on_two_threads_reports_the_first_invalid_item_of_either_half() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Past the size from which validation splits the input in two.
    let mut items = catalogue(24_000, 9, "two-");
    items[20_000].tags.push(("t1".into(), f32::NAN));
    let later_only = store.bulk_load_items(&items).unwrap_err().to_string();
    assert!(later_only.contains(&items[20_000].id), "{later_only}");
    let dup = items[3_000].tags[0].0.clone();
    items[3_000].tags.push((dup, 0.0));
    let both = store.bulk_load_items(&items).unwrap_err().to_string();
    assert!(
        both.contains(&items[3_000].id) && both.contains("appears twice"),
        "the first half's fault comes first: {both}"
    );
    assert_eq!(
        store.stats().items,
        0,
        "nothing of a refused load is stored"
    );
    items[20_000].tags.pop();
    items[3_000].tags.pop();
    store.bulk_load_items(&items).unwrap();
    let want = expected(&items);
    assert_eq!(store.stats().items, want.len());
    for (id, item) in want.iter().step_by(97) {
        assert_eq!(store.get_item(id).as_ref(), Some(item), "{id}");
    }
}

#[test]
fn compact_packs_an_upserted_catalogue_into_chunks_and_the_store_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let twin_dir = tempfile::tempdir().unwrap();
    let items = catalogue(5_000, 31, "p-");
    let names: Vec<String> = expected(&items).into_keys().collect();
    let store = Store::open(dir.path()).unwrap();
    let twin = Store::open(twin_dir.path()).unwrap();
    // A catalogue written a key per record, folded; then writes the dirty log names: an
    // update and a deletion, which compact must leave as keys for open to read.
    let dirty_changed = catalogue(40, 32, "p-");
    let dirty_gone: Vec<&str> = names.iter().step_by(97).map(String::as_str).collect();
    for s in [&store, &twin] {
        for batch in items.chunks(700) {
            s.upsert_items(batch).unwrap();
        }
        s.rebuild().unwrap();
        s.upsert_items(&dirty_changed).unwrap();
        s.delete_items(&dirty_gone).unwrap();
    }
    let changed_names = expected(&dirty_changed);
    let dirty: std::collections::BTreeSet<&str> = changed_names
        .keys()
        .map(String::as_str)
        .chain(dirty_gone.iter().copied())
        .filter(|n| names.iter().any(|m| m == n))
        .collect();
    drop(store);
    let report = Store::compact(dir.path(), Config::default()).unwrap();
    assert_eq!(
        report.packed_records as usize,
        names.len() - dirty.len(),
        "every record but the ones the dirty log names: {report:?}"
    );
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &names, "after compact packed the records");
    healthy(&store, "after compact packed the records");
    // Writes after the packing: an update and a deletion of packed items (the deletion is a
    // tombstone over a chunk), and items new to the store.
    let later = catalogue(30, 33, "p-");
    let more = catalogue(300, 34, "q-");
    let gone_later: Vec<&str> = names
        .iter()
        .skip(5)
        .step_by(89)
        .map(String::as_str)
        .collect();
    for s in [&store, &twin] {
        s.upsert_items(&later).unwrap();
        s.upsert_items(&more).unwrap();
        s.delete_items(&gone_later).unwrap();
    }
    let mut all = names.clone();
    all.extend(expected(&more).into_keys());
    same_store(&store, &twin, &all, "after writes over packed records");
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &all, "after a reopen");
    store.rebuild().unwrap();
    same_store(&store, &twin, &all, "after a rebuild");
    drop(store);
    for e in std::fs::read_dir(dir.path().join("segments")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    same_store(&store, &twin, &all, "after a repair from sled alone");
    healthy(&store, "after a repair from sled alone");
}

#[test]
fn of_several_repeated_tags_both_paths_name_the_same_one() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bulk = Store::open(da.path()).unwrap();
    let upsert = Store::open(db.path()).unwrap();
    // Several repeated names in one item, in orders whose hashes sort differently from their
    // names: both paths must report the alphabetically first.
    for names in [
        ["red", "red", "blue", "blue", "sale", "sale"],
        ["sale", "x", "sale", "shoe", "x", "shoe"],
    ] {
        let item = Item {
            id: "a".into(),
            tags: names.iter().map(|n| (n.to_string(), 1.0)).collect(),
            ..Item::default()
        };
        let a = bulk
            .bulk_load_items(std::slice::from_ref(&item))
            .unwrap_err();
        let b = upsert
            .upsert_items(std::slice::from_ref(&item))
            .unwrap_err();
        assert_eq!(a.to_string(), b.to_string());
    }
}
