//! JSON lines in and out: the example files import, export → import → export gives identical
//! files, a re-run duplicates nothing, stdin and `.gz` work, and an export taken while the
//! store is written to is a consistent snapshot.
// Runs the `recostore` binary, which needs the `cli`, `admin` and `plugins` features.
#![cfg(all(feature = "cli", feature = "admin", feature = "plugins"))]

use std::io::Write;
use std::path::{Path, PathBuf};

use recostore::import::jsonl::{import, JsonlFiles};
use recostore::import::ImportOptions;
use recostore::{Event, Item, Store};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn example() -> JsonlFiles {
    JsonlFiles {
        items: Some(data("shop-items.jsonl")),
        users: Some(data("shop-users.jsonl")),
        events: Some(data("shop-events.jsonl")),
    }
}

fn files(dir: &Path) -> JsonlFiles {
    JsonlFiles {
        items: Some(dir.join("items.jsonl")),
        users: Some(dir.join("users.jsonl")),
        events: Some(dir.join("events.jsonl")),
    }
}

fn read(dir: &Path) -> Vec<String> {
    ["items.jsonl", "users.jsonl", "events.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).expect("read export"))
        .collect()
}

#[test]
fn example_files_import_and_round_trip_exactly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = Store::open(tmp.path().join("a")).expect("open a");
    let s = import(&a, &example(), &ImportOptions::default()).expect("import");
    assert_eq!(
        (s.items, s.users, s.events, s.recorded, s.skipped),
        (8, 3, 16, 16, 0)
    );
    let lantern = a.get_item("lantern").expect("lantern");
    assert!(lantern.members_only);
    assert_eq!(
        a.get_user("ben").expect("ben").recent_items,
        ["tent-2p", "pegs"]
    );
    assert_eq!(a.item_activity("tent-2p").expect("stats").orders, 2);
    assert!(a.get_user("dev").is_some(), "an event creates its user");

    let first = tmp.path().join("export-1");
    let e = a.export_jsonl(&first).expect("export");
    assert_eq!((e.items, e.users, e.events), (8, 4, 16));

    let b = Store::open(tmp.path().join("b")).expect("open b");
    import(&b, &files(&first), &ImportOptions::default()).expect("import the export");
    let second = tmp.path().join("export-2");
    b.export_jsonl(&second).expect("export again");
    assert_eq!(
        read(&first),
        read(&second),
        "export → import → export is the identity"
    );
    assert_eq!(
        a.user_activity("ana").expect("ana").derived_tags,
        b.user_activity("ana").expect("ana").derived_tags,
        "replaying the export rebuilds the same behaviour state"
    );

    // A re-run upserts and duplicates nothing.
    let again = import(&a, &example(), &ImportOptions::default()).expect("re-run");
    assert_eq!((again.recorded, again.already_stored), (0, 16));
    let third = tmp.path().join("export-3");
    a.export_jsonl(&third).expect("export");
    assert_eq!(read(&first), read(&third));
}

#[test]
fn gzip_files_are_read_transparently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let gz = tmp.path().join("items.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(data("shop-items.jsonl")).expect("read"))
        .expect("write");
    enc.finish().expect("finish");
    let store = Store::open(tmp.path().join("s")).expect("open");
    let s = import(
        &store,
        &JsonlFiles {
            items: Some(gz),
            ..JsonlFiles::default()
        },
        &ImportOptions::default(),
    )
    .expect("import");
    assert_eq!(s.items, 8);
    assert_eq!(
        store.get_item("mug").expect("mug").title,
        "Enamel camping mug"
    );
}

#[test]
fn stdin_is_read_through_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("s");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(["import", "jsonl", "--items", "-", "--json", "--dir"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&std::fs::read(data("shop-items.jsonl")).expect("read"))
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(s["items"], 8);
}

#[test]
fn an_export_during_writes_is_one_consistent_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path().join("s")).expect("open");
    let items: Vec<Item> = (0..2_000)
        .map(|i| Item::new(format!("i{i}"), [("t", 1.0)]))
        .collect();
    store.upsert_items(&items).expect("items");
    let events: Vec<Event> = (0..20_000u64)
        .map(|n| {
            Event::view(
                format!("u{}", n % 300),
                format!("i{}", n % 2_000),
                1_000 + n,
            )
        })
        .collect();
    store.record_events(&events).expect("events");
    let out = tmp.path().join("export");
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for round in 0..20u64 {
                let more: Vec<Event> = (0..500u64)
                    .map(|n| {
                        Event::view(format!("w{n}"), format!("i{n}"), 50_000 + round * 1_000 + n)
                    })
                    .collect();
                store.record_events(&more).expect("more events");
                store
                    .upsert_items(&[Item::new(format!("new{round}"), [("t", 1.0)])])
                    .expect("item");
            }
        });
        let e = store.export_jsonl(&out).expect("export while writing");
        writer.join().expect("writer");
        // Whatever instant the export saw, its files agree with each other: every event's
        // user and item are in the export, and the event count is a whole number of batches.
        let text = read(&out);
        let items: std::collections::HashSet<String> = text[0]
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("item")["id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            })
            .collect();
        let users: std::collections::HashSet<String> = text[1]
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("user")["id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            })
            .collect();
        for l in text[2].lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("event");
            assert!(items.contains(v["item"].as_str().expect("item")));
            assert!(users.contains(v["user"].as_str().expect("user")));
        }
        assert_eq!(
            (e.events - 20_000) % 500,
            0,
            "whole batches only: {}",
            e.events
        );
    });
}

#[test]
fn identical_events_split_across_batches_are_all_kept_then_never_repeated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path().join("s")).expect("open");
    store
        .upsert_items(&[Item::new("x", [("t", 1.0)])])
        .expect("item");
    // 10,001 lines: the last two are identical and fall into different import batches.
    let mut lines: Vec<String> = (0..10_000)
        .map(|n| {
            format!(
                r#"{{"user": "u{}", "item": "x", "kind": "view", "ts": {}}}"#,
                n % 7,
                1 + n
            )
        })
        .collect();
    lines.push(lines[9_999].clone());
    let path = tmp.path().join("events.jsonl");
    std::fs::write(&path, lines.join("\n")).expect("write");
    let files = JsonlFiles {
        events: Some(path),
        ..JsonlFiles::default()
    };
    let first = import(&store, &files, &ImportOptions::default()).expect("import");
    assert_eq!((first.recorded, first.already_stored), (10_001, 0));
    let again = import(&store, &files, &ImportOptions::default()).expect("re-run");
    assert_eq!((again.recorded, again.already_stored), (0, 10_001));
    assert_eq!(store.stats().events, 10_001);
}

#[test]
fn strict_stdin_reports_bad_lines_as_stdin_and_stores_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("s");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recostore"))
        .args(["import", "jsonl", "--items", "-", "--strict", "--dir"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            b"{\"id\": \"a\", \"tags\": {\"x\": 1}}\n{\"id\": \"b\", \"tags\": {\"x\": \"no\"}}\n",
        )
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stdin line 2"), "{err}");
    assert_eq!(
        Store::open(&dir).expect("open").stats().items,
        0,
        "strict: nothing stored"
    );
}
