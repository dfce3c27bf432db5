//! Every scenario on a small hand-built store whose right answer is known.

use recostore::{Ask, Reason, Scenario};
use recostore::{Config, Event, Filter, Item, Store, User};

const DAY: u64 = 86_400;

fn item(id: &str, cat: &str, tags: &[&str], price: f32) -> Item {
    Item::new(id, tags.iter().map(|t| (*t, 1.0)))
        .category(cat)
        .price(price)
        .stock(5)
        .title(format!("The {id}"))
}

fn shop() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Config::default().rebuild_threshold(None)).unwrap();
    store
        .upsert_items(&[
            item(
                "tent",
                "outdoor/camping",
                &["colour:green", "brand:peak"],
                120.0,
            ),
            item(
                "pegs",
                "outdoor/camping",
                &["colour:silver", "brand:peak"],
                5.0,
            ),
            item(
                "mallet",
                "outdoor/tools",
                &["colour:black", "brand:peak"],
                15.0,
            ),
            item(
                "lantern",
                "outdoor/camping",
                &["colour:green", "brand:glow"],
                30.0,
            ),
            item(
                "mug-red",
                "kitchen/mugs",
                &["colour:red", "brand:acme", "for:parent"],
                8.0,
            ),
            item(
                "mug-blue",
                "kitchen/mugs",
                &["colour:blue", "brand:acme", "for:parent"],
                9.0,
            ),
            item(
                "teapot",
                "kitchen/pots",
                &["colour:red", "brand:acme", "for:parent"],
                40.0,
            ),
            item(
                "scarf",
                "apparel",
                &["colour:red", "brand:knit", "for:parent"],
                25.0,
            ),
        ])
        .unwrap();
    let mut events = Vec::new();
    // tent + pegs bought together ten times, tent + mallet once.
    for n in 0..10 {
        let order = format!("o{n}");
        events
            .push(Event::purchase(format!("camper{n}"), "tent", 1, 120.0, DAY + n).session(&order));
        events.push(Event::purchase(format!("camper{n}"), "pegs", 2, 5.0, DAY + n).session(&order));
    }
    events.push(Event::purchase("camper0", "mallet", 1, 15.0, DAY * 2).session("o99"));
    events.push(Event::purchase("camper0", "tent", 1, 120.0, DAY * 2).session("o99"));
    // Sessions: lantern viewed with tent three times.
    for n in 0..3 {
        events.push(Event::view(format!("browser{n}"), "tent", DAY * 3 + n));
        events.push(Event::view(
            format!("browser{n}"),
            "lantern",
            DAY * 3 + n + 60,
        ));
    }
    store.record_events(&events).unwrap();
    (dir, store)
}

fn ids(recs: &[recostore::Recommendation]) -> Vec<&str> {
    recs.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn bought_together_ten_times_beats_once() {
    let (_d, store) = shop();
    let recs = store
        .recommend(&Ask::new(Scenario::Together {
            item: "tent".into(),
        }))
        .unwrap();
    assert_eq!(ids(&recs)[..2], ["pegs", "mallet"]);
    match &recs[0].reasons[0] {
        Reason::BoughtTogether { with, support, .. } => {
            assert_eq!(with, "tent");
            assert_eq!(*support, 10);
        }
        other => panic!("expected a bought-together reason, got {other:?}"),
    }
}

#[test]
fn viewed_together_and_cart() {
    let (_d, store) = shop();
    let viewed = store
        .recommend(&Ask::new(Scenario::Viewed {
            item: "tent".into(),
        }))
        .unwrap();
    // Purchases are not views: only the three browsing sessions count, and the tent was in
    // nothing else, so every one of its sessions holds the lantern.
    assert_eq!(ids(&viewed), ["lantern"], "{viewed:?}");
    assert!(
        matches!(
            &viewed[0].reasons[0],
            Reason::ViewedTogether { with, support: 3, exact: true, newest: None, confidence, .. }
                if with == "tent" && *confidence == 1.0
        ),
        "{viewed:?}"
    );
    let cart = store
        .recommend(&Ask::new(Scenario::Cart {
            items: vec!["tent".into(), "pegs".into()],
        }))
        .unwrap();
    assert!(!ids(&cart).contains(&"tent") && !ids(&cart).contains(&"pegs"));
    let mallet = cart
        .iter()
        .find(|r| r.id == "mallet")
        .expect("bought with the tent");
    // The tent is in 11 baskets; the blend walks its newest 10, and the mallet is in one.
    assert!(
        mallet.reasons.iter().any(|r| matches!(
            r,
            Reason::BoughtTogether { with, support: 1, newest: Some(10), .. } if with == "tent"
        )),
        "{mallet:?}"
    );
    assert!(
        ids(&cart).contains(&"lantern"),
        "viewed with the tent: {cart:?}"
    );
}

/// A named shopper's cart is read as the newest part of their history: the basket's own
/// complements lead, what goes with their earlier purchases follows, and a stranger's cart
/// (no user) gets the basket's complements and what is popular, never what goes with
/// someone's history.
#[test]
fn cart_for_a_known_shopper_reads_the_basket_as_their_newest_items() {
    let (_d, store) = shop();
    let mut events = Vec::new();
    for n in 0..5 {
        let order = format!("tea{n}");
        let parent = format!("parent{n}");
        events.push(Event::purchase(&parent, "mug-red", 1, 8.0, DAY * 4 + n).session(&order));
        events.push(Event::purchase(&parent, "teapot", 1, 40.0, DAY * 4 + n).session(&order));
    }
    // The shopper bought a red mug, then (newer) a scarf, on separate days.
    events.push(Event::purchase("me", "mug-red", 1, 8.0, DAY * 5).session("m1"));
    events.push(Event::purchase("me", "scarf", 1, 25.0, DAY * 6).session("m2"));
    store.record_events(&events).unwrap();
    let basket = || {
        Ask::new(Scenario::Cart {
            items: vec!["tent".into()],
        })
        .k(10)
    };
    let stranger = store.recommend(&basket()).unwrap();
    assert_eq!(ids(&stranger)[0], "pegs", "{stranger:?}");
    // The teapot may come as a best seller, but not as the red mug's partner: the stranger
    // bought no mug.
    for r in &stranger {
        assert!(
            !r.reasons
                .iter()
                .any(|x| matches!(x, Reason::BoughtTogether { with, .. } if with == "mug-red")),
            "{r:?}"
        );
    }
    if let Some(teapot) = stranger.iter().find(|r| r.id == "teapot") {
        assert!(
            teapot
                .reasons
                .iter()
                .all(|x| matches!(x, Reason::Popular { .. })),
            "{teapot:?}"
        );
    }

    let mine = store
        .recommend(&basket().user("me").exclude_seen())
        .unwrap();
    assert_eq!(ids(&mine)[0], "pegs", "{mine:?}");
    let teapot = mine
        .iter()
        .find(|r| r.id == "teapot")
        .expect("the teapot goes with the shopper's red mug");
    assert!(
        teapot
            .reasons
            .iter()
            .any(|r| matches!(r, Reason::BoughtTogether { with, .. } if with == "mug-red")),
        "{teapot:?}"
    );
    assert!(!ids(&mine).contains(&"tent") && !ids(&mine).contains(&"mug-red"));
}

#[test]
fn after_purchase_excludes_everything_bought() {
    let (_d, store) = shop();
    // camper1 bought tent + pegs; the follow-up is the mallet (bought with the tent), then the
    // lantern (only viewed with it: browsing evidence ranks below buying evidence here).
    let recs = store
        .recommend(&Ask::new(Scenario::AfterPurchase).user("camper1"))
        .unwrap();
    assert_eq!(ids(&recs), ["mallet", "lantern"], "{recs:?}");
    assert!(!ids(&recs).contains(&"tent") && !ids(&recs).contains(&"pegs"));
    let err = store
        .recommend(&Ask::new(Scenario::AfterPurchase))
        .unwrap_err();
    assert!(err.to_string().contains("needs a user"), "{err}");
}

#[test]
fn for_user_blends_history_profile_and_popularity() {
    let (_d, store) = shop();
    store
        .upsert_user(&User::new("fan", [("colour:red", 1.0)]))
        .unwrap();
    store
        .record_event(&Event::view("fan", "tent", DAY * 4))
        .unwrap();
    let recs = store
        .recommend(&Ask::new(Scenario::ForUser).user("fan").exclude_seen().k(8))
        .unwrap();
    let got = ids(&recs);
    assert!(!got.contains(&"tent"), "seen items are excluded: {got:?}");
    // Co-occurrence with the tent ranks pegs first; red things come from the profile.
    assert_eq!(got[0], "pegs", "{recs:?}");
    let red = recs
        .iter()
        .find(|r| r.id == "mug-red")
        .expect("profile part");
    assert!(
        red.matched.iter().any(|(t, _)| t == "colour:red"),
        "{red:?}"
    );
    assert!(red
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::Profile { .. })));
}

#[test]
fn trending_gift_and_filters() {
    let (_d, store) = shop();
    let top = store.recommend(&Ask::new(Scenario::Trending).k(3)).unwrap();
    // Pegs sold twenty units in ten orders; the tent eleven in eleven (plus three views).
    assert_eq!(ids(&top)[..2], ["pegs", "tent"]);
    assert!(matches!(top[0].reasons[0], Reason::Popular { .. }));
    let kitchen = store
        .recommend(&Ask::new(Scenario::Trending).filter(Filter::new().category("kitchen")))
        .unwrap();
    assert!(kitchen.is_empty(), "nothing in kitchen has activity");

    let gifts = store
        .recommend(
            &Ask::new(Scenario::Gift {
                recipient: "parent".into(),
            })
            .filter(Filter::new().price(0.0, 30.0)),
        )
        .unwrap();
    let mut got = ids(&gifts);
    got.sort();
    assert_eq!(
        got,
        ["mug-blue", "mug-red", "scarf"],
        "teapot is over budget"
    );
}

#[test]
fn search_rerank_puts_keyword_and_profile_matches_first() {
    let (_d, store) = shop();
    store
        .upsert_user(&User::new("fan", [("brand:acme", 1.0)]))
        .unwrap();
    let recs = store
        .recommend(
            &Ask::new(Scenario::SearchRerank {
                items: vec![
                    "scarf".into(),
                    "mug-blue".into(),
                    "mug-red".into(),
                    "nope".into(),
                ],
                keywords: vec!["red".into()],
            })
            .user("fan"),
        )
        .unwrap();
    assert_eq!(ids(&recs), ["mug-red", "scarf", "mug-blue"]);
    assert!(matches!(&recs[0].reasons[0], Reason::Keywords { matched } if matched == &["red"]));
}

#[test]
fn boosts_members_first_and_diversity() {
    let (_d, store) = shop();
    let mut teapot = store.get_item("teapot").unwrap();
    teapot.members_only = true;
    store.upsert_item(&teapot).unwrap();
    let base = Ask::new(Scenario::Profile {
        tags: vec![("colour:red".into(), 1.0)],
    })
    .k(3);
    let plain = store.recommend(&base).unwrap();
    let member = store.recommend(&base.clone().members_first()).unwrap();
    assert_eq!(member[0].id, "teapot");
    assert!(member[0].reasons.contains(&Reason::MembersOnly));
    let boosted = store
        .recommend(&base.clone().boost("brand:knit", 10.0))
        .unwrap();
    assert_eq!(boosted[0].id, "scarf", "plain order was {:?}", ids(&plain));
    // Diversity: with λ = 0 the second pick must come from another category.
    let diverse = store.recommend(&base.clone().diversity(0.0)).unwrap();
    let cat = |id: &str| store.get_item(id).unwrap().category;
    assert_ne!(
        cat(&diverse[0].id).split('/').next(),
        cat(&diverse[1].id).split('/').next(),
        "{:?}",
        ids(&diverse)
    );
}

#[test]
fn unknown_items_and_bad_asks_are_clear_errors() {
    let (_d, store) = shop();
    let e = store
        .recommend(&Ask::new(Scenario::Together {
            item: "ghost".into(),
        }))
        .unwrap_err();
    assert!(e.to_string().contains("ghost"), "{e}");
    let e = store
        .recommend(&Ask::new(Scenario::Trending).diversity(2.0))
        .unwrap_err();
    assert!(e.to_string().contains("diversity"), "{e}");
    let e = store
        .record_events(&[Event::view("u", "tent", 1), Event::view("u", "ghost", 2)])
        .unwrap_err();
    assert!(e.to_string().contains("event 1"), "{e}");
    assert!(
        store.get_user("u").is_none(),
        "the failed batch stored nothing"
    );
}

#[test]
fn asks_and_events_round_trip_through_json() {
    // The admin socket and JSONL import speak these shapes; they must survive a round trip.
    let ask = Ask::new(Scenario::Cart {
        items: vec!["tent".into()],
    })
    .user("ann")
    .k(3)
    .exclude_purchased()
    .diversity(0.7)
    .boost("season:summer", 2.0)
    .filter(Filter::new().category("outdoor"));
    let text = serde_json::to_string(&ask).unwrap();
    assert!(text.contains(r#""scenario":"cart""#), "{text}");
    let back: Ask = serde_json::from_str(&text).unwrap();
    assert_eq!(back, ask);
    let minimal: Ask = serde_json::from_str(r#"{"scenario":"trending"}"#).unwrap();
    assert_eq!(minimal, Ask::new(Scenario::Trending));

    let ev = Event::purchase("ann", "tent", 2, 99.5, 7).session("o1");
    let text = serde_json::to_string(&ev).unwrap();
    assert!(text.contains(r#""kind":"purchase""#), "{text}");
    assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), ev);
}

#[test]
fn liked_by_the_same_people_spans_sessions_and_forgets_deleted_users() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Config::default().rebuild_threshold(None)).unwrap();
    store
        .upsert_items(&[
            item("film-a", "films", &["genre:drama"], 5.0),
            item("film-b", "films", &["genre:noir"], 5.0),
            item("film-c", "films", &["genre:comedy"], 5.0),
        ])
        .unwrap();
    // Two fans watch a and b a month apart, so no session pairs them: only whole histories do.
    for (fan, day) in [("fan1", 1), ("fan2", 3)] {
        store
            .record_event(&Event::view(fan, "film-a", DAY * day))
            .unwrap();
        store
            .record_event(&Event::view(fan, "film-b", DAY * (day + 30)))
            .unwrap();
    }
    store
        .record_event(&Event::view("other", "film-c", DAY * 40))
        .unwrap();
    store
        .record_event(&Event::view("me", "film-a", DAY * 50))
        .unwrap();
    let ask = Ask::new(Scenario::ForUser).user("me").exclude_seen().k(5);
    let recs = store.recommend(&ask).unwrap();
    assert_eq!(recs[0].id, "film-b", "{recs:?}");
    let liked = recs[0].reasons.iter().find_map(|r| match r {
        Reason::LikedTogether {
            with,
            shared,
            similarity,
        } => Some((with.clone(), *shared, *similarity)),
        _ => None,
    });
    // a: {fan1, fan2, me}; b: {fan1, fan2}. Each vote weighs 1/√(history length): the fans'
    // 1/√2, mine 1. Similarity: (2/√2) / √((2/√2 + 1) · 2/√2).
    let (with, shared, similarity) = liked.expect("a liked-together reason");
    assert_eq!((with.as_str(), shared), ("film-a", 2));
    let fans = 2.0 / 2f32.sqrt();
    let expected = fans / ((fans + 1.0) * fans).sqrt();
    assert!((similarity - expected).abs() < 1e-6, "{similarity}");

    // A basket of film-a cross-sells film-b for the same reason.
    let cart = store
        .recommend(&Ask::new(Scenario::Cart {
            items: vec!["film-a".into()],
        }))
        .unwrap();
    assert_eq!(cart[0].id, "film-b", "{cart:?}");
    assert!(cart[0]
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::LikedTogether { .. })));

    // A basket nobody else liked gets the shopper's own taste when the ask names them.
    let other_cart = || {
        Ask::new(Scenario::Cart {
            items: vec!["film-c".into()],
        })
    };
    let liked_reason = |recs: &[recostore::Recommendation]| {
        recs.iter()
            .flat_map(|r| &r.reasons)
            .any(|r| matches!(r, Reason::LikedTogether { with, .. } if with == "film-a"))
    };
    let anonymous = store.recommend(&other_cart()).unwrap();
    assert!(!liked_reason(&anonymous), "{anonymous:?}");
    let mine = store.recommend(&other_cart().user("me")).unwrap();
    assert!(liked_reason(&mine), "{mine:?}");

    // Forgetting the fans takes their histories out of the relation at once.
    store.delete_users(&["fan1", "fan2"]).unwrap();
    let recs = store.recommend(&ask).unwrap();
    assert!(
        recs.iter()
            .flat_map(|r| &r.reasons)
            .all(|r| !matches!(r, Reason::LikedTogether { .. })),
        "{recs:?}"
    );
}

/// A phone shop where the answer is obvious: two cases viewed together but never bought
/// together are substitutes; a case bought with a phone is its complement, and so is a charger;
/// two phones (same kind, never bought together) are substitutes, not complements.
#[test]
fn substitutes_and_complements_keep_to_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .upsert_items(&[
            item(
                "phone-a",
                "phones",
                &["type:phone", "brand:x", "screen:6in"],
                500.0,
            ),
            item(
                "phone-b",
                "phones",
                &["type:phone", "brand:y", "screen:6in"],
                450.0,
            ),
            item(
                "case-black",
                "cases",
                &["type:case", "fits:phone-a", "colour:black"],
                20.0,
            ),
            item(
                "case-red",
                "cases",
                &["type:case", "fits:phone-a", "colour:red"],
                20.0,
            ),
            item("charger", "power", &["type:charger", "watts:30"], 25.0),
        ])
        .unwrap();
    let mut events = Vec::new();
    for n in 0..4 {
        let (u, s) = (format!("browser{n}"), format!("b{n}"));
        events.push(Event::view(&u, "case-black", DAY + n).session(&s));
        events.push(Event::view(&u, "case-red", DAY + n + 30).session(&s));
        events.push(Event::view(&u, "phone-a", DAY + n + 60).session(&s));
        events.push(Event::view(&u, "phone-b", DAY + n + 90).session(&s));
    }
    for n in 0..5 {
        let (u, o) = (format!("buyer{n}"), format!("o{n}"));
        events.push(Event::purchase(&u, "phone-a", 1, 500.0, DAY * 2 + n).session(&o));
        events.push(Event::purchase(&u, "case-black", 1, 20.0, DAY * 2 + n).session(&o));
        if n < 3 {
            events.push(Event::purchase(&u, "charger", 1, 25.0, DAY * 2 + n).session(&o));
        }
    }
    store.record_events(&events).unwrap();
    let ask = |s: Scenario| store.recommend(&Ask::new(s).k(10)).unwrap();

    let subs = ask(Scenario::Substitutes {
        item: "case-black".into(),
    });
    assert_eq!(ids(&subs)[0], "case-red", "{subs:?}");
    match &subs[0].reasons[0] {
        Reason::Substitute {
            with,
            tag_match,
            viewed_together,
            viewed_newest,
            bought_together,
            bought_newest,
            exact,
        } => {
            assert_eq!(with, "case-black");
            assert_eq!(*bought_newest, None);
            assert_eq!(*viewed_newest, None, "four sessions are all counted");
            assert_eq!((*viewed_together, *bought_together, *exact), (4, 0, true));
            assert!(*tag_match > 0.5, "{tag_match}");
        }
        other => panic!("expected a substitute reason, got {other:?}"),
    }
    // The phone it is bought with is no substitute for it (or ranks below the other case).
    let phone = ids(&subs).iter().position(|&i| i == "phone-a");
    assert!(phone.is_none_or(|p| p > 0), "{subs:?}");

    let phone_subs = ask(Scenario::Substitutes {
        item: "phone-a".into(),
    });
    assert_eq!(ids(&phone_subs)[0], "phone-b", "{phone_subs:?}");

    let comps = ask(Scenario::Complements {
        item: "phone-a".into(),
    });
    assert_eq!(ids(&comps), ["case-black", "charger"], "{comps:?}");
    match &comps[0].reasons[0] {
        Reason::Complement {
            with,
            bought_together,
            exact,
            confidence,
            ..
        } => {
            assert_eq!(with, "phone-a");
            assert_eq!((*bought_together, *exact), (5, true));
            assert_eq!(*confidence, 1.0);
        }
        other => panic!("expected a complement reason, got {other:?}"),
    }
    let text = comps[0].reasons[0].to_string();
    assert!(
        text.starts_with("complement to phone-a: bought together 5×"),
        "{text}"
    );
    let case_comps = ask(Scenario::Complements {
        item: "case-black".into(),
    });
    assert_eq!(ids(&case_comps)[0], "phone-a", "{case_comps:?}");
    assert!(!ids(&case_comps).contains(&"case-red"), "{case_comps:?}");
}

/// Past `VIEWED_NEWEST` sessions, substitutes counts viewed-together partners in the item's
/// newest sessions only, and its reason says so with the count over exactly those sessions
/// (counted here from the events the test wrote, not by the store).
#[test]
fn substitutes_of_a_best_seller_count_its_newest_sessions_and_say_so() {
    use recostore::{SUBSTITUTE_BASKETS, SUBSTITUTE_SESSIONS as VIEWED_NEWEST};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .upsert_items(&[
            item("hot", "kettles", &["type:kettle", "colour:red"], 30.0),
            item(
                "old-rival",
                "kettles",
                &["type:kettle", "colour:blue"],
                35.0,
            ),
            item(
                "new-rival",
                "kettles",
                &["type:kettle", "colour:green"],
                32.0,
            ),
        ])
        .unwrap();
    let sessions = VIEWED_NEWEST + 300;
    let mut events = Vec::new();
    // Session i views hot; the first 400 also view old-rival, every third views new-rival.
    for i in 0..sessions {
        let (u, s, t) = (format!("u{i}"), format!("s{i}"), DAY + 10 * i as u64);
        events.push(Event::view(&u, "hot", t).session(&s));
        if i < 400 {
            events.push(Event::view(&u, "old-rival", t + 1).session(&s));
        }
        if i % 3 == 0 {
            events.push(Event::view(&u, "new-rival", t + 2).session(&s));
        }
    }
    // And past SUBSTITUTE_BASKETS baskets: old-rival is bought with hot in the first 60.
    let baskets = SUBSTITUTE_BASKETS + 50;
    for i in 0..baskets {
        let (u, o, t) = (format!("b{i}"), format!("o{i}"), DAY * 30 + 10 * i as u64);
        events.push(Event::purchase(&u, "hot", 1, 30.0, t).session(&o));
        if i < 60 {
            events.push(Event::purchase(&u, "old-rival", 1, 35.0, t).session(&o));
        }
    }
    store.record_events(&events).unwrap();
    let first_counted = sessions - VIEWED_NEWEST;
    let in_window =
        |keep: &dyn Fn(usize) -> bool| (first_counted..sessions).filter(|&i| keep(i)).count();
    let want = [
        ("old-rival", in_window(&|i| i < 400)),
        ("new-rival", in_window(&|i| i % 3 == 0)),
    ];
    let recs = store
        .recommend(&Ask::new(Scenario::Substitutes { item: "hot".into() }).k(10))
        .unwrap();
    for (id, count) in want {
        let r = recs
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} missing: {recs:?}"));
        match &r.reasons[0] {
            Reason::Substitute {
                viewed_together,
                viewed_newest,
                ..
            } => {
                assert_eq!(*viewed_together as usize, count, "{id}");
                assert_eq!(*viewed_newest, Some(VIEWED_NEWEST as u32), "{id}");
                let line = r.reasons[0].to_string();
                assert!(
                    line.contains(&format!(
                        "in {count} of its newest {VIEWED_NEWEST} sessions"
                    )),
                    "{line}"
                );
            }
            other => panic!("expected a substitute reason, got {other:?}"),
        }
    }
    let old = recs.iter().find(|r| r.id == "old-rival").unwrap();
    match &old.reasons[0] {
        Reason::Substitute {
            bought_together,
            bought_newest,
            ..
        } => {
            // Baskets 50..59 of the first 60 fall in the newest SUBSTITUTE_BASKETS.
            assert_eq!(
                (*bought_together, *bought_newest),
                (10, Some(SUBSTITUTE_BASKETS as u32))
            );
            let line = old.reasons[0].to_string();
            assert!(
                line.contains(&format!("in 10 of its newest {SUBSTITUTE_BASKETS} baskets")),
                "{line}"
            );
        }
        other => panic!("expected a substitute reason, got {other:?}"),
    }
    // The rival viewed with it now ranks above the one viewed with it long ago.
    let pos = |id: &str| recs.iter().position(|r| r.id == id);
    assert!(pos("new-rival") < pos("old-rival"), "{recs:?}");
}

fn says_no_history(r: &recostore::Recommendation) -> bool {
    r.reasons.iter().any(|x| {
        matches!(
            x,
            Reason::Popular {
                no_history: true,
                ..
            }
        ) && x.to_string().ends_with("; no history yet")
    })
}

/// Cold start: a visitor the store has never seen gets the popular items, each saying why,
/// on the home page (for-user) and with an empty cart; not `NotFound`.
#[test]
fn a_new_visitor_gets_what_is_popular_and_is_told_why() {
    let (_d, store) = shop();
    // What is popular is what `trending` answers (its own tests check the measure); the
    // cold start must give exactly that, and say why.
    let trending = store.recommend(&Ask::new(Scenario::Trending).k(3)).unwrap();
    assert_eq!(trending.len(), 3);
    for scenario in [Scenario::ForUser, Scenario::Cart { items: vec![] }] {
        let recs = store
            .recommend(&Ask::new(scenario.clone()).user("first-visit").k(3))
            .unwrap();
        assert_eq!(ids(&recs), ids(&trending), "{scenario:?}: {recs:?}");
        assert!(recs.iter().all(says_no_history), "{scenario:?}: {recs:?}");
    }
    // Known, with explicit tags and no events yet: the tags lead, popularity fills the rest.
    store
        .upsert_user(&User::new("new-fan", [("for:parent", 1.0)]))
        .unwrap();
    let recs = store
        .recommend(&Ask::new(Scenario::ForUser).user("new-fan").k(6))
        .unwrap();
    let mut first4 = ids(&recs)[..4].to_vec();
    first4.sort_unstable();
    assert_eq!(
        first4,
        ["mug-blue", "mug-red", "scarf", "teapot"],
        "the four items tagged for:parent first: {recs:?}"
    );
    assert!(
        recs[..4]
            .iter()
            .all(|r| matches!(r.reasons[0], Reason::Profile { .. })),
        "{recs:?}"
    );
    assert!(recs[4..].iter().all(says_no_history), "{recs:?}");
    // A user with history and an empty cart: their history seeds it, nothing says "no history".
    let recs = store
        .recommend(&Ask::new(Scenario::Cart { items: vec![] }).user("camper3"))
        .unwrap();
    assert!(!recs.iter().any(says_no_history), "{recs:?}");
    // The receipt page still needs a buyer the store knows.
    let err = store
        .recommend(&Ask::new(Scenario::AfterPurchase).user("first-visit"))
        .unwrap_err();
    assert!(matches!(err, recostore::Error::NotFound { .. }), "{err}");
}
