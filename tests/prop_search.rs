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
    /// Same tags, new category, price and stock: an attribute-only write.
    Restock(usize, usize, u8, u8),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        1 => (0usize..400, spec()).prop_map(|(i, s)| Change::Update(i, s)),
        1 => (0usize..400).prop_map(Change::Delete),
        1 => spec().prop_map(Change::Add),
        2 => (0usize..400, 0..CATEGORIES.len(), 0u8..100, 0u8..3)
            .prop_map(|(i, c, p, st)| Change::Restock(i, c, p, st)),
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
        more in prop::collection::vec(change(), 0..40),
        per_item in prop::sample::select(vec![0usize, 2, 5, 40]),
        index_rows in prop::sample::select(vec![0usize, 1, 3, 16]),
        index_between in any::<bool>(),
        index_after in any::<bool>(),
        queries in prop::collection::vec(query(320), 12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default()
            .neighbours(per_item)
            .rebuild_threshold(None)
            .delta_index_rows(index_rows);
        let store = Store::open_with(dir.path(), config).unwrap();
        let items: Vec<Item> = base.iter().enumerate().map(|(i, s)| item(i, s)).collect();
        store.upsert_items(&items).unwrap();
        store.rebuild().unwrap();
        let mut model = Model::new(&base);
        // Re-tagged records land in the delta's index (runs, merged as they grow) in the
        // background and when asked, and the writes after a flush make some run slots stale.
        apply(&store, &mut model, &changes);
        if index_between {
            store.index_delta().unwrap();
        }
        apply(&store, &mut model, &more);
        if index_after {
            store.index_delta().unwrap();
        }
        for q in &queries {
            same_answer(&store, q)?;
            same_as_model(&store, &model, q)?;
        }
    }
}

/// The catalogue as the test wrote it: specs by item number (`None` = deleted), and every
/// tag ever written (the store ignores query tags it has never seen).
struct Model {
    items: Vec<Option<Spec>>,
    known: std::collections::BTreeSet<usize>,
}

impl Model {
    fn new(base: &[Spec]) -> Model {
        Model {
            items: base.iter().cloned().map(Some).collect(),
            known: base
                .iter()
                .flat_map(|s| s.tags.iter().map(|p| p.0))
                .collect(),
        }
    }
}

/// Apply `changes` to the store and to `model`.
fn apply(store: &Store, m: &mut Model, changes: &[Change]) {
    for c in changes {
        if let Change::Update(_, s) | Change::Add(s) = c {
            m.known.extend(s.tags.iter().map(|p| p.0));
        }
        let model = &mut m.items;
        let next = model.len();
        match c {
            Change::Update(i, s) => {
                store.upsert_item(&item(i % next, s)).unwrap();
                model[i % next] = Some(s.clone());
            }
            Change::Delete(i) => {
                store.delete_item(&format!("i{}", i % next)).unwrap();
                model[i % next] = None;
            }
            Change::Add(s) => {
                store.upsert_item(&item(next, s)).unwrap();
                model.push(Some(s.clone()));
            }
            Change::Restock(i, category, price, stock) => {
                if let Some(s) = &mut model[i % next] {
                    s.category = *category;
                    s.price = *price;
                    s.stock = *stock;
                    store.upsert_item(&item(i % next, s)).unwrap();
                }
            }
        }
    }
}

/// Does the model's item `s` (number `id`) pass `f`? Written from `Filter`'s documentation,
/// sharing no code with the store.
fn model_allows(f: &Filter, id: usize, s: &Spec) -> bool {
    let cat = CATEGORIES[s.category];
    let under = |rule: &String| cat == rule || cat.starts_with(&format!("{rule}/"));
    let has = |t: &String| s.tags.iter().any(|&(x, _)| format!("t{x}") == *t);
    (f.categories.is_empty() || f.categories.iter().any(under))
        && !f.exclude_categories.iter().any(under)
        && f.min_price.is_none_or(|p| f32::from(s.price) >= p)
        && f.max_price.is_none_or(|p| f32::from(s.price) <= p)
        && (!f.in_stock || s.stock > 0)
        && f.must_tags.iter().all(has)
        && !f.must_not_tags.iter().any(has)
        && !f.exclude_items.contains(&format!("i{id}"))
}

/// Cosine in f64 between a query vector and a spec's tags.
fn model_cosine(q: &std::collections::BTreeMap<usize, f64>, s: &Spec) -> f64 {
    let dot: f64 = s
        .tags
        .iter()
        .map(|&(t, w)| q.get(&t).copied().unwrap_or(0.0) * f64::from(w))
        .sum();
    let qn = q.values().map(|w| w * w).sum::<f64>().sqrt();
    let sn = s
        .tags
        .iter()
        .map(|&(_, w)| f64::from(w) * f64::from(w))
        .sum::<f64>()
        .sqrt();
    if qn == 0.0 || sn == 0.0 {
        0.0
    } else {
        dot / (qn * sn)
    }
}

/// The store's answer to a cosine query (no weighting) against a naive f64 model of the
/// catalogue: every result is allowed and scored as the model scores it, nothing left out
/// scores above the last result, and the count is right. A bug shared by every path of the
/// store (the filter over attribute-only writes, say) cannot hide from this oracle.
fn same_as_model(store: &Store, m: &Model, q: &Query) -> Result<(), TestCaseError> {
    let model = &m.items;
    let mut q = q
        .clone()
        .similarity(Similarity::Cosine)
        .weighting(Weighting::None);
    let (vector, own): (std::collections::BTreeMap<usize, f64>, Option<usize>) = match &q.target {
        recostore::Target::Item(name) => {
            let n: usize = name.trim_start_matches('i').parse().unwrap();
            match model.get(n).and_then(|s| s.as_ref()) {
                Some(s) => (
                    s.tags.iter().map(|&(t, w)| (t, f64::from(w))).collect(),
                    Some(n),
                ),
                None => {
                    let gone = matches!(store.query(&q), Err(Error::NotFound { .. }));
                    prop_assert!(gone, "a deleted item is not found: {:?}", q);
                    return Ok(());
                }
            }
        }
        recostore::Target::Profile(tags) => {
            let mut v = std::collections::BTreeMap::new();
            for (name, w) in tags {
                let t: usize = name.trim_start_matches('t').parse().unwrap();
                // Tags no item ever carried are unknown to the store and ignored.
                if m.known.contains(&t) && *w > 0.0 {
                    *v.entry(t).or_insert(0.0) += f64::from(*w);
                }
            }
            (v, None)
        }
    };
    let mut want: Vec<(f64, usize)> = model
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((i, s.as_ref()?)))
        .filter(|&(i, s)| Some(i) != own && model_allows(&q.filter, i, s))
        .map(|(i, s)| (model_cosine(&vector, s), i))
        .filter(|&(score, _)| score > 1e-9)
        .collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0));
    for method in [Method::Auto, Method::Pruned] {
        q = q.method(method);
        let got = store.query(&q).unwrap();
        prop_assert_eq!(got.len(), want.len().min(q.k), "{:?} {:?}", method, q);
        let score_of = |id: &str| {
            let n: usize = id.trim_start_matches('i').parse().unwrap();
            want.iter().find(|w| w.1 == n).map(|w| w.0)
        };
        for r in &got {
            let m = score_of(&r.id);
            prop_assert!(
                m.is_some_and(|m| (m - f64::from(r.score)).abs() < 1e-5),
                "{} scored {} but the model says {:?}: {:?}",
                r.id,
                r.score,
                m,
                q
            );
        }
        if let Some(last) = got.last() {
            let returned: std::collections::HashSet<&str> =
                got.iter().map(|r| r.id.as_str()).collect();
            for &(m, i) in &want {
                let name = format!("i{i}");
                prop_assert!(
                    returned.contains(name.as_str()) || m <= f64::from(last.score) + 1e-5,
                    "i{} scores {} in the model, above the last result {}: {:?}",
                    i,
                    m,
                    last.score,
                    q
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A store where most writes since the rebuild are stock, price and category changes
    /// (attribute-only: the segment's index keeps finding those items), checked against the
    /// exhaustive path and the model.
    #[test]
    fn attribute_updates_equal_the_oracle(
        base in prop::collection::vec(spec(), 1..300),
        restocks in prop::collection::vec(
            (0usize..400, 0..CATEGORIES.len(), 0u8..100, 0u8..3), 0..120),
        changes in prop::collection::vec(change(), 0..10),
        per_item in prop::sample::select(vec![0usize, 40]),
        queries in prop::collection::vec(query(320), 12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default().neighbours(per_item).rebuild_threshold(None);
        let store = Store::open_with(dir.path(), config).unwrap();
        let items: Vec<Item> = base.iter().enumerate().map(|(i, s)| item(i, s)).collect();
        store.upsert_items(&items).unwrap();
        store.rebuild().unwrap();
        let mut model = Model::new(&base);
        let restocks: Vec<Change> = restocks
            .into_iter()
            .map(|(i, c, p, st)| Change::Restock(i, c, p, st))
            .collect();
        apply(&store, &mut model, &restocks);
        let retagged_before = store.stats().delta_records;
        prop_assert_eq!(retagged_before, 0, "attribute-only writes re-index nothing");
        apply(&store, &mut model, &changes);
        for q in &queries {
            same_answer(&store, q)?;
            same_as_model(&store, &model, q)?;
        }
        // Folding the overlay changes no answer.
        store.rebuild().unwrap();
        prop_assert_eq!(store.stats().attribute_overlay, 0);
        for q in &queries {
            same_as_model(&store, &model, q)?;
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
        retags in prop::collection::vec(0usize..4000, 0..600),
        queries in prop::collection::vec(query(1500), 16),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default()
            .neighbours(0)
            .rebuild_threshold(None)
            .delta_index_rows(0);
        let store = Store::open_with(dir.path(), config).unwrap();
        let mut items = dense_store(n, seed);
        store.upsert_items(&items).unwrap();
        store.rebuild().unwrap();
        for d in deletes {
            store.delete_item(&format!("i{}", d % n)).unwrap();
        }
        // Re-tag a few hundred items in two flushes of the delta's index (big enough for the
        // runs to have dense columns of their own), then some more left unindexed.
        for (round, chunk) in retags.chunks(retags.len().div_ceil(3).max(1)).enumerate() {
            for &r in chunk {
                let it = &mut items[r % n];
                if let Some(t) = it.tags.first_mut() {
                    t.1 = (t.1 * 0.5).max(0.05);
                } else {
                    it.tags.push(("t0".to_string(), 1.0));
                }
                store.upsert_item(it).unwrap();
            }
            if round < 2 {
                store.index_delta().unwrap();
            }
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
