//! The example strategies in plugins/, built from source with the documented command, rank a
//! real store the way their READMEs say.
// Runs WebAssembly plugins: needs the `plugins` feature (on by default).
#![cfg(feature = "plugins")]

mod plugin_support;

use plugin_support::{examples, relaxed};
use recostore::{Ask, Scenario};
use recostore::{Config, Event, Item, Store, User};

fn wasm(name: &str) -> Vec<u8> {
    let path = examples().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ids(recs: &[recostore::Recommendation]) -> Vec<&str> {
    recs.iter().map(|r| r.id.as_str()).collect()
}

/// Two tents; `tent-a` matches the shopper's colour better, `tent-b` converts and is well
/// reviewed.
fn tents() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path(), Config::default().plugins(relaxed())).expect("open");
    store
        .upsert_items(&[
            Item::new("tent-a", [("kind:tent", 0.5), ("colour:green", 1.0)]).price(100.0),
            Item::new("tent-b", [("kind:tent", 1.0), ("colour:green", 0.6)]).price(100.0),
        ])
        .expect("items");
    store
        .upsert_users(&[User::new("shopper", [("colour:green", 1.0)])])
        .expect("users");
    let mut events = Vec::new();
    for n in 0..40u64 {
        let u = format!("v{n}");
        // tent-a: looked at a lot, never bought. tent-b: bought by a quarter of its viewers.
        events.push(Event::view(&u, "tent-a", 1_000 + n));
        events.push(Event::view(&u, "tent-a", 1_001 + n));
        events.push(Event::view(&u, "tent-b", 1_000 + n));
        if n % 4 == 0 {
            events.push(Event::purchase(&u, "tent-b", 1, 100.0, 1_002 + n));
            events.push(Event::rating(&u, "tent-b", 5.0, 1_003 + n));
            events.push(Event::review(&u, "tent-b", 1_003 + n));
        }
    }
    store.record_events(&events).expect("events");
    (dir, store)
}

#[test]
fn a9_match_prefers_what_converts_and_is_well_reviewed() {
    let (_d, store) = tents();
    let ask = Ask::new(Scenario::Profile {
        tags: vec![("colour:green".into(), 1.0)],
    })
    .user("shopper")
    .k(2);
    assert_eq!(
        ids(&store.recommend(&ask).expect("builtin"))[0],
        "tent-a",
        "closer match"
    );
    store.plugins().load("a9", &wasm("a9_match")).expect("load");
    let served = store.serve(&ask.strategy("a9")).expect("answer");
    assert_eq!(served.ranked_by.version, Some(1));
    assert_eq!(ids(&served.items), ["tent-b", "tent-a"]);
    let err = store
        .plugins()
        .load_with_config("a9-bad", &wasm("a9_match"), br#"{"conversion_prior": 0}"#)
        .expect_err("a bad config fails the load");
    assert!(err.to_string().contains("recostore_init"), "{err}");
}

fn gift_shop() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path(), Config::default().plugins(relaxed())).expect("open");
    let mut lantern = Item::new("lantern", [("for:dad", 1.0)])
        .price(40.0)
        .stock(5);
    lantern.members_only = true;
    store
        .upsert_items(&[
            lantern,
            Item::new("mug", [("for:dad", 1.0)]).price(12.0).stock(50),
            Item::new("watch", [("for:dad", 1.0)]).price(400.0).stock(2),
        ])
        .expect("items");
    store
        .upsert_users(&[
            User::new("member", [("member", 1.0)]),
            User::new("guest", [("colour:red", 1.0)]),
        ])
        .expect("users");
    let mut events = Vec::new();
    for n in 0..10u64 {
        let u = format!("b{n}");
        events.push(Event::purchase(&u, "mug", 1, 12.0, 1_000 + n));
        events.push(Event::rating(&u, "mug", 4.5, 1_000 + n));
        events.push(Event::purchase(&u, "watch", 1, 400.0, 1_000 + n));
        events.push(Event::rating(&u, "watch", 4.5, 1_000 + n));
    }
    events.push(Event::purchase("b0", "lantern", 1, 40.0, 1_000));
    store.record_events(&events).expect("events");
    (dir, store)
}

#[test]
fn members_gift_puts_members_first_and_keeps_gifts_in_budget() {
    let (_d, store) = gift_shop();
    store
        .plugins()
        .load_with_config("mg", &wasm("members_gift"), br#"{"budget": 50}"#)
        .expect("load");
    let gift = |user: &str| {
        let ask = Ask::new(Scenario::Gift {
            recipient: "dad".into(),
        })
        .user(user)
        .k(3)
        .strategy("mg");
        store.recommend(&ask).expect("answer")
    };
    assert_eq!(ids(&gift("member")), ["lantern", "mug", "watch"]);
    assert_eq!(ids(&gift("guest")), ["mug", "watch", "lantern"]);
}

#[test]
fn spend_match_follows_the_spend_band_and_spreads_categories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(dir.path(), Config::default().plugins(relaxed())).expect("open");
    let mut items = Vec::new();
    for (i, (cat, price)) in [
        ("shoes", 450.0),
        ("shoes", 30.0),
        ("shoes", 35.0),
        ("socks", 25.0),
    ]
    .into_iter()
    .enumerate()
    {
        items.push(
            Item::new(format!("p{i}"), [("style:run", 1.0 - i as f32 * 0.01)])
                .category(cat)
                .price(price),
        );
    }
    items.push(Item::new("seed", [("style:run", 1.0)]).price(30.0));
    store.upsert_items(&items).expect("items");
    store
        .upsert_users(&[User::new("thrifty", [("style:run", 1.0)])])
        .expect("users");
    // Three orders around 30: spend band 4 (20-50).
    store
        .record_events(&[
            Event::purchase("thrifty", "seed", 1, 30.0, 1_000).session("o1"),
            Event::purchase("thrifty", "seed", 1, 28.0, 2_000).session("o2"),
            Event::purchase("thrifty", "seed", 1, 33.0, 3_000).session("o3"),
        ])
        .expect("events");
    let ask = Ask::new(Scenario::Profile {
        tags: vec![("style:run".into(), 1.0)],
    })
    .user("thrifty")
    .k(4)
    .filter(recostore::Filter {
        exclude_items: vec!["seed".into()],
        ..Default::default()
    });
    assert_eq!(ids(&store.recommend(&ask).expect("builtin"))[0], "p0");
    store
        .plugins()
        .load("spend", &wasm("spend_match"))
        .expect("load");
    let got = store.recommend(&ask.strategy("spend")).expect("answer");
    let got = ids(&got);
    assert_eq!(
        got[0], "p1",
        "in the shopper's band and the best match there"
    );
    assert_eq!(got[1], "p3", "a second shoe is damped below the socks");
    assert_eq!(got[3], "p0", "four bands away from the usual spend");
}

/// A strategy that panics falls back to the built-in ranker, and the fallback reason carries
/// the panic's message and location (the SDK's hook logs them; the host reports the line).
#[test]
fn a_panicking_strategy_falls_back_and_says_where_it_panicked() {
    let (_d, store) = tents();
    store
        .plugins()
        .load("fault-demo", &wasm("fault_demo"))
        .expect("loads: it panics only when asked for 13 results");
    let ask = |k: usize| {
        Ask::new(Scenario::ForUser)
            .user("shopper")
            .k(k)
            .strategy("fault-demo")
    };
    let fine = store.serve(&ask(2)).expect("answer");
    assert_eq!(fine.ranked_by.fallback, None, "{:?}", fine.ranked_by);
    let served = store
        .serve(&ask(13))
        .expect("answers from the built-in ranker");
    let why = served.ranked_by.fallback.expect("a fallback reason");
    assert!(
        why.contains("deliberate panic: asked for 13 results") && why.contains("src/lib.rs:"),
        "{why}"
    );
    assert!(!served.items.is_empty());
}
