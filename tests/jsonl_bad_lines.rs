//! The bad-line corpus: every bad line is reported with its number and reason and skipped;
//! nothing is stored half-written; `--strict` stores nothing at all; nothing panics.

use std::path::Path;

use recostore::import::jsonl::{import, JsonlFiles};
use recostore::import::ImportOptions;
use recostore::{Error, Store};

fn corpus(dir: &Path) -> (JsonlFiles, Vec<(u64, &'static str)>) {
    let long_tag = "t".repeat(1_100);
    let many_tags: String = (0..10_000)
        .map(|i| format!("\"tag{i}\": 1.0"))
        .collect::<Vec<_>>()
        .join(", ");
    let items = [
        r#"{"id": "good-1", "tags": {"a": 1.0}, "price": 5}"#.to_string(),
        r#"{"id": "broken", "tags": {"a": 1.0"#.to_string(),
        r#"{"tags": {"a": 1.0}}"#.to_string(),
        r#"{"id": 17, "tags": {"a": 1.0}}"#.to_string(),
        r#"{"id": "typed", "tags": {"a": "heavy"}}"#.to_string(),
        r#"{"id": "nan", "tags": {"a": NaN}}"#.to_string(),
        r#"{"id": "inf", "tags": {"a": 1e999}}"#.to_string(),
        r#"{"id": "negative", "tags": {"a": -1.0}}"#.to_string(),
        format!(r#"{{"id": "long-tag", "tags": {{"{long_tag}": 1.0}}}}"#),
        format!(r#"{{"id": "many-tags", "tags": {{{many_tags}}}}}"#),
        r#"{"id": "price", "tags": {"a": 1.0}, "price": "cheap"}"#.to_string(),
        String::new(),
        r#"{"id": "good-2", "tags": {"b": 1.0}, "whatever": [1, 2]}"#.to_string(),
    ];
    let mut garbage = vec![0xff, 0xfe, b'{', 0x00, b'}'];
    garbage.push(b'\n');
    let events = [
        r#"{"user": "u1", "item": "good-1", "kind": "view", "ts": 100}"#,
        r#"{"user": "u1", "item": "missing", "kind": "view", "ts": 101}"#,
        r#"{"user": "u1", "item": "good-1", "kind": "teleport", "ts": 102}"#,
        r#"{"user": "u1", "item": "good-1", "kind": "rating", "ts": 103}"#,
        r#"{"user": "u1", "item": "good-1", "kind": "rating", "ts": 104, "rating": 9}"#,
        r#"{"user": "", "item": "good-1", "kind": "view", "ts": 105}"#,
        r#"{"user": "u1", "item": "good-1", "kind": "view"}"#,
        r#"{"user": "u1", "item": "good-2", "kind": "purchase", "ts": 106, "qty": 2, "price": 3.5}"#,
    ];
    let items_path = dir.join("items.jsonl");
    std::fs::write(&items_path, items.join("\n")).expect("write");
    let events_path = dir.join("events.jsonl");
    let mut bytes = events.join("\n").into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(&garbage);
    std::fs::write(&events_path, bytes).expect("write");
    let expected_bad = vec![
        (2, "items"),
        (3, "items"),
        (4, "items"),
        (5, "items"),
        (6, "items"),
        (7, "items"),
        (8, "items"),
        (9, "items"),
        (10, "items"),
        (11, "items"),
        (2, "events"),
        (3, "events"),
        (4, "events"),
        (5, "events"),
        (6, "events"),
        (7, "events"),
        (9, "events"),
    ];
    (
        JsonlFiles {
            items: Some(items_path),
            users: None,
            events: Some(events_path),
        },
        expected_bad,
    )
}

#[test]
fn every_bad_line_is_reported_and_skipped_and_the_good_ones_stored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (files, bad) = corpus(tmp.path());
    let store = Store::open(tmp.path().join("s")).expect("open");
    let s = import(&store, &files, &ImportOptions::default()).expect("import");
    assert_eq!(s.skipped as usize, bad.len(), "{:#?}", s.bad_rows);
    let reported: Vec<(u64, String)> = s
        .bad_rows
        .iter()
        .map(|b| (b.line, b.file.replace(".jsonl", "")))
        .collect();
    for (line, file) in &bad {
        assert!(
            reported.contains(&(*line, file.to_string())),
            "{file} line {line} not reported: {:#?}",
            s.bad_rows
        );
    }
    for b in &s.bad_rows {
        assert!(!b.reason.is_empty());
        assert!(
            b.reason.len() < 600,
            "reasons stay readable: {}",
            b.reason.len()
        );
    }
    assert_eq!(s.items, 2);
    assert_eq!(s.recorded, 2);
    let stats = store.stats();
    assert_eq!((stats.items, stats.events), (2, 2), "nothing half-written");
    for id in [
        "broken",
        "typed",
        "nan",
        "inf",
        "negative",
        "long-tag",
        "many-tags",
        "price",
    ] {
        assert!(store.get_item(id).is_none(), "{id} must not be stored");
    }
}

#[test]
fn strict_stops_at_the_first_bad_line_before_storing_anything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (files, _) = corpus(tmp.path());
    let store = Store::open(tmp.path().join("s")).expect("open");
    let err = import(
        &store,
        &files,
        &ImportOptions {
            strict: true,
            progress: None,
        },
    )
    .expect_err("strict");
    match err {
        Error::BadInput {
            source_name, line, ..
        } => {
            assert_eq!((source_name.as_str(), line), ("items.jsonl", 2));
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(store.stats().items, 0, "nothing stored");
    assert_eq!(store.stats().events, 0);
}

#[test]
fn strict_accepts_events_for_items_in_the_same_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let items = tmp.path().join("i.jsonl");
    let events = tmp.path().join("e.jsonl");
    std::fs::write(&items, "{\"id\": \"x\", \"tags\": {\"a\": 1}}\n").expect("write");
    std::fs::write(
        &events,
        "{\"user\": \"u\", \"item\": \"x\", \"kind\": \"view\", \"ts\": 5}\n",
    )
    .expect("write");
    let store = Store::open(tmp.path().join("s")).expect("open");
    let s = import(
        &store,
        &JsonlFiles {
            items: Some(items),
            users: None,
            events: Some(events),
        },
        &ImportOptions {
            strict: true,
            progress: None,
        },
    )
    .expect("strict import of good files");
    assert_eq!((s.items, s.recorded), (1, 1));
}
