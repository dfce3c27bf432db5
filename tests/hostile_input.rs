//! Bad input is refused or reported, never taken as truth: far-future times, absurd
//! quantities, weights that store nothing, duplicate tag keys and boost factors that overflow.
//! Each case is one an adversarial pass found stored without a word.

use std::io::Write;

use recostore::import::jsonl::{self, JsonlFiles};
use recostore::import::{retail, ImportOptions};
use recostore::{Ask, Config, Error, Event, Item, Scenario, Store, User};

fn shop() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .upsert_items(&[
            Item::new("mug", [("colour:red", 1.0), ("kind:mug", 1.0)]),
            Item::new("cup", [("colour:red", 1.0), ("kind:cup", 1.0)]),
        ])
        .expect("items");
    store
        .upsert_users(&[User::new("ann", [("colour:red", 1.0)])])
        .expect("users");
    (dir, store)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
fn one_far_future_event_cannot_move_the_clock_or_decay_profiles() {
    let (_d, store) = shop();
    let t = now() - 3_600;
    store
        .record_events(&[Event::view("ann", "mug", t), Event::view("bob", "cup", t)])
        .expect("events");
    let before = store.user_activity("ann").expect("ann").derived_tags;
    assert!(!before.is_empty());
    let year_3000 = 32_503_680_000;
    for ts in [u64::MAX, year_3000, now() * 1_000, now() + 2 * 86_400] {
        let e = store
            .record_events(&[Event::view("bob", "mug", t), Event::view("eve", "mug", ts)])
            .expect_err("refused");
        match &e {
            Error::InvalidEvent { index, reason, .. } => {
                assert_eq!(*index, 1);
                assert!(reason.contains("in the future"), "{reason}");
                assert!(reason.contains("future_tolerance_secs"), "{reason}");
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(store.stats().clock, t, "the clock did not move");
    assert_eq!(
        store.user_activity("ann").expect("ann").derived_tags,
        before
    );
    // A clock a little ahead (within the day) is accepted.
    store
        .record_event(&Event::view("bob", "mug", now() + 600))
        .expect("within the tolerance");
    // And the check can be turned off for a simulated future.
    let dir = tempfile::tempdir().expect("tempdir");
    let free =
        Store::open_with(dir.path(), Config::default().future_tolerance_secs(None)).expect("open");
    free.upsert_items(&[Item::new("mug", [("a", 1.0)])])
        .expect("item");
    free.record_event(&Event::view("x", "mug", year_3000))
        .expect("no limit when turned off");
}

#[test]
fn purchase_quantities_past_the_cap_are_refused() {
    let (_d, store) = shop();
    let e = store
        .record_event(&Event::purchase("ann", "mug", 1_000_001, 2.0, 100))
        .expect_err("refused");
    assert!(e.to_string().contains("1000000"), "{e}");
    store
        .record_event(&Event::purchase("ann", "mug", 1_000_000, 2.0, 100))
        .expect("at the cap");
}

fn retail_file(dir: &std::path::Path, rows: &[&str]) -> std::path::PathBuf {
    let path = dir.join("retail.csv");
    let mut f = std::fs::File::create(&path).expect("create");
    writeln!(
        f,
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    )
    .expect("write");
    for r in rows {
        writeln!(f, "{r}").expect("write");
    }
    path
}

#[test]
fn retail_rows_with_absurd_quantities_or_future_dates_are_bad_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = retail_file(
        dir.path(),
        &[
            "536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
            "536366,22633,HAND WARMER,1e30,12/1/2010 8:28,1.85,17850,United Kingdom",
            "536367,22632,HAND WARMER RED,4294967296,12/1/2010 8:34,1.85,13047,United Kingdom",
            "536368,22960,JAM MAKING SET,2,12/1/3000 8:34,4.25,13047,United Kingdom",
            "536369,22913,RED COAT RACK,3,12/1/2010 8:35,4.95,13047,United Kingdom",
        ],
    );
    let store = Store::open(dir.path().join("store")).expect("open");
    let sum = retail::import(&store, &file, &ImportOptions::default()).expect("import");
    assert_eq!(sum.events, 2, "{sum:?}");
    assert_eq!(sum.skipped, 3, "{sum:?}");
    let reasons: Vec<(u64, &str)> = sum
        .bad_rows
        .iter()
        .map(|b| (b.line, b.reason.as_str()))
        .collect();
    assert!(
        reasons[0].0 == 3 && reasons[0].1.contains("over the 1000000"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == 4 && reasons[1].1.contains("over the 1000000"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].0 == 5 && reasons[2].1.contains("in the future"),
        "{reasons:?}"
    );
    // The spend is what the good rows say, nothing clamped in.
    let spend = store.user_activity("17850").expect("customer").spend;
    assert!((spend - 6.0 * 2.55).abs() < 1e-3, "{spend}");
    // Strict: the first bad row aborts before anything is stored.
    let strict = Store::open(dir.path().join("strict")).expect("open");
    let e = retail::import(
        &strict,
        &file,
        &ImportOptions {
            strict: true,
            ..ImportOptions::default()
        },
    )
    .expect_err("strict");
    assert!(e.to_string().contains("line 3"), "{e}");
    assert_eq!(strict.stats().items, 0);
}

#[test]
fn jsonl_weights_that_store_nothing_and_repeated_keys_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let items = dir.path().join("items.jsonl");
    std::fs::write(
        &items,
        [
            r#"{"id": "good", "tags": {"a": 1.0}}"#,
            r#"{"id": "zero", "tags": {"a": 1.0, "b": 0}}"#,
            r#"{"id": "tiny", "tags": {"a": 1e-40}}"#,
            r#"{"id": "twice", "tags": {"a": 1.0, "a": 2.0}}"#,
        ]
        .join("\n"),
    )
    .expect("write");
    let files = JsonlFiles {
        items: Some(items),
        ..JsonlFiles::default()
    };
    let store = Store::open(dir.path().join("store")).expect("open");
    let sum = jsonl::import(&store, &files, &ImportOptions::default()).expect("import");
    assert_eq!(sum.items, 1, "{sum:?}");
    assert_eq!(sum.skipped, 3, "{sum:?}");
    let reasons: Vec<&str> = sum.bad_rows.iter().map(|b| b.reason.as_str()).collect();
    assert!(reasons[0].contains("`b` has weight 0"), "{reasons:?}");
    assert!(reasons[1].contains("stores nothing"), "{reasons:?}");
    assert!(reasons[2].contains("given twice"), "{reasons:?}");
    let strict = Store::open(dir.path().join("strict")).expect("open");
    let e = jsonl::import(
        &strict,
        &files,
        &ImportOptions {
            strict: true,
            ..ImportOptions::default()
        },
    )
    .expect_err("strict refuses");
    assert!(e.to_string().contains("line 2"), "{e}");
    assert_eq!(strict.stats().items, 0);
    // A name given twice is refused even when one of the weights is 0 (found by the
    // store_model fuzz target: the zero was dropped first, and the pair went through).
    let e = store
        .upsert_items(&[Item::new("dup", [("a", 0.0), ("a", 0.5)])])
        .expect_err("ambiguous");
    assert!(e.to_string().contains("appears twice"), "{e}");
    // The library refuses a subnormal weight too (0 still means "no tag").
    let e = store
        .upsert_items(&[Item::new("tiny", [("a", 1e-40)])])
        .expect_err("subnormal");
    assert!(e.to_string().contains("smallest normal"), "{e}");
}

#[test]
fn boost_factors_that_could_overflow_a_score_are_refused() {
    let (_d, store) = shop();
    for factor in [3e38, f32::INFINITY, f32::NAN, 0.0, -1.0, 1_000.5, 0.0009] {
        let ask = Ask::new(Scenario::Similar { item: "mug".into() }).boost("colour:red", factor);
        let e = store.recommend(&ask).expect_err("refused");
        assert!(matches!(e, Error::InvalidQuery { .. }), "{factor}: {e}");
    }
    let mut ask = Ask::new(Scenario::Similar { item: "mug".into() });
    for i in 0..9 {
        ask = ask.boost(format!("t{i}"), 2.0);
    }
    assert!(store.recommend(&ask).is_err(), "nine boosts");
    // Eight boosts at the largest factor keep every score finite and ordered.
    let mut ask = Ask::new(Scenario::Similar { item: "mug".into() });
    for _ in 0..8 {
        ask = ask.boost("colour:red", 1_000.0);
    }
    let got = store.recommend(&ask).expect("answer");
    assert!(got.iter().all(|r| r.score.is_finite()), "{got:?}");
}
