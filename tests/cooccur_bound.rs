//! The memory bound of the basket indexes (`Config::cooccurrence_lines`): pushed past it, the
//! oldest baskets are dropped 256 at a time, and every figure that may have lost baskets is
//! reported as a lower bound, in the reason and in its text, while items whose baskets are all
//! kept stay exact. Checked before and after a reopen.

use recostore::{Ask, Scenario};
use recostore::{Config, Event, Item, Reason, Store};

const BASKETS: u64 = 700;

fn open(dir: &std::path::Path) -> Store {
    Store::open_with(dir, Config::default().cooccurrence_lines(1_000)).unwrap()
}

/// Basket n holds `hot`, `p{n % 10}`, and `late` from basket 600 on.
fn fill(store: &Store) {
    let mut items: Vec<Item> = (0..10)
        .map(|i| Item::new(format!("p{i}"), [("kind:p", 1.0)]))
        .collect();
    items.push(Item::new("hot", [("kind:hot", 1.0)]));
    items.push(Item::new("late", [("kind:late", 1.0)]));
    store.upsert_items(&items).unwrap();
    let mut events = Vec::new();
    for n in 0..BASKETS {
        let (u, o) = (format!("u{}", n % 50), format!("o{n}"));
        events.push(Event::purchase(&u, "hot", 1, 1.0, 1_000 + n).session(&o));
        events.push(Event::purchase(&u, format!("p{}", n % 10), 1, 1.0, 1_000 + n).session(&o));
        if n >= 600 {
            events.push(Event::purchase(&u, "late", 1, 1.0, 1_000 + n).session(&o));
        }
    }
    for chunk in events.chunks(97) {
        store.record_events(chunk).unwrap();
    }
}

fn support(r: &Reason) -> (u32, bool) {
    match r {
        Reason::BoughtTogether { support, exact, .. } => (*support, *exact),
        other => panic!("{other:?}"),
    }
}

fn check(store: &Store) {
    let stats = store.stats();
    // 700 baskets of 2 lines + 100 more: 1,500 lines; the oldest chunk (256 baskets, 512
    // lines) goes, leaving 988.
    assert_eq!(stats.bought_lines, 1_500 - 512, "{stats:?}");
    let ask = |item: &str| {
        store
            .recommend(&Ask::new(Scenario::Together { item: item.into() }).k(20))
            .unwrap()
    };
    // `hot` lost 256 of its 700 baskets: its figures are bounds, and never above the truth.
    let hot = ask("hot");
    for r in &hot {
        let (s, exact) = support(&r.reasons[0]);
        assert!(!exact, "{r:?}");
        let truth = if r.id == "late" { 100 } else { 70 };
        assert!(s <= truth && s > 0, "{r:?}");
        assert!(
            r.reasons[0].to_string().contains(&format!("at least {s}×")),
            "{}",
            r.reasons[0]
        );
    }
    let late = hot
        .iter()
        .find(|r| r.id == "late")
        .expect("late goes with hot");
    assert_eq!(support(&late.reasons[0]), (100, false));
    // `late` only appears in kept baskets: its figures are exact.
    let from_late = ask("late");
    assert_eq!(from_late[0].id, "hot");
    assert_eq!(support(&from_late[0].reasons[0]), (100, true));
    assert!(from_late[0].reasons[0]
        .to_string()
        .starts_with("bought with late (100×"));
}

#[test]
fn past_the_bound_figures_are_labelled_lower_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    fill(&store);
    check(&store);
    drop(store);
    check(&open(dir.path()));
}

/// A crawler's session: one user viewing 20,000 distinct items, each twice, in one session.
/// Every line is counted once, and any item's viewed-together partners are all the others.
/// (A basket scanned for duplicates made this quadratic; the posting list answers instead.)
#[test]
fn a_session_of_twenty_thousand_items_is_counted_once_each() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let items: Vec<Item> = (0..N)
        .map(|i| Item::new(format!("i{i}"), [("kind:x", 1.0)]))
        .collect();
    for chunk in items.chunks(5_000) {
        store.upsert_items(chunk).unwrap();
    }
    let events: Vec<Event> = (0..2 * N)
        .map(|n| Event::view("crawler", format!("i{}", n % N), 1_000 + n as u64).session("one"))
        .collect();
    for chunk in events.chunks(10_000) {
        store.record_events(chunk).unwrap();
    }
    assert_eq!(store.stats().viewed_lines, N as u64);
    let recs = store
        .recommend(&Ask::new(Scenario::Viewed { item: "i7".into() }).k(10_000))
        .unwrap();
    assert_eq!(
        recs.len(),
        10_000,
        "all 19,999 others are partners; k is the query limit"
    );
    assert!(recs.iter().all(|r| matches!(
        r.reasons[0],
        Reason::ViewedTogether {
            support: 1,
            exact: true,
            ..
        }
    )));
}
