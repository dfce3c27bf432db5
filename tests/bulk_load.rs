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
