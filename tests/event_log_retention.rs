//! Pruning the event log (`Store::prune_event_log`, and `Config::event_log_retention_secs` in
//! the background) on the real Online Retail data. Two oracles that share no code with it: the
//! purchase lines and their times read here from the raw CSV (what each customer's history
//! must still hold, and how many events leave), and a twin store with the same import and the
//! same writes that never prunes (every answer and every behaviour count must match it).
//! Re-running the import after a prune must record nothing, deleting a user must leave the
//! totals equal to the twin's, and histories read while a prune runs must show each kept event
//! exactly once.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::retail::{asks, imported, retail_csv, same_answers};
use recostore::import::{retail, ImportOptions};
use recostore::{Config, Event, EventKind, Store};

/// Ninety days, the window the tests keep.
const KEEP: u64 = 90 * 86_400;

/// Seconds since 1970 of `YYYY-MM-DD HH:MM[:SS]`, read as UTC, by counting days (no shared
/// date code with the importer).
fn epoch(s: &str) -> u64 {
    let (date, time) = s.split_once(' ').expect("date and time");
    let d: Vec<u64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<u64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut days = 0;
    for y in 1970..d[0] {
        days += if leap(y) { 366 } else { 365 };
    }
    let months = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    for (m, len) in months.iter().enumerate().take(d[1] as usize - 1) {
        days += len + u64::from(m == 1 && leap(d[0]));
    }
    days += d[2] - 1;
    days * 86_400 + t[0] * 3_600 + t[1] * 60 + t.get(2).copied().unwrap_or(0)
}

/// Every purchase line of the CSV as (customer, time): no cancellations, quantity above 0, a
/// customer.
fn purchase_times() -> BTreeMap<String, Vec<u64>> {
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(retail_csv()).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let mut rdr = csv::ReaderBuilder::new().from_reader(&raw[..]);
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in rdr.byte_records() {
        let row = row.unwrap();
        let f = |i: usize| String::from_utf8_lossy(&row[i]).trim().to_string();
        let (invoice, qty, date, customer) = (f(0), f(3), f(4), f(6));
        let qty: f64 = qty.parse().unwrap_or(0.0);
        if invoice.starts_with('C') || qty <= 0.0 || customer.is_empty() {
            continue;
        }
        let customer = customer.trim_end_matches(".0").to_string();
        out.entry(customer).or_default().push(epoch(&date));
    }
    for times in out.values_mut() {
        times.sort_unstable();
    }
    out
}

fn times(store: &Store, user: &str) -> Vec<u64> {
    store
        .user_events(user)
        .unwrap_or_else(|e| panic!("{user}: {e}"))
        .iter()
        .map(|e| e.ts)
        .collect()
}

/// The times of `user`'s purchases in their history (the tests' own writes are views).
fn purchase_times_of(store: &Store, user: &str) -> Vec<u64> {
    store
        .user_events(user)
        .unwrap_or_else(|e| panic!("{user}: {e}"))
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Purchase { .. }))
        .map(|e| e.ts)
        .collect()
}

/// `n`-th visit of the tests' writer: December 2011, the data's own time, on customers whose
/// older purchases the prune takes out.
fn visit(n: u64) -> Event {
    let users = ["17850", "13047", "12583"];
    Event::view(users[(n % 3) as usize], "23166", 1_323_000_000 + n)
}

#[test]
fn pruning_online_retail_keeps_the_newer_events_and_every_answer() {
    let lines = purchase_times();
    let all: usize = lines.values().map(Vec::len).sum();
    assert_eq!(all, 397_924);
    let latest = lines.values().flatten().copied().max().unwrap();
    let horizon = latest - KEEP;
    let older = lines.values().flatten().filter(|&&t| t < horizon).count() as u64;
    assert!(older > 200_000 && older < all as u64, "{older}");

    let (tmp, twin_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = imported(tmp.path(), Config::default());
    let twin = imported(twin_dir.path(), Config::default());
    let asks = asks(&store);
    // Nothing left in the journal, so the prune takes exactly the older events.
    store.checkpoint().unwrap();

    // A prune while one thread writes events for customers being pruned and another reads
    // a straddling customer's history over and over.
    let straddling = "17850";
    let kept_17850 = lines[straddling].iter().filter(|&&t| t >= horizon).count();
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let reads = AtomicU64::new(0);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) || n < 30 {
                store
                    .record_events(&[visit(n)])
                    .expect("a write during a prune");
                n += 1;
            }
            written.store(n, Ordering::Relaxed);
        });
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let got = purchase_times_of(&store, straddling);
                // Each kept purchase exactly once, while the prune takes the older ones out.
                let newer_purchases = got.iter().filter(|&&t| t >= horizon).count();
                assert_eq!(
                    newer_purchases, kept_17850,
                    "a history read during the prune"
                );
                reads.fetch_add(1, Ordering::Relaxed);
            }
        });
        let r = store.prune_event_log(KEEP).expect("prune");
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        r
    });
    let written = written.load(Ordering::Relaxed);
    eprintln!(
        "{report:?}; {written} events written and {} histories read meanwhile",
        reads.load(Ordering::Relaxed)
    );
    for n in 0..written {
        twin.record_events(&[visit(n)]).unwrap();
    }
    assert_eq!(report.horizon, horizon, "the store's clock is the data's");
    assert_eq!(report.events, older, "the CSV's lines before the horizon");
    assert_eq!(report.journaled_chunks, 0);

    let check = |store: &Store, when: &str| {
        // Each customer's history is the CSV's newer purchases (plus the tests' visits).
        for (customer, t) in &lines {
            let mut want: Vec<u64> = t.iter().copied().filter(|&t| t >= horizon).collect();
            let got = purchase_times_of(store, customer);
            want.sort_unstable();
            assert_eq!(got, want, "{when}: customer {customer}");
        }
        assert_eq!(store.stats().events, twin.stats().events, "{when}");
        same_answers(store, &twin, &asks, when);
        for customer in ["17850", "13047", "14688"] {
            assert_eq!(
                store.user_activity(customer),
                twin.user_activity(customer),
                "{when}: {customer}'s behaviour"
            );
        }
        let v = store.verify_deep().unwrap();
        assert!(v.healthy(), "{when}: {:?}", v.problems);
        assert_eq!(v.pruned_events, older, "{when}");
        assert_eq!(v.events + v.pruned_events, twin.stats().events, "{when}");
    };
    check(&store, "after the prune");

    // Export writes the kept events and says how many it could not.
    let out = tempfile::tempdir().unwrap();
    let summary = store.export_jsonl(out.path()).unwrap();
    assert_eq!(summary.events + summary.pruned_events, twin.stats().events);
    assert_eq!(summary.pruned_events, older);

    // Running the import again records nothing: newer events are found in the log, older
    // ones are at or before each customer's pruned time.
    let again = retail::import(&store, &retail_csv(), &ImportOptions::default()).unwrap();
    assert_eq!(again.recorded, 0, "{again:?}");
    check(&store, "after the import ran again");

    // A second prune with the same window finds nothing.
    let r = store.prune_event_log(KEEP).unwrap();
    assert_eq!((r.events, r.chunks), (0, 0), "{r:?}");

    // Forgetting a customer whose older purchases were pruned takes all of them out of the
    // totals, as on the twin.
    assert!(store.delete_user("13047").unwrap());
    assert!(twin.delete_user("13047").unwrap());
    assert_eq!(store.stats().events, twin.stats().events);
    let v = store.verify_deep().unwrap();
    assert!(v.healthy(), "{:?}", v.problems);
    assert!(v.pruned_events < older);

    drop(store);
    let store = Store::open_existing(tmp.path()).unwrap();
    same_answers(&store, &twin, &asks, "after a reopen");
    let v = store.verify_deep().unwrap();
    assert!(v.healthy(), "{:?}", v.problems);
}

/// With `event_log_retention_secs` set, writes start the prune on their own; a window of 0
/// keeps only the newest time, and one of `u64::MAX` keeps everything.
#[test]
fn the_write_path_prunes_in_the_background_and_extreme_windows_hold() {
    let tmp = tempfile::tempdir().unwrap();
    // Checkpointed with every batch, so no batch waits in the journal, where a prune leaves
    // it.
    let config = Config::default()
        .event_log_retention_secs(Some(100))
        .checkpoint_events(0);
    let store = Store::open_with(tmp.path(), config).unwrap();
    store
        .upsert_items(&[recostore::Item::new("i", vec![("t", 1.0)])])
        .unwrap();
    // The first write after open checks; with this one the clock is at 2,000, so the
    // horizon at 1,900.
    let mut batch: Vec<Event> = (0..50)
        .map(|n| Event::view(format!("u{}", n % 5), "i", 1_000 + n))
        .collect();
    batch.push(Event::view("u0", "i", 2_000));
    store.record_events(&batch).unwrap();
    let started = Instant::now();
    while times(&store, "u1").len() == 10 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(times(&store, "u0"), [2_000], "pruned in the background");
    for u in 1..5 {
        assert!(times(&store, &format!("u{u}")).is_empty());
    }
    assert_eq!(
        store.stats().events,
        51,
        "the state still counts every event"
    );
    assert!(store.verify_deep().unwrap().healthy());

    let r = store.prune_event_log(u64::MAX).unwrap();
    assert_eq!((r.horizon, r.events), (0, 0));
    store
        .record_events(&[Event::view("u9", "i", 1_999)])
        .unwrap();
    let r = store.prune_event_log(0).unwrap();
    assert_eq!((r.horizon, r.events), (2_000, 1), "{r:?}");
    assert_eq!(times(&store, "u0"), [2_000]);
    let v = store.verify_deep().unwrap();
    assert!(v.healthy(), "{:?}", v.problems);
    assert_eq!((v.events, v.pruned_events), (1, 51));
    let by_user: HashMap<String, usize> = (0..10)
        .map(|u| format!("u{u}"))
        .filter_map(|u| store.user_events(&u).ok().map(|e| (u, e.len())))
        .collect();
    assert_eq!(by_user.values().sum::<usize>(), 1);
}
