//! Reclaiming sled's space while the store serves (`Store::reclaim_space`, and in the
//! background past `Config::reclaim_growth`), on the real Online Retail data. The oracle is a
//! twin store that got the same import and the same writes and never reclaimed: every answer
//! and count must match it, after the reclaims and after a reopen; queries and writes running
//! during a reclaim neither fail nor lose anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::retail::{asks, imported, same_answers};
use recostore::{Ask, Config, Event, Scenario, Store};

/// The `n`-th event the tests write: views of one item by a few new visitors, in the data's
/// own time (December 2011), so the clock and every decay stay where the data put them.
fn visit(prefix: &str, n: u64) -> Event {
    Event::view(format!("{prefix}-{}", n % 31), "23166", 1_323_000_000 + n)
}

#[test]
fn reclaiming_while_serving_changes_no_answer_and_loses_no_write() {
    let (tmp, twin_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = || Config::default().reclaim_growth(None);
    let store = imported(tmp.path(), config());
    let twin = imported(twin_dir.path(), config());
    let asks = asks(&store);
    assert_eq!(store.stats().events, 397_924);

    // Queries on one thread and event writes on another while the store reclaims its space
    // twice.
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let queried = AtomicU64::new(0);
    let reports = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                store
                    .recommend(&Ask::new(Scenario::Trending).k(10))
                    .expect("a query during a reclaim");
                queried.fetch_add(1, Ordering::Relaxed);
            }
        });
        s.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) || n < 50 {
                store
                    .record_events(&[visit("visitor", n)])
                    .expect("a write during a reclaim");
                n += 1;
            }
            written.store(n, Ordering::Relaxed);
        });
        let reports: Vec<_> = (0..2)
            .map(|_| store.reclaim_space().expect("reclaim"))
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        reports
    });
    let written = written.load(Ordering::Relaxed);
    for n in 0..written {
        twin.record_events(&[visit("visitor", n)]).unwrap();
    }
    eprintln!(
        "reclaims: {reports:?}; {written} events written and {} queries answered meanwhile",
        queried.load(Ordering::Relaxed)
    );
    let first = &reports[0];
    assert!(first.keys > 10_000 && first.live_bytes > 0, "{first:?}");
    // Fresh sled files are not the live bytes: sled lays pages out with room to spare (about
    // 2.8 times here), so a store straight after an import may not shrink at all.
    assert!(first.live_bytes <= first.bytes_after, "{first:?}");
    assert_eq!(common::sled_dirs(tmp.path()), ["db.2"]);

    let check = |store: &Store, when: &str| {
        assert_eq!(store.stats().events, 397_924 + written, "{when}");
        same_answers(store, &twin, &asks, when);
        let report = store.verify_deep().unwrap();
        assert!(report.healthy(), "{when}: {report:?}");
    };
    check(&store, "after the reclaims");
    drop(store);
    let store = Store::open_existing_with(tmp.path(), config()).unwrap();
    check(&store, "after a reopen");
}

/// Past `reclaim_growth` the store reclaims on its own, from the write path, and the files
/// shrink back; the data stays whole.
#[test]
fn the_store_reclaims_in_the_background_once_its_files_grow() {
    let (tmp, twin_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = Config::default()
        .reclaim_growth(Some(1.5))
        .reclaim_min_bytes(1 << 20)
        .checkpoint_events(200);
    let store = imported(tmp.path(), config.clone());
    let twin = imported(twin_dir.path(), config.clone().reclaim_growth(None));
    let asks = asks(&store);
    // The check runs at most every 10 s: write for up to a minute, until a reclaim shows.
    let started = Instant::now();
    let mut n = 0u64;
    while common::sled_dirs(tmp.path()) == ["db"] && started.elapsed() < Duration::from_secs(60) {
        let batch: Vec<Event> = (n..n + 100).map(|i| visit("bg", i)).collect();
        store.record_events(&batch).unwrap();
        twin.record_events(&batch).unwrap();
        n += 100;
    }
    assert_ne!(
        common::sled_dirs(tmp.path()),
        ["db"],
        "no reclaim in a minute of writes ({n} events)"
    );
    assert_eq!(store.stats().events, 397_924 + n);
    same_answers(&store, &twin, &asks, "after a background reclaim");
    drop(store);
    let store = Store::open_existing_with(tmp.path(), config).unwrap();
    assert_eq!(store.stats().events, 397_924 + n);
    same_answers(&store, &twin, &asks, "after a reopen");
    assert_eq!(common::sled_dirs(tmp.path()).len(), 1);
}
