//! Property test: random event streams (purchases, views and clicks in explicit sessions, in
//! batches, with users deleted and the store reopened in between) leave "bought together" and
//! "viewed together" answers whose every count equals a brute-force count over a model of the
//! baskets, and whose order is the brute-force order under the documented measure.
//!
//! The model shares no code with the store: a basket is (user, session, relation) for a user
//! still alive, a purchase joins the session's basket, any other interest event its viewed
//! session, and an item counts once per basket.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use recostore::{Ask, Scenario};
use recostore::{Config, Event, Item, Reason, Store};

const ITEMS: usize = 7;
const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// User, item, kind (0 purchase, 1 view, 2 click), whether to start a new session.
    Event(usize, usize, u8, bool),
    /// Record what is pending as one batch.
    Flush,
    Delete(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..USERS, 0..ITEMS, 0u8..3, prop::bool::weighted(0.3))
            .prop_map(|(u, i, k, new)| Op::Event(u, i, k, new)),
        3 => Just(Op::Flush),
        1 => (0..USERS).prop_map(Op::Delete),
        1 => Just(Op::Reopen),
    ]
}

/// Basket (user, generation, session, purchase?) → items.
type Model = BTreeMap<(usize, u32, u32, bool), BTreeSet<usize>>;

fn name(i: usize) -> String {
    format!("item-{i}")
}

fn open(dir: &std::path::Path) -> Store {
    // Checkpoint every few events, so reopening exercises both the stored chunks and the
    // journal replay.
    Store::open_with(dir, Config::default().checkpoint_events(5)).expect("open")
}

/// The documented measure in f64: cosine times `s / (s + 2)`.
fn measure(s: f64, na: f64, nb: f64) -> f64 {
    s / (na * nb).sqrt() * s / (s + 2.0)
}

fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    for purchase in [true, false] {
        let baskets: Vec<&BTreeSet<usize>> = model
            .iter()
            .filter(|(k, b)| k.3 == purchase && !b.is_empty())
            .map(|(_, b)| b)
            .collect();
        let n = |i: usize| baskets.iter().filter(|b| b.contains(&i)).count() as f64;
        for a in 0..ITEMS {
            let scenario = if purchase {
                Scenario::Together { item: name(a) }
            } else {
                Scenario::Viewed { item: name(a) }
            };
            let recs = store.recommend(&Ask::new(scenario).k(50)).expect("query");
            let mut want: BTreeMap<String, u32> = BTreeMap::new();
            for b in &baskets {
                if b.contains(&a) {
                    for &j in b.iter().filter(|&&j| j != a) {
                        *want.entry(name(j)).or_default() += 1;
                    }
                }
            }
            let got: BTreeSet<&str> = recs.iter().map(|r| r.id.as_str()).collect();
            let partners: BTreeSet<&str> = want.keys().map(String::as_str).collect();
            prop_assert_eq!(&got, &partners, "partners of {} (purchase {})", a, purchase);
            let mut last: Option<(f64, &str)> = None;
            for r in &recs {
                let (support, exact, confidence, lift) = match &r.reasons[0] {
                    Reason::BoughtTogether {
                        support,
                        exact,
                        confidence,
                        lift,
                        newest: None,
                        ..
                    }
                    | Reason::ViewedTogether {
                        support,
                        exact,
                        confidence,
                        lift,
                        newest: None,
                        ..
                    } => (*support, *exact, *confidence, *lift),
                    other => return Err(TestCaseError::fail(format!("reason {other:?}"))),
                };
                let s = want[&r.id];
                prop_assert_eq!(support, s, "support {} -> {}", a, &r.id);
                prop_assert!(exact);
                let b: usize = r.id["item-".len()..].parse().unwrap();
                let (na, nb, total) = (n(a), n(b), baskets.len() as f64);
                prop_assert!((f64::from(confidence) - f64::from(s) / na).abs() < 1e-5);
                let want_lift = f64::from(s) * total / (na * nb);
                prop_assert!((f64::from(lift) - want_lift).abs() < 1e-4 * want_lift.max(1.0));
                // Best first under the measure; ties in creation (name) order.
                let m = measure(f64::from(s), na, nb);
                if let Some((prev, prev_id)) = last {
                    prop_assert!(
                        prev > m - 1e-6 && (prev - m > 1e-6 || prev_id < r.id.as_str()),
                        "order of {}: {} ({}) before {} ({})",
                        a,
                        prev_id,
                        prev,
                        r.id,
                        m
                    );
                }
                last = Some((m, r.id.as_str()));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn together_and_viewed_match_brute_force(ops in prop::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let items: Vec<Item> = (0..ITEMS).map(|i| Item::new(name(i), [("kind:thing", 1.0)])).collect();
        store.upsert_items(&items).unwrap();
        let mut model = Model::new();
        let mut session = [0u32; USERS];
        let mut generation = [0u32; USERS];
        let mut pending: Vec<Event> = Vec::new();
        let mut ts = 1_000_000u64;
        for op in ops {
            match op {
                Op::Event(u, i, kind, new) => {
                    if new {
                        session[u] += 1;
                    }
                    ts += 1;
                    let user = format!("user-{u}");
                    let s = format!("s{}", session[u]);
                    let e = match kind {
                        0 => Event::purchase(&user, name(i), 1, 2.0, ts),
                        1 => Event::view(&user, name(i), ts),
                        _ => Event::click(&user, name(i), ts),
                    };
                    pending.push(e.session(&s));
                    model.entry((u, generation[u], session[u], kind == 0)).or_default().insert(i);
                }
                Op::Flush => {
                    store.record_events(&pending).unwrap();
                    pending.clear();
                }
                Op::Delete(u) => {
                    store.record_events(&pending).unwrap();
                    pending.clear();
                    store.delete_user(&format!("user-{u}")).unwrap();
                    model.retain(|k, _| k.0 != u);
                    generation[u] += 1;
                    // A new user of the same name starts without open sessions.
                    session[u] += 1;
                }
                Op::Reopen => {
                    store.record_events(&pending).unwrap();
                    pending.clear();
                    drop(store);
                    store = open(dir.path());
                }
            }
        }
        store.record_events(&pending).unwrap();
        check(&store, &model)?;
        let lines = |p: bool| model.iter().filter(|(k, _)| k.3 == p).map(|(_, b)| b.len() as u64).sum::<u64>();
        prop_assert_eq!(store.stats().bought_lines, lines(true));
        prop_assert_eq!(store.stats().viewed_lines, lines(false));
        drop(store);
        // Everything above survives a reopen.
        check(&open(dir.path()), &model)?;
    }
}
