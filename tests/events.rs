//! Events and what they leave behind: derived tags with decay, item statistics, persistence
//! across reopen, segments, and forgetting a deleted user everywhere.

use recostore::{Ask, Scenario};
use recostore::{Config, Event, Item, Store};

const DAY: u64 = 86_400;

fn store(dir: &std::path::Path) -> Store {
    let s = Store::open_with(dir, Config::default().rebuild_threshold(None)).unwrap();
    s.upsert_items(&[
        Item::new("red-shirt", [("colour:red", 1.0), ("type:shirt", 1.0)])
            .category("apparel/tops")
            .price(20.0),
        Item::new("blue-shirt", [("colour:blue", 1.0), ("type:shirt", 1.0)])
            .category("apparel/tops")
            .price(22.0),
        Item::new("red-cap", [("colour:red", 1.0), ("type:cap", 1.0)])
            .category("apparel/hats")
            .price(12.0),
        Item::new("socks", [("colour:black", 1.0), ("type:socks", 1.0)])
            .category("apparel/socks")
            .price(4.0),
    ])
    .unwrap();
    s
}

fn weight(tags: &[(String, f32)], name: &str) -> f32 {
    tags.iter().find(|t| t.0 == name).map_or(0.0, |t| t.1)
}

#[test]
fn an_old_preference_loses_to_a_new_one_after_the_half_life() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()); // half-life 30 days
                               // Three red purchases long ago, one blue view recently.
    let mut evs: Vec<Event> = (0..3)
        .map(|i| Event::purchase("ann", "red-shirt", 1, 20.0, i))
        .collect();
    evs.push(Event::view("ann", "blue-shirt", 10 * DAY));
    s.record_events(&evs).unwrap();
    let early = s.user_activity("ann").unwrap().derived_tags;
    assert!(
        weight(&early, "colour:red") > weight(&early, "colour:blue"),
        "{early:?}"
    );
    // 200 days on (the clock is the newest event), a single blue view outweighs them.
    s.record_event(&Event::view("ann", "blue-shirt", 200 * DAY))
        .unwrap();
    let late = s.user_activity("ann").unwrap().derived_tags;
    assert!(
        weight(&late, "colour:blue") > weight(&late, "colour:red"),
        "{late:?}"
    );
    // Derived tags include the category path and a price band.
    assert!(weight(&late, "category:apparel/tops") > 0.0, "{late:?}");
    assert!(weight(&late, "price:20-50") > 0.0, "{late:?}");
}

#[test]
fn a_low_rating_weakens_a_preference() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.record_events(&[
        Event::view("bo", "red-cap", 100),
        Event::rating("bo", "red-cap", 0.5, 200),
    ])
    .unwrap();
    let tags = s.user_activity("bo").unwrap().derived_tags;
    assert_eq!(weight(&tags, "type:cap"), 0.0, "{tags:?}");
    let stats = s.item_activity("red-cap").unwrap();
    assert_eq!((stats.views, stats.ratings), (1, 1));
    assert_eq!(stats.rating, Some(0.5));
}

#[test]
fn item_statistics_and_state_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path());
        s.record_events(&[
            Event::view("cy", "socks", 10),
            Event::view("cy", "socks", 20),
            Event::purchase("cy", "socks", 3, 4.0, 30).session("o1"),
            Event::purchase("cy", "red-cap", 1, 12.0, 30).session("o1"),
            Event::search("cy", "warm socks", 5),
        ])
        .unwrap();
        s.flush().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let socks = s.item_activity("socks").unwrap();
    assert_eq!((socks.views, socks.orders, socks.units), (2, 1, 3));
    assert!((socks.revenue - 12.0).abs() < 1e-9);
    assert!((socks.conversion - 0.5).abs() < 1e-6);
    let cy = s.user_activity("cy").unwrap();
    assert_eq!((cy.orders, cy.events), (1, 5));
    assert!((cy.spend - 24.0).abs() < 1e-9);
    assert_eq!(cy.recent_items, ["socks", "red-cap"]);
    assert_eq!(s.user_events("cy").unwrap().len(), 5);
    let together = s
        .recommend(&Ask::new(Scenario::Together {
            item: "socks".into(),
        }))
        .unwrap();
    assert_eq!(together[0].id, "red-cap");
}

#[test]
fn segments_follow_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.record_events(&[
        Event::purchase("old", "socks", 1, 4.0, 0),
        Event::purchase("old", "socks", 1, 4.0, DAY),
        Event::purchase("new", "socks", 1, 4.0, 300 * DAY),
    ])
    .unwrap();
    assert_eq!(s.segment_users("churned").unwrap(), ["old"]);
    assert_eq!(s.segment_users("new").unwrap(), ["new"]);
    assert!(s
        .segment_users("nonsense")
        .unwrap_err()
        .to_string()
        .contains("champions"));
}

#[test]
fn deleting_a_user_forgets_them_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut evs = Vec::new();
    for (n, user) in ["dee", "eve"].iter().enumerate() {
        evs.push(Event::purchase(*user, "red-shirt", 1, 20.0, 100 + n as u64).session("x"));
        evs.push(Event::purchase(*user, "red-cap", 1, 12.0, 100 + n as u64).session("x"));
    }
    evs.push(Event::purchase("dee", "socks", 1, 4.0, 500).session("y"));
    evs.push(Event::purchase("dee", "red-shirt", 1, 20.0, 500).session("y"));
    s.record_events(&evs).unwrap();
    let together = |s: &Store| {
        s.recommend(&Ask::new(Scenario::Together {
            item: "red-shirt".into(),
        }))
        .unwrap()
    };
    assert_eq!(together(&s).len(), 2);
    assert_eq!(s.users_like("eve", 5).unwrap()[0].id, "dee");
    assert!(s
        .segment_users("buyers")
        .unwrap()
        .contains(&"dee".to_string()));

    assert_eq!(s.stats().events, 6);
    assert!(s.delete_user("dee").unwrap());
    assert_eq!(s.stats().events, 2, "dee's four events are gone");
    let after = together(&s);
    assert_eq!(
        after.len(),
        1,
        "socks were only ever bought with the shirt by dee"
    );
    match &after[0].reasons[0] {
        recostore::Reason::BoughtTogether { support, .. } => assert_eq!(*support, 1),
        r => panic!("{r:?}"),
    }
    assert!(s.users_like("eve", 5).unwrap().is_empty());
    assert_eq!(s.segment_users("buyers").unwrap(), ["eve"]);
    assert!(s.user_events("dee").is_err());
    drop(s);
    // And it stays forgotten after a reopen.
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(together(&s).len(), 1);
    assert_eq!(s.segment_users("buyers").unwrap(), ["eve"]);
}

/// The writer remembers names it resolved from one event batch to the next; deletes, item
/// writes and failed batches must not leave it pointing at the wrong record.
#[test]
fn names_resolved_by_earlier_batches_follow_deletes_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.record_events(&[
        Event::view("ann", "red-cap", DAY),
        Event::view("bob", "socks", DAY),
    ])
    .unwrap();

    // A deleted item is unknown to the next batch, which then stores nothing.
    assert!(s.delete_item("red-cap").unwrap());
    let err = s
        .record_events(&[
            Event::view("ann", "socks", 2 * DAY),
            Event::view("ann", "red-cap", 2 * DAY),
        ])
        .unwrap_err();
    assert!(
        matches!(err, recostore::Error::InvalidEvent { index: 1, .. }),
        "{err}"
    );
    assert_eq!(s.user_activity("ann").unwrap().events, 1);

    // A deleted user comes back as a new one, with none of the old state.
    assert!(s.delete_user("bob").unwrap());
    s.record_event(&Event::view("bob", "blue-shirt", 3 * DAY))
        .unwrap();
    let bob = s.user_activity("bob").unwrap();
    assert_eq!(
        (bob.events, bob.recent_items.clone()),
        (1, vec!["blue-shirt".to_string()])
    );

    // A batch that fails after creating a user leaves no trace, and the next one creates
    // that user properly.
    s.record_events(&[
        Event::view("cid", "socks", 4 * DAY),
        Event::view("cid", "no-such-item", 4 * DAY),
    ])
    .unwrap_err();
    assert!(s.get_user("cid").is_none());
    s.record_event(&Event::view("cid", "socks", 5 * DAY))
        .unwrap();
    assert_eq!(s.user_activity("cid").unwrap().events, 1);
    assert_eq!(s.get_user("cid").unwrap().id, "cid");
    drop(s);
    let s = store(dir.path());
    assert_eq!(s.user_activity("cid").unwrap().events, 1);
    assert_eq!(s.user_activity("bob").unwrap().events, 1);
}
