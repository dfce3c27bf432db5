//! Property tests: every fast query path returns exactly the brute-force oracle's top-k.
//!
//! Random stores (ties, empty tag sets, records updated and deleted after the last rebuild so
//! they live in the delta, items new since the rebuild) are queried with random targets,
//! similarities, weightings, filters and `k`. `Method::Auto` (neighbour lists, direct scoring,
//! pruned engine) and `Method::Pruned` on one and two threads must equal
//! `Method::Exhaustive` id for id and score for score, including the tie order.

use proptest::prelude::*;
use recostore::{
    Config, Error, Filter, Item, Method, Query, Recommendation, Similarity, Store, Weighting,
};

const TAGS: usize = 24;
const CATEGORIES: [&str; 6] = ["a", "a/x", "a/y", "b", "b/z", ""];

#[derive(Debug, Clone)]
struct Spec {
    tags: Vec<(usize, f32)>,
    category: usize,
    price: u8,
    stock: u8,
}

fn weight() -> impl Strategy<Value = f32> {
    // Mostly a few round values, so equal scores (ties) are common.
    prop_oneof![
        4 => prop::sample::select(vec![0.5f32, 1.0, 2.0]),
        1 => 0.01f32..5.0,
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::btree_map(0..TAGS, weight(), 0..7),
        0..CATEGORIES.len(),
        0u8..100,
        0u8..3,
    )
        .prop_map(|(tags, category, price, stock)| Spec {
            tags: tags.into_iter().collect(),
            category,
            price,
            stock,
        })
}

fn item(id: usize, s: &Spec) -> Item {
    Item::new(
        format!("i{id}"),
        s.tags.iter().map(|&(t, w)| (format!("t{t}"), w)),
    )
    .category(CATEGORIES[s.category])
    .price(f32::from(s.price))
    .stock(u32::from(s.stock))
}

#[derive(Debug, Clone)]
enum Change {
    Update(usize, Spec),
    Delete(usize),
    Add(Spec),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0usize..400, spec()).prop_map(|(i, s)| Change::Update(i, s)),
        (0usize..400).prop_map(Change::Delete),
        spec().prop_map(Change::Add),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    let cat = prop::sample::select(vec!["a", "a/x", "b", "b/z"]);
    (
        prop::option::weighted(0.25, prop::collection::vec(cat.clone(), 1..3)),
        prop::option::weighted(0.2, cat),
        prop::option::weighted(0.2, (0f32..60.0, 0f32..60.0)),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.25, 0..TAGS),
        prop::option::weighted(0.2, 0..TAGS),
        prop::collection::vec(0usize..400, 0..3),
    )
        .prop_map(|(inc, exc, price, in_stock, must, must_not, excl)| {
            let mut f = Filter::new();
            for c in inc.unwrap_or_default() {
                f = f.category(c);
            }
            if let Some(c) = exc {
                f = f.exclude_category(c);
            }
            if let Some((a, b)) = price {
                f = f.price(a.min(b), a.max(b) + 20.0);
            }
            if in_stock {
                f = f.in_stock();
            }
            if let Some(t) = must {
                f = f.must_have(format!("t{t}"));
            }
            if let Some(t) = must_not {
                f = f.must_not_have(format!("t{t}"));
            }
            for i in excl {
                f = f.exclude(format!("i{i}"));
            }
            f
        })
}

fn query(n_items: usize) -> impl Strategy<Value = Query> {
    let target = prop_oneof![
        (0..n_items.max(1)).prop_map(|i| Query::similar_to(format!("i{i}"))),
        prop::collection::vec((0..TAGS + 2, weight()), 0..6)
            .prop_map(|tags| Query::profile(tags.into_iter().map(|(t, w)| (format!("t{t}"), w)))),
    ];
    (
        target,
        1usize..16,
        prop::sample::select(vec![
            Similarity::Cosine,
            Similarity::Dot,
            Similarity::Jaccard,
        ]),
        prop::sample::select(vec![Weighting::None, Weighting::Idf]),
        prop::option::weighted(0.6, filter()),
    )
        .prop_map(|(q, k, sim, w, f)| {
            let mut q = q.k(k).similarity(sim).weighting(w);
            if let Some(f) = f {
                q = q.filter(f);
            }
            q
        })
}

fn key(r: &[Recommendation]) -> Vec<(String, u32)> {
    r.iter()
        .map(|r| (r.id.clone(), r.score.to_bits()))
        .collect()
}

fn same_answer(store: &Store, q: &Query) -> Result<(), TestCaseError> {
    let oracle = store.query(&q.clone().method(Method::Exhaustive));
    for (method, threads) in [(Method::Auto, 1), (Method::Pruned, 1), (Method::Pruned, 2)] {
        let got = store.query_with_stats(&q.clone().method(method).threads(threads));
        match (&oracle, got) {
            (Ok(want), Ok((got, stats))) => prop_assert_eq!(
                key(want),
                key(&got),
                "{:?} threads={} path={:?} query={:?}",
                method,
                threads,
                stats.path,
                q
            ),
            (Err(Error::NotFound { .. }), Err(Error::NotFound { .. })) => {}
            (want, got) => prop_assert!(false, "oracle {want:?}, {method:?} gave {got:?}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fast_paths_equal_the_oracle(
        base in prop::collection::vec(spec(), 1..300),
        changes in prop::collection::vec(change(), 0..40),
        per_item in prop::sample::select(vec![0usize, 2, 5, 40]),
        queries in prop::collection::vec(query(320), 12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default().neighbours(per_item).rebuild_threshold(None);
        let store = Store::open_with(dir.path(), config).unwrap();
        let items: Vec<Item> = base.iter().enumerate().map(|(i, s)| item(i, s)).collect();
        store.upsert_items(&items).unwrap();
        store.rebuild().unwrap();
        let mut next = base.len();
        for c in &changes {
            match c {
                Change::Update(i, s) => store.upsert_item(&item(i % next, s)).unwrap(),
                Change::Delete(i) => {
                    store.delete_item(&format!("i{}", i % next)).unwrap();
                }
                Change::Add(s) => {
                    store.upsert_item(&item(next, s)).unwrap();
                    next += 1;
                }
            }
        }
        for q in &queries {
            same_answer(&store, q)?;
        }
    }
}

#[test]
fn auto_uses_each_fast_path_where_it_applies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let items: Vec<Item> = (0..2000)
        .map(|i| {
            Item::new(
                format!("i{i}"),
                [
                    (format!("g{}", i % 50), 1.0),
                    (format!("h{}", i % 7), 0.5),
                    ("all".to_string(), 0.1),
                ],
            )
            .category(if i % 100 == 0 { "rare" } else { "common" })
        })
        .collect();
    store.upsert_items(&items).unwrap();
    store.rebuild().unwrap();

    let (recs, stats) = store
        .query_with_stats(&Query::similar_to("i3").k(10))
        .unwrap();
    assert_eq!(stats.path, recostore::SearchPath::Neighbours);
    assert_eq!(recs.len(), 10);
    assert!(recs.iter().all(|r| r.id != "i3"));

    let rare = Query::similar_to("i3").filter(Filter::new().category("rare"));
    let (recs, stats) = store.query_with_stats(&rare).unwrap();
    assert_eq!(stats.path, recostore::SearchPath::Direct);
    assert_eq!(recs.len(), 10, "a selective filter still yields k results");
    assert!(recs
        .iter()
        .all(|r| r.id.trim_start_matches('i').parse::<u32>().unwrap() % 100 == 0));

    let profile = Query::profile([("g3", 1.0), ("h2", 1.0)]).k(5);
    let (recs, stats) = store.query_with_stats(&profile).unwrap();
    assert_eq!(stats.path, recostore::SearchPath::Pruned);
    assert_eq!(
        recs[0].matched.len(),
        2,
        "the best match shares both tags: {recs:?}"
    );
}

/// A catalogue where a few tags are on most items, as in a real shop (or a Zipf vocabulary):
/// their lists cover whole id windows, so the pruned engine sweeps those windows densely and
/// leaves long lists non-essential, which the small stores above rarely do.
fn dense_store(n: usize, seed: u64) -> Vec<Item> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut tags: Vec<(String, f32)> = Vec::new();
            for t in 0..DENSE_TAGS {
                // Tag t is on about 1/(t+1) of the items.
                if rng.gen_range(0..=t) == 0 {
                    let w = if rng.gen_bool(0.3) {
                        1.0
                    } else {
                        rng.gen_range(0.05f32..1.0)
                    };
                    tags.push((format!("t{t}"), w));
                }
            }
            Item::new(format!("i{i}"), tags)
                .category(CATEGORIES[i % CATEGORIES.len()])
                .price((i % 100) as f32)
                .stock((i % 3) as u32)
        })
        .collect()
}

const DENSE_TAGS: usize = 40;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn dense_windows_equal_the_oracle(
        n in 1500usize..4000,
        seed in any::<u64>(),
        deletes in prop::collection::vec(0usize..4000, 0..20),
        queries in prop::collection::vec(query(1500), 16),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default().neighbours(0).rebuild_threshold(None);
        let store = Store::open_with(dir.path(), config).unwrap();
        store.upsert_items(&dense_store(n, seed)).unwrap();
        store.rebuild().unwrap();
        for d in deletes {
            store.delete_item(&format!("i{}", d % n)).unwrap();
        }
        for q in &queries {
            same_answer(&store, q)?;
        }
        let popular = Query::profile([("t0", 1.0), ("t1", 0.5), ("t2", 0.8), ("t30", 1.0)]);
        same_answer(&store, &popular)?;
        for sim in [Similarity::Cosine, Similarity::Dot, Similarity::Jaccard] {
            same_answer(&store, &Query::similar_to("i7").k(10).similarity(sim))?;
        }
    }
}

#[test]
fn popular_tags_make_dense_windows_and_rare_ones_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().neighbours(0).rebuild_threshold(None);
    let store = Store::open_with(dir.path(), config).unwrap();
    store.upsert_items(&dense_store(4000, 1)).unwrap();
    store.rebuild().unwrap();
    let pruned = |q: Query| {
        let (recs, stats) = store
            .query_with_stats(&q.k(10).method(Method::Pruned))
            .unwrap();
        assert_eq!(recs.len(), 10);
        stats
    };
    let dense = pruned(Query::profile([("t0", 1.0), ("t1", 1.0), ("t39", 0.2)]));
    assert!(dense.windows_swept > 0, "{dense:?}");
    // t0 and t1 are on most items, so they are summed from their dense columns.
    assert!(dense.column_slots > 0, "{dense:?}");
    let sparse = pruned(Query::profile([("t30", 1.0), ("t35", 1.0), ("t39", 1.0)]));
    assert_eq!(sparse.windows_swept, 0, "{sparse:?}");
    assert_eq!(sparse.column_slots, 0, "{sparse:?}");
}
