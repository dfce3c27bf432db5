//! "Forget this customer, and prove it": `forget_users` returns a receipt whose counts are the
//! test's own tally of what the customer did, and afterwards no file of the store holds the
//! customer's id, checked here by reading every raw file byte by byte (sled's included)
//! with code of the test's own, not the store's scan.

use std::path::{Path, PathBuf};

use recostore::{Ask, Event, Item, Scenario, Store, User};

/// An id no other record, tag or title contains.
const GONE: &str = "cust-9f3a77";
const STAYS: &str = "cust-5b21c0";

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            out.push(p);
        }
    }
    out
}

/// Every file under `dir` that holds `needle` anywhere, with the count.
fn raw_hits(dir: &Path, needle: &str) -> Vec<(PathBuf, usize)> {
    let n = needle.as_bytes();
    files(dir)
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            let count = bytes.windows(n.len()).filter(|w| *w == n).count();
            (count > 0).then_some((p, count))
        })
        .collect()
}

struct Tally {
    events: u64,
    baskets: u64,
    sessions: u64,
    lines: u64,
    shows: u64,
}

/// A shop where `GONE` and `STAYS` buy in baskets, browse in sessions and are shown items;
/// returns the tally of what `GONE` did.
fn shop(store: &Store) -> Tally {
    let items: Vec<Item> = (0..40)
        .map(|i| {
            Item::new(format!("sku-{i}"), [(format!("colour:c{}", i % 4), 1.0)])
                .title(format!("mug {i}"))
                .stock(5)
        })
        .collect();
    store.upsert_items(&items).expect("items");
    store
        .upsert_users(&[
            User::new(GONE, [("colour:c1", 1.0)]),
            User::new(STAYS, [("colour:c2", 1.0)]),
        ])
        .expect("users");
    let mut events = Vec::new();
    let mut t = Tally {
        events: 0,
        baskets: 0,
        sessions: 0,
        lines: 0,
        shows: 0,
    };
    for (u, who) in [(GONE, 0u64), (STAYS, 1)] {
        for order in 0..4u64 {
            let basket: Vec<String> = (0..3)
                .map(|j| format!("sku-{}", (order * 5 + j + who) % 40))
                .collect();
            for item in &basket {
                events.push(
                    Event::purchase(u, item.as_str(), 1, 9.0, 1_000 + order * 100)
                        .session(format!("{u}-order-{order}")),
                );
            }
            if who == 0 {
                t.baskets += 1;
                t.lines += basket.len() as u64;
                t.events += basket.len() as u64;
            }
        }
        for visit in 0..3u64 {
            let seen: Vec<String> = (0..4)
                .map(|j| format!("sku-{}", (visit * 7 + j + 20 + who) % 40))
                .collect();
            for (k, item) in seen.iter().enumerate() {
                events.push(
                    Event::view(u, item.as_str(), 5_000 + visit * 100 + k as u64)
                        .session(format!("{u}-visit-{visit}")),
                );
            }
            if who == 0 {
                t.sessions += 1;
                t.lines += seen.len() as u64;
                t.events += seen.len() as u64;
            }
        }
        let shown: Vec<String> = (0..6).map(|j| format!("sku-{}", j + 30)).collect();
        events.push(Event::impression(
            u,
            "home",
            "builtin",
            shown.clone(),
            9_000,
        ));
        if who == 0 {
            t.events += 1;
            t.shows += shown.len() as u64;
        }
    }
    store.record_events(&events).expect("events");
    t
}

#[test]
fn the_receipt_counts_what_was_taken_and_no_file_holds_the_customer_afterwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let tally = shop(&store);
    // Answers served to the customer, recorded as impressions; and sled holding old values.
    store
        .serve(&Ask::new(Scenario::ForUser).user(GONE).k(5))
        .expect("answer");
    store.rebuild().expect("fold");
    store.checkpoint().expect("checkpoint");
    store.flush().expect("flush");
    let derived = store
        .user_activity(GONE)
        .expect("activity")
        .derived_tags
        .len() as u64;
    assert!(derived > 0);
    let backup = elsewhere.path().join("before");
    store.backup(&backup).expect("backup");
    // The test can fail: the customer is in the files now.
    assert!(!raw_hits(dir.path(), GONE).is_empty());

    let r = store.forget_user(GONE).expect("forget");
    assert_eq!(r.deleted, vec![GONE.to_string()]);
    assert!(r.not_found.is_empty());
    assert_eq!(r.events_removed, tally.events, "events");
    assert_eq!(r.events_pruned_earlier, 0);
    assert_eq!(r.baskets_taken_back, tally.baskets, "baskets");
    assert_eq!(r.sessions_taken_back, tally.sessions, "sessions");
    assert_eq!(r.cooccurrence_lines, tally.lines, "lines");
    assert_eq!(r.shows_purged, tally.shows, "shows");
    assert_eq!(r.derived_tags_purged, derived, "derived tags");
    assert!(r.generations_retired.contains(&(r.generation - 1)), "{r:?}");
    assert!(r.files_held.is_empty(), "{:?}", r.files_held);
    let gone_at = r.bytes_gone_at_ms.expect("a time");
    assert!(gone_at > 1_700_000_000_000);
    assert_eq!(r.backups_before.len(), 1);
    assert_eq!(
        std::fs::canonicalize(&r.backups_before[0].path).expect("path"),
        std::fs::canonicalize(&backup).expect("path")
    );

    // No byte of the id in any file of the store; the other customer is still there.
    assert_eq!(raw_hits(dir.path(), GONE), vec![]);
    assert!(!raw_hits(dir.path(), STAYS).is_empty());
    assert!(store.get_user(GONE).is_none());
    assert!(store.get_user(STAYS).is_some());
    let v = store.verify_forgotten(GONE).expect("verify");
    assert!(v.clean(), "{v:?}");
    assert!(v.files > 3 && v.bytes > 0);
    assert!(!store.verify_forgotten(STAYS).expect("verify").clean());
    // The backup taken before still holds the customer, as the receipt says.
    assert!(!raw_hits(&backup, GONE).is_empty());
    // Unknown ids are reported, and cost nothing else: no fold.
    let generation = store.stats().generation;
    let again = store.forget_users(&[GONE, GONE]).expect("again");
    assert!(again.deleted.is_empty() && again.not_found == vec![GONE.to_string()]);
    assert_eq!(store.stats().generation, generation);
    drop(store);
    // Across a reopen too.
    let store = Store::open(dir.path()).expect("reopen");
    assert!(store.get_user(GONE).is_none());
    drop(store);
    assert_eq!(raw_hits(dir.path(), GONE), vec![]);
}

#[test]
fn a_reader_holding_the_old_segment_is_named_and_the_bytes_go_when_it_lets_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    shop(&store);
    store.rebuild().expect("fold");
    let view = store.view();
    let r = store.forget_user(GONE).expect("forget");
    assert_eq!(r.bytes_gone_at_ms, None, "a view holds the old segment");
    assert!(
        r.files_held
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "seg")),
        "{:?}",
        r.files_held
    );
    assert!(
        !raw_hits(dir.path(), GONE).is_empty(),
        "still in the held file"
    );
    drop(view);
    let v = store.verify_forgotten(GONE).expect("verify");
    assert!(v.clean(), "{v:?}");
    assert_eq!(raw_hits(dir.path(), GONE), vec![]);
}

#[cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]
#[test]
fn the_cli_forgets_with_a_receipt_and_verify_finds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        shop(&store);
    }
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_recostore"))
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .output()
            .expect("run")
    };
    let before = run(&["verify", "--forgotten", GONE]);
    assert_eq!(before.status.code(), Some(1), "found before");
    let out = run(&["forget", GONE]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("events removed") && text.contains("no file holds them since"),
        "{text}"
    );
    let after = run(&["verify", "--forgotten", GONE, "--json"]);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&after.stdout).expect("json");
    assert_eq!(v["found"], serde_json::json!([]));
    let missing = run(&["forget", "nobody"]);
    assert_eq!(missing.status.code(), Some(3));
}
