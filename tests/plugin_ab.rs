//! A/B slots: users split by weight with a stable hash, and impressions, clicks and purchases
//! add up per variant.
// Runs WebAssembly plugins: needs the `plugins` feature (on by default).
#![cfg(feature = "plugins")]

mod plugin_support;

use std::collections::HashMap;

use plugin_support::{relaxed, shop, Wat};
use recostore::plugin::Variant;
use recostore::{Ask, Scenario};
use recostore::{Event, User};

#[test]
fn ten_thousand_users_split_by_weight_and_attribution_adds_up() {
    let (_d, store) = shop(relaxed());
    let users: Vec<User> = (0..10_000)
        .map(|u| User::new(format!("u{u}"), [("colour:c1", 1.0)]))
        .collect();
    store.upsert_users(&users).expect("users");
    store
        .plugins()
        .load(
            "reverse",
            Wat {
                sign: -1.0,
                ..Wat::default()
            }
            .text()
            .as_bytes(),
        )
        .expect("load");
    store
        .plugins()
        .set_slot(
            "home",
            vec![Variant::new("builtin", 3), Variant::new("reverse", 1)],
        )
        .expect("route");
    assert!(
        store.plugins().unload("reverse").is_err(),
        "a routed plugin stays loaded"
    );

    let mut served_by: HashMap<String, String> = HashMap::new();
    let mut want: HashMap<String, (u64, u64, u64)> = HashMap::new();
    let mut events = Vec::new();
    for (n, u) in users.iter().enumerate() {
        let ask = Ask::new(Scenario::Trending).k(5).user(&u.id).slot("home");
        let served = store.serve(&ask).expect("answer");
        let again = store.serve(&ask).expect("answer");
        assert_eq!(
            served.ranked_by.strategy, again.ranked_by.strategy,
            "stable routing"
        );
        let variant = served.ranked_by.strategy.clone();
        let w = want.entry(variant.clone()).or_default();
        w.0 += 10; // two answers of five items each
                   // Every third user clicks their first item; every seventh buys their second.
        if n % 3 == 0 {
            events.push(Event::click(&u.id, &served.items[0].id, 5_000));
            w.1 += 1;
        }
        if n % 7 == 0 {
            events.push(Event::purchase(&u.id, &served.items[1].id, 1, 5.0, 5_000));
            w.2 += 1;
        }
        // A click on an item this user was not shown is not attributed.
        if n % 11 == 0 {
            let shown: Vec<&str> = served.items.iter().map(|r| r.id.as_str()).collect();
            let other = ["i00", "i15", "i29"]
                .into_iter()
                .find(|i| !shown.contains(i));
            events.push(Event::click(&u.id, other.expect("one not shown"), 5_000));
        }
        served_by.insert(u.id.clone(), variant);
    }
    store.record_events(&events).expect("events");

    let reverse = served_by.values().filter(|v| *v == "reverse").count();
    assert!(
        (2_300..=2_700).contains(&reverse),
        "weight 1 of 4 should get 25% ± 2% of 10,000 users, got {reverse}"
    );
    let stats = store.plugins().variant_stats(Some("home"));
    assert_eq!(stats.len(), 2);
    for s in &stats {
        let w = want[&s.strategy];
        assert_eq!(
            (s.impressions, s.clicks, s.purchases),
            w,
            "attribution of {}",
            s.strategy
        );
        assert_eq!(s.version, u32::from(s.strategy == "reverse"));
        assert!((s.ctr - s.clicks as f64 / s.impressions as f64).abs() < 1e-12);
    }
    let total: u64 = stats.iter().map(|s| s.serves).sum();
    assert_eq!(total, 20_000);
}
