//! The delta file (`Store::save_delta`): a store opened from its saved delta must be the store
//! opened from sled's dirty log alone, which shares none of the file's code, and both must
//! hold what a model kept by this test says. Then what may go wrong with the file: damage,
//! a file of another store, a file of an older generation. Then the background upkeep's
//! choice between saving and folding, and the save on close.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use recostore::{Config, Item, Store, User};

/// No background work and no save on close, so each test decides when the delta is saved.
fn manual() -> Config {
    Config::default()
        .rebuild_threshold(None)
        .delta_index_rows(usize::MAX)
        .neighbours(0)
}

fn item(name: &str, rng: &mut impl Rng, vocab: u32) -> Item {
    let mut tags = BTreeMap::new();
    for _ in 0..rng.gen_range(1..6) {
        let t = if rng.gen_bool(0.3) {
            rng.gen_range(0..4)
        } else {
            rng.gen_range(0..vocab)
        };
        tags.insert(format!("t{t}"), rng.gen_range(0.05f32..3.0));
    }
    Item {
        id: name.to_string(),
        tags: tags.into_iter().collect(),
        title: format!("title of {name}"),
        category: format!("c{}", rng.gen_range(0..5)),
        price: rng.gen_range(1.0f32..100.0),
        stock: rng.gen_range(0..9),
        members_only: rng.gen_bool(0.1),
        created_at: rng.gen_range(0..1_000),
    }
}

fn delta_file(dir: &Path, generation: u64) -> PathBuf {
    dir.join("segments").join(format!("{generation:020}.dlt"))
}

/// Copy a closed store's directory, leaving the delta files out: its twin opens from the
/// dirty log alone.
fn twin_without_delta_file(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).expect("inside the store");
        let dest = to.join(rel);
        if entry.extension().is_some_and(|e| e == "dlt") {
            continue;
        }
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &dest).expect("copy");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn answers(store: &Store, name: &str) -> Vec<(String, u32)> {
    store
        .similar_items(name, 8)
        .expect("similar items")
        .into_iter()
        .map(|r| (r.id, r.score.to_bits()))
        .collect()
}

fn profile(store: &Store) -> Vec<(String, u32)> {
    let tags = vec![("t1".to_string(), 1.0), ("t2".to_string(), 0.5)];
    store
        .profile_items(&tags, 12)
        .expect("profile query")
        .into_iter()
        .map(|r| (r.id, r.score.to_bits()))
        .collect()
}

/// `store` holds exactly `model` (records read back, tags sorted by name as the store returns
/// them), and answers as `other` does.
fn check(store: &Store, other: &Store, model: &BTreeMap<String, Option<Item>>, what: &str) {
    let live = model.values().filter(|v| v.is_some()).count();
    assert_eq!(store.stats().items, live, "{what}: live items");
    for (name, want) in model {
        let want = want.clone().map(|mut it| {
            it.tags.sort_by(|a, b| a.0.cmp(&b.0));
            it
        });
        assert_eq!(store.get_item(name), want, "{what}: record {name}");
        assert_eq!(
            store.get_item(name),
            other.get_item(name),
            "{what}: {name} against the twin"
        );
    }
    for (name, row) in model.iter().step_by(5) {
        if row.is_some() {
            assert_eq!(
                answers(store, name),
                answers(other, name),
                "{what}: similar to {name}"
            );
        }
    }
    assert_eq!(profile(store), profile(other), "{what}: profile query");
    for n in 0..20 {
        let name = format!("u{n}");
        assert_eq!(
            store.get_user(&name),
            other.get_user(&name),
            "{what}: {name}"
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// New tags for an item (new or known).
    Retag(u16),
    /// Price and stock only.
    Attributes(u16),
    Delete(u16),
    User(u8),
    Index,
    Save,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..300).prop_map(Op::Retag),
        4 => (0u16..300).prop_map(Op::Attributes),
        2 => (0u16..300).prop_map(Op::Delete),
        1 => (0u8..20).prop_map(Op::User),
        1 => Just(Op::Index),
        1 => Just(Op::Save),
    ]
}

fn run(ops: &[Op], seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let mut model: BTreeMap<String, Option<Item>> = BTreeMap::new();
    {
        let store = Store::open_with(&dir, manual()).expect("open");
        let base: Vec<Item> = (0..200)
            .map(|i| item(&format!("i{i}"), &mut rng, 60))
            .collect();
        store.upsert_items(&base).expect("load");
        store.rebuild().expect("fold the base");
        for it in base {
            model.insert(it.id.clone(), Some(it));
        }
        for op in ops {
            match *op {
                Op::Retag(n) => {
                    // Names past 200 are new items, with tags the segment has never seen.
                    let it = item(&format!("i{n}"), &mut rng, 90);
                    store.upsert_item(&it).expect("retag");
                    model.insert(it.id.clone(), Some(it));
                }
                Op::Attributes(n) => {
                    let name = format!("i{n}");
                    if let Some(Some(old)) = model.get(&name) {
                        let mut it = old.clone();
                        it.price += 1.0;
                        it.stock = rng.gen_range(0..9);
                        store.upsert_item(&it).expect("attributes");
                        model.insert(name, Some(it));
                    }
                }
                Op::Delete(n) => {
                    let name = format!("i{n}");
                    store.delete_item(&name).expect("delete");
                    if model.contains_key(&name) {
                        model.insert(name, None);
                    }
                }
                Op::User(n) => {
                    let u = User {
                        id: format!("u{n}"),
                        tags: vec![(format!("t{n}"), 1.0)],
                        recent_items: vec![],
                    };
                    store.upsert_user(&u).expect("user");
                }
                Op::Index => {
                    store.index_delta().expect("index");
                }
                Op::Save => {
                    store.save_delta().expect("save");
                }
            }
        }
        store.close().expect("close");
    }
    let twin_dir = tmp.path().join("twin");
    twin_without_delta_file(&dir, &twin_dir);
    let store = Store::open_with(&dir, manual()).expect("reopen from the delta file");
    let twin = Store::open_with(&twin_dir, manual()).expect("reopen from the dirty log");
    check(&store, &twin, &model, "reopened");
    // And both go on alike: a write over the reopened delta, then a fold.
    for s in [&store, &twin] {
        s.upsert_item(&Item {
            id: "i3".into(),
            tags: vec![("t1".into(), 2.0)],
            ..Item::default()
        })
        .expect("write after reopen");
    }
    model.insert(
        "i3".into(),
        Some(Item {
            id: "i3".into(),
            tags: vec![("t1".into(), 2.0)],
            ..Item::default()
        }),
    );
    check(&store, &twin, &model, "written after reopen");
    store.rebuild().expect("fold");
    twin.rebuild().expect("fold the twin");
    check(&store, &twin, &model, "folded");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any mix of writes, index flushes and saves, closed and opened again: the store read
    /// back through its delta file holds the model and answers as its twin read back from
    /// the dirty log alone.
    #[test]
    fn a_store_reopened_from_its_delta_file_is_the_store_reopened_from_sled(
        ops in proptest::collection::vec(op(), 1..120),
        seed in any::<u64>(),
    ) {
        run(&ops, seed);
    }
}

/// A fixed history with every kind of record, saved in the middle and written on after.
/// Returns what the store holds and its stats before it closed.
fn build(dir: &Path) -> (BTreeMap<String, Option<Item>>, recostore::Stats) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut model = BTreeMap::new();
    let store = Store::open_with(dir, manual()).expect("open");
    let base: Vec<Item> = (0..1_000)
        .map(|i| item(&format!("i{i}"), &mut rng, 200))
        .collect();
    store.bulk_load_items(&base).expect("bulk load");
    for it in base {
        model.insert(it.id.clone(), Some(it));
    }
    let write = |store: &Store, model: &mut BTreeMap<String, Option<Item>>, it: Item| {
        store.upsert_item(&it).expect("write");
        model.insert(it.id.clone(), Some(it));
    };
    for i in (0..1_000).step_by(4) {
        write(&store, &mut model, item(&format!("i{i}"), &mut rng, 300));
    }
    for i in 1_000..1_100 {
        write(&store, &mut model, item(&format!("i{i}"), &mut rng, 300));
    }
    store.index_delta().expect("index");
    for i in (1..1_000).step_by(9) {
        let mut it = model[&format!("i{i}")].clone().expect("live");
        it.stock += 3;
        write(&store, &mut model, it);
    }
    let saved = store.save_delta().expect("save");
    assert!(saved.written, "{saved:?}");
    assert_eq!(saved.runs, 1, "{saved:?}");
    assert!(delta_file(dir, saved.generation).exists());
    // After the save: a re-tag of a saved row, deletions of saved and segment rows.
    write(&store, &mut model, item("i4", &mut rng, 300));
    for name in ["i8", "i1050", "i11"] {
        store.delete_item(name).expect("delete");
        model.insert(name.to_string(), None);
    }
    let stats = store.stats();
    store.close().expect("close");
    (model, stats)
}

#[test]
fn a_saved_delta_comes_back_with_its_runs_and_the_writes_after_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let (model, before) = build(&dir);
    let twin_dir = tmp.path().join("twin");
    twin_without_delta_file(&dir, &twin_dir);
    let store = Store::open_with(&dir, manual()).expect("reopen");
    let twin = Store::open_with(&twin_dir, manual()).expect("twin");
    check(&store, &twin, &model, "reopened");
    let (s, t) = (store.stats(), twin.stats());
    assert_eq!(s.delta_records, t.delta_records);
    assert_eq!(s.attribute_overlay, t.attribute_overlay);
    // The saved run came back, and the rows to scan are those the closed store had: the
    // writes after the save among them. The twin read every row from sled and indexed none.
    assert_eq!(s, before, "the store as it closed");
    assert_eq!(s.delta_runs, 1, "{s:?}");
    assert_eq!(t.delta_runs, 0, "{t:?}");
    assert!(t.delta_unindexed > 300, "{t:?}");
    let report = store.verify_deep().expect("verify");
    assert!(report.healthy(), "{report:?}");
    assert!(
        !report.notes.iter().any(|n| n.contains("delta file")),
        "{report:?}"
    );
    // A file damaged while the store is open: a note, since the dirty log still serves.
    let path = delta_file(&dir, s.generation);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() / 3;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let report = store.verify_deep().expect("verify");
    assert!(report.healthy(), "{report:?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("delta file is unusable")),
        "{report:?}"
    );
}

#[test]
fn a_damaged_or_foreign_delta_file_is_set_aside_and_the_dirty_log_serves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let (model, before) = build(&dir);
    let generation = before.generation;
    let path = delta_file(&dir, generation);
    let twin_dir = tmp.path().join("twin");
    twin_without_delta_file(&dir, &twin_dir);
    let twin = Store::open_with(&twin_dir, manual()).expect("twin");

    // One flipped byte in the middle.
    let mut bytes = std::fs::read(&path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write");
    {
        let store = Store::open_with(&dir, manual()).expect("open despite the damage");
        check(&store, &twin, &model, "damaged file");
        assert!(!path.exists(), "the unusable file is removed");
        assert_eq!(store.stats().delta_runs, 0);
    }

    // Truncated, and empty.
    for cut in [bytes.len() - 10, 0] {
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let store = Store::open_with(&dir, manual()).expect("open despite the truncation");
        check(&store, &twin, &model, "truncated file");
    }

    // A sound delta file of another store, under this store's generation.
    let other = tmp.path().join("other");
    let other_gen = {
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let s = Store::open_with(&other, manual()).expect("other");
        let items: Vec<Item> = (0..50)
            .map(|i| item(&format!("x{i}"), &mut rng, 20))
            .collect();
        s.bulk_load_items(&items).expect("load");
        s.upsert_item(&item("x1", &mut rng, 20)).expect("write");
        assert!(s.save_delta().expect("save").written);
        s.stats().generation
    };
    std::fs::copy(delta_file(&other, other_gen), &path).expect("copy in");
    let store = Store::open_with(&dir, manual()).expect("open with a foreign file");
    check(&store, &twin, &model, "foreign file");
    assert!(store.get_item("x1").is_none());
}

#[test]
fn a_rebuild_makes_the_delta_file_obsolete_and_removes_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let (model, _) = build(&dir);
    let store = Store::open_with(&dir, manual()).expect("open");
    let old = store.stats().generation;
    assert!(delta_file(&dir, old).exists());
    let folded = store.rebuild().expect("rebuild");
    assert!(!delta_file(&dir, old).exists());
    assert!(!delta_file(&dir, folded.generation).exists());
    // Nothing new to save right after a fold.
    let again = store.save_delta().expect("save");
    assert!(!again.written && again.records == 0, "{again:?}");
    // A delta file left by a crash between the fold and the removal is a stray file.
    let stale = delta_file(&dir, old);
    drop(store);
    std::fs::write(&stale, b"left over").expect("write");
    let store = Store::open_with(&dir, manual()).expect("reopen");
    assert!(!stale.exists());
    let twin_dir = tmp.path().join("twin");
    drop(store);
    twin_without_delta_file(&dir, &twin_dir);
    let store = Store::open_with(&dir, manual()).expect("reopen");
    let twin = Store::open_with(&twin_dir, manual()).expect("twin");
    check(&store, &twin, &model, "after the fold");
}

/// Polls until `done` holds, for up to a minute (background work on a busy machine).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A store in `dir` under `config`, bulk-loaded with `n` items, and the generator that made
/// them, to write on with.
fn loaded(dir: &Path, config: Config, n: usize, seed: u64) -> (Store, rand::rngs::StdRng) {
    let store = Store::open_with(dir, config).expect("open");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let base: Vec<Item> = (0..n)
        .map(|i| item(&format!("i{i}"), &mut rng, 200))
        .collect();
    store.bulk_load_items(&base).expect("load");
    (store, rng)
}

#[test]
fn the_background_upkeep_saves_a_small_delta_and_folds_at_the_fold_point() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let config = manual().rebuild_threshold(Some(100)).fold_fraction(0.4);
    let (store, mut rng) = loaded(&dir, config, 1_000, 3);
    let generation = store.stats().generation;
    let file = delta_file(&dir, generation);
    let write = |from: usize, to: usize, rng: &mut rand::rngs::StdRng| {
        for i in from..to {
            store
                .upsert_item(&item(&format!("i{i}"), rng, 300))
                .expect("write");
        }
    };
    // 120 re-tags: past the threshold, far below 40% of 1,000 items: a save.
    write(0, 120, &mut rng);
    wait_for("the background save", || file.exists());
    let first = std::fs::metadata(&file).expect("file").len();
    // The next upkeeps are due at 220 records (100 past the save) and 330 (half as many
    // again as that save held): saves, below the fold point of 400.
    write(120, 399, &mut rng);
    wait_for("the later saves", || {
        std::fs::metadata(&file).is_ok_and(|m| m.len() > 2 * first)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(store.stats().generation, generation, "saved, never folded");
    // The 400th record reaches the fold point: a fold, between two thresholds.
    write(399, 400, &mut rng);
    wait_for("the background fold", || {
        store.stats().generation > generation
    });
    wait_for("the old delta file's removal", || !file.exists());
    assert!(store.stats().delta_records < 400);
}

/// The first file under `dir` that holds `needle`, if any.
fn any_file_holds(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    walk(dir)
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
}

#[test]
fn a_deleted_user_leaves_the_segment_files_through_the_background_work_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    // A save would do for a delta this small; a deletion must fold all the same.
    let config = manual().rebuild_threshold(Some(100)).fold_fraction(1.0);
    let (store, mut rng) = loaded(&dir, config, 500, 8);
    let user = |id: &str| User {
        id: id.into(),
        tags: vec![("t1".into(), 1.0)],
        recent_items: vec![],
    };
    let secret = "user-zq8secret";
    store.upsert_user(&user(secret)).expect("user");
    store.rebuild().expect("fold the user into the segment");
    // A user new since the fold, and a delta worth saving.
    let fresh = "user-zq8fresh";
    store.upsert_user(&user(fresh)).expect("user");
    for i in 0..150 {
        store
            .upsert_item(&item(&format!("i{i}"), &mut rng, 100))
            .expect("write");
    }
    let seg_dir = dir.join("segments");
    let generation = store.stats().generation;
    wait_for("the background save", || {
        delta_file(&dir, generation).exists()
    });
    assert!(any_file_holds(&seg_dir, fresh.as_bytes()).is_some());
    assert!(any_file_holds(&seg_dir, secret.as_bytes()).is_some());
    assert!(store.delete_user(secret).expect("delete"));
    assert!(store.delete_user(fresh).expect("delete"));
    wait_for("the fold a deletion starts", || {
        store.stats().generation > generation
    });
    wait_for("the old files' removal", || {
        any_file_holds(&seg_dir, secret.as_bytes()).is_none()
    });
    assert_eq!(any_file_holds(&seg_dir, fresh.as_bytes()), None);
    // The next save leaves them out too: a deleted record's name stays in memory only.
    store
        .upsert_item(&item("i1", &mut rng, 100))
        .expect("write");
    store.save_delta().expect("save");
    assert_eq!(any_file_holds(&seg_dir, secret.as_bytes()), None);
    assert_eq!(any_file_holds(&seg_dir, fresh.as_bytes()), None);
}

#[test]
fn closing_saves_a_delta_worth_indexing_and_never_a_tiny_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let config = Config::default()
        .rebuild_threshold(None)
        .delta_index_rows(50)
        .neighbours(0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let generation = {
        let store = Store::open_with(&dir, config.clone()).expect("open");
        let base: Vec<Item> = (0..400)
            .map(|i| item(&format!("i{i}"), &mut rng, 100))
            .collect();
        store.bulk_load_items(&base).expect("load");
        for i in 0..10 {
            store
                .upsert_item(&item(&format!("i{i}"), &mut rng, 100))
                .expect("write");
        }
        let g = store.stats().generation;
        store.close().expect("close");
        g
    };
    assert!(
        !delta_file(&dir, generation).exists(),
        "10 records: no file"
    );
    {
        let store = Store::open_with(&dir, config.clone()).expect("open");
        for i in 10..200 {
            store
                .upsert_item(&item(&format!("i{i}"), &mut rng, 100))
                .expect("write");
        }
        store.close().expect("close");
    }
    assert!(delta_file(&dir, generation).exists(), "200 records: saved");
    let store = Store::open_with(&dir, config).expect("open");
    let s = store.stats();
    assert_eq!(s.delta_records, 200);
    // Closing waited for the background index, which leaves fewer than 50 rows to scan.
    assert!(s.delta_runs >= 1 && s.delta_unindexed < 50, "{s:?}");
}

/// A footer for `payload` as the store writes it (FORMAT.md): magic, version, store and
/// schema hash copied from a real delta file's footer, length and checksums recomputed.
fn footer_for(real: &[u8], payload: &[u8]) -> Vec<u8> {
    let old = &real[real.len() - 48..];
    let mut f = old[..24].to_vec();
    f.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    f.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    let own = xxhash_rust::xxh3::xxh3_64(&f);
    f.extend_from_slice(&own.to_le_bytes());
    f
}

#[test]
fn a_crafted_file_with_a_matching_checksum_is_refused_not_obeyed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let (model, before) = build(&dir);
    let generation = before.generation;
    let path = delta_file(&dir, generation);
    let real = std::fs::read(&path).expect("read");
    let twin_dir = tmp.path().join("twin");
    twin_without_delta_file(&dir, &twin_dir);
    let twin = Store::open_with(&twin_dir, manual()).expect("twin");
    // bincode 2, standard configuration: 253 announces a u64 in the next eight bytes, 252 a
    // u32 in the next four; smaller values are one byte.
    let u64v = |v: u64| {
        let mut b = vec![253u8];
        b.extend_from_slice(&v.to_le_bytes());
        b
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // generation, seq, one item (id 0, write 5, Some) whose name claims 2^40 bytes.
    let mut huge_name = u64v(generation);
    huge_name.extend(u64v(1 << 40));
    huge_name.extend([1u8, 0, 5, 1]);
    huge_name.extend(u64v(1 << 40));
    cases.push(("a name of 2^40 bytes", huge_name));
    // generation, seq 5, a vector of 2^60 items.
    let mut huge_vec = u64v(generation);
    huge_vec.push(5);
    huge_vec.extend(u64v(1 << 60));
    cases.push(("a vector of 2^60 items", huge_vec));
    // generation, seq 200, one item with an id near u32::MAX, deleted (None), then empty
    // users, names and runs.
    let mut far_id = u64v(generation);
    far_id.extend([200u8, 1, 252]);
    far_id.extend(u32::MAX.to_le_bytes());
    far_id.extend([150u8, 0, 0, 0, 0, 0]);
    cases.push(("an item id past the counters", far_id));
    for (what, payload) in cases {
        let mut file = payload.clone();
        file.extend(footer_for(&real, &payload));
        std::fs::write(&path, &file).expect("write");
        let store = Store::open_with(&dir, manual())
            .unwrap_or_else(|e| panic!("{what}: the store must open: {e}"));
        check(&store, &twin, &model, what);
        assert_eq!(store.stats().delta_runs, 0, "{what}");
        assert!(!path.exists(), "{what}: the refused file is removed");
        drop(store);
    }
}

#[test]
fn a_sound_file_of_another_generation_or_of_later_writes_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let (model, before) = build(&dir);
    let generation = before.generation;
    let saved = std::fs::read(delta_file(&dir, generation)).expect("read");
    // A copy of the store as it is now (a backup taken by hand while it was closed)...
    let copy = tmp.path().join("copy");
    twin_without_delta_file(&dir, &copy);
    let twin_dir = tmp.path().join("twin");
    twin_without_delta_file(&dir, &twin_dir);
    let twin = Store::open_with(&twin_dir, manual()).expect("twin");
    // ...then the store goes on writing and saves a later delta of the same generation.
    let later = {
        let store = Store::open_with(&dir, manual()).expect("open");
        store
            .upsert_item(&Item {
                id: "later".into(),
                tags: vec![("t1".into(), 1.0)],
                ..Item::default()
            })
            .expect("write");
        assert!(store.save_delta().expect("save").written);
        std::fs::read(delta_file(&dir, generation)).expect("read")
    };
    // Put into the older copy, that file holds a write its sled never had.
    std::fs::write(delta_file(&copy, generation), &later).expect("write");
    let store = Store::open_with(&copy, manual()).expect("open the copy");
    assert!(store.get_item("later").is_none(), "a write sled never had");
    check(&store, &twin, &model, "a later file in an older copy");
    drop(store);

    // A sound file of the previous generation, under the next generation's name.
    let store = Store::open_with(&copy, manual()).expect("open");
    let next = store.rebuild().expect("fold").generation;
    drop(store);
    std::fs::write(delta_file(&copy, next), &saved).expect("write");
    let store = Store::open_with(&copy, manual()).expect("open");
    assert_eq!(store.stats().delta_records, 0, "{:?}", store.stats());
    assert!(!delta_file(&copy, next).exists());
    check(&store, &twin, &model, "an older generation's file");
}
