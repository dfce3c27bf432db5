//! Stable pages and page views. The oracle of a paged ask is the same ask unpaged, `page_depth`
//! long, asked of the same view; of a page view, this file's own set of what its modules
//! showed.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use recostore::{Ask, Config, Error, Event, Item, Scenario, Store};

fn shop(dir: &std::path::Path, cfg: Config, n: usize) -> Store {
    let store = Store::open_with(dir, cfg).unwrap();
    let items: Vec<Item> = (0..n)
        .map(|i| {
            Item::new(
                format!("i{i:03}"),
                [(format!("t{}", i % 5), 1.0), (format!("u{}", i % 3), 0.5)],
            )
        })
        .collect();
    store.upsert_items(&items).unwrap();
    let mut events = Vec::new();
    for u in 0..30usize {
        for j in 0..6usize {
            let item = format!("i{:03}", (u * 7 + j * 13) % n);
            events.push(
                Event::purchase(format!("user{u}"), item, 1, 2.0, 1_000 + u as u64)
                    .session(format!("order{u}")),
            );
        }
    }
    store.record_events(&events).unwrap();
    store
}

fn ids(recs: &[recostore::Recommendation]) -> Vec<String> {
    recs.iter().map(|r| r.id.clone()).collect()
}

/// Page `ask` to the end with page sizes drawn from `sizes` (cycled), each page asked of a
/// fresh view of `store`. Returns the pages.
fn page_through(store: &Store, ask: &Ask, sizes: &[usize]) -> Vec<Vec<String>> {
    let first = store.serve(&ask.clone().paged()).unwrap();
    let mut pages = vec![ids(&first.items)];
    let mut next = first.next_cursor;
    let mut i = 1;
    while let Some(c) = next {
        let k = sizes[i % sizes.len()];
        let p = store.serve(&ask.clone().k(k).cursor(c)).unwrap();
        assert!(
            !p.items.is_empty() || k == 0,
            "a cursor is given only when more remain"
        );
        pages.push(ids(&p.items));
        next = p.next_cursor;
        i += 1;
        assert!(i < 1_000, "pages end");
    }
    pages
}

fn scenarios() -> Vec<Ask> {
    vec![
        Ask::new(Scenario::Trending),
        Ask::new(Scenario::ForUser).user("user3"),
        Ask::new(Scenario::Together {
            item: "i007".into(),
        }),
        Ask::new(Scenario::Similar {
            item: "i001".into(),
        }),
        Ask::new(Scenario::Cart {
            items: vec!["i020".into()],
        })
        .user("user5"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Pages laid end to end are the one long answer, for any page sizes.
    #[test]
    fn concatenated_pages_equal_the_long_list(
        sizes in proptest::collection::vec(1usize..9, 1..5),
        depth in 5usize..40,
        which in 0usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = shop(dir.path(), Config::default().page_depth(depth), 60);
        let ask = scenarios()[which].clone().k(sizes[0]);
        let long = ids(&store.recommend(&ask.clone().k(depth.max(sizes[0]))).unwrap());
        let pages = page_through(&store, &ask, &sizes);
        prop_assert_eq!(pages.concat(), long);
    }
}

/// Writes land between pages (new items that would rank first, stock and tag changes,
/// purchases that move "bought together"): the pages still lay end to end into the list
/// the first page was cut from, asked of the same view, with no item twice.
#[test]
fn pages_stay_disjoint_and_whole_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 80);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("new{n}");
                store
                    .upsert_items(&[Item::new(id.as_str(), [("t0", 5.0), ("u0", 5.0)])])
                    .unwrap();
                let mut evs = Vec::new();
                for v in 0..20 {
                    evs.push(Event::view(format!("w{v}"), id.as_str(), 2_000 + n));
                    evs.push(
                        Event::purchase(format!("w{v}"), "i007", 1, 1.0, 2_000 + n)
                            .session(format!("o{n}-{v}")),
                    );
                    evs.push(
                        Event::purchase(format!("w{v}"), id.as_str(), 1, 1.0, 2_000 + n)
                            .session(format!("o{n}-{v}")),
                    );
                }
                store.record_events(&evs).unwrap();
                n += 1;
            }
        });
        // Stops the writer however the reader ends: a failed assertion must fail the test,
        // not leave the scope waiting for a writer that never stops.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        for round in 0..20 {
            for ask in [
                Ask::new(Scenario::Trending).k(7),
                Ask::new(Scenario::Together {
                    item: "i007".into(),
                })
                .k(7),
                Ask::new(Scenario::Similar {
                    item: "i000".into(),
                })
                .k(7),
            ] {
                let view = store.view();
                let long = ids(&view.recommend(&ask.clone().k(100)).unwrap());
                let first = view.serve(&ask.clone().paged()).unwrap();
                let mut pages = ids(&first.items);
                let mut next = first.next_cursor;
                while let Some(c) = next {
                    std::thread::sleep(Duration::from_millis(1));
                    let p = store.serve(&ask.clone().cursor(c)).unwrap();
                    pages.extend(ids(&p.items));
                    next = p.next_cursor;
                }
                let distinct: HashSet<&String> = pages.iter().collect();
                assert_eq!(distinct.len(), pages.len(), "round {round}: an item twice");
                assert_eq!(pages, long, "round {round}: {:?}", ask.scenario);
            }
        }
    });
}

/// The rows of one page view never share an item, even asked at once from several threads;
/// another view starts afresh.
#[test]
fn modules_of_one_page_view_never_repeat_an_item() {
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 60);
    for view in 0..10 {
        let id = format!("view-{view}");
        let rows: Vec<Vec<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = scenarios()
                .into_iter()
                .map(|ask| {
                    let (store, id) = (&store, id.clone());
                    s.spawn(move || ids(&store.recommend(&ask.k(6).page_view(id)).unwrap()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all: Vec<&String> = rows.iter().flatten().collect();
        let distinct: HashSet<&&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "view {view}: {rows:?}");
        assert_eq!(
            rows[0].len(),
            6,
            "trending has every item to draw from: {rows:?}"
        );
    }
    // Asked one after another, each row is the row asked without the view, less the rows
    // before it (this file's own exclusion list).
    let mut before: Vec<String> = Vec::new();
    for ask in scenarios() {
        let mut plain = ask.clone().k(5);
        plain.filter.exclude_items = before.clone();
        let want = ids(&store.recommend(&plain).unwrap());
        let got = ids(&store
            .recommend(&ask.clone().k(5).page_view("sequential"))
            .unwrap());
        assert_eq!(got, want, "{:?}", ask.scenario);
        before.extend(got);
    }
}

#[test]
fn bad_and_expired_cursors_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default().max_cursors(2), 40);
    let ask = Ask::new(Scenario::Trending).k(3);
    let refused = |a: &Ask, needle: &str| {
        let e = store.serve(a).unwrap_err();
        assert!(matches!(e, Error::InvalidQuery { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    };
    let c = store
        .serve(&ask.clone().paged())
        .unwrap()
        .next_cursor
        .unwrap();
    refused(&ask.clone().cursor("garbage"), "not a cursor");
    refused(
        &ask.clone().cursor(format!("{}{c}", "")).paged(),
        "not both",
    );
    refused(
        &Ask::new(Scenario::Trending)
            .user("someone")
            .cursor(c.clone()),
        "different ask",
    );
    refused(&ask.clone().cursor(c.clone()).page_view("v"), "page view");
    refused(&ask.clone().paged().page_view("v"), "page view");
    let none = store.serve(&ask.clone().k(0).paged()).unwrap();
    assert!(
        none.items.is_empty() && none.next_cursor.is_none(),
        "k = 0: no cursor to spin on"
    );
    refused(&ask.clone().page_view(""), "page_view must be");
    refused(
        &ask.clone().page_view("x".repeat(10_000)),
        "page_view must be",
    );
    // Two newer cursors push the first out of a table of two.
    store.serve(&ask.clone().paged()).unwrap();
    store.serve(&ask.clone().paged()).unwrap();
    refused(&ask.clone().cursor(c), "expired");
    assert_eq!(store.stats().cursors, 2);
    // A cursor outlives neither its time nor its process.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = shop(dir2.path(), Config::default().cursor_ttl_secs(1), 40);
    let c = store2
        .serve(&ask.clone().paged())
        .unwrap()
        .next_cursor
        .unwrap();
    assert!(store2.serve(&ask.clone().cursor(c.clone())).is_ok());
    std::thread::sleep(Duration::from_millis(1_100));
    let e = store2.serve(&ask.clone().cursor(c.clone())).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    let c = store2
        .serve(&ask.clone().paged())
        .unwrap()
        .next_cursor
        .unwrap();
    store2.close().unwrap();
    let store2 = Store::open_with(dir2.path(), Config::default()).unwrap();
    let e = store2.serve(&ask.clone().cursor(c)).unwrap_err();
    assert!(e.to_string().contains("restart"), "{e}");
    // Paged, and small enough for one page: no cursor.
    let all = store2.serve(&ask.clone().k(500).paged()).unwrap();
    assert_eq!(all.next_cursor, None);
    assert_eq!(all.items.len(), 40);
}

/// Deleting a user drops the cursors of lists ranked from their history.
#[test]
fn a_deleted_users_cursors_go_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 40);
    let ask = Ask::new(Scenario::ForUser).user("user3").k(3);
    let other = Ask::new(Scenario::ForUser).user("user4").k(3);
    let c = store
        .serve(&ask.clone().paged())
        .unwrap()
        .next_cursor
        .unwrap();
    let d = store
        .serve(&other.clone().paged())
        .unwrap()
        .next_cursor
        .unwrap();
    assert!(store.delete_user("user3").unwrap());
    let e = store.serve(&ask.clone().cursor(c)).unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    assert!(
        store.serve(&other.clone().cursor(d)).is_ok(),
        "another user's cursor stays"
    );
    // A list ranked from a view taken before the deletion, its cursor made after it.
    let before = store.view();
    assert!(store.delete_user("user4").unwrap());
    let late = before.serve(&other.clone().paged()).unwrap();
    let e = store
        .serve(&other.clone().cursor(late.next_cursor.unwrap()))
        .unwrap_err();
    assert!(e.to_string().contains("deleted"), "{e}");
}

/// A paged home page that names a user and a slot records each page as its own impression,
/// and with "not shown within" a fresh paged ask after the pages starts past them.
#[test]
fn paged_answers_record_each_page_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store = shop(dir.path(), Config::default(), 40);
    let ask = Ask::new(Scenario::Trending)
        .user("ann")
        .slot("home")
        .k(4)
        .not_shown_within(Duration::from_secs(86_400));
    let pages = page_through(&store, &ask, &[4]);
    assert_eq!(pages.len(), 10);
    store.flush_impressions();
    let shown: usize = store
        .user_events("ann")
        .unwrap()
        .iter()
        .filter_map(|e| match &e.kind {
            recostore::EventKind::Impression { items, .. } => Some(items.len()),
            _ => None,
        })
        .sum();
    assert_eq!(shown, 40, "every page was recorded");
    let again = store.serve(&ask.clone().paged()).unwrap();
    assert!(
        again.items.is_empty(),
        "all forty were shown within the day"
    );
}

/// Online Retail: for 30 customers, the home page paged 10 at a time lays end to end into
/// the answer 100 long.
#[test]
fn retail_home_pages_lay_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::retail::imported(dir.path(), Config::default());
    let users = common::retail::customers(&store, 131, 30);
    for u in &users {
        let ask = Ask::new(Scenario::ForUser).user(u.as_str()).k(10);
        let long = ids(&store.recommend(&ask.clone().k(100)).unwrap());
        let pages = page_through(&store, &ask, &[10]);
        assert_eq!(pages.concat(), long, "{u}");
        assert!(long.len() >= 50, "{u}: {} results", long.len());
    }
}
