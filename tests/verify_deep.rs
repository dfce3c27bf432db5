//! `verify` checks the whole store, not one file: a segment from another store is refused
//! (and rebuilt), damage inside sled's files is reported where export would trip on it, and
//! `compact` removes what deleted users left in sled's files.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::path::Path;

use recostore::{Ask, Config, Error, Event, Item, Scenario, Store, User};

fn shop(dir: &Path, prefix: &str, n: usize) -> Store {
    let store = Store::open(dir).expect("open");
    let items: Vec<Item> = (0..n)
        .map(|i| Item::new(format!("{prefix}-{i}"), [(format!("t:{}", i % 17), 1.0)]))
        .collect();
    store.upsert_items(&items).expect("items");
    let users: Vec<User> = (0..50)
        .map(|u| User::new(format!("user-{u}"), [(format!("t:{}", u % 17), 1.0)]))
        .collect();
    store.upsert_users(&users).expect("users");
    let events: Vec<Event> = (0..2_000u64)
        .map(|e| {
            Event::view(
                format!("user-{}", e % 50),
                format!("{prefix}-{}", e as usize % n),
                100 + e,
            )
        })
        .collect();
    store.record_events(&events).expect("events");
    store.rebuild().expect("rebuild");
    store.flush().expect("flush");
    store
}

#[test]
fn a_healthy_store_verifies_with_true_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path(), "a", 400);
    let r = store.verify_deep().expect("verify");
    assert!(r.healthy(), "{r:?}");
    assert_eq!(r.records, 450);
    assert_eq!(r.events, 2_000);
    assert!(r.notes.is_empty(), "{r:?}");
}

#[test]
fn a_segment_copied_from_another_store_is_refused_and_rebuilt() {
    let (da, db) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let a = shop(da.path(), "a", 300);
    let b = shop(db.path(), "b", 300);
    let (seg_a, seg_b) = (
        recostore::internals::segment(&a.snapshot())
            .path()
            .to_path_buf(),
        recostore::internals::segment(&b.snapshot())
            .path()
            .to_path_buf(),
    );
    assert_eq!(
        seg_a.file_name(),
        seg_b.file_name(),
        "same generation in both"
    );
    drop(a);
    drop(b);
    std::fs::copy(&seg_b, &seg_a).expect("copy b's segment over a's");
    let nbr = |p: &Path| p.with_extension("nbr");
    if nbr(&seg_b).exists() {
        std::fs::copy(nbr(&seg_b), nbr(&seg_a)).expect("and its neighbours");
    }
    // Without repair, open says why.
    let Err(e) = Store::open_with(da.path(), Config::default().repair_segments(false)) else {
        panic!("a foreign segment opened");
    };
    assert!(matches!(e, Error::CorruptSegment { .. }), "{e}");
    assert!(e.to_string().contains("belongs to another store"), "{e}");
    // With repair (the default), it is rebuilt from a's own records.
    let a = Store::open(da.path()).expect("open repairs");
    let got = a
        .recommend(&Ask::new(Scenario::Similar { item: "a-1".into() }).k(5))
        .expect("a's item");
    assert!(got.iter().all(|r| r.id.starts_with("a-")), "{got:?}");
    assert!(a.verify_deep().expect("verify").healthy());
}

/// Flip one byte at several places in sled's data file: whenever the damage is where an
/// export reads, verify must report it (never "healthy" while export fails).
#[test]
fn damage_in_sleds_files_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    drop(shop(&src, "a", 2_000));
    let file_len = std::fs::metadata(src.join("db/db")).expect("db file").len();
    let (mut caught, mut trials) = (0, 0);
    for step in 1..20u64 {
        let copy = dir.path().join(format!("copy{step}"));
        copy_dir(&src, &copy);
        let at = file_len * step / 20;
        let mut bytes = std::fs::read(copy.join("db/db")).expect("read");
        bytes[at as usize] ^= 0x5a;
        std::fs::write(copy.join("db/db"), &bytes).expect("write");
        let Ok(store) = Store::open(&copy) else {
            caught += 1; // refused at open: nothing served from damaged data
            trials += 1;
            continue;
        };
        trials += 1;
        let exported = store.export_jsonl(dir.path().join(format!("export{step}")));
        let r = store.verify_deep().expect("verify runs");
        if exported.is_err() {
            assert!(
                !r.healthy(),
                "byte {at}: export failed ({exported:?}) but verify said healthy"
            );
        }
        if !r.healthy() || exported.is_err() {
            caught += 1;
        }
    }
    eprintln!("{caught} of {trials} flips detected");
    assert!(caught > 0, "no flip was detected at all");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("list").flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("list").flatten().any(|e| {
        if e.file_type().expect("type").is_dir() {
            files_contain(&e.path(), needle)
        } else {
            let b = std::fs::read(e.path()).unwrap_or_default();
            b.windows(needle.len()).any(|w| w == needle)
        }
    })
}

#[test]
fn compact_removes_what_a_deleted_user_left_in_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path(), "a", 300);
    let victim = "victim-7f3a9c";
    let secret = "secret-query-e81b44";
    store
        .upsert_users(&[User::new(victim, [("t:1", 1.0)])])
        .expect("victim");
    store
        .record_events(&[
            Event::view(victim, "a-3", 5_000),
            Event::search(victim, secret, 5_001),
        ])
        .expect("events");
    store.flush().expect("flush");
    store.delete_user(victim).expect("delete");
    store.rebuild().expect("rebuild");
    store.flush().expect("flush");
    let before = store.stats();
    drop(store);
    let r = Store::compact(dir.path(), Config::default()).expect("compact");
    assert!(r.keys > 0, "{r:?}");
    let db = dir.path().join("db");
    assert!(
        !files_contain(&db, victim.as_bytes()),
        "the victim's id is still in sled's files"
    );
    assert!(
        !files_contain(&db, secret.as_bytes()),
        "the victim's search is still in sled's files"
    );
    let store = Store::open(dir.path()).expect("reopen");
    let after = store.stats();
    assert_eq!(
        (after.items, after.users, after.events),
        (before.items, before.users, before.events)
    );
    assert!(store.verify_deep().expect("verify").healthy());
    // Nothing is left beside the store.
    let parent = dir.path().parent().expect("parent");
    let name = dir
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    let leftovers: Vec<String> = std::fs::read_dir(parent)
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(&name) && n != &name)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_cli_verifies_and_compacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(shop(dir.path(), "a", 200));
    let d = dir.path().to_str().expect("utf-8");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_recostore"))
            .args(args)
            .output()
            .expect("run recostore")
    };
    let out = run(&["verify", "--dir", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("healthy:") && text.contains("2000 events"),
        "{text}"
    );
    let out = run(&["verify", "--quick", "--dir", d]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum only"));
    let out = run(&["compact", "--dir", d, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(r["keys"].as_u64().expect("keys") > 250, "{r}");
}

/// Finding 17's last part: a tag name that only a deleted user (or a deleted item) had is
/// reported by the deep check and removed by compaction, from the durable records and the
/// segment alike; a tag a profile still uses stays, and the name can be used again later.
#[test]
fn compact_removes_the_tag_names_no_record_or_profile_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path(), "a", 300);
    let victim_tag = "name:victim-5d2c81";
    let item_tag = "colour:gone-9e1f07";
    let profile_tag = "colour:teal-40c1aa";
    store
        .upsert_users(&[User::new("victim", [("t:1", 1.0), (victim_tag, 1.0)])])
        .expect("victim");
    store
        .upsert_items(&[
            Item::new("gone", [("t:2", 1.0), (item_tag, 1.0)]),
            Item::new("teal", [("t:3", 1.0), (profile_tag, 1.0)]),
        ])
        .expect("items");
    // user-1 viewed "teal": its tags are in user-1's derived profile.
    store
        .record_event(&Event::view("user-1", "teal", 9_000))
        .expect("view");
    store.delete_user("victim").expect("delete");
    store.delete_items(&["gone", "teal"]).expect("delete items");
    store.rebuild().expect("rebuild");
    store.flush().expect("flush");
    let report = store.verify_deep().expect("verify");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("2 tag names are used by no record")),
        "{:?}",
        report.notes
    );
    let similar_before = store.similar_items("a-1", 10).expect("similar");
    drop(store);
    assert!(
        files_contain(dir.path(), victim_tag.as_bytes()),
        "the check below would prove nothing"
    );

    let r = Store::compact(dir.path(), Config::default()).expect("compact");
    assert_eq!(r.unused_tags_removed, 2, "{r:?}");
    for needle in [victim_tag, item_tag] {
        assert!(
            !files_contain(dir.path(), needle.as_bytes()),
            "{needle} is still in the store's files"
        );
    }
    assert!(
        files_contain(dir.path(), profile_tag.as_bytes()),
        "a tag that a profile uses was removed"
    );

    let store = Store::open(dir.path()).expect("reopen");
    let report = store.verify_deep().expect("verify");
    assert!(report.healthy(), "{:?}", report.problems);
    assert!(
        !report
            .notes
            .iter()
            .any(|n| n.contains("tag names are used")),
        "{:?}",
        report.notes
    );
    assert_eq!(
        store.similar_items("a-1", 10).expect("similar"),
        similar_before
    );
    let derived = store.user_activity("user-1").expect("user-1").derived_tags;
    assert!(derived.iter().any(|(t, _)| t == profile_tag), "{derived:?}");
    // The name is free to be used again, and survives a rebuild and a reopen.
    store
        .upsert_item(&Item::new("back", [(victim_tag, 1.0)]))
        .expect("reuse");
    let found = store
        .profile_items(&[(victim_tag.to_string(), 1.0)], 5)
        .expect("profile");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "back");
    store.rebuild().expect("rebuild");
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.get_item("back").expect("back").tags,
        vec![(victim_tag.to_string(), 1.0)]
    );
    assert!(store.verify_deep().expect("verify").healthy());
}
