//! Several shops in one store: three namespaces (the default one, `shop-a`, `shop-b`) hold
//! the same item and user ids with different tags, baskets, plugins and slots, and nothing
//! of one is seen from another: not by a lookup, a search, any scenario, a plugin, a slot,
//! an export, a backup, a stat or the admin socket. The oracle is what the test wrote into
//! each namespace; every tag a namespace's answer carries must be of its own colour.

use std::collections::BTreeSet;
use std::path::Path;

mod plugin_support;

use recostore::{Ask, Error, Event, Item, Quota, Scenario, Store, User};

/// The shops: name, colour tag every item carries, extra item ids only it has, the item
/// `u1` bought with `i01`.
const SHOPS: [(&str, &str, usize, &str); 3] = [
    ("default", "colour:red", 0, "i04"),
    ("shop-a", "colour:blue", 0, "i02"),
    ("shop-b", "colour:green", 10, "i03"),
];

fn fill(store: &Store, colour: &str, extra: usize, partner: &str) {
    let mut items: Vec<Item> = (0..20)
        .map(|i| {
            Item::new(format!("i{i:02}"), [(colour, 1.0), ("kind:mug", 0.5)])
                .category("mugs")
                .price(10.0 + i as f32)
                .stock(5)
                .title(format!("{colour} mug {i}"))
        })
        .collect();
    items.extend((0..extra).map(|i| Item::new(format!("x{i:02}"), [(colour, 1.0)]).stock(5)));
    store.upsert_items(&items).expect("items");
    store
        .upsert_users(&[
            User::new("u1", [(colour, 1.0)]),
            User::new("u2", [(colour, 0.5)]),
        ])
        .expect("users");
    let mut events = Vec::new();
    for order in 0..3u64 {
        for item in ["i01", partner] {
            events.push(
                Event::purchase("u1", item, 1, 10.0, 1_000 + order).session(format!("o{order}")),
            );
        }
        events.push(Event::view("u2", partner, 2_000 + order));
    }
    store.record_events(&events).expect("events");
}

/// The tags and ids an answer in shop `s` may mention.
fn own(s: usize) -> (BTreeSet<String>, BTreeSet<String>) {
    let (_, colour, extra, _) = SHOPS[s];
    let tags = [colour.to_string(), "kind:mug".to_string()].into();
    let mut ids: BTreeSet<String> = (0..20).map(|i| format!("i{i:02}")).collect();
    ids.extend((0..extra).map(|i| format!("x{i:02}")));
    (tags, ids)
}

fn asks() -> Vec<Ask> {
    vec![
        Ask::new(Scenario::ForUser).user("u1").k(30),
        Ask::new(Scenario::Similar { item: "i01".into() }).k(30),
        Ask::new(Scenario::Together { item: "i01".into() }).k(30),
        Ask::new(Scenario::Viewed { item: "i01".into() }).k(30),
        Ask::new(Scenario::Complements { item: "i01".into() }).k(30),
        Ask::new(Scenario::Substitutes { item: "i01".into() }).k(30),
        Ask::new(Scenario::Cart {
            items: vec!["i01".into()],
        })
        .k(30),
        Ask::new(Scenario::AfterPurchase).user("u1").k(30),
        Ask::new(Scenario::Trending).k(30),
        Ask::new(Scenario::Profile {
            tags: vec![
                ("colour:red".into(), 1.0),
                ("colour:blue".into(), 1.0),
                ("colour:green".into(), 1.0),
            ],
        })
        .k(30),
    ]
}

/// Every answer of every scenario in shop `s` names only its own ids and tags.
fn check_no_leak(store: &Store, s: usize) {
    let (tags, ids) = own(s);
    let name = SHOPS[s].0;
    for ask in asks() {
        let served = store.serve(&ask).expect("answer");
        for r in &served.items {
            assert!(ids.contains(&r.id), "{name}: {ask:?} answered {}", r.id);
            for (t, _) in &r.matched {
                assert!(tags.contains(t), "{name}: {ask:?} matched foreign tag {t}");
            }
            let text = format!("{:?} {}", r.reasons, r.title);
            for (other, colour, _, _) in SHOPS {
                if other != name {
                    assert!(
                        !text.contains(colour),
                        "{name}: {ask:?} explained with {other}'s {colour}: {text}"
                    );
                }
            }
        }
    }
    // Behaviour is the namespace's own: `i01`'s basket partner is this shop's.
    let together = store
        .recommend(&Ask::new(Scenario::Together { item: "i01".into() }).k(5))
        .expect("together");
    assert_eq!(
        together.first().map(|r| r.id.as_str()),
        Some(SHOPS[s].3),
        "{name}: bought together with i01"
    );
    let stats = store.stats();
    assert_eq!(stats.items, 20 + SHOPS[s].2, "{name}: items");
    assert_eq!(stats.users, 2, "{name}: users");
    assert_eq!(stats.events, 9, "{name}: events");
    let got = store.get_item("i01").expect("i01");
    assert!(
        got.tags.iter().any(|t| t.0 == SHOPS[s].1),
        "{name}: i01's tags {:?}",
        got.tags
    );
    let events = store.user_events("u1").expect("u1's events");
    assert_eq!(events.len(), 6, "{name}: u1's log");
    assert!(events
        .iter()
        .all(|e| e.item.as_deref() == Some("i01") || e.item.as_deref() == Some(SHOPS[s].3)));
}

fn three(root: &Store) -> [Store; 3] {
    [
        root.clone(),
        root.namespace("shop-a").expect("shop-a"),
        root.namespace("shop-b").expect("shop-b"),
    ]
}

/// Scores the negated similarity: a visible reversal of the built-in order.
#[cfg(feature = "plugins")]
fn flip_plugin() -> String {
    plugin_support::Wat {
        sign: -1.0,
        ..Default::default()
    }
    .text()
}

#[test]
fn nothing_of_one_namespace_is_seen_from_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open(dir.path()).expect("open");
    let shops = three(&root);
    for (s, store) in shops.iter().enumerate() {
        let (_, colour, extra, partner) = SHOPS[s];
        fill(store, colour, extra, partner);
    }
    assert_eq!(shops[1].namespace_name(), Some("shop-a"));
    assert!(
        root.namespace("shop-a").expect("again").dir() == shops[1].dir(),
        "the same name gives the same store"
    );
    for (s, store) in shops.iter().enumerate() {
        check_no_leak(store, s);
    }
    assert_eq!(
        root.namespaces().expect("names"),
        vec!["shop-a".to_string(), "shop-b".to_string()]
    );

    // A plugin and a slot in shop-a exist nowhere else.
    #[cfg(feature = "plugins")]
    {
        use recostore::plugin::Variant;
        shops[1]
            .plugins()
            .load("flip", flip_plugin().as_bytes())
            .expect("load");
        shops[1]
            .plugins()
            .set_slot("home", vec![Variant::new("flip", 1)])
            .expect("slot");
        let plain = Ask::new(Scenario::Similar { item: "i01".into() }).k(5);
        let flipped = shops[1]
            .serve(&plain.clone().strategy("flip"))
            .expect("flip");
        assert_eq!(flipped.ranked_by.fallback, None, "the plugin ranked");
        for other in [&shops[0], &shops[2]] {
            assert!(other.plugins().list().is_empty());
            assert!(other.plugins().slots().is_empty());
            assert!(matches!(
                other.serve(&plain.clone().strategy("flip")),
                Err(Error::PluginNotFound { .. })
            ));
            assert!(other.plugins().variant_stats(None).is_empty());
        }
    }

    // A user deleted in shop-a is still in shop-b and the default namespace.
    assert!(shops[1].delete_user("u2").expect("delete"));
    assert!(shops[1].get_user("u2").is_none());
    assert!(shops[0].get_user("u2").is_some() && shops[2].get_user("u2").is_some());
    assert_eq!(shops[2].stats().events, 9);

    // Exports: each namespace's files hold its own colour only.
    let elsewhere_exports = tempfile::tempdir().expect("tempdir");
    for (s, store) in shops.iter().enumerate() {
        let out = elsewhere_exports.path().join(format!("export-{s}"));
        store.export_jsonl(&out).expect("export");
        let text = read_all(&out);
        for (other, colour, _, _) in SHOPS {
            assert_eq!(
                text.contains(colour),
                other == SHOPS[s].0,
                "export of {} and {other}'s {colour}",
                SHOPS[s].0
            );
        }
    }

    // A namespace's backup is that namespace alone, as a store of its own; like the
    // store's own, it may not land inside the store.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    assert!(shops[1].backup(dir.path().join("inside")).is_err());
    let backup_a = elsewhere.path().join("backup-a");
    shops[1].backup(&backup_a).expect("backup a");
    let backup_all = elsewhere.path().join("backup-all");
    root.backup(&backup_all).expect("backup all");
    // Reclaiming sled's space copies every namespace's pairs.
    root.reclaim_space().expect("reclaim");
    for (s, store) in shops.iter().enumerate().filter(|(s, _)| *s != 1) {
        check_no_leak(store, s);
    }
    drop(shops);
    root.close().expect("close");
    // A namespace's directory is not a store of its own.
    assert!(matches!(
        Store::open(dir.path().join("ns").join("shop-b")),
        Err(Error::Namespace { .. })
    ));
    // Compaction (a backup and a swap) keeps every namespace.
    Store::compact(dir.path(), recostore::Config::default()).expect("compact");
    {
        let a = Store::open(&backup_a).expect("open backup a");
        assert!(a.namespaces().expect("names").is_empty());
        check_no_leak_after_delete(&a, 1);
        assert!(!read_all(&backup_a).contains("colour:green"));
        #[cfg(feature = "plugins")]
        assert_eq!(a.plugins().list().len(), 1, "the plugin went with it");
    }
    // The whole store's backup holds every namespace, plugins included.
    for path in [dir.path(), backup_all.as_path()] {
        let root = Store::open(path).expect("reopen");
        let shops = three(&root);
        check_no_leak(&shops[0], 0);
        check_no_leak_after_delete(&shops[1], 1);
        check_no_leak(&shops[2], 2);
        #[cfg(feature = "plugins")]
        assert_eq!(shops[1].plugins().list().len(), 1, "{}", path.display());
        assert!(root.verify_deep().expect("verify").healthy());
        assert!(shops[2].verify_deep().expect("verify b").healthy());
    }
}

/// shop-a after its `u2` was deleted: the same checks, less `u2`'s three views.
fn check_no_leak_after_delete(store: &Store, s: usize) {
    let (_, ids) = own(s);
    for ask in asks() {
        for r in store.recommend(&ask).expect("answer") {
            assert!(ids.contains(&r.id));
        }
    }
    assert_eq!(store.stats().users, 1);
    assert_eq!(store.stats().events, 6);
    assert!(store
        .get_item("i01")
        .expect("i01")
        .tags
        .iter()
        .any(|t| t.0 == SHOPS[s].1));
}

/// Every byte of the files under `dir`, as lossy text (exports, or a whole store).
fn read_all(dir: &Path) -> String {
    let mut text = String::new();
    for entry in walk(dir) {
        if let Ok(bytes) = std::fs::read(&entry) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn names_are_checked_and_namespaces_do_not_nest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open(dir.path()).expect("open");
    for bad in ["", "../x", "a/b", "-a", "a b", &"n".repeat(65)] {
        assert!(
            matches!(root.namespace(bad), Err(Error::Namespace { .. })),
            "{bad:?}"
        );
    }
    assert!(!dir.path().join("x").exists());
    // An unknown name is refused by the reading door, with the names there are, and
    // nothing is created.
    let a = root.namespace("a").expect("a");
    a.upsert_item(&Item::new("i", [("t", 1.0)])).expect("item");
    let Err(err) = root.existing_namespace("typo") else {
        panic!("an unknown namespace opened");
    };
    assert!(err.to_string().contains("`a`"), "{err}");
    assert_eq!(root.namespaces().expect("names"), vec!["a".to_string()]);
    assert!(matches!(a.namespace("b"), Err(Error::Namespace { .. })));
    // `default` is the store itself.
    assert_eq!(
        root.namespace("default").expect("default").dir(),
        root.dir()
    );
    // A namespace keeps the quota it opened with.
    assert!(root
        .namespace_with("a", Quota::default().max_records(1))
        .is_err());
}

#[test]
fn quotas_refuse_what_passes_them_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open_with(
        dir.path(),
        recostore::Config::default()
            .namespace_quota("small", Quota::default().max_records(5).events_per_sec(50)),
    )
    .expect("open");
    let small = root.namespace("small").expect("small");
    let free = root.namespace("free").expect("free");
    let items = |from: usize, n: usize| -> Vec<Item> {
        (from..from + n)
            .map(|i| Item::new(format!("i{i}"), [("t", 1.0)]).stock(1))
            .collect()
    };
    small.upsert_items(&items(0, 4)).expect("four");
    // Two more would make six: refused whole, nothing stored.
    let err = small.upsert_items(&items(4, 2)).expect_err("six");
    assert!(
        matches!(
            err,
            Error::QuotaExceeded {
                quota: "max_records",
                limit: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(small.stats().items, 4);
    assert!(small.get_item("i4").is_none());
    small.upsert_items(&items(4, 1)).expect("the fifth");
    // Updates pass at the limit; a user created by an event does not.
    small.upsert_items(&items(0, 5)).expect("updates");
    let err = small
        .record_events(&[Event::view("new-user", "i0", 10)])
        .expect_err("a sixth record");
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert_eq!(small.stats().users, 0);
    assert_eq!(small.stats().events, 0);
    // A deletion makes room.
    assert!(small.delete_item("i0").expect("delete"));
    small
        .upsert_users(&[User::new("u", [("t", 1.0)])])
        .expect("room again");
    // A bulk load (how `import jsonl` writes new items) is held to it too.
    let err = small
        .bulk_load_items(&items(100, 2))
        .expect_err("bulk past it");
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert!(small.get_item("i100").is_none());
    // Another namespace is not limited by it.
    free.upsert_items(&items(0, 50)).expect("free");
    free.bulk_load_items(&items(100, 50)).expect("free bulk");

    // Concurrent writers never pass the limit together.
    assert!(small.delete_item("i1").expect("delete"));
    assert!(small.delete_item("i2").expect("delete"));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = small.clone();
            std::thread::spawn(move || {
                (0..5)
                    .filter(|i| {
                        s.upsert_item(&Item::new(format!("t{t}-{i}"), [("t", 1.0)]))
                            .is_ok()
                    })
                    .count()
            })
        })
        .collect();
    let added: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(added, 2, "exactly the room there was");
    assert_eq!(small.stats().items + small.stats().users, 5);

    // Events per second: a second's worth passes, the next call finds no room, a call
    // larger than a second's worth never passes; another namespace is unpaced.
    let views = |n: usize| -> Vec<Event> {
        (0..n)
            .map(|i| Event::view("u", "i3", 100 + i as u64))
            .collect()
    };
    small.record_events(&views(50)).expect("a second's worth");
    // Room for 50 more comes back only after a second, so a stall of the test thread
    // shorter than that cannot make this pass.
    let err = small.record_events(&views(50)).expect_err("no room");
    assert!(err.to_string().contains("retry in"), "{err}");
    assert!(matches!(
        err,
        Error::QuotaExceeded {
            quota: "events_per_sec",
            ..
        }
    ));
    let err = small.record_events(&views(51)).expect_err("over the burst");
    assert!(err.to_string().contains("at most 50"), "{err}");
    assert_eq!(
        small.stats().events,
        50,
        "nothing of a refused call is stored"
    );
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    small
        .record_events(&views(50))
        .expect("room again after a second");
    free.record_events(
        &(0..500)
            .map(|i| Event::view("u", "i3", 100 + i))
            .collect::<Vec<_>>(),
    )
    .expect("unpaced");

    // A bulk load that brings back a deleted item adds a record too.
    assert_eq!(small.stats().items + small.stats().users, 5);
    assert!(small.delete_item("i3").expect("delete"));
    small
        .upsert_item(&Item::new("j", [("t", 1.0)]))
        .expect("the fifth again");
    let err = small.bulk_load_items(&items(3, 1)).expect_err("a sixth");
    assert!(matches!(err, Error::QuotaExceeded { .. }), "{err}");
    assert!(small.get_item("i3").is_none());
    // At the quota, the impression of a user never seen is dropped (it would create a
    // record); the known user's, recorded in the same batch, is kept.
    let before = small.stats().served_impressions;
    for user in ["u", "stranger"] {
        small
            .serve(
                &Ask::new(Scenario::Similar { item: "i4".into() })
                    .k(2)
                    .user(user)
                    .slot("home"),
            )
            .expect("answer");
    }
    small.flush_impressions();
    let after = small.stats().served_impressions;
    assert_eq!(
        (
            after.recorded - before.recorded,
            after.dropped - before.dropped
        ),
        (1, 1)
    );
    assert!(small.get_user("stranger").is_none());

    // The impressions the store records of its own answers do not count against the app's
    // events quota, and none of them is lost to it.
    let shown = root
        .namespace_with("shown", Quota::default().events_per_sec(10))
        .expect("shown");
    fill(&shown, "colour:red", 0, "i02");
    for n in 0..30 {
        shown
            .serve(
                &Ask::new(Scenario::Trending)
                    .k(3)
                    .user(format!("visitor{n}"))
                    .slot("home"),
            )
            .expect("answer");
    }
    shown.flush_impressions();
    let counts = shown.stats().served_impressions;
    assert_eq!((counts.recorded, counts.dropped, counts.failed), (30, 0, 0));
    // `fill`'s own nine events took most of the budget: a second gives it back whole.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    shown
        .record_events(
            &(0..10)
                .map(|i| Event::view("u", "i03", 5_000 + i))
                .collect::<Vec<_>>(),
        )
        .expect("the app's budget is whole");

    // Bad quotas are refused at open.
    assert!(root
        .namespace_with("zero", Quota::default().events_per_sec(0))
        .is_err());
    assert!(root
        .namespace_with("tiny", Quota::default().plugin_memory_bytes(1024))
        .is_err());
}

#[test]
fn imports_keep_to_the_events_quota_instead_of_failing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open(dir.path()).expect("open");
    let paced = root
        .namespace_with("paced", Quota::default().events_per_sec(200))
        .expect("paced");
    paced
        .upsert_items(&[Item::new("i", [("t", 1.0)])])
        .expect("item");
    let file = dir.path().join("events.jsonl");
    let lines: String = (0..500)
        .map(|i| {
            format!(
                "{{\"kind\":\"view\",\"user\":\"u{}\",\"item\":\"i\",\"ts\":{}}}\n",
                i % 7,
                1000 + i
            )
        })
        .collect();
    std::fs::write(&file, lines).expect("write");
    let started = std::time::Instant::now();
    let files = recostore::import::jsonl::JsonlFiles {
        items: None,
        users: None,
        events: Some(file),
    };
    let summary = recostore::import::jsonl::import(&paced, &files, &Default::default())
        .expect("the import waits, it does not fail");
    assert_eq!(summary.recorded, 500);
    // 500 events at 200/s with a 200 burst: at least 1.5 s.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(paced.stats().events, 500);
}

#[cfg(feature = "plugins")]
#[test]
fn the_plugin_memory_quota_holds_in_its_namespace_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open(dir.path()).expect("open");
    let tight = root
        .namespace_with("tight", Quota::default().plugin_memory_bytes(1 << 20))
        .expect("tight");
    let roomy = root.namespace("roomy").expect("roomy");
    assert_eq!(tight.plugins().limits().memory_bytes, 1 << 20);
    // Grows its memory by 2 MiB in every ranking call (and stops there, unlike a bomb).
    let wasm = plugin_support::Wat {
        hostile: "(drop (memory.grow (i32.const 32)))",
        ..Default::default()
    }
    .text();
    for store in [&tight, &roomy] {
        fill(store, "colour:red", 0, "i02");
        store.plugins().load("grow", wasm.as_bytes()).expect("load");
    }
    let ask = Ask::new(Scenario::Similar { item: "i01".into() })
        .k(5)
        .strategy("grow");
    let t = tight.serve(&ask).expect("answered");
    assert!(t.ranked_by.fallback.is_some(), "over the quota: fell back");
    assert_eq!(tight.plugins().info("grow").expect("info").faults.memory, 1);
    let r = roomy.serve(&ask).expect("answered");
    assert!(r.ranked_by.fallback.is_none(), "{:?}", r.ranked_by);
    assert_eq!(
        roomy.plugins().info("grow").expect("info").faults.total(),
        0
    );
}

#[cfg(feature = "admin")]
#[test]
fn the_admin_socket_runs_each_command_in_the_namespace_it_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Store::open(dir.path()).expect("open");
    for (s, store) in three(&root).iter().enumerate() {
        let (_, colour, extra, partner) = SHOPS[s];
        fill(store, colour, extra, partner);
    }
    let sock = dir.path().join("admin.sock");
    root.namespace_with("capped", Quota::default().max_records(1))
        .expect("capped");
    let server = recostore::admin::AdminServer::start(&root, &sock).expect("serve");
    let mut c = recostore::admin::AdminClient::connect(&sock, std::time::Duration::from_secs(10))
        .expect("connect");
    for (name, colour, extra, _) in SHOPS {
        c.set_namespace((name != "default").then(|| name.to_string()));
        let r = c
            .call("item.get", serde_json::json!({"id": "i01"}))
            .expect("item.get");
        assert!(r.ok, "{r:?}");
        let text = serde_json::to_string(&r.result).expect("json");
        assert!(text.contains(colour), "{name}: {text}");
        let stats = c.call("stats", serde_json::Value::Null).expect("stats");
        let s = stats.result.expect("stats");
        assert_eq!(s["items"], 20 + extra, "{name}");
        assert_eq!(s["namespace"], name);
    }
    // A write creates a namespace; a read of an unknown one is refused and creates nothing.
    c.set_namespace(Some("typo".into()));
    let r = c.call("stats", serde_json::Value::Null).expect("stats");
    assert!(!r.ok);
    c.set_namespace(Some("shop-c".into()));
    let r = c
        .call(
            "item.upsert",
            serde_json::json!({"items": [{"id": "i01", "tags": {"colour:grey": 1.0}}]}),
        )
        .expect("upsert");
    assert!(r.ok, "{r:?}");
    // A quota's refusal has its own code.
    c.set_namespace(Some("capped".into()));
    let r = c
        .call(
            "item.upsert",
            serde_json::json!({"items": [{"id": "a", "tags": {"t": 1.0}}, {"id": "b", "tags": {"t": 1.0}}]}),
        )
        .expect("upsert");
    assert_eq!(
        r.error.as_ref().map(|e| e.code),
        Some(recostore::admin::protocol::Code::Quota),
        "{r:?}"
    );
    c.set_namespace(None);
    let r = c.call("ns.list", serde_json::Value::Null).expect("ns.list");
    assert_eq!(
        r.result.expect("list")["namespaces"],
        serde_json::json!(["capped", "shop-a", "shop-b", "shop-c"])
    );
    server.shutdown().expect("shutdown");
}
