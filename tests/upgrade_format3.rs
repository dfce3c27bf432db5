//! Opening a store that recostore wrote in store format 3 (the bounded co-occurrence lists).
//!
//! `tests/fixtures/format-3-shop` was written by the format-3 binary (commit 0f72072) with
//! `recostore import jsonl --items tests/data/shop-items.jsonl --users tests/data/shop-users.jsonl
//! --events tests/data/shop-events.jsonl`. Opening it now derives the behaviour state again from
//! its event log; afterwards it must answer exactly as a store that imported the same files with
//! today's code, and keep doing so after a reopen.

use std::path::{Path, PathBuf};

use recostore::import::{jsonl, ImportOptions};
use recostore::scenario::{Ask, Scenario};
use recostore::Store;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

const USERS: [&str; 4] = ["ana", "ben", "cleo", "dev"];
const ITEMS: [&str; 4] = ["tent-2p", "pegs", "mallet", "mug"];

/// What behaviour left, as the public API shows it.
fn answers(store: &Store) -> String {
    let mut out = Vec::new();
    for u in USERS {
        out.push(format!("{u}: {:?}", store.user_activity(u)));
        out.push(format!("{u} events: {:?}", store.user_events(u).ok()));
        for s in [Scenario::ForUser, Scenario::AfterPurchase] {
            out.push(format!(
                "{u} {s:?}: {:?}",
                store.recommend(&Ask::new(s.clone()).user(u))
            ));
        }
    }
    for i in ITEMS {
        out.push(format!("{i}: {:?}", store.item_activity(i)));
        let item = || i.to_string();
        for s in [
            Scenario::Together { item: item() },
            Scenario::Viewed { item: item() },
            Scenario::Complements { item: item() },
        ] {
            out.push(format!(
                "{i} {s:?}: {:?}",
                store.recommend(&Ask::new(s.clone()))
            ));
        }
    }
    let s = store.stats();
    out.push(format!(
        "{} {} {} {} {}",
        s.events, s.clock, s.bought_lines, s.viewed_lines, s.users
    ));
    out.join("\n")
}

#[test]
fn a_format_3_store_is_upgraded_to_exact_baskets() {
    let old = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-3-shop"),
        old.path(),
    );
    let fresh = tempfile::tempdir().unwrap();
    let reference = Store::open(fresh.path()).unwrap();
    let files = jsonl::JsonlFiles {
        items: Some(data("shop-items.jsonl")),
        users: Some(data("shop-users.jsonl")),
        events: Some(data("shop-events.jsonl")),
    };
    jsonl::import(&reference, &files, &ImportOptions::default()).unwrap();
    let want = answers(&reference);
    assert!(
        want.contains("BoughtTogether { with: \"tent-2p\", support: 2, exact: true"),
        "the reference store:\n{want}"
    );

    let upgraded = Store::open(old.path()).expect("open the format-3 store");
    assert_eq!(answers(&upgraded), want);
    // Purchases are no longer counted as views: ana's tent and pegs were viewed together in
    // one session (s1) and bought together in one basket (o1), ben's in a basket only.
    let viewed = upgraded
        .recommend(&Ask::new(Scenario::Viewed {
            item: "tent-2p".into(),
        }))
        .unwrap();
    assert_eq!(viewed.len(), 2, "{viewed:?}");
    drop(upgraded);
    // The upgrade was written once: a second open reads the new layout.
    let again = Store::open(old.path()).expect("reopen");
    assert_eq!(answers(&again), want);
}
