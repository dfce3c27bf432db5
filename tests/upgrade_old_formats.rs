//! Opening stores that older recostore binaries wrote: store formats 1, 2 and 3.
//!
//! Each `tests/fixtures/format-N-shop` was written by the binary of that format with
//! `recostore import jsonl --dir tests/fixtures/format-N-shop --items tests/data/shop-items.jsonl
//! --users tests/data/shop-users.jsonl --events tests/data/shop-events.jsonl`:
//!
//! | fixture | binary | what that format kept |
//! |---|---|---|
//! | format-1-shop | commit 6747302 | one sled key per event, behaviour state per event |
//! | format-2-shop | commit ab04d4d | the chunked event log and journal, state at checkpoints |
//! | format-3-shop | commit 0f72072 | one key per item, bounded co-occurrence lists |
//!
//! Opening one now derives the behaviour state again from its event log; afterwards it must
//! answer exactly as a store that imported the same files with today's code, and keep doing so
//! after a reopen. The fixtures are copied before opening: the checked-in bytes stay old.

use std::path::{Path, PathBuf};

use recostore::import::{jsonl, ImportOptions};
use recostore::Store;
use recostore::{Ask, Scenario};

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

/// What a store that imported the fixtures' files with today's code answers.
fn reference() -> String {
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
    want
}

/// A copy of fixture `name`, to open (and so upgrade) without touching the checked-in bytes.
fn fixture(name: &str) -> tempfile::TempDir {
    let old = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
        old.path(),
    );
    old
}

/// Open the old store, compare with the reference, reopen, compare again.
fn upgrades_to_the_reference(name: &str) {
    let old = fixture(name);
    let want = reference();
    let upgraded = Store::open(old.path()).unwrap_or_else(|e| panic!("open {name}: {e}"));
    assert_eq!(answers(&upgraded), want, "{name} after the upgrade");
    drop(upgraded);
    let again = Store::open(old.path()).expect("reopen");
    assert_eq!(answers(&again), want, "{name} reopened");
}

#[test]
fn a_format_1_store_is_upgraded() {
    upgrades_to_the_reference("format-1-shop");
}

#[test]
fn a_format_2_store_is_upgraded() {
    upgrades_to_the_reference("format-2-shop");
}

#[test]
fn a_format_3_store_is_upgraded_to_exact_baskets() {
    let old = fixture("format-3-shop");
    let want = reference();

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

/// A store from before namespaces is the default namespace: adding a namespace that holds
/// the same item ids changes none of its answers, before or after a reopen.
#[test]
fn an_old_store_is_the_default_namespace_when_namespaces_are_added() {
    let old = fixture("format-2-shop");
    let want = reference();
    let store = Store::open(old.path()).expect("open");
    let shop = store.namespace("second-shop").expect("namespace");
    shop.upsert_item(&recostore::Item::new("tent-2p", [("colour:pink", 1.0)]))
        .expect("same id, other shop");
    assert_eq!(answers(&store), want);
    assert_eq!(shop.stats().items, 1);
    drop(shop);
    drop(store);
    let again = Store::open(old.path()).expect("reopen");
    assert_eq!(answers(&again), want);
    assert_eq!(again.namespaces().expect("names"), vec!["second-shop"]);
    let shop = again.existing_namespace("second-shop").expect("namespace");
    let tent = shop.get_item("tent-2p").expect("tent");
    assert_eq!(tent.tags, vec![("colour:pink".to_string(), 1.0)]);
}
